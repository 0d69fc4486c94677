//! `golive report`: the recorded deployment rendered as the original document
//! filled in. A pure function from the runbook and the event log to text:
//!
//! ```text
//! - [x] **All PR gate criteria met**
//!   …
//!   - **Sign-off:** Second Lead (Test Engineer, 2026-11-27 12:17 UTC)
//! …
//! - Code Readiness: 8/8 items complete
//! **TOTAL: 48/48 items complete** (Target: 48/48 = 100%)
//! ```
//!
//! Only checkboxes and blanks change; every other byte is the runbook's, and
//! a last line names the record's head:
//!
//! ```text
//! Recorded by golive: deployment `d-20261127T121700-6b385333`, head `42:3fa9c0d1e2b3a4f5` (…)
//! ```
//!
//! Every format carries the head (`SEQ:HASH`, the chain's last event as
//! rendered): kept elsewhere, `golive audit verify ID --head SEQ:HASH` proves
//! later that the record still reaches it.

use golive_deploy::{Kept, lifecycle};
use golive_runbook::export::{Patch, apply, patches};
use golive_runbook::{Blank, Outcomes, Runbook, StageKind};
use golive_store::{Event, Head};
use std::collections::BTreeMap;

/// The head of the record as rendered: its last event, or the deployment's
/// own head before any.
pub fn head(d: &golive_store::Deployment, events: &[Event]) -> Head {
    events
        .last()
        .map_or_else(|| d.head(), |e| Head::new(e.seq, &e.hash))
}

/// The head of the record a state was read at, or the deployment's own
/// before any event.
pub fn kept_head(d: &golive_store::Deployment, k: &Kept) -> Head {
    if k.seq == 0 {
        d.head()
    } else {
        Head::new(k.seq, &k.hash)
    }
}

/// The line that ends the filled Markdown and the status message.
fn head_line(id: &str, head: &Head) -> String {
    format!(
        "Recorded by golive: deployment `{id}`, head `{head}` (keep it: `golive audit verify {id} --head {head}` proves later that the record still reaches it)"
    )
}

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

/// The filled document, and the line naming the record's head.
pub fn render_markdown(
    rb: &Runbook,
    d: &golive_store::Deployment,
    events: &[Event],
) -> Result<String, String> {
    let mut out = Outcomes::default();
    let mut fills: BTreeMap<String, String> = BTreeMap::new();
    let k = Kept::replay(events);
    let states = lifecycle::states(rb, &k);
    // each item's latest sign-off, when it signed the item done
    let signed: BTreeMap<&str, &Event> = lifecycle::latest_signoffs(&k)
        .into_iter()
        .filter(|(_, e)| lifecycle::signoff_result(e) == lifecycle::SignResult::Done)
        .collect();
    for (i, item) in rb.items.iter().enumerate() {
        let item_checks = k.checks.get(&item.id).map(|c| &c.events);
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
        // a smoke test or post-deployment check is done when its checks pass
        let gate_stage = matches!(
            rb.stages[item.stage].kind,
            StageKind::Smoke | StageKind::Verification
        );
        if let Some(last) = item_checks.and_then(|c| c.last())
            && let Some(b) = blank_named(&item.blanks, "Time")
        {
            fills
                .entry(b.id.clone())
                .or_insert_with(|| short_time(&last.at));
        }
        // a sign-off ticks only what may be signed (a sign-off of GO or
        // NO-GO recorded by an older golive ticks nothing)
        let done = states
            .get(&item.id)
            .is_some_and(|st| !st.signed_by.is_empty() && st.set_aside.is_none());
        let signed = done && sign.is_some() && lifecycle::signable(rb, i).is_ok();
        if item.marker.is_some() && !item.checked() && (signed || (passed && (auto || gate_stage)))
        {
            out.ticks.push((rb.items[i].address.clone(), true));
        }
    }
    sent_notices(rb, &k, &mut out, &mut fills);
    decision(rb, events, &mut out, &mut fills);
    stage_signoffs(rb, &k, &mut fills);
    summary(rb, events, &mut fills);
    results(rb, events, &mut fills);
    out.fills = fills.into_iter().collect();
    let mut all = patches(rb, &out).map_err(|e| e.to_string())?;
    all.extend(status_line(rb, events));
    all.extend(choice_lines(rb, events));
    all.extend(item_notes(rb, &k, &signed));
    all.extend(deployment_log(rb, events));
    let mut text = apply(&rb.source, all).map_err(|e| e.to_string())?;
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    let newline = if rb.source.contains("\r\n") {
        "\r\n"
    } else {
        "\n"
    };
    text.push_str(&format!(
        "{newline}---{newline}{newline}{}{newline}",
        head_line(&d.id, &head(d, events))
    ));
    Ok(text)
}

/// The communication plan's items golive's messages fulfilled: ticked, and
/// their `Sent by` (or `Completed by`) and `Time` blanks filled with
/// `golive` and the time of the first delivery.
fn sent_notices(rb: &Runbook, k: &Kept, out: &mut Outcomes, fills: &mut BTreeMap<String, String>) {
    for (id, sent) in k.sent_items() {
        let time = sent
            .at
            .parse::<jiff::Timestamp>()
            .map(|t| t.strftime("%H:%M UTC").to_string())
            .unwrap_or_default();
        match rb.items.iter().find(|i| i.id == id) {
            Some(item) => {
                if item.marker.is_some()
                    && !item.checked()
                    && !out.ticks.iter().any(|(a, _)| *a == item.address)
                {
                    out.ticks.push((item.address.clone(), true));
                }
                for label in ["Sent by", "Completed by"] {
                    if let Some(b) = blank_named(&item.blanks, label) {
                        fills.insert(b.id.clone(), "golive".into());
                    }
                }
                if let Some(b) = blank_named(&item.blanks, "Time") {
                    fills.insert(b.id.clone(), time.clone());
                }
            }
            // a sub-check (`ITEM/N`)
            None => out.ticks.push((id, true)),
        }
    }
}

/// Choice lines that say how the deployment ended, answered once it has:
/// `**Deployment Status:** SUCCESS / ROLLBACK / PARTIAL` becomes `SUCCESS`,
/// `☐ Success ☐ Rolled Back` gets its box ticked, `HEALTHY / DEGRADED /
/// CRITICAL` of a Production Health line becomes the health `finish`
/// recorded. A line none of whose choices names the end stays as written.
fn choice_lines(rb: &Runbook, events: &[Event]) -> Vec<Patch> {
    let Some(ended) = events.iter().rev().find(|e| e.kind == "deployment.ended") else {
        return Vec::new();
    };
    let outcome = ended.data["outcome"].as_str().unwrap_or("");
    let health = ended.data["health"].as_str().unwrap_or("");
    let fields = rb
        .header
        .fields
        .iter()
        .chain(rb.stages.iter().flat_map(|s| {
            s.loose
                .fields
                .iter()
                .chain(s.groups.iter().flat_map(|g| g.loose.fields.iter()))
        }))
        .chain(rb.items.iter().flat_map(|i| i.fields.iter()));
    let mut out = Vec::new();
    for f in fields.filter(|f| !f.choices.is_empty()) {
        let label = f.label.to_lowercase();
        let pick = |want: &dyn Fn(&str) -> bool| f.choices.iter().find(|c| want(&c.to_lowercase()));
        let chosen = if label.contains("health") {
            pick(&|c| !health.is_empty() && c == health.to_lowercase())
        } else if ["status", "outcome", "result"]
            .iter()
            .any(|w| label.contains(w))
        {
            match outcome {
                "SUCCESS" => pick(&|c| {
                    [
                        "success",
                        "succeeded",
                        "successful",
                        "released",
                        "fixed",
                        "complete",
                        "completed",
                        "done",
                    ]
                    .contains(&c)
                }),
                "ROLLED BACK" => pick(&|c| c.contains("roll")),
                _ => None,
            }
        } else {
            None
        };
        if let Some(c) = chosen
            && let Some(p) = choose(&rb.source, f, c)
        {
            out.push(p);
        }
    }
    out
}

/// The patch that answers a choice line with `chosen`: its box ticked, or
/// the choices replaced by the one chosen.
fn choose(src: &str, f: &golive_runbook::Field, chosen: &str) -> Option<Patch> {
    let text = &src[f.loc.start..f.loc.end];
    let at = f.loc.start + text.find(chosen)?;
    let before = &src[f.loc.start..at];
    // the open box nearest before the choice is its box
    if let Some((i, open)) = golive_runbook::text::OPEN_BOXES
        .iter()
        .filter_map(|b| before.rfind(b).map(|i| (i, *b)))
        .max_by_key(|(i, _)| *i)
    {
        let start = f.loc.start + i;
        return Some(Patch {
            start,
            end: start + open.len(),
            text: golive_runbook::text::box_ticked(open, true)?.to_string(),
            line: f.loc.line,
        });
    }
    let first = f.loc.start + text.find(f.choices.first()?.as_str())?;
    let last = f.choices.last()?;
    let end = f.loc.start + text.rfind(last.as_str())? + last.len();
    (first <= at && at < end).then(|| Patch {
        start: first,
        end,
        text: chosen.to_string(),
        line: f.loc.line,
    })
}

/// The role blocks of a stage's sign-off (`**Deployment Lead:**` then Name,
/// Signature, Date lines), filled for each role that signed: the blocks are
/// in the order of the stage's signers, so the k-th Name blank is the k-th
/// role's. A stage whose blanks are not one set per role is left as is.
fn stage_signoffs(rb: &Runbook, k: &Kept, fills: &mut BTreeMap<String, String>) {
    for so in lifecycle::stage_signoffs(rb, k) {
        let stage = &rb.stages[so.stage];
        let blanks: Vec<&Blank> = stage
            .loose
            .blanks
            .iter()
            .chain(stage.groups.iter().flat_map(|g| g.loose.blanks.iter()))
            .collect();
        let of = |label: &dyn Fn(&str) -> bool| -> Vec<&Blank> {
            blanks
                .iter()
                .copied()
                .filter(|b| label(&b.label.to_lowercase()))
                .collect()
        };
        let names = of(&|l| l == "name");
        let signatures = of(&|l| l == "signature");
        let dates = of(&|l| l.starts_with("date") || l == "time");
        let comments = of(&|l| l == "comments" || l == "comment");
        let roles = &stage.signers;
        if signatures.len() != roles.len() {
            continue;
        }
        for (role, e) in &so.signed {
            let Some(n) = roles.iter().position(|r| r == role) else {
                continue;
            };
            let who = e.actor.clone().unwrap_or_default();
            if let Some(b) = names.get(n) {
                fills.insert(b.id.clone(), who.clone());
            }
            fills.insert(
                signatures[n].id.clone(),
                format!("signed in golive by {who} ({role})"),
            );
            if let Some(b) = dates.get(n) {
                fills.insert(b.id.clone(), short_time(&e.at));
            }
            if let (Some(b), Some(c)) = (comments.get(n), e.data["comment"].as_str()) {
                fills.insert(b.id.clone(), c.to_string());
            }
        }
    }
}

/// What a reader needs beside each task, at the end of its line: who
/// signed it done and when (unless its own `Sign-off` blank says so), and
/// an override of failed checks; a task that failed says what failed and
/// who saw it; one set aside (`golive skip`, `--na`, an option not chosen)
/// stays unticked and says why: `— *N/A: no flags (Ann)*`.
fn item_notes(rb: &Runbook, k: &Kept, signed: &BTreeMap<&str, &Event>) -> Vec<Patch> {
    let aside = lifecycle::set_aside(rb, k);
    let latest = lifecycle::latest_signoffs(k);
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| if c.is_control() || c == '*' { ' ' } else { c })
            .collect::<String>()
            .trim()
            .to_string()
    };
    let mut out = Vec::new();
    for (i, it) in rb.items.iter().enumerate() {
        if it.kind != golive_runbook::ItemKind::Task {
            continue;
        }
        let last = latest.get(it.id.as_str());
        let who = |e: &Event| {
            format!(
                "{}, {}, {}",
                e.actor.as_deref().unwrap_or("?"),
                e.data["role"].as_str().unwrap_or("?"),
                short_time(&e.at)
            )
        };
        let note = if let Some(why) = aside.get(&i) {
            match why.strip_prefix("N/A: ") {
                Some(na) => format!(
                    "N/A: {}{}",
                    clean(na),
                    last.map(|e| format!(" ({})", who(e))).unwrap_or_default()
                ),
                None => format!("set aside: {}", clean(why)),
            }
        } else if let Some(e) =
            last.filter(|e| lifecycle::signoff_result(e) == lifecycle::SignResult::Failed)
        {
            format!(
                "FAILED: {} ({})",
                clean(e.data["comment"].as_str().unwrap_or("")),
                who(e)
            )
        } else if let Some(e) = signed.get(it.id.as_str()) {
            let has_blank = blank_named(&it.blanks, "Sign-off").is_some();
            let overrode = e.data["override"] == true;
            if has_blank && !overrode {
                continue;
            }
            let mut n = format!("signed by {}", who(e));
            if overrode {
                n.push_str(&format!(
                    ", overriding its failed checks: {}",
                    clean(e.data["comment"].as_str().unwrap_or(""))
                ));
            }
            n
        } else {
            continue;
        };
        let rest = &rb.source[it.loc.start..];
        let end = it.loc.start + rest.find(['\r', '\n']).unwrap_or(rest.len());
        out.push(Patch {
            start: end,
            end,
            text: format!(" — *{note}*"),
            line: it.loc.line,
        });
    }
    out
}

/// The header's `**Status:** PENDING` becomes the deployment's state.
fn status_line(rb: &Runbook, events: &[Event]) -> Option<Patch> {
    let f = rb
        .header
        .fields
        .iter()
        .find(|f| f.label.eq_ignore_ascii_case("Status"))?;
    let text = &rb.source[f.loc.start..f.loc.end];
    let colon = text.find(":**")? + 3;
    let lead = text[colon..].len() - text[colon..].trim_start().len();
    let start = f.loc.start + colon + lead;
    let end = f.loc.start + text.trim_end().len();
    (start < end).then(|| Patch {
        start,
        end,
        text: lifecycle::state(&Kept::replay(events)).to_string(),
        line: f.loc.line,
    })
}

/// Smoke Test Summary and Final Sign-off blanks: passed, failed, duration.
/// The document's own lines about the end, wherever they stand (the header,
/// a stage, a group), once the deployment has ended: a `Completion Time` (or
/// `End Time`, `Finish Time`) blank gets the end's time, a `Deployment
/// Status` (or `Outcome`, `Result`) blank the outcome, and a `ROLE
/// Signature` blank the GO signature of that role (name and time), else the
/// name of whoever ended it.
fn end_lines(rb: &Runbook, k: &Kept, fills: &mut BTreeMap<String, String>) {
    let Some(end) = &k.ended else { return };
    let loose = std::iter::once(&rb.header)
        .chain(rb.stages.iter().map(|s| &s.loose))
        .chain(
            rb.stages
                .iter()
                .flat_map(|s| s.groups.iter().map(|g| &g.loose)),
        );
    let state = lifecycle::state(k);
    for b in loose.flat_map(|l| l.blanks.iter()) {
        let label = b.label.trim().trim_end_matches(':').to_lowercase();
        let value = if ["completion time", "end time", "finish time", "completed at"]
            .contains(&label.as_str())
        {
            short_time(&end.at)
        } else if ["deployment status", "outcome", "result", "final status"]
            .contains(&label.as_str())
        {
            state.to_string()
        } else if let Some(role) = label.strip_suffix(" signature") {
            let sig = k.decision_signatures.iter().find(|e| {
                e.data["role"]
                    .as_str()
                    .is_some_and(|r| r.eq_ignore_ascii_case(role.trim()))
            });
            match sig {
                Some(e) => format!(
                    "{} ({}, {})",
                    e.actor.as_deref().unwrap_or("?"),
                    e.data["role"].as_str().unwrap_or("?"),
                    short_time(&e.at)
                ),
                None => match end.actor.as_deref() {
                    Some(who) => format!("{who} ({})", short_time(&end.at)),
                    None => continue,
                },
            }
        } else {
            continue;
        };
        fills.entry(b.id.clone()).or_insert(value);
    }
}

fn results(rb: &Runbook, events: &[Event], fills: &mut BTreeMap<String, String>) {
    let k = Kept::replay(events);
    end_lines(rb, &k, fills);
    let (smoke_passed, smoke_total) = lifecycle::stage_passed(rb, &k, StageKind::Smoke);
    let (verified, _) = lifecycle::stage_passed(rb, &k, StageKind::Verification);
    let gate_ran = |stage: &str| {
        events
            .iter()
            .any(|e| e.kind == "gate" && e.data["stage"] == stage)
    };
    let ended = events.iter().rev().find(|e| e.kind == "deployment.ended");
    for s in &rb.stages {
        let mut put = |label: &str, value: String| {
            if let Some(b) = blank_named(&s.loose.blanks, label) {
                fills.insert(b.id.clone(), value);
            }
        };
        if s.kind == StageKind::Smoke && s.all_items().next().is_none() && gate_ran("smoke") {
            put("Passed", smoke_passed.to_string());
            put("Failed", (smoke_total - smoke_passed).to_string());
            put("Blocked", "0".into());
        }
        if s.kind == StageKind::SignOff {
            if gate_ran("smoke") {
                put("Smoke Test Results", smoke_passed.to_string());
            }
            if gate_ran("verification") {
                put("Post-Deployment Verification", verified.to_string());
            }
            if let Some(secs) = ended.and_then(|e| e.data["duration_seconds"].as_f64()) {
                put("Deployment Duration", format!("{:.1}", secs / 60.0));
            }
        }
    }
}

/// The Deployment Log table of the appendix, its rows generated from the
/// events (the header row stays).
fn deployment_log(rb: &Runbook, events: &[Event]) -> Option<Patch> {
    let heading = rb
        .headings
        .iter()
        .find(|h| h.text.to_lowercase().contains("deployment log"))?;
    let end = rb
        .headings
        .iter()
        .find(|h| h.loc.start > heading.loc.start)
        .map_or(rb.source.len(), |h| h.loc.start);
    let section = &rb.source[heading.loc.start..end];
    // the table: the first run of lines starting with `|`; its body follows
    // the header and the separator
    let mut offset = heading.loc.start;
    let mut rows: Vec<(usize, usize)> = Vec::new();
    for line in section.split_inclusive('\n') {
        let is_row = line.trim_start().starts_with('|');
        if is_row {
            rows.push((offset, offset + line.len()));
        } else if !rows.is_empty() {
            break;
        }
        offset += line.len();
    }
    if rows.len() < 3 {
        return None;
    }
    let (start, stop) = (rows[2].0, rows[rows.len() - 1].1);
    let newline = if rb.source[start..stop].contains("\r\n") {
        "\r\n"
    } else {
        "\n"
    };
    let cell = |s: &str| s.replace('|', "\\|").replace(['\n', '\r'], " ");
    let mut text = String::new();
    for e in events {
        let (what, status, notes) = match e.kind.as_str() {
            "run.started" => (
                "Checks started".to_string(),
                "IN PROGRESS".to_string(),
                format!("{} checks", e.data["checks"]),
            ),
            "run.finished" => (
                "Checks complete".to_string(),
                if e.data["failed"] == 0 && e.data["error"] == 0 {
                    "COMPLETE"
                } else {
                    "FAILED"
                }
                .to_string(),
                format!(
                    "{} passed, {} failed, {} could not observe",
                    e.data["passed"], e.data["failed"], e.data["error"]
                ),
            ),
            "decision" => (
                "Go/No-Go decision".to_string(),
                e.data["verdict"].as_str().unwrap_or("").to_string(),
                e.data["signers"]
                    .as_array()
                    .map(|s| {
                        s.iter()
                            .filter_map(|p| p["name"].as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    })
                    .unwrap_or_default(),
            ),
            "step.done" => (
                e.data["title"].as_str().unwrap_or("").to_string(),
                if e.data["skipped"] == true {
                    "SKIPPED"
                } else {
                    "COMPLETE"
                }
                .to_string(),
                e.actor.clone().unwrap_or_default(),
            ),
            "gate" => (
                {
                    let stage = e.data["stage"].as_str().unwrap_or("");
                    let mut c = stage.chars();
                    let cap: String = c
                        .next()
                        .map(|f| f.to_uppercase().chain(c).collect())
                        .unwrap_or_default();
                    format!("{cap} gate")
                },
                e.data["result"].as_str().unwrap_or("").to_uppercase(),
                format!("{}/{} passed", e.data["passed"], e.data["total"]),
            ),
            "rollback.raised" => (
                "Rollback decision raised".to_string(),
                "ROLLBACK".to_string(),
                e.data["reason"].as_str().unwrap_or("").to_string(),
            ),
            "rollback.started" => (
                "Rollback initiated".to_string(),
                "IN PROGRESS".to_string(),
                e.data["reason"].as_str().unwrap_or("").to_string(),
            ),
            "deployment.ended" => {
                let outcome = e.data["outcome"].as_str().unwrap_or("").to_string();
                let secs = e.data["duration_seconds"]
                    .as_f64()
                    .or_else(|| e.data["rollback_seconds"].as_f64())
                    .unwrap_or(0.0);
                (
                    "Deployment complete".to_string(),
                    outcome,
                    format!("Total duration: {:.1} min", secs / 60.0),
                )
            }
            _ => continue,
        };
        text.push_str(&format!(
            "| {} | {} | {} | {} |{newline}",
            short_time(&e.at),
            cell(&what),
            cell(&status),
            cell(&notes)
        ));
    }
    if text.is_empty() {
        return None;
    }
    // keep what followed the last row (its line ending)
    if !rb.source[start..stop].ends_with('\n') {
        text.truncate(text.len() - newline.len());
    }
    Some(Patch {
        start,
        end: stop,
        text,
        line: rb.lines.loc(&rb.source, start, start).line,
    })
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
    let counts = lifecycle::group_completion(rb, &Kept::replay(events), pre);
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

fn xml(s: &str) -> String {
    quick_xml::escape::escape(s).into_owned()
}

/// JUnit XML of a deployment: one test case per automated check, as the
/// latest run that checked its item saw it, grouped by the runbook's groups
/// in document order; a false condition is `<failure>`, a check that could
/// not observe `<error>`.
pub fn render_junit(rb: &Runbook, d: &golive_store::Deployment, events: &[Event]) -> String {
    let k = Kept::replay(events);
    let mut checks: Vec<&Event> = rb
        .items
        .iter()
        .filter_map(|it| k.checks.get(&it.id))
        .flat_map(|c| c.events.iter())
        .collect();
    checks.sort_by_key(|e| e.seq);
    let mut suites: Vec<(String, Vec<&Event>)> = Vec::new();
    for e in &checks {
        let group = e
            .item
            .as_deref()
            .and_then(|id| rb.items.iter().find(|i| i.id == id))
            .map(|it| {
                let s = &rb.stages[it.stage];
                match it.group {
                    Some(g) => format!("{} › {}", s.title(), s.groups[g].title()),
                    None => s.title().to_string(),
                }
            })
            .unwrap_or_default();
        match suites.iter_mut().find(|(g, _)| *g == group) {
            Some((_, v)) => v.push(e),
            None => suites.push((group, vec![e])),
        }
    }
    let count = |v: &[&Event], o: &str| v.iter().filter(|e| e.data["outcome"] == o).count();
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    out.push_str(&format!(
        "<!-- golive deployment {}, head {} -->\n",
        xml(&d.id),
        head(d, events)
    ));
    out.push_str(&format!(
        "<testsuites name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"{}\">\n",
        xml(&d.id),
        checks.len(),
        count(&checks, "failed"),
        count(&checks, "error"),
        count(&checks, "skipped")
    ));
    for (group, cases) in &suites {
        out.push_str(&format!(
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"{}\">\n",
            xml(group),
            cases.len(),
            count(cases, "failed"),
            count(cases, "error"),
            count(cases, "skipped")
        ));
        for e in cases {
            let item = e
                .item
                .as_deref()
                .and_then(|id| rb.items.iter().find(|i| i.id == id));
            let name = item
                .map(|i| format!("{} {}", i.address, i.title))
                .unwrap_or_default();
            let secs = e.data["duration_ms"].as_f64().unwrap_or(0.0) / 1e3;
            out.push_str(&format!(
                "    <testcase name=\"{} — {} {}\" classname=\"{}\" file=\"{}\" line=\"{}\" time=\"{secs:.3}\"",
                xml(&name),
                xml(e.data["kind"].as_str().unwrap_or("")),
                xml(e.data["target"].as_str().unwrap_or("")),
                xml(e.item.as_deref().unwrap_or("")),
                xml(&d.runbook_path),
                item.map_or(0, |i| i.loc.line)
            ));
            let message = e.data["message"].as_str().unwrap_or("");
            match e.data["outcome"].as_str() {
                Some("failed") => {
                    let actual: Vec<String> = e.data["actual"]
                        .as_object()
                        .into_iter()
                        .flatten()
                        .map(|(k, v)| format!("{k} = {v}"))
                        .collect();
                    out.push_str(&format!(
                        ">\n      <failure message=\"expected {}\" type=\"condition\">actual: {}</failure>\n    </testcase>\n",
                        xml(e.data["expect"].as_str().unwrap_or("")),
                        xml(&actual.join(", "))
                    ));
                }
                Some("error") => out.push_str(&format!(
                    ">\n      <error message=\"{}\" type=\"could-not-observe\"/>\n    </testcase>\n",
                    xml(message)
                )),
                Some("skipped") => out.push_str(&format!(">\n      <skipped message=\"{}\"/>\n    </testcase>\n", xml(message))),
                _ => out.push_str("/>\n"),
            }
        }
        out.push_str("  </testsuite>\n");
    }
    out.push_str("</testsuites>\n");
    out
}

/// `golive report --format html`: a page a VP reads in ten seconds at the
/// top (the outcome, the duration against its target, the gates, why and
/// when a rollback happened, who signed GO), then each stage's items with
/// their results (a check's expected and actual, a person's sign-off), the
/// phases against their budgets, the signatures, and the event log last,
/// folded.
pub fn render_html(
    rb: &Runbook,
    d: &golive_store::Deployment,
    events: &[Event],
    now: jiff::Timestamp,
) -> String {
    use golive_deploy::time::minutes_text;
    let h = |s: &str| xml(s);
    let k = Kept::replay(events);
    let state = lifecycle::state(&k);
    let mut body = String::new();
    body.push_str(&format!(
        "<header>\n<h1>{}</h1>\n<p class=\"meta\">Deployment <code>{}</code> of <code>{}</code>, started {} by {}</p>\n</header>\n",
        h(rb.title.as_ref().map_or("Deployment", |t| t.text.as_str())),
        h(&d.id),
        h(&d.runbook_path),
        h(&short_time(&d.created_at)),
        h(&d.started_by),
    ));
    // the summary
    let mut facts: Vec<(String, String)> = Vec::new();
    let took = |secs: Option<f64>, target: Option<u64>| match (secs, target) {
        (Some(s), Some(t)) => format!(
            "{} (target &lt; {}{})",
            minutes_text(s),
            minutes_text(t as f64),
            if s < t as f64 {
                ", within it"
            } else {
                ", OVER it"
            }
        ),
        (Some(s), None) => minutes_text(s),
        _ => "—".to_string(),
    };
    match &k.ended {
        Some(e) if e.data["outcome"] == "ROLLED BACK" => facts.push((
            "Rollback took".into(),
            took(
                e.data["rollback_seconds"].as_f64(),
                e.data["target_seconds"].as_u64(),
            ),
        )),
        Some(e) => facts.push((
            "Duration".into(),
            took(
                e.data["duration_seconds"].as_f64(),
                e.data["target_seconds"].as_u64(),
            ),
        )),
        None => {
            if let Some(go) = k.go() {
                let since = golive_deploy::time::seconds_between(&go.at, &now.to_string());
                facts.push(("Running for".into(), took(since, None)));
            }
        }
    }
    match &k.decision {
        Some(dec) => {
            let by: Vec<String> = k
                .decision_signatures
                .iter()
                .map(|e| {
                    format!(
                        "{} ({}, {})",
                        h(e.actor.as_deref().unwrap_or("?")),
                        h(e.data["role"].as_str().unwrap_or("?")),
                        h(&short_time(&e.at))
                    )
                })
                .collect();
            facts.push((
                h(dec.data["verdict"].as_str().unwrap_or("Decision")),
                if by.is_empty() {
                    "—".into()
                } else {
                    by.join(", ")
                },
            ));
        }
        None => facts.push(("Decision".into(), "not taken".into())),
    }
    let mut last_gate: Vec<&Event> = Vec::new();
    for g in events.iter().filter(|e| e.kind == "gate") {
        last_gate.retain(|x| x.data["stage"] != g.data["stage"]);
        last_gate.push(g);
    }
    if !last_gate.is_empty() {
        facts.push((
            "Gates".into(),
            last_gate
                .iter()
                .map(|g| {
                    format!(
                        "{} {}/{} (target {}): <b>{}</b>",
                        h(g.data["stage"].as_str().unwrap_or("")),
                        g.data["passed"],
                        g.data["total"],
                        g.data["target"],
                        h(&g.data["result"].as_str().unwrap_or("").to_uppercase())
                    )
                })
                .collect::<Vec<_>>()
                .join("; "),
        ));
    }
    let raised = events.iter().rev().find(|e| e.kind == "rollback.raised");
    if let Some(r) = raised {
        facts.push((
            "Rollback raised".into(),
            format!(
                "{} at {} ({} authority)",
                h(r.data["reason"].as_str().unwrap_or("")),
                h(&short_time(&r.at)),
                h(r.data["authority"].as_str().unwrap_or("?"))
            ),
        ));
    }
    if let Some(st) = &k.rollback_started {
        facts.push((
            "Rollback started".into(),
            match st.data["by"].as_str() {
                Some(role) => format!(
                    "{}, automatically, in the name of the {}",
                    h(&short_time(&st.at)),
                    h(role)
                ),
                None => format!(
                    "{} by {}",
                    h(&short_time(&st.at)),
                    h(&st.data["signers"]
                        .as_array()
                        .map(|a| a
                            .iter()
                            .filter_map(|x| x["name"].as_str())
                            .collect::<Vec<_>>()
                            .join(" + "))
                        .filter(|x| !x.is_empty())
                        .unwrap_or_else(|| st.actor.clone().unwrap_or_default()))
                ),
            },
        ));
    }
    for res in &k.rollback_resolved {
        facts.push((
            "Continued instead".into(),
            format!(
                "{} at {}",
                h(res.data["raised"].as_str().unwrap_or("")),
                h(&short_time(&res.at))
            ),
        ));
    }
    let overrides = k
        .signoffs
        .iter()
        .filter(|e| e.data["override"] == true)
        .count();
    if overrides > 0 {
        facts.push((
            "Overrides".into(),
            format!("{overrides} sign-off(s) over failed checks"),
        ));
    }
    body.push_str(&format!(
        "<section class=\"summary\">\n<p class=\"state state-{}\">{}</p>\n<dl>\n",
        h(&state.to_lowercase().replace(' ', "-")),
        h(state)
    ));
    for (k, v) in &facts {
        body.push_str(&format!("<dt>{k}</dt><dd>{v}</dd>\n"));
    }
    body.push_str("</dl>\n</section>\n");
    // each stage's items and their results
    let states = lifecycle::states(rb, &k);
    let aside = lifecycle::set_aside(rb, &k);
    let latest = lifecycle::latest_signoffs(&k);
    body.push_str("<h2>Results</h2>\n");
    for stage in &rb.stages {
        let items: Vec<usize> = stage.all_items().collect();
        if items.is_empty() {
            continue;
        }
        // a stage without checks shows no expected and actual columns
        let checked = items
            .iter()
            .any(|i| k.checks.contains_key(&rb.items[*i].id));
        body.push_str(&format!(
            "<h3>{} {}</h3>\n<div class=\"scroll\"><table class=\"results\">\n<tr><th>Item</th><th>Result</th>{}<th>Signed</th></tr>\n",
            h(&stage.address),
            h(stage.title()),
            if checked { "<th>Expected</th><th>Actual</th>" } else { "" }
        ));
        for i in items {
            let it = &rb.items[i];
            let st = states.get(&it.id);
            let checks = k
                .checks
                .get(&it.id)
                .map(|c| c.events.as_slice())
                .unwrap_or(&[]);
            let (result, class) = if let Some(why) = aside.get(&i) {
                (why.clone(), "aside")
            } else if st.is_some_and(|s| !s.failed_by.is_empty()) {
                ("failed (signed)".to_string(), "failed")
            } else if !checks.is_empty() {
                let failed = checks.iter().find(|e| e.data["outcome"] != "passed");
                match failed {
                    Some(e) => (
                        e.data["outcome"].as_str().unwrap_or("error").to_string(),
                        "failed",
                    ),
                    None => ("passed".to_string(), "passed"),
                }
            } else if st.is_some_and(|s| !s.signed_by.is_empty())
                || (it.kind == golive_runbook::ItemKind::Step && k.step_done(&it.id).is_some())
            {
                ("done".to_string(), "passed")
            } else {
                ("open".to_string(), "open")
            };
            let expected: Vec<String> = checks
                .iter()
                .filter_map(|e| e.data["expect"].as_str())
                .map(|x| format!("<code>{}</code>", h(x)))
                .collect();
            let actual: Vec<String> = checks
                .iter()
                .flat_map(|e| e.data["actual"].as_object().into_iter().flatten())
                .map(|(k, v)| format!("{} = {}", h(k), h(&golive_deploy::counts::show_value(v))))
                .collect();
            let signed = latest
                .get(it.id.as_str())
                .map(|e| {
                    let mut t = format!(
                        "{} ({}), {}",
                        h(e.actor.as_deref().unwrap_or("?")),
                        h(e.data["role"].as_str().unwrap_or("?")),
                        h(&short_time(&e.at))
                    );
                    if let Some(c) = e.data["comment"].as_str() {
                        t.push_str(&format!(": {}", h(c)));
                    }
                    if e.data["override"] == true {
                        t.push_str(" <b>(override)</b>");
                    }
                    t
                })
                .or_else(|| {
                    k.step_done(&it.id).map(|e| {
                        format!(
                            "{}, {}",
                            h(e.actor.as_deref().unwrap_or("?")),
                            h(&short_time(&e.at))
                        )
                    })
                })
                .unwrap_or_default();
            let observed = if checked {
                format!(
                    "<td>{}</td><td>{}</td>",
                    expected.join("<br>"),
                    actual.join("<br>")
                )
            } else {
                String::new()
            };
            body.push_str(&format!(
                "<tr class=\"{class}\"><td>{} {}</td><td>{}</td>{observed}<td>{signed}</td></tr>\n",
                h(&it.address),
                h(&it.title),
                h(&result),
            ));
        }
        body.push_str("</table></div>\n");
    }
    // phases against budgets
    let phases = lifecycle::phase_timings(rb, &k, now);
    if !phases.is_empty() {
        body.push_str("<h2>Procedure against its budgets</h2>\n<div class=\"scroll\"><table class=\"timeline\">\n<tr><th>Phase</th><th>Steps</th><th>Time</th><th>Budget</th><th></th></tr>\n");
        for p in &phases {
            let width = match p.budget {
                Some(b) if b > 0 => (p.seconds / b as f64 * 100.0).clamp(1.0, 100.0),
                _ => 1.0,
            };
            let over = p.budget.is_some_and(|b| p.seconds > b as f64);
            body.push_str(&format!(
                "<tr><td>{}</td><td>{}/{}</td><td>{}</td><td>{}</td><td><div class=\"bar{}\" style=\"width:{width:.0}%\"></div></td></tr>\n",
                h(&p.title),
                p.done,
                p.total,
                minutes_text(p.seconds),
                p.budget.map(|b| format!("{b}s")).unwrap_or_else(|| "—".into()),
                if over { " over" } else { "" }
            ));
        }
        body.push_str("</table></div>\n");
    }
    // the signatures
    let signatures: Vec<&Event> = events
        .iter()
        .filter(|e| {
            matches!(
                e.kind.as_str(),
                "signoff"
                    | "decision.signature"
                    | "rollback.signature"
                    | "rollback.continue"
                    | "stage.signoff"
            )
        })
        .collect();
    if !signatures.is_empty() {
        body.push_str("<h2>Signatures</h2>\n<div class=\"scroll\"><table class=\"signatures\">\n<tr><th>Time</th><th>What</th><th>By</th><th>Role</th><th>Result</th><th>Comment</th></tr>\n");
        for e in signatures {
            let what = match e.kind.as_str() {
                "signoff" => format!(
                    "{} {}",
                    e.data["address"].as_str().unwrap_or(""),
                    e.data["title"].as_str().unwrap_or("")
                ),
                "decision.signature" => {
                    format!("decision: {}", e.data["verdict"].as_str().unwrap_or(""))
                }
                "rollback.signature" => "rollback".to_string(),
                "rollback.continue" => "continue instead of rolling back".to_string(),
                _ => format!("stage {}", e.data["stage"].as_str().unwrap_or("")),
            };
            let result = match e.kind.as_str() {
                "signoff" if e.data["override"] == true => "done (override)".to_string(),
                "signoff" => lifecycle::signoff_result(e).name().to_string(),
                _ => String::new(),
            };
            body.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
                h(&short_time(&e.at)),
                h(&what),
                h(e.actor.as_deref().unwrap_or("")),
                h(e.data["role"].as_str().unwrap_or("")),
                h(&result),
                h(e.data["comment"]
                    .as_str()
                    .or(e.data["reason"].as_str())
                    .unwrap_or(""))
            ));
        }
        body.push_str("</table></div>\n");
    }
    body.push_str(&format!(
        "<details class=\"log\">\n<summary>Event log ({} events)</summary>\n<div class=\"scroll\"><table class=\"events\">\n<tr><th>#</th><th>Time</th><th>Event</th><th>Item</th><th>By</th></tr>\n",
        events.len()
    ));
    for e in events {
        body.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
            e.seq,
            h(&short_time(&e.at)),
            h(&e.kind),
            h(e.item.as_deref().unwrap_or("")),
            h(e.actor.as_deref().unwrap_or(""))
        ));
    }
    body.push_str("</table></div>\n</details>\n");
    body.push_str(&format!(
        "<p class=\"meta\">Record head <code>{}</code>: <code>golive audit verify {} --head {}</code> proves later that the record still reaches it.</p>\n",
        head(d, events),
        h(&d.id),
        head(d, events),
    ));
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>{} — {}</title>\n<style>\n{}\n</style>\n</head>\n<body>\n{body}</body>\n</html>\n",
        h(&d.id),
        h(state),
        STYLE
    )
}

const STYLE: &str = "body{font:15px/1.5 system-ui,sans-serif;margin:2rem auto;max-width:64rem;color:#1d2330;padding:0 1rem}
h1{font-size:1.6rem;margin-bottom:.2rem}h3{margin:1.2rem 0 .3rem}.meta{color:#5b6475;overflow-wrap:anywhere}
.summary{border:1px solid #d8dde6;border-radius:.5rem;padding:1rem 1.2rem;margin:1rem 0 1.5rem;background:#fafbfd}
.summary dl{display:grid;grid-template-columns:max-content 1fr;gap:.3rem 1rem;margin:.8rem 0 0}.summary dt{font-weight:600;color:#3a4254}.summary dd{margin:0}
.state{display:inline-block;padding:.3rem .9rem;border-radius:.3rem;font-weight:700;font-size:1.2rem;background:#e8ecf3;margin:0}
.state-succeeded{background:#d4f5dd;color:#145c2b}.state-rolled-back,.state-rollback-decision-raised,.state-rolling-back{background:#fde2e1;color:#8a1c17}
.scroll{overflow-x:auto}table{border-collapse:collapse;width:100%;margin:.3rem 0 1rem}td,th{text-align:left;padding:.3rem .5rem;border-bottom:1px solid #e3e7ee;vertical-align:top}
tr.passed td:nth-child(2){color:#145c2b}tr.failed td:nth-child(2){color:#8a1c17;font-weight:600}tr.aside td:nth-child(2){color:#6b5a14}tr.open td:nth-child(2){color:#5b6475}
.timeline td:last-child{width:40%}.bar{height:.8rem;background:#4a7bd0;border-radius:.2rem}.bar.over{background:#d0463f}
details.log summary{cursor:pointer;font-weight:600;margin:1rem 0 .5rem}
code{background:#f1f3f7;padding:0 .25rem;border-radius:.2rem;overflow-wrap:anywhere}
@media (max-width:40rem){body{margin:1rem auto;font-size:14px}.summary dl{grid-template-columns:1fr}.summary dt{margin-top:.4rem}}";

pub use golive_deploy::notify::DEFAULT_STATUS_TEMPLATE;

/// `golive status --message`: the document's Status Update Template (or
/// [`DEFAULT_STATUS_TEMPLATE`] when it has none) filled from the live
/// state, then the line naming the record's head.
pub fn render_message(
    rb: &Runbook,
    d: &golive_store::Deployment,
    k: &Kept,
    now: jiff::Timestamp,
) -> String {
    let mut text = golive_deploy::notify::status_update(rb, d, k, now);
    text.push_str(&head_line(&d.id, &kept_head(d, k)));
    text.push('\n');
    text
}

/// `golive report --format json`: the deployment and every event.
pub fn report_json(d: &golive_store::Deployment, events: &[Event]) -> serde_json::Value {
    let head = head(d, events);
    serde_json::json!({
        "deployment": d.id, "head": format!("{}:{}", head.seq, head.hash),
        "runbook": d.runbook_path, "runbook_sha256": d.runbook_sha256,
        "started_at": d.created_at, "started_by": d.started_by, "vars": d.vars,
        "events": events.iter().map(|e| serde_json::json!({
            "seq": e.seq, "at": e.at, "kind": e.kind, "item": e.item, "actor": e.actor,
            "data": e.data, "hash": e.hash,
        })).collect::<Vec<_>>(),
    })
}
