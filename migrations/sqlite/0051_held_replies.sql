-- Human in the loop (HITL_ENABLED): replies the agent wrote that wait for a person.
-- A held reply is not in `messages` until approved, so nothing that sends or re-drives
-- the outbox can reach it; the inbound messages it answers are marked `answered` (detail
-- 'held for review') so no second turn answers them meanwhile.
--   held -> approved (a `queued` outbound row is written, sent by the normal path)
--        -> rejected (nothing sent)
-- `escalated_at`: the hold outlived HITL_HOLD_TIMEOUT_SECS; an alert went out and the lead
-- got one holding message (`holding_reply_id`). The hold stays open for a person.
CREATE TABLE held_replies (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    lead_phone       TEXT NOT NULL REFERENCES leads(phone),
    body             TEXT NOT NULL,
    provider         TEXT NOT NULL,
    -- The inbound message ids it answers, comma-separated.
    answered_ids     TEXT NOT NULL,
    state            TEXT NOT NULL CHECK (state IN ('held', 'approved', 'rejected')),
    created_at       TEXT NOT NULL,
    decided_at       TEXT,
    decided_by       TEXT,
    -- The outbound row written on approval (the edited text, if edited).
    reply_id         INTEGER REFERENCES messages(id),
    escalated_at     TEXT,
    holding_reply_id INTEGER REFERENCES messages(id)
);

CREATE INDEX held_replies_open ON held_replies (created_at) WHERE state = 'held';
