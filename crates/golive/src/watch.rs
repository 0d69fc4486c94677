//! `golive watch RUNBOOK|DEPLOYMENT [--interval 30s]`: hypercare. Runs the
//! watched checks on an interval into the deployment's record, keeps a
//! sustained-rule window per check (`for = "5m"`: pending → firing →
//! resolved), alerts on changes only (a reminder while one stays firing),
//! raises the rollback decision when a rollback criterion fires, and
//! rewrites the day's health-check report after every evaluation.
//!
//! Watched, unless `--only` says otherwise: the Post-Deployment
//! Verification items, the Rollback Decision Criteria, and every item whose
//! annotation sets `for` or `watch`.

use crate::alert::{Alert, Hook};
use crate::vars::Redactor;
use golive_engine::sustained::{Change, State, Window};
use golive_engine::{Outcome, Plan};
use golive_runbook::{Runbook, StageKind};
use golive_store::{Event, NewEvent, Store};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// What `golive watch` was asked.
pub struct Watch<'a> {
    pub store: &'a str,
    /// A runbook file, or a deployment id.
    pub target: &'a str,
    pub interval: Duration,
    /// Stop after this many evaluations (default: until interrupted).
    pub count: Option<u64>,
    /// Repeat an alert this often while it stays firing.
    pub remind: Duration,
    pub hooks: Vec<Hook>,
    pub report_dir: PathBuf,
    pub only: &'a [String],
    pub vars: &'a golive_probe::Vars,
    pub defaults: toml::Table,
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
            a.table
                .as_ref()
                .is_some_and(|t| t.contains_key("for") || t.contains_key("watch"))
        });
        if (stage.kind == StageKind::Verification || criterion || annotated)
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

pub async fn watch(a: Watch<'_>) -> Result<ExitCode, String> {
    // a runbook may start its first deployment here; a deployment id must
    // name one already recorded
    let file = Path::new(a.target).is_file();
    if !file && a.target.ends_with(".md") {
        return Err(format!(
            "cannot read {}: no such file (give a runbook file or a deployment id)",
            a.target
        ));
    }
    let store = if file {
        Store::open(a.store).await
    } else {
        Store::open_existing(a.store).await
    }
    .map_err(|e| e.to_string())?;
    let (rb, deployment) = if file {
        let rb = crate::load(Path::new(a.target))?;
        let id = crate::record::deployment_of(&store, &rb).await?;
        (rb, id)
    } else {
        let d = store
            .deployment(Some(a.target))
            .await
            .map_err(|e| format!("{e}: give a runbook file or a deployment id"))?;
        let rb = crate::load(Path::new(&d.runbook_path))?;
        (rb, d.id)
    };
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
        let redact = Redactor::new(a.vars);
        eprint!("{}", crate::checks::render_problems(&rb, &plan, &redact));
        return Ok(ExitCode::from(2));
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
        a,
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
    a: Watch<'a>,
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
        let events = self
            .store
            .events(&self.deployment)
            .await
            .map_err(|e| e.to_string())?;
        let last_tick = events
            .iter()
            .rev()
            .find(|e| e.kind == "watch.tick")
            .and_then(|e| e.at.parse().ok());
        let now = jiff::Timestamp::now();
        let mut notes = Vec::new();
        for c in &self.plan.checks {
            let k = key(&self.rb, c);
            let recorded = events
                .iter()
                .rev()
                .find(|e| e.kind == "watch.state" && e.data["key"] == k.as_str())
                .and_then(state_of)
                .unwrap_or(State::Inactive);
            let (w, note) = Window::restore(c.hold, self.a.interval, recorded, last_tick, now);
            if let Some(n) = note {
                notes.push(
                    NewEvent::new("watch.reset", json!({ "key": k, "why": n }))
                        .item(&self.rb.items[c.item].id),
                );
                eprintln!(
                    "{} {}: {n}",
                    self.rb.items[c.item].address, self.rb.items[c.item].title
                );
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

    async fn run(&mut self) -> Result<ExitCode, String> {
        let mut ticker = tokio::time::interval(self.a.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut n = 0u64;
        println!(
            "watching {} check(s) of {} for deployment {} every {}",
            self.plan.checks.len(),
            self.rb.path,
            self.deployment,
            golive_probe::show_duration(self.a.interval)
        );
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
        Ok(if firing {
            ExitCode::from(1)
        } else {
            ExitCode::SUCCESS
        })
    }

    async fn evaluate(&mut self, n: u64) -> Result<(), String> {
        let opts = golive_engine::RunOptions {
            concurrency: 16,
            allow_commands: false,
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
                            "observed": crate::checks::outcome_text(r),
                        }),
                    )
                    .item(&it.id),
                );
                println!(
                    "{} {} {}: {}",
                    now.strftime("%H:%M:%S"),
                    change.name().to_uppercase(),
                    it.address,
                    it.title
                );
                match change {
                    Change::Firing => {
                        self.last_alert.insert(k.clone(), now);
                        alerts.push((
                            k.clone(),
                            r.check.item,
                            "firing",
                            crate::checks::outcome_text(r),
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
                            crate::checks::outcome_text(r),
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
                    crate::checks::outcome_text(r),
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
                        println!("  alert {state} → {} in {:.1} ms", hook.shown(), d.ms);
                        NewEvent::new(
                            "alert.sent",
                            json!({ "hook": hook.kind(), "to": hook.shown(), "state": state, "status": d.status, "delivery_ms": d.ms }),
                        )
                    }
                    Err(e) => {
                        eprintln!("  alert {state} not delivered: {e}");
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
        let events = self
            .store
            .events(&self.deployment)
            .await
            .map_err(|e| e.to_string())?;
        if !crate::lifecycle::may_raise(&events) {
            return Ok(Vec::new());
        }
        let it = &self.rb.items[item];
        let automatic = criterion(&self.rb, item).is_some_and(|r| r.automatic);
        let (auto, manual) = crate::lifecycle::rollback_authority(&self.rb);
        let reason = format!("{} {} held for its whole window", it.address, it.title);
        eprintln!(
            "golive: ROLLBACK DECISION RAISED: {reason} ({})",
            if automatic {
                format!("automatic authority: {auto}")
            } else {
                format!("for {} to decide", manual.join(" + "))
            }
        );
        Ok(crate::lifecycle::raise(&self.rb, item, &reason, automatic))
    }

    /// The day's health-check report, rewritten whole after each evaluation
    /// (written beside, then renamed: never half a file).
    async fn write_report(&self, now: jiff::Timestamp) -> Result<(), String> {
        let events = self
            .store
            .events(&self.deployment)
            .await
            .map_err(|e| e.to_string())?;
        let day = now.strftime("%Y-%m-%d").to_string();
        let text = daily_report(&self.rb, &self.deployment, &events, &day, &self.windows);
        let dir = &self.a.report_dir;
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let path = dir.join(format!("health-{}-{day}.md", self.deployment));
        let tmp = path.with_extension("md.tmp");
        std::fs::write(&tmp, text).map_err(|e| format!("{}: {e}", tmp.display()))?;
        std::fs::rename(&tmp, &path).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(())
    }
}

/// The seed's "daily health check report", from the day's watch events.
pub fn daily_report(
    rb: &Runbook,
    deployment: &str,
    events: &[Event],
    day: &str,
    windows: &BTreeMap<String, Window>,
) -> String {
    let today: Vec<&Event> = events.iter().filter(|e| e.at.starts_with(day)).collect();
    let ticks: Vec<&&Event> = today.iter().filter(|e| e.kind == "watch.tick").collect();
    let time = |e: &Event| e.at.get(11..19).unwrap_or("").to_string();
    let mut out = format!(
        "# Hypercare health check: {day}\n\n**Deployment:** {deployment}  \n**Runbook:** {} ({})  \n**Evaluations:** {}",
        rb.title.as_ref().map_or("", |h| h.text.as_str()),
        rb.path,
        ticks.len()
    );
    if let (Some(first), Some(last)) = (ticks.first(), ticks.last()) {
        out.push_str(&format!(", {} to {} UTC", time(first), time(last)));
    }
    out.push_str("\n\n| Check | Evaluations | Passed | Failed | Now |\n|---|---:|---:|---:|---|\n");
    let mut per: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for e in today.iter().filter(|e| e.kind == "check") {
        let c = per.entry(e.item.as_deref().unwrap_or("")).or_default();
        if e.data["outcome"] == "passed" {
            c.0 += 1;
        } else {
            c.1 += 1;
        }
    }
    for (k, w) in windows {
        let id = k.split('#').next().unwrap_or("");
        let Some(it) = rb.items.iter().find(|i| i.id == id) else {
            continue;
        };
        let (p, f) = per.get(id).copied().unwrap_or_default();
        out.push_str(&format!(
            "| {} {} | {} | {p} | {f} | {} |\n",
            it.address,
            it.title,
            p + f,
            w.state.name()
        ));
    }
    let changes: Vec<&&Event> = today.iter().filter(|e| e.kind == "watch.state").collect();
    out.push_str("\n## State changes\n\n");
    if changes.is_empty() {
        out.push_str("None.\n");
    } else {
        out.push_str("| Time (UTC) | Check | Change | Observed |\n|---|---|---|---|\n");
        for e in changes {
            let title = e
                .item
                .as_deref()
                .and_then(|id| rb.items.iter().find(|i| i.id == id))
                .map(|i| format!("{} {}", i.address, i.title))
                .unwrap_or_default();
            out.push_str(&format!(
                "| {} | {title} | {} | {} |\n",
                time(e),
                e.data["change"].as_str().unwrap_or(""),
                e.data["observed"]
                    .as_str()
                    .unwrap_or("")
                    .replace('|', "\\|")
            ));
        }
    }
    let alerts: Vec<&&Event> = today
        .iter()
        .filter(|e| e.kind == "alert.sent" || e.kind == "alert.failed")
        .collect();
    out.push_str("\n## Alerts\n\n");
    if alerts.is_empty() {
        out.push_str("None.\n");
    } else {
        out.push_str("| Time (UTC) | To | State | Delivered in |\n|---|---|---|---|\n");
        for e in alerts {
            out.push_str(&format!(
                "| {} | {} | {} | {} |\n",
                time(e),
                e.data["to"].as_str().unwrap_or(""),
                e.data["state"].as_str().unwrap_or(""),
                match e.data["delivery_ms"].as_f64() {
                    Some(ms) => format!("{ms:.1} ms"),
                    None => format!("not delivered: {}", e.data["error"].as_str().unwrap_or("")),
                }
            ));
        }
    }
    let resets: Vec<&&Event> = today.iter().filter(|e| e.kind == "watch.reset").collect();
    if !resets.is_empty() {
        out.push_str("\n## Windows restarted\n\n");
        for e in resets {
            out.push_str(&format!(
                "- {} {}\n",
                time(e),
                e.data["why"].as_str().unwrap_or("")
            ));
        }
    }
    out
}

/// Where daily reports go by default: beside the store.
pub fn default_report_dir(store: &str) -> PathBuf {
    if store.starts_with("postgres") {
        return PathBuf::from(".golive/hypercare");
    }
    let path = store
        .strip_prefix("sqlite://")
        .or_else(|| store.strip_prefix("sqlite:"))
        .unwrap_or(store);
    Path::new(path)
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("hypercare"), |p| p.join("hypercare"))
}
