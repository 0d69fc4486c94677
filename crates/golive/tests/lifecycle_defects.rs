//! The lifecycle on a checklist shaped like the public ones: no roles, no
//! Go/No-Go section, a "Deployment" stage golive cannot place, a smoke stage
//! without items. One test per defect found on such documents.

mod common;

use serde_json::Value;
use std::path::{Path, PathBuf};
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

    /// `golive run` of the checklist: it has no checks, the run records the
    /// deployment.
    fn start(&self) {
        let out = self.golive(&["run", &self.runbook()]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    }

    /// roster.toml beside the runbook: one person, the Deployment Lead.
    fn roster(&self) {
        std::fs::write(
            self.dir.join("roster.toml"),
            "[[person]]\nname = \"Pat Lead\"\nroles = [\"Deployment Lead\"]\n",
        )
        .expect("roster");
    }

    fn ok(&self, args: &[&str]) {
        let out = self.golive(args);
        assert_eq!(
            out.status.code(),
            Some(0),
            "golive {args:?}: {}{}",
            stdout(&out),
            stderr(&out)
        );
    }

    fn sign(&self, item: &str) {
        self.ok(&[
            "sign",
            item,
            "--as",
            "Pat Lead",
            "--role",
            "Deployment Lead",
        ]);
    }

    /// The pre-deployment items signed, then GO by the only decision role a
    /// document without a Go/No-Go section has.
    fn go(&self) {
        self.start();
        self.roster();
        self.sign("1.1");
        self.sign("1.2");
        self.ok(&[
            "decide",
            "go",
            "--as",
            "Pat Lead",
            "--role",
            "Deployment Lead",
        ]);
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

fn addresses(v: &Value) -> Vec<String> {
    v["pending_signoffs"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| p["address"].as_str().unwrap_or("").to_string())
        .collect()
}

/// After GO, status said "Pending sign-offs (0)" while the items of the
/// later stages were open: it lists every open item of the stages that are
/// due, with the role that signs it or "anyone on the roster".
#[test]
fn status_after_go_lists_the_open_items_of_the_due_stages() {
    let env = Env::new("status");
    env.start();
    env.roster();
    // before GO: the pre-deployment stage is due
    assert_eq!(addresses(&env.status_json()), ["1.1", "1.2"]);
    env.sign("1.1");
    env.sign("1.2");
    env.ok(&[
        "decide",
        "go",
        "--as",
        "Pat Lead",
        "--role",
        "Deployment Lead",
    ]);

    let v = env.status_json();
    assert_eq!(addresses(&v), ["2.1", "2.2", "4.1", "4.2"], "{v:#}");
    for p in v["pending_signoffs"].as_array().into_iter().flatten() {
        assert_eq!(p["role"], Value::Null, "no item names its role: {p}");
    }
    let text = stdout(&env.golive(&["status"]));
    assert!(text.contains("Pending sign-offs (4):"), "{text}");
    assert!(
        text.contains("2.1      Deploy the new build — anyone on the roster"),
        "{text}"
    );
    assert!(
        text.contains("4.2      Error rate is normal — anyone on the roster"),
        "{text}"
    );

    // a signed item is no longer listed
    env.sign("2.1");
    assert_eq!(addresses(&env.status_json()), ["2.2", "4.1", "4.2"]);
}

/// `golive gate smoke` over a smoke stage with no items passed "0/0": a gate
/// with nothing to count is refused, naming what it looked for, and records
/// nothing; the deployment still finishes on the gates it has.
#[test]
fn gate_with_nothing_to_count_is_refused() {
    let env = Env::new("gate");
    env.go();
    let before = env.status_json()["events"].clone();

    let out = env.golive(&["gate", "smoke", "--as", "Pat Lead"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(!stdout(&out).contains("PASS"), "{}", stdout(&out));
    assert!(
        err.contains("the smoke gate has nothing to count")
            && err.contains("3 Smoke tests")
            && err.contains("has no items")
            && err.contains("nothing was recorded"),
        "{err}"
    );
    assert_eq!(
        env.status_json()["events"],
        before,
        "a refusal records nothing"
    );

    // the verification stage has items: its gate counts them
    env.sign("4.1");
    env.sign("4.2");
    env.ok(&["gate", "verification", "--as", "Pat Lead"]);
    // finish asks for the gates the document has, not for one it cannot count
    env.ok(&["finish", "--as", "Pat Lead"]);
    assert!(
        stdout(&env.golive(&["status"])).contains("State: SUCCEEDED"),
        "finished"
    );
}

/// A document with no smoke stage at all: the refusal says what golive
/// looked for.
#[test]
fn gate_with_nothing_to_count_is_refused_when_the_stage_is_missing() {
    let env = Env::new("gate-missing");
    let text = PLAIN.replace(
        "## Smoke tests\n\nTry the main pages by hand after the deploy.\n\n",
        "",
    );
    std::fs::write(env.runbook(), text).expect("runbook");
    env.go();
    let out = env.golive(&["gate", "smoke", "--as", "Pat Lead"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(
        err.contains("the smoke gate has nothing to count")
            && err.contains("no stage of the document is one of smoke tests")
            && err.contains("smoke"),
        "{err}"
    );
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

/// "X is not in the roster: it names nobody yet" said nothing of how to add
/// someone: the message names the roster file golive looked for, shows the
/// entry as that file is read, and `--roster FILE`; the entry shown, written
/// there, is enough.
#[test]
fn not_in_the_roster_says_how_to_add_one() {
    let env = Env::new("roster");
    env.start();
    let before = env.status_json()["events"].clone();
    let out = env.golive(&[
        "sign",
        "1.1",
        "--as",
        "Sam Ops",
        "--role",
        "Release Manager",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let err = stderr(&out);
    let file = Path::new(&env.runbook()).with_file_name("roster.toml");
    assert!(
        err.contains(&format!("add one to {}:\n", file.display()))
            && err.contains("or pass --roster FILE"),
        "{err}"
    );
    assert_eq!(
        env.status_json()["events"],
        before,
        "a refusal records nothing"
    );

    // the entry as shown is what the roster file takes
    let entry = err
        .split_once(":\n[[person]]")
        .and_then(|(_, rest)| rest.split_once("\nor pass"))
        .map(|(entry, _)| format!("[[person]]{entry}\n"))
        .unwrap_or_else(|| panic!("no [[person]] entry in: {err}"));
    assert!(
        entry.contains("name = \"Sam Ops\"\nroles = [\"Release Manager\"]"),
        "{entry}"
    );
    std::fs::write(&file, entry).expect("roster");
    env.ok(&[
        "sign",
        "1.1",
        "--as",
        "Sam Ops",
        "--role",
        "Release Manager",
    ]);

    // a roster that names others: they are listed, and the file to add to is
    // the one that was read
    let out = env.golive(&["gate", "verification", "--as", "Kim Other"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "Kim Other is not in the roster ({}): it names Sam Ops",
            file.display()
        )) && err.contains("[[person]]\nname = \"Kim Other\"\nroles = [\"ROLE\"]"),
        "{err}"
    );
}
