//! Check authoring checked before the run: a condition reading a variable
//! the run does not bind, or a field its kind does not observe, is found by
//! lint and refused by plan and run before anything runs.

mod common;

use std::process::Command;

fn golive(dir: &std::path::Path, args: &[&str]) -> (String, i32) {
    let out = Command::new(env!("CARGO_BIN_EXE_golive"))
        .args(args)
        .current_dir(dir)
        .env_remove("GOLIVE_STORE")
        .output()
        .expect("golive runs");
    (
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
        out.status.code().unwrap_or(-1),
    )
}

fn doc(dir: &std::path::Path, expect: &str) {
    let marker = dir.join("marker");
    std::fs::write(&marker, "x").expect("marker");
    std::fs::write(
        dir.join("release.md"),
        format!(
            "# Release\n\n## Checks\n\n- [ ] **Artifact present**\n  ```golive\n  check = \"file\"\n  path = \"{}\"\n  expect = \"{expect}\"\n  ```\n",
            marker.display()
        ),
    )
    .expect("doc");
}

fn scratch(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("golive-authoring-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    dir
}

#[test]
fn check_authoring_surprises_an_unbound_var_is_found_by_lint_and_refused_by_run() {
    let dir = scratch("var");
    doc(&dir, "exists && vars.VERSION != ''");
    // lint says a run needs it
    let (out, code) = golive(&dir, &["lint", "release.md"]);
    assert_eq!(code, 0, "a warning only: {out}");
    assert!(out.contains("warning[unbound-var]"), "{out}");
    // a run without it is refused before anything runs, and records nothing
    let (out, code) = golive(&dir, &["run", "release.md"]);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("reads `vars.VERSION`, which this run does not bind: pass --var VERSION="),
        "{out}"
    );
    assert!(!dir.join(".golive").exists(), "nothing recorded");
    // bound, it runs
    let (out, code) = golive(&dir, &["run", "release.md", "--var", "VERSION=1.2.3"]);
    assert_eq!(code, 0, "{out}");
}

#[test]
fn check_authoring_surprises_a_misspelled_field_is_an_error_before_the_run() {
    let dir = scratch("field");
    doc(&dir, "exists && age < 3600");
    let (out, code) = golive(&dir, &["lint", "release.md"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(
            "error[unknown-field]: `expect` reads `age`: this file check observes no `age`"
        ),
        "{out}"
    );
    assert!(out.contains("did you mean `age_s`?"), "{out}");
    let (out, code) = golive(&dir, &["run", "release.md"]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("observes no `age`"), "{out}");
}

#[test]
fn lint_says_what_a_deployment_will_use_and_why_it_could_not_complete() {
    let dir = scratch("ready");
    doc(&dir, "exists");
    // a roster without the role that signs GO: a deployment cannot pass it
    std::fs::write(
        dir.join("roster.toml"),
        "[[person]]\nname = \"Quinn\"\nroles = [\"QA Engineer\"]\n",
    )
    .expect("roster");
    let (out, code) = golive(&dir, &["lint", "release.md"]);
    assert_eq!(code, 0, "warnings only: {out}");
    assert!(
        out.contains("warning[cannot-complete]: a deployment of this document cannot complete: nobody on the roster (roster.toml) holds the Deployment Lead, who signs the go/no-go decision"),
        "{out}"
    );
    for line in [
        "go/no-go decision signed by: Deployment Lead",
        "rollback: one manual step (golive done rollback), then golive finish",
        "roles the roster must hold: Deployment Lead",
        "default: the decision is signed by the Deployment Lead",
    ] {
        assert!(out.contains(line), "{line} in:\n{out}");
    }
    let (shown, _) = golive(&dir, &["show", "release.md"]);
    assert!(
        shown.contains("cannot complete: nobody on the roster"),
        "{shown}"
    );
    // with the role held, nothing stands in the way
    std::fs::write(
        dir.join("roster.toml"),
        "[[person]]\nname = \"Ann\"\nroles = [\"Deployment Lead\"]\n",
    )
    .expect("roster");
    let (out, code) = golive(&dir, &["lint", "release.md"]);
    assert_eq!(code, 0, "{out}");
    assert!(!out.contains("cannot-complete"), "{out}");
    assert!(out.contains("release.md: no findings"), "{out}");
}
