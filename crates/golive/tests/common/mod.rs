//! Shared by the binary's integration tests: the repository root and the
//! golden-file check (`GOLIVE_BLESS=1` rewrites the expected files).
#![allow(dead_code)]

pub mod standin;

use std::path::{Path, PathBuf};

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The findings of `golive lint --format json` output of one severity.
pub fn findings_of(lint_json: &str, severity: &str) -> Vec<serde_json::Value> {
    let v: serde_json::Value = serde_json::from_str(lint_json).expect("lint prints JSON");
    v["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter(|d| d["severity"] == severity)
        .cloned()
        .collect()
}

/// Compare `actual` with `tests/golden/NAME`, or rewrite it when blessing.
pub fn check_golden(name: &str, actual: &str) -> Result<(), String> {
    let path = root().join("tests/golden").join(name);
    if std::env::var_os("GOLIVE_BLESS").is_some() {
        std::fs::write(&path, actual).expect("write golden file");
        return Ok(());
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    if expected == actual {
        return Ok(());
    }
    let diff = similar::TextDiff::from_lines(expected.as_str(), actual)
        .unified_diff()
        .context_radius(2)
        .header("expected", "actual")
        .to_string();
    Err(format!(
        "{name} differs from tests/golden/{name} (GOLIVE_BLESS=1 rewrites it):\n{diff}"
    ))
}
