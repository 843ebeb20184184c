-- SLA engine, as in migrations/sqlite (same columns and states; only types differ).
CREATE TABLE slas (
    lead_phone           TEXT NOT NULL REFERENCES leads(phone),
    kind                 TEXT NOT NULL CHECK (kind IN ('doc_review', 'application_decision',
                             'invoice', 'showing_schedule', 'first_response')),
    ticket_id            TEXT NOT NULL DEFAULT '',
    started_at           TIMESTAMPTZ NOT NULL,
    staff_nag_count      BIGINT NOT NULL DEFAULT 0,
    staff_last_nagged_at TIMESTAMPTZ,
    lead_last_update_at  TIMESTAMPTZ,
    breached_at          TIMESTAMPTZ,
    escalated_at         TIMESTAMPTZ,
    resolved_at          TIMESTAMPTZ,
    version              BIGINT NOT NULL DEFAULT 0,
    created_at           TIMESTAMPTZ NOT NULL,
    updated_at           TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (lead_phone, kind)
);

CREATE INDEX slas_open ON slas (started_at) WHERE resolved_at IS NULL;
CREATE INDEX slas_breached ON slas (breached_at) WHERE breached_at IS NOT NULL;
