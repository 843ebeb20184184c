-- The CRM texting log, as in migrations/sqlite (same table, columns and states; only the
-- types differ): one row per message a drain claimed for Follow Up Boss's
-- `POST /v1/textMessages`, so each message is logged once across restarts and replicas.
CREATE TABLE crm_text_log (
    message_id      BIGINT PRIMARY KEY REFERENCES messages(id),
    state           TEXT NOT NULL CHECK (state IN ('claimed', 'retry', 'logged', 'no_person', 'failed')),
    attempts        BIGINT NOT NULL,
    next_attempt_at TIMESTAMPTZ NOT NULL,
    detail          TEXT,
    updated_at      TIMESTAMPTZ NOT NULL
);

CREATE INDEX messages_by_created ON messages (created_at);
