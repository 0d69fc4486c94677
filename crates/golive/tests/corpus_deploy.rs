//! Whole deployments of checklists written the way other teams write them
//! (`tests/corpus/`): sign-offs, GO, the procedure's steps (list items and
//! `**Step**` paragraphs), gates and finish, each command as a person types
//! it, and the filled report answering the document's own status line.

mod common;

use common::root;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

struct Env {
    dir: PathBuf,
    doc: String,
}

impl Env {
    fn new(doc: &str) -> Env {
        Env::tagged(doc, "")
    }

    /// A folder of its own for `doc`, apart from other tests of the same
    /// document by `tag`.
    fn tagged(doc: &str, tag: &str) -> Env {
        let stem = Path::new(doc)
            .file_stem()
            .expect("stem")
            .to_string_lossy()
            .into_owned();
        let dir =
            std::env::temp_dir().join(format!("golive-corpus-{stem}{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        let name = Path::new(doc).file_name().expect("name");
        std::fs::copy(root().join(doc), dir.join(name)).expect("copy");
        std::fs::write(
            dir.join("roster.toml"),
            "[[person]]\nname = \"Ann\"\nroles = [\"Deployment Lead\", \"Release Manager\", \"Launch Lead\"]\n\n\
             [[person]]\nname = \"Bob\"\nroles = [\"Engineering Manager\", \"QA Lead\", \"Head of Support\"]\n",
        )
        .expect("roster");
        Env {
            dir,
            doc: name.to_string_lossy().into_owned(),
        }
    }

    fn golive(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_golive"))
            .args(args)
            .current_dir(&self.dir)
            .env_remove("GOLIVE_STORE")
            .output()
            .expect("golive runs")
    }

    /// Runs a command that must succeed, and returns what it printed.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.golive(args);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.status.code(), Some(0), "golive {args:?}:\n{text}");
        text
    }

    fn sign(&self, items: &[&str], name: &str, role: &str) {
        for i in items {
            let out = self.ok(&["sign", i, "--as", name, "--role", role]);
            assert!(
                out.contains(&format!("signed by {name} as {role}")),
                "{out}"
            );
        }
    }

    fn done(&self, steps: &[&str]) {
        for s in steps {
            let out = self.ok(&["done", s, "--as", "Ann"]);
            assert!(out.contains("done by Ann"), "{out}");
        }
    }

    /// Runs a command that must be refused (exit 1), and returns what it
    /// said.
    fn refused(&self, args: &[&str]) -> String {
        let out = self.golive(args);
        let text = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(
            out.status.code(),
            Some(1),
            "golive {args:?} should be refused:\n{}{text}",
            String::from_utf8_lossy(&out.stdout)
        );
        text
    }

    /// The number of events the deployment holds.
    fn events(&self) -> u64 {
        let out = self.ok(&["status", "--format", "json"]);
        let v: serde_json::Value = serde_json::from_str(&out).expect("status json");
        v["events"].as_u64().expect("events")
    }

    fn state(&self) -> String {
        let out = self.ok(&["status", "--format", "json"]);
        let v: serde_json::Value = serde_json::from_str(&out).expect("status json");
        v["state"].as_str().unwrap_or("").to_string()
    }

    fn report(&self) -> String {
        self.ok(&["report", "--format", "md"])
    }
}

#[test]
fn a_document_written_as_phases_deploys_from_first_phase_to_sign_off() {
    let e = Env::new("tests/corpus/phased-launch.md");
    e.ok(&["run", &e.doc]);
    // Phase 1 and 2 before the meeting of Phase 3
    e.sign(
        &["1.1", "1.2", "1.3", "2.1", "2.2", "2.3"],
        "Ann",
        "Release Manager",
    );
    // the meeting's items are the decision's, not anyone's to sign
    let refused = e.golive(&["sign", "3.1", "--as", "Ann", "--role", "Release Manager"]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("go/no-go decision"));
    e.ok(&["decide", "go", "--as", "Ann", "--role", "Deployment Lead"]);
    assert_eq!(e.state(), "DEPLOYING");
    e.sign(&["4.1", "4.2", "4.3"], "Ann", "Release Manager");
    e.sign(&["5.1", "5.2", "5.3"], "Bob", "QA Lead");
    let gate = e.ok(&["gate", "smoke", "--as", "Ann"]);
    assert!(
        gate.contains("3/3 passed") && gate.contains("PASS"),
        "{gate}"
    );
    e.sign(&["6.1", "6.2", "6.3"], "Bob", "QA Lead");
    // the Phase 8 role blocks sign what was done, so not before the end
    let early = e.golive(&["sign-off", "--as", "Ann", "--role", "Launch Lead"]);
    assert_eq!(early.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&early.stderr).contains("once the deployment has ended"));
    let end = e.ok(&["finish", "--as", "Ann", "--roster", "roster.toml"]);
    assert!(end.starts_with("SUCCESS"), "{end}");
    assert_eq!(e.state(), "SUCCEEDED");
    let first = e.ok(&["sign-off", "--as", "Ann", "--role", "Launch Lead"]);
    assert!(first.contains("waiting for Head of Support"), "{first}");
    let twice = e.golive(&["sign-off", "--as", "Ann", "--role", "Launch Lead"]);
    assert_eq!(twice.status.code(), Some(1));
    let wrong = e.golive(&["sign-off", "--as", "Bob", "--role", "QA Lead"]);
    assert!(
        String::from_utf8_lossy(&wrong.stderr)
            .contains("is signed by Launch Lead, Head of Support, not the QA Lead"),
        "{}",
        String::from_utf8_lossy(&wrong.stderr)
    );
    let last = e.ok(&["sign-off", "8", "--as", "Bob", "--role", "Head of Support"]);
    assert!(last.contains("every role has signed"), "{last}");
    assert!(
        e.ok(&["status"])
            .contains("Phase 8: Sign-off: 2/2 roles signed\n")
    );
    let report = e.report();
    // the role blocks name who signed, and when
    assert!(report.contains("**Launch Lead:**\n- Name: Ann\n- Signature: signed in golive by Ann (Launch Lead)\n- Date: 20"), "{report}");
    assert!(
        report.contains("- Name: Bob\n- Signature: signed in golive by Bob (Head of Support)\n"),
        "{report}"
    );
    // the document's own choice line answers how it ended
    assert!(report.contains("**Launch Status:** SUCCESS\n"), "{report}");
    assert!(!report.contains("SUCCESS / ROLLBACK / PARTIAL"));
    assert!(report.contains("- [x] Sign-up flow completes"));
    // the numbered rollback steps were never started
    assert!(report.contains("1. Turn off the launch feature flag"));
}

#[test]
fn a_migration_with_step_paragraphs_and_role_blocks_deploys_and_answers_its_status() {
    let e = Env::new("tests/corpus/database-migration.md");
    e.ok(&["run", &e.doc]);
    e.sign(&["1.1", "1.2", "1.3", "1.4"], "Ann", "Release Manager");
    // steps wait for GO
    let early = e.golive(&["done", "2.1", "--as", "Ann"]);
    assert_eq!(
        early.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&early.stderr)
    );
    e.ok(&["decide", "go", "--as", "Ann", "--role", "Deployment Lead"]);
    // and go in document order
    let skipped = e.golive(&["done", "2.2", "--as", "Ann"]);
    assert_eq!(skipped.status.code(), Some(1));
    e.done(&["2.1", "2.2", "2.3"]);
    e.sign(&["3.1", "3.2", "3.3"], "Bob", "QA Lead");
    let gate = e.ok(&["gate", "verification", "--as", "Ann"]);
    assert!(gate.contains("3/3 passed"), "{gate}");
    e.ok(&["finish", "--as", "Ann", "--roster", "roster.toml"]);
    assert_eq!(e.state(), "SUCCEEDED");
    let report = e.report();
    assert!(
        report.contains("**Migration Status:** SUCCESS\n"),
        "{report}"
    );
}

#[test]
fn a_kubernetes_checklist_with_list_steps_skips_only_what_it_marks_optional() {
    let e = Env::new("tests/corpus/k8s-service.md");
    e.ok(&["run", &e.doc]);
    e.sign(
        &["1.1", "1.2", "1.3", "1.4", "1.5", "1.6"],
        "Ann",
        "Release Manager",
    );
    e.ok(&["decide", "go", "--as", "Ann", "--role", "Deployment Lead"]);
    e.done(&["2.1"]);
    // `2. Wait for the rollout to finish` is not optional
    let refused = e.golive(&["done", "2.2", "--as", "Ann", "--skipped"]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("is not optional"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    e.done(&["2.2", "2.3"]);
    // `4. Scale the workers back up (if needed)` is
    let out = e.ok(&["done", "2.4", "--as", "Ann", "--skipped"]);
    assert!(out.contains("skipped by Ann"), "{out}");
    e.sign(&["3.1", "3.2", "3.3"], "Bob", "QA Lead");
    e.ok(&["gate", "verification", "--as", "Ann"]);
    let end = e.ok(&["finish", "--as", "Ann", "--roster", "roster.toml"]);
    assert!(end.starts_with("SUCCESS"), "{end}");
    assert_eq!(e.state(), "SUCCEEDED");
}

#[test]
fn a_canary_rollout_follows_the_option_chosen_and_skips_what_is_optional_with_a_reason() {
    let e = Env::new("tests/corpus/canary-rollout.md");
    e.ok(&["run", &e.doc]);
    let mobile = Env::new("tests/corpus/mobile-app-release.md");
    mobile.ok(&["run", &mobile.doc]);
    // an item no marker makes optional is not skipped
    let refused = e.golive(&[
        "skip",
        "1.1",
        "--as",
        "Ann",
        "--role",
        "Release Manager",
        "--reason",
        "n/a",
    ]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("is not optional"));
    // an optional one is, once, with its reason
    let out = mobile.ok(&[
        "skip",
        "2.1.1",
        "--as",
        "Ann",
        "--role",
        "Release Manager",
        "--reason",
        "no flags this release",
    ]);
    assert!(
        out.contains("skipped by Ann as Release Manager (no flags this release)"),
        "{out}"
    );
    let json = mobile.ok(&["status", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(&json).expect("json");
    assert_eq!(v["set_aside"][0]["address"], "2.1.1");
    assert_eq!(
        v["set_aside"][0]["reason"],
        "skipped: no flags this release"
    );
    let again = mobile.golive(&[
        "skip",
        "2.1.1",
        "--as",
        "Ann",
        "--role",
        "Release Manager",
        "--reason",
        "x",
    ]);
    assert_eq!(again.status.code(), Some(1));
    let no_reason = mobile.golive(&[
        "skip",
        "2.1.2",
        "--as",
        "Ann",
        "--role",
        "Release Manager",
        "--reason",
        " ",
    ]);
    assert_eq!(no_reason.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&no_reason.stderr).contains("needs a reason"));
    // an unknown option is named with the ones there are
    let unknown = e.golive(&[
        "choose",
        "Option Z",
        "--as",
        "Ann",
        "--role",
        "Deployment Lead",
    ]);
    assert_eq!(unknown.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&unknown.stderr).contains("2.1/3 Option C: Canary"),
        "{}",
        String::from_utf8_lossy(&unknown.stderr)
    );
    e.sign(&["1.1", "1.2", "1.3", "1.4"], "Ann", "Release Manager");
    let chosen = e.ok(&[
        "choose",
        "canary",
        "--as",
        "Ann",
        "--role",
        "Deployment Lead",
    ]);
    assert!(
        chosen.contains("Option C: Canary chosen by Ann") && chosen.contains("5 item(s)"),
        "{chosen}"
    );
    // chosen once
    let twice = e.golive(&[
        "choose",
        "2.1/1",
        "--as",
        "Bob",
        "--role",
        "Engineering Manager",
    ]);
    assert_eq!(twice.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&twice.stderr).contains("was chosen already, by Ann"));
    // the other options' items are set aside: the group waits only for the canary's six
    let status = e.ok(&["status"]);
    assert!(
        status.contains("Deployment Pattern: Choose One: 5/11 items complete"),
        "{status}"
    );
    assert!(
        status.contains("Set aside (5), counted complete:"),
        "{status}"
    );
    assert!(
        status.contains(
            "2.1.1    Bring up the green stack beside blue — not the option chosen (Option C: Canary)"
        ),
        "{status}"
    );
    e.sign(
        &["2.1.6", "2.1.7", "2.1.8", "2.1.9", "2.1.10", "2.1.11"],
        "Ann",
        "Release Manager",
    );
    let status = e.ok(&["status"]);
    assert!(
        status.contains("Deployment Pattern: Choose One: 11/11 items complete"),
        "{status}"
    );
    // the filled document says which were set aside, and why
    let report = e.report();
    assert!(
        report.contains("- [ ] Set maxUnavailable to 1 — *set aside: not the option chosen (Option C: Canary)*\n"),
        "{report}"
    );
    assert!(
        report
            .contains("- [x] Send 5% of traffic to the canary — *signed by Ann, Release Manager, "),
        "{report}"
    );
    let report = mobile.report();
    assert!(
        report.contains("- [ ] New onboarding flag on for 10% of users — *set aside: skipped: no flags this release*\n"),
        "{report}"
    );
    // and the record of both is whole
    for env in [&e, &mobile] {
        let verify = env.ok(&["audit", "verify"]);
        assert!(verify.contains("intact"), "{verify}");
    }
}

// Documents without a go/no-go stage, without Rollback Steps and without a
// role name: each deployment ends, SUCCEEDED in one run and ROLLED BACK in
// another, with the roles golive says it uses.

/// The filled Markdown and the HTML report of the deployment against their
/// golden files (`tests/golden/corpus-NAME.report.*`), and, when `shots`,
/// the HTML as headless Chromium shows it at 1280 and 390 pixels, kept
/// under target/screenshots/.
fn reports(e: &Env, name: &str, shots: bool) {
    let mut failures = Vec::new();
    for (format, ext) in [("md", "md"), ("html", "html")] {
        let text = common::normalise(&e.ok(&["report", "--format", format]));
        if let Err(why) = common::check_golden(&format!("corpus-{name}.report.{ext}"), &text) {
            failures.push(why);
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    if shots {
        let page = e.dir.join(format!("{name}.html"));
        std::fs::write(&page, e.ok(&["report", "--format", "html"])).expect("page");
        for width in [1280, 390] {
            common::screenshot(&page, &format!("corpus-{name}"), width);
        }
    }
}

const LEAD: [&str; 4] = ["--as", "Ann", "--role", "Deployment Lead"];

fn with<'a>(args: &[&'a str], more: &[&'a str]) -> Vec<&'a str> {
    args.iter().chain(more).copied().collect()
}

/// GO by the Deployment Lead: the default signer of a document without a
/// go/no-go stage, said in the status.
fn go(e: &Env) {
    e.ok(&["run", &e.doc]);
    let status = e.ok(&["status"]);
    assert!(
        status.contains(
            "the decision is signed by the Deployment Lead: the document has no go/no-go stage"
        ),
        "{status}"
    );
    let out = e.ok(&with(&["decide", "go"], &LEAD));
    assert!(out.contains("GO"), "{out}");
}

/// The rollback by the decision's signer (the document names no rollback
/// authority), its one manual step, and the end.
fn roll_back(e: &Env) {
    let out = e.ok(&with(
        &["rollback", "--reason", "the symptom came back"],
        &LEAD,
    ));
    assert!(
        out.contains("ROLLBACK INITIATED by Deployment Lead"),
        "{out}"
    );
    assert_eq!(e.state(), "ROLLING BACK");
    let open = e.refused(&["finish", "--as", "Ann"]);
    assert!(open.contains("golive done rollback"), "{open}");
    let done = e.ok(&["done", "rollback", "--as", "Ann"]);
    assert!(done.contains("done by Ann"), "{done}");
    let end = e.ok(&["finish", "--as", "Ann"]);
    assert!(end.contains("ROLLED BACK: deployment"), "{end}");
    assert_eq!(e.state(), "ROLLED BACK");
    e.refused(&["finish", "--as", "Ann"]);
}

#[test]
fn roles_the_document_never_names_a_hotfix_rolls_back_by_its_decision_signer() {
    let e = Env::tagged("tests/corpus/saas-hotfix.md", "-rollback");
    go(&e);
    let json = e.ok(&["status", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(&json).expect("json");
    assert_eq!(
        v["roles"]["manual_rollback"],
        serde_json::json!(["Deployment Lead"])
    );
    assert_eq!(v["roles"]["defaults"].as_array().map(Vec::len), Some(3));
    roll_back(&e);
    reports(&e, "saas-hotfix-rolled-back", false);
}

#[test]
fn rollbacks_that_never_end_a_hotfix_succeeds_or_rolls_back_to_an_end() {
    let e = Env::tagged("tests/corpus/saas-hotfix.md", "-success");
    go(&e);
    // a stage's items signed in one command, each its own event
    let before = e.events();
    let out = e.ok(&with(&["sign", "2.*"], &LEAD));
    assert_eq!(out.matches(" signed by Ann").count(), 3, "{out}");
    assert_eq!(e.events(), before + 3);
    let end = e.ok(&["finish", "--as", "Ann"]);
    assert!(end.contains("SUCCESS: deployment"), "{end}");
    assert_eq!(e.state(), "SUCCEEDED");
    reports(&e, "saas-hotfix-succeeded", false);
}

#[test]
fn a_canary_rollout_without_roles_ends_both_ways() {
    let ok = Env::tagged("tests/corpus/canary-rollout.md", "-success");
    go(&ok);
    ok.ok(&with(&["choose", "2.1/3"], &LEAD));
    assert!(ok.ok(&["finish", "--as", "Ann"]).contains("SUCCESS"));
    assert_eq!(ok.state(), "SUCCEEDED");
    reports(&ok, "canary-rollout-succeeded", false);
    let back = Env::tagged("tests/corpus/canary-rollout.md", "-rollback");
    go(&back);
    roll_back(&back);
    reports(&back, "canary-rollout-rolled-back", false);
}

#[test]
fn gates_that_act_on_what_was_never_tried_change_nothing_and_finish_waits_for_the_decision() {
    let e = Env::tagged("tests/corpus/static-site-release.md", "-success");
    go(&e);
    // a gate run to see where things stand, with nothing tried, decides
    // nothing: no event, no rollback
    let before = e.events();
    let why = e.refused(&["gate", "smoke", "--as", "Ann"]);
    assert!(
        why.contains("decides nothing yet: 3 of its 3 items have no result"),
        "{why}"
    );
    assert_eq!(e.events(), before);
    assert_eq!(e.state(), "DEPLOYING");
    // a manual check that failed is said so, with what failed
    let no_comment = e.refused(&with(&["sign", "3.3", "--failed"], &LEAD));
    assert!(
        no_comment.contains("needs --comment saying what failed"),
        "{no_comment}"
    );
    e.ok(&with(&["sign", "3.1", "3.2"], &LEAD));
    let failed = e.ok(&with(
        &["sign", "3.3", "--failed", "--comment", "/v1 links give 404"],
        &LEAD,
    ));
    assert!(failed.contains("signed FAILED by Ann"), "{failed}");
    let smoke = e.ok(&["gate", "smoke", "--as", "Ann"]);
    assert!(smoke.contains("2/3"), "{smoke}");
    // a verification item that failed raises the rollback decision: finish
    // refuses SUCCESS until it is resolved
    e.ok(&with(&["sign", "4.1"], &LEAD));
    e.ok(&with(
        &["sign", "4.2", "--failed", "--comment", "hero image is 4 MB"],
        &LEAD,
    ));
    e.refused(&["gate", "verification", "--as", "Ann"]);
    assert_eq!(e.state(), "ROLLBACK DECISION RAISED");
    let open = e.refused(&["finish", "--as", "Ann"]);
    assert!(open.contains("a rollback decision is open"), "{open}");
    let resolved = e.ok(&with(
        &[
            "rollback",
            "--continue",
            "--reason",
            "image swapped, weight fixed",
        ],
        &LEAD,
    ));
    assert!(
        resolved.contains("ROLLBACK DECISION RESOLVED"),
        "{resolved}"
    );
    // fixed: signed done this time, and the gate passes
    e.ok(&with(
        &["sign", "4.2", "--comment", "1.1 MB after the swap"],
        &LEAD,
    ));
    e.ok(&["gate", "verification", "--as", "Ann"]);
    assert!(e.ok(&["finish", "--as", "Ann"]).contains("SUCCESS"));
    assert_eq!(e.state(), "SUCCEEDED");
    reports(&e, "static-site-release-succeeded", true);
}

#[test]
fn no_way_to_say_not_applicable_or_failed_a_failed_smoke_gate_rolls_back_to_its_end() {
    let e = Env::tagged("tests/corpus/static-site-release.md", "-rollback");
    e.ok(&["run", &e.doc]);
    // not applicable needs why; then it leaves the counts
    let why = e.refused(&with(&["sign", "1.3", "--na"], &LEAD));
    assert!(why.contains("why it does not apply"), "{why}");
    let na = e.ok(&with(
        &["sign", "1.3", "--na", "--comment", "no search on this site"],
        &LEAD,
    ));
    assert!(na.contains("signed N/A by Ann"), "{na}");
    let json = e.ok(&["status", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(&json).expect("json");
    assert_eq!(v["set_aside"][0]["reason"], "N/A: no search on this site");
    go(&e);
    for item in ["3.1", "3.2"] {
        e.ok(&with(
            &["sign", item, "--failed", "--comment", "503 from the CDN"],
            &LEAD,
        ));
    }
    e.ok(&with(&["sign", "3.3"], &LEAD));
    // the smoke gate's failure starts the automatic rollback, in the name
    // of the decision's signer
    e.refused(&["gate", "smoke", "--as", "Ann"]);
    assert_eq!(e.state(), "ROLLING BACK");
    e.ok(&["done", "rollback", "--as", "Ann"]);
    assert!(e.ok(&["finish", "--as", "Ann"]).contains("ROLLED BACK"));
    assert_eq!(e.state(), "ROLLED BACK");
    reports(&e, "static-site-release-rolled-back", true);
}

#[test]
fn on_fail_rollback_on_a_health_check_acts_in_run_after_go_and_watch_watches_it() {
    let e = Env::tagged("tests/corpus/saas-hotfix.md", "-onfail");
    let health = e.dir.join("health");
    std::fs::write(&health, "ok\n").expect("health");
    let doc = format!(
        "# Service release\n\n## Deploy\n\n- [ ] Deploy the build\n\n## Checks\n\n\
- [ ] **Health endpoint answers**\n  ```golive\n  check = \"file\"\n  path = \"{}\"\n  on_fail = \"rollback\"\n  ```\n",
        health.display()
    );
    std::fs::write(e.dir.join("service.md"), doc).expect("doc");
    e.ok(&["run", "service.md"]);
    e.ok(&with(&["decide", "go"], &LEAD));
    std::fs::remove_file(&health).expect("health gone");
    let run = e.golive(&["run", "service.md"]);
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    assert_eq!(run.status.code(), Some(1), "{said}");
    assert!(
        said.contains(
            "ROLLBACK DECISION RAISED: 2.1 Health endpoint answers failed (on_fail = \"rollback\")"
        ),
        "{said}"
    );
    assert_eq!(e.state(), "ROLLBACK DECISION RAISED");
    // a watch of the runbook watches the health check, and says it fires
    let watch = e.golive(&["watch", "service.md", "--count", "1", "--interval", "10ms"]);
    let said = String::from_utf8_lossy(&watch.stdout).into_owned();
    assert_eq!(
        watch.status.code(),
        Some(1),
        "{said}{}",
        String::from_utf8_lossy(&watch.stderr)
    );
    assert!(said.contains("1 check"), "{said}");
}

#[test]
fn reports_nobody_would_send_up_status_message_without_a_template_uses_a_plain_default() {
    let e = Env::tagged("tests/corpus/saas-hotfix.md", "-message");
    go(&e);
    let out = e.ok(&["status", "--message"]);
    for line in [
        "Deployment status update, ",
        "Current phase: ",
        "Issues: NONE",
        "Next: ",
    ] {
        assert!(out.contains(line), "{line} in:\n{out}");
    }
    assert!(!out.contains('['), "no placeholder left: {out}");
}

#[test]
fn a_sign_off_over_a_failed_check_is_an_override_said_in_status_the_decision_and_reports() {
    let e = Env::tagged("tests/corpus/saas-hotfix.md", "-override");
    let doc = format!(
        "# Release\n\n## Pre-Deployment Checklist\n\n\
- [ ] **Backup taken**\n  ```golive\n  check = \"file\"\n  path = \"{}\"\n  ```\n",
        e.dir.join("backup.tar").display()
    );
    std::fs::write(e.dir.join("release.md"), doc).expect("doc");
    let run = e.golive(&["run", "release.md"]);
    assert_eq!(run.status.code(), Some(1), "the backup is missing");
    let why = e.refused(&with(&["sign", "1.1"], &LEAD));
    assert!(why.contains("overrides them and needs --comment"), "{why}");
    let out = e.ok(&with(
        &[
            "sign",
            "1.1",
            "--comment",
            "backup taken by the DBA, stored off-site",
        ],
        &LEAD,
    ));
    assert!(
        out.contains("signed, overriding its failed checks, by Ann"),
        "{out}"
    );
    let status = e.ok(&["status"]);
    assert!(
        status.contains("Overrides (1): signed done over failed checks:\n  1.1 Backup taken — Ann (Deployment Lead): backup taken by the DBA, stored off-site"),
        "{status}"
    );
    let go = e.ok(&with(&["decide", "go"], &LEAD));
    assert!(
        go.contains("taken over 1 override(s) of failed checks:"),
        "{go}"
    );
    let md = e.report();
    assert!(
        md.contains("— *signed by Ann, Deployment Lead, ")
            && md.contains(", overriding its failed checks: backup taken by the DBA"),
        "{md}"
    );
    let html = e.ok(&["report", "--format", "html"]);
    assert!(
        html.contains("<b>(override)</b>") && html.contains("1 sign-off(s) over failed checks"),
        "{html}"
    );
}

#[test]
fn reports_nobody_would_send_up_the_filled_document_answers_its_own_lines() {
    let e = Env::tagged("tests/corpus/static-site-release.md", "-lines");
    e.ok(&["run", &e.doc]);
    e.ok(&with(
        &["sign", "1.3", "--na", "--comment", "no search on this site"],
        &LEAD,
    ));
    go(&e);
    e.ok(&with(
        &["sign", "1.1", "1.2", "2.*", "3.1", "3.2", "4.*"],
        &LEAD,
    ));
    e.ok(&with(
        &["sign", "3.3", "--failed", "--comment", "/v1 links give 404"],
        &LEAD,
    ));
    e.ok(&["gate", "smoke", "--as", "Ann"]);
    e.ok(&["gate", "verification", "--as", "Ann"]);
    e.ok(&["finish", "--as", "Ann"]);
    let md = e.report();
    for line in [
        "**Deployment Lead Signature:** Ann (Deployment Lead, 20",
        "**Completion Time:** 20",
        "**Deployment Status:** SUCCEEDED",
        "- [ ] Search index rebuilt (if applicable) — *N/A: no search on this site (Ann, Deployment Lead, ",
        "- [ ] Old URLs redirect — *FAILED: /v1 links give 404 (Ann, Deployment Lead, ",
        "- [x] Home page loads — *signed by Ann, Deployment Lead, ",
    ] {
        assert!(md.contains(line), "{line} in:\n{md}");
    }
}

#[test]
fn roles_the_document_never_names_a_team_states_its_own_in_the_roster() {
    let e = Env::tagged("tests/corpus/saas-hotfix.md", "-team");
    std::fs::write(
        e.dir.join("roster.toml"),
        "[[person]]\nname = \"Ann\"\nroles = [\"Release Manager\", \"Deployment Lead\"]\n\n\
         [[person]]\nname = \"Sam\"\nroles = [\"SRE on call\"]\n\n\
         [roles]\ndecision = [\"Release Manager\"]\nrollback = [\"Release Manager\", \"SRE on call\"]\nautomatic_rollback = \"SRE on call\"\n",
    )
    .expect("roster");
    let lint = e.ok(&["lint", &e.doc]);
    assert!(
        lint.contains("go/no-go decision signed by: Release Manager"),
        "{lint}"
    );
    assert!(
        lint.contains("rollback decided by: Release Manager + SRE on call; automatic rollback in the name of: SRE on call"),
        "{lint}"
    );
    e.ok(&["run", &e.doc]);
    let status = e.ok(&["status"]);
    assert!(
        status.contains(
            "the decision is signed by the Release Manager: the roster's [roles] decision"
        ),
        "{status}"
    );
    // the default no longer applies: the team's role signs
    let wrong = e.refused(&with(&["decide", "go"], &LEAD));
    assert!(
        wrong.contains("the decision is signed by the Release Manager"),
        "{wrong}"
    );
    e.ok(&["decide", "go", "--as", "Ann", "--role", "Release Manager"]);
    let first = e.ok(&[
        "rollback",
        "--as",
        "Ann",
        "--role",
        "Release Manager",
        "--reason",
        "symptom back",
    ]);
    assert!(
        first.contains("waiting for the rest of: Release Manager + SRE on call"),
        "{first}"
    );
    let second = e.ok(&[
        "rollback",
        "--as",
        "Sam",
        "--role",
        "SRE on call",
        "--reason",
        "symptom back",
    ]);
    assert!(
        second.contains("ROLLBACK INITIATED by Release Manager + SRE on call"),
        "{second}"
    );
    e.ok(&["done", "rollback", "--as", "Sam"]);
    assert!(e.ok(&["finish", "--as", "Sam"]).contains("ROLLED BACK"));
    // a roster whose [roles] is malformed is named, with what it takes
    std::fs::write(
        e.dir.join("roster.toml"),
        "[[person]]\nname = \"Ann\"\nroles = [\"Release Manager\"]\n\n[roles]\ndecisions = [\"Release Manager\"]\n",
    )
    .expect("roster");
    let bad = e.golive(&["status"]);
    let said = String::from_utf8_lossy(&bad.stderr);
    assert_eq!(bad.status.code(), Some(2), "{said}");
    assert!(
        said.contains("roster.toml: [roles] has no `decisions`: it takes decision, rollback and automatic_rollback"),
        "{said}"
    );
}
