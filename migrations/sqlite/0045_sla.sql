-- SLA engine: one row per lead and SLA kind, the whole state of its nag sequence, so a
-- restart resumes every sequence where it stood (see ARCHITECTURE.md, "SLA engine").
CREATE TABLE slas (
    lead_phone           TEXT NOT NULL REFERENCES leads(phone),
    -- doc_review | application_decision | invoice | showing_schedule | first_response
    kind                 TEXT NOT NULL CHECK (kind IN ('doc_review', 'application_decision',
                             'invoice', 'showing_schedule', 'first_response')),
    -- '' when there is none; ids starting with 'dry-run' are never commented on.
    ticket_id            TEXT NOT NULL DEFAULT '',
    started_at           TEXT NOT NULL,
    staff_nag_count      INTEGER NOT NULL DEFAULT 0,
    staff_last_nagged_at TEXT,
    lead_last_update_at  TEXT,
    -- When it first passed 100 % (counted once as a breach).
    breached_at          TEXT,
    escalated_at         TEXT,
    resolved_at          TEXT,
    -- Bumped by every write; a write carrying an older version changes nothing.
    version              INTEGER NOT NULL DEFAULT 0,
    created_at           TEXT NOT NULL,
    updated_at           TEXT NOT NULL,
    PRIMARY KEY (lead_phone, kind)
);

-- The sweep reads only open SLAs.
CREATE INDEX slas_open ON slas (started_at) WHERE resolved_at IS NULL;
CREATE INDEX slas_breached ON slas (breached_at) WHERE breached_at IS NOT NULL;
