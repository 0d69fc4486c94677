//! `golive watch` end to end: a local service whose error rate is made to
//! fail for a while, a sustained rule with a short window, alerts to a local
//! webhook receiver, and the daily health-check report.

mod common;

use golive_testkit::full;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

const ROUTING_KEY: &str = "routing-key-never-shown";

/// A service whose `/metrics` counts 10 requests per scrape; while
/// `faulty(scrape)` holds, 5 of them are 503s.
async fn service(faulty: fn(u64) -> bool) -> golive_testkit::Server {
    let scrapes = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    golive_testkit::http(Arc::new(move |_req| {
        let n = scrapes.fetch_add(1, Ordering::SeqCst) + 1;
        if faulty(n) {
            errors.fetch_add(5, Ordering::SeqCst);
        }
        let e = errors.load(Ordering::SeqCst);
        http::Response::new(full(format!(
            "# TYPE requests_total counter\nrequests_total{{code=\"200\"}} {}\nrequests_total{{code=\"503\"}} {e}\n",
            10 * n - e
        )))
    }))
    .await
}

fn runbook(dir: &Path, port: u16) -> String {
    let path = dir.join("release.md");
    std::fs::write(
        &path,
        format!(
            "# Shop release\n\n## Post-Deployment Verification Checklist (1 items)\n\n- [ ] **No Error Spikes**\n  - Error rate: ________% (target: <1%)\n  ```golive\n  check = \"metrics\"\n  target = \"http://127.0.0.1:{port}/metrics\"\n  interval = \"100ms\"\n  total = \"requests_total\"\n  errors = 'requests_total{{code=~\"5..\"}}'\n  expect = \"error_rate < 0.01\"\n  for = \"1s\"\n  ```\n"
        ),
    )
    .expect("runbook");
    path.display().to_string()
}

async fn golive(dir: &Path, args: Vec<String>) -> std::process::Output {
    let store = format!("sqlite://{}", dir.join("golive.db").display());
    tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_golive"))
            .args(&args)
            .env("GOLIVE_STORE", store)
            .env("GOLIVE_PAGERDUTY_ROUTING_KEY", ROUTING_KEY)
            .output()
            .expect("golive runs")
    })
    .await
    .expect("joined")
}

fn dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("golive-watch-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("dir");
    d
}

/// Each evaluation scrapes twice; the error rate of evaluation `e` is what
/// scrape `2e` added. Scrapes 6 to 24 are faulty: evaluations 3 to 12 fail.
/// With a 300 ms interval and `for = "1s"`, the rule is pending from the
/// 3rd, fires once it has failed for a second, and resolves at the 13th.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fault_goes_pending_then_firing_then_resolved_and_alerts_twice() {
    let svc = service(|n| (6..=24).contains(&n)).await;
    let (hooks, received) = golive_testkit::receiver(202).await;
    let d = dir("fault");
    let rb = runbook(&d, svc.addr.port());
    let reports = d.join("reports");
    let out = golive(
        &d,
        vec![
            "watch".into(),
            rb.clone(),
            "--interval".into(),
            "300ms".into(),
            "--count".into(),
            "16".into(),
            "--webhook".into(),
            format!("slack=http://127.0.0.1:{}/slack", hooks.addr.port()),
            "--webhook".into(),
            format!("pagerduty=http://127.0.0.1:{}/pd", hooks.addr.port()),
            "--report-dir".into(),
            reports.display().to_string(),
        ],
    )
    .await;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    let order: Vec<&str> = stdout
        .lines()
        .filter_map(|l| {
            ["PENDING", "FIRING", "RESOLVED", "CLEARED"]
                .into_iter()
                .find(|w| l.contains(&format!(" {w} 1.1")))
        })
        .collect();
    assert_eq!(order, ["PENDING", "FIRING", "RESOLVED"], "{stdout}");
    assert!(!stdout.contains(ROUTING_KEY) && !stderr.contains(ROUTING_KEY));

    // one alert per hook when it fired, one when it resolved: no storm
    let got = received.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let paths: Vec<&str> = got.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(paths, ["/slack", "/pd", "/slack", "/pd"], "{stderr}");
    let body = |i: usize| -> Value { serde_json::from_str(&got[i].body).expect("json") };
    assert!(
        body(0)["text"]
            .as_str()
            .is_some_and(|t| t.starts_with("[FIRING] 1.1 No Error Spikes")),
        "{}",
        got[0].body
    );
    assert_eq!(body(1)["event_action"], "trigger");
    assert_eq!(body(1)["routing_key"], ROUTING_KEY);
    assert_eq!(body(1)["payload"]["severity"], "critical");
    assert_eq!(body(3)["event_action"], "resolve");
    assert_eq!(body(1)["dedup_key"], body(3)["dedup_key"]);
    assert!(
        body(2)["text"]
            .as_str()
            .is_some_and(|t| t.starts_with("[RESOLVED]"))
    );
    // each alert carries the record's head, which the record still reaches
    let head = body(1)["payload"]["custom_details"]["head"]
        .as_str()
        .unwrap_or_else(|| panic!("no head: {}", got[1].body))
        .to_string();
    assert!(
        body(0)["attachments"][0]["fields"]
            .as_array()
            .is_some_and(|f| f.iter().any(|f| f["title"] == "Record head")),
        "{}",
        got[0].body
    );
    let verified = golive(
        &d,
        vec![
            "audit".into(),
            "verify".into(),
            "--head".into(),
            head.clone(),
        ],
    )
    .await;
    assert_eq!(
        verified.status.code(),
        Some(0),
        "{head}: {}",
        String::from_utf8_lossy(&verified.stdout)
    );

    // the record: every evaluation, the changes, the deliveries with their time
    let report = golive(&d, vec!["report".into(), "--format".into(), "json".into()]).await;
    let text = String::from_utf8_lossy(&report.stdout).into_owned();
    assert!(!text.contains(ROUTING_KEY));
    let v: Value = serde_json::from_str(&text).expect("report json");
    let events = v["events"].as_array().expect("events");
    let of = |kind: &str| events.iter().filter(|e| e["kind"] == kind).count();
    assert_eq!(of("watch.tick"), 16);
    assert_eq!(of("check"), 16);
    let changes: Vec<&str> = events
        .iter()
        .filter(|e| e["kind"] == "watch.state")
        .filter_map(|e| e["data"]["change"].as_str())
        .collect();
    assert_eq!(changes, ["pending", "firing", "resolved"]);
    let sent: Vec<&Value> = events
        .iter()
        .filter(|e| e["kind"] == "alert.sent")
        .collect();
    assert_eq!(sent.len(), 4);
    assert!(
        sent.iter()
            .all(|e| e["data"]["delivery_ms"].as_f64().is_some_and(|ms| ms > 0.0))
    );

    // the day's health-check report
    let file = std::fs::read_dir(&reports)
        .expect("reports")
        .filter_map(Result::ok)
        .find(|e| e.file_name().to_string_lossy().starts_with("health-"))
        .expect("a daily report");
    let daily = std::fs::read_to_string(file.path()).expect("read");
    assert!(daily.starts_with("# Hypercare health check: "), "{daily}");
    assert!(daily.contains("**Evaluations:** 16"), "{daily}");
    assert!(
        daily.contains("| 1.1 No Error Spikes | 16 | 6 | 10 | inactive |"),
        "{daily}"
    );
    assert!(
        daily.contains("| firing | failed: error_rate = 0.5"),
        "{daily}"
    );
    assert!(daily.contains("| slack webhook at 127.0.0.1:"), "{daily}");
    assert_eq!(
        golive(&d, vec!["audit".into(), "verify".into()])
            .await
            .status
            .code(),
        Some(0)
    );
}

/// A window pending when a watch stops continues in the next watch (within
/// two intervals and five seconds), so a restart does not hide a fault;
/// still failing at the end, the watch exits 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_continues_a_pending_window() {
    let svc = service(|_| true).await;
    let d = dir("restart");
    let rb = runbook(&d, svc.addr.port());
    let watch = |count: &str| {
        vec![
            "watch".into(),
            rb.clone(),
            "--interval".into(),
            "300ms".into(),
            "--count".into(),
            count.to_string(),
            "--report-dir".into(),
            d.join("reports").display().to_string(),
        ]
    };
    let out = golive(&d, watch("2")).await;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        stdout.contains(" PENDING 1.1") && !stdout.contains("FIRING"),
        "{stdout}"
    );
    assert_eq!(out.status.code(), Some(0), "pending is not firing yet");
    let out = golive(&d, watch("6")).await;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    // no second PENDING: the window went on from where it was
    assert!(!stdout.contains("PENDING"), "{stdout}");
    assert!(stdout.contains(" FIRING 1.1"), "{stdout}");
    assert_eq!(out.status.code(), Some(1), "it ends firing");
}

/// While a rule stays firing, the alert is repeated every `--remind`, not at
/// every evaluation: fewer alerts than evaluations, more than one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_firing_rule_is_reminded_not_repeated() {
    let svc = service(|_| true).await;
    let (hooks, received) = golive_testkit::receiver(202).await;
    let d = dir("remind");
    let rb = runbook(&d, svc.addr.port());
    let out = golive(
        &d,
        vec![
            "watch".into(),
            rb,
            "--interval".into(),
            "300ms".into(),
            "--count".into(),
            "14".into(),
            "--remind".into(),
            "1s".into(),
            "--webhook".into(),
            format!("slack=http://127.0.0.1:{}/slack", hooks.addr.port()),
            "--report-dir".into(),
            d.join("reports").display().to_string(),
        ],
    )
    .await;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(1), "it ends firing: {stdout}");
    let got = received.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let texts: Vec<String> = got.iter().map(|r| r.body.clone()).collect();
    // the first alert, then reminders (which read as firing again)
    assert!(texts.len() >= 2, "{stdout}\n{texts:?}");
    let firing_evaluations = stdout.lines().filter(|l| l.contains("alert ")).count();
    assert_eq!(firing_evaluations, texts.len());
    assert!(
        texts.len() < 10,
        "one per evaluation would be 10 or more: {texts:?}"
    );
    assert!(
        texts
            .iter()
            .all(|t| t.contains("[FIRING] 1.1 No Error Spikes"))
    );
    assert!(stdout.contains("alert reminder"), "{stdout}");
}
