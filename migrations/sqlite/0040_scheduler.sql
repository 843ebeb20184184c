-- The scheduler's durable state (issue 4): lead lifecycle, per-lead followup timers, job
-- status for `inspect scheduled`, one-firing-per-tick claims, the leader lease, process
-- heartbeats and the owner's daily reports. Same tables as migrations/postgres/0040.

-- A lead the followup sequence (or the agent) gave up on: no more followups.
ALTER TABLE leads ADD COLUMN dead_at TEXT;
ALTER TABLE leads ADD COLUMN dead_reason TEXT;
-- IANA zone for quiet hours; NULL means OWNER_TZ.
ALTER TABLE leads ADD COLUMN time_zone TEXT;

-- Set once when the response-gap watch re-drives an unanswered inbound message: it is
-- re-driven once; still unanswered after that, it counts toward "pipeline stalled".
ALTER TABLE messages ADD COLUMN redriven_at TEXT;

-- One durable timer per lead: the next followup is due at `due_at`. A sent reply arms it
-- (step 0), an inbound message deletes it, the sweep advances it.
CREATE TABLE followups (
    lead_phone TEXT PRIMARY KEY REFERENCES leads(phone),
    step       INTEGER NOT NULL DEFAULT 0,
    due_at     TEXT NOT NULL,
    -- Why the last due time moved (e.g. 'quiet hours'); for operators.
    note       TEXT,
    updated_at TEXT NOT NULL
);
CREATE INDEX followups_due ON followups (due_at);

-- What `inspect scheduled` shows, one row per job, written by the live schedulers.
CREATE TABLE scheduled_jobs (
    name             TEXT PRIMARY KEY,
    schedule         TEXT NOT NULL,
    time_zone        TEXT NOT NULL,
    missed_policy    TEXT NOT NULL,
    next_fire_at     TEXT,
    last_fire_at     TEXT,
    last_run_at      TEXT,
    last_lateness_ms INTEGER,
    last_duration_ms INTEGER,
    last_outcome     TEXT,
    last_instance    TEXT,
    runs             INTEGER NOT NULL DEFAULT 0,
    missed           INTEGER NOT NULL DEFAULT 0,
    -- A job's own small state between runs (JSON), e.g. the response-gap watch's "stalled".
    state            TEXT,
    updated_at       TEXT NOT NULL
);

-- One row per (job, scheduled time): the primary key is what makes a tick run once across
-- replicas.
CREATE TABLE job_ticks (
    name        TEXT NOT NULL,
    fire_at     TEXT NOT NULL,
    instance    TEXT NOT NULL,
    claimed_at  TEXT NOT NULL,
    finished_at TEXT,
    outcome     TEXT,
    PRIMARY KEY (name, fire_at)
);

-- The scheduler leader lease: the holder fires jobs; a standby takes over once it expires.
CREATE TABLE leases (
    name       TEXT PRIMARY KEY,
    holder     TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    acquired_at TEXT NOT NULL
);

-- Every non-web process writes here every few seconds: "workers are consuming" is a fact
-- anyone can read.
CREATE TABLE heartbeats (
    instance   TEXT PRIMARY KEY,
    role       TEXT NOT NULL,
    started_at TEXT NOT NULL,
    at         TEXT NOT NULL
);

CREATE TABLE owner_reports (
    day          TEXT PRIMARY KEY,
    generated_at TEXT NOT NULL,
    body         TEXT NOT NULL
);
