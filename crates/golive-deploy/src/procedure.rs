//! The procedure and the Rollback Steps as sequences: which step is next,
//! how long each step and phase took against its declared budget, and the
//! advance that `golive run` makes on its own: steps with command blocks run
//! (with `--allow-commands`) in document order until a step that a person
//! must do, which waits for `golive done`.

use crate::Kept;
use crate::time::{minutes_text, seconds_between};
use golive_runbook::{ItemKind, Runbook, StageKind};
use golive_store::{Deployment, Event, NewEvent, Store};
use serde_json::{Value, json};
use std::collections::BTreeSet;

/// The procedure's steps in document order.
pub fn procedure_steps(rb: &Runbook) -> Vec<usize> {
    rb.stages
        .iter()
        .filter(|s| s.kind == StageKind::Procedure)
        .flat_map(|s| s.all_items())
        .filter(|&i| rb.items[i].kind == ItemKind::Step)
        .collect()
}

/// Which sequence runs now: the Rollback Steps once a rollback started, the
/// procedure after GO, nothing before GO or after the end.
pub fn current_sequence(rb: &Runbook, k: &Kept) -> Option<Vec<usize>> {
    if k.ended.is_some() {
        return None;
    }
    if k.rollback_started.is_some() {
        return Some(crate::lifecycle::rollback_steps(rb).0);
    }
    k.go().is_some().then(|| procedure_steps(rb))
}

/// The event a sequence's clock starts at: the GO decision for the
/// procedure, the rollback's start for the Rollback Steps.
fn sequence_start<'k>(rb: &Runbook, k: &'k Kept, step: usize) -> Option<&'k Event> {
    let (rollback, _) = crate::lifecycle::rollback_steps(rb);
    if rollback.contains(&step) {
        k.rollback_started.as_ref()
    } else {
        k.go()
    }
}

/// Steps recorded as done (or skipped).
pub fn done_steps(k: &Kept) -> BTreeSet<&str> {
    k.steps
        .iter()
        .filter(|(_, s)| s.done.is_some())
        .map(|(id, _)| id.as_str())
        .collect()
}

/// How long `step` took when it ends at `now`, and how long its phase took
/// when `step` is the phase's last: a step starts when the step before it
/// in its sequence ended (the first at the sequence's start), and a phase
/// when its first step started.
pub fn timing(rb: &Runbook, k: &Kept, seq: &[usize], step: usize, now: &str) -> Value {
    let ended = |i: usize| k.step_done(&rb.items[i].id).map(|e| e.at.as_str());
    let origin = sequence_start(rb, k, step).map(|e| e.at.as_str());
    let start_of = |i: usize| {
        let pos = seq.iter().position(|&s| s == i)?;
        match pos {
            0 => origin,
            p => ended(seq[p - 1]).or(origin),
        }
    };
    let secs = |from: Option<&str>| {
        from.and_then(|f| seconds_between(f, now))
            .unwrap_or(0.0)
            .max(0.0)
    };
    let it = &rb.items[step];
    let seconds = secs(start_of(step));
    let budget = it.declared.budget.as_ref();
    let mut out = json!({
        "seconds": seconds,
        "budget_seconds": budget.map(|b| b.seconds),
        "overrun": budget.is_some_and(|b| over(seconds, b)),
    });
    // the phase ends with its last step
    let phase: Vec<usize> = seq
        .iter()
        .copied()
        .filter(|&i| rb.items[i].stage == it.stage && rb.items[i].group == it.group)
        .collect();
    let others_done = phase
        .iter()
        .filter(|&&i| i != step)
        .all(|&i| ended(i).is_some());
    if let (Some(g), Some(&first)) = (it.group, phase.first())
        && others_done
    {
        let heading = &rb.stages[it.stage].groups[g].heading;
        let seconds = secs(start_of(first));
        let budget = heading.declared.budget.as_ref();
        out["phase"] = json!({
            "title": golive_runbook::text::strip_trailing_parens(&heading.text),
            "seconds": seconds,
            "budget_seconds": budget.map(|b| b.seconds),
            "overrun": budget.is_some_and(|b| over(seconds, b)),
        });
    }
    out
}

/// Over budget: past it, or at it when the budget is strict (`<5 minutes`).
fn over(seconds: f64, b: &golive_runbook::Budget) -> bool {
    let budget = b.seconds as f64;
    seconds > budget || (b.strict && seconds >= budget)
}

/// The overrun warnings of a step's timing, as lines to print.
pub fn overrun_lines(rb: &Runbook, step: usize, t: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let it = &rb.items[step];
    if t["overrun"] == true {
        out.push(format!(
            "OVERRUN: {} {} took {} against its budget of {}",
            it.address,
            it.title,
            minutes_text(t["seconds"].as_f64().unwrap_or(0.0)),
            minutes_text(t["budget_seconds"].as_f64().unwrap_or(0.0))
        ));
    }
    if t["phase"]["overrun"] == true {
        out.push(format!(
            "OVERRUN: {} took {} against its budget of {}",
            t["phase"]["title"].as_str().unwrap_or("the phase"),
            minutes_text(t["phase"]["seconds"].as_f64().unwrap_or(0.0)),
            minutes_text(t["phase"]["budget_seconds"].as_f64().unwrap_or(0.0))
        ));
    }
    out
}

/// The events that record `step` as done by `actor` now: the step with its
/// timing, and, when it is the last Rollback Step, the deployment's end
/// timed against the rollback target.
pub fn done_events(
    rb: &Runbook,
    k: &Kept,
    step: usize,
    actor: &str,
    mut data: Value,
) -> (Vec<NewEvent>, Vec<String>) {
    let it = &rb.items[step];
    let now = jiff::Timestamp::now().to_string();
    let (rollback, target) = crate::lifecycle::rollback_steps(rb);
    let seq = if rollback.contains(&step) {
        rollback.clone()
    } else {
        procedure_steps(rb)
    };
    let t = timing(rb, k, &seq, step, &now);
    let mut lines = overrun_lines(rb, step, &t);
    data["address"] = json!(it.address);
    data["title"] = json!(it.title);
    data["timing"] = t;
    let mut new = vec![NewEvent::new("step.done", data).item(&it.id).actor(actor)];
    let done = done_steps(k);
    let last_rollback = rollback.contains(&step)
        && rollback
            .iter()
            .filter(|&&i| i != step)
            .all(|&i| done.contains(rb.items[i].id.as_str()));
    if last_rollback && let Some((end, line)) = rolled_back(k, target, &now) {
        new.push(end);
        lines.push(line);
    }
    (new, lines)
}

/// The end of a deployment whose rollback is done, timed from the
/// rollback's start against `target`, and the line that says so.
pub fn rolled_back(k: &Kept, target: Option<u64>, now: &str) -> Option<(NewEvent, String)> {
    let started = k.rollback_started.as_ref()?;
    let took = seconds_between(&started.at, now).unwrap_or(0.0);
    let end = NewEvent::new(
        "deployment.ended",
        json!({
            "outcome": "ROLLED BACK",
            "rollback_seconds": took,
            "target_seconds": target,
            "within_target": target.is_none_or(|t| took < t as f64),
            "reason": started.data["reason"],
        }),
    );
    let line = format!(
        "ROLLED BACK: the rollback is done in {}{}",
        minutes_text(took),
        target
            .map(|t| format!(" (target < {})", minutes_text(t as f64)))
            .unwrap_or_default()
    );
    Some((end, line))
}

/// The one step of a rollback when the document gives no Rollback Steps:
/// a person marks it done (`golive done rollback`) once production is back.
pub const ROLLBACK_STEP: &str = "rollback";

/// What runs a step's commands: who, with which variables, and whether
/// commands may run at all.
pub struct Runner<'a> {
    pub actor: &'a str,
    pub allow_commands: bool,
    pub confirm_rerun: bool,
    pub vars: &'a golive_probe::Vars,
}

/// Where an advance stopped.
#[derive(Debug, PartialEq)]
pub enum Stop {
    /// Nothing to advance: before GO, or after the end.
    Idle,
    /// Every step of the sequence is done.
    Complete,
    /// A step without commands: a person marks it done.
    Waiting(usize),
    /// A step with commands, and commands may not run.
    NeedsCommands(usize),
    /// A step's commands failed or were refused.
    Failed(usize, String),
    /// The step is running now, in another process (which, since when): it
    /// is not run again.
    Running(usize, String),
}

/// What became of running a step's commands.
pub enum StepRun {
    /// They succeeded: what they did, and the step's running lock, to hold
    /// until the step is recorded done.
    Succeeded(Value, golive_store::WriteLock),
    /// Another process is running the step now: nothing was run.
    Running(String),
    /// Not run (not allowed, no commands, a rerun not confirmed), or run
    /// and failed.
    Refused(String),
}

/// This machine's name, to tell which process holds a step.
fn host() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "an unknown host".into())
}

/// Who started `step` last, as its `step.started` event recorded it:
/// `at TIME by ACTOR (pid N on HOST)`.
fn holder(rb: &Runbook, k: &Kept, step: usize) -> String {
    let id = rb.items[step].id.as_str();
    match k.steps.get(id).and_then(|s| s.started.as_ref()) {
        Some(e) => format!(
            "at {} by {}{}",
            e.at,
            e.actor.as_deref().unwrap_or("?"),
            match (e.data["pid"].as_u64(), e.data["host"].as_str()) {
                (Some(pid), Some(host)) => format!(" (pid {pid} on {host})"),
                _ => String::new(),
            }
        ),
        None => "by another process".into(),
    }
}

/// Why `step` cannot be taken now, when another process is running it (it
/// holds the step's running lock).
pub async fn running_now(
    store: &Store,
    d: &Deployment,
    rb: &Runbook,
    k: &Kept,
    step: usize,
) -> Result<Option<String>, String> {
    let it = &rb.items[step];
    match store
        .try_lock_running(&d.id, &it.id)
        .await
        .map_err(|e| e.to_string())?
    {
        Some(free) => {
            // released before the caller takes it for itself
            free.release().await;
            Ok(None)
        }
        None => Ok(Some(running_text(rb, k, step))),
    }
}

/// What is said of a step another process is running.
fn running_text(rb: &Runbook, k: &Kept, step: usize) -> String {
    format!(
        "{} is running now: started {}; it is not run again",
        rb.items[step].address,
        holder(rb, k, step)
    )
}

/// The kept state, and a note of how it was read when it was not kept.
async fn read(store: &Store, id: &str, notes: &mut Vec<String>) -> Result<Kept, String> {
    let (k, note) = Kept::read(store, id).await.map_err(|e| e.to_string())?;
    notes.extend(note);
    Ok(k)
}

/// Run the current sequence's command steps in order, recording each as
/// done, until a step a person must do, a failure, or the end.
pub async fn advance(
    store: &Store,
    d: &Deployment,
    rb: &Runbook,
    r: &Runner<'_>,
) -> Result<(Stop, Vec<String>), String> {
    let mut lines = Vec::new();
    loop {
        // deciding which step runs, under the deployment's write lock: two
        // runs at once never run the same step
        let lock = store.lock(&d.id).await.map_err(|e| e.to_string())?;
        let k = read(store, &d.id, &mut lines).await?;
        let Some(seq) = current_sequence(rb, &k) else {
            return Ok((Stop::Idle, lines));
        };
        let done = done_steps(&k);
        let Some(&next) = seq
            .iter()
            .find(|&&i| !done.contains(rb.items[i].id.as_str()))
        else {
            return Ok((Stop::Complete, lines));
        };
        let it = &rb.items[next];
        if it.commands.iter().all(|b| b.commands.is_empty()) {
            return Ok((Stop::Waiting(next), lines));
        }
        if !r.allow_commands {
            return Ok((Stop::NeedsCommands(next), lines));
        }
        // the step's running lock is held until it is recorded done
        let (ran, running) = match run_step(store, d, rb, next, &k, r, Some(lock)).await? {
            StepRun::Succeeded(v, running) => (v, running),
            StepRun::Running(why) => return Ok((Stop::Running(next, why), lines)),
            StepRun::Refused(why) => return Ok((Stop::Failed(next, why), lines)),
        };
        // the record again, as it is now, under the lock again
        let _lock = store.lock(&d.id).await.map_err(|e| e.to_string())?;
        let k = read(store, &d.id, &mut Vec::new()).await?;
        if k.step_done(&it.id).is_some() {
            lines.push(format!(
                "{} {} was recorded done by another command meanwhile",
                it.address, it.title
            ));
            continue;
        }
        let (new, more) = done_events(
            rb,
            &k,
            next,
            r.actor,
            json!({ "skipped": false, "comment": null, "ran": ran }),
        );
        store.append(&d.id, &new).await.map_err(|e| e.to_string())?;
        running.release().await;
        lines.push(format!("{} {} done by {}", it.address, it.title, r.actor));
        lines.extend(more);
    }
}

/// Run a step's command blocks as one script: its start is recorded first,
/// with the process running it, then what it did. A failing script refuses
/// the step. `lock`, the deployment's write lock its caller decided under,
/// is released once the start is recorded: the commands may take minutes,
/// and meanwhile `golive watch` must still be able to raise a rollback.
///
/// The step's running lock ([`Store::try_lock_running`]) is taken first and
/// held until the caller has recorded the step done: while it is held, a
/// second command finds the step running (and by whom) and never runs it,
/// `confirm_rerun` or not. A start recorded with the lock free was left by a
/// process that is gone: the step is not run again without `confirm_rerun`.
pub async fn run_step(
    store: &Store,
    d: &Deployment,
    rb: &Runbook,
    step: usize,
    k: &Kept,
    r: &Runner<'_>,
    lock: Option<golive_store::WriteLock>,
) -> Result<StepRun, String> {
    let it = &rb.items[step];
    if !r.allow_commands {
        return Ok(StepRun::Refused(format!(
            "running {}'s commands needs --allow-commands",
            it.address
        )));
    }
    let commands: Vec<(String, Option<String>)> = it
        .commands
        .iter()
        .flat_map(|b| b.commands.iter())
        .map(|c| (c.text.clone(), c.expected.clone()))
        .collect();
    if commands.is_empty() {
        return Ok(StepRun::Refused(format!(
            "{} has no command block to run",
            it.address
        )));
    }
    let Some(running) = store
        .try_lock_running(&d.id, &it.id)
        .await
        .map_err(|e| e.to_string())?
    else {
        return Ok(StepRun::Running(running_text(rb, k, step)));
    };
    let progress = k.steps.get(&it.id).cloned().unwrap_or_default();
    if progress.starts > progress.runs && !r.confirm_rerun {
        // its lock is free: the process that started it is gone
        running.release().await;
        return Ok(StepRun::Refused(format!(
            "{} was started {}, which ended without recording what its commands did: check what they did, then pass --confirm-rerun",
            it.address,
            holder(rb, k, step)
        )));
    }
    // the deployment's recorded variables, then the ones given now
    let mut vars = golive_probe::Vars::new();
    for (k, v) in d.vars.as_object().into_iter().flatten() {
        if let Some(v) = v.as_str() {
            vars.set(k, v);
        }
    }
    for (k, v) in r.vars.plain() {
        vars.set(k, v);
    }
    let redact = crate::vars::Redactor::new(r.vars);
    for secret in r.vars.secret_names() {
        if let Some(v) = r.vars.get(secret) {
            vars.set_secret(secret, v);
        }
    }
    let table = toml::Table::new();
    let spec = golive_probe::Spec {
        kind: "command",
        table: &table,
        vars: &vars,
        commands,
        timeout: std::time::Duration::from_secs(600),
    };
    let kind = golive_probe::kind("command").ok_or("no command probe")?;
    let probe = match (kind.build)(&spec) {
        Ok(p) => p,
        Err(e) => {
            running.release().await;
            return Ok(StepRun::Refused(format!("{}: {e}", it.address)));
        }
    };
    store
        .append(
            &d.id,
            &[NewEvent::new(
                "step.started",
                json!({ "address": it.address, "pid": std::process::id(), "host": host() }),
            )
            .item(&it.id)
            .actor(r.actor)],
        )
        .await
        .map_err(|e| e.to_string())?;
    drop(lock);
    let obs = probe.observe().await;
    let (ok, record) = match &obs {
        Ok(o) => {
            let ok = o["exit_code"] == 0 && o["expected_match"] != false;
            (
                ok,
                json!({
                    "exit_code": o["exit_code"], "expected_match": o["expected_match"],
                    "stdout": o["stdout"], "stderr": o["stderr"], "duration_ms": o["duration_ms"],
                }),
            )
        }
        Err(e) => (false, json!({ "error": e.to_string() })),
    };
    let record = redact.clean_json(record);
    store
        .append(
            &d.id,
            &[NewEvent::new("step.run", record.clone())
                .item(&it.id)
                .actor(r.actor)],
        )
        .await
        .map_err(|e| e.to_string())?;
    if ok {
        Ok(StepRun::Succeeded(record, running))
    } else {
        running.release().await;
        Ok(StepRun::Refused(format!(
            "{}'s commands failed (exit {}{}): {}",
            it.address,
            record["exit_code"],
            if record["expected_match"] == false {
                ", output not as expected"
            } else {
                ""
            },
            record["stderr"]
                .as_str()
                .or(record["error"].as_str())
                .unwrap_or("")
                .trim()
        )))
    }
}

/// What `golive run` says after its advance.
pub fn stop_line(rb: &Runbook, stop: &Stop) -> Option<String> {
    let step = |i: usize| format!("{} {}", rb.items[i].address, rb.items[i].title);
    match stop {
        Stop::Idle => None,
        Stop::Complete => Some("every step of the sequence is done".into()),
        Stop::Waiting(i) => Some(format!(
            "next: {} (a person's step: golive done {} --as NAME)",
            step(*i),
            rb.items[*i].address
        )),
        Stop::NeedsCommands(i) => Some(format!(
            "next: {} has commands: run again with --allow-commands, or golive done {} --as NAME",
            step(*i),
            rb.items[*i].address
        )),
        Stop::Failed(i, why) => Some(format!("stopped at {}: {why}", step(*i))),
        Stop::Running(i, why) => Some(format!("next: {}: {why}", step(*i))),
    }
}

/// The step to do next: the first of the sequence running now
/// ([`current_sequence`]) not recorded done.
pub fn next_step(rb: &Runbook, k: &Kept) -> Option<usize> {
    let done = done_steps(k);
    current_sequence(rb, k)?
        .into_iter()
        .find(|&s| !done.contains(rb.items[s].id.as_str()))
}
