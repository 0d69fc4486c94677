//! `golive report`: the recorded deployment rendered as the original document
//! filled in. A pure function from the runbook and the event log to text:
//!
//! ```text
//! - [x] **All PR gate criteria met**
//!   …
//!   - **Sign-off:** Mara Quist (Test Engineer, 2026-11-27 12:17 UTC)
//! …
//! - Code Readiness: 8/8 items complete
//! **TOTAL: 48/48 items complete** (Target: 48/48 = 100%)
//! ```
//!
//! Only checkboxes and blanks change; every other byte is the runbook's.

use golive_runbook::{Blank, Outcomes, Runbook, StageKind, export};
use golive_store::Event;
use std::collections::BTreeMap;

/// `2026-11-27 12:17 UTC` from an RFC 3339 time.
fn short_time(at: &str) -> String {
    at.parse::<jiff::Timestamp>()
        .map(|t| t.strftime("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_else(|_| at.to_string())
}

fn blank_named<'a>(blanks: &'a [Blank], key: &str) -> Option<&'a Blank> {
    blanks
        .iter()
        .find(|b| b.label.eq_ignore_ascii_case(key))
        .or_else(|| blanks.iter().find(|b| b.id.rsplit('#').next() == Some(key)))
}

/// The filled document.
pub fn render_markdown(rb: &Runbook, events: &[Event]) -> Result<String, String> {
    let mut out = Outcomes::default();
    let mut fills: BTreeMap<String, String> = BTreeMap::new();
    let mut checks: BTreeMap<&str, Vec<&Event>> = BTreeMap::new();
    let mut signed: BTreeMap<&str, &Event> = BTreeMap::new();
    for e in events {
        match e.kind.as_str() {
            "run.started" => checks.clear(),
            "check" => checks
                .entry(e.item.as_deref().unwrap_or(""))
                .or_default()
                .push(e),
            "signoff" => {
                signed.entry(e.item.as_deref().unwrap_or("")).or_insert(e);
            }
            _ => {}
        }
    }
    for (i, item) in rb.items.iter().enumerate() {
        let item_checks = checks.get(item.id.as_str());
        // measured values from the item's checks
        for c in item_checks.into_iter().flatten() {
            for (key, value) in c.data["fills"].as_object().into_iter().flatten() {
                if let (Some(b), Some(v)) = (blank_named(&item.blanks, key), value.as_str()) {
                    fills.insert(b.id.clone(), v.to_string());
                }
            }
        }
        let auto = item.annotations.iter().any(|a| {
            a.table
                .as_ref()
                .and_then(|t| t.get("auto_sign"))
                .and_then(|v| v.as_bool())
                == Some(true)
        });
        let passed = item_checks.is_some_and(|c| c.iter().all(|e| e.data["outcome"] == "passed"));
        let sign = signed.get(item.id.as_str());
        if let Some(s) = sign {
            let who = format!(
                "{} ({}, {})",
                s.actor.as_deref().unwrap_or("?"),
                s.data["role"].as_str().unwrap_or("?"),
                short_time(&s.at)
            );
            if let Some(b) = blank_named(&item.blanks, "Sign-off") {
                fills.insert(b.id.clone(), who);
            }
        }
        if item.marker.is_some() && !item.checked() && (sign.is_some() || (auto && passed)) {
            out.ticks.push((rb.items[i].address.clone(), true));
        }
    }
    decision(rb, events, &mut out, &mut fills);
    summary(rb, events, &mut fills);
    out.fills = fills.into_iter().collect();
    export(rb, &out).map_err(|e| e.to_string())
}

/// The decision: its box ticked, its signers and dates written in.
fn decision(
    rb: &Runbook,
    events: &[Event],
    out: &mut Outcomes,
    fills: &mut BTreeMap<String, String>,
) {
    let Some(stage) = rb.stages.iter().find(|s| s.kind == StageKind::Decision) else {
        return;
    };
    if let Some(d) = events.iter().find(|e| e.kind == "decision") {
        let verdict = d.data["verdict"].as_str().unwrap_or("");
        for &i in &stage.items {
            if rb.items[i].title.eq_ignore_ascii_case(verdict) && !rb.items[i].checked() {
                out.ticks.push((rb.items[i].address.clone(), true));
            }
        }
    }
    // `- Role: ____ Date: ____`: the role's blank, then its Date blank
    let blanks = &stage.loose.blanks;
    for sig in events.iter().filter(|e| e.kind == "decision.signature") {
        let role = sig.data["role"].as_str().unwrap_or("");
        // the last blank with the role's label is the Sign-offs line's
        if let Some(pos) = blanks
            .iter()
            .rposition(|b| b.label.eq_ignore_ascii_case(role))
        {
            fills.insert(
                blanks[pos].id.clone(),
                sig.actor.clone().unwrap_or_default(),
            );
            if let Some(date) = blanks.get(pos + 1).filter(|b| {
                b.label.eq_ignore_ascii_case("Date") && b.loc.line == blanks[pos].loc.line
            }) {
                fills.insert(date.id.clone(), short_time(&sig.at));
            }
        }
    }
}

/// `- Code Readiness: ____/8 items complete` and `TOTAL: ____/48`.
fn summary(rb: &Runbook, events: &[Event], fills: &mut BTreeMap<String, String>) {
    let Some(stage) = rb.stages.iter().find(|s| s.kind == StageKind::Decision) else {
        return;
    };
    let Some(pre) = rb
        .stages
        .iter()
        .find(|s| s.kind == StageKind::PreDeployment)
    else {
        return;
    };
    let counts = crate::deploy::group_completion(rb, events, pre);
    let mut total = 0;
    for (title, done) in &counts {
        total += done;
        if let Some(b) = blank_named(&stage.loose.blanks, title) {
            fills.insert(b.id.clone(), done.to_string());
        }
    }
    if let Some(b) = blank_named(&stage.loose.blanks, "TOTAL") {
        fills.insert(b.id.clone(), total.to_string());
    }
}
