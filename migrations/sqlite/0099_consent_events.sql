-- The consent ledger (issue 15, item 3): every event that granted or revoked a lead's
-- consent to be texted, append-only, for an operator answering a complaint. Written in the
-- webhook's transaction that accepts the message and sets `leads.opted_out` (a Twilio
-- retry of the same MessageSid adds nothing: `message_sid` is unique), or in the
-- operator's action that sets it. `leads.opted_out` stays what every send checks; this
-- table says when, how and from which message it came to be.
CREATE TABLE consent_events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    lead_phone  TEXT NOT NULL REFERENCES leads(phone),
    at          TEXT NOT NULL,
    -- first_inbound: the lead's first message (implied consent to reply to it)
    -- stop_keyword:  STOP and the other carrier opt-out words
    -- revocation:    consent revoked in plain words ("please stop texting me")
    -- start_keyword: START/UNSTOP from an opted-out lead
    -- operator:      an operator's revoke or restore (/ops, e.g. the lead asked by phone)
    method      TEXT NOT NULL CHECK (method IN ('first_inbound', 'stop_keyword', 'revocation', 'start_keyword', 'operator')),
    -- 1: consent granted (or restored); 0: revoked.
    grants      INTEGER NOT NULL CHECK (grants IN (0, 1)),
    -- The inbound message's MessageSid; NULL for an operator's action.
    message_sid TEXT UNIQUE,
    -- The inbound body, or the operator's note.
    words       TEXT NOT NULL
);

CREATE INDEX consent_events_by_lead ON consent_events (lead_phone, id);
CREATE INDEX consent_events_by_time ON consent_events (at);
