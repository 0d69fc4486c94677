//! The deployment's gates and ends, from the document's own words: the smoke
//! gate (`**Target:** ≥19/20`), the verification gate (10/10), the rollback
//! authority (`**Automatic Rollback:** DevOps Engineer`, `**Manual
//! Rollback:** Deployment Lead + Engineering Manager`), the Rollback Steps and
//! their `< 5 Minutes` target, and the final outcome.

use crate::Kept;
use golive_runbook::{ItemKind, Runbook, StageKind};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};

/// What the record says of each item: the outcomes of its checks in the
/// latest run that checked it, and who signed it.
#[derive(Default)]
pub struct ItemState {
    pub checks: Vec<String>,
    /// Who signed it done (a sign-off with `--failed` or `--na` is not one).
    pub signed_by: Vec<String>,
    /// Who signed it done over check outcomes that have since changed for
    /// the worse: stale sign-offs, to be given again ([`crate::approval`]).
    pub stale_by: Vec<String>,
    /// Who signed it as failed (`golive sign --failed`), with what they saw.
    pub failed_by: Vec<(String, String)>,
    /// Why the item is not to be done: skipped with a reason, or an item of
    /// an option not chosen ([`set_aside`]).
    pub set_aside: Option<String>,
}

/// A stage that names the roles signing it, with the roles signed and
/// those still to sign, in the document's order.
#[derive(Debug, Clone, PartialEq)]
pub struct StageSignoffs {
    pub stage: usize,
    pub signed: Vec<(String, golive_store::Event)>,
    pub waiting: Vec<String>,
}

/// Every stage with signers, and where its sign-off stands.
pub fn stage_signoffs(rb: &Runbook, k: &Kept) -> Vec<StageSignoffs> {
    rb.stages
        .iter()
        .enumerate()
        .filter(|(_, s)| !s.signers.is_empty())
        .map(|(i, s)| {
            let mut signed = Vec::new();
            let mut waiting = Vec::new();
            for role in &s.signers {
                let by = k.stage_signoffs.iter().find(|e| {
                    e.data["stage"] == s.id.as_str()
                        && e.data["role"]
                            .as_str()
                            .is_some_and(|r| r.eq_ignore_ascii_case(role))
                });
                match by {
                    Some(e) => signed.push((role.clone(), e.clone())),
                    None => waiting.push(role.clone()),
                }
            }
            StageSignoffs {
                stage: i,
                signed,
                waiting,
            }
        })
        .collect()
}

/// The items set aside, with why: optional items skipped with a reason,
/// and the items of the options not chosen in a "choose one" group once a
/// person chose one.
pub fn set_aside(rb: &Runbook, k: &Kept) -> BTreeMap<usize, String> {
    let mut out = BTreeMap::new();
    let na: BTreeMap<&str, &golive_store::Event> = latest_signoffs(k)
        .into_iter()
        .filter(|(_, e)| signoff_result(e) == SignResult::NotApplicable)
        .collect();
    for (i, it) in rb.items.iter().enumerate() {
        if let Some(e) = k.skipped.get(&it.id) {
            let reason = e.data["reason"].as_str().unwrap_or("");
            out.insert(i, format!("skipped: {reason}"));
        } else if let Some(e) = na.get(it.id.as_str()) {
            let why = e.data["comment"].as_str().unwrap_or("");
            out.insert(i, format!("N/A: {why}"));
        }
    }
    for (_, g) in rb.groups() {
        let Some(e) = k.chosen.get(&g.id) else {
            continue;
        };
        let chosen = e.data["option"].as_str().unwrap_or("");
        for option in g.choose_one.iter().filter(|o| o.title != chosen) {
            for &i in &option.items {
                out.entry(i)
                    .or_insert_with(|| format!("not the option chosen ({chosen})"));
            }
        }
    }
    out
}

pub fn states(rb: &Runbook, k: &Kept) -> BTreeMap<String, ItemState> {
    let rules = crate::approval::rules(rb);
    let mut out: BTreeMap<String, ItemState> = Default::default();
    for (i, why) in set_aside(rb, k) {
        out.entry(rb.items[i].id.clone()).or_default().set_aside = Some(why);
    }
    for (item, c) in &k.checks {
        out.entry(item.clone()).or_default().checks = c
            .events
            .iter()
            .map(|e| e.data["outcome"].as_str().unwrap_or("error").to_string())
            .collect();
    }
    for e in &k.signoffs {
        if let (Some(item), Some(actor)) = (&e.item, &e.actor) {
            // the latest result wins: done after failed is fixed, failed
            // after done is broken again
            let st = out.entry(item.clone()).or_default();
            match signoff_result(e) {
                SignResult::Done if crate::approval::stale(&rules, k, e) => {
                    st.stale_by.push(actor.clone());
                }
                SignResult::Done => {
                    st.failed_by.clear();
                    st.stale_by.retain(|a| a != actor);
                    if !st.signed_by.contains(actor) {
                        st.signed_by.push(actor.clone());
                    }
                }
                SignResult::Failed => {
                    st.signed_by.clear();
                    st.stale_by.clear();
                    st.failed_by.push((
                        actor.clone(),
                        e.data["comment"].as_str().unwrap_or("").to_string(),
                    ));
                }
                SignResult::NotApplicable => {}
            }
        }
    }
    // the plan's items a message golive sent fulfilled
    for item in k.sent_items().into_keys() {
        if rb.items.iter().any(|i| i.id == item) {
            out.entry(item).or_default().signed_by.push("golive".into());
        }
    }
    out
}

pub use crate::approval::{SignResult, signoff_result};

/// Each item's latest sign-off: its manual result.
pub fn latest_signoffs(k: &Kept) -> BTreeMap<&str, &golive_store::Event> {
    k.signoffs
        .iter()
        .filter_map(|e| Some((e.item.as_deref()?, e)))
        .collect()
}

/// The items signed done over checks that did not pass, as their latest
/// sign-off says, with that sign-off: what status, the decision's summary
/// and every report show as overrides.
pub fn overrides<'k>(rb: &Runbook, k: &'k Kept) -> Vec<(usize, &'k golive_store::Event)> {
    let latest = latest_signoffs(k);
    rb.items
        .iter()
        .enumerate()
        .filter_map(|(i, it)| {
            let e = *latest.get(it.id.as_str())?;
            (e.data["override"] == true).then_some((i, e))
        })
        .collect()
}

/// An override as one line: `1.2.3 Title — Ann (Role): why`.
pub fn override_line(rb: &Runbook, i: usize, e: &golive_store::Event) -> String {
    format!(
        "{} {} — {} ({}): {}",
        rb.items[i].address,
        rb.items[i].title,
        e.actor.as_deref().unwrap_or("?"),
        e.data["role"].as_str().unwrap_or("?"),
        e.data["comment"].as_str().unwrap_or("")
    )
}

/// An item is complete when the people it needs signed it (one, or the
/// N distinct people of "N of ROLE", [`crate::approval`]), when it was set
/// aside ([`set_aside`]), or when its checks passed and the runbook lets a
/// passing check sign (`auto_sign = true`).
pub fn complete(rb: &Runbook, i: usize, st: Option<&ItemState>) -> bool {
    let Some(st) = st else { return false };
    let (_, needs) = crate::approval::responsible(rb, i);
    if st.signed_by.len() >= needs || st.set_aside.is_some() {
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
fn passed_of(rb: &Runbook, k: &Kept, items: &[usize]) -> usize {
    let signed: BTreeSet<&str> = latest_signoffs(k)
        .into_iter()
        .filter(|(_, e)| signoff_result(e) == SignResult::Done)
        .map(|(item, _)| item)
        .collect();
    items
        .iter()
        .filter(|&&i| {
            let id = rb.items[i].id.as_str();
            match k.checks_of(id) {
                [] => signed.contains(id),
                c => c.iter().all(|e| e.data["outcome"] == "passed"),
            }
        })
        .count()
}

/// A stage's items and how many passed (see [`passed_of`]); (0, 0) when the
/// document has none of that kind.
pub fn stage_passed(rb: &Runbook, k: &Kept, kind: StageKind) -> (usize, usize) {
    let items = gate_items(rb, kind);
    (passed_of(rb, k, &items), items.len())
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
    pub fn tally(self, rb: &Runbook, k: &Kept) -> Result<Tally, String> {
        let all = gate_items(rb, self.stage());
        // an item set aside is not judged: it leaves the count, and the
        // failures the target allows stay what they were
        let aside = set_aside(rb, k);
        let items: Vec<usize> = all
            .iter()
            .copied()
            .filter(|i| !aside.contains_key(i))
            .collect();
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
        let tried: BTreeSet<&str> = latest_signoffs(k)
            .into_iter()
            .filter(|(_, e)| signoff_result(e) != SignResult::NotApplicable)
            .map(|(item, _)| item)
            .collect();
        let untried: Vec<usize> = items
            .iter()
            .copied()
            .filter(|&i| {
                let id = rb.items[i].id.as_str();
                k.checks_of(id).is_empty() && !tried.contains(id)
            })
            .collect();
        let total = items.len();
        let passed = passed_of(rb, k, &items);
        let target = match self {
            Gate::Smoke => smoke_target(rb, all.len()).saturating_sub(all.len() - total),
            Gate::Verification => total,
        };
        Ok(Tally {
            passed,
            total,
            target,
            untried,
        })
    }
}

/// A gate's count: items passed of all, against the target, and the items
/// with no result yet (no check ran, nobody signed them passed or failed):
/// while there are any the gate decides nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tally {
    pub passed: usize,
    pub total: usize,
    pub target: usize,
    pub untried: Vec<usize>,
}

impl Tally {
    pub fn passes(&self) -> bool {
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
pub fn due_stages(rb: &Runbook, k: &Kept) -> Vec<usize> {
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
    let now = state(k);
    let due = |i: usize, k: StageKind| match now {
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
pub fn open_items(rb: &Runbook, k: &Kept) -> Vec<OpenItem> {
    let st = states(rb, k);
    let criteria: BTreeSet<usize> = golive_engine::rules::rollback_rules(rb)
        .into_iter()
        .map(|r| r.item)
        .collect();
    due_stages(rb, k)
        .into_iter()
        .flat_map(|s| rb.stages[s].all_items())
        .filter(|&i| rb.items[i].kind != ItemKind::Step && !criteria.contains(&i))
        .filter(|&i| !complete(rb, i, st.get(&rb.items[i].id)))
        .map(|i| OpenItem {
            item: i,
            role: crate::approval::responsible(rb, i).0,
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
pub fn rollback_authority(rb: &Runbook, team: &TeamRoles) -> (String, Vec<String>) {
    let r = roles(rb, team);
    (r.automatic_rollback, r.manual_rollback)
}

pub use golive_engine::roster::TeamRoles;

/// The roles a deployment of the document uses, and where each comes from.
#[derive(Debug, Clone, PartialEq)]
pub struct Roles {
    /// Who signs the go/no-go decision (distinct people, one per role).
    pub decision: Vec<String>,
    /// Who decides a rollback raised for a person to decide (or to
    /// continue instead), each role signed by a distinct person.
    pub manual_rollback: Vec<String>,
    /// Who a rollback raised with automatic authority runs in the name of.
    pub automatic_rollback: String,
    /// For each that the document does not state, the default used and why
    /// (`golive status` and `golive lint` say so).
    pub defaults: Vec<String>,
}

/// The roles of [`Roles`]: the document's (the decision stage's
/// `**Sign-offs:**` lines, the rollback stage's `**Manual Rollback:**` and
/// `**Automatic Rollback:**` fields); where it states none, the team's
/// (`[roles]` of its roster file); where neither does, a default that is
/// said: the decision is signed by a Deployment Lead, a rollback is decided
/// by the decision's signers, and automatic authority is the first of
/// those.
pub fn roles(rb: &Runbook, team: &TeamRoles) -> Roles {
    let mut defaults = Vec::new();
    let stated = rb.stages.iter().any(|s| s.kind == StageKind::Decision);
    let decision = if stated || team.decision.is_empty() {
        decision_signers(rb)
    } else {
        team.decision.clone()
    };
    if !stated {
        defaults.push(if team.decision.is_empty() {
            format!(
                "the decision is signed by the {}: the document has no go/no-go stage naming its signers",
                decision.join(" + ")
            )
        } else {
            format!(
                "the decision is signed by the {}: the roster's [roles] decision (the document has no go/no-go stage)",
                decision.join(" + ")
            )
        });
    }
    let (mut auto, mut manual) = (None, None);
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
            auto = Some(who.to_string());
        } else if f.label.eq_ignore_ascii_case("Manual Rollback") && !who.is_empty() {
            let roles: Vec<String> = who
                .split('+')
                .map(|r| r.trim().to_string())
                .filter(|r| !r.is_empty())
                .collect();
            if !roles.is_empty() {
                manual = Some(roles);
            }
        }
    }
    let manual_rollback = manual.unwrap_or_else(|| {
        if team.rollback.is_empty() {
            defaults.push(format!(
                "a rollback is decided by the {} (the decision's signers): the document names no `Manual Rollback:` authority",
                decision.join(" + ")
            ));
            decision.clone()
        } else {
            defaults.push(format!(
                "a rollback is decided by the {}: the roster's [roles] rollback (the document names no `Manual Rollback:` authority)",
                team.rollback.join(" + ")
            ));
            team.rollback.clone()
        }
    });
    let automatic_rollback = auto.unwrap_or_else(|| match &team.automatic_rollback {
        Some(role) => {
            defaults.push(format!(
                "an automatic rollback runs in the name of the {role}: the roster's [roles] automatic_rollback (the document names no `Automatic Rollback:` authority)"
            ));
            role.clone()
        }
        None => {
            let first = manual_rollback[0].clone();
            defaults.push(format!(
                "an automatic rollback runs in the name of the {first}: the document names no `Automatic Rollback:` authority"
            ));
            first
        }
    });
    Roles {
        decision,
        manual_rollback,
        automatic_rollback,
        defaults,
    }
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

/// Whether a rollback may still be raised: after GO, before any rollback
/// and before the end.
pub fn may_raise(k: &Kept) -> bool {
    k.go().is_some()
        && k.rollback_raised.is_none()
        && k.rollback_started.is_none()
        && k.ended.is_none()
}

/// The events that raise the rollback decision for `reason`, on the
/// criterion `item`: with automatic authority the rollback also starts at
/// once; otherwise it waits for the manual authority.
pub fn raise(
    rb: &Runbook,
    item: usize,
    reason: &str,
    automatic: bool,
    team: &TeamRoles,
) -> Vec<golive_store::NewEvent> {
    let (auto, manual) = rollback_authority(rb, team);
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
        out.push(automatic_start(rb, reason, team));
    }
    out
}

/// The rollback a run's results raise after GO, and the line that says so:
/// the document's "health checks failing" criterion when a health check
/// failed (automatic authority: it starts at once); else the failing checks
/// marked `on_fail = "rollback"`, with the authority of the criterion they
/// check, manual when the document states none.
pub fn raised_by_results(
    rb: &Runbook,
    k: &Kept,
    results: &[golive_engine::CheckResult],
    team: impl FnOnce() -> Result<TeamRoles, String>,
) -> Result<Option<(Vec<golive_store::NewEvent>, String)>, String> {
    if !may_raise(k) {
        return Ok(None);
    }
    let failed = |r: &&golive_engine::CheckResult| {
        matches!(
            r.outcome,
            golive_engine::Outcome::Failed | golive_engine::Outcome::Error(_)
        )
    };
    let named = |r: &golive_engine::CheckResult| {
        let it = &rb.items[r.check.item];
        format!("{} {}", it.address, it.title)
    };
    let rules = golive_engine::rules::rollback_rules(rb);
    let health_rule = rules
        .iter()
        .find(|r| r.kind == golive_engine::rules::RuleKind::HealthChecksFailing);
    if let Some(rule) = health_rule {
        let failing: Vec<String> = results
            .iter()
            .filter(failed)
            .filter(|r| {
                rb.items[r.check.item]
                    .title
                    .to_lowercase()
                    .contains("health")
            })
            .map(named)
            .collect();
        if !failing.is_empty() {
            let team = &team()?;
            let by = rollback_authority(rb, team).0;
            let reason = format!("health checks failing: {}", failing.join(", "));
            let line = format!(
                "ROLLBACK INITIATED with automatic authority ({by}): {reason}; the Rollback Steps run now"
            );
            return Ok(Some((raise(rb, rule.item, &reason, true, team), line)));
        }
    }
    let marked: Vec<&golive_engine::CheckResult> = results
        .iter()
        .filter(failed)
        .filter(|r| r.check.on_fail.as_deref() == Some("rollback"))
        .collect();
    let Some(first) = marked.first() else {
        return Ok(None);
    };
    // the roster is read only when there is a rollback to raise
    let team = &team()?;
    let item = first.check.item;
    let automatic = rules.iter().any(|r| r.item == item && r.automatic);
    let reason = format!(
        "{} failed (on_fail = \"rollback\")",
        marked
            .iter()
            .map(|r| named(r))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let (auto, manual) = rollback_authority(rb, team);
    let line = if automatic {
        format!("ROLLBACK INITIATED with automatic authority ({auto}): {reason}")
    } else {
        format!(
            "ROLLBACK DECISION RAISED: {reason}; for {} to decide (golive rollback, or golive rollback --continue)",
            manual.join(" + ")
        )
    };
    Ok(Some((raise(rb, item, &reason, automatic, team), line)))
}

/// A rollback raised with automatic authority starts at once, in the name
/// of the role the document gives that authority: nobody is waited for.
pub fn automatic_start(rb: &Runbook, reason: &str, team: &TeamRoles) -> golive_store::NewEvent {
    let (auto, _) = rollback_authority(rb, team);
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
pub fn state(k: &Kept) -> &'static str {
    if let Some(e) = &k.ended {
        return match e.data["outcome"].as_str() {
            Some("SUCCESS") => "SUCCEEDED",
            Some("ROLLED BACK") => "ROLLED BACK",
            _ => "ENDED",
        };
    }
    if k.rollback_started.is_some() {
        return "ROLLING BACK";
    }
    if k.rollback_raised.is_some() {
        return "ROLLBACK DECISION RAISED";
    }
    match k
        .decision
        .as_ref()
        .map(|e| e.data["verdict"].as_str().unwrap_or(""))
    {
        Some("NO-GO") => "NO-GO",
        Some(_) => {
            if k.gates.iter().any(|e| e.data["stage"] == "smoke") {
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

/// The roles whose distinct holders must sign the go/no-go decision: the
/// `- Role: ____` lines under the decision stage's `**Sign-offs:**` label
/// (Deployment Lead, Engineering Manager, Product Manager in the reference).
pub fn decision_signers(rb: &Runbook) -> Vec<String> {
    let Some(stage) = rb.stages.iter().find(|s| s.kind == StageKind::Decision) else {
        return vec!["Deployment Lead".into()];
    };
    let start = stage.heading.loc.start;
    let end = rb
        .stages
        .iter()
        .map(|s| s.heading.loc.start)
        .find(|&x| x > start)
        .unwrap_or(rb.source.len());
    let text = &rb.source[start..end];
    let mut roles = Vec::new();
    let mut inside = false;
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with("**") {
            inside = t.to_lowercase().starts_with("**sign-off");
            continue;
        }
        if inside
            && let Some(rest) = t.strip_prefix("- ").or_else(|| t.strip_prefix("* "))
            && let Some((role, _)) = rest.split_once(':')
        {
            roles.push(golive_runbook::text::plain(role));
        }
    }
    if roles.is_empty() {
        roles.push("Deployment Lead".into());
    }
    roles
}

/// The deployment's duration target in seconds: the Final Sign-off's
/// `Deployment Duration: … (Target: <1 hour)`, or an hour.
pub fn duration_target(rb: &Runbook) -> u64 {
    rb.stages
        .iter()
        .filter(|s| s.kind == StageKind::SignOff)
        .flat_map(|s| s.loose.fields.iter())
        .find(|f| f.label.eq_ignore_ascii_case("Deployment Duration"))
        .and_then(|f| {
            f.value
                .split("Target:")
                .nth(1)
                .and_then(|t| golive_runbook::text::parse_budget(t.trim_end_matches(')').trim()))
        })
        .map_or(3600, |b| b.seconds)
}

/// Items complete per group of `stage` (title without remarks, count), as
/// the record says.
pub fn group_completion(
    rb: &Runbook,
    k: &Kept,
    stage: &golive_runbook::Stage,
) -> Vec<(String, usize)> {
    let st = states(rb, k);
    stage
        .groups
        .iter()
        .map(|g| {
            let done = g
                .items
                .iter()
                .filter(|&&i| complete(rb, i, st.get(&rb.items[i].id)))
                .count();
            (
                golive_runbook::text::strip_trailing_parens(g.title()).to_string(),
                done,
            )
        })
        .collect()
}

/// A phase of the procedure as the record shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct PhaseTiming {
    pub title: String,
    pub done: usize,
    pub total: usize,
    pub seconds: f64,
    pub budget: Option<u64>,
    /// Its steps that took longer than their own budget.
    pub overruns: Vec<String>,
    /// Each of its steps, in order.
    pub steps: Vec<StepTiming>,
}

/// A step of a phase: done or not, and how long it took against its own
/// budget (as recorded when it was marked done).
#[derive(Debug, Clone, PartialEq)]
pub struct StepTiming {
    pub item: usize,
    pub done: bool,
    pub seconds: Option<f64>,
    pub budget: Option<u64>,
    pub over: bool,
}

/// Each phase's steps done and time taken at `now`: a phase starts when the
/// one before it ends (the first at the GO decision) and ends with its last
/// step; an unfinished phase is timed until `now`.
pub fn phase_timings(rb: &Runbook, k: &Kept, now: jiff::Timestamp) -> Vec<PhaseTiming> {
    use crate::time::{minutes_text, seconds_between};
    let now = now.to_string();
    let done = |i: &golive_runbook::Item| k.step_done(&i.id).map(|e| e.at.as_str());
    let mut start = k.go().map(|g| g.at.clone());
    let mut out = Vec::new();
    for s in rb.stages.iter().filter(|s| s.kind == StageKind::Procedure) {
        for g in &s.groups {
            let steps: Vec<&golive_runbook::Item> = g
                .items
                .iter()
                .map(|&i| &rb.items[i])
                .filter(|i| i.kind == ItemKind::Step)
                .collect();
            if steps.is_empty() {
                continue;
            }
            let finished = steps.iter().filter(|i| done(i).is_some()).count();
            let end = steps
                .iter()
                .filter_map(|i| done(i))
                .max()
                .map(|s| s.to_string());
            let seconds = match &start {
                Some(st) => {
                    let until = if finished == steps.len() {
                        end.clone().unwrap_or_else(|| now.clone())
                    } else {
                        now.clone()
                    };
                    let secs = seconds_between(st, &until).unwrap_or(0.0).max(0.0);
                    start = (finished == steps.len()).then_some(until);
                    secs
                }
                None => 0.0,
            };
            let overruns = steps
                .iter()
                .filter_map(|i| {
                    let e = k.step_done(&i.id)?;
                    let t = &e.data["timing"];
                    (t["overrun"] == true).then(|| {
                        format!(
                            "{} {}: {} of {} OVER BUDGET",
                            i.address,
                            golive_runbook::text::strip_trailing_parens(&i.title),
                            minutes_text(t["seconds"].as_f64().unwrap_or(0.0)),
                            minutes_text(t["budget_seconds"].as_f64().unwrap_or(0.0))
                        )
                    })
                })
                .collect();
            let step_timings = g
                .items
                .iter()
                .copied()
                .filter(|&i| rb.items[i].kind == ItemKind::Step)
                .map(|i| {
                    let e = k.step_done(&rb.items[i].id);
                    let t = e.map(|e| &e.data["timing"]);
                    StepTiming {
                        item: i,
                        done: e.is_some(),
                        seconds: t.and_then(|t| t["seconds"].as_f64()),
                        budget: rb.items[i].declared.budget.as_ref().map(|b| b.seconds),
                        over: t.is_some_and(|t| t["overrun"] == true),
                    }
                })
                .collect();
            out.push(PhaseTiming {
                steps: step_timings,
                overruns,
                title: golive_runbook::text::strip_trailing_parens(g.title()).to_string(),
                done: finished,
                total: steps.len(),
                seconds,
                budget: g.heading.declared.budget.as_ref().map(|b| b.seconds),
            });
        }
    }
    out
}

/// What the checks whose condition reads `baseline.…` compare with: before
/// the GO decision they record what they observe (the last run before GO
/// is the baseline), after it each compares with its own baseline, and one
/// that never ran before GO has none.
pub fn baselines(rb: &Runbook, k: &Kept) -> golive_engine::Baselines {
    if k.go().is_none() {
        return golive_engine::Baselines::Record;
    }
    let mut by_check = BTreeMap::new();
    for (key, value) in &k.baselines {
        let Some((id, line)) = key.rsplit_once('#') else {
            continue;
        };
        let (Some(item), Ok(line)) = (rb.items.iter().position(|it| it.id == id), line.parse())
        else {
            continue;
        };
        by_check.insert((item, line), value.clone());
    }
    golive_engine::Baselines::Recorded(std::sync::Arc::new(by_check))
}

/// What a deployment of a document will use, read before one starts
/// (`golive lint`, `golive show`): the roles and where they come from, how
/// a rollback runs, the gates, the criteria a rule judges and those a
/// person does, the roles the roster must hold, and why a deployment could
/// not complete.
#[derive(Debug, Clone, PartialEq)]
pub struct Readiness {
    pub roles: Roles,
    /// The Rollback Steps' addresses, empty when a rollback is one manual
    /// step (`golive done rollback`).
    pub rollback_steps: Vec<String>,
    /// Each gate the end needs: (name, items counted, target).
    pub gates: Vec<(&'static str, usize, usize)>,
    /// Criteria with a rule, and criteria a person judges (their text).
    pub rules: usize,
    pub judged: Vec<String>,
    /// Every role a deployment needs someone to hold, in the order met.
    pub roles_needed: Vec<String>,
    /// Why a deployment of the document with this roster could not
    /// complete; empty when it can.
    pub blockers: Vec<String>,
}

/// The [`Readiness`] of `rb` with `roster` (as the deployment's commands
/// would read it).
pub fn readiness(rb: &Runbook, roster: &golive_engine::roster::Roster) -> Readiness {
    let roles = roles(rb, &roster.team);
    let rollback_steps = rollback_steps(rb)
        .0
        .iter()
        .map(|&i| rb.items[i].address.clone())
        .collect();
    let gates = required_gates(rb)
        .into_iter()
        .map(|g| {
            let items = gate_items(rb, g.stage()).len();
            let target = match g {
                Gate::Smoke => smoke_target(rb, items),
                Gate::Verification => items,
            };
            (g.name(), items, target)
        })
        .collect();
    let (judged_items, ruled): (Vec<_>, Vec<_>) = golive_engine::rules::rollback_rules(rb)
        .into_iter()
        .partition(|r| r.kind == golive_engine::rules::RuleKind::Judgement);
    let mut rules = ruled.len();
    let mut judged: Vec<String> = judged_items
        .iter()
        .map(|r| rb.items[r.item].title.clone())
        .collect();
    for c in rb
        .stages
        .iter()
        .flat_map(|s| {
            s.criteria
                .iter()
                .chain(s.groups.iter().flat_map(|g| g.criteria.iter()))
        })
        .filter(|c| c.item.is_none())
    {
        match golive_engine::rules::rule_of(&c.text) {
            golive_engine::rules::RuleKind::Judgement => judged.push(c.text.clone()),
            _ => rules += 1,
        }
    }
    let mut needed: Vec<(String, String)> = Vec::new();
    let mut need = |role: &str, why: String| {
        if !needed.iter().any(|(r, _)| r.eq_ignore_ascii_case(role)) {
            needed.push((role.to_string(), why));
        }
    };
    for r in &roles.decision {
        need(r, "signs the go/no-go decision".into());
    }
    for r in &roles.manual_rollback {
        need(r, "decides a rollback".into());
    }
    need(
        &roles.automatic_rollback,
        "runs an automatic rollback".into(),
    );
    for (i, it) in rb.items.iter().enumerate() {
        if let (Some(role), _) = crate::approval::responsible(rb, i) {
            need(&role, format!("signs {} {}", it.address, it.title));
        }
    }
    let mut blockers = Vec::new();
    if roster.people.is_empty() {
        blockers.push(format!(
            "the roster names nobody ({}): nobody can sign; write {} with a [[person]] for each of: {}",
            roster.source,
            roster.file.display(),
            needed.iter().map(|(r, _)| r.as_str()).collect::<Vec<_>>().join(", ")
        ));
    } else {
        for (role, why) in &needed {
            if !roster.people.values().any(|p| p.holds(role)) {
                blockers.push(format!(
                    "nobody on the roster ({}) holds the {role}, who {why}",
                    roster.source
                ));
            }
        }
    }
    Readiness {
        roles,
        rollback_steps,
        gates,
        rules,
        judged,
        roles_needed: needed.into_iter().map(|(r, _)| r).collect(),
        blockers,
    }
}

impl Readiness {
    /// The lines `golive lint` and `golive show` print.
    pub fn lines(&self) -> Vec<String> {
        let r = &self.roles;
        let mut out = vec![
            format!("go/no-go decision signed by: {}", r.decision.join(" + ")),
            format!(
                "rollback decided by: {}; automatic rollback in the name of: {}",
                r.manual_rollback.join(" + "),
                r.automatic_rollback
            ),
            if self.rollback_steps.is_empty() {
                "rollback: one manual step (golive done rollback), then golive finish".to_string()
            } else {
                format!("rollback steps: {}", self.rollback_steps.join(", "))
            },
            if self.gates.is_empty() {
                "gates: none (the document gives no smoke or verification items)".to_string()
            } else {
                format!(
                    "gates: {}",
                    self.gates
                        .iter()
                        .map(|(g, n, t)| format!("{g} {t}/{n}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            },
            format!(
                "rollback criteria: {} judged by a rule, {} by a person",
                self.rules,
                self.judged.len()
            ),
            format!(
                "roles the roster must hold: {}",
                self.roles_needed.join(", ")
            ),
        ];
        out.extend(r.defaults.iter().map(|d| format!("default: {d}")));
        out
    }
}

/// The role `person` acts in when they name none: the first of `wanted`
/// (an item's Responsible role, the decision's or a rollback's roles) they
/// hold, else their first role. The command then refuses a role that may
/// not act, with its own words.
pub fn acting_role(person: &golive_engine::roster::Person, wanted: &[String]) -> String {
    wanted
        .iter()
        .find(|w| person.holds(w))
        .or(person.roles.first())
        .cloned()
        .unwrap_or_default()
}

/// The role an item names to sign it (its `**Responsible:**` field), as a
/// list for [`acting_role`]: empty when anyone on the roster may.
pub fn signing_roles(rb: &Runbook, item: usize) -> Vec<String> {
    crate::approval::responsible(rb, item)
        .0
        .into_iter()
        .collect()
}

/// The open items ([`open_items`]) `person` may sign: those whose role
/// they hold, or that name none.
pub fn open_items_for(
    rb: &Runbook,
    k: &Kept,
    person: &golive_engine::roster::Person,
) -> Vec<OpenItem> {
    open_items(rb, k)
        .into_iter()
        .filter(|o| o.role.as_deref().is_none_or(|r| person.holds(r)))
        .collect()
}
