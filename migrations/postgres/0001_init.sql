-- The whole conversation state, as in migrations/sqlite (same tables, columns and states;
-- only the types differ). Everything a lead actor holds in memory is rebuilt from here.

CREATE TABLE leads (
    phone        TEXT PRIMARY KEY,
    created_at   TIMESTAMPTZ NOT NULL,
    -- Carrier opt-out (STOP and friends): no SMS goes to this lead while it is 1.
    opted_out    BIGINT NOT NULL DEFAULT 0,
    opted_out_at TIMESTAMPTZ
);

CREATE TABLE messages (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    lead_phone  TEXT NOT NULL REFERENCES leads(phone),
    direction   TEXT NOT NULL CHECK (direction IN ('inbound', 'outbound')),
    body        TEXT NOT NULL,
    -- inbound: Twilio's MessageSid, the idempotency key of the webhook.
    -- outbound: the provider's id once sent.
    message_sid TEXT UNIQUE,
    state       TEXT NOT NULL CHECK (state IN ('pending', 'answered', 'no_reply',
                    'queued', 'sending', 'sent', 'failed', 'suppressed', 'in_doubt')),
    reply_id    BIGINT REFERENCES messages(id),
    provider    TEXT,
    detail      TEXT,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);

CREATE INDEX messages_by_lead ON messages (lead_phone, id);
CREATE INDEX messages_open ON messages (state, lead_phone) WHERE state IN ('pending', 'queued', 'sending');

CREATE TABLE turns (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    lead_phone  TEXT NOT NULL,
    worker      TEXT NOT NULL,
    started_at  TIMESTAMPTZ NOT NULL,
    finished_at TIMESTAMPTZ,
    outcome     TEXT
);

CREATE INDEX turns_by_lead ON turns (lead_phone, id);
