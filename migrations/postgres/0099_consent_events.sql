-- The consent ledger, as in migrations/sqlite (same table, columns and values; only the
-- types differ): every event that granted or revoked a lead's consent, append-only,
-- written in the transaction that sets `leads.opted_out`. `message_sid` is unique, so a
-- Twilio retry adds nothing; NULL for an operator's action.
CREATE TABLE consent_events (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    lead_phone  TEXT NOT NULL REFERENCES leads(phone),
    at          TIMESTAMPTZ NOT NULL,
    method      TEXT NOT NULL CHECK (method IN ('first_inbound', 'stop_keyword', 'revocation', 'start_keyword', 'operator')),
    grants      BIGINT NOT NULL CHECK (grants IN (0, 1)),
    message_sid TEXT UNIQUE,
    words       TEXT NOT NULL
);

CREATE INDEX consent_events_by_lead ON consent_events (lead_phone, id);
CREATE INDEX consent_events_by_time ON consent_events (at);
