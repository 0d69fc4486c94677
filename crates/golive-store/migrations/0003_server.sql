-- What a server needs beside the deployments: the runbooks registered with
-- it, by the SHA-256 of their text (any process serving the store has the
-- text a deployment started from), the people who act, and their tokens
-- (API tokens and browser sessions), kept as SHA-256 hashes only.
CREATE TABLE IF NOT EXISTS runbooks (
    sha256   TEXT PRIMARY KEY,
    path     TEXT NOT NULL,
    text     TEXT NOT NULL,
    added_by TEXT NOT NULL,
    added_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS people (
    name       TEXT PRIMARY KEY,
    email      TEXT,
    roles      TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS tokens (
    id         TEXT PRIMARY KEY,
    hash       TEXT NOT NULL UNIQUE,
    person     TEXT NOT NULL,
    kind       TEXT NOT NULL,
    csrf       TEXT,
    created_at TEXT NOT NULL,
    expires_at TEXT,
    revoked_at TEXT
)
