-- The outbox sweep's checks of in-doubt replies, as in migrations/sqlite (same table,
-- columns and values; only the types differ). Kept in the store so that a restarted
-- sweeper neither forgets a check nor repeats one early, and two sweepers never both count
-- one (every write compares `checks`, the version it read). `since` names the episode: the
-- reply's `updated_at` when it went in doubt.
CREATE TABLE in_doubt_checks (
    message_id          BIGINT PRIMARY KEY REFERENCES messages(id),
    since               TIMESTAMPTZ NOT NULL,
    checks              BIGINT NOT NULL,
    absent              BIGINT NOT NULL,
    last_checked_at     TIMESTAMPTZ NOT NULL,
    last_result         TEXT NOT NULL CHECK (last_result IN ('absent', 'ambiguous', 'unreachable')),
    alerted_ambiguous   BOOLEAN NOT NULL DEFAULT FALSE,
    alerted_unreachable BOOLEAN NOT NULL DEFAULT FALSE
);

CREATE INDEX messages_in_doubt ON messages (id) WHERE state = 'in_doubt';
