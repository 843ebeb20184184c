-- Leads handed to the operator's dialer (HOMEEASY_DIALER_URL): at most one per lead per
-- day (UTC), claimed before the post so a retried turn or a second "call me" posts nothing.
-- The same table on both engines (only the time type differs).
CREATE TABLE dialer_handoffs (
    lead_phone TEXT NOT NULL,
    -- The UTC day, YYYY-MM-DD.
    day        TEXT NOT NULL,
    -- asked_for_call | hot_lead
    reason     TEXT NOT NULL,
    summary    TEXT NOT NULL,
    -- claimed until the post ends: sent | dry_run | failed
    outcome    TEXT NOT NULL DEFAULT 'claimed',
    claimed_at TEXT NOT NULL,
    finished_at TEXT,
    PRIMARY KEY (lead_phone, day)
);
