-- Results of `lead-agent verify --record`, reported to the service so the /ops page can
-- show the last verification. DEPLOYMENT_STATE.md keeps the same record outside the code.
CREATE TABLE verifications (
    id          BIGSERIAL PRIMARY KEY,
    verified_at TIMESTAMPTZ NOT NULL,
    url         TEXT NOT NULL,
    passed      BOOLEAN NOT NULL,
    report      TEXT NOT NULL
);
