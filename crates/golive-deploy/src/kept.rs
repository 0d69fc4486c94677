//! The deployment's state, kept: what every command decides from, folded
//! from the events as they are appended (in the append's own transaction)
//! instead of replayed from the whole log each time.
//!
//! It holds only what the lifecycle's rules read: each item's checks of
//! the latest run or evaluation that checked it, the sign-offs, the
//! decision and its signatures, the gates, the rollback, each step's
//! progress, the end, and a watch's last evaluation and windows. Its size
//! follows the runbook and the people, not the number of events: a
//! hypercare of a million evaluations keeps one check result per check,
//! and runs by agents queued one after another keep one result per check
//! and location.
//!
//! [`Kept::replay`] of a chain gives the same state as the appends that
//! built it; `golive audit verify` compares the two.

use golive_store::Event;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What the record says, up to its event `seq`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Kept {
    /// The last event folded in (the chain's head when current) and its hash.
    pub seq: i64,
    pub hash: String,
    /// Runs and watch evaluations started so far: a check belongs to the one
    /// it came in.
    pub generation: u64,
    /// Each item's check results from the latest run (or evaluation) that
    /// checked it: a run of one stage leaves the others' results as they were.
    pub checks: BTreeMap<String, Checked>,
    /// Side-effecting checks recorded as started with no result after them:
    /// (item, line of the check).
    pub checks_started: Vec<(String, u64)>,
    /// Every sign-off, in order.
    pub signoffs: Vec<Event>,
    /// The go/no-go decision's signatures, and the decision once complete.
    pub decision_signatures: Vec<Event>,
    pub decision: Option<Event>,
    /// Every gate evaluation, in order.
    pub gates: Vec<Event>,
    /// The last rollback decision raised, the manual signatures, the start.
    pub rollback_raised: Option<Event>,
    pub rollback_signatures: Vec<Event>,
    pub rollback_started: Option<Event>,
    /// The signatures of a decision to continue instead of rolling back,
    /// and each raised decision so resolved.
    pub rollback_continues: Vec<Event>,
    pub rollback_resolved: Vec<Event>,
    /// Each procedure or rollback step's progress, by item id.
    pub steps: BTreeMap<String, StepProgress>,
    /// Optional items set aside with a reason (`golive skip`), by item id.
    pub skipped: BTreeMap<String, Event>,
    /// The option chosen in each "choose one" group (`golive choose`), by
    /// group id.
    pub chosen: BTreeMap<String, Event>,
    /// The sign-offs of the roles a stage names as its signers (a Final
    /// Sign-off's role blocks or table), in order.
    pub stage_signoffs: Vec<Event>,
    /// What each check whose condition reads `baseline` observed in its
    /// last run before the GO decision, by `item id#line`.
    pub baselines: BTreeMap<String, serde_json::Value>,
    /// The deployment's end.
    pub ended: Option<Event>,
    /// A watch's last evaluation, and each window's last change (by key).
    pub last_tick: Option<Event>,
    pub windows: BTreeMap<String, Event>,
    /// The UTC day of the last event, and the last event before that day:
    /// the day's events are those after it.
    pub day: String,
    pub day_after: i64,
    /// The start the deployment was scheduled for (`golive run --at`).
    pub scheduled: Option<Event>,
    /// Each message of the communication plan queued, and its deliveries,
    /// by key ([`crate::notify`]).
    pub notices: BTreeMap<String, NoticeRecord>,
}

/// A queued message and its delivery on each channel.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct NoticeRecord {
    pub queued: Option<Event>,
    pub deliveries: BTreeMap<String, DeliveryRecord>,
}

/// One channel's delivery: its attempts, the claim in hand, the success
/// or the last failure.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DeliveryRecord {
    pub attempts: u64,
    pub sending: Option<Event>,
    pub sent: Option<Event>,
    pub failed: Option<Event>,
}

/// An item's checks of one run or evaluation.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Checked {
    pub generation: u64,
    pub events: Vec<Event>,
}

/// A step's record: its last start, how often it was started and how often
/// its commands' result was recorded, and its completion.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct StepProgress {
    pub started: Option<Event>,
    pub starts: u64,
    pub runs: u64,
    pub done: Option<Event>,
}

impl Kept {
    /// The state of a whole chain, event by event.
    pub fn replay(events: &[Event]) -> Kept {
        let mut k = Kept::default();
        for e in events {
            k.apply(e);
        }
        k
    }

    /// Fold one more event in.
    pub fn apply(&mut self, e: &Event) {
        self.seq = e.seq;
        self.hash.clone_from(&e.hash);
        let day = e.at.get(..10).unwrap_or("");
        if self.day != day {
            self.day = day.to_string();
            self.day_after = e.seq - 1;
        }
        let item = e.item.clone().unwrap_or_default();
        let line = || e.data["line"].as_u64().unwrap_or(0);
        match e.kind.as_str() {
            "run.started" => self.generation += 1,
            "watch.tick" => {
                self.generation += 1;
                self.last_tick = Some(e.clone());
            }
            "check" => {
                if self.go().is_none()
                    && let Some(b) = e.data.get("baseline").filter(|b| b.is_object())
                {
                    self.baselines
                        .insert(format!("{item}#{}", line()), b.clone());
                }
                let key = (item.clone(), line());
                self.checks_started.retain(|k| *k != key);
                let c = self.checks.entry(item).or_default();
                if c.generation != self.generation || c.events.is_empty() {
                    c.generation = self.generation;
                    c.events.clear();
                }
                // an agent's result (it names its location) stands for its
                // check at that location until the next one: runs queued
                // one after another keep one result each, not all of them
                if let Some(at) = e.data.get("location").filter(|l| l.is_string()) {
                    c.events.retain(|o| {
                        o.data.get("location") != Some(at) || o.data["line"] != e.data["line"]
                    });
                }
                c.events.push(e.clone());
            }
            "check.started" => self.checks_started.push((item, line())),
            "signoff" => self.signoffs.push(e.clone()),
            "decision.signature" => self.decision_signatures.push(e.clone()),
            "decision" => {
                self.decision.get_or_insert_with(|| e.clone());
            }
            "gate" => self.gates.push(e.clone()),
            "rollback.raised" => self.rollback_raised = Some(e.clone()),
            "rollback.signature" => self.rollback_signatures.push(e.clone()),
            "rollback.continue" => self.rollback_continues.push(e.clone()),
            "rollback.resolved" => {
                self.rollback_raised = None;
                self.rollback_signatures.clear();
                self.rollback_continues.clear();
                self.rollback_resolved.push(e.clone());
            }
            "rollback.started" => {
                self.rollback_started.get_or_insert_with(|| e.clone());
            }
            "step.started" => {
                let s = self.steps.entry(item).or_default();
                s.started = Some(e.clone());
                s.starts += 1;
            }
            "step.run" => self.steps.entry(item).or_default().runs += 1,
            "step.done" => {
                self.steps
                    .entry(item)
                    .or_default()
                    .done
                    .get_or_insert_with(|| e.clone());
            }
            "item.skipped" => {
                self.skipped.entry(item).or_insert_with(|| e.clone());
            }
            "option.chosen" => {
                if let Some(g) = e.data["group"].as_str() {
                    self.chosen
                        .entry(g.to_string())
                        .or_insert_with(|| e.clone());
                }
            }
            "stage.signoff" => self.stage_signoffs.push(e.clone()),
            // a pending approval's signatures that expired no longer count
            "approval.expired" => {
                let gone: Vec<i64> = e.data["signatures"]
                    .as_array()
                    .map(|a| a.iter().filter_map(serde_json::Value::as_i64).collect())
                    .unwrap_or_default();
                self.signoffs.retain(|s| !gone.contains(&s.seq));
                self.decision_signatures.retain(|s| !gone.contains(&s.seq));
            }
            "deployment.ended" => self.ended = Some(e.clone()),
            "deployment.scheduled" => self.scheduled = Some(e.clone()),
            "notice.queued" => {
                let key = e.data["key"].as_str().unwrap_or("").to_string();
                let n = self.notices.entry(key).or_default();
                if n.queued.is_none() {
                    n.queued = Some(e.clone());
                    for ch in e.data["channels"].as_array().into_iter().flatten() {
                        if let Some(ch) = ch.as_str() {
                            n.deliveries.entry(ch.to_string()).or_default();
                        }
                    }
                }
            }
            "notice.sending" | "notice.sent" | "notice.failed" => {
                let key = e.data["key"].as_str().unwrap_or("").to_string();
                let ch = e.data["channel"].as_str().unwrap_or("").to_string();
                let d = self
                    .notices
                    .entry(key)
                    .or_default()
                    .deliveries
                    .entry(ch)
                    .or_default();
                match e.kind.as_str() {
                    "notice.sending" => {
                        d.attempts += 1;
                        d.sending = Some(e.clone());
                    }
                    "notice.sent" => {
                        d.sending = None;
                        d.sent.get_or_insert_with(|| e.clone());
                    }
                    _ => {
                        d.sending = None;
                        d.failed = Some(e.clone());
                    }
                }
            }
            "watch.state" => {
                if let Some(k) = e.data["key"].as_str() {
                    self.windows.insert(k.to_string(), e.clone());
                }
            }
            _ => {}
        }
    }

    /// The items a sent message fulfilled (item ids and sub-checks,
    /// `ADDRESS/N`), each with its first delivery: what the reports show as
    /// `Sent by: golive`.
    pub fn sent_items(&self) -> BTreeMap<String, Event> {
        let mut out = BTreeMap::new();
        for n in self.notices.values() {
            let (Some(q), Some(first)) = (
                &n.queued,
                n.deliveries
                    .values()
                    .filter_map(|d| d.sent.as_ref())
                    .min_by_key(|e| e.seq),
            ) else {
                continue;
            };
            let listed = q.data["items"].as_array().into_iter().flatten();
            let ticks = q.data["ticks"].as_array().into_iter().flatten();
            for v in listed.chain(ticks) {
                if let Some(id) = v.as_str() {
                    out.entry(id.to_string()).or_insert_with(|| first.clone());
                }
            }
        }
        out
    }

    /// How many events the record holds (they are numbered from 1).
    pub fn events(&self) -> u64 {
        self.seq.max(0) as u64
    }

    /// The item's checks of the latest run that checked it (empty: none).
    pub fn checks_of(&self, item: &str) -> &[Event] {
        self.checks.get(item).map_or(&[], |c| c.events.as_slice())
    }

    /// Whether a step is recorded done (or skipped).
    pub fn step_done(&self, item: &str) -> Option<&Event> {
        self.steps.get(item).and_then(|s| s.done.as_ref())
    }

    /// The latest sign-off of `item` by `name` (any case).
    pub fn signoff_by(&self, item: &str, name: &str) -> Option<&Event> {
        self.signoffs.iter().rev().find(|e| {
            e.item.as_deref() == Some(item)
                && e.actor
                    .as_deref()
                    .is_some_and(|x| x.eq_ignore_ascii_case(name))
        })
    }

    /// The last evaluation of the gate named `stage`.
    pub fn last_gate(&self, stage: &str) -> Option<&Event> {
        self.gates.iter().rev().find(|e| e.data["stage"] == stage)
    }

    /// The GO decision, when it was taken.
    pub fn go(&self) -> Option<&Event> {
        self.decision.as_ref().filter(|e| e.data["verdict"] == "GO")
    }

    /// Whether the deployment has ended: a NO-GO decision, or its end.
    pub fn has_ended(&self) -> bool {
        self.ended.is_some()
            || self
                .decision
                .as_ref()
                .is_some_and(|e| e.data["verdict"] == "NO-GO")
    }

    /// The fields in which `self` and `other` differ, by name: what
    /// `golive audit verify` reports of a kept state that is not the
    /// chain's.
    pub fn differences(&self, other: &Kept) -> Vec<&'static str> {
        let (a, b) = (self, other);
        let mut out = Vec::new();
        macro_rules! cmp {
            ($($f:ident),*) => { $( if a.$f != b.$f { out.push(stringify!($f)); } )* };
        }
        cmp!(
            seq,
            hash,
            generation,
            checks,
            checks_started,
            signoffs,
            decision_signatures,
            decision,
            gates,
            rollback_raised,
            rollback_signatures,
            rollback_started,
            rollback_continues,
            rollback_resolved,
            steps,
            skipped,
            chosen,
            stage_signoffs,
            baselines,
            ended,
            last_tick,
            windows,
            day,
            day_after,
            scheduled,
            notices
        );
        out
    }
}

/// The store's projection: keeps [`Kept`] as JSON, event by event.
#[derive(Debug, Default)]
pub struct Fold;

impl golive_store::Projection for Fold {
    fn apply(&self, before: Option<&str>, events: &[Event]) -> Result<String, String> {
        let mut k: Kept = match before {
            Some(text) => serde_json::from_str(text).map_err(|e| e.to_string())?,
            None => Kept::default(),
        };
        for e in events {
            k.apply(e);
        }
        serde_json::to_string(&k).map_err(|e| e.to_string())
    }
}

impl Kept {
    /// The deployment's state as kept, or, when the kept one is missing,
    /// damaged or behind the chain, replayed from the chain, with a note
    /// that says so and how to keep it again.
    pub async fn read(
        store: &golive_store::Store,
        deployment: &str,
    ) -> Result<(Kept, Option<String>), golive_store::StoreError> {
        let why = match store.kept(deployment).await? {
            Some(row) if row.current => match serde_json::from_str::<Kept>(&row.state) {
                Ok(k) => return Ok((k, None)),
                Err(e) => format!("does not read ({e})"),
            },
            Some(row) if row.seq < row.head_seq => format!(
                "is behind the chain (kept at event {}, the head is event {})",
                row.seq, row.head_seq
            ),
            Some(row) => format!(
                "is not the chain's (kept at event {}, the head is event {}): events were removed or rewritten, or the state was edited",
                row.seq, row.head_seq
            ),
            None => "is missing (recorded by an older golive, or removed)".to_string(),
        };
        let events = store.events(deployment).await?;
        if events.is_empty() {
            return Ok((Kept::default(), None));
        }
        let note = format!(
            "the kept state of deployment {deployment} {why}: read from its {} events instead; `golive audit rebuild {deployment}` keeps it again",
            events.len()
        );
        Ok((Kept::replay(&events), Some(note)))
    }
}
