//! A secret whose value holds the characters JSON, URLs and HTML escape
//! (`"`, `\`, `&`, `<`, `@`, `%`) leaves golive in none of its forms: not in
//! the run's text or JSON, not in the store, not in the filled-in report.

use serde_json::Value;
use std::process::{Command, Output};

const SECRET: &str = r#"s3"cr\et&<x>@%pw"#;

/// Every form the secret could take on its way out.
fn forms() -> Vec<String> {
    let json = serde_json::to_string(SECRET).expect("json");
    let percent: String = SECRET
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    let html = SECRET
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;");
    vec![
        SECRET.to_string(),
        json.trim_matches('"').to_string(),
        percent,
        html,
    ]
}

fn assert_hidden(what: &str, text: &str) {
    for f in forms() {
        assert!(
            !text.contains(&f),
            "the secret leaked into {what} as {f}: {text}"
        );
    }
}

#[test]
fn a_secret_leaves_in_no_encoding() {
    let dir = std::env::temp_dir().join(format!("golive-secrets-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    // the command prints the secret: the observation carries it, and every
    // output escapes it its own way (JSON in the store and --format json,
    // HTML in the report)
    let runbook = "# Secret drill\n\n## Checks (1 item)\n\n### Echo (1 item)\n\n\
- [ ] **Echo the token**\n  Token used: ________\n  ```golive\n  check   = \"command\"\n  \
command = \"printf '%s' [TOKEN]\"\n  fill    = { \"Token used\" = \"stdout\" }\n  ```\n";
    std::fs::write(dir.join("drill.md"), runbook).expect("runbook");
    let store = format!("sqlite://{}", dir.join("golive.db").display());
    let golive = |args: &[&str]| -> Output {
        Command::new(env!("CARGO_BIN_EXE_golive"))
            .args(args)
            .current_dir(&dir)
            .env("GOLIVE_STORE", &store)
            .env("DRILL_TOKEN", SECRET)
            .output()
            .expect("golive")
    };
    for format in ["text", "json"] {
        let out = golive(&[
            "run",
            "drill.md",
            "--allow-commands",
            "--secret",
            "TOKEN=env:DRILL_TOKEN",
            "--format",
            format,
        ]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
        assert_hidden("stdout", &stdout);
        assert_hidden("stderr", &stderr);
        if format == "json" {
            let v: Value = serde_json::from_str(&stdout).expect("valid JSON after redaction");
            let printed = v["checks"][0]["observation"]["stdout"]
                .as_str()
                .expect("stdout");
            assert!(printed.starts_with("[redacted]"), "{printed}");
        }
    }
    let rows = Command::new("sqlite3")
        .arg(dir.join("golive.db"))
        .arg("SELECT * FROM events; SELECT * FROM deployments;")
        .output()
        .expect("sqlite3");
    assert!(rows.status.success());
    let rows = String::from_utf8_lossy(&rows.stdout);
    assert!(
        rows.contains("[redacted]"),
        "the checks were recorded: {rows}"
    );
    assert_hidden("the store", &rows);
    for format in ["md", "json", "html"] {
        let out = golive(&["report", "--format", format]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_hidden(
            &format!("the {format} report"),
            &String::from_utf8_lossy(&out.stdout),
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
