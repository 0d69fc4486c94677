use super::*;

fn reference() -> Runbook {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/aiwg-production.md"
    ))
    .expect("reference");
    golive_runbook::parse_runbook("ref.md", &text)
}

fn row() -> golive_store::Deployment {
    golive_store::Deployment {
        id: "d-1".into(),
        runbook_path: "ref.md".into(),
        runbook_sha256: String::new(),
        started_by: "ops".into(),
        created_at: "2026-12-01T14:00:00Z".into(),
        vars: json!({ "VERSION": "1.1.0" }),
        head_seq: 0,
        head_hash: String::new(),
        genesis: String::new(),
        binding: golive_store::Binding::Covered,
    }
}

/// A record of `events` (kind, at, data), numbered from 1.
fn kept(events: &[(&str, &str, Value)]) -> Kept {
    let evs: Vec<Event> = events
        .iter()
        .enumerate()
        .map(|(n, (kind, at, data))| Event {
            deployment: "d-1".into(),
            seq: n as i64 + 1,
            at: at.to_string(),
            kind: kind.to_string(),
            item: data["item"].as_str().map(str::to_string),
            actor: Some("ops".into()),
            data: data.clone(),
            prev_hash: String::new(),
            hash: format!("h{n}"),
        })
        .collect();
    Kept::replay(&evs)
}

fn at(s: &str) -> jiff::Timestamp {
    s.parse().expect("time")
}

#[test]
fn go_then_every_interval_the_latest_slot_only() {
    let rb = reference();
    let k = kept(&[(
        "decision",
        "2026-12-01T14:00:00Z",
        json!({ "verdict": "GO" }),
    )]);
    assert_eq!(
        due_keys(&rb, &k, at("2026-12-01T14:05:00Z"), None),
        ["status:go"]
    );
    // (T+0 was due at GO: more than an interval later it is old news)
    assert_eq!(
        due_keys(&rb, &k, at("2026-12-01T14:16:00Z"), None),
        ["status:t+15"]
    );
    // 47 minutes in: T+45, not T+15 and T+30 late
    assert_eq!(
        due_keys(&rb, &k, at("2026-12-01T14:47:00Z"), None),
        ["status:t+45"]
    );
    // the interval given overrides the document's
    assert_eq!(
        due_keys(&rb, &k, at("2026-12-01T14:02:30Z"), Some(60)),
        ["status:t+2"]
    );
}

#[test]
fn a_scheduled_deployment_announces_before_the_decision() {
    let rb = reference();
    let k = kept(&[(
        "deployment.scheduled",
        "2026-11-30T14:00:00Z",
        json!({ "start": "2026-12-01T14:00:00Z" }),
    )]);
    let now = at("2026-11-30T14:00:01Z");
    let due = due(&rb, &row(), &k, now, None);
    let keys: Vec<&str> = due.iter().map(|m| m.key.as_str()).collect();
    assert_eq!(keys, ["announcement", "support-alert"]);
    let a = &due[0];
    assert_eq!(
        a.subject,
        "Production Deployment Scheduled: 2026-12-01 14:00 UTC"
    );
    assert_eq!(a.to, ["Executive team", "Product team", "Customer success"]);
    assert!(
        a.body
            .contains("- Deployment window: 2026-12-01 14:00 UTC - 15:00 UTC"),
        "{}",
        a.body
    );
    assert_eq!(a.items.len(), 4);
    assert_eq!(due[1].to, ["Support team"]);
}

#[test]
fn the_success_notice_fills_the_documents_content() {
    let rb = reference();
    let k = kept(&[
        (
            "decision",
            "2026-12-01T14:00:00Z",
            json!({ "verdict": "GO" }),
        ),
        (
            "gate",
            "2026-12-01T14:30:00Z",
            json!({ "stage": "smoke", "passed": 20, "total": 20, "target": 19, "result": "pass" }),
        ),
        (
            "deployment.ended",
            "2026-12-01T14:42:00Z",
            json!({ "outcome": "SUCCESS", "duration_seconds": 2520.0 }),
        ),
    ]);
    let m = message_for(&rb, &row(), &k, at("2026-12-01T14:42:00Z"), "success");
    assert_eq!(m.subject, "Production Deployment Complete: v1.1.0");
    for line in [
        "- Deployment status: SUCCESS",
        "- Deployment duration: 42.0 minutes",
        "- Smoke test results: 20/20 passed",
        "- Version deployed: v1.1.0",
        "- Known issues: NONE",
    ] {
        assert!(m.body.contains(line), "{line}\n{}", m.body);
    }
    assert_eq!(m.to, ["All stakeholders"]);
    // the Sent by item, and the T+60 update it is
    assert!(
        m.items
            .iter()
            .any(|i| i.ends_with("success-notification/sent-by"))
    );
    assert!(m.items.iter().any(|i| i.contains("t-60")), "{:?}", m.items);
    let keys = due_keys(&rb, &k, at("2026-12-01T14:42:00Z"), None);
    assert_eq!(keys[keys.len() - 2..], ["success", "report"]);
    assert!(message_for(&rb, &row(), &k, at("2026-12-01T14:42:00Z"), "report").attach_report);
}

#[test]
fn the_rollback_announcement_says_why_and_its_eta() {
    let rb = reference();
    let k = kept(&[
        (
            "decision",
            "2026-12-01T14:00:00Z",
            json!({ "verdict": "GO" }),
        ),
        (
            "rollback.started",
            "2026-12-01T14:20:00Z",
            json!({ "reason": "smoke below target" }),
        ),
    ]);
    let m = message_for(
        &rb,
        &row(),
        &k,
        at("2026-12-01T14:20:00Z"),
        "rollback-initiated",
    );
    assert_eq!(
        m.subject,
        "ROLLBACK INITIATED - smoke below target - ETA 5 minutes"
    );
    assert!(m.milestone);
    // R1's "Rollback announced" and "Stakeholders notified"
    assert_eq!(m.ticks.len(), 2, "{:?}", m.ticks);
    assert_eq!(
        due_keys(&rb, &k, at("2026-12-01T14:20:00Z"), None),
        ["rollback-initiated", "status:t+15"]
    );
}

#[test]
fn status_updates_miss_nothing_fresh_and_flood_nothing_stale() {
    let rb = reference();
    let gate =
        json!({ "stage": "smoke", "passed": 18, "total": 20, "target": 19, "result": "fail" });
    let k = kept(&[
        (
            "decision",
            "2026-12-01T14:00:00Z",
            json!({ "verdict": "GO" }),
        ),
        ("gate", "2026-12-01T14:01:00Z", gate),
    ]);
    assert!(
        due_keys(&rb, &k, at("2026-12-01T14:02:00Z"), None).contains(&"status:gate:2".to_string())
    );
    // an hour later a new process does not send it late
    assert!(
        !due_keys(&rb, &k, at("2026-12-01T14:58:00Z"), None).contains(&"status:gate:2".to_string())
    );
    let m = message_for(&rb, &row(), &k, at("2026-12-01T14:02:00Z"), "status:gate:2");
    assert!(
        m.body
            .starts_with("DEPLOYMENT STATUS UPDATE - 2026-12-01 14:02 UTC\n"),
        "{}",
        m.body
    );
    assert!(
        m.body
            .contains("Issues: smoke gate 18/20, below the target of 19/20"),
        "{}",
        m.body
    );
    assert!(!m.milestone);
}

#[test]
fn without_a_plan_plain_defaults_say_the_same() {
    let rb = golive_runbook::parse_runbook(
        "x.md",
        "## Deployment Procedure\n\n### Phase 1: Go (1 minute)\n\n**Step 1.1: Ship**\n",
    );
    let k = kept(&[
        (
            "decision",
            "2026-12-01T14:00:00Z",
            json!({ "verdict": "GO" }),
        ),
        (
            "deployment.ended",
            "2026-12-01T14:10:00Z",
            json!({ "outcome": "SUCCESS", "duration_seconds": 600.0 }),
        ),
    ]);
    let m = message_for(&rb, &row(), &k, at("2026-12-01T14:10:00Z"), "success");
    assert_eq!(m.subject, "Production deployment complete: v1.1.0");
    assert!(
        m.body.contains("- Deployment duration: 10.0 minutes"),
        "{}",
        m.body
    );
    let s = message_for(&rb, &row(), &k, at("2026-12-01T14:10:00Z"), "status:go");
    assert!(
        s.body
            .starts_with("Deployment status update, 2026-12-01 14:10 UTC"),
        "{}",
        s.body
    );
}

#[test]
fn old_news_is_not_sent_late() {
    let rb = reference();
    let k = kept(&[
        (
            "decision",
            "2026-12-01T14:00:00Z",
            json!({ "verdict": "GO" }),
        ),
        (
            "rollback.started",
            "2026-12-01T14:05:00Z",
            json!({ "reason": "errors" }),
        ),
        (
            "deployment.ended",
            "2026-12-01T14:09:00Z",
            json!({ "outcome": "ROLLED BACK" }),
        ),
    ]);
    // right after: everything
    assert_eq!(
        due_keys(&rb, &k, at("2026-12-01T14:10:00Z"), None),
        [
            "status:go",
            "rollback-initiated",
            "rollback-complete",
            "report"
        ]
    );
    // a day later (a server started over the store): nothing
    assert!(due_keys(&rb, &k, at("2026-12-02T14:10:00Z"), None).is_empty());
}
