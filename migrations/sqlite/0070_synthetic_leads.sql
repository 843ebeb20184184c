-- Synthetic leads (issue 11): the numbers `lead-agent watch` and `lead-agent verify` text
-- from to prove the whole path works. The webhook sets the flag when a signed request
-- carries `LeadAgentSynthetic=1` (a real Twilio request never does, and a forger would
-- need the auth token); once set it stays. The owner's report, followups and the SLA
-- sweep leave these leads out. Same column as migrations/postgres/0070.
ALTER TABLE leads ADD COLUMN synthetic INTEGER NOT NULL DEFAULT 0;
