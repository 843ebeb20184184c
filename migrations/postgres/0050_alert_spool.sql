-- Alerts waiting for their chat channel (Discord), as in migrations/sqlite. A row is
-- written when an alert is raised and deleted once the channel has it.
CREATE TABLE alert_spool (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    channel_id  TEXT NOT NULL,
    kind        TEXT NOT NULL,
    payload     TEXT NOT NULL,
    state       TEXT NOT NULL CHECK (state IN ('queued', 'failed')),
    attempts    BIGINT NOT NULL DEFAULT 0,
    last_error  TEXT,
    created_at  TIMESTAMPTZ NOT NULL
);

CREATE INDEX alert_spool_by_channel ON alert_spool (channel_id, id) WHERE state = 'queued';
