//! The CLI's contract: what `show` reports about the reference checklist,
//! lint exit codes, and clear one-line errors for unreadable input.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn golive(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_golive"))
        .args(args)
        .current_dir(root())
        .output()
        .expect("golive runs")
}

fn seed_json() -> Value {
    let out = golive(&["show", "examples/aiwg-production.md", "--format", "json"]);
    assert!(out.status.success());
    serde_json::from_slice(&out.stdout).expect("JSON")
}

fn stage<'a>(v: &'a Value, title_start: &str) -> &'a Value {
    v["stages"]
        .as_array()
        .and_then(|s| {
            s.iter().find(|s| {
                s["title"]
                    .as_str()
                    .is_some_and(|t| t.starts_with(title_start))
            })
        })
        .unwrap_or_else(|| panic!("stage {title_start}"))
}

fn group_counts(stage: &Value) -> Vec<usize> {
    stage["groups"]
        .as_array()
        .map(|g| {
            g.iter()
                .map(|g| g["items"].as_array().map_or(0, Vec::len))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn seed_pre_deployment_has_48_items_in_five_groups() {
    let v = seed_json();
    let pre = stage(&v, "Pre-Deployment Checklist");
    assert_eq!(group_counts(pre), [8, 12, 10, 10, 8]);
    assert_eq!(pre["items_found"], 48);
    let first = &pre["groups"][0]["items"][0];
    assert_eq!(
        first["id"],
        "pre-deployment-checklist/code-readiness/all-pr-gate-criteria-met"
    );
    assert_eq!(first["address"], "1.1.1");
    assert_eq!(first["subchecks"].as_array().map(Vec::len), Some(4));
    for key in [
        "id",
        "address",
        "title",
        "line",
        "checked",
        "subchecks",
        "fields",
        "blanks",
        "commands",
    ] {
        assert!(first.get(key).is_some(), "item has `{key}`");
    }
}

#[test]
fn seed_procedure_has_20_steps_in_6_budgeted_phases() {
    let v = seed_json();
    let proc_ = stage(&v, "Deployment Procedure");
    assert_eq!(group_counts(proc_), [4, 3, 4, 3, 3, 3]);
    let budgets: Vec<u64> = proc_["groups"]
        .as_array()
        .map(|g| {
            g.iter()
                .map(|g| g["declared"]["budget"]["seconds"].as_u64().unwrap_or(0) / 60)
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(budgets, [15, 10, 20, 5, 5, 5]);
    let kinds: Vec<&str> = proc_["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|g| g["items"].as_array().into_iter().flatten())
        .map(|i| i["kind"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(kinds.len(), 20);
    assert!(kinds.iter().all(|k| *k == "step"));
}

#[test]
fn seed_smoke_verification_and_rollback_counts() {
    let v = seed_json();
    let smoke = stage(&v, "Smoke Testing Checklist");
    assert_eq!(group_counts(smoke), [10, 2, 4, 4]);
    assert_eq!(smoke["declared"]["items"], 20);
    assert_eq!(smoke["declared"]["budget"]["seconds"], 900);
    let post = stage(&v, "Post-Deployment Verification");
    assert_eq!(post["items"].as_array().map(Vec::len), Some(10));
    let rollback = stage(&v, "Rollback Procedure");
    let steps = &rollback["groups"][1];
    assert_eq!(steps["title"], "Rollback Steps (Target: <5 Minutes)");
    assert_eq!(steps["items"].as_array().map(Vec::len), Some(5));
    assert_eq!(steps["declared"]["budget"]["seconds"], 300);
    assert_eq!(steps["declared"]["budget"]["strict"], true);
    let post_rollback = &rollback["groups"][2];
    assert_eq!(post_rollback["title"], "Post-Rollback Actions (30 minutes)");
    assert_eq!(post_rollback["items"].as_array().map(Vec::len), Some(4));
}

#[test]
fn seed_placeholders_are_counted_with_their_lines() {
    let v = seed_json();
    let p = &v["placeholders"];
    assert_eq!(p["DOMAIN"].as_array().map(Vec::len), Some(21));
    assert_eq!(p["VERSION NUMBER"].as_array().map(Vec::len), Some(1));
    assert_eq!(p["VERSION NUMBER"][0], 7);
    assert!(
        p.get("domain").is_none(),
        "lower-case brackets are not placeholders"
    );
}

/// The reference lints with one finding only: its Contact Information
/// names nobody yet, so a deployment needs a roster.
#[test]
fn seed_lints_clean() {
    let out = golive(&["lint", "examples/aiwg-production.md", "--format", "json"]);
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let codes: Vec<&str> = v["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter_map(|f| f["code"].as_str())
        .collect();
    assert_eq!(codes, ["cannot-complete"], "{v}");
    assert!(
        v["findings"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("the roster names nobody")),
        "{v}"
    );
}

#[test]
fn lint_exit_codes_are_0_1_2() {
    assert_eq!(
        golive(&["lint", "tests/fixtures/clean-minimal.md"])
            .status
            .code(),
        Some(0)
    );
    assert_eq!(
        golive(&["lint", "tests/fixtures/faults-counts-ids.md"])
            .status
            .code(),
        Some(1)
    );
    let missing = golive(&["lint", "tests/fixtures/no-such-file.md"]);
    assert_eq!(missing.status.code(), Some(2));
    let err = String::from_utf8_lossy(&missing.stderr);
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(err.contains("no-such-file.md") && err.contains("no such file"));
}

#[test]
fn non_utf8_input_gets_one_line_with_its_position() {
    let dir = std::env::temp_dir().join(format!("golive-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("latin1.md");
    std::fs::write(&path, b"## Stage\n\n- [ ] caf\xe9 open\n").expect("write");
    let out = golive(&["lint", path.to_str().expect("path")]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("latin1.md:3:10"), "{err}");
    assert!(err.contains("not UTF-8"), "{err}");
    assert!(!err.contains("panicked"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_var_is_bad_input() {
    let out = golive(&["lint", "examples/aiwg-production.md", "--var", "DOMAIN"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("NAME=VALUE"));
}

#[test]
fn unbound_placeholders_are_found_only_when_binding_vars() {
    let args = [
        "lint",
        "examples/aiwg-production.md",
        "--format",
        "json",
        "--var",
        "DOMAIN=shop.example.test",
    ];
    let out = golive(&args);
    assert_eq!(out.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&out.stdout).expect("json");
    let names: Vec<String> = v["findings"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|d| d["code"] == "unbound-placeholder")
        .map(|d| d["message"].as_str().unwrap_or("").to_string())
        .collect();
    assert!(names.iter().any(|m| m.contains("[DB_HOST]")));
    assert!(
        !names.iter().any(|m| m.contains("[DOMAIN]")),
        "DOMAIN is bound"
    );
}

#[test]
fn items_are_found_by_id_address_and_suffix() {
    for name in [
        "pre-deployment-checklist/infrastructure-readiness/ssl-certificates-valid",
        "1.2.2",
        "ssl-certificates-valid",
    ] {
        let out = golive(&[
            "show",
            "examples/aiwg-production.md",
            name,
            "--format",
            "json",
        ]);
        assert!(out.status.success(), "{name}");
        let v: Value = serde_json::from_slice(&out.stdout).expect("json");
        assert_eq!(v["title"], "SSL certificates valid", "{name}");
    }
    let out = golive(&["show", "examples/aiwg-production.md", "completed-by"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("names 4 items"));
    let out = golive(&[
        "show",
        "examples/aiwg-production.md",
        "ssl-certificate-valid",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("did you mean"));
}

/// The annotated reference checklist is the seed document plus `golive`
/// blocks and nothing else: removing the blocks gives the seed back, byte for
/// byte (its SHA-256 is recorded here, since the seed lives outside the repo).
#[test]
fn the_example_is_the_seed_plus_annotation_blocks_only() {
    use sha2::{Digest, Sha256};
    let text =
        std::fs::read_to_string(root().join("examples/aiwg-production.md")).expect("example");
    let mut kept = Vec::new();
    let mut inside = false;
    for line in text.split('\n') {
        if line.trim() == "```golive" {
            inside = true;
            continue;
        }
        if inside {
            inside = line.trim() != "```";
            continue;
        }
        kept.push(line);
    }
    let seed = kept.join("\n");
    assert_eq!(
        hex::encode(Sha256::digest(seed.as_bytes())),
        "1bb19f1c56d7a4cba402e7da28029f244ac63ad04544a74885b1bf68e5ddb2bd"
    );
    assert!(text.matches("```golive").count() >= 15);
}

/// The commands that read or add to a recorded deployment, in a directory
/// with no store: exit 2, one line that says so and what to do, and no file
/// created (the store appears with the first `golive run`).
#[test]
fn without_a_store_the_deployment_commands_create_nothing() {
    let dir = std::env::temp_dir().join(format!("golive-nostore-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    for args in [
        &["status"][..],
        &["report", "--format", "json"],
        &[
            "sign",
            "1.1.1",
            "--as",
            "Lead Signer",
            "--role",
            "Deployment Lead",
        ],
        &[
            "decide",
            "go",
            "--as",
            "Lead Signer",
            "--role",
            "Deployment Lead",
        ],
        &["gate", "smoke", "--as", "Lead Signer"],
        &["done", "1.1", "--as", "Lead Signer"],
        &["finish", "--as", "Lead Signer"],
        &["audit", "verify"],
        &["watch", "d-20261127T000000-00000000", "--count", "1"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_golive"))
            .args(args)
            .current_dir(&dir)
            .env_remove("GOLIVE_STORE")
            .output()
            .expect("golive runs");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains("no store at sqlite://.golive/golive.db")
                && err.contains("golive run RUNBOOK")
                && err.lines().count() == 1,
            "{args:?}: {err}"
        );
        let left: Vec<_> = std::fs::read_dir(&dir).expect("dir").collect();
        assert!(left.is_empty(), "{args:?} created {left:?}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// `golive show … | head -c 10` used to end in a panic and a stack trace
/// ("failed printing to stdout: Broken pipe").
#[test]
fn a_reader_that_leaves_early_gets_no_panic() {
    use std::io::Read;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_golive"))
        .args(["show", "examples/aiwg-production.md", "--format", "json"])
        .current_dir(root())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("golive");
    let mut first = [0u8; 10];
    child
        .stdout
        .take()
        .expect("stdout")
        .read_exact(&mut first)
        .expect("the output starts");
    // the pipe is closed here, with 340 KB still to print
    let out = child.wait_with_output().expect("golive ends");
    assert_eq!(out.status.code(), Some(141));
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
}
