-- Human takeover (issue 15 item 6): an operator takes a lead's conversation over; while a
-- takeover is in force the AI drafts no reply and sends no followup to the lead, its
-- inbound messages are stored (no_reply, detail 'taken_over') and forwarded to the HITL
-- channel, and the operator's own texts go out through the outbox (provider 'operator').
-- One row per takeover, kept after release: who took it, when, and how it ended. At most
-- one in force per lead (`released_at IS NULL`), held by the partial unique index so two
-- operators taking the same lead at once get one takeover between them. No expiry of its
-- own: the scheduler's takeover_idle_release job releases one whose operator has been
-- silent TAKEOVER_IDLE_HOURS (`last_activity_at`: the take, and each operator reply).
CREATE TABLE lead_takeovers (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    lead_phone       TEXT NOT NULL,
    -- The operator's name as given (`{"operator": ..}` on /ops) or the Discord user.
    operator         TEXT NOT NULL,
    -- Where it was taken: ops | discord
    via              TEXT NOT NULL CHECK (via IN ('ops', 'discord')),
    taken_at         TEXT NOT NULL,
    last_activity_at TEXT NOT NULL,
    released_at      TEXT,
    -- Who released it: an operator's name, or 'scheduler' for the idle release.
    released_by      TEXT,
    -- operator | idle
    release_reason   TEXT CHECK (release_reason IN ('operator', 'idle'))
);

CREATE UNIQUE INDEX lead_takeovers_in_force ON lead_takeovers (lead_phone) WHERE released_at IS NULL;
CREATE INDEX lead_takeovers_by_lead ON lead_takeovers (lead_phone, id);
