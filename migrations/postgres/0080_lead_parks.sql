-- Parked leads, as in migrations/sqlite (same table, columns and values; only the types
-- differ). One row per lead, replaced by its next park; in force while `unparked_at` is
-- NULL and `expires_at` is in the future (PARK_SECS). The reply caps count from the end of
-- the last park.
CREATE TABLE lead_parks (
    lead_phone  TEXT PRIMARY KEY,
    reason      TEXT NOT NULL CHECK (reason IN ('reply_cap_hour', 'reply_cap_day', 'restarts')),
    parked_at   TIMESTAMPTZ NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL,
    unparked_at TIMESTAMPTZ
);

CREATE INDEX messages_outbound_by_lead ON messages (lead_phone, created_at) WHERE direction = 'outbound';
