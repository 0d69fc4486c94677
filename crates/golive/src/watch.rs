//! `golive watch RUNBOOK|DEPLOYMENT`: the lifecycle's watch (golive-deploy)
//! followed on the terminal, its day's health-check report written beside
//! the store after each evaluation.

use golive_deploy::Listener;
use golive_deploy::watch::{WatchEvent, WatchListener, Watched};
use golive_runbook::Runbook;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Prints what the watch reports and writes its daily report.
struct Follow {
    deployment: String,
    report_dir: PathBuf,
}

impl Listener for Follow {
    fn note(&self, text: &str) {
        eprintln!("golive: {text}");
    }
}

impl WatchListener for Follow {
    fn watch(&self, rb: &Runbook, e: &WatchEvent<'_>) -> Result<(), String> {
        match e {
            WatchEvent::Started {
                checks,
                deployment,
                interval,
            } => println!(
                "watching {checks} check(s) of {} for deployment {deployment} every {}",
                rb.path,
                golive_probe::show_duration(*interval)
            ),
            WatchEvent::Restarted { item, why } => {
                eprintln!(
                    "{} {}: {why}",
                    rb.items[*item].address, rb.items[*item].title
                )
            }
            WatchEvent::Changed { at, change, item } => println!(
                "{} {} {}: {}",
                at.strftime("%H:%M:%S"),
                change.name().to_uppercase(),
                rb.items[*item].address,
                rb.items[*item].title
            ),
            WatchEvent::Raised { reason, authority } => {
                eprintln!("golive: ROLLBACK DECISION RAISED: {reason} ({authority})")
            }
            WatchEvent::Alerted { state, to, ms } => {
                println!("  alert {state} → {to} in {ms:.1} ms")
            }
            WatchEvent::NotAlerted { state, error } => {
                eprintln!("  alert {state} not delivered: {error}")
            }
            WatchEvent::Evaluated {
                day,
                events,
                windows,
            } => {
                // rewritten whole after each evaluation, written beside and
                // then renamed: never half a file
                let text = golive_report::hypercare::daily_report(
                    rb,
                    &self.deployment,
                    events,
                    day,
                    windows,
                );
                let dir = &self.report_dir;
                std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
                let path = dir.join(format!("health-{}-{day}.md", self.deployment));
                let tmp = path.with_extension("md.tmp");
                std::fs::write(&tmp, text).map_err(|e| format!("{}: {e}", tmp.display()))?;
                std::fs::rename(&tmp, &path).map_err(|e| format!("{}: {e}", path.display()))?;
            }
        }
        Ok(())
    }
}

/// Watch `target`, a runbook file (which may start its first deployment)
/// or a deployment id.
pub async fn watch(
    location: &str,
    target: &str,
    report_dir: PathBuf,
    notify_specs: &[String],
    mut a: golive_deploy::watch::Watch<'_>,
) -> Result<ExitCode, String> {
    let store = golive_deploy::watch::store_for(location, target).await?;
    let cli = crate::deploy::Cli;
    let (rb, deployment) = if Path::new(target).is_file() {
        let rb = crate::load(Path::new(target))?;
        let id = golive_deploy::record::deployment_of(&store, &rb, &cli).await?;
        (rb, id)
    } else {
        let d = store
            .deployment(Some(target))
            .await
            .map_err(|e| format!("{e}: give a runbook file or a deployment id"))?;
        let rb = crate::load(Path::new(&d.runbook_path))?;
        (rb, d.id)
    };
    let follow = Follow {
        deployment: deployment.clone(),
        report_dir,
    };
    let vars = a.vars;
    let channels = crate::notify::channels(&rb, notify_specs)?;
    let sender = crate::notify::sender(&channels);
    if !channels.is_empty() {
        a.notify = Some(&sender);
    }
    match golive_deploy::watch::watch(store, deployment, rb.clone(), a, &follow).await? {
        Watched::Problems(plan) => {
            let redact = golive_deploy::vars::Redactor::new(vars);
            eprint!(
                "{}",
                golive_report::run::render_problems(&rb, &plan, &redact)
            );
            Ok(ExitCode::from(2))
        }
        Watched::Ran { firing } => Ok(if firing {
            ExitCode::from(1)
        } else {
            ExitCode::SUCCESS
        }),
    }
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
