//! Golden files: `golive show --format json` and `golive lint` for every
//! fixture, compared with `tests/golden/`. Run with `GOLIVE_BLESS=1` to
//! rewrite the expected files after an intended change, then review the diff.

mod common;

use common::{check_golden, root};
use std::path::Path;
use std::process::Command;

/// Every fixture: the reference checklist, `tests/fixtures/*.md` and the
/// corpus of checklists in other teams' shapes, `tests/corpus/*.md`.
fn fixtures() -> Vec<String> {
    let mut out = vec!["examples/aiwg-production.md".to_string()];
    out.extend(markdown_in("tests/fixtures"));
    out.extend(corpus());
    out
}

/// The `.md` files of a directory of the repository, sorted.
fn markdown_in(dir: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(root().join(dir))
        .unwrap_or_else(|e| panic!("{dir} exists: {e}"))
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".md"))
        .collect();
    names.sort();
    names.into_iter().map(|n| format!("{dir}/{n}")).collect()
}

/// Checklists written the way other teams write them (docs/format.md,
/// "Other teams' shapes").
fn corpus() -> Vec<String> {
    markdown_in("tests/corpus")
}

#[test]
fn every_checklist_of_the_corpus_lints_without_an_error() {
    let corpus = corpus();
    assert!(
        corpus.len() >= 8,
        "the corpus has {} checklists",
        corpus.len()
    );
    for f in corpus {
        let (out, code) = golive(&["lint", &f, "--format", "json"]);
        let errors = common::findings_of(&out, "error");
        assert!(errors.is_empty(), "{f}: {errors:?}");
        assert_eq!(code, 0, "{f}: lint exits 0 without errors");
    }
}

fn golive(args: &[&str]) -> (String, i32) {
    let out = Command::new(env!("CARGO_BIN_EXE_golive"))
        .args(args)
        .current_dir(root())
        .output()
        .expect("golive runs");
    assert!(
        out.stderr.is_empty(),
        "golive {args:?} wrote to stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        String::from_utf8(out.stdout).expect("utf-8 output"),
        out.status.code().unwrap_or(-1),
    )
}

fn stem(fixture: &str) -> String {
    Path::new(fixture)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

#[test]
fn show_json_matches_golden_files() {
    let mut failures = Vec::new();
    for f in fixtures() {
        let (out, code) = golive(&["show", &f, "--format", "json"]);
        assert_eq!(code, 0, "show {f} exit code");
        serde_json::from_str::<serde_json::Value>(&out).expect("show prints JSON");
        if let Err(e) = check_golden(&format!("{}.show.json", stem(&f)), &out) {
            failures.push(e);
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn lint_output_matches_golden_files() {
    let mut failures = Vec::new();
    for f in fixtures() {
        // the annotation fixture is linted with one variable bound, so the
        // unbound-placeholder check runs
        let mut args = vec!["lint", f.as_str()];
        if f.ends_with("faults-annotations.md") {
            args.extend(["--var", "DOMAIN=cdn.example.test"]);
        }
        let (out, code) = golive(&args);
        let text = format!("{out}exit: {code}\n");
        if let Err(e) = check_golden(&format!("{}.lint.txt", stem(&f)), &text) {
            failures.push(e);
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn show_text_matches_golden_file_for_the_seed() {
    let (out, code) = golive(&["show", "examples/aiwg-production.md"]);
    assert_eq!(code, 0);
    check_golden("aiwg-production.show.txt", &out).unwrap_or_else(|e| panic!("{e}"));
}
