//! `golive watch RUNBOOK|DEPLOYMENT [--interval 30s]`: hypercare. Runs the
//! watched checks on an interval into the deployment's record, keeps a
//! sustained-rule window per check (`for = "5m"`: pending → firing →
//! resolved), alerts on changes only (a reminder while one stays firing),
//! raises the rollback decision when a rollback criterion fires, and
//! rewrites the day's health-check report after every evaluation.
//!
//! Watched, unless `--only` says otherwise: the Post-Deployment
//! Verification items, the Rollback Decision Criteria, the health checks
//! (items whose title says "health"), and every item whose annotation sets
//! `for`, `watch` or `on_fail`.

pub use crate::alert::{Alert, Hook};
use crate::vars::Redactor;
use crate::{Kept, Listener};
use golive_engine::sustained::{Change, State, Window};
use golive_engine::{Outcome, Plan};
use golive_runbook::{Runbook, StageKind};
use golive_store::{Event, NewEvent, Store};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// What a watch reports as it goes.
pub enum WatchEvent<'a> {
    /// It starts: how many checks, of which runbook, for which deployment.
    Started {
        checks: usize,
        deployment: &'a str,
        interval: Duration,
    },
    /// A window restored from the record starts again, and why.
    Restarted {
        item: usize,
        why: &'a str,
    },
    /// A window changed state at `at`.
    Changed {
        at: jiff::Timestamp,
        change: Change,
        item: usize,
    },
    /// A firing criterion raised the rollback decision.
    Raised {
        reason: &'a str,
        authority: &'a str,
    },
    /// An alert went out (in `ms`), or could not.
    Alerted {
        state: &'a str,
        to: &'a str,
        ms: f64,
    },
    NotAlerted {
        state: &'a str,
        error: &'a str,
    },
    /// An evaluation is recorded: the day's events so far (UTC day `day`)
    /// and the windows, for the day's health-check report.
    Evaluated {
        day: &'a str,
        events: &'a [Event],
        windows: &'a BTreeMap<String, Window>,
    },
}

/// Who follows a watch: a [`Listener`] that also hears [`WatchEvent`]s.
/// An error from `watch` (the day's report could not be written) ends it.
pub trait WatchListener: Listener {
    fn watch(&self, rb: &Runbook, e: &WatchEvent<'_>) -> Result<(), String>;
}

/// What `golive watch` was asked.
pub struct Watch<'a> {
    pub interval: Duration,
    /// Stop after this many evaluations (default: until interrupted).
    pub count: Option<u64>,
    /// Repeat an alert this often while it stays firing.
    pub remind: Duration,
    pub hooks: Vec<Hook>,
    pub only: &'a [String],
    pub vars: &'a golive_probe::Vars,
    pub defaults: toml::Table,
    /// Send the communication plan's messages after each evaluation (what
    /// became due, and the retries whose time came).
    pub notify: Option<&'a crate::notify::Sender<'a>>,
}

/// How a watch ended, when it did not fail.
#[derive(Debug)]
pub enum Watched {
    /// The runbook keeps the watched checks from running as written:
    /// nothing was evaluated.
    Problems(Plan),
    /// It ran its evaluations: whether a window is firing at the end.
    Ran { firing: bool },
}

/// The items watched when `--only` names none.
fn watched_items(rb: &Runbook) -> Vec<String> {
    let mut out = Vec::new();
    for (i, it) in rb.items.iter().enumerate() {
        let stage = &rb.stages[it.stage];
        let criterion = stage.kind == StageKind::Rollback
            && it
                .group
                .is_some_and(|g| stage.groups[g].title().to_lowercase().contains("criteria"));
        let annotated = it.annotations.iter().any(|a| {
            a.table.as_ref().is_some_and(|t| {
                t.contains_key("for") || t.contains_key("watch") || t.contains_key("on_fail")
            })
        });
        let health = it.title.to_lowercase().contains("health");
        if (stage.kind == StageKind::Verification || criterion || annotated || health)
            && !it.annotations.is_empty()
        {
            out.push(rb.items[i].id.clone());
        }
    }
    out
}

/// The key of one check's window: its item and annotation line.
fn key(rb: &Runbook, c: &golive_engine::Check) -> String {
    format!("{}#{}", rb.items[c.item].id, c.loc.line)
}

/// Whether a check's item is one of the document's rollback criteria.
fn criterion(rb: &Runbook, item: usize) -> Option<golive_engine::rules::RollbackRule> {
    golive_engine::rules::rollback_rules(rb)
        .into_iter()
        .find(|r| r.item == item)
}

/// Open the store for a watch of `target`: a runbook file may start its
/// first deployment (the store is created), a deployment id must name one
/// recorded already.
pub async fn store_for(location: &str, target: &str) -> Result<Store, String> {
    let file = Path::new(target).is_file();
    if !file && target.ends_with(".md") {
        return Err(format!(
            "cannot read {target}: no such file (give a runbook file or a deployment id)"
        ));
    }
    if file {
        crate::store::create_store(location).await
    } else {
        crate::store::open_store(location).await
    }
    .map_err(|e| e.to_string())
}

/// Watch `deployment` of `store`, whose runbook is `rb`.
pub async fn watch(
    store: Store,
    deployment: String,
    rb: Runbook,
    a: Watch<'_>,
    l: &dyn WatchListener,
) -> Result<Watched, String> {
    let only: Vec<String> = if a.only.is_empty() {
        watched_items(&rb)
    } else {
        a.only.to_vec()
    };
    if only.is_empty() {
        return Err(format!(
            "{}: nothing to watch: annotate the Post-Deployment Verification items (or any item, with `for`), or pass --only",
            rb.path
        ));
    }
    let plan = golive_engine::plan(&rb, a.vars, &only, &a.defaults)?;
    if !plan.problems.is_empty() {
        return Ok(Watched::Problems(plan));
    }
    if plan.checks.is_empty() {
        return Err(format!(
            "{}: the watched items have no automated check",
            rb.path
        ));
    }
    let redact = Redactor::new(a.vars);
    let mut w = Watcher {
        store,
        deployment,
        rb,
        plan,
        redact,
        windows: BTreeMap::new(),
        last_alert: BTreeMap::new(),
        baselines: golive_engine::Baselines::Record,
        a,
        l,
    };
    w.restore().await?;
    w.run().await
}

struct Watcher<'a> {
    store: Store,
    deployment: String,
    rb: Runbook,
    plan: Plan,
    redact: Redactor,
    windows: BTreeMap<String, Window>,
    /// When each firing window last alerted.
    last_alert: BTreeMap<String, jiff::Timestamp>,
    /// What the checks that read `baseline` compare with, as of the start.
    baselines: golive_engine::Baselines,
    a: Watch<'a>,
    l: &'a dyn WatchListener,
}

fn state_of(e: &Event) -> Option<State> {
    let since: jiff::Timestamp = e.data["since"].as_str()?.parse().ok()?;
    Some(match e.data["state"].as_str()? {
        "pending" => State::Pending { since },
        "firing" => State::Firing { since },
        _ => State::Inactive,
    })
}

impl Watcher<'_> {
    /// Windows as recorded by an earlier watch of this deployment: a restart
    /// continues them, or says why a window starts again.
    async fn restore(&mut self) -> Result<(), String> {
        let kept = self.kept().await?;
        self.baselines = crate::lifecycle::baselines(&self.rb, &kept);
        let last_tick = kept.last_tick.as_ref().and_then(|e| e.at.parse().ok());
        let now = jiff::Timestamp::now();
        let mut notes = Vec::new();
        for c in &self.plan.checks {
            let k = key(&self.rb, c);
            let recorded = kept
                .windows
                .get(&k)
                .and_then(state_of)
                .unwrap_or(State::Inactive);
            let (w, note) = Window::restore(c.hold, self.a.interval, recorded, last_tick, now);
            if let Some(n) = note {
                notes.push(
                    NewEvent::new("watch.reset", json!({ "key": k, "why": n }))
                        .item(&self.rb.items[c.item].id),
                );
                self.l.watch(
                    &self.rb,
                    &WatchEvent::Restarted {
                        item: c.item,
                        why: &n,
                    },
                )?;
            }
            if let State::Firing { since } = w.state {
                self.last_alert.insert(k.clone(), since);
            }
            self.windows.insert(k, w);
        }
        if !notes.is_empty() {
            self.store
                .append(&self.deployment, &notes)
                .await
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// The deployment's state, kept or (with a note) replayed.
    async fn kept(&self) -> Result<Kept, String> {
        let (k, note) = Kept::read(&self.store, &self.deployment)
            .await
            .map_err(|e| e.to_string())?;
        if let Some(n) = note {
            self.l.note(&n);
        }
        Ok(k)
    }

    async fn run(&mut self) -> Result<Watched, String> {
        let mut ticker = tokio::time::interval(self.a.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut n = 0u64;
        self.l.watch(
            &self.rb,
            &WatchEvent::Started {
                checks: self.plan.checks.len(),
                deployment: &self.deployment,
                interval: self.a.interval,
            },
        )?;
        loop {
            if self.a.count.is_some_and(|c| n >= c) {
                break;
            }
            ticker.tick().await;
            n += 1;
            self.evaluate(n).await?;
        }
        let firing = self
            .windows
            .values()
            .any(|w| matches!(w.state, State::Firing { .. }));
        Ok(Watched::Ran { firing })
    }

    async fn evaluate(&mut self, n: u64) -> Result<(), String> {
        let opts = golive_engine::RunOptions {
            concurrency: 16,
            allow_commands: false,
            baselines: self.baselines.clone(),
        };
        let results = golive_engine::run_plan(
            &self.plan,
            &opts,
            Arc::new(|_: &golive_engine::CheckResult| {}),
        )
        .await;
        let now = jiff::Timestamp::now();
        let mut new: Vec<NewEvent> = results
            .iter()
            .map(|r| crate::record::check_event(&self.rb, r, &self.redact))
            .collect();
        let passed = results
            .iter()
            .filter(|r| matches!(r.outcome, Outcome::Passed))
            .count();
        new.push(NewEvent::new(
            "watch.tick",
            json!({ "n": n, "passed": passed, "total": results.len() }),
        ));
        let mut alerts = Vec::new();
        let mut raise = Vec::new();
        for r in &results {
            let k = key(&self.rb, &r.check);
            let it = &self.rb.items[r.check.item];
            let failing = !matches!(r.outcome, Outcome::Passed);
            let Some(w) = self.windows.get_mut(&k) else {
                continue;
            };
            if let Some(change) = w.evaluate(now, failing) {
                let since = match w.state {
                    State::Pending { since } | State::Firing { since } => since,
                    State::Inactive => now,
                };
                new.push(
                    NewEvent::new(
                        "watch.state",
                        json!({
                            "key": k, "change": change.name(), "state": w.state.name(),
                            "since": since.to_string(), "for_s": r.check.hold.as_secs_f64(),
                            "observed": crate::counts::outcome_text(r),
                        }),
                    )
                    .item(&it.id),
                );
                self.l.watch(
                    &self.rb,
                    &WatchEvent::Changed {
                        at: now,
                        change,
                        item: r.check.item,
                    },
                )?;
                match change {
                    Change::Firing => {
                        self.last_alert.insert(k.clone(), now);
                        alerts.push((
                            k.clone(),
                            r.check.item,
                            "firing",
                            crate::counts::outcome_text(r),
                        ));
                        if r.check.on_fail.as_deref() == Some("rollback")
                            || criterion(&self.rb, r.check.item).is_some()
                        {
                            raise.push(r.check.item);
                        }
                    }
                    Change::Resolved => {
                        self.last_alert.remove(&k);
                        alerts.push((
                            k.clone(),
                            r.check.item,
                            "resolved",
                            crate::counts::outcome_text(r),
                        ));
                    }
                    Change::Pending | Change::Cleared => {}
                }
            } else if matches!(w.state, State::Firing { .. })
                && self.last_alert.get(&k).is_some_and(|t| {
                    now.duration_since(*t)
                        >= jiff::SignedDuration::try_from(self.a.remind)
                            .unwrap_or(jiff::SignedDuration::MAX)
                })
            {
                self.last_alert.insert(k.clone(), now);
                alerts.push((
                    k.clone(),
                    r.check.item,
                    "reminder",
                    crate::counts::outcome_text(r),
                ));
            }
        }
        // deciding to raise and recording it under the deployment's write
        // lock: a rollback is raised once, whoever else is raising it
        let lock = if raise.is_empty() {
            None
        } else {
            Some(
                self.store
                    .lock(&self.deployment)
                    .await
                    .map_err(|e| e.to_string())?,
            )
        };
        new.extend(self.raise(&raise).await?);
        let appended = self
            .store
            .append(&self.deployment, &new)
            .await
            .map_err(|e| e.to_string())?;
        // every alert carries the record's head as it stands now
        let head = match appended.last() {
            Some(e) => golive_store::Head::new(e.seq, &e.hash),
            None => self
                .store
                .deployment(Some(&self.deployment))
                .await
                .map_err(|e| e.to_string())?
                .head(),
        };
        // not held while alerts go out
        drop(lock);
        let mut sent = Vec::new();
        for (k, item, state, observed) in alerts {
            let it = &self.rb.items[item];
            let alert = Alert {
                deployment: self.deployment.clone(),
                runbook: self
                    .rb
                    .title
                    .as_ref()
                    .map_or_else(|| self.rb.path.clone(), |h| h.text.clone()),
                rule: format!("{} {}", it.address, it.title),
                state: state.into(),
                severity: if state == "resolved" {
                    "info"
                } else {
                    "critical"
                }
                .into(),
                summary: self.redact.clean(&observed),
                details: json!({ "item": it.id, "check": k, "head": head.to_string() }),
                dedup_key: format!("{}/{k}", self.deployment),
            };
            for hook in &self.a.hooks {
                let event = match hook.send(&alert).await {
                    Ok(d) => {
                        self.l.watch(
                            &self.rb,
                            &WatchEvent::Alerted {
                                state,
                                to: &hook.shown(),
                                ms: d.ms,
                            },
                        )?;
                        NewEvent::new(
                            "alert.sent",
                            json!({ "hook": hook.kind(), "to": hook.shown(), "state": state, "status": d.status, "delivery_ms": d.ms }),
                        )
                    }
                    Err(e) => {
                        self.l
                            .watch(&self.rb, &WatchEvent::NotAlerted { state, error: &e })?;
                        NewEvent::new(
                            "alert.failed",
                            json!({ "hook": hook.kind(), "to": hook.shown(), "state": state, "error": e }),
                        )
                    }
                };
                sent.push(event.item(&it.id));
            }
        }
        if !sent.is_empty() {
            self.store
                .append(&self.deployment, &sent)
                .await
                .map_err(|e| e.to_string())?;
        }
        self.write_report(now).await
    }

    /// Raise the rollback decision for firing criteria, once per deployment,
    /// while it is deploying or verifying.
    async fn raise(&self, items: &[usize]) -> Result<Vec<NewEvent>, String> {
        let Some(&item) = items.first() else {
            return Ok(Vec::new());
        };
        if !crate::lifecycle::may_raise(&self.kept().await?) {
            return Ok(Vec::new());
        }
        let it = &self.rb.items[item];
        let automatic = criterion(&self.rb, item).is_some_and(|r| r.automatic);
        let team = crate::roster_for(&self.rb, None)
            .map(|r| r.team)
            .map_err(|e| e.to_string())?;
        let (auto, manual) = crate::lifecycle::rollback_authority(&self.rb, &team);
        let reason = format!("{} {} held for its whole window", it.address, it.title);
        let authority = if automatic {
            format!("automatic authority: {auto}")
        } else {
            format!("for {} to decide", manual.join(" + "))
        };
        self.l.watch(
            &self.rb,
            &WatchEvent::Raised {
                reason: &reason,
                authority: &authority,
            },
        )?;
        Ok(crate::lifecycle::raise(
            &self.rb, item, &reason, automatic, &team,
        ))
    }

    /// The day's events so far, for the day's health-check report: those
    /// after the last event of an earlier day (a day of evaluations, not the
    /// whole record).
    async fn write_report(&self, now: jiff::Timestamp) -> Result<(), String> {
        let kept = self.kept().await?;
        let day = now.strftime("%Y-%m-%d").to_string();
        let events = if kept.day == day {
            self.store
                .events_after(&self.deployment, kept.day_after)
                .await
                .map_err(|e| e.to_string())?
        } else {
            Vec::new()
        };
        self.l.watch(
            &self.rb,
            &WatchEvent::Evaluated {
                day: &day,
                events: &events,
                windows: &self.windows,
            },
        )?;
        self.send().await
    }

    /// The communication plan's messages due after an evaluation, sent.
    async fn send(&self) -> Result<(), String> {
        let Some(sender) = self.a.notify else {
            return Ok(());
        };
        let row = self
            .store
            .deployment(Some(&self.deployment))
            .await
            .map_err(|e| e.to_string())?;
        let d = crate::Deployment::with_runbook(self.store.clone(), row, self.rb.clone())
            .map_err(|e| e.to_string())?;
        let sent = async {
            crate::notify::queue(&d, sender, jiff::Timestamp::now(), self.l).await?;
            crate::notify::deliver(&d, sender, self.l).await
        };
        // a message not delivered is recorded and tried again; it does not
        // end the watch
        if let Err(e) = sent.await {
            self.l.note(&format!("messages not sent: {e}"));
        }
        Ok(())
    }
}
