-- The outbox sweep's checks of in-doubt replies with Twilio (actors/src/outbox): kept in the
-- store so that a restarted sweeper neither forgets a check nor repeats one early, and two
-- sweepers never both count one (every write compares `checks`, the version it read).
-- One row per in-doubt reply once it has been checked; deleted in the transaction that
-- settles it. `since` names the episode: the reply's `updated_at` when it went in doubt
-- (nothing else writes an in-doubt row), so a row left from an earlier episode of a reply
-- that was resent and is in doubt again is never read as this one's.
CREATE TABLE in_doubt_checks (
    message_id          INTEGER PRIMARY KEY REFERENCES messages(id),
    since               TEXT NOT NULL,
    -- Checks made in this episode that left it in doubt.
    checks              INTEGER NOT NULL,
    -- Consecutive checks that found it certainly absent: two, spaced apart, resend it.
    absent              INTEGER NOT NULL,
    last_checked_at     TEXT NOT NULL,
    last_result         TEXT NOT NULL CHECK (last_result IN ('absent', 'ambiguous', 'unreachable')),
    -- Each of these alerts once per episode.
    alerted_ambiguous   INTEGER NOT NULL DEFAULT 0,
    alerted_unreachable INTEGER NOT NULL DEFAULT 0
);

-- Every sweep reads the in-doubt replies: a handful, found without scanning every message.
CREATE INDEX messages_in_doubt ON messages (id) WHERE state = 'in_doubt';
