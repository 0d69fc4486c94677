//! Sign-offs signed with the person's own SSH key, the way git signs
//! commits: the sign-off's canonical payload (the deployment, the item, the
//! result, the person, the role, the time, the hashes of the evidence and
//! of the check results approved, and the chain's head at that moment),
//! signed in the SSHSIG format under the namespace [`NAMESPACE`]
//! (`ssh-keygen -Y sign -n golive` makes one), kept in the event's
//! `ssh` field and checked against the person's keys on the roster
//! (`ssh_keys = ["ssh-ed25519 AAAA…"]`) when it is recorded and by every
//! `golive audit verify`.
//!
//! A signature proves what a hash chain alone cannot: someone able to
//! rewrite the whole chain and its head consistently cannot sign for the
//! people, so an event rewritten, a chain re-hashed before it, or a key not
//! the person's is named.

use golive_store::Event;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use ssh_key::{HashAlg, PublicKey, SshSig};

/// The SSHSIG namespace of golive's signatures.
pub const NAMESPACE: &str = "golive";

/// Signs a payload: the SSHSIG signature (armored), or why not.
pub type Signer<'a> = &'a (dyn Fn(&[u8]) -> Result<String, String> + Sync);

/// What a signed sign-off signs, as canonical JSON (keys sorted, no white
/// space): the same bytes for golive and for `ssh-keygen -Y verify`.
#[allow(clippy::too_many_arguments)]
pub fn payload(
    deployment: &str,
    item: &str,
    result: &str,
    person: &str,
    role: &str,
    at: &str,
    evidence: &Value,
    checks: &[Event],
    head: &str,
) -> String {
    let checks: Vec<&str> = checks.iter().map(|e| e.hash.as_str()).collect();
    json!({
        "golive": "signoff",
        "deployment": deployment,
        "item": item,
        "result": result,
        "person": person,
        "role": role,
        "at": at,
        "evidence_sha256": hex::encode(Sha256::digest(evidence.to_string())),
        "checks_sha256": hex::encode(Sha256::digest(checks.join(","))),
        "head": head,
    })
    .to_string()
}

/// The key among `keys` (OpenSSH public keys) that made `armored` over
/// `payload` in golive's namespace: its SHA-256 fingerprint, or what is
/// wrong.
pub fn verify(payload: &[u8], armored: &str, keys: &[String]) -> Result<String, String> {
    let sig =
        SshSig::from_pem(armored.trim()).map_err(|e| format!("not an SSH signature ({e})"))?;
    if sig.namespace() != NAMESPACE {
        return Err(format!(
            "signed for the namespace `{}`, not golive's (`{NAMESPACE}`)",
            sig.namespace()
        ));
    }
    let signer = PublicKey::from(sig.public_key().clone())
        .fingerprint(HashAlg::Sha256)
        .to_string();
    if keys.is_empty() {
        return Err(format!(
            "signed by {signer}, and the roster names no ssh_keys for the person"
        ));
    }
    for k in keys {
        let Ok(pk) = PublicKey::from_openssh(k) else {
            continue;
        };
        if pk.key_data() == sig.public_key() {
            return match pk.verify(NAMESPACE, payload, &sig) {
                Ok(()) => Ok(signer),
                Err(e) => Err(format!("the signature by {signer} does not verify ({e})")),
            };
        }
    }
    Err(format!(
        "signed by {signer}, which is not one of the person's keys on the roster"
    ))
}

/// One signed sign-off as `golive audit verify` judges it.
#[derive(Debug, Clone, PartialEq)]
pub struct Judged {
    pub seq: i64,
    pub item: String,
    pub person: String,
    /// The key's fingerprint, or what does not hold.
    pub verdict: Result<String, String>,
}

/// Every signed event of `events`, checked: its payload says what the event
/// says, the head it names is in the chain, the signature verifies with a
/// key of the person on `roster`.
pub fn judge(
    deployment: &golive_store::Deployment,
    events: &[Event],
    roster: &golive_engine::roster::Roster,
) -> Vec<Judged> {
    let mut out = Vec::new();
    for e in events.iter().filter(|e| e.data.get("ssh").is_some()) {
        let person = e.actor.clone().unwrap_or_default();
        let verdict = judge_one(deployment, events, e, roster);
        out.push(Judged {
            seq: e.seq,
            item: e.item.clone().unwrap_or_else(|| "the decision".into()),
            person,
            verdict,
        });
    }
    out
}

fn judge_one(
    deployment: &golive_store::Deployment,
    events: &[Event],
    e: &Event,
    roster: &golive_engine::roster::Roster,
) -> Result<String, String> {
    let text = e.data["ssh"]["payload"].as_str().ok_or("no payload")?;
    let sig = e.data["ssh"]["signature"].as_str().ok_or("no signature")?;
    let p: Value = serde_json::from_str(text).map_err(|_| "the payload is not JSON")?;
    let said = |k: &str| p[k].as_str().unwrap_or("").to_string();
    // the event says what was signed
    // a decision's signature approves the verdict; a sign-off its item
    let (item, result) = if e.kind == "decision.signature" {
        (
            "decision".to_string(),
            e.data["verdict"].as_str().unwrap_or("").to_string(),
        )
    } else {
        (
            e.item.clone().unwrap_or_default(),
            e.data["result"].as_str().unwrap_or("done").to_string(),
        )
    };
    let mismatch = [
        ("deployment", deployment.id.clone()),
        ("item", item),
        ("person", e.actor.clone().unwrap_or_default()),
        ("role", e.data["role"].as_str().unwrap_or("").to_string()),
        ("result", result),
    ]
    .into_iter()
    .find(|(k, v)| said(k) != *v);
    if let Some((k, v)) = mismatch {
        return Err(format!(
            "the event was rewritten: it says {k} `{v}`, the signed payload `{}`",
            said(k)
        ));
    }
    // the head it names is the chain's
    let head = said("head");
    let (seq, hash) = head.split_once(':').ok_or("the payload names no head")?;
    let seq: i64 = seq
        .parse()
        .map_err(|_| "the payload's head is no SEQ:HASH")?;
    let ours = if seq == 0 {
        Some(deployment.genesis.clone())
    } else {
        events.iter().find(|x| x.seq == seq).map(|x| x.hash.clone())
    };
    if seq >= e.seq || ours.as_deref() != Some(hash) {
        return Err(format!(
            "the chain was rewritten before it: the signature was made at head {head}, and the chain's event {seq} is not that one"
        ));
    }
    let keys = roster
        .person(&said("person"))
        .map(|p| p.ssh_keys.clone())
        .unwrap_or_default();
    verify(text.as_bytes(), sig, &keys)
}

/// The `allowed_signers` principal of a person: their name, lower case,
/// white space as dots (`Dana Lead` → `dana.lead`).
pub fn principal(name: &str) -> String {
    name.split_whitespace()
        .map(str::to_lowercase)
        .collect::<Vec<_>>()
        .join(".")
}
