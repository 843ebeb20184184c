-- The mailbox document intake, as in migrations/sqlite (same table, columns and states; only
-- the types differ): one row per Gmail message a run claimed, so each is processed once
-- across runs, restarts and replicas.
CREATE TABLE doc_intake (
    gmail_id        TEXT PRIMARY KEY,
    state           TEXT NOT NULL CHECK (state IN ('claimed', 'retry', 'processed', 'unmatched', 'no_documents', 'failed')),
    lead_phone      TEXT,
    attempts        BIGINT NOT NULL,
    next_attempt_at TIMESTAMPTZ NOT NULL,
    files           TEXT,
    detail          TEXT,
    updated_at      TIMESTAMPTZ NOT NULL
);

CREATE INDEX doc_intake_by_updated ON doc_intake (updated_at);
