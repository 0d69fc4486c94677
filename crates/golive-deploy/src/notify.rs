//! The communication plan, carried out: which messages are due from the
//! record ([`due`]), what they say (the document's own templates filled
//! from the record, [`message_for`]), and their delivery, each step an
//! event of the deployment's chain:
//!
//! - `notice.queued`: the message as it will go (subject, body, recipients,
//!   the items it fulfils, the channels, its SHA-256), appended once per
//!   key;
//! - `notice.sending`: a process claims one channel's delivery (who, and
//!   until when), so two processes never send it at once;
//! - `notice.sent` (by `golive`, with the receiver's answer) or
//!   `notice.failed` (the cause, and when it is tried again).
//!
//! A message is sent once: its key is queued once, each channel's delivery
//! is claimed before it is sent, and every attempt carries the same
//! idempotency key (`DEPLOYMENT/KEY/CHANNEL`: a webhook's `Idempotency-Key`
//! header, an email's Message-ID). A process killed while it held a claim
//! leaves it to the next one: at once on the same machine (the claimant is
//! gone), after the claim's lease elsewhere.
//!
//! The keys: `announcement` and `support-alert` (a deployment scheduled
//! with a start), `status:go` (T+0), `status:t+15` … (every interval the
//! document states after GO, the latest one only), `status:phase:GROUP`
//! (a procedure phase ended), `status:gate:SEQ` (a gate evaluated),
//! `rollback-initiated` (the rollback started), `rollback-complete`,
//! `success` and `report` (the deployment ended; the report carries the
//! HTML report).

use crate::channel::{Channel, Outgoing};
use crate::lifecycle;
use crate::time::seconds_between;
use crate::{Deployment, Kept, Listener, Result};
use golive_runbook::comms::{self, NoticeKind, Plan};
use golive_runbook::{Runbook, StageKind};
use golive_store::{Event, NewEvent};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::time::Duration;

/// How often a status update goes when the document does not say.
pub const DEFAULT_INTERVAL: u64 = 15 * 60;
/// Attempts of one delivery before it is given up (and `status` says so).
pub const MAX_ATTEMPTS: u64 = 8;
/// How long another machine's claim on a delivery holds.
pub const LEASE_SECONDS: i64 = 60;

/// The status update golive sends when the document has no Status Update
/// Template: the reference's fields, plainly.
pub const DEFAULT_STATUS_TEMPLATE: &str = "Deployment status update, [TIMESTAMP]
Current phase: [CURRENT_PHASE]
Progress: [X]/[Y] steps complete
Time remaining (estimate): [MINUTES] minutes
Issues: [NONE / description]
Next: [NEXT_PHASE]
";

/// A message of the plan, filled.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// Unique in the deployment: what makes it go once.
    pub key: String,
    /// `status`, `rollback-initiated`, or a [`NoticeKind`]'s name.
    pub kind: String,
    pub subject: String,
    pub body: String,
    /// The recipients as the document names them.
    pub to: Vec<String>,
    /// The items its sending fulfils (ids), and sub-checks (`ITEM/N`).
    pub items: Vec<String>,
    pub ticks: Vec<String>,
    /// It carries the HTML report.
    pub attach_report: bool,
    /// A milestone: it goes by email too (status updates go to the chat
    /// channels only, as the reference's Distribution says).
    pub milestone: bool,
}

impl Message {
    /// The SHA-256 of what it says.
    pub fn hash(&self) -> String {
        hex::encode(Sha256::digest(format!("{}\n\n{}", self.subject, self.body)))
    }

    /// Whether `c` carries it: the chat channels every message, email the
    /// milestones that name recipients.
    pub fn goes_to(&self, c: &Channel) -> bool {
        !c.needs_addresses() || (self.milestone && !self.to.is_empty())
    }
}

/// What the messages are filled with, from the record.
#[derive(Debug, Clone, Default)]
pub struct Figures {
    pub timestamp: String,
    pub phase: String,
    pub next: String,
    pub steps_done: usize,
    pub steps_total: usize,
    pub minutes_left: u64,
    /// Open failures: what raised a rollback, each failed gate.
    pub issues: Vec<String>,
    pub state: String,
    pub duration_minutes: Option<f64>,
    /// The smoke tests passed and counted (the last smoke gate, or now).
    pub smoke: Option<(u64, u64)>,
    pub version: Option<String>,
    /// The scheduled start and the window's end (start + the duration
    /// target).
    pub start: Option<jiff::Timestamp>,
    pub end: Option<jiff::Timestamp>,
    pub reason: Option<String>,
    pub rollback_target_minutes: Option<u64>,
    pub vars: BTreeMap<String, String>,
    pub deployment: String,
}

/// The record's figures at `now`.
pub fn figures(
    rb: &Runbook,
    row: &golive_store::Deployment,
    k: &Kept,
    now: jiff::Timestamp,
) -> Figures {
    let phases = lifecycle::phase_timings(rb, k, now);
    let steps_total: usize = phases.iter().map(|p| p.total).sum();
    let steps_done: usize = phases.iter().map(|p| p.done).sum();
    let current = phases.iter().position(|p| p.done < p.total);
    let state = lifecycle::state(k);
    let (phase, next) = match current {
        _ if state.starts_with("ROLL") => (
            format!("Rollback ({state})"),
            "Post-rollback actions".to_string(),
        ),
        _ if state == "SUCCEEDED" => ("Complete (SUCCEEDED)".to_string(), "Hypercare".to_string()),
        Some(i) => (
            phases[i].title.clone(),
            phases
                .get(i + 1)
                .map_or("Smoke testing".to_string(), |p| p.title.clone()),
        ),
        None if phases.is_empty() => (state.to_string(), "Procedure".to_string()),
        None => ("Verification".to_string(), "Final sign-off".to_string()),
    };
    let minutes_left: u64 = phases
        .iter()
        .skip(current.unwrap_or(phases.len()))
        .map(|p| p.budget.unwrap_or(0).saturating_sub(p.seconds as u64))
        .sum::<u64>()
        .div_ceil(60);
    // what raised a rollback, and every gate that failed (a rollback is
    // raised once, and before any gate that fails after it)
    let mut record: Vec<&Event> = k.gates.iter().chain(&k.rollback_raised).collect();
    record.sort_by_key(|e| e.seq);
    let issues = record
        .into_iter()
        .filter_map(|e| match e.kind.as_str() {
            "rollback.raised" => e.data["reason"].as_str().map(str::to_string),
            "gate" if e.data["result"] == "fail" => Some(format!(
                "{} gate {}/{}, below the target of {}/{}",
                e.data["stage"].as_str().unwrap_or("?"),
                e.data["passed"],
                e.data["total"],
                e.data["target"],
                e.data["total"]
            )),
            _ => None,
        })
        .collect();
    let vars: BTreeMap<String, String> = row
        .vars
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
        .collect();
    let smoke = k
        .last_gate("smoke")
        .map(|g| {
            (
                g.data["passed"].as_u64().unwrap_or(0),
                g.data["total"].as_u64().unwrap_or(0),
            )
        })
        .or_else(|| {
            let (p, t) = lifecycle::stage_passed(rb, k, StageKind::Smoke);
            (t > 0 && k.go().is_some()).then_some((p as u64, t as u64))
        });
    let duration_minutes = match &k.ended {
        Some(e) if e.data["outcome"] == "SUCCESS" => e.data["duration_seconds"].as_f64(),
        _ => k
            .go()
            .and_then(|g| seconds_between(&g.at, &now.to_string())),
    }
    .map(|s| (s / 6.0).round() / 10.0);
    let start = k
        .scheduled
        .as_ref()
        .and_then(|e| e.data["start"].as_str()?.parse::<jiff::Timestamp>().ok());
    let end = start.and_then(|s| {
        s.checked_add(jiff::SignedDuration::from_secs(
            lifecycle::duration_target(rb) as i64,
        ))
        .ok()
    });
    Figures {
        timestamp: now.strftime("%Y-%m-%d %H:%M UTC").to_string(),
        phase,
        next,
        steps_done,
        steps_total,
        minutes_left,
        issues,
        state: state.to_string(),
        duration_minutes,
        smoke,
        version: vars.get("VERSION").cloned(),
        start,
        end,
        reason: k
            .rollback_started
            .as_ref()
            .or(k.rollback_raised.as_ref())
            .and_then(|e| e.data["reason"].as_str().map(str::to_string)),
        rollback_target_minutes: lifecycle::rollback_steps(rb).1.map(|s| s.div_ceil(60)),
        vars,
        deployment: row.id.clone(),
    }
}

impl Figures {
    fn issues_text(&self) -> String {
        if self.issues.is_empty() {
            "NONE".to_string()
        } else {
            self.issues.join("; ")
        }
    }

    fn at(t: Option<jiff::Timestamp>, format: &str) -> Option<String> {
        t.map(|t| t.strftime(format).to_string())
    }

    /// `[NAME]` as the record fills it, or `None` to leave it as written.
    fn placeholder(&self, name: &str) -> Option<String> {
        let upper = name.to_uppercase();
        Some(match upper.as_str() {
            "TIMESTAMP" => self.timestamp.clone(),
            "CURRENT_PHASE" => self.phase.clone(),
            "NEXT_PHASE" => self.next.clone(),
            "X" => self.steps_done.to_string(),
            "Y" => self.steps_total.to_string(),
            "MINUTES" => self.minutes_left.to_string(),
            "NONE / DESCRIPTION" | "NONE / LIST" | "NONE" => self.issues_text(),
            "VERSION" => self.version.clone()?.trim_start_matches('v').to_string(),
            "DATE" => Figures::at(self.start, "%Y-%m-%d")?,
            "TIME" => Figures::at(self.start, "%H:%M UTC")?,
            "DATE/TIME" => Figures::at(self.start, "%Y-%m-%d %H:%M UTC")?,
            "START" => Figures::at(self.start, "%Y-%m-%d %H:%M UTC")?,
            "END" => Figures::at(self.end, "%H:%M UTC")?,
            "REASON" => self.reason.clone()?,
            _ => return self.vars.get(name).cloned(),
        })
    }

    /// A blank (`____`) of a line, filled by what its label asks.
    fn blank(&self, label: &str, after: &str) -> Option<String> {
        let l = label.to_lowercase();
        if l.contains("duration") {
            return self.duration_minutes.map(|m| format!("{m:.1}"));
        }
        if l.contains("smoke") && after.starts_with('/') {
            return self.smoke.map(|(p, _)| p.to_string());
        }
        if l.contains("smoke") {
            return self.smoke.map(|(p, t)| format!("{p}/{t}"));
        }
        None
    }

    /// `text` with every placeholder and blank the record knows filled.
    pub fn fill(&self, text: &str) -> String {
        // placeholders: `[NAME]`, `[A / B]`
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(open) = rest.find('[') {
            let Some(close) = rest[open..].find(']').map(|c| open + c) else {
                break;
            };
            out.push_str(&rest[..open]);
            let name = &rest[open + 1..close];
            match self.placeholder(name) {
                Some(v) => out.push_str(&v),
                None => out.push_str(&rest[open..=close]),
            }
            rest = &rest[close + 1..];
        }
        out.push_str(rest);
        // blanks: runs of four or more underscores, by the label before them
        let mut filled = String::with_capacity(out.len());
        for (n, line) in out.split('\n').enumerate() {
            if n > 0 {
                filled.push('\n');
            }
            let mut rest = line;
            let mut before = String::new();
            while let Some(at) = rest.find("____") {
                let len = rest[at..].chars().take_while(|&c| c == '_').count();
                before.push_str(&rest[..at]);
                let after = &rest[at + len..];
                let label = before.rsplit(':').nth(1).unwrap_or(&before).to_string();
                match self.blank(&label, after.trim_start()) {
                    Some(v) => before.push_str(&v),
                    None => before.push_str(&rest[at..at + len]),
                }
                rest = after;
            }
            before.push_str(rest);
            filled.push_str(&before);
        }
        filled
    }
}

/// The status update: the document's Status Update Template (or
/// [`DEFAULT_STATUS_TEMPLATE`]) filled from the record at `now`.
pub fn status_update(
    rb: &Runbook,
    row: &golive_store::Deployment,
    k: &Kept,
    now: jiff::Timestamp,
) -> String {
    let plan = comms::plan(rb);
    let template = plan
        .status_template
        .as_ref()
        .map_or(DEFAULT_STATUS_TEMPLATE, |(t, _)| t.as_str());
    let mut text = figures(rb, row, k, now).fill(template);
    if !text.ends_with('\n') {
        text.push('\n');
    }
    text
}

/// The sub-checks of `item` whose words say they announce or notify.
fn announce_ticks(rb: &Runbook, item: usize) -> Vec<String> {
    rb.items[item]
        .subchecks
        .iter()
        .enumerate()
        .filter(|(_, s)| {
            let t = s.text.to_lowercase();
            t.contains("announced") || t.contains("notified")
        })
        .map(|(n, _)| format!("{}/{}", rb.items[item].address, n + 1))
        .collect()
}

/// The `T+N` update items a message fulfils.
fn update_items(rb: &Runbook, plan: &Plan, key: &str) -> Vec<String> {
    plan.updates
        .iter()
        .filter(|u| match key {
            "status:go" => u.minutes == 0 && !u.end,
            "success" | "rollback-initiated" => u.end,
            k => k
                .strip_prefix("status:t+")
                .and_then(|m| m.parse::<u64>().ok())
                .is_some_and(|m| m == u.minutes && !u.end),
        })
        .map(|u| rb.items[u.item].id.clone())
        .collect()
}

/// The message of `key` filled from the record at `now`.
/// A reminder to the roles a pending approval waits for
/// ([`crate::approval`]), to each of them (by the roster's contacts).
fn reminder(rb: &Runbook, row: &golive_store::Deployment, k: &Kept, key: &str) -> Message {
    let roles = crate::lifecycle::decision_signers(rb);
    let p = crate::approval::pending(rb, k, &roles)
        .into_iter()
        .find(|p| key == format!("reminder:{}:{}", p.what, p.since_seq));
    let (label, waiting, signed, since) = match &p {
        Some(p) => (
            p.label.clone(),
            p.waiting.clone(),
            p.signed.join(", "),
            p.since.clone(),
        ),
        None => (key.to_string(), Vec::new(), String::new(), String::new()),
    };
    let mut to: Vec<String> = Vec::new();
    for w in &waiting {
        if !to.contains(w) {
            to.push(w.clone());
        }
    }
    let hhmm = |t: &str| t.get(11..16).unwrap_or(t).to_string();
    let mut body = format!(
        "{label} is waiting for: {}\nSigned so far: {signed} (since {} UTC)\n",
        waiting.join(", "),
        hhmm(&since)
    );
    if let (Some(after), Ok(t)) = (
        crate::approval::rules(rb).expire_after,
        since.parse::<jiff::Timestamp>(),
    ) && let Ok(end) = t.checked_add(jiff::SignedDuration::from_secs(after as i64))
    {
        body.push_str(&format!(
            "The signatures given expire at {} UTC unless it is completed.\n",
            hhmm(&end.to_string())
        ));
    }
    body.push_str(&format!("Deployment: {}\n", row.id));
    Message {
        key: key.to_string(),
        kind: "reminder".into(),
        subject: format!("Reminder: {label} is waiting for the {}", to.join(", ")),
        body,
        to,
        items: Vec::new(),
        ticks: Vec::new(),
        attach_report: false,
        milestone: true,
    }
}

pub fn message_for(
    rb: &Runbook,
    row: &golive_store::Deployment,
    k: &Kept,
    now: jiff::Timestamp,
    key: &str,
) -> Message {
    let plan = comms::plan(rb);
    let f = figures(rb, row, k, now);
    // the stakeholders, for the milestones that name nobody: those the
    // success notice (else the announcement) goes to
    let stakeholders: Vec<String> = [NoticeKind::Success, NoticeKind::Announcement]
        .iter()
        .find_map(|kind| {
            plan.notices
                .iter()
                .find(|n| n.kind == *kind && !n.to.is_empty())
        })
        .map(|n| n.to.clone())
        .unwrap_or_default();
    let status = |items: Vec<String>, milestone: bool| {
        let body = status_update(rb, row, k, now);
        Message {
            key: key.to_string(),
            kind: "status".into(),
            subject: body
                .lines()
                .next()
                .unwrap_or("Deployment status update")
                .to_string(),
            body,
            to: if milestone {
                stakeholders.clone()
            } else {
                Vec::new()
            },
            items,
            ticks: Vec::new(),
            attach_report: false,
            milestone,
        }
    };
    if key.starts_with("status:") {
        return status(update_items(rb, &plan, key), key == "status:go");
    }
    if key.starts_with("reminder:") {
        return reminder(rb, row, k, key);
    }
    if key == "rollback-initiated" {
        let (words, ticks) = match &plan.rollback_announcement {
            Some((w, item)) => (w.clone(), announce_ticks(rb, *item)),
            None => (
                "ROLLBACK INITIATED - [REASON] - ETA [ETA] minutes".to_string(),
                Vec::new(),
            ),
        };
        let eta = f.rollback_target_minutes.unwrap_or(5).to_string();
        let words = f.fill(&words).replace("[ETA]", &eta);
        let mut body = format!("{words}\n\n");
        body.push_str(&f.fill(&format!(
            "Deployment: {}\nVersion: v[VERSION]\nState: {}\n",
            f.deployment, f.state
        )));
        return Message {
            key: key.into(),
            kind: key.into(),
            subject: words,
            body,
            to: stakeholders,
            items: update_items(rb, &plan, key),
            ticks,
            attach_report: false,
            milestone: true,
        };
    }
    let kind = match key {
        "announcement" => NoticeKind::Announcement,
        "support-alert" => NoticeKind::SupportAlert,
        "success" => NoticeKind::Success,
        "report" => NoticeKind::Report,
        _ => NoticeKind::RollbackComplete,
    };
    let notice = plan.notices.iter().find(|n| n.kind == kind);
    let (subject, lines) = default_notice(kind, &f);
    let subject = notice
        .and_then(|n| n.subject.clone())
        .map_or(subject, |s| f.fill(&s));
    let mut body = String::new();
    let content: Vec<String> = match notice {
        Some(n) if !n.content.is_empty() => n.content.iter().map(|l| f.fill(l)).collect(),
        _ => lines,
    };
    for l in &content {
        body.push_str(&format!("- {l}\n"));
    }
    if kind == NoticeKind::Report {
        body.push_str(
            "\nThe full report is attached (HTML): every event of the deployment's record.\n",
        );
    }
    body.push_str(&format!("\nDeployment {} — sent by golive\n", f.deployment));
    let mut items: Vec<String> = notice
        .map(|n| n.items.iter().map(|&i| rb.items[i].id.clone()).collect())
        .unwrap_or_default();
    if kind == NoticeKind::Success {
        items.extend(update_items(rb, &plan, key));
    }
    if kind == NoticeKind::RollbackComplete
        && let Some(i) = plan.rollback_communication
    {
        items.push(rb.items[i].id.clone());
    }
    Message {
        key: key.into(),
        kind: kind.as_str().into(),
        subject,
        body,
        to: notice.map(|n| n.to.clone()).unwrap_or_default(),
        items,
        ticks: Vec::new(),
        attach_report: kind == NoticeKind::Report,
        milestone: true,
    }
}

/// What a notice says when the document has no words for it.
fn default_notice(kind: NoticeKind, f: &Figures) -> (String, Vec<String>) {
    let v = f.version.as_deref().map_or(String::new(), |v| {
        format!(" v{}", v.trim_start_matches('v'))
    });
    let dur = f.duration_minutes.map_or("?".into(), |m| format!("{m:.1}"));
    let smoke = f
        .smoke
        .map_or("not run".into(), |(p, t)| format!("{p}/{t} passed"));
    match kind {
        NoticeKind::Announcement => (
            format!("Production deployment scheduled:{v} [DATE] [TIME]"),
            vec![f.fill("Deployment window: [START] - [END]")],
        ),
        NoticeKind::SupportAlert => (
            format!("Support alert: production deployment{v} [DATE] [TIME]"),
            vec![f.fill("Deployment window: [START] - [END]")],
        ),
        NoticeKind::Success => (
            format!("Production deployment complete:{v}"),
            vec![
                "Deployment status: SUCCESS".into(),
                format!("Deployment duration: {dur} minutes"),
                format!("Smoke test results: {smoke}"),
                format!("Known issues: {}", f.issues_text()),
            ],
        ),
        NoticeKind::Report => (
            format!("Deployment report: {} ({})", f.deployment, f.state),
            vec![
                format!("Deployment status: {}", f.state),
                format!("Smoke test results: {smoke}"),
                format!("Issues: {}", f.issues_text()),
            ],
        ),
        NoticeKind::RollbackComplete => (
            format!("Production deployment rolled back:{v}"),
            vec![
                "Deployment status: ROLLED BACK".into(),
                format!("Reason: {}", f.reason.as_deref().unwrap_or("not recorded")),
                format!("Issues: {}", f.issues_text()),
                "Next steps: the post-rollback actions (incident report, post-mortem, fix plan)"
                    .into(),
            ],
        ),
    }
}

/// The keys due at `now` from the record, in the order they became due,
/// whether queued already or not; `interval` overrides the document's.
pub fn due_keys(
    rb: &Runbook,
    k: &Kept,
    now: jiff::Timestamp,
    interval: Option<u64>,
) -> Vec<String> {
    let plan = comms::plan(rb);
    let interval = interval
        .or(plan.interval)
        .unwrap_or(DEFAULT_INTERVAL)
        .max(1);
    let mut out: Vec<(i64, String)> = Vec::new();
    let now_text = now.to_string();
    // a status update whose moment passed more than an interval ago is not
    // sent late (a process that starts mid-deployment does not flood)
    let fresh = |at: &str| seconds_between(at, &now_text).is_some_and(|s| s <= interval as f64);
    // the notices the document asks for (all of them, in their plain
    // default words, when it asks for none)
    let asks = |kind: NoticeKind| {
        plan.notices.is_empty()
            || plan.notices.iter().any(|n| n.kind == kind)
            || (kind == NoticeKind::RollbackComplete && plan.rollback_communication.is_some())
    };
    if let Some(s) = &k.scheduled
        && k.decision.is_none()
    {
        for (kind, key) in [
            (NoticeKind::Announcement, "announcement"),
            (NoticeKind::SupportAlert, "support-alert"),
        ] {
            if asks(kind) {
                out.push((s.seq, key.into()));
            }
        }
    }
    // the approvals waiting longer than the document's remind_after
    let roles = crate::lifecycle::decision_signers(rb);
    for (key, p) in crate::approval::reminders(rb, k, &roles, now) {
        if k.ended.is_none() {
            out.push((p.since_seq, key));
        }
    }
    let Some(go) = k.go() else {
        return out.into_iter().map(|(_, k)| k).collect();
    };
    // what became due more than an interval ago is not sent late: a server
    // started over an old store does not announce old news
    let late = |at: &str, key: &str| !fresh(at) && !k.notices.contains_key(key);
    if !late(&go.at, "status:go") {
        out.push((go.seq, "status:go".into()));
    }
    if k.ended.is_none()
        && let Some(secs) = seconds_between(&go.at, &now_text)
    {
        let slot = (secs.max(0.0) as u64) / interval;
        if slot >= 1 {
            out.push((k.seq + 1, slot_key(slot * interval)));
        }
    }
    // each procedure phase that ended: its last step's completion
    for s in rb.stages.iter().filter(|s| s.kind == StageKind::Procedure) {
        for g in &s.groups {
            let steps: Vec<&golive_runbook::Item> = g
                .items
                .iter()
                .map(|&i| &rb.items[i])
                .filter(|i| i.kind == golive_runbook::ItemKind::Step)
                .collect();
            if steps.is_empty() {
                continue;
            }
            let ends: Vec<&Event> = steps.iter().filter_map(|i| k.step_done(&i.id)).collect();
            if ends.len() == steps.len()
                && let Some(last) = ends.iter().max_by_key(|e| e.seq)
                && (fresh(&last.at) || k.notices.contains_key(&format!("status:phase:{}", g.id)))
            {
                out.push((last.seq, format!("status:phase:{}", g.id)));
            }
        }
    }
    for g in &k.gates {
        let key = format!("status:gate:{}", g.seq);
        if fresh(&g.at) || k.notices.contains_key(&key) {
            out.push((g.seq, key));
        }
    }
    if let Some(r) = &k.rollback_started
        && !late(&r.at, "rollback-initiated")
    {
        out.push((r.seq, "rollback-initiated".into()));
    }
    if let Some(e) = &k.ended {
        let mut end = |key: &str| {
            if !late(&e.at, key) {
                out.push((e.seq, key.to_string()));
            }
        };
        match e.data["outcome"].as_str() {
            Some("SUCCESS") if asks(NoticeKind::Success) => end("success"),
            Some("ROLLED BACK") if asks(NoticeKind::RollbackComplete) => end("rollback-complete"),
            _ => {}
        }
        if asks(NoticeKind::Report) {
            end("report");
        }
    }
    out.sort_by_key(|(seq, _)| *seq);
    out.into_iter().map(|(_, k)| k).collect()
}

/// The key of the periodic update `secs` after GO: `status:t+15` (minutes),
/// or `status:t+30s` for an interval of seconds.
fn slot_key(secs: u64) -> String {
    if secs.is_multiple_of(60) {
        format!("status:t+{}", secs / 60)
    } else {
        format!("status:t+{secs}s")
    }
}

/// The messages due at `now` and not queued yet.
pub fn due(
    rb: &Runbook,
    row: &golive_store::Deployment,
    k: &Kept,
    now: jiff::Timestamp,
    interval: Option<u64>,
) -> Vec<Message> {
    due_keys(rb, k, now, interval)
        .into_iter()
        .filter(|key| !k.notices.contains_key(key))
        .map(|key| message_for(rb, row, k, now, &key))
        .collect()
}

/// Every message the plan sends, filled from the record as far as it goes
/// (`golive notify --preview`): the announcements, T+0, one phase's end, the
/// rollback's start and end, the success notice and the report.
pub fn preview(
    rb: &Runbook,
    row: &golive_store::Deployment,
    k: &Kept,
    now: jiff::Timestamp,
) -> Vec<Message> {
    let plan = comms::plan(rb);
    let mut keys = vec![
        "announcement".to_string(),
        "support-alert".into(),
        "status:go".into(),
    ];
    let interval = plan.interval.unwrap_or(DEFAULT_INTERVAL);
    keys.push(slot_key(interval));
    keys.extend(
        [
            "rollback-initiated",
            "rollback-complete",
            "success",
            "report",
        ]
        .map(String::from),
    );
    keys.into_iter()
        .map(
            |key| match k.notices.get(&key).and_then(|n| n.queued.as_ref()) {
                Some(q) => queued_message(q),
                None => message_for(rb, row, k, now, &key),
            },
        )
        .collect()
}

/// A queued message, as its event recorded it.
pub fn queued_message(e: &Event) -> Message {
    let list = |v: &Value| -> Vec<String> {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str().map(str::to_string))
            .collect()
    };
    let d = &e.data;
    Message {
        key: d["key"].as_str().unwrap_or("").into(),
        kind: d["kind"].as_str().unwrap_or("").into(),
        subject: d["subject"].as_str().unwrap_or("").into(),
        body: d["body"].as_str().unwrap_or("").into(),
        to: list(&d["to"]),
        items: list(&d["items"]),
        ticks: list(&d["ticks"]),
        attach_report: d["attach_report"] == true,
        milestone: d["milestone"] == true,
    }
}

/// A queued message's event: what goes, to which channels.
fn queued_event(m: &Message, channels: &[&Channel]) -> NewEvent {
    NewEvent::new(
        "notice.queued",
        json!({
            "key": m.key, "kind": m.kind, "subject": m.subject, "body": m.body,
            "to": m.to, "items": m.items, "ticks": m.ticks,
            "attach_report": m.attach_report, "milestone": m.milestone,
            "channels": channels.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
            "shown": channels.iter().map(|c| c.shown()).collect::<Vec<_>>(),
            "sha256": m.hash(),
        }),
    )
    .actor("golive")
}

/// What a process delivering messages needs besides the deployment.
pub struct Sender<'a> {
    pub channels: &'a [Channel],
    /// Overrides the document's status interval (seconds).
    pub interval: Option<u64>,
    /// The HTML report of the deployment, for the report's attachment.
    pub report: &'a (dyn Fn(&Runbook, &golive_store::Deployment, &[Event]) -> String + Sync),
    /// First wait before a failed delivery is tried again (doubling).
    pub backoff: Duration,
}

/// What one pass of [`deliver`] did.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Delivered {
    /// (key, channel) sent now.
    pub sent: Vec<(String, String)>,
    /// (key, channel, cause) failed now.
    pub failed: Vec<(String, String, String)>,
    /// The soonest a failed delivery may be tried again.
    pub next_retry: Option<jiff::Timestamp>,
}

/// Queue what is due and not queued yet, for the channels this process
/// has: the keys queued now.
pub async fn queue(
    d: &Deployment,
    s: &Sender<'_>,
    now: jiff::Timestamp,
    l: &dyn Listener,
) -> Result<Vec<String>> {
    if s.channels.is_empty() {
        return Ok(Vec::new());
    }
    let _lock = d.lock().await?;
    let k = d.kept(l).await?;
    let due = due(&d.rb, &d.row, &k, now, s.interval);
    if due.is_empty() {
        return Ok(Vec::new());
    }
    let events: Vec<NewEvent> = due
        .iter()
        .map(|m| {
            let on: Vec<&Channel> = s.channels.iter().filter(|c| m.goes_to(c)).collect();
            queued_event(m, &on)
        })
        .collect();
    d.store.append(d.id(), &events).await?;
    let keys: Vec<String> = due.into_iter().map(|m| m.key).collect();
    l.note(&format!("queued {}", keys.join(", ")));
    Ok(keys)
}

/// This process, as a claim names it: `host:pid`.
fn claimant() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into());
    format!("{host}:{}", std::process::id())
}

/// Whether a claim still holds at `now`: its claimant lives (on this
/// machine) or its lease has not run out (elsewhere).
fn claim_holds(e: &Event, now: jiff::Timestamp) -> bool {
    let by = e.data["by"].as_str().unwrap_or("");
    let mine = claimant();
    let host = mine.split(':').next().unwrap_or("");
    if let Some((h, pid)) = by.rsplit_once(':')
        && h == host
    {
        return pid == std::process::id().to_string()
            || std::path::Path::new(&format!("/proc/{pid}")).exists();
    }
    e.data["until"]
        .as_str()
        .and_then(|u| u.parse::<jiff::Timestamp>().ok())
        .is_some_and(|u| u > now)
}

/// A delivery ready to go: (key, channel name).
fn ready(
    k: &Kept,
    names: &[&str],
    now: jiff::Timestamp,
) -> (Vec<(String, String)>, Option<jiff::Timestamp>) {
    let mut out = Vec::new();
    let mut next: Option<jiff::Timestamp> = None;
    // in the order they were queued
    let mut notices: Vec<(&String, &crate::NoticeRecord)> = k.notices.iter().collect();
    notices.sort_by_key(|(_, n)| n.queued.as_ref().map_or(i64::MAX, |q| q.seq));
    for (key, n) in notices {
        for (ch, d) in &n.deliveries {
            if !names.contains(&ch.as_str()) || d.sent.is_some() || d.attempts >= MAX_ATTEMPTS {
                continue;
            }
            if let Some(c) = &d.sending
                && claim_holds(c, now)
            {
                continue;
            }
            let retry = d
                .failed
                .as_ref()
                .and_then(|f| f.data["retry_at"].as_str()?.parse::<jiff::Timestamp>().ok());
            match retry {
                Some(r) if r > now => next = Some(next.map_or(r, |n| n.min(r))),
                _ => out.push((key.clone(), ch.clone())),
            }
        }
    }
    (out, next)
}

/// One pass: every delivery of this process's channels that is ready is
/// claimed, sent and recorded.
pub async fn deliver(d: &Deployment, s: &Sender<'_>, l: &dyn Listener) -> Result<Delivered> {
    let names: Vec<&str> = s.channels.iter().map(|c| c.name.as_str()).collect();
    let mut out = Delivered::default();
    if names.is_empty() {
        return Ok(out);
    }
    let (k, _) = Kept::read(&d.store, d.id()).await?;
    let (todo, next) = ready(&k, &names, jiff::Timestamp::now());
    out.next_retry = next;
    let roster = d.roster(None).ok();
    let mut report: Option<String> = None;
    for (key, ch) in todo {
        // claim it under the lock, from the state as it is now
        let (message, attempt) = {
            let _lock = d.lock().await?;
            let (k, _) = Kept::read(&d.store, d.id()).await?;
            let now = jiff::Timestamp::now();
            let (again, _) = ready(&k, &names, now);
            if !again.contains(&(key.clone(), ch.clone())) {
                continue;
            }
            let n = &k.notices[&key];
            let attempt = n.deliveries.get(&ch).map_or(0, |d| d.attempts) + 1;
            let until = now
                .checked_add(jiff::SignedDuration::from_secs(LEASE_SECONDS))
                .unwrap_or(now);
            d.store
                .append(
                    d.id(),
                    &[NewEvent::new(
                        "notice.sending",
                        json!({ "key": key, "channel": ch, "attempt": attempt, "by": claimant(), "until": until.to_string() }),
                    )
                    .actor("golive")],
                )
                .await?;
            (n.queued.as_ref().map(queued_message), attempt)
        };
        let Some(m) = message else { continue };
        let channel = s
            .channels
            .iter()
            .find(|c| c.name == ch)
            .expect("named above");
        let mut to = Vec::new();
        let mut unaddressed = Vec::new();
        if channel.needs_addresses() {
            for name in &m.to {
                match roster.as_ref().and_then(|r| r.addresses(name)) {
                    Some(a) => to.extend(a),
                    None => unaddressed.push(name.clone()),
                }
            }
        }
        let attachment = if m.attach_report && channel.needs_addresses() {
            if report.is_none() {
                let events = d.store.events(d.id()).await?;
                report = Some((s.report)(&d.rb, &d.row, &events));
            }
            report.clone().map(|r| (format!("{}.html", d.id()), r))
        } else {
            None
        };
        let outgoing = Outgoing {
            deployment: d.id(),
            key: &m.key,
            kind: &m.kind,
            subject: &m.subject,
            body: &m.body,
            to: &to,
            idempotency_key: format!("{}/{}/{}", d.id(), m.key, ch),
            attachment,
        };
        let result = if channel.needs_addresses() && to.is_empty() {
            Err(format!(
                "{}: no address for {}: add them to the roster's [groups] or give the people a contact",
                channel.shown(),
                m.to.join(", ")
            ))
        } else {
            channel.send(&outgoing).await
        };
        let now = jiff::Timestamp::now();
        let event = match &result {
            Ok(answer) => {
                out.sent.push((key.clone(), ch.clone()));
                l.note(&format!("sent {key} to {}", channel.shown()));
                NewEvent::new(
                    "notice.sent",
                    json!({
                        "key": key, "channel": ch, "shown": channel.shown(), "attempt": attempt,
                        "answer": answer, "sha256": m.hash(), "sender": "golive",
                        "to": to, "unaddressed": unaddressed,
                    }),
                )
            }
            Err(cause) => {
                let gave_up = attempt >= MAX_ATTEMPTS;
                let wait = s
                    .backoff
                    .saturating_mul(1 << (attempt - 1).min(16) as u32)
                    .min(Duration::from_secs(600));
                let retry = now
                    .checked_add(jiff::SignedDuration::try_from(wait).unwrap_or_default())
                    .unwrap_or(now);
                out.failed.push((key.clone(), ch.clone(), cause.clone()));
                l.note(&format!(
                    "{key} to {} failed (attempt {attempt}): {cause}{}",
                    channel.shown(),
                    if gave_up {
                        "; given up".to_string()
                    } else {
                        format!("; tried again at {}", retry.strftime("%H:%M:%S"))
                    }
                ));
                if !gave_up {
                    out.next_retry = Some(out.next_retry.map_or(retry, |n| n.min(retry)));
                }
                NewEvent::new(
                    "notice.failed",
                    json!({
                        "key": key, "channel": ch, "shown": channel.shown(), "attempt": attempt,
                        "cause": cause, "retry_at": if gave_up { Value::Null } else { json!(retry.to_string()) },
                    }),
                )
            }
        };
        d.store.append(d.id(), &[event.actor("golive")]).await?;
    }
    Ok(out)
}

/// Queue what is due, then deliver, trying failed deliveries again as their
/// time comes, for at most `wait`: what a command does after its write.
pub async fn settle(
    d: &Deployment,
    s: &Sender<'_>,
    wait: Duration,
    l: &dyn Listener,
) -> Result<Delivered> {
    let mut all = Delivered::default();
    if s.channels.is_empty() {
        return Ok(all);
    }
    let deadline = tokio::time::Instant::now() + wait;
    queue(d, s, jiff::Timestamp::now(), l).await?;
    loop {
        let pass = deliver(d, s, l).await?;
        all.sent.extend(pass.sent);
        all.failed.extend(pass.failed);
        all.next_retry = pass.next_retry;
        let Some(next) = pass.next_retry else { break };
        let wait = next
            .duration_since(jiff::Timestamp::now())
            .as_secs_f64()
            .max(0.0);
        let at = tokio::time::Instant::now() + Duration::from_secs_f64(wait);
        if at > deadline {
            break;
        }
        tokio::time::sleep_until(at).await;
    }
    Ok(all)
}

/// Each message's delivery as `status` shows it: (key, channel, state,
/// detail), state being `sent`, `sending`, `queued`, `retrying` or
/// `given up`.
pub fn deliveries(k: &Kept) -> Vec<(String, String, String, String)> {
    let mut out = Vec::new();
    for (key, n) in &k.notices {
        for (ch, d) in &n.deliveries {
            let (state, detail) = if let Some(s) = &d.sent {
                ("sent", format!("at {}", short(&s.at)))
            } else if d.sending.is_some() {
                ("sending", format!("attempt {}", d.attempts))
            } else if let Some(f) = &d.failed {
                let cause = f.data["cause"].as_str().unwrap_or("").to_string();
                if f.data["retry_at"].is_null() {
                    (
                        "given up",
                        format!("after {} attempts: {cause}", d.attempts),
                    )
                } else {
                    (
                        "retrying",
                        format!(
                            "attempt {} failed: {cause}; next at {}",
                            d.attempts,
                            short(f.data["retry_at"].as_str().unwrap_or(""))
                        ),
                    )
                }
            } else {
                ("queued", String::new())
            };
            out.push((key.clone(), ch.clone(), state.to_string(), detail));
        }
    }
    out
}

fn short(at: &str) -> String {
    at.parse::<jiff::Timestamp>()
        .map(|t| t.strftime("%H:%M:%S UTC").to_string())
        .unwrap_or_else(|_| at.to_string())
}

/// The channels' need for addresses the roster cannot meet: each notice's
/// recipient that resolves to no address, with where the document names
/// it (a lint finding when a channel sends email).
pub fn unaddressed(
    rb: &Runbook,
    roster: &golive_engine::roster::Roster,
) -> Vec<(String, golive_runbook::Loc)> {
    let plan = comms::plan(rb);
    let mut out = Vec::new();
    for n in &plan.notices {
        let Some(loc) = &n.to_loc else { continue };
        for name in &n.to {
            if roster.addresses(name).is_none() {
                out.push((name.clone(), *loc));
            }
        }
    }
    out
}

impl Deployment {
    /// Record the deployment's scheduled start (`golive run --at`): the
    /// plan's announcement and support alert become due. Refused once the
    /// go/no-go decision is taken; a second schedule replaces the first
    /// (its messages went already: they are not sent again).
    pub async fn schedule(&self, start: jiff::Timestamp, l: &dyn Listener) -> Result<()> {
        let _lock = self.lock().await?;
        let k = self.kept(l).await?;
        if k.decision.is_some() {
            return Err(crate::Error::refused(
                crate::RefusalKind::Decided,
                format!(
                    "deployment {} is past its go/no-go decision: its start is not scheduled any more",
                    self.id()
                ),
            ));
        }
        if k.scheduled
            .as_ref()
            .is_some_and(|e| e.data["start"] == start.to_string())
        {
            return Ok(());
        }
        self.store
            .append(
                self.id(),
                &[NewEvent::new(
                    "deployment.scheduled",
                    json!({ "start": start.to_string() }),
                )],
            )
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
