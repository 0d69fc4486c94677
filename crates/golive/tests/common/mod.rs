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

/// Times, ids, hashes and durations vary from run to run: golden files hold
/// them as placeholders.
pub fn normalise(text: &str) -> String {
    let rules: &[(&str, &str)] = &[
        (r"d-\d{8}T\d{6}-[0-9a-f]{8}", "d-ID"),
        (r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", "TIME"),
        (r"\d{4}-\d\d-\d\d \d\d:\d\d UTC", "TIME"),
        (r"[0-9a-f]{64}", "HASH"),
        // the record's head as shown: its sequence number stays
        (r"\b(\d+):[0-9a-f]{16}\b", "$1:HEAD"),
        (
            r#""(duration_ms|duration_seconds|rollback_seconds|seconds|delivery_ms)": [0-9.e-]+"#,
            r#""$1": N"#,
        ),
        (r#"time="[0-9.]+""#, r#"time="N""#),
        (r"Total duration: [0-9.]+ min", "Total duration: N min"),
        (
            r"\*\*Deployment Duration:\*\* [0-9.]+ minutes",
            "**Deployment Duration:** N minutes",
        ),
        (r"<td>[0-9.m]+s</td>", "<td>Ns</td>"),
        (r"<dd>(\d+m)?[0-9.]+s", "<dd>Ns"),
        (
            r"\b(timing\.[a-z_]+|latency_ms\.[a-z0-9_]+|value|[a-z_.0-9]*_(ms|s)) = [0-9.e-]+",
            "$1 = N",
        ),
        (r"width:\d+%", "width:N%"),
        (r"localhost:\d+", "localhost:PORT"),
        (r"127\.0\.0\.1:\d+", "127.0.0.1:PORT"),
        (
            r#""(latency_ms\.[a-z0-9_]+|sample_age_s|value)": [0-9.e-]+"#,
            r#""$1": N"#,
        ),
        (
            r#""timing\.total_ms": [0-9.e-]+"#,
            r#""timing.total_ms": N"#,
        ),
        (r"[0-9.]+ ms", "N ms"),
        (r"/tmp/golive-pki-[0-9-]+", "PKI"),
        (r"/tmp/golive-deploy-[a-z]+-\d+", "DIR"),
        (r#""started_by": "[^"]*""#, r#""started_by": "USER""#),
        (r"started TIME by [^<]*<", "started TIME by USER<"),
    ];
    let mut out = text.to_string();
    for (pattern, with) in rules {
        out = regex::Regex::new(pattern)
            .expect("pattern")
            .replace_all(&out, *with)
            .into_owned();
    }
    // a run is recorded in the name of the system account running it
    let me = regex::escape(&account());
    for (pattern, with) in [
        (format!(r#""actor": "{me}""#), r#""actor": "USER""#),
        (format!(r"<td>{me}</td></tr>"), "<td>USER</td></tr>"),
    ] {
        out = regex::Regex::new(&pattern)
            .expect("pattern")
            .replace_all(&out, with)
            .into_owned();
    }
    out
}

/// The account running the tests, as `id -un` names it.
pub fn account() -> String {
    let out = std::process::Command::new("id")
        .arg("-un")
        .output()
        .expect("id -un");
    assert!(out.status.success(), "id -un");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Chromium (headless, Debian's) renders a page `width` pixels wide to a
/// PNG; its size in bytes.
pub fn render(page: &Path, png: &Path, width: u32) -> u64 {
    let o = std::process::Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
        ])
        .arg(format!("--window-size={width},1600"))
        .arg(format!("--screenshot={}", png.display()))
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("chromium is installed (.ci/run installs Debian's chromium)");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let bytes = std::fs::read(png).expect("screenshot");
    assert!(bytes.starts_with(b"\x89PNG"), "a PNG");
    bytes.len() as u64
}

/// A page as a browser shows it at `width` pixels: a screenshot kept under
/// target/ as `NAME-WIDTH.png`, far from blank (a blank page of the same
/// size compresses to a few KB).
pub fn screenshot(html: &Path, name: &str, width: u32) {
    let target = root().join("target").join("screenshots");
    let _ = std::fs::create_dir_all(&target);
    // each test its own blank page: tests render at the same time
    let blank_page = target.join(format!("blank-{name}.html"));
    std::fs::write(&blank_page, "<!doctype html><title>blank</title>").expect("blank page");
    let blank = render(
        &blank_page,
        &target.join(format!("blank-{name}-{width}.png")),
        width,
    );
    let report = render(html, &target.join(format!("{name}-{width}.png")), width);
    assert!(
        report > 10 * blank && report > 30_000,
        "the report renders as something at {width} px: {report} bytes against {blank} for a blank page"
    );
}

/// (id, Responsible role) of every task item a person signs in the
/// document `show` (`golive show --format json`) describes, in order;
/// items naming no role are the Deployment Lead's. Of the reference, the
/// first 48 are the pre-deployment items.
pub fn task_items(show: &serde_json::Value) -> Vec<(String, String)> {
    let mut items = Vec::new();
    for stage in show["stages"].as_array().expect("stages") {
        if stage["kind"] == "decision" {
            continue;
        }
        for it in items_of(stage) {
            if it["kind"] != "task" {
                continue;
            }
            let role = it["fields"]
                .as_array()
                .and_then(|f| f.iter().find(|f| f["label"] == "Responsible"))
                .and_then(|f| f["value"].as_str())
                .unwrap_or("Deployment Lead")
                .to_string();
            items.push((it["id"].as_str().unwrap_or("").to_string(), role));
        }
    }
    items
}

/// The items of a stage (its own, then its groups'), as `show` JSON.
fn items_of(stage: &serde_json::Value) -> Vec<serde_json::Value> {
    std::iter::once(&stage["items"])
        .chain(
            stage["groups"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|g| &g["items"]),
        )
        .flat_map(|l| l.as_array().cloned().unwrap_or_default())
        .collect()
}

/// The items of the stage whose title starts with `title`.
pub fn stage_item_values(show: &serde_json::Value, title: &str) -> Vec<serde_json::Value> {
    let stage = show["stages"]
        .as_array()
        .and_then(|s| {
            s.iter()
                .find(|s| s["title"].as_str().is_some_and(|t| t.starts_with(title)))
        })
        .cloned()
        .expect("stage");
    items_of(&stage)
}

fn id_of(it: &serde_json::Value) -> String {
    it["id"].as_str().unwrap_or("").to_string()
}

/// Ids of the items of the stage whose title starts with `title`.
pub fn stage_items(show: &serde_json::Value, title: &str) -> Vec<String> {
    stage_item_values(show, title).iter().map(id_of).collect()
}

/// Ids of the items of a stage that no check automates.
pub fn manual_items(show: &serde_json::Value, title: &str) -> Vec<String> {
    stage_item_values(show, title)
        .iter()
        .filter(|it| it["annotations"].as_array().is_none_or(Vec::is_empty))
        .map(id_of)
        .collect()
}

/// The roles the reference's pre-deployment items name: one person of the
/// tests' crew holds them all.
pub const ITEM_ROLES: &[&str] = &[
    "Test Engineer",
    "QA Team Lead",
    "DevOps Engineer",
    "Technical Writer",
    "Security Engineer",
    "Operations Team",
    "Database Administrator",
    "Network Engineer",
    "Network Security Engineer",
    "Reliability Engineer",
    "Software Engineer",
    "Performance Engineer",
    "Engineering Manager",
    "Operations Manager",
    "Product Manager",
    "Project Manager",
    "Deployment Lead",
];
