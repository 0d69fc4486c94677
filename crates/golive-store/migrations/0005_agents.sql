-- Probe agents: checks run from where the users are. A job is one check of
-- a deployment's run at one location. The agents of that location claim
-- jobs (a lease, in epoch milliseconds), run them and report, and a job
-- whose lease ran out is claimed by another. An agent's heartbeat says its
-- location is observed. Agents' tokens are kept in tokens (kind agent).
CREATE TABLE IF NOT EXISTS agents (
    name       TEXT PRIMARY KEY,
    location   TEXT NOT NULL,
    last_seen  BIGINT,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS jobs (
    id            TEXT PRIMARY KEY,
    deployment_id TEXT NOT NULL,
    run           BIGINT NOT NULL,
    item          TEXT NOT NULL,
    line          BIGINT NOT NULL,
    location      TEXT NOT NULL,
    state         TEXT NOT NULL,
    agent         TEXT,
    lease_until   BIGINT,
    attempts      BIGINT NOT NULL,
    created_ms    BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_queue ON jobs (location, state, lease_until)
