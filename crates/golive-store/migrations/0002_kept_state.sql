-- Each deployment's state, kept up to date by every append in the same
-- transaction: commands read it instead of replaying the event log. It is
-- derived: the chain stays the source of truth, `golive audit verify`
-- compares the two, `golive audit rebuild` writes it again from the chain.
CREATE TABLE IF NOT EXISTS deployment_state (
    deployment_id TEXT PRIMARY KEY,
    seq           BIGINT NOT NULL,
    hash          TEXT NOT NULL,
    state         TEXT NOT NULL
)
