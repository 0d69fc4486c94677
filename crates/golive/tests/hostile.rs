//! Documents written to break golive: annotations that do not parse or use
//! unknown keys, nesting thousands of levels deep. Each is answered with a
//! finding at its line and column, through the real binary, and changes
//! nothing.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A fresh directory for one test, with no store in it.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("golive-hostile-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// `golive ARGS` run in `dir`, with the default store (`.golive/` there).
fn golive_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_golive"))
        .args(args)
        .current_dir(dir)
        .env_remove("GOLIVE_STORE")
        .output()
        .expect("golive runs")
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A runbook with one automated item whose annotation body is `body`.
fn one_check(body: &str) -> String {
    format!(
        "# Release\n\n## Smoke Tests (1 item)\n\n- [ ] **Health endpoint answers**\n  ```golive\n{body}  ```\n"
    )
}

/// `plan` and `run` refuse the document with exit 2, show `finding` at
/// `at` (file:line:col) on stderr, print no plan, and record nothing.
fn assert_refused(dir: &Path, file: &str, finding: &str, at: &str) {
    for cmd in ["plan", "run"] {
        let out = golive_in(dir, &[cmd, file]);
        let all = text(&out);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{cmd}: {all}");
        assert!(err.contains(finding) && err.contains(at), "{cmd}: {all}");
        assert!(
            !String::from_utf8_lossy(&out.stdout).contains("manual"),
            "{cmd} printed a plan for a refused document: {all}"
        );
        assert!(
            !dir.join(".golive").exists(),
            "{cmd} created a store for a refused document: {all}"
        );
    }
}

/// A `golive` block whose TOML does not parse used to make its item manual:
/// lint found it, but `plan` and `run` went on with "1 manual" and exit 0.
#[test]
fn a_broken_annotation_refuses_plan_and_run() {
    let dir = scratch("broken");
    std::fs::write(
        dir.join("release.md"),
        one_check(
            "  check  = \"http\"\n  target = \"http://127.0.0.1:9/health\"\n  expect = \"status == 200\n",
        ),
    )
    .expect("runbook");
    let lint = golive_in(&dir, &["lint", "release.md"]);
    assert_eq!(lint.status.code(), Some(1), "{}", text(&lint));
    let lint_out = String::from_utf8_lossy(&lint.stdout);
    assert!(lint_out.contains("error[annotation-syntax]"), "{lint_out}");
    // the very finding lint shows, at the same place
    let at = lint_out
        .lines()
        .skip_while(|l| !l.starts_with("error[annotation-syntax]"))
        .find_map(|l| l.trim().strip_prefix("--> "))
        .expect("lint names the position")
        .to_string();
    assert!(at.starts_with("release.md:9:"), "{at}");
    assert_refused(&dir, "release.md", "error[annotation-syntax]", &at);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A misspelt key (`expct`) was ignored by `plan` and `run`: the check ran
/// with the kind's default condition instead of the one written.
#[test]
fn an_unknown_annotation_key_refuses_plan_and_run() {
    let dir = scratch("unknown-key");
    std::fs::write(
        dir.join("release.md"),
        one_check(
            "  check  = \"http\"\n  target = \"http://127.0.0.1:9/health\"\n  expct  = \"status == 200\"\n",
        ),
    )
    .expect("runbook");
    assert_refused(&dir, "release.md", "error[unknown-key]", "release.md:9:3");
    let out = golive_in(&dir, &["plan", "release.md"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("did you mean `expect`?"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// 10,000 nested `> ` or 100,000 nested `- ` around a task overflowed the
/// stack (exit 134, the latter after 90 s and 4.2 GB). Nesting is limited: past the limit golive
/// reports where, and reads no further into it.
#[test]
fn deep_nesting_is_a_finding_not_a_stack_overflow() {
    let dir = scratch("nesting");
    let quotes = format!(
        "# Deep\n\n## Checks\n\n{}- [ ] **x**\n",
        "> ".repeat(10_000)
    );
    let lists = format!("# Deep\n\n## Checks\n\n{}[ ] x\n", "- ".repeat(100_000));
    std::fs::write(dir.join("quotes.md"), quotes).expect("quotes");
    std::fs::write(dir.join("lists.md"), lists).expect("lists");
    // the 65th level opens at column 2 * 64 + 1
    for file in ["quotes.md", "lists.md"] {
        let at = format!("{file}:5:129");
        let lint = golive_in(&dir, &["lint", file]);
        let out = String::from_utf8_lossy(&lint.stdout);
        assert_eq!(lint.status.code(), Some(1), "lint {file}: {}", text(&lint));
        assert!(
            out.contains("error[nesting-too-deep]") && out.contains(&at),
            "lint {file}: {}",
            text(&lint)
        );
        for cmd in ["show", "plan"] {
            let res = golive_in(&dir, &[cmd, file]);
            let err = String::from_utf8_lossy(&res.stderr);
            assert_eq!(res.status.code(), Some(2), "{cmd} {file}: {}", text(&res));
            assert!(
                err.contains("error[nesting-too-deep]") && err.contains(&at),
                "{cmd} {file}: {}",
                text(&res)
            );
        }
        assert_refused(&dir, file, "error[nesting-too-deep]", &at);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A generated runbook of `items` items shaped like a real one (sub-checks,
/// blanks, fields, a command block every fifth item): about 290 bytes each.
fn generated(items: usize) -> String {
    let mut s =
        String::from("# Generated Deployment Checklist\n\n**Version:** [VERSION NUMBER]\n\n");
    for i in 0..items {
        if i % 100 == 0 {
            s.push_str(&format!("## Stage {}\n\n", i / 100 + 1));
        }
        if i % 10 == 0 {
            s.push_str(&format!("### Group {} (15 minutes)\n\n", i / 10 + 1));
        }
        s.push_str(&format!(
            "- [ ] **Check number {i} passes**\n  - [ ] Endpoint [DOMAIN] answers (count: ____)\n  - [ ] Latency below target: ________ ms\n  - **Responsible:** DevOps Engineer\n  - **Sign-off:** ________________\n"
        ));
        if i % 5 == 0 {
            s.push_str("  ```bash\n  curl -s https://[DOMAIN]/health\n  # Expected: 200\n  ```\n");
        }
        s.push('\n');
    }
    s
}

/// `golive ARGS` with its data segment (heap) limited to `kib`: a command
/// that needs more is stopped by the kernel, whatever the machine's load.
fn golive_limited(dir: &Path, kib: usize, args: &[&str]) -> Output {
    Command::new("sh")
        .arg("-c")
        .arg(format!("ulimit -d {kib} && exec \"$0\" \"$@\""))
        .arg(env!("CARGO_BIN_EXE_golive"))
        .args(args)
        .current_dir(dir)
        .env_remove("GOLIVE_STORE")
        .output()
        .expect("sh runs golive")
}

/// `show --format json` on 50 MB took 4.2 GB (24 KiB per item: the whole
/// document as a JSON tree, then as one string), six times what import
/// needs. show and plan now run within the heap of an import: 8 KiB per
/// item and 32 MiB, where lint needs 4 KiB per item.
#[test]
fn show_and_plan_of_a_big_document_need_the_memory_of_its_import() {
    let dir = scratch("big");
    let items = 20_000;
    std::fs::write(dir.join("big.md"), generated(items)).expect("runbook");
    let limit = 32 * 1024 + 8 * items;
    for args in [
        &["lint", "big.md"][..],
        &["show", "big.md"],
        &["show", "big.md", "--format", "json"],
        &["plan", "big.md"],
    ] {
        let out = golive_limited(&dir, limit, args);
        assert!(
            matches!(out.status.code(), Some(0 | 1)),
            "{args:?} within {limit} KiB: exit {:?}: {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        );
        if args.contains(&"json") {
            let v: serde_json::Value =
                serde_json::from_slice(&out.stdout).expect("show prints JSON");
            assert_eq!(v["summary"]["items"], items);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
