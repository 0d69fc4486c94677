//! The shape of the code, kept: the lifecycle and the reports never print,
//! exit or read the environment, and no two source files of a crate import
//! each other.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir`, by module path (`a::b`).
fn modules(dir: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("dir").flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                let rel = p.strip_prefix(dir).expect("under").with_extension("");
                let name = rel.to_string_lossy().replace('/', "::");
                let text = std::fs::read_to_string(&p).expect("source");
                // the code: not its unit tests, not its comments (a doc
                // example may print)
                let code: String = text
                    .split("#[cfg(test)]")
                    .next()
                    .unwrap_or("")
                    .lines()
                    .filter(|l| !l.trim_start().starts_with("//"))
                    .map(|l| format!("{l}\n"))
                    .collect();
                out.insert(name, code);
            }
        }
    }
    out
}

fn crates() -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(common::root().join("crates"))
        .expect("crates")
        .flatten()
        .map(|e| e.path().join("src"))
        .filter(|p| p.is_dir())
        .collect();
    out.sort();
    out
}

/// Whether `code` names module `m` of its own crate.
fn imports(code: &str, m: &str) -> bool {
    let leaf = m.rsplit("::").next().unwrap_or(m);
    code.contains(&format!("crate::{m}::"))
        || code.contains(&format!("crate::{m};"))
        || code.contains(&format!("crate::{m}}}"))
        || code.contains(&format!("super::{leaf}::"))
        || code.split("use crate::{").skip(1).any(|rest| {
            rest.split('}')
                .next()
                .unwrap_or("")
                .split([',', ' ', '\n'])
                .any(|w| w == m)
        })
}

#[test]
fn no_two_files_import_each_other() {
    let mut circles = Vec::new();
    for src in crates() {
        let mods = modules(&src);
        let names: BTreeSet<&str> = mods
            .keys()
            .map(String::as_str)
            .filter(|m| !matches!(*m, "lib" | "main"))
            .collect();
        for a in &names {
            for b in &names {
                if a < b && imports(&mods[*a], b) && imports(&mods[*b], a) {
                    circles.push(format!("{}: {a} <-> {b}", src.display()));
                }
            }
        }
    }
    assert!(
        circles.is_empty(),
        "files that import each other: {circles:#?}"
    );
}

#[test]
fn the_lifecycle_and_the_reports_never_print_exit_or_read_the_environment() {
    let root = common::root();
    let mut found = Vec::new();
    for krate in ["golive-deploy", "golive-report"] {
        for (m, code) in modules(&root.join("crates").join(krate).join("src")) {
            for word in [
                "println!",
                "eprintln!",
                "print!(",
                "eprint!(",
                "ExitCode",
                "process::exit",
                "clap",
                "std::env::var",
                "env::args",
            ] {
                if code.contains(word) {
                    found.push(format!("{krate} {m}: {word}"));
                }
            }
        }
    }
    assert!(found.is_empty(), "{found:#?}");
}
