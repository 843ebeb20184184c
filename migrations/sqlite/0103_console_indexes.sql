-- The operator console's inbox (src/store/inbox.rs): which leads need a person is read from
-- partial indexes of what is open, so its cost is the open work, not the history. Pending
-- messages, holds and takeovers in force had theirs; these are the parks in force and the
-- breached SLAs not yet resolved (slas_breached keeps every breach ever, resolved or not).
CREATE INDEX lead_parks_in_force ON lead_parks (expires_at) WHERE unparked_at IS NULL;
CREATE INDEX slas_overdue ON slas (lead_phone) WHERE resolved_at IS NULL AND breached_at IS NOT NULL;
