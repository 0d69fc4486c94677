//! Recording runs in the store, and `golive audit verify`.

use crate::vars::Redactor;
use golive_engine::{CheckResult, Plan};
use golive_runbook::Runbook;
use golive_store::{NewDeployment, NewEvent, Store};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::process::ExitCode;

/// The store used when none is named: a file under the working directory.
pub const DEFAULT_STORE: &str = "sqlite://.golive/golive.db";

/// A run being recorded as a deployment.
pub struct Recorder {
    store: Store,
    pub deployment: String,
}

/// Event data as stored: secret values replaced, like every other output.
fn clean(r: &Redactor, v: Value) -> Value {
    serde_json::from_str(&r.clean(&v.to_string())).unwrap_or(Value::Null)
}

impl Recorder {
    /// Create the deployment and record that the run started.
    pub async fn start(
        location: &str,
        rb: &Runbook,
        plan: &Plan,
        only: &[String],
        r: &Redactor,
    ) -> Result<Recorder, String> {
        let store = Store::open(location).await.map_err(|e| e.to_string())?;
        let vars = plan
            .checks
            .first()
            .map(|c| c.vars.clone())
            .unwrap_or(json!({}));
        let started_by = std::env::var("USER")
            .or_else(|_| std::env::var("LOGNAME"))
            .unwrap_or_else(|_| "unknown".into());
        let deployment = store
            .create_deployment(&NewDeployment {
                runbook_path: rb.path.clone(),
                runbook_sha256: hex::encode(Sha256::digest(rb.source.as_bytes())),
                started_by: started_by.clone(),
                vars: clean(r, vars),
            })
            .await
            .map_err(|e| e.to_string())?;
        store
            .append(
                &deployment,
                &[NewEvent::new(
                    "run.started",
                    clean(r, json!({ "checks": plan.checks.len(), "manual": plan.manual.len(), "only": only })),
                )
                .actor(&started_by)],
            )
            .await
            .map_err(|e| e.to_string())?;
        Ok(Recorder { store, deployment })
    }

    /// Record every result and the run's end, in one transaction.
    pub async fn finish(
        &self,
        rb: &Runbook,
        results: &[CheckResult],
        manual: &[usize],
        r: &Redactor,
    ) -> Result<(), String> {
        let mut events: Vec<NewEvent> = results
            .iter()
            .map(|res| {
                let item = &rb.items[res.check.item];
                NewEvent::new(
                    "check",
                    clean(
                        r,
                        json!({
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
                        }),
                    ),
                )
                .item(&item.id)
                .actor("golive")
            })
            .collect();
        let (total, _) = crate::checks::totals(rb, results, manual);
        events.push(NewEvent::new(
            "run.finished",
            json!({ "passed": total.passed, "failed": total.failed, "error": total.error, "skipped": total.skipped, "manual": total.manual }),
        ));
        self.store
            .append(&self.deployment, &events)
            .await
            .map_err(|e| e.to_string())?;
        eprintln!(
            "golive: recorded as deployment {} in {}",
            self.deployment, self.store.location
        );
        Ok(())
    }
}

/// `golive audit verify`.
pub async fn verify(location: &str, deployment: Option<&str>) -> Result<ExitCode, String> {
    let store = Store::open(location).await.map_err(|e| e.to_string())?;
    let d = store
        .deployment(deployment)
        .await
        .map_err(|e| format!("{e} ({})", store.location))?;
    match store.verify(&d.id).await.map_err(|e| e.to_string())? {
        Ok(n) => {
            println!(
                "{}: {n} events, chain intact (head {})",
                d.id,
                &d.head_hash[..16.min(d.head_hash.len())]
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(v) => {
            println!("{}: TAMPERED: {v}", d.id);
            Ok(ExitCode::from(1))
        }
    }
}
