-- Alerts waiting for their chat channel (Discord). A row is written when an alert is
-- raised and deleted once the channel has it, so the table holds only what is still owed:
-- an outage of the chat service delays alerts, it never loses them. `id` orders a
-- channel's alerts; the sender posts them in that order.
CREATE TABLE alert_spool (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    channel_id  TEXT NOT NULL,
    kind        TEXT NOT NULL,
    -- The JSON body to post (without the nonce, which is derived from id + created_at).
    payload     TEXT NOT NULL,
    -- queued -> (deleted once posted) | failed (the service refused the payload for good)
    state       TEXT NOT NULL CHECK (state IN ('queued', 'failed')),
    attempts    INTEGER NOT NULL DEFAULT 0,
    last_error  TEXT,
    created_at  TEXT NOT NULL
);

CREATE INDEX alert_spool_by_channel ON alert_spool (channel_id, id) WHERE state = 'queued';
