-- Issue 15: a lead's question about a voucher, accessibility or a reasonable accommodation
-- opens the `accommodation_request` SLA, due by the office's close the same business day.
-- `due_at`: a deadline set when the SLA opened (NULL: started_at + the kind's window).
-- SQLite cannot alter a CHECK: the table is rebuilt with the same columns and indexes.
CREATE TABLE slas_new (
    lead_phone           TEXT NOT NULL REFERENCES leads(phone),
    kind                 TEXT NOT NULL CHECK (kind IN ('doc_review', 'application_decision',
                             'invoice', 'showing_schedule', 'first_response',
                             'accommodation_request')),
    ticket_id            TEXT NOT NULL DEFAULT '',
    started_at           TEXT NOT NULL,
    staff_nag_count      INTEGER NOT NULL DEFAULT 0,
    staff_last_nagged_at TEXT,
    lead_last_update_at  TEXT,
    breached_at          TEXT,
    escalated_at         TEXT,
    resolved_at          TEXT,
    version              INTEGER NOT NULL DEFAULT 0,
    created_at           TEXT NOT NULL,
    updated_at           TEXT NOT NULL,
    due_at               TEXT,
    PRIMARY KEY (lead_phone, kind)
);
INSERT INTO slas_new (lead_phone, kind, ticket_id, started_at, staff_nag_count,
    staff_last_nagged_at, lead_last_update_at, breached_at, escalated_at, resolved_at,
    version, created_at, updated_at)
SELECT lead_phone, kind, ticket_id, started_at, staff_nag_count, staff_last_nagged_at,
    lead_last_update_at, breached_at, escalated_at, resolved_at, version, created_at,
    updated_at
FROM slas;
DROP TABLE slas;
ALTER TABLE slas_new RENAME TO slas;
CREATE INDEX slas_open ON slas (started_at) WHERE resolved_at IS NULL;
CREATE INDEX slas_breached ON slas (breached_at) WHERE breached_at IS NOT NULL;
