//! `golive run` on the annotated reference checklist, against a local
//! stand-in started by the test: an HTTPS service with a test CA, an HTTP
//! server that redirects to it, a DNS server, and a git repository.

mod common;

use common::root;
use common::standin::{ROUTING_KEY, TOKEN, no_secret, run_seed, stand_in, store_of};
use serde_json::Value;
use std::process::Command;

#[tokio::test(flavor = "multi_thread")]
async fn every_automated_check_of_the_seed_passes_against_the_stand_in() {
    let s = stand_in("v1.1.0").await;
    let out = tokio::task::block_in_place(|| {
        run_seed(
            &s,
            &store_of(&s),
            "1.1.0",
            &["--allow-commands", "--format", "json"],
        )
    });
    no_secret(&out);
    let v: Value = serde_json::from_slice(&out.stdout).expect("json");
    let failing: Vec<&Value> = v["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .filter(|c| c["outcome"] != "passed")
        .collect();
    assert!(
        failing.is_empty(),
        "{failing:#?}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(v["summary"]["passed"], 33, "items with checks");
    assert_eq!(v["summary"]["failed"], 0);
    assert_eq!(v["summary"]["error"], 0);
    assert_eq!(v["summary"]["manual"], 94, "the rest wait for a person");
    let ssl = v["checks"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["address"] == "1.2.2"))
        .expect("ssl check");
    assert!(
        ssl["fills"]["Certificate expiry date"]
            .as_str()
            .is_some_and(|d| d.ends_with('Z'))
    );
    assert_eq!(ssl["fills"]["Certificate matches domain"], "localhost");
}

/// A run is recorded as a deployment whose event chain `golive audit verify`
/// checks; an edit made with sqlite3 is found and named; no secret is stored.
#[tokio::test(flavor = "multi_thread")]
async fn runs_are_recorded_and_the_record_is_tamper_evident() {
    let s = stand_in("v1.1.0").await;
    let out = tokio::task::block_in_place(|| {
        run_seed(
            &s,
            &store_of(&s),
            "1.1.0",
            &["--only", "smoke-testing-checklist"],
        )
    });
    assert_eq!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("recorded as deployment d-"), "{err}");
    let audit = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_golive"))
            .args(["audit", "verify"])
            .args(args)
            .env("GOLIVE_STORE", store_of(&s))
            .output()
            .expect("golive audit")
    };
    let ok = audit(&[]);
    assert_eq!(ok.status.code(), Some(0));
    let text = String::from_utf8_lossy(&ok.stdout);
    assert!(
        text.contains(": 17 events, chain intact"),
        "started + 15 checks + finished: {text}"
    );
    let db = s.pki.dir.join("golive.db");
    let dump = Command::new("sqlite3")
        .arg(&db)
        .arg("SELECT * FROM events; SELECT * FROM deployments;")
        .output()
        .expect("sqlite3");
    let rows = String::from_utf8_lossy(&dump.stdout);
    assert!(
        !rows.contains(TOKEN) && !rows.contains(ROUTING_KEY),
        "a secret reached the store"
    );
    // Test 15 delivered its test alert, with the key, to the stand-in
    let sent = s.received.lock().unwrap_or_else(|e| e.into_inner()).clone();
    assert!(
        sent.iter().any(|r| r.body.contains(ROUTING_KEY)),
        "no test alert reached the receiver: {sent:?}"
    );
    let edit = Command::new("sqlite3")
        .arg(&db)
        .arg("UPDATE events SET actor = 'someone else' WHERE seq = 5")
        .output()
        .expect("sqlite3");
    assert!(edit.status.success());
    let bad = audit(&[]);
    assert_eq!(bad.status.code(), Some(1));
    let text = String::from_utf8_lossy(&bad.stdout);
    assert!(text.contains("TAMPERED: event 5 was edited"), "{text}");
    let missing = audit(&["d-nope"]);
    assert_eq!(missing.status.code(), Some(2));
}

#[tokio::test(flavor = "multi_thread")]
async fn commands_are_skipped_unless_allowed() {
    let s = stand_in("v1.1.0").await;
    let out =
        tokio::task::block_in_place(|| run_seed(&s, &store_of(&s), "1.1.0", &["--format", "json"]));
    let v: Value = serde_json::from_slice(&out.stdout).expect("json");
    let tag = v["checks"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["address"] == "1.1.5"))
        .expect("tag check");
    assert_eq!(tag["outcome"], "skipped");
    assert_eq!(out.status.code(), Some(0));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_version_fails_with_actual_values_and_the_line() {
    let s = stand_in("v1.1.0").await;
    let out = tokio::task::block_in_place(|| {
        run_seed(
            &s,
            &store_of(&s),
            "1.2.0",
            &["--only", "smoke-testing-checklist"],
        )
    });
    no_secret(&out);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("✗ 4.1.2 Test 2: Health Check Passing — failed"),
        "{text}"
    );
    assert!(text.contains("--> examples/aiwg-production.md:"), "{text}");
    assert!(text.contains(r#"json.version = "v1.1.0""#), "{text}");
    assert!(
        text.contains("TOTAL: 12 passed, 2 failed, 0 could not observe"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn junit_has_failures_and_errors_apart() {
    let s = stand_in("v1.1.0").await;
    // nothing listens on this port: the redirect check cannot observe
    // (error), while a wrong version fails (failure)
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let http_url = format!("HTTP_URL=http://127.0.0.1:{closed}/");
    let out = tokio::task::block_in_place(|| {
        run_seed(
            &s,
            &store_of(&s),
            "1.2.0",
            &["--var", &http_url, "--format", "junit"],
        )
    });
    no_secret(&out);
    assert_eq!(out.status.code(), Some(1));
    let xml = String::from_utf8_lossy(&out.stdout);
    assert!(xml.starts_with("<?xml"), "{xml}");
    assert!(
        xml.contains("<failure message=\"expected json.version == &apos;v&apos; + vars.VERSION"),
        "{xml}"
    );
    assert!(
        xml.contains("actual: json.version = &quot;v1.1.0&quot;"),
        "{xml}"
    );
    assert!(xml.contains("failures=\"2\" errors=\"1\""), "{xml}");
    let error_case = format!("name=\"1.3.5 HTTPS enforced — http GET http://127.0.0.1:{closed}/\"");
    let at = xml.find(&error_case).unwrap_or_else(|| panic!("{xml}"));
    assert!(
        xml[at..].contains("<error message=\"connection refused by 127.0.0.1:"),
        "{xml}"
    );
}

#[test]
fn unbound_placeholders_stop_the_run_before_anything_runs() {
    let out = Command::new(env!("CARGO_BIN_EXE_golive"))
        .args([
            "run",
            "examples/aiwg-production.md",
            "--var",
            "VERSION=1.1.0",
        ])
        .current_dir(root())
        .output()
        .expect("golive runs");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("placeholder [DOMAIN] is not bound"), "{err}");
    assert!(err.contains("examples/aiwg-production.md:"), "{err}");
    assert!(out.stdout.is_empty());
}
