//! Running a plan: a bounded pool, a deadline per check, retries with
//! backoff. Observing and judging are kept apart: a check that could not
//! observe is an error, one whose condition is false a failure.

use crate::condition::{Actual, lookup};
use crate::plan::{Check, Plan};
use golive_probe::{Observation, ProbeError};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// How a check ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Passed,
    /// Observed, and the condition is false.
    Failed,
    /// Could not observe (timeout, refused, unknown host …), or the condition
    /// could not be evaluated against what was observed.
    Error(String),
    /// Not run: it has side effects and they were not allowed.
    Skipped(String),
}

impl Outcome {
    pub fn as_str(&self) -> &'static str {
        match self {
            Outcome::Passed => "passed",
            Outcome::Failed => "failed",
            Outcome::Error(_) => "error",
            Outcome::Skipped(_) => "skipped",
        }
    }
}

/// What running one check gave.
#[derive(Debug, Clone)]
pub struct CheckResult {
    pub check: Arc<Check>,
    pub outcome: Outcome,
    pub observation: Option<Observation>,
    /// The fields the condition reads, with what was observed.
    pub actual: Vec<Actual>,
    /// Blank label → value, for the fills that could be evaluated.
    pub fills: Vec<(String, String)>,
    /// What it recorded as its baseline (the fields its condition compares
    /// with `baseline.…`), when it ran before GO.
    pub baseline: Option<Value>,
    pub attempts: u32,
    pub duration: Duration,
}

/// What conditions reading `baseline.…` compare with: a check's own
/// observation recorded before the GO decision.
#[derive(Debug, Clone, Default)]
pub enum Baselines {
    /// Before GO: a check whose condition reads `baseline` records what it
    /// observes of those fields as its baseline, and passes when it could.
    #[default]
    Record,
    /// After GO: each check's last baseline recorded before GO, by (item,
    /// line of its annotation). A check without one cannot be judged.
    Recorded(Arc<BTreeMap<(usize, u32), Value>>),
}

/// Options of a run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub concurrency: usize,
    /// Run checks with side effects (commands).
    pub allow_commands: bool,
    pub baselines: Baselines,
}

/// Run every check of `plan`, at most `concurrency` at once. `progress` is
/// called as each check ends (from the task that ran it). Results come back
/// in plan order.
pub async fn run_plan(
    plan: &Plan,
    opts: &RunOptions,
    progress: Arc<dyn Fn(&CheckResult) + Send + Sync>,
) -> Vec<CheckResult> {
    let sem = Arc::new(Semaphore::new(opts.concurrency.max(1)));
    let mut tasks = Vec::with_capacity(plan.checks.len());
    // checks start in plan order: a permit is taken before each task is
    // spawned (with one at a time, results also come in plan order)
    for check in &plan.checks {
        let check = check.clone();
        let progress = progress.clone();
        let baselines = opts.baselines.clone();
        let permit = if check.probe.side_effects() && !opts.allow_commands {
            None
        } else {
            sem.clone().acquire_owned().await.ok()
        };
        tasks.push(tokio::spawn(async move {
            let r = match permit {
                None => skipped(check),
                Some(_permit) => run_check(check, &baselines).await,
            };
            progress(&r);
            r
        }));
    }
    let mut out = Vec::with_capacity(tasks.len());
    for (t, check) in tasks.into_iter().zip(&plan.checks) {
        out.push(t.await.unwrap_or_else(|e| CheckResult {
            check: check.clone(),
            outcome: Outcome::Error(format!("the check stopped unexpectedly: {e}")),
            observation: None,
            actual: Vec::new(),
            fills: Vec::new(),
            baseline: None,
            attempts: 0,
            duration: Duration::ZERO,
        }));
    }
    out
}

fn skipped(check: Arc<Check>) -> CheckResult {
    CheckResult {
        check,
        outcome: Outcome::Skipped("runs a command: pass --allow-commands".into()),
        observation: None,
        actual: Vec::new(),
        fills: Vec::new(),
        baseline: None,
        attempts: 0,
        duration: Duration::ZERO,
    }
}

/// Run one check with its retries.
pub async fn run_check(check: Arc<Check>, baselines: &Baselines) -> CheckResult {
    let start = Instant::now();
    let mut attempt = 0;
    loop {
        attempt += 1;
        let observed = match tokio::time::timeout(check.timeout, check.probe.observe()).await {
            Ok(r) => r,
            Err(_) => Err(ProbeError::Timeout(check.timeout)),
        };
        let mut result = judge(&check, observed, baselines);
        let last = attempt > check.retries;
        if result.outcome == Outcome::Passed || last {
            result.attempts = attempt;
            result.duration = start.elapsed();
            return result;
        }
        let wait = check.backoff.saturating_mul(1 << (attempt - 1).min(10));
        tokio::time::sleep(wait).await;
    }
}

fn judge(
    check: &Arc<Check>,
    observed: Result<Observation, ProbeError>,
    baselines: &Baselines,
) -> CheckResult {
    let mut r = CheckResult {
        check: check.clone(),
        outcome: Outcome::Passed,
        observation: None,
        actual: Vec::new(),
        fills: Vec::new(),
        baseline: None,
        attempts: 0,
        duration: Duration::ZERO,
    };
    let obs = match observed {
        Ok(o) => o,
        Err(e) => {
            r.outcome = Outcome::Error(e.to_string());
            return r;
        }
    };
    let now = jiff::Timestamp::now();
    // conditions read the observation and `vars`
    let mut scope = obs.clone();
    if let Value::Object(m) = &mut scope {
        m.insert("vars".into(), check.vars.clone());
    }
    let fields = check.baseline_fields();
    let mut recording = false;
    if !fields.is_empty() {
        let base = match baselines {
            Baselines::Record => match baseline_of(&obs, &fields) {
                Ok(b) => {
                    recording = true;
                    r.actual = fields
                        .iter()
                        .filter_map(|f| Some((format!("baseline.{f}"), lookup(&b, f)?.clone())))
                        .collect();
                    r.baseline = Some(b.clone());
                    b
                }
                Err(missing) => {
                    r.outcome = Outcome::Error(format!(
                        "cannot record its baseline: the observation has no `{missing}`"
                    ));
                    r.observation = Some(obs);
                    return r;
                }
            },
            Baselines::Recorded(all) => match all.get(&(check.item, check.loc.line)) {
                Some(b) => b.clone(),
                None => {
                    r.outcome = Outcome::Error(
                        "no baseline to compare with: this check did not run before the GO decision (a run before GO records what it observes as its baseline)"
                            .into(),
                    );
                    r.observation = Some(obs);
                    return r;
                }
            },
        };
        if let Value::Object(m) = &mut scope {
            m.insert("baseline".into(), base);
        }
    }
    for (label, c) in &check.fills {
        if let Ok(v) = c.eval_value(&scope, now) {
            r.fills.push((label.clone(), fill_text(&v)));
        }
    }
    if recording {
        // before GO its observation is the baseline: there is nothing yet
        // to compare it with
        r.observation = Some(obs);
        return r;
    }
    match check.expect.eval_bool(&scope, now) {
        Ok((pass, actual)) => {
            r.outcome = if pass {
                Outcome::Passed
            } else {
                Outcome::Failed
            };
            r.actual = actual;
            if !pass {
                with_causes(check, &obs, &mut r.actual);
            }
        }
        Err(e) => {
            r.actual = check.expect.actual_values(&obs);
            r.outcome = Outcome::Error(format!("cannot evaluate `{}`: {e}", check.expect.source));
        }
    }
    r.observation = Some(obs);
    r
}

/// Beside the fields a false condition read, what explains them (the
/// kind's `causes`: a load check's `errors` by cause for its `error_rate`, a
/// TLS check's `cert.chain_error` for `cert.chain_valid`), when observed.
fn with_causes(check: &Check, obs: &Value, actual: &mut Vec<Actual>) {
    let Some(kind) = golive_probe::kind(check.kind) else {
        return;
    };
    for (read, cause) in kind.causes {
        let reads = check.expect.paths().iter().any(|p| p == read);
        let shown = actual.iter().any(|(p, _)| p == cause);
        if let (true, false, Some(v)) = (reads, shown, lookup(obs, cause))
            && !v.is_null()
            && v.as_object().is_none_or(|o| !o.is_empty())
        {
            actual.push(((*cause).to_string(), v.clone()));
        }
    }
}

/// The fields of `obs` at `paths`, as an object of the same shape
/// (`latency_ms.p95` → `{"latency_ms": {"p95": …}}`), or the first path the
/// observation does not have.
fn baseline_of(obs: &Value, paths: &[&str]) -> Result<Value, String> {
    let mut out = Value::Object(serde_json::Map::new());
    for p in paths {
        let v = lookup(obs, p).ok_or_else(|| p.to_string())?;
        let mut at = &mut out;
        let keys: Vec<&str> = p.split('.').collect();
        for (i, k) in keys.iter().enumerate() {
            let Value::Object(m) = at else { break };
            if i + 1 == keys.len() {
                m.insert((*k).to_string(), v.clone());
                break;
            }
            at = m
                .entry((*k).to_string())
                .or_insert_with(|| Value::Object(serde_json::Map::new()));
        }
    }
    Ok(out)
}

/// A value as it is written into a blank.
pub fn fill_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "—".into(),
        Value::Number(n) => n.to_string(),
        other => other.to_string(),
    }
}
