-- Each alert's Discord nonce, chosen when the alert is raised, as in migrations/sqlite/0072:
-- the same on the direct path and in the spool; NULL for rows spooled before (derived from
-- id + created_at); unique, so a repeated hand-over stores the alert once.
ALTER TABLE alert_spool ADD COLUMN nonce TEXT;
CREATE UNIQUE INDEX alert_spool_nonce ON alert_spool (nonce);
