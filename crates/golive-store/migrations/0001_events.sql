-- Deployments and their append-only, hash-chained event log.
-- Portable between SQLite and PostgreSQL: text for times (RFC 3339) and JSON.
CREATE TABLE IF NOT EXISTS deployments (
    id             TEXT PRIMARY KEY,
    runbook_path   TEXT NOT NULL,
    runbook_sha256 TEXT NOT NULL,
    started_by     TEXT NOT NULL,
    created_at     TEXT NOT NULL,
    vars           TEXT NOT NULL,
    head_seq       BIGINT NOT NULL,
    head_hash      TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS events (
    deployment_id TEXT NOT NULL,
    seq           BIGINT NOT NULL,
    at            TEXT NOT NULL,
    kind          TEXT NOT NULL,
    item          TEXT,
    actor         TEXT,
    data          TEXT NOT NULL,
    prev_hash     TEXT NOT NULL,
    hash          TEXT NOT NULL,
    PRIMARY KEY (deployment_id, seq)
);
