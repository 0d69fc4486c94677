//! A secret whose value holds the characters JSON, URLs and HTML escape
//! (`"`, `\`, `&`, `<`, `@`, `%`) leaves golive in none of its forms: not in
//! the run's text or JSON, not in the store, not in the filled-in report.

use serde_json::Value;
use std::process::{Command, Output};

const SECRET: &str = r#"s3"cr\et&<x>@%pw"#;

fn assert_hidden(what: &str, text: &str) {
    for f in encodings(SECRET) {
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

/// Every form a value may take in an output: as it is, JSON-escaped,
/// percent-encoded (either case), HTML- and XML-escaped, quoted for a shell.
fn encodings(secret: &str) -> Vec<String> {
    let json = serde_json::to_string(secret).expect("json");
    let upper: String = secret
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    let html = secret
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;");
    let mut backslashed = String::new();
    for c in secret.chars() {
        if matches!(c, '\\' | '"' | '$' | '`') {
            backslashed.push('\\');
        }
        backslashed.push(c);
    }
    vec![
        secret.to_string(),
        json.trim_matches('"').to_string(),
        upper.clone(),
        upper.to_lowercase(),
        html.replace('\'', "&#39;"),
        html.replace('\'', "&apos;"),
        html.replace('\'', "&#x27;"),
        format!("'{}'", secret.replace('\'', "'\\''")),
        backslashed,
    ]
}

/// A drill whose check hands the secret to a command three ways and prints
/// it back (with printf: dash's echo would rewrite its backslashes).
const DRILL: &str = "# Secret drill\n\n## Checks (1 item)\n\n### Echo (1 item)\n\n\
- [ ] **Echo the token**\n  Token used: ________\n  ```golive\n  check   = \"command\"\n  \
command = 'printf \"token: %s\\\\n\" [TEST_TOKEN]; printf \"%s\" \"$(printf %s [TEST_TOKEN])\" >&2; sh -c \"printf %s [TEST_TOKEN]\"'\n  \
fill    = { \"Token used\" = \"stdout\" }\n  ```\n";

/// Everything golive writes for a run that used `secret`: plan, run in
/// each format, every report format and every row of the store.
fn outputs_of_a_run(tag: &str, secret: &str) -> Vec<(String, String)> {
    let dir = std::env::temp_dir().join(format!("golive-secret-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(dir.join("s.md"), DRILL).expect("runbook");
    let golive = |args: &[&str]| -> Output {
        Command::new(env!("CARGO_BIN_EXE_golive"))
            .args(args)
            .current_dir(&dir)
            .env(
                "GOLIVE_STORE",
                format!("sqlite://{}", dir.join("golive.db").display()),
            )
            .env("T", secret)
            .output()
            .expect("golive")
    };
    let mut seen = Vec::new();
    let mut keep = |what: String, out: Output| {
        seen.push((
            format!("{what} stdout"),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        ));
        seen.push((
            format!("{what} stderr"),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ));
        out
    };
    let secret_arg = ["--secret", "TEST_TOKEN=env:T"];
    let plan = keep(
        "plan".into(),
        golive(&[&["plan", "s.md"][..], &secret_arg].concat()),
    );
    assert_eq!(
        plan.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&plan.stderr)
    );
    for format in ["text", "json", "junit"] {
        let args = [
            &["run", "s.md", "--allow-commands", "--format", format][..],
            &secret_arg,
        ]
        .concat();
        let out = keep(format!("run --format {format}"), golive(&args));
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    for format in ["md", "json", "html", "junit"] {
        let out = keep(
            format!("report --format {format}"),
            golive(&["report", "--format", format]),
        );
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let rows = Command::new("sqlite3")
        .arg(dir.join("golive.db"))
        .arg("SELECT * FROM events; SELECT * FROM deployments;")
        .output()
        .expect("sqlite3");
    assert!(rows.status.success());
    let rows = String::from_utf8_lossy(&rows.stdout).into_owned();
    assert!(
        rows.contains("[redacted]"),
        "the command printed the secret and it was recorded: {rows}"
    );
    seen.push(("the store".into(), rows));
    let _ = std::fs::remove_dir_all(&dir);
    seen
}

fn assert_no_encoding(secret: &str, seen: &[(String, String)]) {
    for (what, text) in seen {
        for form in encodings(secret) {
            assert!(
                !text.contains(&form),
                "the secret leaked into {what} as {form:?}:\n{text}"
            );
        }
    }
}

/// The reproduction: `T="pa'ss\$word" golive plan s.md --secret
/// TEST_TOKEN=env:T` showed `echo 'pa'\''ss$word' …`.
#[test]
fn secrets_in_escaped_form() {
    let secret = "pa'ss$word\"`x`\\y";
    assert_no_encoding(secret, &outputs_of_a_run("escaped", secret));
}

#[test]
fn an_empty_secret_is_refused_and_a_short_one_is_warned_of() {
    let dir = std::env::temp_dir().join(format!("golive-secret-short-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(dir.join("s.md"), DRILL).expect("runbook");
    let plan = |value: &str| {
        Command::new(env!("CARGO_BIN_EXE_golive"))
            .args(["plan", "s.md", "--secret", "TEST_TOKEN=env:T"])
            .current_dir(&dir)
            .env("T", value)
            .output()
            .expect("golive")
    };
    let out = plan("");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--secret TEST_TOKEN: the value is empty"),
        "{err}"
    );
    let out = plan("e");
    assert_eq!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("warning: --secret TEST_TOKEN: its value has 1 characters"),
        "{err}"
    );
    let out = plan("long enough");
    assert!(String::from_utf8_lossy(&out.stderr).is_empty());
    let _ = std::fs::remove_dir_all(&dir);
}

mod drawn {
    use super::*;
    use proptest::prelude::*;

    fn secret() -> impl Strategy<Value = String> {
        prop::collection::vec(
            prop_oneof![
                Just("'"),
                Just("\""),
                Just("$"),
                Just("`"),
                Just("\\"),
                Just("\n"),
                Just("é"),
                Just("漢字"),
                Just("\u{1F512}"),
                Just("&"),
                Just("<"),
                Just("%"),
                Just("$(x)"),
                Just(" "),
                "[a-z0-9]{1,6}".prop_map(|s| Box::leak(s.into_boxed_str()) as &str),
            ],
            4..12,
        )
        .prop_map(|parts| format!("k{}", parts.concat()))
        .prop_filter("at least 8 characters, no blank edges", |s| {
            s.chars().count() >= 8 && s.trim() == s && !s.ends_with('\n')
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 12, failure_persistence: None, ..ProptestConfig::default() })]

        /// Secrets with quotes, `$`, backticks, backslashes, unicode and
        /// newlines appear in no encoding in stdout, stderr, any report
        /// format or any store row.
        #[test]
        fn drawn_secrets_leave_in_no_encoding(secret in secret()) {
            assert_no_encoding(&secret, &outputs_of_a_run("drawn", &secret));
        }
    }
}
