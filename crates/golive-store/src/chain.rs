//! The hash chain: what an event's hash covers, and how a chain is checked.

use sha2::{Digest, Sha256};

/// Where a deployment's chain starts: the hash of the deployment's own row
/// (its id, runbook path and hash, variables as stored, who started it and
/// when). Its first event links to it, so an edit of the row breaks the
/// chain at its start, and one deployment's chain cannot be spliced into
/// another's.
pub fn row_genesis(
    id: &str,
    runbook_path: &str,
    runbook_sha256: &str,
    started_by: &str,
    created_at: &str,
    vars: &str,
) -> String {
    let mut h = Sha256::new();
    // a JSON array, as for events: no two different rows give the same input
    let _ = serde_json::to_writer(
        &mut h,
        &(
            "golive deployment",
            id,
            runbook_path,
            runbook_sha256,
            started_by,
            created_at,
            vars,
        ),
    );
    hex::encode(h.finalize())
}

/// Where the chain of a deployment recorded by an older golive starts: a
/// hash of its id alone, which leaves the rest of its row outside the chain.
/// Such deployments still verify; their row is reported as not covered.
pub fn legacy_genesis(deployment: &str) -> String {
    hex::encode(Sha256::digest(
        format!("golive genesis {deployment}").as_bytes(),
    ))
}

/// A point of a deployment's chain: `SEQ:HASH`, as `golive status`, every
/// report and every alert print it (the first [`Head::SHOWN`] hex digits of
/// the hash). Kept somewhere else, it lets `golive audit verify --head`
/// prove later that the chain still reaches it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub seq: i64,
    /// The whole hash, or a prefix of at least [`Head::MIN_GIVEN`] digits.
    pub hash: String,
}

impl Head {
    /// Hex digits shown: 64 bits, so that a chain rewritten to end at a row
    /// showing the same digits takes about 2^64 hashes to find.
    pub const SHOWN: usize = 16;
    /// The fewest hex digits a head given back may have.
    pub const MIN_GIVEN: usize = 12;

    pub fn new(seq: i64, hash: &str) -> Head {
        Head {
            seq,
            hash: hash.to_string(),
        }
    }

    /// Whether the row `seq` with `hash` is this head.
    pub fn matches(&self, seq: i64, hash: &str) -> bool {
        seq == self.seq && hash.starts_with(&self.hash)
    }
}

impl std::fmt::Display for Head {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = Head::SHOWN.min(self.hash.len());
        write!(f, "{}:{}", self.seq, &self.hash[..n])
    }
}

impl std::str::FromStr for Head {
    type Err = String;

    fn from_str(s: &str) -> Result<Head, String> {
        let bad = |why: &str| {
            format!(
                "`{s}` is not a head: {why}; write SEQ:HASH as golive status prints it (e.g. 42:3fa9c0d1e2b3a4f5), with at least {} hex digits of the hash",
                Head::MIN_GIVEN
            )
        };
        let (seq, hash) = s.trim().split_once(':').ok_or_else(|| bad("no `:`"))?;
        let seq: i64 = seq
            .parse()
            .ok()
            .filter(|n| *n >= 0)
            .ok_or_else(|| bad("the sequence number before `:` is not a number"))?;
        let hash = hash.to_ascii_lowercase();
        if !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad("the hash after `:` is not hexadecimal"));
        }
        if hash.len() < Head::MIN_GIVEN || hash.len() > 64 {
            return Err(bad(&format!("the hash has {} hex digits", hash.len())));
        }
        Ok(Head { seq, hash })
    }
}

/// SHA-256 over every field of an event and its predecessor's hash, encoded
/// as a JSON array so that no two different rows give the same input.
#[allow(clippy::too_many_arguments)]
pub fn event_hash(
    prev_hash: &str,
    deployment: &str,
    seq: i64,
    at: &str,
    kind: &str,
    item: Option<&str>,
    actor: Option<&str>,
    data: &str,
) -> String {
    let hex = event_hash_hex(prev_hash, deployment, seq, at, kind, item, actor, data);
    String::from_utf8_lossy(&hex).into_owned()
}

/// [`event_hash`] into a buffer on the stack: verifying a long chain
/// compares a million of them and allocates none.
#[allow(clippy::too_many_arguments)]
pub(crate) fn event_hash_hex(
    prev_hash: &str,
    deployment: &str,
    seq: i64,
    at: &str,
    kind: &str,
    item: Option<&str>,
    actor: Option<&str>,
    data: &str,
) -> [u8; 64] {
    // serialised straight into the hasher: the same bytes as the JSON array
    // text, without building it
    let mut h = Sha256::new();
    let _ = serde_json::to_writer(
        &mut h,
        &(prev_hash, deployment, seq, at, kind, item, actor, data),
    );
    let mut out = [0u8; 64];
    // 32 bytes always fit 64 hex digits
    let _ = hex::encode_to_slice(h.finalize(), &mut out);
    out
}

/// What is wrong with a chain, at which row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The sequence number of the first row that does not hold.
    pub seq: i64,
    pub kind: ViolationKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ViolationKind {
    /// The row's content does not match its hash: edited (or moved).
    Edited,
    /// Rows before this one are missing.
    Deleted,
    /// The row does not link to the one before it: reordered or inserted.
    OutOfOrder,
    /// The log ends before the deployment's recorded head: rows at the end
    /// were deleted.
    Truncated,
    /// The deployment's own row (runbook, variables, who, when) no longer
    /// hashes to where its chain starts. Its seq is 0.
    DeploymentRow,
    /// The chain does not reach a head kept elsewhere: rows at the end were
    /// removed (the recorded head set back with them), or it was rewritten.
    Unreached,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.kind {
            ViolationKind::Edited => write!(
                f,
                "event {} was edited: its content does not match its hash",
                self.seq
            ),
            ViolationKind::Deleted => write!(
                f,
                "event {} was deleted: the log skips from {} to the next row",
                self.seq,
                self.seq - 1
            ),
            ViolationKind::OutOfOrder => {
                write!(
                    f,
                    "event {} does not follow the event before it: rows were reordered or inserted",
                    self.seq
                )
            }
            ViolationKind::Truncated => write!(
                f,
                "events from {} on were deleted: the log ends before its recorded head",
                self.seq
            ),
            ViolationKind::DeploymentRow => write!(
                f,
                "the deployment row was edited: its runbook path or hash, variables, starter or start time no longer match the hash its chain starts from"
            ),
            ViolationKind::Unreached => write!(
                f,
                "the chain no longer reaches the kept head at event {}: events were removed from its end (and the recorded head set back), or it was rewritten",
                self.seq
            ),
        }
    }
}
