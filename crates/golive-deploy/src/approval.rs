//! The approval rules a document can state, and their defaults, in one
//! place:
//!
//! - **How many people an item needs**: `**Responsible:** 2 of Security
//!   Engineer` (or `approvals = 2` in the item's `golive` block): two
//!   distinct people holding the role must sign it done. Default: one.
//! - **Self-approval**: `self_approval = false` in the document's `golive`
//!   block: the person who started the deployment may not sign its GO.
//!   Default: they may (a NO-GO is never refused for it).
//! - **Stale sign-offs**: a sign-off done is given over the outcomes its
//!   item's checks had then; when a later run gives an outcome that did not
//!   pass and is not one it approved, it is stale: it no longer counts, and
//!   the item needs signing again. `stale_signoffs = false` turns it off.
//!   Default: on.
//! - **Pending approvals**: an approval begun but not complete (the first
//!   of "2 of" signed, or some of the decision's signers) waits. After
//!   `remind_after` (`"30m"`) golive reminds the roles still to sign,
//!   through the channels that send the communication plan; after
//!   `expire_after` (`"4h"`) the signatures given expire and must be given
//!   again. Default: neither.

use crate::Kept;
use golive_runbook::Runbook;
use golive_store::{Event, NewEvent};
use serde_json::{Value, json};

/// What a person's sign-off says of the item: done (the default), not
/// applicable, or failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignResult {
    Done,
    /// `--na`: the item does not apply to this deployment (why, in the
    /// comment); set aside like a skipped item.
    NotApplicable,
    /// `--failed`: a person checked it and it failed (what, in the
    /// comment); a result a gate counts, not a completion.
    Failed,
}

impl SignResult {
    /// As events and reports spell it.
    pub fn name(self) -> &'static str {
        match self {
            SignResult::Done => "done",
            SignResult::NotApplicable => "na",
            SignResult::Failed => "failed",
        }
    }
}

/// The result a sign-off event records (older events have none: done).
pub fn signoff_result(e: &golive_store::Event) -> SignResult {
    match e.data["result"].as_str() {
        Some("na") => SignResult::NotApplicable,
        Some("failed") => SignResult::Failed,
        _ => SignResult::Done,
    }
}

/// The rules of one document.
#[derive(Debug, Clone, PartialEq)]
pub struct Rules {
    /// The person who started the deployment may sign its GO.
    pub self_approval: bool,
    /// A sign-off goes stale when its checks' outcomes change for the worse.
    pub stale_signoffs: bool,
    /// Seconds a pending approval waits before the roles are reminded.
    pub remind_after: Option<u64>,
    /// Seconds after which a pending approval's signatures expire.
    pub expire_after: Option<u64>,
}

/// The keys the rules are stated with, for lint.
pub const KEYS: &[&str] = &[
    "self_approval",
    "stale_signoffs",
    "remind_after",
    "expire_after",
    "approvals",
];

fn key<'a>(rb: &'a Runbook, name: &str) -> Option<&'a toml::Value> {
    rb.all_annotations()
        .filter_map(|a| a.table.as_ref()?.get(name))
        .next()
}

fn seconds(rb: &Runbook, name: &str) -> Option<u64> {
    let text = key(rb, name)?.as_str()?;
    golive_probe::parse_duration(text)
        .ok()
        .map(|d| d.as_secs().max(1))
}

/// The rules `rb` states, with the defaults for the rest.
pub fn rules(rb: &Runbook) -> Rules {
    Rules {
        self_approval: key(rb, "self_approval")
            .and_then(toml::Value::as_bool)
            .unwrap_or(true),
        stale_signoffs: key(rb, "stale_signoffs")
            .and_then(toml::Value::as_bool)
            .unwrap_or(true),
        remind_after: seconds(rb, "remind_after"),
        expire_after: seconds(rb, "expire_after"),
    }
}

/// The role an item names to sign it and how many distinct people of it
/// must: `**Responsible:** 2 of Security Engineer` is (`Security
/// Engineer`, 2); `approvals = N` in its block sets the number too.
pub fn responsible(rb: &Runbook, item: usize) -> (Option<String>, usize) {
    let it = &rb.items[item];
    let (role, n) = match it.field("Responsible").map(|f| f.value.trim()) {
        Some(v) if !v.is_empty() => {
            let (n, role) = of(v);
            (Some(role.to_string()), n)
        }
        _ => (None, 1),
    };
    let set = it
        .annotations
        .iter()
        .filter_map(|a| a.table.as_ref()?.get("approvals")?.as_integer())
        .next()
        .and_then(|n| usize::try_from(n).ok())
        .filter(|&n| n >= 1);
    (role, set.unwrap_or(n))
}

/// `2 of Security Engineer` → (2, `Security Engineer`); anything else is
/// one of itself.
fn of(v: &str) -> (usize, &str) {
    if let Some((n, role)) = v.split_once(" of ")
        && let Ok(n) = n.trim().parse::<usize>()
        && n >= 1
        && !role.trim().is_empty()
    {
        return (n, role.trim());
    }
    (1, v)
}

/// The outcomes of an item's checks in the last run that checked it, as a
/// sign-off given now approves them.
pub fn outcomes(k: &Kept, item: &str) -> Vec<String> {
    k.checks_of(item)
        .iter()
        .map(|e| e.data["outcome"].as_str().unwrap_or("error").to_string())
        .collect()
}

/// Whether the sign-off `e` is stale: a run after it gave its item's
/// checks an outcome that did not pass and that it did not approve.
pub fn stale(rules: &Rules, k: &Kept, e: &Event) -> bool {
    if !rules.stale_signoffs {
        return false;
    }
    let Some(item) = e.item.as_deref() else {
        return false;
    };
    let checks = k.checks_of(item);
    if checks.iter().all(|c| c.seq < e.seq) {
        return false;
    }
    let approved: Vec<&str> = e.data["approved"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    checks.iter().any(|c| {
        let o = c.data["outcome"].as_str().unwrap_or("error");
        o != "passed" && !approved.contains(&o)
    })
}

/// An approval begun and waiting for more signatures.
#[derive(Debug, Clone, PartialEq)]
pub struct Pending {
    /// The item's id, or `decision`.
    pub what: String,
    /// What people are shown: `2.1.3 Security scan` or `the GO decision`.
    pub label: String,
    /// The roles still to sign (a role twice when two more are needed).
    pub waiting: Vec<String>,
    /// Who signed so far.
    pub signed: Vec<String>,
    /// The first signature: its number and time.
    pub since_seq: i64,
    pub since: String,
    /// The signatures' event numbers.
    pub seqs: Vec<i64>,
}

/// Every approval begun and not complete: the "N of" items with fewer
/// distinct people signed, and a decision some of its signers signed.
pub fn pending(rb: &Runbook, k: &Kept, decision_roles: &[String]) -> Vec<Pending> {
    let rules = rules(rb);
    let mut out = Vec::new();
    for (i, it) in rb.items.iter().enumerate() {
        let (role, n) = responsible(rb, i);
        if n < 2 {
            continue;
        }
        // the sign-offs done that count: since the item was last failed,
        // and not stale
        let mut sigs: Vec<&Event> = Vec::new();
        for e in k
            .signoffs
            .iter()
            .filter(|e| e.item.as_deref() == Some(&it.id))
        {
            match signoff_result(e) {
                SignResult::Done if !stale(&rules, k, e) => sigs.push(e),
                SignResult::Failed => sigs.clear(),
                _ => {}
            }
        }
        let mut people: Vec<String> = Vec::new();
        for e in &sigs {
            if let Some(a) = &e.actor
                && !people.iter().any(|p| p.eq_ignore_ascii_case(a))
            {
                people.push(a.clone());
            }
        }
        if people.is_empty() || people.len() >= n {
            continue;
        }
        let role = role.unwrap_or_else(|| "signer".into());
        out.push(Pending {
            what: it.id.clone(),
            label: format!("{} {}", it.address, it.title),
            waiting: vec![role; n - people.len()],
            signed: people,
            since_seq: sigs[0].seq,
            since: sigs[0].at.clone(),
            seqs: sigs.iter().map(|e| e.seq).collect(),
        });
    }
    if k.decision.is_none()
        && let Some(first) = k.decision_signatures.first()
    {
        let signed_roles: Vec<String> = k
            .decision_signatures
            .iter()
            .filter_map(|e| e.data["role"].as_str().map(str::to_lowercase))
            .collect();
        let waiting: Vec<String> = decision_roles
            .iter()
            .filter(|r| !signed_roles.contains(&r.to_lowercase()))
            .cloned()
            .collect();
        if !waiting.is_empty() {
            out.push(Pending {
                what: "decision".into(),
                label: format!(
                    "the {} decision",
                    first.data["verdict"].as_str().unwrap_or("GO")
                ),
                waiting,
                signed: k
                    .decision_signatures
                    .iter()
                    .filter_map(|e| e.actor.clone())
                    .collect(),
                since_seq: first.seq,
                since: first.at.clone(),
                seqs: k.decision_signatures.iter().map(|e| e.seq).collect(),
            });
        }
    }
    out
}

fn waited(p: &Pending, now: jiff::Timestamp) -> Option<u64> {
    let since: jiff::Timestamp = p.since.parse().ok()?;
    let s = now.duration_since(since).as_secs();
    Some(s.max(0) as u64)
}

/// The pending approvals whose signatures have expired at `now`, as the
/// events that say so (their signatures no longer count).
pub fn expired(
    rb: &Runbook,
    k: &Kept,
    decision_roles: &[String],
    now: jiff::Timestamp,
) -> Vec<NewEvent> {
    let Some(after) = rules(rb).expire_after else {
        return Vec::new();
    };
    pending(rb, k, decision_roles)
        .into_iter()
        .filter(|p| waited(p, now).is_some_and(|w| w >= after))
        .map(|p| {
            let e = NewEvent::new(
                "approval.expired",
                json!({
                    "what": p.what, "label": p.label, "signatures": p.seqs,
                    "signed": p.signed, "waiting": p.waiting, "since": p.since,
                    "after_seconds": after,
                }),
            )
            .actor("golive");
            if p.what == "decision" {
                e
            } else {
                e.item(&p.what)
            }
        })
        .collect()
}

/// The pending approvals a reminder is due for at `now` (waiting for
/// `remind_after`, not expired yet), each with the key it is sent once
/// under: `reminder:WHAT:SEQ`.
pub fn reminders(
    rb: &Runbook,
    k: &Kept,
    decision_roles: &[String],
    now: jiff::Timestamp,
) -> Vec<(String, Pending)> {
    let r = rules(rb);
    let Some(after) = r.remind_after else {
        return Vec::new();
    };
    pending(rb, k, decision_roles)
        .into_iter()
        .filter(|p| {
            waited(p, now).is_some_and(|w| w >= after && r.expire_after.is_none_or(|x| w < x))
        })
        .map(|p| (format!("reminder:{}:{}", p.what, p.since_seq), p))
        .collect()
}

/// The refusal of a GO signed by the person who started the deployment,
/// when the document says they may not.
pub fn self_approval(rb: &Runbook, started_by: &str, person: &str, go: bool) -> Option<String> {
    (go && !rules(rb).self_approval && started_by.trim().eq_ignore_ascii_case(person.trim()))
        .then(|| {
            format!(
                "{person} started this deployment, and the document says its starter may not sign its GO (self_approval = false): another of the decision's signers signs"
            )
        })
}
