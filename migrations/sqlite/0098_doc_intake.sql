-- The mailbox document intake (issue 14, item 3): which Gmail messages of the staff mailbox
-- were taken, so each is processed once across runs, restarts and replicas. One row per
-- message (its Gmail id) once a run has claimed it:
--   claimed      — a run is processing it; `next_attempt_at` is when the claim lapses (a run
--                  that died mid-way is retried then; its uploads are found again in Drive
--                  by their marks, so a retry adds only what is missing)
--   retry        — a retryable failure; tried again at `next_attempt_at` (actors::backoff)
--   processed    — matched to `lead_phone`, files stored (or named), doc_review opened (final)
--   unmatched    — no known lead's number in it (final; not retried)
--   no_documents — a known lead's mail without a named attachment (final)
--   failed       — refused, or retries exhausted (final; alerted)
CREATE TABLE doc_intake (
    gmail_id        TEXT PRIMARY KEY,
    state           TEXT NOT NULL CHECK (state IN ('claimed', 'retry', 'processed', 'unmatched', 'no_documents', 'failed')),
    lead_phone      TEXT,
    attempts        INTEGER NOT NULL,
    next_attempt_at TEXT NOT NULL,
    -- The attachments' names, one per line, and where they went (a Drive folder link).
    files           TEXT,
    detail          TEXT,
    updated_at      TEXT NOT NULL
);

-- Each run reads the rows of its look-back window.
CREATE INDEX doc_intake_by_updated ON doc_intake (updated_at);
