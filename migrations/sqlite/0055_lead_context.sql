-- The brain's context for each lead (requirements, tour requested, CRM stage suggested,
-- escalation, dead-lead reason): one JSON document per lead, so a new field needs no
-- migration. Written by the brain's tools, read when its system prompt is built.
CREATE TABLE lead_context (
    lead_phone TEXT PRIMARY KEY,
    context    TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
