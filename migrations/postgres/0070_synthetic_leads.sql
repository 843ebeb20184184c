-- Synthetic leads (issue 11): the numbers `lead-agent watch` and `lead-agent verify` text
-- from to prove the whole path works. The webhook sets the flag when a signed request
-- carries `LeadAgentSynthetic=1` (a real Twilio request never does, and a forger would
-- need the auth token); once set it stays. The owner's report, followups and the SLA
-- sweep leave these leads out. Same column as migrations/sqlite/0070. An integer like
-- `opted_out`, so one SQL text (`synthetic = 0`) serves both engines.
ALTER TABLE leads ADD COLUMN synthetic BIGINT NOT NULL DEFAULT 0;
