//! Checks run from where the users are: the rules of probe agents, in one
//! place.
//!
//! - A check says where it runs: `locations = ["eu-west", "us-east"]` in
//!   its `golive` block, or the locations a run is asked for.
//! - A run at locations is a `run.started` event naming them, and one job
//!   per check and location, queued in the store. The agents of a location
//!   claim its jobs (a lease), run them with golive's probes and report;
//!   each result is a `check` event naming its location and agent,
//!   recorded with the job marked done in one transaction, so a result is
//!   recorded once, and a job whose agent died is claimed again when its
//!   lease runs out.
//! - A location whose agents stopped beating their heart for longer than
//!   the window has its jobs given up: each becomes a `check` event that
//!   could not observe (never a pass), and a `location.down` event says
//!   which location and since when.

use crate::{Deployment, Error, Listener, RefusalKind as K, Result};
use golive_runbook::Runbook;
use golive_store::{JobRow, NewEvent, Store};
use serde_json::{Value, json};

/// How long an agent's claim on a job holds.
pub const LEASE_MS: i64 = 30_000;

/// The locations a check's annotation names (`locations = [...]`).
pub fn locations_of(rb: &Runbook, item: usize, line: u32) -> Vec<String> {
    rb.items[item]
        .annotations
        .iter()
        .filter(|a| a.loc.line == line)
        .filter_map(|a| a.table.as_ref()?.get("locations")?.as_array().cloned())
        .flatten()
        .filter_map(|v| v.as_str().map(|s| s.trim().to_string()))
        .filter(|s| !s.is_empty())
        .collect()
}

/// Every check of `rb` (of the items `selected` flags) and the locations
/// it runs at: its own, else `default` (those the run was asked for).
/// (item index, annotation line, location).
pub fn located(rb: &Runbook, default: &[String], selected: &[bool]) -> Vec<(usize, u32, String)> {
    let mut out = Vec::new();
    for (i, it) in rb.items.iter().enumerate() {
        if !selected.get(i).copied().unwrap_or(true) {
            continue;
        }
        for a in &it.annotations {
            let Some(t) = &a.table else { continue };
            if t.get("check").is_none() || t.contains_key("suggested") {
                continue;
            }
            let own = locations_of(rb, i, a.loc.line);
            let at = if own.is_empty() {
                default.to_vec()
            } else {
                own
            };
            for l in at {
                out.push((i, a.loc.line, l));
            }
        }
    }
    out
}

fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

impl Deployment {
    /// A run of the document's checks at locations, by its agents: the
    /// `run.started` event and the jobs, one per check and location (each
    /// check's own `locations`, else `default`), of the stages, groups or
    /// items `only` names (none: all). Refused when no check has a
    /// location to run at. Returns the run's number and its jobs.
    pub async fn run_at_locations(
        &self,
        default: &[String],
        only: &[String],
        by: &str,
        l: &dyn Listener,
    ) -> Result<(i64, Vec<JobRow>)> {
        let selected = golive_engine::select(&self.rb, only).map_err(|e| {
            Error::Invalid(crate::Refusal {
                kind: K::Unknown,
                message: e
                    .strip_prefix("--only ")
                    .map_or(e.clone(), |rest| format!("only: {rest}")),
                at: None,
            })
        })?;
        let _lock = self.lock().await?;
        let k = self.kept(l).await?;
        if k.ended.is_some() {
            return Err(Error::refused(K::Ended, "the deployment has ended"));
        }
        let at = located(&self.rb, default, &selected);
        if at.is_empty() {
            return Err(Error::refused(
                K::Incomplete,
                "no check says where it runs: give the run locations (\"locations\": [\"eu-west\"]), or write locations = [\"eu-west\"] in a check's golive block",
            ));
        }
        let mut locations: Vec<String> = at.iter().map(|(_, _, l)| l.clone()).collect();
        locations.sort();
        locations.dedup();
        let mut data = json!({ "by": "agents", "locations": locations, "checks": at.len() });
        if !only.is_empty() {
            data["only"] = json!(only);
        }
        let started = NewEvent::new("run.started", data).actor(by);
        let appended = self.store.append(&self.row.id, &[started]).await?;
        let run = appended.last().map(|e| e.seq).unwrap_or(k.seq + 1);
        let created = now_ms();
        let jobs: Vec<JobRow> = at
            .iter()
            .map(|(i, line, location)| {
                let item = self.rb.items[*i].id.clone();
                JobRow {
                    id: format!("{}/{run}/{item}/{line}/{location}", self.row.id),
                    deployment: self.row.id.clone(),
                    run,
                    item,
                    line: i64::from(*line),
                    location: location.clone(),
                    state: "queued".into(),
                    agent: None,
                    lease_until: None,
                    attempts: 0,
                    created_ms: created,
                }
            })
            .collect();
        self.store.add_jobs(&jobs).await?;
        Ok((run, jobs))
    }

    /// The result agent `agent` reports for job `job`: a `check` event of
    /// its item, naming the location and the agent, recorded with the job
    /// done in one transaction. Refused (recording nothing) when the job is
    /// not this deployment's, or not the agent's any more.
    pub async fn report(&self, job: &JobRow, agent: &str, data: &Value) -> Result<i64> {
        let mut all = self
            .report_each(&[(job.clone(), data.clone())], agent)
            .await?;
        all.remove(0)
    }

    /// The results agent `agent` reports for jobs of this deployment, all
    /// recorded in one append (one transaction, the deployment's state
    /// folded once): each its event's number, or why it was refused (the
    /// job is not this deployment's or not the agent's any more, or the
    /// result is not one), a refusal recording nothing of that result and
    /// leaving the others be.
    pub async fn report_each(
        &self,
        results: &[(JobRow, Value)],
        agent: &str,
    ) -> Result<Vec<Result<i64>>> {
        let mut out: Vec<Option<Result<i64>>> = Vec::with_capacity(results.len());
        let mut events = Vec::new();
        let mut jobs = Vec::new();
        let mut at = Vec::new();
        for (n, (job, data)) in results.iter().enumerate() {
            match result_event(&self.row.id, job, agent, data) {
                Ok(e) => {
                    events.push(e);
                    jobs.push(job.id.as_str());
                    at.push(n);
                    out.push(None);
                }
                Err(e) => out.push(Some(Err(e))),
            }
        }
        if !events.is_empty() {
            let recorded = self
                .store
                .append_for_jobs(&self.row.id, &events, &jobs, agent)
                .await?;
            for ((n, r), job) in at.into_iter().zip(recorded).zip(jobs) {
                out[n] = Some(match r {
                    Some(e) => Ok(e.seq),
                    None => Err(Error::refused(
                        K::MovedOn,
                        format!(
                            "job {job} is no longer {agent}'s (its lease ran out and another agent took it, or it was reported): the result was not recorded"
                        ),
                    )),
                });
            }
        }
        Ok(out.into_iter().map(|r| r.unwrap_or(Ok(0))).collect())
    }
}

/// The `check` event of an agent's result for `job`, or why it is not one.
fn result_event(deployment: &str, job: &JobRow, agent: &str, data: &Value) -> Result<NewEvent> {
    if job.deployment != deployment {
        return Err(Error::refused(
            K::Unknown,
            format!("job {} is not of deployment {deployment}", job.id),
        ));
    }
    let outcome = data["outcome"].as_str().unwrap_or("");
    if !["passed", "failed", "error", "skipped"].contains(&outcome) {
        return Err(Error::refused(
            K::Incomplete,
            format!("outcome: `{outcome}` is not passed, failed, error or skipped"),
        ));
    }
    let Value::Object(mut m) = data.clone() else {
        return Err(Error::refused(
            K::Incomplete,
            "the result is not a JSON object",
        ));
    };
    m.insert("line".into(), json!(job.line));
    m.insert("location".into(), json!(job.location));
    m.insert("agent".into(), json!(agent));
    m.insert("job".into(), json!(job.id));
    Ok(NewEvent::new("check", Value::Object(m))
        .item(&job.item)
        .actor(agent))
}

/// A location whose agents went quiet, and the deployments whose checks
/// there could not be observed.
#[derive(Debug, Clone, PartialEq)]
pub struct Down {
    pub location: String,
    /// The last heartbeat of any of its agents (epoch ms), if ever.
    pub last_seen: Option<i64>,
    pub jobs: Vec<JobRow>,
}

/// Give up the jobs of every location none of whose agents beat its heart
/// within `window_ms` of `now_ms`: each becomes a `check` event that could
/// not observe, with a `location.down` event per deployment. What was
/// given up, to alert.
pub async fn give_up_quiet(store: &Store, window_ms: i64, now_ms: i64) -> Result<Vec<Down>> {
    let agents = store.agents().await?;
    let mut locations: Vec<String> = agents.iter().map(|a| a.location.clone()).collect();
    locations.sort();
    locations.dedup();
    let mut out = Vec::new();
    for location in locations {
        let last = agents
            .iter()
            .filter(|a| a.location == location)
            .filter_map(|a| a.last_seen)
            .max();
        if last.is_some_and(|t| now_ms - t <= window_ms) {
            continue;
        }
        let jobs = store.give_up_jobs(&location).await?;
        if jobs.is_empty() {
            continue;
        }
        let mut by: std::collections::BTreeMap<&str, Vec<&JobRow>> = Default::default();
        for j in &jobs {
            by.entry(&j.deployment).or_default().push(j);
        }
        let quiet = match last {
            Some(t) => format!(
                "since {}",
                jiff::Timestamp::from_millisecond(t)
                    .map(|t| t.to_string())
                    .unwrap_or_default()
            ),
            None => "ever".into(),
        };
        for (deployment, js) in by {
            let mut events = vec![
                NewEvent::new(
                    "location.down",
                    json!({ "location": location, "last_heartbeat_ms": last, "window_ms": window_ms, "jobs": js.len() }),
                )
                .actor("golive"),
            ];
            for j in &js {
                events.push(
                    NewEvent::new(
                        "check",
                        json!({
                            "outcome": "error",
                            "message": format!("could not observe: no agent of {location} beat its heart {quiet} (window {}s)", window_ms / 1000),
                            "line": j.line, "location": location, "job": j.id, "unobserved": true,
                        }),
                    )
                    .item(&j.item)
                    .actor("golive"),
                );
            }
            store.append(deployment, &events).await?;
        }
        out.push(Down {
            location,
            last_seen: last,
            jobs,
        });
    }
    Ok(out)
}
