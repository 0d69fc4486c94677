//! The deployment's gates and ends, from the document's own words: the smoke
//! gate (`**Target:** ≥19/20`), the verification gate (10/10), the rollback
//! authority (`**Automatic Rollback:** DevOps Engineer`, `**Manual
//! Rollback:** Deployment Lead + Engineering Manager`), the Rollback Steps and
//! their `< 5 Minutes` target, and the final outcome.

use golive_runbook::{ItemKind, Runbook, StageKind};
use golive_store::Event;
use serde_json::json;

/// Each item's check results from the latest run (or watch evaluation) that
/// checked it: a run of one stage (`--only`) leaves the other stages'
/// results as they were.
pub fn latest_checks(events: &[Event]) -> std::collections::BTreeMap<&str, Vec<&Event>> {
    let mut out: std::collections::BTreeMap<&str, (usize, Vec<&Event>)> = Default::default();
    let mut generation = 0;
    for e in events {
        match e.kind.as_str() {
            "run.started" | "watch.tick" => generation += 1,
            "check" => {
                let entry = out
                    .entry(e.item.as_deref().unwrap_or(""))
                    .or_insert((generation, Vec::new()));
                if entry.0 != generation {
                    *entry = (generation, Vec::new());
                }
                entry.1.push(e);
            }
            _ => {}
        }
    }
    out.into_iter().map(|(k, (_, v))| (k, v)).collect()
}

/// What the record says of each item.
#[derive(Default)]
pub struct ItemState {
    pub checks: Vec<String>,
    pub signed_by: Vec<String>,
}

pub fn states(
    rb: &Runbook,
    events: &[golive_store::Event],
) -> std::collections::BTreeMap<String, ItemState> {
    let mut out: std::collections::BTreeMap<String, ItemState> = Default::default();
    // an item's checks: those of the latest run that checked it
    for (item, checks) in latest_checks(events) {
        out.entry(item.to_string()).or_default().checks = checks
            .iter()
            .map(|e| e.data["outcome"].as_str().unwrap_or("error").to_string())
            .collect();
    }
    for e in events.iter().filter(|e| e.kind == "signoff") {
        if let (Some(item), Some(actor)) = (&e.item, &e.actor) {
            out.entry(item.clone())
                .or_default()
                .signed_by
                .push(actor.clone());
        }
    }
    let _ = rb;
    out
}

/// An item is complete when a person signed it, or when its checks passed
/// and the runbook lets a passing check sign (`auto_sign = true`).
pub fn complete(rb: &Runbook, i: usize, st: Option<&ItemState>) -> bool {
    let Some(st) = st else { return false };
    if !st.signed_by.is_empty() {
        return true;
    }
    let auto = rb.items[i].annotations.iter().any(|a| {
        a.table
            .as_ref()
            .and_then(|t| t.get("auto_sign"))
            .and_then(|v| v.as_bool())
            == Some(true)
    });
    auto && !st.checks.is_empty() && st.checks.iter().all(|c| c == "passed")
}

/// The items a gate of `kind` counts: those of the first stage of that kind
/// that has any (a procedure step is marked done, not counted).
fn gate_items(rb: &Runbook, kind: StageKind) -> Vec<usize> {
    rb.stages
        .iter()
        .filter(|s| s.kind == kind)
        .map(|s| {
            s.all_items()
                .filter(|&i| rb.items[i].kind != ItemKind::Step)
                .collect::<Vec<usize>>()
        })
        .find(|items| !items.is_empty())
        .unwrap_or_default()
}

/// How many of `items` passed: an item with checks passed when all its
/// checks of the last run passed; one without, when someone signed it.
fn passed_of(rb: &Runbook, events: &[Event], items: &[usize]) -> usize {
    let checks: std::collections::BTreeMap<&str, Vec<bool>> = latest_checks(events)
        .into_iter()
        .map(|(k, v)| (k, v.iter().map(|e| e.data["outcome"] == "passed").collect()))
        .collect();
    let signed: std::collections::BTreeSet<&str> = events
        .iter()
        .filter(|e| e.kind == "signoff")
        .map(|e| e.item.as_deref().unwrap_or(""))
        .collect();
    items
        .iter()
        .filter(|&&i| {
            let id = rb.items[i].id.as_str();
            match checks.get(id) {
                Some(c) if !c.is_empty() => c.iter().all(|&p| p),
                _ => signed.contains(id),
            }
        })
        .count()
}

/// A stage's items and how many passed (see [`passed_of`]); (0, 0) when the
/// document has none of that kind.
pub fn stage_passed(rb: &Runbook, events: &[Event], kind: StageKind) -> (usize, usize) {
    let items = gate_items(rb, kind);
    (passed_of(rb, events, &items), items.len())
}

/// One of the document's gates: `golive gate smoke|verification`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// The smoke tests against the document's `≥N/M`.
    Smoke,
    /// The post-deployment checks, all of them.
    Verification,
}

impl Gate {
    /// Both gates, in the order a deployment meets them.
    pub const ALL: [Gate; 2] = [Gate::Smoke, Gate::Verification];

    /// The gate named `name` (`smoke`, `verification`).
    pub fn named(name: &str) -> Option<Gate> {
        Gate::ALL.into_iter().find(|g| g.name() == name)
    }

    /// Its name, as commands and events spell it.
    pub fn name(self) -> &'static str {
        match self {
            Gate::Smoke => "smoke",
            Gate::Verification => "verification",
        }
    }

    /// What it counts, in words.
    pub fn label(self) -> &'static str {
        match self {
            Gate::Smoke => "smoke tests",
            Gate::Verification => "post-deployment checks",
        }
    }

    /// The kind of stage whose items it counts.
    pub fn stage(self) -> StageKind {
        match self {
            Gate::Smoke => StageKind::Smoke,
            Gate::Verification => StageKind::Verification,
        }
    }

    /// How the document names such a stage (the stage's title, as the
    /// importer classifies it).
    fn titled(self) -> &'static str {
        match self {
            Gate::Smoke => "a `##` stage whose title says \"smoke\"",
            Gate::Verification => {
                "a `##` stage whose title says \"post-deployment\" or \"verification\""
            }
        }
    }

    /// Whether the document gives this gate anything to count.
    pub fn counts_anything(self, rb: &Runbook) -> bool {
        !gate_items(rb, self.stage()).is_empty()
    }

    /// The gate evaluated from the record, or why it cannot be: a gate with
    /// nothing to count would pass 0/0, so it is refused, naming what was
    /// looked for.
    pub fn tally(self, rb: &Runbook, events: &[Event]) -> Result<Tally, String> {
        let items = gate_items(rb, self.stage());
        if items.is_empty() {
            let stages: Vec<String> = rb
                .stages
                .iter()
                .filter(|s| s.kind == self.stage())
                .map(|s| {
                    format!(
                        "{} {}",
                        s.address,
                        golive_runbook::text::strip_trailing_parens(s.title())
                    )
                })
                .collect();
            let found = match stages.len() {
                0 => format!(
                    "no stage of the document is one of {} (golive looks for {})",
                    self.label(),
                    self.titled()
                ),
                1 => format!(
                    "{} has no items (`- [ ]` tasks or table rows with a checkbox) to count",
                    stages[0]
                ),
                _ => format!(
                    "{} have no items (`- [ ]` tasks or table rows with a checkbox) to count",
                    stages.join(", ")
                ),
            };
            return Err(format!(
                "the {} gate has nothing to count: {found}; it would pass 0/0, so it is not evaluated (add the {} to the document as items, or leave this gate out: golive finish does not ask for it)",
                self.name(),
                self.label()
            ));
        }
        let total = items.len();
        let passed = passed_of(rb, events, &items);
        let target = match self {
            Gate::Smoke => smoke_target(rb, total),
            Gate::Verification => total,
        };
        Ok(Tally {
            passed,
            total,
            target,
        })
    }
}

/// A gate's count: items passed of all, against the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    pub passed: usize,
    pub total: usize,
    pub target: usize,
}

impl Tally {
    pub fn passes(self) -> bool {
        self.passed >= self.target
    }
}

/// The gates a deployment must pass before it ends SUCCESS: those the
/// document gives something to count.
pub fn required_gates(rb: &Runbook) -> Vec<Gate> {
    Gate::ALL
        .into_iter()
        .filter(|g| g.counts_anything(rb))
        .collect()
}

/// An item still open in a stage that is due, and the role that signs it
/// (its `**Responsible:**` field), or `None`: anyone on the roster.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenItem {
    pub item: usize,
    pub role: Option<String>,
}

/// The stages whose items are due, from the deployment's state:
///
/// - before the decision: the pre-deployment stages (what GO needs);
/// - after GO, until the end: the stages of the deployment itself
///   (pre-deployment, procedure, smoke, verification, communication, and
///   any stage golive cannot place, such as a plain "Deployment"), and any
///   other stage before the last procedure, smoke or verification stage;
/// - once the rollback has started: the Rollback stage's actions (its items
///   other than the criteria and the Rollback Steps);
/// - after SUCCESS: as after GO, and the Final Sign-off and hypercare;
/// - after NO-GO: none.
///
/// Never the decision stage (set by `golive decide`) nor the appendices.
pub fn due_stages(rb: &Runbook, events: &[Event]) -> Vec<usize> {
    use StageKind::*;
    let during = |k: StageKind| {
        matches!(
            k,
            PreDeployment | Procedure | Smoke | Verification | Communication | Other
        )
    };
    let last_deploying = rb
        .stages
        .iter()
        .rposition(|s| matches!(s.kind, Procedure | Smoke | Verification));
    let deploying = |i: usize, k: StageKind| {
        during(k)
            || (last_deploying.is_some_and(|l| i < l)
                && !matches!(k, Decision | Rollback | Appendix))
    };
    let due = |i: usize, k: StageKind| match state(events) {
        "PRE-DEPLOYMENT" => k == PreDeployment,
        "DEPLOYING" | "VERIFYING" | "ROLLBACK DECISION RAISED" => deploying(i, k),
        "ROLLING BACK" | "ROLLED BACK" => k == Rollback,
        "SUCCEEDED" => deploying(i, k) || matches!(k, SignOff | Hypercare),
        _ => false,
    };
    rb.stages
        .iter()
        .enumerate()
        .filter(|(i, s)| due(*i, s.kind))
        .map(|(i, _)| i)
        .collect()
}

/// Every open item of the stages that are due ([`due_stages`]), in document
/// order: not complete (as `status` counts), not a procedure step (those are
/// marked done, in order) and not a rollback criterion (a rule, not a task).
pub fn open_items(rb: &Runbook, events: &[Event]) -> Vec<OpenItem> {
    let st = states(rb, events);
    let criteria: std::collections::BTreeSet<usize> = golive_engine::rules::rollback_rules(rb)
        .into_iter()
        .map(|r| r.item)
        .collect();
    due_stages(rb, events)
        .into_iter()
        .flat_map(|s| rb.stages[s].all_items())
        .filter(|&i| rb.items[i].kind != ItemKind::Step && !criteria.contains(&i))
        .filter(|&i| !complete(rb, i, st.get(&rb.items[i].id)))
        .map(|i| OpenItem {
            item: i,
            role: rb.items[i]
                .field("Responsible")
                .map(|f| f.value.trim().to_string())
                .filter(|r| !r.is_empty()),
        })
        .collect()
}

/// The smallest number of passing smoke tests the document accepts: the
/// `≥N/M` of its Smoke Test Summary, or all of them.
pub fn smoke_target(rb: &Runbook, total: usize) -> usize {
    let text = &rb.source;
    for (i, _) in text.match_indices('≥') {
        let rest = &text[i + '≥'.len_utf8()..];
        let n: String = rest.chars().take_while(char::is_ascii_digit).collect();
        let after = &rest[n.len()..];
        if let (Ok(n), Some(m)) = (n.parse::<usize>(), after.strip_prefix('/')) {
            let m: String = m.chars().take_while(char::is_ascii_digit).collect();
            if m.parse::<usize>().ok() == Some(total) && n <= total {
                return n;
            }
        }
    }
    total
}

/// Who may roll back: (automatic: one role, manual: several distinct roles).
pub fn rollback_authority(rb: &Runbook) -> (String, Vec<String>) {
    let mut auto = "DevOps Engineer".to_string();
    let mut manual = vec![
        "Deployment Lead".to_string(),
        "Engineering Manager".to_string(),
    ];
    for f in rb
        .stages
        .iter()
        .filter(|s| s.kind == StageKind::Rollback)
        .flat_map(|s| {
            s.loose
                .fields
                .iter()
                .chain(s.groups.iter().flat_map(|g| g.loose.fields.iter()))
        })
    {
        let who = f.value.split('(').next().unwrap_or("").trim();
        if f.label.eq_ignore_ascii_case("Automatic Rollback") && !who.is_empty() {
            auto = who.to_string();
        } else if f.label.eq_ignore_ascii_case("Manual Rollback") && !who.is_empty() {
            manual = who
                .split('+')
                .map(|r| r.trim().to_string())
                .filter(|r| !r.is_empty())
                .collect();
        }
    }
    (auto, manual)
}

/// Whether a person may sign `item`: a procedure step is marked done, and
/// the items of the go/no-go decision (GO, NO-GO) are set by the decision
/// itself, taken with `golive decide` by the people the document names.
pub fn signable(rb: &Runbook, item: usize) -> Result<(), String> {
    let it = &rb.items[item];
    if it.kind == ItemKind::Step {
        return Err(format!(
            "{} is a procedure step: it is marked done, not signed",
            it.address
        ));
    }
    if rb.stages[it.stage].kind == StageKind::Decision {
        return Err(format!(
            "{} {} belongs to the go/no-go decision: it is set by the decision, signed with golive decide go|no-go --as NAME --role ROLE, not by golive sign",
            it.address, it.title
        ));
    }
    Ok(())
}

/// Whether the deployment has ended: a NO-GO decision, or its end recorded.
pub fn ended(events: &[Event]) -> bool {
    events.iter().any(|e| {
        e.kind == "deployment.ended" || (e.kind == "decision" && e.data["verdict"] == "NO-GO")
    })
}

/// The GO decision, when it was taken.
pub fn go_decision(events: &[Event]) -> Option<&Event> {
    events
        .iter()
        .find(|e| e.kind == "decision" && e.data["verdict"] == "GO")
}

/// Whether a rollback may still be raised: after GO, before any rollback
/// and before the end.
pub fn may_raise(events: &[Event]) -> bool {
    go_decision(events).is_some()
        && !events.iter().any(|e| {
            matches!(
                e.kind.as_str(),
                "rollback.raised" | "rollback.started" | "deployment.ended"
            )
        })
}

/// The events that raise the rollback decision for `reason`, on the
/// criterion `item`: with automatic authority the rollback also starts at
/// once; otherwise it waits for the manual authority.
pub fn raise(
    rb: &Runbook,
    item: usize,
    reason: &str,
    automatic: bool,
) -> Vec<golive_store::NewEvent> {
    let (auto, manual) = rollback_authority(rb);
    let it = &rb.items[item];
    let mut out = vec![
        golive_store::NewEvent::new(
            "rollback.raised",
            json!({
                "reason": reason,
                "authority": if automatic { "automatic" } else { "manual" },
                "by": if automatic { vec![auto] } else { manual },
                "rule": it.title,
            }),
        )
        .item(&it.id),
    ];
    if automatic {
        out.push(automatic_start(rb, reason));
    }
    out
}

/// A rollback raised with automatic authority starts at once, in the name
/// of the role the document gives that authority: nobody is waited for.
pub fn automatic_start(rb: &Runbook, reason: &str) -> golive_store::NewEvent {
    let (auto, _) = rollback_authority(rb);
    golive_store::NewEvent::new(
        "rollback.started",
        json!({ "reason": reason, "authority": "automatic", "signers": [], "by": auto }),
    )
    .actor("golive")
}

/// The Rollback Steps (R1–R5) and their group's budget, in seconds.
pub fn rollback_steps(rb: &Runbook) -> (Vec<usize>, Option<u64>) {
    for s in rb.stages.iter().filter(|s| s.kind == StageKind::Rollback) {
        for g in &s.groups {
            let steps: Vec<usize> = g
                .items
                .iter()
                .copied()
                .filter(|&i| rb.items[i].kind == ItemKind::Step)
                .collect();
            if !steps.is_empty() {
                return (steps, g.heading.declared.budget.as_ref().map(|b| b.seconds));
            }
        }
    }
    (Vec::new(), None)
}

/// The deployment's state, from its record.
pub fn state(events: &[Event]) -> &'static str {
    if let Some(e) = events.iter().rev().find(|e| e.kind == "deployment.ended") {
        return match e.data["outcome"].as_str() {
            Some("SUCCESS") => "SUCCEEDED",
            Some("ROLLED BACK") => "ROLLED BACK",
            _ => "ENDED",
        };
    }
    if events.iter().any(|e| e.kind == "rollback.started") {
        return "ROLLING BACK";
    }
    if events.iter().any(|e| e.kind == "rollback.raised") {
        return "ROLLBACK DECISION RAISED";
    }
    match events
        .iter()
        .find(|e| e.kind == "decision")
        .map(|e| e.data["verdict"].as_str().unwrap_or(""))
    {
        Some("NO-GO") => "NO-GO",
        Some(_) => {
            if events
                .iter()
                .any(|e| e.kind == "gate" && e.data["stage"] == "smoke")
            {
                "VERIFYING"
            } else {
                "DEPLOYING"
            }
        }
        None => "PRE-DEPLOYMENT",
    }
}

/// Event data for a gate evaluation.
pub fn gate_event(stage: &str, passed: usize, total: usize, target: usize) -> serde_json::Value {
    json!({ "stage": stage, "passed": passed, "total": total, "target": target, "result": if passed >= target { "pass" } else { "fail" } })
}
