-- Each alert's Discord nonce, chosen when the alert is raised (issue 11): an alert that
-- went to Discord directly while the store was down, then into the spool when it came
-- back, carries the same nonce on both paths, so Discord (`enforce_nonce`) creates it once.
-- NULL for rows spooled before this migration: their nonce is derived from id + created_at,
-- as it was when they were spooled. Unique, so handing the same alert over twice (a commit
-- whose answer was lost, then retried) stores it once.
ALTER TABLE alert_spool ADD COLUMN nonce TEXT;
CREATE UNIQUE INDEX alert_spool_nonce ON alert_spool (nonce);
