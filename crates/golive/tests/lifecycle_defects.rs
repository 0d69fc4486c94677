//! The lifecycle on a checklist shaped like the public ones: no roles, no
//! Go/No-Go section, a "Deployment" stage golive cannot place, a smoke stage
//! without items. One test per defect found on such documents.

mod common;

use serde_json::Value;
use std::path::PathBuf;
use std::process::{Command, Output};

/// A checklist with no `**Responsible:**` field, no decision stage, no
/// Contact Information, and a smoke stage that only says what to do.
const PLAIN: &str = "# Service release checklist

## Pre-deployment

- [ ] Backups taken
- [ ] Change approved

## Deployment

- [ ] Deploy the new build
- [ ] Run the database migrations

## Smoke tests

Try the main pages by hand after the deploy.

## Post-deployment verification

- [ ] Dashboards are green
- [ ] Error rate is normal
";

struct Env {
    dir: PathBuf,
}

impl Env {
    fn new(tag: &str) -> Env {
        let dir =
            std::env::temp_dir().join(format!("golive-lifecycle-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        std::fs::write(dir.join("release.md"), PLAIN).expect("runbook");
        Env { dir }
    }

    fn runbook(&self) -> String {
        self.dir.join("release.md").display().to_string()
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_golive"));
        c.args(args).current_dir(&self.dir).env(
            "GOLIVE_STORE",
            format!("sqlite://{}", self.dir.join("golive.db").display()),
        );
        c
    }

    fn golive(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("golive runs")
    }

    fn status_json(&self) -> Value {
        let out = self.golive(&["status", "--format", "json"]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        serde_json::from_slice(&out.stdout).expect("status json")
    }
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The account name of the user running the tests, as `id -un` says.
fn account() -> String {
    let out = Command::new("id").arg("-un").output().expect("id -un");
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// With `$USER` and `$LOGNAME` unset, deployments were "started by
/// unknown": the starter is the account the system reports for the user
/// running golive.
#[test]
fn started_by_is_the_os_account_when_user_is_unset() {
    let env = Env::new("account");
    let out = env
        .command(&["run", &env.runbook()])
        .env_remove("USER")
        .env_remove("LOGNAME")
        .output()
        .expect("golive runs");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let me = account();
    let v = env.status_json();
    assert_eq!(v["started_by"], me.as_str(), "{v:#}");
    let text = stdout(&env.golive(&["status"]));
    assert!(text.contains(&format!(" by {me}, ")), "{text}");
    assert!(!text.contains("unknown"), "{text}");

    // the run's own event carries the same actor
    let report = env.golive(&["report", "--format", "json"]);
    let r: Value = serde_json::from_slice(&report.stdout).expect("report json");
    let started = r["events"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|e| e["kind"] == "run.started")
        .cloned()
        .unwrap_or_default();
    assert_eq!(started["actor"], me.as_str(), "{started}");
}
