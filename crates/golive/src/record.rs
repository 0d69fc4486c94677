//! Recording runs in the store, and `golive audit verify`.

use crate::vars::Redactor;
use golive_engine::{CheckResult, Plan};
use golive_runbook::Runbook;
use golive_store::{Binding, Deployment, Head, NewDeployment, NewEvent, Store};
use serde_json::json;
use sha2::{Digest, Sha256};
use std::process::ExitCode;

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
    NewEvent::new(
        "check",
        r.clean_json(json!({
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
        })),
    )
    .item(&item.id)
    .actor("golive")
}

impl Recorder {
    /// Continue the open deployment of this runbook (see [`choose`]), or
    /// create one when there is none or `new` is asked; then record that the
    /// run started.
    pub async fn start(
        location: &str,
        rb: &Runbook,
        plan: &Plan,
        only: &[String],
        r: &Redactor,
        new: bool,
        continue_id: Option<&str>,
    ) -> Result<Recorder, String> {
        let store = Store::open(location).await.map_err(|e| e.to_string())?;
        let vars = plan
            .checks
            .first()
            .map(|c| c.vars.clone())
            .unwrap_or(json!({}));
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
            None => match choose(&store, &rb.path, &sha).await? {
                Choice::Continue(d) => Some(d.id),
                Choice::New => None,
                Choice::Changed(d) => {
                    eprintln!(
                        "golive: {}: a new deployment is recorded; {} stays open (before GO): restore the runbook as it was then to go back to it",
                        changed(&rb.path, &d, &sha),
                        d.id
                    );
                    None
                }
            },
        };
        let continued = open.is_some();
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
    pub async fn interrupted(&self) -> Result<Vec<(String, u64)>, String> {
        let events = self
            .store
            .events(&self.deployment)
            .await
            .map_err(|e| e.to_string())?;
        let mut open: Vec<(String, u64)> = Vec::new();
        for e in &events {
            let key = (
                e.item.clone().unwrap_or_default(),
                e.data["line"].as_u64().unwrap_or(0),
            );
            match e.kind.as_str() {
                "check.started" => open.push(key),
                "check" => open.retain(|k| *k != key),
                _ => {}
            }
        }
        Ok(open)
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
            while let Some(e) = rx.recv().await {
                store.append(&id, &[e]).await.map_err(|e| e.to_string())?;
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
    ) -> Result<(), String> {
        let (total, _) = crate::checks::totals(rb, results, manual);
        // the document's automatic criterion: failing health checks after GO
        // raise the rollback decision at once (under the deployment's write
        // lock: a rollback is raised once, whoever else is raising it)
        let _lock = self
            .store
            .lock(&self.deployment)
            .await
            .map_err(|e| e.to_string())?;
        let events = self
            .store
            .events(&self.deployment)
            .await
            .map_err(|e| e.to_string())?;
        let deploying = crate::lifecycle::may_raise(&events);
        let health_rule = golive_engine::rules::rollback_rules(rb)
            .into_iter()
            .find(|r| r.kind == golive_engine::rules::RuleKind::HealthChecksFailing);
        if deploying && let Some(rule) = health_rule {
            let failing: Vec<String> = results
                .iter()
                .filter(|r| {
                    matches!(
                        r.outcome,
                        golive_engine::Outcome::Failed | golive_engine::Outcome::Error(_)
                    )
                })
                .map(|r| &rb.items[r.check.item])
                .filter(|it| it.title.to_lowercase().contains("health"))
                .map(|it| format!("{} {}", it.address, it.title))
                .collect();
            if !failing.is_empty() {
                let by = crate::lifecycle::rollback_authority(rb).0;
                let reason = format!("health checks failing: {}", failing.join(", "));
                self.store
                    .append(
                        &self.deployment,
                        &crate::lifecycle::raise(rb, rule.item, &reason, true),
                    )
                    .await
                    .map_err(|e| e.to_string())?;
                eprintln!(
                    "golive: ROLLBACK INITIATED with automatic authority ({by}): {reason}; the Rollback Steps run now"
                );
            }
        }
        let end = NewEvent::new(
            "run.finished",
            json!({ "passed": total.passed, "failed": total.failed, "error": total.error, "skipped": total.skipped, "manual": total.manual }),
        );
        self.store
            .append(&self.deployment, &[end])
            .await
            .map_err(|e| e.to_string())?;
        eprintln!(
            "golive: recorded {} deployment {} in {}",
            if self.continued { "in the open" } else { "as" },
            self.deployment,
            self.store.location
        );
        Ok(())
    }
}

/// A deployment whose own row no longer matches its record (edited after it
/// was recorded) is used by no command: its variables and runbook hash are
/// not what was recorded.
pub fn intact(d: &Deployment) -> Result<(), String> {
    if d.binding == Binding::Broken {
        return Err(format!(
            "deployment {}'s row no longer matches its record: its runbook path or hash, variables, starter or start time were edited after it was recorded (golive audit verify {} says so); it is not used",
            d.id, d.id
        ));
    }
    Ok(())
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
pub async fn choose(store: &Store, path: &str, sha: &str) -> Result<Choice, String> {
    let mut changed_before_go = None;
    for d in store
        .deployments_for(path)
        .await
        .map_err(|e| e.to_string())?
    {
        let events = store.events(&d.id).await.map_err(|e| e.to_string())?;
        if crate::lifecycle::ended(&events) {
            continue;
        }
        intact(&d)?;
        if d.runbook_sha256 == sha {
            return Ok(Choice::Continue(d));
        }
        if crate::lifecycle::go_decision(&events).is_some() {
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
pub async fn deployment_of(store: &Store, rb: &Runbook) -> Result<String, String> {
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
    if let Choice::Continue(d) = choose(store, &rb.path, &sha).await? {
        return Ok(d.id);
    }
    let started_by = account();
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

/// `golive audit verify [ID] [--head SEQ:HASH]`.
pub async fn verify(
    location: &str,
    deployment: Option<&str>,
    kept: Option<&Head>,
) -> Result<ExitCode, String> {
    let store = Store::open_existing(location)
        .await
        .map_err(|e| e.to_string())?;
    let d = store
        .deployment(deployment)
        .await
        .map_err(|e| format!("{e} ({})", store.location))?;
    match store
        .verify_to(&d.id, kept)
        .await
        .map_err(|e| e.to_string())?
    {
        Ok(n) => {
            println!(
                "{}: {n} events, chain intact (head {}){}",
                d.id,
                d.head(),
                kept.map(|k| format!(", reaches the kept head {k}"))
                    .unwrap_or_default()
            );
            if !d.row_covered() {
                println!(
                    "{}: deployment row not covered (created by an older golive): its runbook hash and variables are not part of the chain",
                    d.id
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(v) => {
            println!("{}: TAMPERED: {v}", d.id);
            Ok(ExitCode::from(1))
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
