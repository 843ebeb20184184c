-- The whole conversation state. Everything a lead actor holds in memory is rebuilt from here.

-- One row per phone number that ever texted us.
CREATE TABLE leads (
    phone        TEXT PRIMARY KEY,
    created_at   TEXT NOT NULL,
    -- Carrier opt-out (STOP and friends): no SMS goes to this lead while it is 1.
    opted_out    INTEGER NOT NULL DEFAULT 0,
    opted_out_at TEXT
);

-- Inbound SMS and outbound replies in one table so that one ordered index read gives the
-- chat window. `id` orders a lead's conversation.
CREATE TABLE messages (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    lead_phone  TEXT NOT NULL REFERENCES leads(phone),
    direction   TEXT NOT NULL CHECK (direction IN ('inbound', 'outbound')),
    body        TEXT NOT NULL,
    -- inbound: Twilio's MessageSid, the idempotency key of the webhook (a retry is a no-op).
    -- outbound: the provider's id once sent.
    message_sid TEXT UNIQUE,
    -- inbound:  pending -> answered | no_reply
    -- outbound: queued -> sending -> sent | failed | suppressed | in_doubt
    --           (sending -> queued again after a temporary failure)
    state       TEXT NOT NULL CHECK (state IN ('pending', 'answered', 'no_reply',
                    'queued', 'sending', 'sent', 'failed', 'suppressed', 'in_doubt')),
    -- inbound: the outbound row that answered it.
    reply_id    INTEGER REFERENCES messages(id),
    -- outbound: which model wrote it.
    provider    TEXT,
    -- Why a message ended as no_reply / failed / in_doubt.
    detail      TEXT,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);

CREATE INDEX messages_by_lead ON messages (lead_phone, id);
-- Small by construction: only rows still needing work.
CREATE INDEX messages_open ON messages (state, lead_phone) WHERE state IN ('pending', 'queued', 'sending');

-- Who processed which lead when: evidence for "never two turns of one lead at once".
CREATE TABLE turns (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    lead_phone  TEXT NOT NULL,
    worker      TEXT NOT NULL,
    started_at  TEXT NOT NULL,
    finished_at TEXT,
    outcome     TEXT
);

CREATE INDEX turns_by_lead ON turns (lead_phone, id);
