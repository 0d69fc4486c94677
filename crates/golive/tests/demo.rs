//! `golive demo` end to end: the success path and each fault, as a user runs
//! them, with the demo's store and reports checked afterwards.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

fn demo(tag: &str, fault: Option<&str>, notify: Option<&str>) -> (i32, String, PathBuf) {
    let out = std::env::temp_dir().join(format!("golive-demo-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_golive"));
    cmd.arg("demo")
        .arg("--out")
        .arg(&out)
        .env_remove("GOLIVE_NOTIFY");
    if let Some(f) = fault {
        cmd.args(["--fault", f]);
    }
    if let Some(n) = notify {
        cmd.args(["--notify", n]);
    }
    let o = cmd.output().expect("golive demo runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    (o.status.code().unwrap_or(-1), text, out)
}

fn golive(out: &Path, args: &[&str]) -> (i32, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_golive"))
        .args(args)
        .env("GOLIVE_STORE", out.join("golive.db"))
        .output()
        .expect("golive runs");
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
    )
}

/// The reports are there, the record is intact and readable afterwards.
fn reports_and_record(out: &Path, state: &str) {
    for name in ["report.md", "report.html", "report.json", "report.xml"] {
        let len = std::fs::metadata(out.join(name))
            .map(|m| m.len())
            .unwrap_or(0);
        assert!(len > 1000, "{name}: {len} bytes");
    }
    let md = std::fs::read_to_string(out.join("report.md")).expect("md");
    assert!(
        md.starts_with("# Demo Deployment Checklist"),
        "the document, filled"
    );
    assert!(
        md.contains("- [x] **Service reachable over HTTPS**"),
        "boxes ticked"
    );
    assert!(
        md.contains("Demo Release Manager"),
        "the demo roster's names in the blanks"
    );
    let html = std::fs::read_to_string(out.join("report.html")).expect("html");
    assert!(html.starts_with("<!doctype html>") || html.starts_with("<!DOCTYPE html>"));
    let (code, status) = golive(out, &["status"]);
    assert_eq!(code, 0);
    assert!(status.contains(&format!("State: {state}")), "{status}");
    let (code, verify) = golive(out, &["audit", "verify"]);
    assert_eq!(code, 0, "{verify}");
    let json = std::fs::read_to_string(out.join("report.json")).expect("json");
    assert!(
        json.contains("demo signature"),
        "demo signatures say what they are"
    );
}

/// The messages a receiver took: (key, subject).
fn messages(seen: &std::sync::Mutex<Vec<golive_testkit::Hooked>>) -> Vec<(String, String)> {
    seen.lock()
        .unwrap()
        .iter()
        .map(|h| {
            let v: serde_json::Value = serde_json::from_str(&h.body).expect("json");
            (
                v["key"].as_str().unwrap_or("").to_string(),
                v["subject"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_demo_deploys_to_success() {
    let (hooks, seen) = golive_testkit::scripted_receiver(&[]).await;
    let notify = format!("webhook=http://{}/hook", hooks.addr);
    let (code, text, out) = tokio::task::block_in_place(|| demo("success", None, Some(&notify)));
    // the communication plan, sent as it went
    let sent = messages(&seen);
    let keys: Vec<&str> = sent.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys[0], "status:go", "{keys:?}");
    assert_eq!(
        keys.iter()
            .filter(|k| k.starts_with("status:phase:"))
            .count(),
        3,
        "{keys:?}"
    );
    assert_eq!(keys[keys.len() - 2..], ["success", "report"], "{keys:?}");
    assert_eq!(sent[keys.len() - 2].1, "Demo Deployment Complete: v1.1.0");
    assert!(
        text.contains(&format!(
            "Messages: {0} queued; {0} of {0} deliveries sent on webhook at {1}",
            sent.len(),
            hooks.addr
        )),
        "{text}"
    );
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("Outcome: SUCCEEDED"), "{text}");
    assert!(text.contains("Gate smoke: 20/20 passed"), "{text}");
    assert!(text.contains("Gate verification: 10/10 passed"), "{text}");
    assert!(text.contains("The service answers: v1.1.0"), "{text}");
    // the war room serves the same record through its API
    assert!(
        text.contains("War room: http://127.0.0.1:")
            && text.contains("serves it: SUCCEEDED at version"),
        "{text}"
    );
    reports_and_record(&out, "SUCCEEDED");
    common::screenshot(&out.join("report.html"), "demo-report", 1280);
    let _ = std::fs::remove_dir_all(&out);
}

fn rolls_back(fault: &str, notify: Option<&str>) -> String {
    let (code, text, out) = demo(fault, Some(fault), notify);
    assert_eq!(code, 3, "ROLLED BACK exits 3: {text}");
    assert!(text.contains("Outcome: ROLLED BACK"), "{text}");
    assert!(text.contains("Rolled back in "), "{text}");
    for step in ["R1", "R2", "R3", "R4", "R5"] {
        assert!(text.contains(&format!("Step {step}:")), "{step}: {text}");
    }
    assert!(
        text.contains("The service answers: v1.0.0"),
        "the previous version runs again: {text}"
    );
    reports_and_record(&out, "ROLLED BACK");
    let _ = std::fs::remove_dir_all(&out);
    text
}

#[tokio::test(flavor = "multi_thread")]
async fn an_error_rate_rolls_back_and_says_so() {
    let (hooks, seen) = golive_testkit::scripted_receiver(&[]).await;
    let notify = format!("webhook=http://{}/hook", hooks.addr);
    tokio::task::block_in_place(|| rolls_back("error-rate", Some(&notify)));
    let sent = messages(&seen);
    let (_, subject) = sent
        .iter()
        .find(|(k, _)| k == "rollback-initiated")
        .unwrap_or_else(|| panic!("no rollback notice: {sent:?}"));
    assert!(subject.starts_with("ROLLBACK INITIATED - "), "{subject}");
    assert!(subject.ends_with(" - ETA 5 minutes"), "{subject}");
    let keys: Vec<&str> = sent.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys[keys.len() - 2..],
        ["rollback-complete", "report"],
        "{keys:?}"
    );
}

#[test]
fn latency_rolls_back() {
    let text = rolls_back("latency", None);
    assert!(
        text.contains("Messages: none sent (golive demo --notify"),
        "{text}"
    );
}

#[test]
fn a_service_down_rolls_back() {
    rolls_back("down", None);
}

/// `golive demo --out OUT`: its exit code and what it printed.
fn demo_into(out: &Path) -> (i32, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_golive"))
        .arg("demo")
        .arg("--out")
        .arg(out)
        .output()
        .expect("golive demo runs");
    (
        o.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
    )
}

/// Every entry under `dir` with its content (a folder's is empty).
fn tree(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut all = Vec::new();
    for entry in std::fs::read_dir(dir).expect("listing") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            all.push((path.clone(), Vec::new()));
            all.extend(tree(&path));
        } else {
            let content = std::fs::read(&path).expect("content");
            all.push((path, content));
        }
    }
    all.sort();
    all
}

#[test]
fn demo_out_refuses_a_folder_that_holds_other_files() {
    let dir = std::env::temp_dir().join(format!("golive-demo-foreign-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("notes")).expect("folder");
    std::fs::write(dir.join("report.md"), "# my own report\n").expect("report");
    std::fs::write(dir.join("golive.db"), "not a store").expect("db");
    std::fs::write(dir.join("notes/todo.txt"), "keep me").expect("notes");
    // a marker that is not golive's does not make the folder the demo's
    std::fs::write(dir.join(".golive-demo"), "mine\n").expect("marker");
    let before = tree(&dir);
    let (code, text) = demo_into(&dir);
    assert_eq!(code, 2, "{text}");
    assert!(
        text.contains(&format!("golive: {}: ", dir.display())),
        "names the folder: {text}"
    );
    assert!(text.contains("--out"), "says what to do: {text}");
    assert_eq!(tree(&dir), before, "nothing written: {text}");
    // a file is not a folder
    let file = dir.join("report.md");
    let (code, text) = demo_into(&file);
    assert_eq!(code, 2, "{text}");
    assert!(
        text.contains(&format!("golive: {}: ", file.display())),
        "names the file: {text}"
    );
    assert_eq!(tree(&dir), before, "nothing written: {text}");
    // a missing folder under a file cannot be made
    let under = dir.join("report.md/out");
    let (code, text) = demo_into(&under);
    assert_eq!(code, 2, "{text}");
    assert!(text.contains(&under.display().to_string()), "{text}");
    assert_eq!(tree(&dir), before, "nothing written: {text}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// What a demo would leave at the top of the root folder.
const DEMO_ENTRIES: [&str; 5] = [
    ".golive-demo",
    "demo.md",
    "golive.db",
    "report.md",
    "service",
];

#[test]
fn demo_out_refuses_the_root_folder() {
    for entry in DEMO_ENTRIES {
        assert!(!Path::new("/").join(entry).exists(), "/{entry} before");
    }
    let up = std::env::temp_dir().join("..");
    for out in [Path::new("/"), up.as_path()] {
        let (code, text) = demo_into(out);
        assert_eq!(code, 2, "{}: {text}", out.display());
        assert!(text.contains("golive: /: "), "names the folder: {text}");
        assert!(text.contains("--out"), "says what to do: {text}");
        for entry in DEMO_ENTRIES {
            assert!(!Path::new("/").join(entry).exists(), "/{entry} written");
        }
    }
}

#[test]
fn demo_out_takes_an_empty_folder_then_reuses_its_own() {
    let dir = std::env::temp_dir().join(format!("golive-demo-again-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("an empty folder");
    let (code, text) = demo_into(&dir);
    assert_eq!(code, 0, "an empty folder is taken: {text}");
    assert!(
        dir.join(".golive-demo").is_file(),
        "the demo marks its folder"
    );
    // something of the user's beside the demo's files stays as it is
    std::fs::write(dir.join("notes.txt"), "keep me").expect("notes");
    std::fs::write(dir.join("golive.db.backup"), "keep me too").expect("backup");
    let (code, text) = demo_into(&dir);
    assert_eq!(code, 0, "the demo's own folder is reused: {text}");
    assert_eq!(
        std::fs::read_to_string(dir.join("notes.txt")).expect("notes"),
        "keep me"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("golive.db.backup")).expect("backup"),
        "keep me too"
    );
    reports_and_record(&dir, "SUCCEEDED");
    // the second demo starts a store of its own: one deployment in it
    let (code, verify) = golive(&dir, &["audit", "verify"]);
    assert_eq!(code, 0, "{verify}");
    assert_eq!(verify.lines().count(), 1, "one deployment: {verify}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn every_demo_error_names_its_path() {
    let dir = std::env::temp_dir().join(format!("golive-demo-errors-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("folder");
    // a runbook that is not there: named, and the output folder not made
    let missing = dir.join("missing.md");
    let out = dir.join("out");
    let o = Command::new(env!("CARGO_BIN_EXE_golive"))
        .arg("demo")
        .arg("--out")
        .arg(&out)
        .arg("--runbook")
        .arg(&missing)
        .output()
        .expect("golive demo runs");
    let text = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{text}");
    assert!(text.contains(&missing.display().to_string()), "{text}");
    assert!(
        !out.exists(),
        "nothing written for a runbook that is not there"
    );
    // a runbook whose roster cannot sign: the runbook is named
    let tiny = dir.join("tiny.md");
    std::fs::write(
        &tiny,
        "# Tiny\n\n## Pre-Deployment Checklist\n\n- [ ] **Something**\n  - Responsible: Nobody\n",
    )
    .expect("runbook");
    let o = Command::new(env!("CARGO_BIN_EXE_golive"))
        .arg("demo")
        .arg("--out")
        .arg(&out)
        .arg("--runbook")
        .arg(&tiny)
        .output()
        .expect("golive demo runs");
    let text = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{text}");
    assert!(
        text.contains(&format!("golive: {}: ", tiny.display())),
        "{text}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
