-- Who signed, proven. A browser session opened through an identity
-- provider remembers the provider's session and subject (SHA-256 of issuer
-- and value, never the values), so the provider's back-channel logout ends
-- it. A person's SSH public keys sign their sign-offs through the API.
CREATE TABLE IF NOT EXISTS provider_sessions (
    token_hash TEXT PRIMARY KEY,
    sid_hash   TEXT,
    sub_hash   TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS provider_sessions_sid ON provider_sessions (sid_hash);
CREATE INDEX IF NOT EXISTS provider_sessions_sub ON provider_sessions (sub_hash);
ALTER TABLE people ADD COLUMN ssh_keys TEXT
