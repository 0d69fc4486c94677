//! `golive demo` end to end: the success path and each fault, as a user runs
//! them, with the demo's store and reports checked afterwards.

use std::path::{Path, PathBuf};
use std::process::Command;

fn demo(tag: &str, fault: Option<&str>) -> (i32, String, PathBuf) {
    let out = std::env::temp_dir().join(format!("golive-demo-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_golive"));
    cmd.arg("demo").arg("--out").arg(&out);
    if let Some(f) = fault {
        cmd.args(["--fault", f]);
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

#[test]
fn the_demo_deploys_to_success() {
    let (code, text, out) = demo("success", None);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("Outcome: SUCCEEDED"), "{text}");
    assert!(text.contains("Gate smoke: 20/20 passed"), "{text}");
    assert!(text.contains("Gate verification: 10/10 passed"), "{text}");
    assert!(text.contains("The service answers: v1.1.0"), "{text}");
    reports_and_record(&out, "SUCCEEDED");
    screenshot(&out.join("report.html"));
    let _ = std::fs::remove_dir_all(&out);
}

/// Chromium (headless, Debian's) renders a page to a PNG; its size in bytes.
fn render(page: &Path, png: &Path) -> u64 {
    let o = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--window-size=1280,1600",
        ])
        .arg(format!("--screenshot={}", png.display()))
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("chromium is installed (.ci/run installs Debian's chromium)");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let bytes = std::fs::read(png).expect("screenshot");
    assert!(bytes.starts_with(b"\x89PNG"), "a PNG");
    bytes.len() as u64
}

/// The HTML report as a browser shows it: a screenshot kept under target/,
/// far from blank (a blank page of the same size compresses to a few KB).
fn screenshot(html: &Path) {
    let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target");
    let _ = std::fs::create_dir_all(&target);
    let blank_page = target.join("demo-blank.html");
    std::fs::write(&blank_page, "<!doctype html><title>blank</title>").expect("blank page");
    let blank = render(&blank_page, &target.join("demo-blank.png"));
    let report = render(html, &target.join("demo-report.png"));
    assert!(
        report > 10 * blank && report > 50_000,
        "the report renders as something: {report} bytes against {blank} for a blank page"
    );
}

fn rolls_back(fault: &str) {
    let (code, text, out) = demo(fault, Some(fault));
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
}

#[test]
fn an_error_rate_rolls_back() {
    rolls_back("error-rate");
}

#[test]
fn latency_rolls_back() {
    rolls_back("latency");
}

#[test]
fn a_service_down_rolls_back() {
    rolls_back("down");
}
