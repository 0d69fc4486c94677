//! Recording runs in the store, `golive audit verify` and
//! `golive audit rebuild`.

use crate::store::intact;
use crate::vars::Redactor;
use crate::{Kept, Listener};
use golive_engine::{CheckResult, Plan};
use golive_runbook::Runbook;
use golive_store::{Deployment, Head, NewDeployment, NewEvent, Store};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// The store used when none is named: a file under the working directory.
pub const DEFAULT_STORE: &str = "sqlite://.golive/golive.db";

/// Who is running golive, as the system knows them: the account name of the
/// effective user id, or `uid N` when the user database has no entry for it
/// (a container's user, for one). Not `$USER` or `$LOGNAME`: those are
/// whatever the environment says, and absent under cron, systemd or `env -i`.
pub fn account() -> String {
    let uid = effective_uid();
    account_name(uid).unwrap_or_else(|| format!("uid {uid}"))
}

#[allow(unsafe_code)]
fn effective_uid() -> u32 {
    // SAFETY: geteuid takes no argument, cannot fail and touches no memory of ours.
    unsafe { libc::geteuid() }
}

/// The user database's name for `uid`, if it has an entry.
#[allow(unsafe_code)]
fn account_name(uid: u32) -> Option<String> {
    let mut size = 1024usize;
    loop {
        let mut buf = vec![0 as libc::c_char; size];
        // SAFETY: an all-zero passwd is a valid value (null pointers, zero ids).
        let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
        let mut found: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: every pointer is to memory owned here and live for the
        // call: getpwuid_r writes the entry into `pwd`, its strings into
        // `buf` (at most `size` bytes), and `found` to `&mut pwd` or null.
        let rc = unsafe { libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr(), size, &mut found) };
        if rc == libc::ERANGE && size < 1 << 20 {
            size *= 4;
            continue;
        }
        if rc != 0 || found.is_null() || pwd.pw_name.is_null() {
            return None;
        }
        // SAFETY: on success pw_name points to a NUL-terminated string
        // inside `buf`, which is still alive here.
        let name = unsafe { std::ffi::CStr::from_ptr(pwd.pw_name) };
        let name = name.to_string_lossy().trim().to_string();
        return (!name.is_empty()).then_some(name);
    }
}

/// A run being recorded as a deployment.
pub struct Recorder {
    store: Store,
    pub deployment: String,
    /// The run continues an open deployment of the same runbook.
    pub continued: bool,
}

/// One check's result as an event.
pub fn check_event(rb: &Runbook, res: &CheckResult, r: &Redactor) -> NewEvent {
    let item = &rb.items[res.check.item];
    let mut data = json!({
                "outcome": res.outcome.as_str(),
                "message": match &res.outcome {
                    golive_engine::Outcome::Error(e) | golive_engine::Outcome::Skipped(e) => Some(e.clone()),
                    _ => None,
                },
                "kind": res.check.kind,
                "target": res.check.probe.target(),
                "expect": res.check.expect.source,
                "actual": res.actual.iter().cloned().collect::<serde_json::Map<_, _>>(),
                "fills": res.fills.iter().map(|(k, v)| (k.clone(), json!(v))).collect::<serde_json::Map<_, _>>(),
                "attempts": res.attempts,
                "duration_ms": res.duration.as_secs_f64() * 1e3,
                "line": res.check.loc.line,
    });
    if let (Some(b), Value::Object(m)) = (&res.baseline, &mut data) {
        m.insert("baseline".into(), b.clone());
    }
    NewEvent::new("check", r.clean_json(data))
        .item(&item.id)
        .actor("golive")
}

impl Recorder {
    /// Continue the open deployment of this runbook (see [`choose`]), or
    /// create one when there is none or `new` is asked; then record that the
    /// run started.
    #[allow(clippy::too_many_arguments)]
    pub async fn start(
        location: &str,
        rb: &Runbook,
        plan: &Plan,
        only: &[String],
        r: &Redactor,
        new: bool,
        continue_id: Option<&str>,
        given: &golive_probe::Vars,
        l: &dyn Listener,
    ) -> Result<Recorder, String> {
        let store = crate::store::create_store(location)
            .await
            .map_err(|e| e.to_string())?;
        // the variables the checks were bound with; without checks, the
        // plain ones the run was given (the messages read VERSION)
        let vars = plan
            .checks
            .first()
            .map(|c| c.vars.clone())
            .unwrap_or_else(|| {
                serde_json::Value::Object(
                    given
                        .plain()
                        .map(|(k, v)| (k.to_string(), json!(v)))
                        .collect(),
                )
            });
        let started_by = account();
        let sha = hex::encode(Sha256::digest(rb.source.as_bytes()));
        let open = match continue_id {
            Some(id) => {
                let d = store
                    .deployment(Some(id))
                    .await
                    .map_err(|e| e.to_string())?;
                intact(&d)?;
                if d.runbook_sha256 != sha {
                    return Err(refuse_changed(&rb.path, &d, &sha));
                }
                Some(d.id)
            }
            None if new => None,
            None => match choose(&store, &rb.path, &sha, l).await? {
                Choice::Continue(d) => Some(d.id),
                Choice::New => None,
                Choice::Changed(d) => {
                    l.note(&format!(
                        "{}: a new deployment is recorded; {} stays open (before GO): restore the runbook as it was then to go back to it",
                        changed(&rb.path, &d, &sha),
                        d.id
                    ));
                    None
                }
            },
        };
        let continued = open.is_some();
        // any process serving this store (a server) reads the runbook from
        // it, not from this machine's file
        store
            .put_runbook(&rb.path, &rb.source, &started_by)
            .await
            .map_err(|e| e.to_string())?;
        let deployment = match open {
            Some(id) => id,
            None => store
                .create_deployment(&NewDeployment {
                    runbook_path: rb.path.clone(),
                    runbook_sha256: sha,
                    started_by: started_by.clone(),
                    vars: r.clean_json(vars),
                })
                .await
                .map_err(|e| e.to_string())?,
        };
        store
            .append(
                &deployment,
                &[NewEvent::new(
                    "run.started",
                    r.clean_json(json!({ "checks": plan.checks.len(), "manual": plan.manual.len(), "only": only })),
                )
                .actor(&started_by)],
            )
            .await
            .map_err(|e| e.to_string())?;
        Ok(Recorder {
            store,
            deployment,
            continued,
        })
    }

    /// Side-effecting checks (item id, annotation line) recorded as started
    /// in an earlier run with no result after: a kill interrupted them.
    pub async fn interrupted(&self, l: &dyn Listener) -> Result<Vec<(String, u64)>, String> {
        Ok(self.kept(l).await?.checks_started)
    }

    /// The deployment's state, kept or (with a note) replayed.
    pub(crate) async fn kept(&self, l: &dyn Listener) -> Result<Kept, String> {
        let (k, note) = Kept::read(&self.store, &self.deployment)
            .await
            .map_err(|e| e.to_string())?;
        if let Some(n) = note {
            l.note(&n);
        }
        Ok(k)
    }

    /// The store it records in.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Record, before they run, the side-effecting checks about to run.
    pub async fn starting(
        &self,
        rb: &Runbook,
        checks: &[&golive_engine::Check],
    ) -> Result<(), String> {
        let events: Vec<NewEvent> = checks
            .iter()
            .map(|c| {
                NewEvent::new(
                    "check.started",
                    json!({ "kind": c.kind, "line": c.loc.line }),
                )
                .item(&rb.items[c.item].id)
                .actor("golive")
            })
            .collect();
        if events.is_empty() {
            return Ok(());
        }
        self.store
            .append(&self.deployment, &events)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    /// A sink that records each result as it comes (a kill loses none that
    /// finished), and the task draining it.
    pub fn sink(
        &self,
    ) -> (
        tokio::sync::mpsc::UnboundedSender<NewEvent>,
        tokio::task::JoinHandle<Result<(), String>>,
    ) {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<NewEvent>();
        let store = self.store.clone();
        let id = self.deployment.clone();
        let task = tokio::spawn(async move {
            // each result as soon as it comes; those that came while the
            // last append was committing go together in the next one
            while let Some(e) = rx.recv().await {
                let mut batch = vec![e];
                while let Ok(more) = rx.try_recv() {
                    batch.push(more);
                }
                store.append(&id, &batch).await.map_err(|e| e.to_string())?;
            }
            Ok(())
        });
        (tx, task)
    }

    /// Move the deployment's current sequence on (see [`crate::procedure::advance`]).
    pub async fn advance(
        &self,
        rb: &Runbook,
        runner: &crate::procedure::Runner<'_>,
    ) -> Result<(crate::procedure::Stop, Vec<String>), String> {
        let d = self
            .store
            .deployment(Some(&self.deployment))
            .await
            .map_err(|e| e.to_string())?;
        // the steps run with the recorded variables: not from an edited row
        intact(&d)?;
        crate::procedure::advance(&self.store, &d, rb, runner).await
    }

    /// Record the run's end.
    pub async fn finish(
        &self,
        rb: &Runbook,
        results: &[CheckResult],
        manual: &[usize],
        l: &dyn Listener,
    ) -> Result<(), String> {
        let (total, _) = crate::counts::totals(rb, results, manual);
        // the document's automatic criterion: failing health checks after GO
        // raise the rollback decision at once (under the deployment's write
        // lock: a rollback is raised once, whoever else is raising it)
        let _lock = self
            .store
            .lock(&self.deployment)
            .await
            .map_err(|e| e.to_string())?;
        let k = self.kept(l).await?;
        let team = || {
            crate::roster_for(rb, None)
                .map(|r| r.team)
                .map_err(|e| e.to_string())
        };
        if let Some((raise, line)) = crate::lifecycle::raised_by_results(rb, &k, results, team)? {
            self.store
                .append(&self.deployment, &raise)
                .await
                .map_err(|e| e.to_string())?;
            l.line(&line);
        }
        let end = NewEvent::new(
            "run.finished",
            json!({ "passed": total.passed, "failed": total.failed, "error": total.error, "skipped": total.skipped, "manual": total.manual }),
        );
        self.store
            .append(&self.deployment, &[end])
            .await
            .map_err(|e| e.to_string())?;
        l.note(&format!(
            "recorded {} deployment {} in {}",
            if self.continued { "in the open" } else { "as" },
            self.deployment,
            self.store.location
        ));
        Ok(())
    }
}

/// What `golive run` was asked, beyond the runbook and its plan.
pub struct Run<'a> {
    pub store: &'a str,
    pub only: &'a [String],
    /// How checks run; its `baselines` are the deployment's to decide
    /// ([`crate::lifecycle::baselines`]), whatever is given.
    pub opts: golive_engine::RunOptions,
    /// A new deployment, even when one of this runbook is open.
    pub new: bool,
    /// Continue this deployment.
    pub deployment: Option<&'a str>,
    /// Run again a command an interrupted run started.
    pub confirm_rerun: bool,
    /// The variables the procedure's commands run with.
    pub vars: &'a golive_probe::Vars,
}

/// What a recorded run did.
pub struct RunOutcome {
    pub results: Vec<CheckResult>,
    /// Where the procedure (or the Rollback Steps) stopped after it.
    pub stop: crate::procedure::Stop,
    pub deployment: String,
}

/// `golive run`: the plan's checks run concurrently into the deployment's
/// record (each result appended as it comes: a kill loses none that
/// finished), the run's end recorded (raising the rollback when health
/// checks fail after GO), then the procedure moved on as far as machines
/// can take it. A side-effecting check an interrupted run started is not
/// run again unless `confirm_rerun`.
pub async fn run(
    rb: &Runbook,
    plan: &Plan,
    redact: &Redactor,
    a: &Run<'_>,
    l: std::sync::Arc<dyn Listener>,
) -> Result<RunOutcome, String> {
    let recorder = Recorder::start(
        a.store,
        rb,
        plan,
        a.only,
        redact,
        a.new,
        a.deployment,
        a.vars,
        &*l,
    )
    .await?;
    let kept = recorder.kept(&*l).await?;
    let interrupted = kept.checks_started.clone();
    let mut opts = a.opts.clone();
    opts.baselines = crate::lifecycle::baselines(rb, &kept);
    let mut plan_now = Plan {
        checks: plan.checks.clone(),
        manual: Vec::new(),
        problems: Vec::new(),
    };
    let mut held = Vec::new();
    if !a.confirm_rerun {
        let (keep, hold): (Vec<_>, Vec<_>) = std::mem::take(&mut plan_now.checks)
            .into_iter()
            .partition(|c| {
                !(c.probe.side_effects()
                    && interrupted.contains(&(rb.items[c.item].id.clone(), u64::from(c.loc.line))))
            });
        plan_now.checks = keep;
        held = hold;
    }
    if a.opts.allow_commands {
        let side: Vec<&golive_engine::Check> = plan_now
            .checks
            .iter()
            .filter(|c| c.probe.side_effects())
            .map(|c| c.as_ref())
            .collect();
        recorder.starting(rb, &side).await?;
    }
    let (sink, drain) = recorder.sink();
    let shared = std::sync::Arc::new(rb.clone());
    let (rb2, redact2, l2) = (shared.clone(), redact.clone(), l.clone());
    let progress: std::sync::Arc<dyn Fn(&CheckResult) + Send + Sync> =
        std::sync::Arc::new(move |r: &CheckResult| {
            let _ = sink.send(check_event(&rb2, r, &redact2));
            l2.check(&rb2, r);
        });
    let mut results = golive_engine::run_plan(&plan_now, &opts, progress).await;
    drain.await.map_err(|e| e.to_string())??;
    for check in held {
        let res = CheckResult {
            check,
            outcome: golive_engine::Outcome::Skipped(
                "an earlier run started this command and was interrupted: pass --confirm-rerun to run it again"
                    .into(),
            ),
            observation: None,
            actual: Vec::new(),
            fills: Vec::new(),
            baseline: None,
            attempts: 0,
            duration: std::time::Duration::ZERO,
        };
        l.held(rb, &res);
        results.push(res);
    }
    recorder.finish(rb, &results, &plan.manual, &*l).await?;
    let runner = crate::procedure::Runner {
        actor: "golive",
        allow_commands: a.opts.allow_commands,
        confirm_rerun: a.confirm_rerun,
        vars: a.vars,
    };
    let (stop, lines) = recorder.advance(rb, &runner).await?;
    for line in &lines {
        l.line(&redact.clean(line));
    }
    if let Some(line) = crate::procedure::stop_line(rb, &stop) {
        l.line(&redact.clean(&line));
    }
    Ok(RunOutcome {
        results,
        stop,
        deployment: recorder.deployment.clone(),
    })
}

/// What changed: the runbook at `path`, since deployment `d` started.
fn changed(path: &str, d: &Deployment, sha: &str) -> String {
    format!(
        "{path} changed since deployment {} was started (sha256 {} then, {} now)",
        d.id,
        &d.runbook_sha256[..12.min(d.runbook_sha256.len())],
        &sha[..12.min(sha.len())]
    )
}

/// A run refused because the runbook changed under deployment `d`, and how
/// to go on.
fn refuse_changed(path: &str, d: &Deployment, sha: &str) -> String {
    format!(
        "{}; it is not left behind: restore the runbook as it was to continue it, or start a new deployment with --new",
        changed(path, d, sha)
    )
}

/// Which deployment a run of a runbook goes on with.
pub enum Choice {
    /// The newest open deployment of the same path and content.
    Continue(Deployment),
    /// None is open: a new one.
    New,
    /// None of this content is open, and the newest open one (before GO)
    /// was started from another content: a new one, saying so.
    Changed(Deployment),
}

/// The deployment a run of the runbook at `path` with content `sha` goes on
/// with: the newest open (not ended) deployment of the same path and
/// content. Before it, in order from the newest: an open deployment past GO
/// of another content is never left behind silently (the runbook changed
/// under it: restore it, or `--new`), and a deployment whose row was edited
/// is refused.
pub async fn choose(
    store: &Store,
    path: &str,
    sha: &str,
    l: &dyn Listener,
) -> Result<Choice, String> {
    let mut changed_before_go = None;
    for d in store
        .deployments_for(path)
        .await
        .map_err(|e| e.to_string())?
    {
        let (k, note) = Kept::read(store, &d.id).await.map_err(|e| e.to_string())?;
        if k.has_ended() {
            continue;
        }
        if let Some(n) = note {
            l.note(&n);
        }
        intact(&d)?;
        if d.runbook_sha256 == sha {
            return Ok(Choice::Continue(d));
        }
        if k.go().is_some() {
            return Err(refuse_changed(path, &d, sha));
        }
        changed_before_go.get_or_insert(d);
    }
    Ok(changed_before_go.map_or(Choice::New, Choice::Changed))
}

/// The deployment a watch of the runbook follows: the newest of this
/// runbook as it is now (ended or not: a watch follows a deployment after
/// its end), or a new one, unless the newest open one is past GO with
/// another content.
pub async fn deployment_of(
    store: &Store,
    rb: &Runbook,
    l: &dyn Listener,
) -> Result<String, String> {
    let sha = hex::encode(Sha256::digest(rb.source.as_bytes()));
    for d in store
        .deployments_for(&rb.path)
        .await
        .map_err(|e| e.to_string())?
    {
        if d.runbook_sha256 == sha {
            intact(&d)?;
            return Ok(d.id);
        }
    }
    if let Choice::Continue(d) = choose(store, &rb.path, &sha, l).await? {
        return Ok(d.id);
    }
    let started_by = account();
    store
        .put_runbook(&rb.path, &rb.source, &started_by)
        .await
        .map_err(|e| e.to_string())?;
    store
        .create_deployment(&NewDeployment {
            runbook_path: rb.path.clone(),
            runbook_sha256: sha,
            started_by,
            vars: json!({}),
        })
        .await
        .map_err(|e| e.to_string())
}

/// What `golive audit verify` found.
#[derive(Debug, Clone, PartialEq)]
pub struct Verified {
    pub deployment: Deployment,
    /// The chain: its events, intact, or the first row that does not hold.
    pub chain: Result<i64, golive_store::Violation>,
    /// The kept state against the replay of the chain (only for an intact
    /// chain).
    pub kept: KeptCheck,
}

/// The kept state, compared with the replay of the chain.
#[derive(Debug, Clone, PartialEq)]
pub enum KeptCheck {
    /// Not compared: the chain does not hold.
    NotCompared,
    /// Equal to the replay.
    Equal,
    /// None is kept (nor needed: the deployment has no event yet).
    Empty,
    /// None is kept.
    Missing,
    /// Kept, but not readable as a state.
    Damaged(String),
    /// Kept for an earlier event than the head.
    Behind { seq: i64, head: i64 },
    /// Kept for a later event than the head: events were removed from the
    /// chain's end (and its head set back), or the state was edited.
    Ahead { seq: i64, head: i64 },
    /// Kept for an event of the head's number with another hash: the head
    /// or the state was rewritten.
    Diverged { seq: i64 },
    /// Kept for the head, and different from the replay in these fields.
    Differs(Vec<&'static str>),
}

impl KeptCheck {
    pub fn holds(&self) -> bool {
        matches!(
            self,
            KeptCheck::Equal | KeptCheck::Empty | KeptCheck::NotCompared
        )
    }
}

/// `golive audit verify [ID] [--head SEQ:HASH]`: the chain from the row,
/// that it reaches `kept` when given, and that the kept state is the
/// replay of the chain.
pub async fn verify(
    store: &Store,
    deployment: Option<&str>,
    kept: Option<&Head>,
) -> Result<Verified, String> {
    let d = store
        .deployment(deployment)
        .await
        .map_err(|e| format!("{e} ({})", store.location))?;
    let chain = store
        .verify_to(&d.id, kept)
        .await
        .map_err(|e| e.to_string())?;
    let kept = if chain.is_ok() {
        compare_kept(store, &d.id).await?.0
    } else {
        KeptCheck::NotCompared
    };
    Ok(Verified {
        deployment: d,
        chain,
        kept,
    })
}

/// The kept state of `id` against the replay of its chain, and the replay.
async fn compare_kept(store: &Store, id: &str) -> Result<(KeptCheck, Kept, i64), String> {
    let err = |e: golive_store::StoreError| e.to_string();
    let row = store.kept(id).await.map_err(err)?;
    let events = store.events(id).await.map_err(err)?;
    let replay = Kept::replay(&events);
    let check = match row {
        None if events.is_empty() => KeptCheck::Empty,
        None => KeptCheck::Missing,
        Some(r) if r.seq < r.head_seq => KeptCheck::Behind {
            seq: r.seq,
            head: r.head_seq,
        },
        Some(r) if r.seq > r.head_seq => KeptCheck::Ahead {
            seq: r.seq,
            head: r.head_seq,
        },
        Some(r) if !r.current => KeptCheck::Diverged { seq: r.seq },
        Some(r) => match serde_json::from_str::<Kept>(&r.state) {
            Err(e) => KeptCheck::Damaged(e.to_string()),
            Ok(k) => match k.differences(&replay) {
                d if d.is_empty() => KeptCheck::Equal,
                d => KeptCheck::Differs(d),
            },
        },
    };
    Ok((check, replay, events.len() as i64))
}

/// What `golive audit rebuild` did.
#[derive(Debug, Clone, PartialEq)]
pub struct Rebuilt {
    pub deployment: String,
    /// How the kept state was before.
    pub was: KeptCheck,
    /// The events replayed.
    pub events: i64,
    /// Whether a state was written (not when it was equal already).
    pub written: bool,
}

/// `golive audit rebuild [ID]`: write the kept state again from the chain,
/// after checking that the chain holds (a state is never made from a
/// tampered chain). Retries when the deployment moves on meanwhile.
pub async fn rebuild(store: &Store, deployment: Option<&str>) -> Result<Rebuilt, String> {
    let d = store
        .deployment(deployment)
        .await
        .map_err(|e| format!("{e} ({})", store.location))?;
    if let Err(v) = store.verify(&d.id).await.map_err(|e| e.to_string())? {
        return Err(format!(
            "{}: TAMPERED: {v}; its state is not rebuilt from a chain that does not hold",
            d.id
        ));
    }
    loop {
        let (was, replay, events) = compare_kept(store, &d.id).await?;
        if was == KeptCheck::Equal || was == KeptCheck::Empty {
            return Ok(Rebuilt {
                deployment: d.id,
                was,
                events,
                written: false,
            });
        }
        let state = serde_json::to_string(&replay).map_err(|e| e.to_string())?;
        if store
            .put_kept(&d.id, replay.seq, &replay.hash, &state)
            .await
            .map_err(|e| e.to_string())?
        {
            return Ok(Rebuilt {
                deployment: d.id,
                was,
                events,
                written: true,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    /// uid 0 is root everywhere; a uid the user database has no entry for
    /// has no name, and the starter is then recorded as `uid N`.
    #[test]
    fn account_names_come_from_the_user_database() {
        assert_eq!(super::account_name(0).as_deref(), Some("root"));
        assert_eq!(super::account_name(4_000_000_000), None);
    }
}
