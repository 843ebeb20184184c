-- Human in the loop (HITL_ENABLED), as in migrations/sqlite: replies that wait for a person.
CREATE TABLE held_replies (
    id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    lead_phone       TEXT NOT NULL REFERENCES leads(phone),
    body             TEXT NOT NULL,
    provider         TEXT NOT NULL,
    answered_ids     TEXT NOT NULL,
    state            TEXT NOT NULL CHECK (state IN ('held', 'approved', 'rejected')),
    created_at       TIMESTAMPTZ NOT NULL,
    decided_at       TIMESTAMPTZ,
    decided_by       TEXT,
    reply_id         BIGINT REFERENCES messages(id),
    escalated_at     TIMESTAMPTZ,
    holding_reply_id BIGINT REFERENCES messages(id)
);

CREATE INDEX held_replies_open ON held_replies (created_at) WHERE state = 'held';
