-- The CRM texting log (issue 14): which messages were recorded on the lead's Follow Up Boss
-- timeline (`POST /v1/textMessages`), so each is logged once across restarts and replicas.
-- One row per message once a drain has claimed it:
--   claimed   — a drain is posting it; `next_attempt_at` is when the claim lapses (a drain
--               that died mid-post is retried then: at least once, not exactly once)
--   retry     — a retryable failure; tried again at `next_attempt_at` (actors::backoff)
--   logged    — FUB recorded it (final)
--   no_person — FUB knows no person with the lead's phone (final; nothing to log it on)
--   failed    — refused, or retries exhausted (final; alerted)
CREATE TABLE crm_text_log (
    message_id      INTEGER PRIMARY KEY REFERENCES messages(id),
    state           TEXT NOT NULL CHECK (state IN ('claimed', 'retry', 'logged', 'no_person', 'failed')),
    attempts        INTEGER NOT NULL,
    next_attempt_at TEXT NOT NULL,
    detail          TEXT,
    updated_at      TEXT NOT NULL
);

-- The drain reads messages newer than its look-back in id order.
CREATE INDEX messages_by_created ON messages (created_at);
