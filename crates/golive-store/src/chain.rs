//! The hash chain: what an event's hash covers, and how a chain is checked.

use sha2::{Digest, Sha256};

/// The hash the first event of a deployment links to: bound to the
/// deployment, so one deployment's chain cannot be spliced into another's.
pub fn genesis(deployment: &str) -> String {
    hex::encode(Sha256::digest(
        format!("golive genesis {deployment}").as_bytes(),
    ))
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
        }
    }
}
