-- Parked leads (issue 12): a lead that is not answered for a while — its replies hit a cap
-- (a loop with another business's auto-responder), or its actor kept failing. In the
-- store so that every worker agrees and a park outlives the process that set it; one row
-- per lead, replaced by its next park. A park is in force while `unparked_at` is NULL and
-- `expires_at` is in the future: it expires by itself (PARK_SECS). The reply caps count
-- from the end of the last park, so an unparked lead is not parked again at once.
CREATE TABLE lead_parks (
    lead_phone  TEXT PRIMARY KEY,
    reason      TEXT NOT NULL CHECK (reason IN ('reply_cap_hour', 'reply_cap_day', 'restarts')),
    parked_at   TEXT NOT NULL,
    expires_at  TEXT NOT NULL,
    unparked_at TEXT
);

-- What the reply caps count: a lead's replies since a moment.
CREATE INDEX messages_outbound_by_lead ON messages (lead_phone, created_at) WHERE direction = 'outbound';
