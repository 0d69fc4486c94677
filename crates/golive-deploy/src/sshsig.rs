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

/// Signs a payload: the SSHSIG signature, or why not.
pub type Signer<'a> = &'a (dyn Fn(&[u8]) -> Result<Signed, String> + Sync);

/// A signature a [`Signer`] gives.
#[derive(Debug, Clone, PartialEq)]
pub struct Signed {
    /// Armored (`-----BEGIN SSH SIGNATURE-----`).
    pub signature: String,
    /// The payload it signs when it is not the one the signer was given: a
    /// signature made beforehand by the person (through the API), over
    /// the payload golive gave them then. It must name the same act at the
    /// same head, made at most ten minutes from now.
    pub payload: Option<String>,
}

impl Signed {
    /// A signature over the payload the signer was given.
    pub fn over_given(signature: String) -> Signed {
        Signed {
            signature,
            payload: None,
        }
    }
}

/// How far from now a signature made beforehand may say it was made.
const PRESIGNED_SECONDS: i64 = 600;

/// Whether `theirs`, a payload signed beforehand, signs the act `ours`
/// (made now) signs: every field alike but the time, which is at most ten
/// minutes from `now`. What is wrong, else.
pub fn same_act(ours: &str, theirs: &str, now: jiff::Timestamp) -> Result<(), String> {
    let a: Value = serde_json::from_str(ours).map_err(|_| "golive's payload is not JSON")?;
    let b: Value =
        serde_json::from_str(theirs).map_err(|_| "the signed payload is not golive's JSON")?;
    if canonical(&b) != theirs {
        return Err("the signed payload is not in golive's canonical form: sign the payload GET …/payload gives, byte for byte".into());
    }
    if a["head"] != b["head"] {
        return Err(format!(
            "the payload was made at head {}, and the deployment is at {} now: get the payload again and sign it",
            b["head"].as_str().unwrap_or("?"),
            a["head"].as_str().unwrap_or("?")
        ));
    }
    if let Some(k) = a
        .as_object()
        .into_iter()
        .flat_map(|o| o.keys())
        .find(|k| *k != "at" && a[k.as_str()] != b[k.as_str()])
    {
        return Err(format!(
            "the signed payload's {k} is `{}`, and this act's is `{}`",
            b[k.as_str()].as_str().unwrap_or("?"),
            a[k.as_str()].as_str().unwrap_or("?")
        ));
    }
    let at: jiff::Timestamp = b["at"]
        .as_str()
        .and_then(|t| t.parse().ok())
        .ok_or("the signed payload's time (`at`) is not RFC 3339")?;
    if now.duration_since(at).as_secs().abs() > PRESIGNED_SECONDS {
        return Err(format!(
            "the signature was made at {at}, more than ten minutes from now: get the payload again and sign it"
        ));
    }
    Ok(())
}

/// A JSON value as golive's payloads are written: keys sorted, no white
/// space (serde_json's map keeps keys sorted).
fn canonical(v: &Value) -> String {
    v.to_string()
}

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
            item: e.item.clone().unwrap_or_else(|| {
                match e.kind.as_str() {
                    "decision.signature" => "the decision",
                    "deployment.ended" => "the end",
                    _ => "the rollback",
                }
                .into()
            }),
            person,
            verdict,
        });
    }
    out
}

/// What an event signs, as its payload names it: the item (`decision`,
/// `rollback`, `finish` for the deployment's own acts) and the result, the
/// verdict, `rollback`/`continue`, or the outcome. The one reading of it,
/// for signing and for judging.
pub fn what_of(e_kind: &str, item: Option<&str>, data: &Value) -> (String, String) {
    let s = |k: &str, or: &str| data[k].as_str().unwrap_or(or).to_string();
    match e_kind {
        "decision.signature" => ("decision".into(), s("verdict", "")),
        "rollback.signature" | "rollback.started" => ("rollback".into(), "rollback".into()),
        "rollback.continue" => ("rollback".into(), "continue".into()),
        "deployment.ended" => ("finish".into(), s("outcome", "")),
        _ => (item.unwrap_or_default().to_string(), s("result", "done")),
    }
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
    let (item, result) = what_of(&e.kind, e.item.as_deref(), &e.data);
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

/// A public key as ssh-keygen writes it (`ssh-ed25519 AAAA… comment`):
/// its SHA-256 fingerprint, or what is wrong with it.
pub fn fingerprint(key: &str) -> Result<String, String> {
    PublicKey::from_openssh(key.trim())
        .map(|k| k.fingerprint(HashAlg::Sha256).to_string())
        .map_err(|e| format!("not an SSH public key as ssh-keygen writes it ({e}): `ssh-ed25519 AAAA… comment`, the line of the .pub file"))
}

/// The `allowed_signers` principal of a person: their name, lower case,
/// white space as dots (`Dana Lead` → `dana.lead`).
pub fn principal(name: &str) -> String {
    name.split_whitespace()
        .map(str::to_lowercase)
        .collect::<Vec<_>>()
        .join(".")
}
