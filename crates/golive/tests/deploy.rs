//! Sign-offs and status on a recorded deployment: who may sign what, refusals
//! that change nothing, and many signers at once on one SQLite store.

mod common;

use common::standin::{no_secret, run_seed, stand_in};
use common::{ITEM_ROLES, normalise, root};
use serde_json::Value;
use std::path::PathBuf;
use std::process::{Command, Output};

struct Env {
    dir: PathBuf,
    /// The channels every command sends the communication plan on.
    notify: Option<String>,
}

impl Env {
    fn new(tag: &str) -> Env {
        let dir = std::env::temp_dir().join(format!("golive-deploy-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        std::fs::write(dir.join("package-lock.json"), "{}\n").expect("lock");
        Env { dir, notify: None }
    }

    fn store(&self) -> String {
        format!("sqlite://{}", self.dir.join("golive.db").display())
    }

    fn golive(&self, args: &[&str]) -> Output {
        let mut c = Command::new(env!("CARGO_BIN_EXE_golive"));
        c.args(args)
            .current_dir(root())
            .env("GOLIVE_STORE", self.store())
            .env_remove("GOLIVE_NOTIFY");
        if let Some(n) = &self.notify {
            c.env("GOLIVE_NOTIFY", n);
        }
        c.output().expect("golive runs")
    }

    /// A deployment of the reference checklist, started by a run of one check.
    fn start(&self) {
        let repo = format!("REPO_DIR={}", self.dir.display());
        let mut args = vec![
            "run",
            "examples/aiwg-production.md",
            "--only",
            "1.1.7",
            "--var",
            &repo,
        ];
        // the messages name the version the deployment was started for
        if self.notify.is_some() {
            args.extend(["--var", "VERSION=1.1.0"]);
        }
        let out = self.golive(&args);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn roster(&self, people: &[(&str, &[&str])]) -> String {
        let mut text = String::new();
        for (name, roles) in people {
            let roles: Vec<String> = roles.iter().map(|r| format!("\"{r}\"")).collect();
            text.push_str(&format!(
                "[[person]]\nname = \"{name}\"\nroles = [{}]\n\n",
                roles.join(", ")
            ));
        }
        let path = self.dir.join("roster.toml");
        std::fs::write(&path, text).expect("roster");
        path.display().to_string()
    }

    fn events(&self) -> usize {
        let out = self.golive(&["status", "--format", "json"]);
        let v: Value = serde_json::from_slice(&out.stdout).expect("status json");
        v["events"].as_u64().unwrap_or(0) as usize
    }
}

#[test]
fn sign_then_status_counts_it_and_refusals_change_nothing() {
    let env = Env::new("sign");
    env.start();
    let roster = env.roster(&[
        ("Second Lead", &["Test Engineer"]),
        ("Second Manager", &["DevOps Engineer"]),
    ]);
    let before = env.events();

    let sign = |item: &str, name: &str, role: &str| {
        env.golive(&[
            "sign", item, "--as", name, "--role", role, "--roster", &roster,
        ])
    };
    // the wrong role for the item
    let out = sign("1.1.1", "Second Manager", "DevOps Engineer");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("is for the Test Engineer to sign, not the DevOps Engineer")
            && err.contains("nothing was recorded"),
        "{err}"
    );
    // a role the person does not hold
    let out = sign("1.1.1", "Second Manager", "Test Engineer");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not hold the role Test Engineer"));
    // an unknown item, an unknown person
    assert_eq!(
        sign("9.9.9", "Second Lead", "Test Engineer").status.code(),
        Some(1)
    );
    let out = sign("1.1.1", "Nobody Here", "Test Engineer");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("Second Lead, Second Manager"));
    assert_eq!(env.events(), before, "refusals record nothing");

    // the right person and role, with evidence
    let evidence = env.dir.join("report.txt");
    std::fs::write(&evidence, "2019/2019 tests passing\n").expect("evidence");
    let out = env.golive(&[
        "sign",
        "all-pr-gate-criteria-met",
        "--as",
        "Second Lead",
        "--role",
        "Test Engineer",
        "--roster",
        &roster,
        "--evidence",
        evidence.to_str().expect("path"),
        "--comment",
        "report attached",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(env.events(), before + 1);
    // signing twice is refused
    assert_eq!(
        sign("1.1.1", "Second Lead", "Test Engineer").status.code(),
        Some(1)
    );

    let out = env.golive(&["status"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("- Code Readiness: 1/8 items complete"),
        "{text}"
    );
    assert!(
        text.contains("TOTAL: 1/48 items complete (Target: 48/48 = 100%)"),
        "{text}"
    );
    assert!(
        text.contains("1.1.2    UAT sign-off complete — QA Team Lead"),
        "{text}"
    );
    assert!(text.contains("Checks of the last run: 1 passed"), "{text}");
    let audit = env.golive(&["audit", "verify"]);
    assert_eq!(
        audit.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&audit.stdout)
    );
}

/// 50 `golive sign` processes at once on one SQLite store: all succeed, none
/// reports "database is locked", each is recorded once, the chain holds.
/// `golive sign ID` as Release Crew in `role`, started, not waited for.
fn signer(env: &Env, id: &str, role: &str, roster: &str) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_golive"))
        .args([
            "sign",
            id,
            "--as",
            "Release Crew",
            "--role",
            role,
            "--roster",
            roster,
        ])
        .current_dir(root())
        .env("GOLIVE_STORE", env.store())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn")
}

#[test]
fn fifty_signers_at_once() {
    let env = Env::new("fifty");
    env.start();
    let roster = env.roster(&[("Release Crew", ITEM_ROLES)]);
    let mut items = task_items(&env);
    items.truncate(50);
    assert_eq!(items.len(), 50);
    let before = env.events();
    let children: Vec<_> = items
        .iter()
        .map(|(id, role)| signer(&env, id, role, &roster))
        .collect();
    for c in children {
        let out = c.wait_with_output().expect("signer");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{err}");
        assert!(!err.contains("locked"), "{err}");
    }
    assert_eq!(env.events(), before + 50);
    let out = env.golive(&["status", "--format", "json"]);
    let v: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["signed_items"], 50, "each recorded once");
    assert_eq!(env.golive(&["audit", "verify"]).status.code(), Some(0));
}

/// The same sign-off twenty times at once: recorded once, the other
/// nineteen refused as already signed (each decides under the deployment's
/// write lock, so none decides from a record that misses the first).
#[test]
fn the_same_sign_off_at_once_is_recorded_once() {
    let env = Env::new("same");
    env.start();
    let roster = env.roster(&[("Release Crew", ITEM_ROLES)]);
    let (id, role) = task_items(&env).remove(0);
    let before = env.events();
    let children: Vec<_> = (0..20).map(|_| signer(&env, &id, &role, &roster)).collect();
    let mut recorded = 0;
    for c in children {
        let out = c.wait_with_output().expect("signer");
        let err = String::from_utf8_lossy(&out.stderr);
        match out.status.code() {
            Some(0) => recorded += 1,
            Some(1) => assert!(err.contains("already signed"), "{err}"),
            other => panic!("exit {other:?}: {err}"),
        }
    }
    assert_eq!(recorded, 1);
    assert_eq!(env.events(), before + 1);
    assert_eq!(env.golive(&["audit", "verify"]).status.code(), Some(0));
}

/// (id, Responsible role) of every task item of the reference that a person
/// signs, in order (the first 48 are the pre-deployment items; the decision's
/// GO and NO-GO are set by `golive decide`); items naming no role are the
/// Deployment Lead's.
fn task_items(env: &Env) -> Vec<(String, String)> {
    common::task_items(&show(env))
}

/// `golive show` of the reference, as JSON.
fn show(env: &Env) -> Value {
    let out = env.golive(&["show", "examples/aiwg-production.md", "--format", "json"]);
    serde_json::from_slice(&out.stdout).expect("show")
}

#[test]
fn go_needs_48_of_48_and_three_distinct_people() {
    let env = Env::new("decide");
    env.start();
    let roster = env.roster(&[
        ("Release Crew", ITEM_ROLES),
        ("Lead Signer", &["Deployment Lead", "Engineering Manager"]),
        ("Manager Signer", &["Engineering Manager"]),
        ("Product Signer", &["Product Manager"]),
    ]);
    let decide = |verdict: &str, name: &str, role: &str, reason: Option<&str>| {
        let mut args = vec![
            "decide",
            verdict,
            "--as",
            name,
            "--role",
            role,
            "--roster",
            roster.as_str(),
        ];
        if let Some(r) = reason {
            args.extend(["--reason", r]);
        }
        env.golive(&args)
    };
    let mut items = task_items(&env);
    items.truncate(48);
    for (id, role) in &items[..47] {
        let out = env.golive(&[
            "sign",
            id,
            "--as",
            "Release Crew",
            "--role",
            role,
            "--roster",
            &roster,
        ]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{id}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let before = env.events();
    // 47/48: GO is refused, naming what is open
    let out = decide("go", "Lead Signer", "Deployment Lead", None);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("GO needs 48/48 pre-deployment items complete, 47 are: still open 1.5.8"),
        "{err}"
    );
    // a NO-GO needs its reason
    assert_eq!(
        decide("no-go", "Lead Signer", "Deployment Lead", None)
            .status
            .code(),
        Some(1)
    );
    assert_eq!(env.events(), before, "refusals record nothing");

    let (id, role) = &items[47];
    assert_eq!(
        env.golive(&[
            "sign",
            id,
            "--as",
            "Release Crew",
            "--role",
            role,
            "--roster",
            &roster
        ])
        .status
        .code(),
        Some(0)
    );
    assert_eq!(
        decide("go", "Lead Signer", "Deployment Lead", None)
            .status
            .code(),
        Some(0)
    );
    // one person cannot hold two of the required signatures
    let out = decide("go", "Lead Signer", "Engineering Manager", None);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("needs distinct people: Lead Signer signed already as Deployment Lead")
    );
    // a role the decision does not name
    assert_eq!(
        decide("go", "Release Crew", "DevOps Engineer", None)
            .status
            .code(),
        Some(1)
    );
    assert_eq!(
        decide("go", "Manager Signer", "Engineering Manager", None)
            .status
            .code(),
        Some(0)
    );
    let out = decide("go", "Product Signer", "Product Manager", None);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains("GO: decided by Deployment Lead, Engineering Manager, Product Manager")
    );
    let status = String::from_utf8_lossy(&env.golive(&["status"]).stdout).into_owned();
    assert!(
        status.contains("TOTAL: 48/48 items complete") && status.contains("Decision: GO"),
        "{status}"
    );
    // the filled document: boxes ticked, blanks filled, the status line and
    // the Deployment Log generated; nothing else differs from the runbook
    let report =
        String::from_utf8_lossy(&env.golive(&["report", "--format", "md"]).stdout).into_owned();
    for expected in [
        "- [x] **All PR gate criteria met**",
        "  - **Sign-off:** Release Crew (Test Engineer, 20",
        "- [x] **GO** - Proceed with deployment",
        "- [ ] **NO-GO**",
        "- Code Readiness: 8/8 items complete",
        "**TOTAL: 48/48 items complete**",
        "- Deployment Lead: Lead Signer Date: 20",
        "- Product Manager: Product Signer Date: 20",
        "**Status:** DEPLOYING",
        "| Go/No-Go decision | GO | Lead Signer, Manager Signer, Product Signer |",
    ] {
        assert!(report.contains(expected), "{expected}");
    }
    let runbook =
        std::fs::read_to_string(root().join("examples/aiwg-production.md")).expect("runbook");
    // the Deployment Log's rows are generated: compare the rest line by line
    let without_log = |text: &str| -> Vec<String> {
        let mut out = Vec::new();
        let mut in_log = false;
        for line in text.lines() {
            if line.starts_with("### ") {
                in_log = line.contains("Deployment Log");
            }
            if !(in_log && line.starts_with("| ") && !line.starts_with("| Time ")) {
                out.push(line.to_string());
            }
        }
        out
    };
    // the report ends with a line naming the record's head
    let (filled, trailer) = report
        .rsplit_once("\n---\n\nRecorded by golive: deployment `")
        .expect("the head line");
    assert!(trailer.contains("`, head `"), "{trailer}");
    let (a, b) = (without_log(&runbook), without_log(filled));
    assert_eq!(a.len(), b.len());
    for (a, b) in a.iter().zip(&b) {
        if a != b {
            assert!(
                a.contains("[ ]") || a.contains("____") || a.starts_with("**Status:**"),
                "only boxes, blanks, the status and the log change:\n{a}\n{b}"
            );
        }
    }
    // taken once
    assert_eq!(
        decide("no-go", "Product Signer", "Product Manager", Some("late"))
            .status
            .code(),
        Some(1)
    );
    assert_eq!(env.golive(&["audit", "verify"]).status.code(), Some(0));
}

/// Sign every pre-deployment item and decide GO with three people.
fn reach_go(env: &Env) -> String {
    let roster = env.roster(&[
        ("Release Crew", ITEM_ROLES),
        ("Lead Signer", &["Deployment Lead"]),
        ("Manager Signer", &["Engineering Manager"]),
        ("Product Signer", &["Product Manager"]),
    ]);
    let mut items = task_items(env);
    items.truncate(48);
    for (id, role) in &items {
        let out = env.golive(&[
            "sign",
            id,
            "--as",
            "Release Crew",
            "--role",
            role,
            "--roster",
            &roster,
        ]);
        assert_eq!(out.status.code(), Some(0), "{id}");
    }
    for (name, role) in [
        ("Lead Signer", "Deployment Lead"),
        ("Manager Signer", "Engineering Manager"),
        ("Product Signer", "Product Manager"),
    ] {
        let out = env.golive(&[
            "decide", "go", "--as", name, "--role", role, "--roster", &roster,
        ]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    roster
}

#[test]
fn procedure_steps_run_in_order_after_go_and_are_timed_against_budgets() {
    let env = Env::new("procedure");
    env.start();
    let early = env.roster(&[("Release Crew", ITEM_ROLES)]);
    let out = env.golive(&["done", "3.1.1", "--as", "Release Crew", "--roster", &early]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("starts after the GO decision"));

    let roster = reach_go(&env);
    let done = |step: &str, extra: &[&str]| {
        let mut args = vec![
            "done",
            step,
            "--as",
            "Lead Signer",
            "--roster",
            roster.as_str(),
        ];
        args.extend_from_slice(extra);
        env.golive(&args)
    };
    let out = done("3.1.2", &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains(
        "steps run in document order: 3.1.1 Step 1.1: Activate War Room is not done yet"
    ));
    let out = done("1.1.1", &[]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("is not a procedure step: sign it instead")
    );
    for step in [
        "3.1.1",
        "3.1.2",
        "3.1.3",
        "step-1-4-enable-maintenance-mode",
    ] {
        assert_eq!(done(step, &[]).status.code(), Some(0), "{step}");
    }
    assert_eq!(done("3.1.1", &[]).status.code(), Some(1), "done once");
    // phase 2 is "(10 minutes, if applicable)": its steps may be skipped
    assert_eq!(
        done(
            "3.2.1",
            &["--skipped", "--comment", "no migration in this release"]
        )
        .status
        .code(),
        Some(0)
    );
    let status = String::from_utf8_lossy(&env.golive(&["status"]).stdout).into_owned();
    assert!(
        status.contains("- Phase 1: Deployment Preparation: 4/4 steps complete, "),
        "{status}"
    );
    assert!(status.contains("of 15m00s"), "{status}");
    assert!(
        status.contains("- Phase 2: Database Migration: 1/3 steps, "),
        "{status}"
    );
    assert!(
        status.contains("- Phase 3: Application Deployment: 0/4 steps"),
        "{status}"
    );
    assert!(!status.contains("OVER BUDGET"), "{status}");
    // phase 3 is not optional
    assert_eq!(done("3.2.2", &[]).status.code(), Some(0));
    assert_eq!(done("3.2.3", &[]).status.code(), Some(0));
    let out = done("3.3.1", &["--skipped"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not optional"));
    assert_eq!(env.golive(&["audit", "verify"]).status.code(), Some(0));
}

/// Ids of the items of the stage whose title starts with `title`.
fn stage_items(env: &Env, title: &str) -> Vec<String> {
    common::stage_items(&show(env), title)
}

/// Ids of the items of a stage that no check automates.
fn manual_items(env: &Env, title: &str) -> Vec<String> {
    common::manual_items(&show(env), title)
}

/// The smoke tests: the automated ones run against the stand-in (at
/// `version`), the others signed by a person.
fn smoke(
    env: &Env,
    s: &common::standin::StandIn,
    roster: &str,
    version: &str,
) -> std::process::Output {
    // one at a time: results are recorded as they finish, and golden files
    // want them in one order
    let mut extra = vec!["--only", "smoke-testing-checklist", "--concurrency", "1"];
    if let Some(n) = &env.notify {
        extra.extend(["--notify", n.as_str()]);
    }
    let out = run_seed(s, &env.store(), version, &extra);
    no_secret(&out);
    sign_all(env, roster, &manual_items(env, "Smoke Testing Checklist"));
    out
}

fn all_procedure_steps_done(env: &Env, roster: &str) {
    for step in stage_items(env, "Deployment Procedure") {
        let out = env.golive(&["done", &step, "--as", "Lead Signer", "--roster", roster]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{step}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

fn sign_all(env: &Env, roster: &str, ids: &[String]) {
    for id in ids {
        let out = env.golive(&[
            "sign",
            id,
            "--as",
            "Release Crew",
            "--role",
            "Deployment Lead",
            "--roster",
            roster,
        ]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{id}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// The whole lifecycle to SUCCESS: GO, the 20 procedure steps, 20/20 smoke,
/// 10/10 verification, the final outcome with its duration and health.
#[tokio::test(flavor = "multi_thread")]
async fn a_scripted_deployment_ends_success() {
    let s = stand_in("v1.1.0").await;
    tokio::task::block_in_place(|| success(&s, None));
}

fn success(s: &common::standin::StandIn, notify: Option<String>) -> Env {
    let mut env = Env::new(if notify.is_some() {
        "success-comms"
    } else {
        "success"
    });
    env.notify = notify;
    env.start();
    let roster = reach_go(&env);
    all_procedure_steps_done(&env, &roster);
    // finishing before the gates is refused
    let out = env.golive(&["finish", "--as", "Lead Signer", "--roster", &roster]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("the smoke gate has not been evaluated"));
    let out = smoke(&env, s, &roster, "1.1.0");
    assert_eq!(
        out.status.code(),
        Some(0),
        "the automated smoke tests pass against the stand-in: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = env.golive(&["gate", "smoke", "--as", "Lead Signer", "--roster", &roster]);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains("smoke gate: 20/20 passed (target 19/20): PASS")
    );
    sign_all(
        &env,
        &roster,
        &stage_items(&env, "Post-Deployment Verification"),
    );
    assert_eq!(
        env.golive(&[
            "gate",
            "verification",
            "--as",
            "Lead Signer",
            "--roster",
            &roster
        ])
        .status
        .code(),
        Some(0)
    );
    let out = env.golive(&["finish", "--as", "Lead Signer", "--roster", &roster]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("(target < 60m00s), production HEALTHY"));
    let status = String::from_utf8_lossy(&env.golive(&["status"]).stdout).into_owned();
    assert!(status.contains("State: SUCCEEDED"), "{status}");
    if env.notify.is_none() {
        check_reports(&env, "deploy-success");
    }
    let report =
        String::from_utf8_lossy(&env.golive(&["report", "--format", "md"]).stdout).into_owned();
    for expected in [
        "**Status:** SUCCEEDED",
        "**Passed:** 20 (**Target:** ≥19/20, 95%)",
        "**Failed:** 0",
        "**Smoke Test Results:** 20/20 passed",
        "**Post-Deployment Verification:** 10/10 items complete",
        "| Smoke gate | PASS | 20/20 passed |",
    ] {
        assert!(report.contains(expected), "{expected}");
    }
    // how long it took depends on the machine, not on golive
    for pattern in [
        r"\*\*Deployment Duration:\*\* \d+\.\d minutes \(Target: <60 minutes\)",
        r"\| Deployment complete \| SUCCESS \| Total duration: \d+\.\d min \|",
    ] {
        let re = regex::Regex::new(pattern).expect("pattern");
        assert!(re.is_match(&report), "{pattern}\n{report}");
    }
    assert!(
        status.contains("Gate verification: 10/10 passed (target 10): PASS"),
        "{status}"
    );
    assert_eq!(env.golive(&["audit", "verify"]).status.code(), Some(0));
    env
}

/// Smoke at 18/20: the gate fails and raises the rollback with automatic
/// authority; only the DevOps Engineer may start it alone; R1–R5 run and are
/// timed; the deployment ends ROLLED BACK with the post-rollback actions open.
#[tokio::test(flavor = "multi_thread")]
async fn a_scripted_deployment_fails_smoke_at_18_of_20_and_rolls_back() {
    let s = stand_in("v1.1.0").await;
    tokio::task::block_in_place(|| rolls_back(&s, None));
}

fn rolls_back(s: &common::standin::StandIn, notify: Option<String>) -> Env {
    let mut env = Env::new(if notify.is_some() {
        "rollback-comms"
    } else {
        "rollback"
    });
    env.notify = notify;
    env.start();
    let roster = reach_go(&env);
    all_procedure_steps_done(&env, &roster);
    // no gate has raised it: the DevOps Engineer alone may not roll back
    let rollback = |name: &str, role: &str| {
        env.golive(&[
            "rollback",
            "--as",
            name,
            "--role",
            role,
            "--reason",
            "smoke below target",
            "--roster",
            &roster,
        ])
    };
    let out = rollback("Release Crew", "DevOps Engineer");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("a rollback is decided by Deployment Lead + Engineering Manager")
    );
    // the service answers v1.1.0 where v1.2.0 is expected: Tests 2 and 5 fail
    let out = smoke(&env, s, &roster, "1.2.0");
    assert_eq!(out.status.code(), Some(1));
    // a failing health check after GO is an automatic criterion: raised at once
    let err = String::from_utf8_lossy(&out.stderr);
    // and the document gives that criterion automatic authority: the
    // rollback starts at once, in the DevOps Engineer's name
    assert!(
        err.contains(
            "ROLLBACK INITIATED with automatic authority (DevOps Engineer): health checks failing: 4.1.2 Test 2: Health Check Passing"
        ),
        "{err}"
    );
    assert!(
        err.contains("next: 7.2.1 Step R1: Declare Rollback (Immediate)"),
        "{err}"
    );
    let status = String::from_utf8_lossy(&env.golive(&["status"]).stdout).into_owned();
    assert!(status.contains("State: ROLLING BACK"), "{status}");
    assert!(
        status.contains(
            "7.1.3    Error rate >1% sustained for >5 minutes — Error rate >1% for 5m00s"
        ),
        "{status}"
    );
    let out = env.golive(&["gate", "smoke", "--as", "Lead Signer", "--roster", &roster]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains(
        "smoke gate: 18/20 passed (target 19/20): FAIL (the rollback is raised already)"
    ));
    // nobody needs to start it: it has started
    let out = rollback("Release Crew", "DevOps Engineer");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("the rollback has started already"));
    // the procedure is over: only the rollback steps run now
    let out = env.golive(&["finish", "--as", "Lead Signer", "--roster", &roster]);
    assert_eq!(out.status.code(), Some(1));
    let steps = [
        "step-r1-declare-rollback",
        "7.2.2",
        "7.2.3",
        "7.2.4",
        "7.2.5",
    ];
    assert_eq!(
        env.golive(&["done", "7.2.2", "--as", "Lead Signer", "--roster", &roster])
            .status
            .code(),
        Some(1),
        "in order"
    );
    for (n, step) in steps.iter().enumerate() {
        let out = env.golive(&["done", step, "--as", "Lead Signer", "--roster", &roster]);
        assert_eq!(out.status.code(), Some(0), "{step}");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).contains("ROLLED BACK"),
            n == 4
        );
    }
    let status = String::from_utf8_lossy(&env.golive(&["status"]).stdout).into_owned();
    assert!(status.contains("State: ROLLED BACK"), "{status}");
    assert!(
        status.contains("Rolled back in ") && status.contains("(target < 5m00s)"),
        "{status}"
    );
    assert!(
        status.contains("Open post-rollback actions:\n  7.3.1    Incident Report Created"),
        "{status}"
    );
    let json = env.golive(&["report", "--format", "json"]);
    let v: Value = serde_json::from_slice(&json.stdout).expect("json");
    let ended = v["events"]
        .as_array()
        .and_then(|e| e.iter().rev().find(|e| e["kind"] == "deployment.ended"))
        .cloned()
        .expect("ended");
    assert_eq!(ended["data"]["outcome"], "ROLLED BACK");
    if env.notify.is_none() {
        check_reports(&env, "deploy-rollback");
    }
    let message =
        String::from_utf8_lossy(&env.golive(&["status", "--message"]).stdout).into_owned();
    assert!(
        message.starts_with("DEPLOYMENT STATUS UPDATE - 20"),
        "{message}"
    );
    assert!(
        message.contains("Progress: 20/20 steps complete"),
        "{message}"
    );
    assert!(
        message.contains("Issues: health checks failing: 4.1.2 Test 2: Health Check Passing; smoke gate 18/20, below the target of 19/20"),
        "{message}"
    );
    assert_eq!(ended["data"]["within_target"], true);
    assert_eq!(env.golive(&["audit", "verify"]).status.code(), Some(0));
    env
}

/// The messages a webhook receiver took: each payload's key, subject and
/// body (golive's generic webhook format).
fn sent(seen: &std::sync::Mutex<Vec<golive_testkit::Hooked>>) -> Vec<(String, String, String)> {
    seen.lock()
        .unwrap()
        .iter()
        .map(|h| {
            let v: Value = serde_json::from_str(&h.body).expect("json");
            let s = |k: &str| v[k].as_str().unwrap_or("").to_string();
            (s("key"), s("subject"), s("body"))
        })
        .collect()
}

/// The reference's communication plan, sent as the scripted deployment
/// goes: T+0 at GO, one update per phase end (its six), one per gate, the
/// success notice with 20/20 and the duration, the internal report; the
/// filled document names golive as the sender.
#[tokio::test(flavor = "multi_thread")]
async fn the_reference_sends_its_communication_plan_as_it_goes() {
    let s = stand_in("v1.1.0").await;
    let (hooks, seen) = golive_testkit::scripted_receiver(&[]).await;
    let hook = format!("webhook=http://{}/hook", hooks.addr);
    let env = tokio::task::block_in_place(|| success(&s, Some(hook)));
    let messages = sent(&seen);
    let keys: Vec<&str> = messages.iter().map(|(k, _, _)| k.as_str()).collect();
    assert_eq!(keys[0], "status:go", "{keys:?}");
    let phases: Vec<&str> = keys
        .iter()
        .copied()
        .filter(|k| k.starts_with("status:phase:"))
        .collect();
    assert_eq!(phases.len(), 6, "one update per phase end: {keys:?}");
    assert_eq!(
        keys.iter()
            .filter(|k| k.starts_with("status:gate:"))
            .count(),
        2
    );
    assert_eq!(keys[keys.len() - 2..], ["success", "report"]);
    let (_, first, body) = &messages[0];
    assert!(
        first.starts_with("DEPLOYMENT STATUS UPDATE - 20"),
        "{first}"
    );
    assert!(body.contains("Progress: 0/20 steps complete"), "{body}");
    let (_, _, last_phase) = &messages[keys.iter().position(|k| *k == phases[5]).unwrap()];
    assert!(
        last_phase.contains("Progress: 20/20 steps complete"),
        "{last_phase}"
    );
    let (_, subject, body) = &messages[keys.len() - 2];
    assert_eq!(subject, "Production Deployment Complete: v1.1.0");
    assert!(
        body.contains("- Smoke test results: 20/20 passed"),
        "{body}"
    );
    let dur = regex::Regex::new(r"- Deployment duration: \d+\.\d minutes").unwrap();
    assert!(dur.is_match(body), "{body}");
    let md =
        String::from_utf8_lossy(&env.golive(&["report", "--format", "md"]).stdout).into_owned();
    let sent_by =
        regex::Regex::new(r"- \[x\] \*\*Sent by:\*\* golive \*\*Time:\*\* \d\d:\d\d UTC").unwrap();
    assert_eq!(
        sent_by.find_iter(&md).count(),
        1,
        "the success notice (nothing was scheduled)"
    );
    assert!(md.contains("- [x] T+0: Deployment started"), "{md}");
    assert!(
        md.contains("- [x] **Recipients:** Engineering team, DevOps"),
        "{md}"
    );
}

/// The rollback the smoke run starts is announced by that same run, with
/// its reason, before any other command acts.
#[tokio::test(flavor = "multi_thread")]
async fn the_reference_announces_its_rollback_with_the_reason() {
    let s = stand_in("v1.1.0").await;
    let (hooks, seen) = golive_testkit::scripted_receiver(&[]).await;
    let hook = format!("webhook=http://{}/hook", hooks.addr);
    let env = tokio::task::block_in_place(|| rolls_back(&s, Some(hook)));
    let messages = sent(&seen);
    let (_, subject, _) = messages
        .iter()
        .find(|(k, _, _)| k == "rollback-initiated")
        .expect("announced");
    assert_eq!(
        subject,
        "ROLLBACK INITIATED - health checks failing: 4.1.2 Test 2: Health Check Passing - ETA 5 minutes"
    );
    let json = env.golive(&["report", "--format", "json"]);
    let v: Value = serde_json::from_slice(&json.stdout).expect("json");
    let events = v["events"].as_array().unwrap();
    let at = |pred: &dyn Fn(&Value) -> bool| events.iter().position(pred).unwrap();
    let started = at(&|e| e["kind"] == "rollback.started");
    let sent_at = at(&|e| e["kind"] == "notice.sent" && e["data"]["key"] == "rollback-initiated");
    // the next command (the smoke gate) comes after it
    let next = started
        + events[started..]
            .iter()
            .position(|e| e["kind"] == "gate")
            .unwrap();
    assert!(
        started < sent_at && sent_at < next,
        "{started} {sent_at} {next}"
    );
    let secs = |e: &Value| {
        e["at"]
            .as_str()
            .unwrap()
            .parse::<jiff::Timestamp>()
            .unwrap()
    };
    let delay = secs(&events[sent_at]).duration_since(secs(&events[started]));
    eprintln!(
        "ROLLBACK INITIATED delivered {:.3} s after the rollback started",
        delay.as_secs_f64()
    );
    let keys: Vec<&str> = messages.iter().map(|(k, _, _)| k.as_str()).collect();
    assert_eq!(
        keys[keys.len() - 2..],
        ["rollback-complete", "report"],
        "{keys:?}"
    );
    let md =
        String::from_utf8_lossy(&env.golive(&["report", "--format", "md"]).stdout).into_owned();
    assert!(
        md.contains("- [x] Rollback announced\n- [x] Stakeholders notified"),
        "{md}"
    );
}

/// The four report formats of a deployment against their golden files.
fn check_reports(env: &Env, name: &str) {
    let mut failures = Vec::new();
    for (format, ext) in [
        ("md", "md"),
        ("json", "json"),
        ("junit", "junit.xml"),
        ("html", "html"),
    ] {
        let out = env.golive(&["report", "--format", format]);
        assert_eq!(out.status.code(), Some(0), "{format}");
        let text = normalise(&String::from_utf8_lossy(&out.stdout));
        if let Err(e) = common::check_golden(&format!("{name}.report.{ext}"), &text) {
            failures.push(e);
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A run continues the open deployment of its runbook, or the one named with
/// `--deployment`; `--new` starts another.
#[test]
fn runs_continue_the_open_deployment_unless_told_otherwise() {
    let env = Env::new("continue");
    env.start();
    let first = env.golive(&["status", "--format", "json"]);
    let first: Value = serde_json::from_slice(&first.stdout).expect("json");
    let id = first["deployment"].as_str().expect("id").to_string();
    let repo = format!("REPO_DIR={}", env.dir.display());
    let run = |extra: &[&str]| {
        let mut args = vec![
            "run",
            "examples/aiwg-production.md",
            "--only",
            "1.1.7",
            "--var",
            repo.as_str(),
        ];
        args.extend_from_slice(extra);
        env.golive(&args)
    };
    let out = run(&[]);
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains(&format!("recorded in the open deployment {id}"))
    );
    let out = run(&["--new"]);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        err.contains("recorded as deployment d-") && !err.contains(&id),
        "{err}"
    );
    let out = run(&["--deployment", &id]);
    assert!(String::from_utf8_lossy(&out.stderr).contains(&id));
    let again: Value =
        serde_json::from_slice(&env.golive(&["status", &id, "--format", "json"]).stdout)
            .expect("json");
    assert_eq!(
        again["events"], 9,
        "three runs of one check: started, the check, finished"
    );
    let out = run(&["--deployment", "d-nope"]);
    assert_eq!(out.status.code(), Some(2));
}

/// `golive done STEP --run --allow-commands` runs the step's command blocks
/// (placeholders quoted), records what they did, and marks the step done only
/// when they succeed with the expected output.
#[test]
fn procedure_steps_can_run_their_commands() {
    let env = Env::new("steprun");
    let path = drill(
        &env,
        "### Phase 1: Flush (5 minutes)\n\n**Step 1.1: Say hello**\n```bash\necho hello [WHO]\n# Expected: hello world\n```\n- [ ] Greeting printed\n\n**Step 1.2: Fail on purpose**\n```bash\necho broken >&2; exit 3\n```\n- [ ] Failure seen\n",
    );
    let path = path.as_str();
    assert_eq!(env.golive(&["run", path]).status.code(), Some(0));
    let roster = go_as_lead(&env);
    let done = |step: &str, extra: &[&str]| {
        let mut args = vec![
            "done",
            step,
            "--as",
            "Lead Signer",
            "--roster",
            roster.as_str(),
            "--run",
        ];
        args.extend_from_slice(extra);
        env.golive(&args)
    };
    let out = done("2.1.1", &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("needs --allow-commands"));
    let out = done("2.1.1", &["--allow-commands", "--var", "WHO=world"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = done("2.1.2", &["--allow-commands"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("2.1.2's commands failed (exit 3): broken"),
        "{err}"
    );
    let report: Value =
        serde_json::from_slice(&env.golive(&["report", "--format", "json"]).stdout).expect("json");
    let kinds: Vec<&str> = report["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["kind"].as_str())
        .collect();
    assert_eq!(
        kinds,
        [
            "run.started",
            "run.finished",
            "decision.signature",
            "decision",
            "step.started",
            "step.run",
            "step.done",
            "step.started",
            "step.run"
        ],
        "the failing step is recorded as run, not done"
    );
    let ran = report["events"]
        .as_array()
        .and_then(|e| e.iter().find(|e| e["kind"] == "step.run"))
        .cloned()
        .expect("run");
    assert_eq!(ran["data"]["stdout"], "hello world\n");
    assert_eq!(ran["data"]["expected_match"], true);
    let status = String::from_utf8_lossy(&env.golive(&["status"]).stdout).into_owned();
    assert!(status.contains("- Phase 1: Flush: 1/2 steps"), "{status}");
}

/// A step's commands run without the deployment's write lock held: a
/// command that takes it (here `golive gate`, from inside the step) is not
/// kept waiting until the step ends, and neither would `golive watch`
/// raising a rollback meanwhile. The step is still recorded done once.
#[test]
fn a_running_step_does_not_hold_the_deployment() {
    let env = Env::new("steplock");
    let path = drill(
        &env,
        "### Phase 1: Flush (5 minutes)\n\n**Step 1.1: Ask for the gate meanwhile**\n```bash\ntimeout 60 [GOLIVE] gate smoke --as 'Lead Signer' --roster [ROSTER]; echo gate-exit=$?\n```\n- [ ] Asked\n",
    );
    assert_eq!(env.golive(&["run", &path]).status.code(), Some(0));
    let roster = go_as_lead(&env);
    let golive = format!("GOLIVE={}", env!("CARGO_BIN_EXE_golive"));
    let roster_var = format!("ROSTER={roster}");
    for args in [
        &["run", path.as_str(), "--allow-commands"][..],
        &[
            "done",
            "2.1.1",
            "--as",
            "Lead Signer",
            "--roster",
            &roster,
            "--run",
            "--allow-commands",
        ],
    ] {
        if args[0] == "done" {
            // the same step again, by hand, on a deployment of its own
            assert_eq!(env.golive(&["run", &path, "--new"]).status.code(), Some(0));
            go_as_lead(&env);
        }
        let mut args = args.to_vec();
        args.extend(["--var", &golive, "--var", &roster_var]);
        let out = env.golive(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{args:?}: {err}");
        let report: Value =
            serde_json::from_slice(&env.golive(&["report", "--format", "json"]).stdout)
                .expect("json");
        let events = report["events"].as_array().expect("events");
        let ran = events
            .iter()
            .find(|e| e["kind"] == "step.run")
            .unwrap_or_else(|| panic!("{args:?}: no step.run: {err}"));
        let stdout = ran["data"]["stdout"].as_str().unwrap_or("");
        // the gate answered (it refuses: this drill has no smoke tests), it
        // was not killed by `timeout` after waiting for the lock
        assert!(
            stdout.contains("gate-exit=") && !stdout.contains("gate-exit=124"),
            "{args:?}: {ran}"
        );
        assert_eq!(
            events.iter().filter(|e| e["kind"] == "step.done").count(),
            1,
            "{args:?}"
        );
    }
}

/// After GO, `golive run --allow-commands` takes the procedure as far as
/// machines can: command steps run in order, a person's step stops it, and a
/// step or phase that outlasts its declared budget is flagged.
#[test]
fn run_advances_the_procedure_and_flags_overruns() {
    let env = Env::new("advance");
    let path = drill(
        &env,
        "### Phase 1: Prepare (Target: <1 second)\n\n**Step 1.1: Warm up (Target: <1 second)**\n```bash\nsleep 1.2\necho warm\n```\n- [ ] Warmed\n\n**Step 1.2: Tell the team**\n- [ ] Team told\n\n**Step 1.3: Flush**\n```bash\necho flushed\n```\n- [ ] Flushed\n\n### Phase 2: Finish (5 minutes)\n\n**Step 2.1: Check**\n```bash\necho ok\n```\n- [ ] Checked\n",
    );
    let path = path.as_str();
    let run = |extra: &[&str]| {
        let mut args = vec!["run", path];
        args.extend_from_slice(extra);
        let out = env.golive(&args);
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    // before GO nothing of the procedure runs
    let (code, err) = run(&["--allow-commands"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(!err.contains("next:"), "{err}");
    let roster = go_as_lead(&env);
    let (code, err) = run(&[]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains("next: 2.1.1 Step 1.1: Warm up (Target: <1 second) has commands: run again with --allow-commands"),
        "{err}"
    );
    let (code, err) = run(&["--allow-commands"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains("2.1.1 Step 1.1: Warm up (Target: <1 second) done by golive"),
        "{err}"
    );
    assert!(
        err.contains("OVERRUN: 2.1.1 Step 1.1: Warm up (Target: <1 second) took "),
        "{err}"
    );
    assert!(
        err.contains(
            "next: 2.1.2 Step 1.2: Tell the team (a person's step: golive done 2.1.2 --as NAME)"
        ),
        "{err}"
    );
    let out = env.golive(&["done", "2.1.2", "--as", "Lead Signer", "--roster", &roster]);
    assert_eq!(out.status.code(), Some(0));
    let (code, err) = run(&["--allow-commands"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains("2.1.3 Step 1.3: Flush done by golive"),
        "{err}"
    );
    assert!(
        err.contains("OVERRUN: Phase 1: Prepare took "),
        "the phase lasted over a second: {err}"
    );
    assert!(
        err.contains("2.2.1 Step 2.1: Check done by golive"),
        "{err}"
    );
    assert!(err.contains("every step of the sequence is done"), "{err}");
    let report: Value =
        serde_json::from_slice(&env.golive(&["report", "--format", "json"]).stdout).expect("json");
    let done: Vec<&Value> = report["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["kind"] == "step.done")
        .collect();
    let order: Vec<(&str, &str)> = done
        .iter()
        .map(|e| {
            (
                e["data"]["address"].as_str().unwrap_or(""),
                e["actor"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        order,
        [
            ("2.1.1", "golive"),
            ("2.1.2", "Lead Signer"),
            ("2.1.3", "golive"),
            ("2.2.1", "golive")
        ]
    );
    assert_eq!(done[0]["data"]["timing"]["overrun"], true);
    assert_eq!(done[0]["data"]["timing"]["budget_seconds"], 1);
    assert_eq!(done[0]["data"]["ran"]["stdout"], "warm\n");
    assert_eq!(done[2]["data"]["timing"]["phase"]["overrun"], true);
    assert_eq!(done[3]["data"]["timing"]["phase"]["overrun"], false);
    let status = String::from_utf8_lossy(&env.golive(&["status"]).stdout).into_owned();
    assert!(
        status.contains("- Phase 1: Prepare: 3/3 steps complete"),
        "{status}"
    );
    // timed to the millisecond: at least the 1.2 s its command sleeps
    let warm_up =
        regex::Regex::new(r"\n    2\.1\.1 Step 1\.1: Warm up: ([0-9.]+)s of 1\.00s OVER BUDGET")
            .expect("pattern")
            .captures(&status)
            .and_then(|c| c[1].parse::<f64>().ok())
            .unwrap_or_else(|| panic!("{status}"));
    assert!(warm_up >= 1.2, "{status}");
    assert_eq!(env.golive(&["audit", "verify"]).status.code(), Some(0));
}

/// A small runbook: a go/no-go decision by the Deployment Lead, then the
/// given procedure phases.
fn drill(env: &Env, procedure: &str) -> String {
    let path = env.dir.join("drill.md");
    std::fs::write(&path, format!("# Cache flush drill\n\n## Go/No-Go Decision\n\n- [ ] **GO** - Proceed\n- [ ] **NO-GO** - Abort\n\n**Sign-offs:**\n- Deployment Lead: ________________ Date: ________\n\n## Deployment Procedure\n\n{procedure}"))
        .expect("runbook");
    path.to_str().expect("path").to_string()
}

/// GO, decided by Lead Signer as the Deployment Lead; the roster's path.
fn go_as_lead(env: &Env) -> String {
    let roster = env.roster(&[("Lead Signer", &["Deployment Lead"])]);
    let out = env.golive(&[
        "decide",
        "go",
        "--as",
        "Lead Signer",
        "--role",
        "Deployment Lead",
        "--roster",
        &roster,
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    roster
}
