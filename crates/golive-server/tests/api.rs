//! The API over a real listener, on SQLite and on PostgreSQL: every
//! endpoint, and every refusal the server answers with.

mod common;

use bytes::Bytes;
use common::{Answer, Rig, Stream, auth, unique};
use serde_json::json;

/// Sign `item` as the person of `token` at `version` (None: not said).
async fn sign(rig: &Rig, token: &str, id: &str, item: &str, version: Option<i64>) -> Answer {
    let mut body = json!({ "item": item });
    if let Some(v) = version {
        body["version"] = json!(v);
    }
    rig.json(
        "POST",
        &format!("/api/v1/deployments/{id}/signoffs"),
        Some(token),
        &body,
    )
    .await
}

async fn version(rig: &Rig, token: &str, id: &str) -> i64 {
    let r = rig
        .get(&format!("/api/v1/deployments/{id}"), Some(token))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()["version"].as_i64().unwrap()
}

/// The whole lifecycle through the API, each write recorded in the name
/// of the token's person whatever the body says.
async fn every_endpoint(location: &str) {
    let rig = Rig::start(location).await;
    let (lead, em, rm, ops) = (
        unique("Dana Lead"),
        unique("Emil Manager"),
        unique("Rene Release"),
        unique("Devi Ops"),
    );
    let t_lead = rig.person(&lead, &["Deployment Lead"]).await;
    let t_em = rig.person(&em, &["Engineering Manager"]).await;
    let t_rm = rig.person(&rm, &["Release Manager"]).await;
    let t_ops = rig.person(&ops, &["DevOps Engineer"]).await;

    let me = rig.get("/api/v1/me", Some(&t_rm)).await;
    assert_eq!(me.json()["name"], json!(rm));
    assert_eq!(me.json()["session"], json!(false));

    let id = rig.deployment(&t_lead).await;
    let list = rig.get("/api/v1/deployments", Some(&t_rm)).await;
    assert!(
        list.json()
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["id"] == json!(id) && d["state"] == "PRE-DEPLOYMENT")
    );
    let runbooks = rig.get("/api/v1/runbooks", Some(&t_rm)).await;
    assert!(
        runbooks
            .json()
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["title"] == "Mini Deployment Checklist" && r["items"] == 14)
    );

    // a body naming someone else changes nothing: the token says who
    let r = rig
        .json(
            "POST",
            &format!("/api/v1/deployments/{id}/signoffs"),
            Some(&t_rm),
            &json!({ "item": "1.1.1", "name": "Mallory", "actor": "Mallory" }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.json()["said"][0],
        json!(format!(
            "1.1.1 Release tagged signed by {rm} as Release Manager in deployment {id}"
        ))
    );
    let r = sign(&rig, &t_ops, &id, "1.1.2", None).await;
    assert_eq!(r.status, 200, "{}", r.body);

    let items = rig
        .get(&format!("/api/v1/deployments/{id}/items"), Some(&t_ops))
        .await
        .json();
    let first = items["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["address"] == "1.1.1")
        .unwrap()
        .clone();
    assert_eq!(first["complete"], json!(true));
    assert_eq!(first["signed_by"], json!([rm]));

    let decide = |t: &str| {
        let t = t.to_string();
        let rig = &rig;
        let id = id.clone();
        async move {
            rig.json(
                "POST",
                &format!("/api/v1/deployments/{id}/decision"),
                Some(&t),
                &json!({ "verdict": "go" }),
            )
            .await
        }
    };
    let r = decide(&t_lead).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.json()["said"][0]
            .as_str()
            .unwrap()
            .contains("waiting for: Engineering Manager"),
        "{}",
        r.body
    );
    let r = decide(&t_em).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.json()["said"][0],
        json!(format!(
            "GO: decided by Deployment Lead, Engineering Manager in deployment {id}"
        ))
    );

    for (step, skipped) in [("3.1.1", false), ("3.1.2", true), ("3.2.1", false)] {
        let r = rig
            .json(
                "POST",
                &format!("/api/v1/deployments/{id}/steps"),
                Some(&t_ops),
                &json!({ "step": step, "skipped": skipped, "comment": "cache is cold anyway" }),
            )
            .await;
        assert_eq!(r.status, 200, "{step}: {}", r.body);
        assert!(
            r.json()["said"][0]
                .as_str()
                .unwrap()
                .contains(&format!("by {ops}")),
            "{}",
            r.body
        );
    }
    for item in ["4.1", "4.2", "6.1"] {
        assert_eq!(sign(&rig, &t_ops, &id, item, None).await.status, 200);
    }
    for gate in ["smoke", "verification"] {
        let r = rig
            .json(
                "POST",
                &format!("/api/v1/deployments/{id}/gates"),
                Some(&t_ops),
                &json!({ "gate": gate }),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert!(
            r.json()["said"][0].as_str().unwrap().ends_with("PASS"),
            "{}",
            r.body
        );
        assert_eq!(r.json()["exit"], json!(0));
    }
    let v = version(&rig, &t_ops, &id).await;
    let r = rig
        .json(
            "POST",
            &format!("/api/v1/deployments/{id}/finish"),
            Some(&t_lead),
            &json!({ "version": v }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.json()["said"][0]
            .as_str()
            .unwrap()
            .starts_with(&format!("SUCCESS: deployment {id} took")),
        "{}",
        r.body
    );

    let state = rig
        .get(&format!("/api/v1/deployments/{id}"), Some(&t_ops))
        .await
        .json();
    assert_eq!(state["state"], "SUCCEEDED");
    let events = rig
        .get(&format!("/api/v1/deployments/{id}/events"), Some(&t_ops))
        .await
        .json();
    let events = events["events"].as_array().unwrap().clone();
    let signoff = events
        .iter()
        .find(|e| e["kind"] == "signoff" && e["item"].is_string())
        .expect("a signoff");
    assert_eq!(signoff["actor"], json!(rm));
    assert!(events.iter().all(|e| e["actor"] != "Mallory"));
    let after = rig
        .get(
            &format!("/api/v1/deployments/{id}/events?after={}", events.len() - 2),
            Some(&t_ops),
        )
        .await
        .json();
    assert_eq!(after["events"].as_array().unwrap().len(), 2);

    for (name, mime, needle) in [
        ("report.md", "text/markdown", "Mini Deployment Checklist"),
        ("report.html", "text/html", "<html"),
        ("report.json", "application/json", "\"events\""),
        ("report.junit", "application/xml", "<testsuites"),
    ] {
        let r = rig
            .get(
                &format!("/api/v1/deployments/{id}/reports/{name}"),
                Some(&t_ops),
            )
            .await;
        assert_eq!(r.status, 200, "{name}: {}", r.body);
        assert!(
            r.header("content-type").unwrap().starts_with(mime),
            "{name}"
        );
        assert!(
            r.body.contains(needle),
            "{name}: {}",
            &r.body[..r.body.len().min(300)]
        );
    }
    let md = rig
        .get(
            &format!("/api/v1/deployments/{id}/reports/report.md"),
            Some(&t_ops),
        )
        .await
        .body;
    assert!(md.contains(&rm), "the filled document names the signer");

    let doc = rig.get("/openapi.json", None).await.json();
    assert_eq!(doc["openapi"], "3.1.0");
    for path in [
        "/api/v1/deployments",
        "/api/v1/deployments/{id}",
        "/api/v1/deployments/{id}/items",
        "/api/v1/deployments/{id}/signoffs",
        "/api/v1/deployments/{id}/decision",
        "/api/v1/deployments/{id}/steps",
        "/api/v1/deployments/{id}/gates",
        "/api/v1/deployments/{id}/rollback",
        "/api/v1/deployments/{id}/finish",
        "/api/v1/deployments/{id}/events",
        "/api/v1/deployments/{id}/stream",
        "/api/v1/deployments/{id}/reports/{name}",
        "/api/v1/runbooks",
        "/api/v1/me",
    ] {
        assert!(
            doc["paths"].get(path).is_some(),
            "{path} is not in /openapi.json"
        );
    }
    assert!(doc["components"]["schemas"]["SignRequest"]["properties"]["item"].is_object());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_on_sqlite_and_every_write_names_the_token_s_person() {
    every_endpoint(&common::sqlite("every")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_on_postgres_and_every_write_names_the_token_s_person() {
    every_endpoint(&common::postgres()).await;
}

/// Every refusal the API answers with, with its words.
async fn refusals(location: &str) {
    let mut cfg = golive_server::Config::new("127.0.0.1:0".parse().unwrap(), location);
    cfg.body_limit = 4096;
    let rig = Rig::with(cfg).await;
    let (lead, rm, qa) = (
        unique("Dana Lead"),
        unique("Rene Release"),
        unique("Quinn Tester"),
    );
    let t_lead = rig.person(&lead, &["Deployment Lead"]).await;
    let t_rm = rig.person(&rm, &["Release Manager"]).await;
    let t_qa = rig.person(&qa, &["QA Engineer"]).await;
    let id = rig.deployment(&t_lead).await;
    let path = format!("/api/v1/deployments/{id}/signoffs");

    // 401: no token, a bad one, a revoked one
    let r = rig.get(&format!("/api/v1/deployments/{id}"), None).await;
    assert_eq!(r.status, 401);
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap()
            .contains("golive users add")
    );
    assert_eq!(
        r.header("www-authenticate").as_deref(),
        Some("Bearer realm=\"golive\"")
    );
    assert_eq!(
        rig.get(&format!("/api/v1/deployments/{id}"), Some("glv_0000"))
            .await
            .status,
        401
    );
    let t_gone = rig
        .person(&unique("Gone Person"), &["Release Manager"])
        .await;
    let gone = rig
        .store
        .token(&golive_server::auth::token_hash(&t_gone))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rig.store.revoke(&gone.id).await.unwrap(), 1);
    assert_eq!(sign(&rig, &t_gone, &id, "1.1.1", None).await.status, 401);

    // 403: a role that may not act, in the lifecycle's words; nothing recorded
    let before = version(&rig, &t_lead, &id).await;
    let r = sign(&rig, &t_qa, &id, "1.1.1", None).await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(
        r.json()["message"],
        "1.1.1 Release tagged is for the Release Manager to sign, not the QA Engineer"
    );
    assert_eq!(version(&rig, &t_lead, &id).await, before);

    // 409: the deployment moved on since the version the write saw
    assert_eq!(
        sign(&rig, &t_rm, &id, "1.1.1", Some(before)).await.status,
        200
    );
    let r = sign(&rig, &t_qa, &id, "1.1.2", Some(before)).await;
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(r.json()["message"].as_str().unwrap().contains(&format!(
        "moved on: this was asked at version {before}, it is at version {}",
        before + 1
    )));
    // 409: a step done already, a decision taken already
    assert_eq!(sign(&rig, &t_qa, &id, "1.1.2", None).await.status, 200);
    let t_em = rig
        .person(&unique("Emil Manager"), &["Engineering Manager"])
        .await;
    for t in [&t_lead, &t_em] {
        let r = rig
            .json(
                "POST",
                &format!("/api/v1/deployments/{id}/decision"),
                Some(t),
                &json!({ "verdict": "go" }),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let r = rig
        .json(
            "POST",
            &format!("/api/v1/deployments/{id}/decision"),
            Some(&t_lead),
            &json!({ "verdict": "no-go", "reason": "late" }),
        )
        .await;
    assert_eq!(r.status, 409, "{}", r.body);
    let steps = format!("/api/v1/deployments/{id}/steps");
    let body = json!({ "step": "3.1.1" });
    assert_eq!(
        rig.json("POST", &steps, Some(&t_rm), &body).await.status,
        200
    );
    let r = rig.json("POST", &steps, Some(&t_rm), &body).await;
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(
        r.json()["message"].as_str().unwrap().contains("3.1.1"),
        "{}",
        r.body
    );

    // 413: a body over the limit
    let big = json!({ "item": "1.1.1", "comment": "x".repeat(10_000) });
    let r = rig.json("POST", &path, Some(&t_rm), &big).await;
    assert_eq!(r.status, 413, "{}", r.body);
    assert_eq!(
        r.json()["message"],
        "the request body is over the limit of 4096 bytes"
    );

    // 422: not JSON, and JSON of another shape
    let mut h = auth(Some(&t_rm));
    h.push(("content-type".into(), "application/json".into()));
    let r = rig
        .call("POST", &path, &h, Bytes::from_static(b"{\"item\": "))
        .await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap()
            .starts_with("the request body is not what this endpoint takes")
    );
    let r = rig
        .json("POST", &path, Some(&t_rm), &json!({ "item": 5 }))
        .await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(
        r.json()["message"].as_str().unwrap().contains("item"),
        "{}",
        r.body
    );
    let r = rig
        .json(
            "POST",
            &path,
            Some(&t_rm),
            &json!({ "item": "1.1.1", "result": "maybe" }),
        )
        .await;
    assert_eq!(r.status, 422);
    assert_eq!(
        r.json()["message"],
        "result: `maybe` is not one of done, na, failed"
    );

    // a friendly 404, JSON under /api/, a page elsewhere
    let r = rig.get("/api/v1/deployments/d-nope", Some(&t_rm)).await;
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["message"], "no deployment `d-nope` on this server");
    let r = rig.get("/api/v1/nothing-here", Some(&t_rm)).await;
    assert_eq!(r.status, 404);
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap()
            .contains("/openapi.json")
    );
    let r = rig.get("/nothing-here", None).await;
    assert_eq!(r.status, 404);
    assert!(
        r.body.contains("<h1>404 Not Found</h1>") && r.body.contains("Back to the deployments")
    );

    // 500: a deployment whose runbook the store does not hold; the answer
    // carries a tracking id, the log carries the same id and the cause
    let orphan = rig
        .store
        .create_deployment(&golive_store::NewDeployment {
            runbook_path: "elsewhere.md".into(),
            runbook_sha256: "00".repeat(32),
            started_by: "test".into(),
            vars: json!({}),
        })
        .await
        .unwrap();
    let r = rig
        .get(&format!("/api/v1/deployments/{orphan}"), Some(&t_rm))
        .await;
    assert_eq!(r.status, 500, "{}", r.body);
    let tracking = r.json()["tracking_id"].as_str().unwrap().to_string();
    assert!(
        !r.body.contains("elsewhere.md") && !r.body.contains("sha256"),
        "nothing internal: {}",
        r.body
    );
    let log = String::from_utf8_lossy(&common::log().lock().unwrap()).into_owned();
    let line = log
        .lines()
        .find(|l| l.contains(&tracking))
        .expect("the log has the tracking id");
    assert!(line.contains("golive runbooks add elsewhere.md"), "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_over_http_on_sqlite() {
    refusals(&common::sqlite("refusals")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_over_http_on_postgres() {
    refusals(&common::postgres()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_requests_answer_429_with_retry_after() {
    let mut cfg =
        golive_server::Config::new("127.0.0.1:0".parse().unwrap(), &common::sqlite("429"));
    cfg.rate = golive_server::limit::Rate {
        per_second: 1.0,
        burst: 5.0,
    };
    let rig = Rig::with(cfg).await;
    let t = rig
        .person(&unique("Rene Release"), &["Release Manager"])
        .await;
    let mut answers = Vec::new();
    for _ in 0..8 {
        answers.push(rig.get("/api/v1/me", Some(&t)).await);
    }
    assert!(answers[..5].iter().all(|a| a.status == 200));
    let limited = answers.iter().find(|a| a.status == 429).expect("a 429");
    assert!(
        limited
            .header("retry-after")
            .unwrap()
            .parse::<u64>()
            .unwrap()
            >= 1
    );
    assert!(
        limited.json()["message"]
            .as_str()
            .unwrap()
            .starts_with("too many requests")
    );
    // the health contract is never limited
    for _ in 0..20 {
        assert_eq!(rig.get("/live", None).await.status, 200);
    }
}

/// Two people sign the same item at the same version: one is recorded, the
/// other is told the deployment moved on.
async fn two_at_once(location: &str) {
    let rig = Rig::start(location).await;
    let lead = rig.person(&unique("Dana Lead"), &["Deployment Lead"]).await;
    let a = rig.person(&unique("Ann Ops"), &["DevOps Engineer"]).await;
    let b = rig.person(&unique("Bo Ops"), &["DevOps Engineer"]).await;
    for _ in 0..3 {
        let id = rig.deployment(&lead).await;
        let v = version(&rig, &a, &id).await;
        let (ra, rb) = tokio::join!(
            sign(&rig, &a, &id, "1.1.2", Some(v)),
            sign(&rig, &b, &id, "1.1.2", Some(v))
        );
        let mut statuses = [ra.status, rb.status];
        statuses.sort();
        assert_eq!(statuses, [200, 409], "{} / {}", ra.body, rb.body);
        let loser = if ra.status == 409 { &ra } else { &rb };
        assert!(
            loser.json()["message"]
                .as_str()
                .unwrap()
                .contains("moved on"),
            "{}",
            loser.body
        );
        let events = rig
            .get(&format!("/api/v1/deployments/{id}/events"), Some(&a))
            .await
            .json();
        let signed: Vec<_> = events["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["kind"] == "signoff")
            .collect();
        assert_eq!(signed.len(), 1, "one sign-off recorded");
        assert_eq!(version(&rig, &a, &id).await, v + 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_people_signing_the_same_item_at_once_on_sqlite_one_is_recorded_the_other_gets_409() {
    two_at_once(&common::sqlite("race")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_people_signing_the_same_item_at_once_on_postgres_one_is_recorded_the_other_gets_409() {
    two_at_once(&common::postgres()).await;
}

/// A dropped stream resumed with Last-Event-ID misses nothing and repeats
/// nothing.
async fn resumable(location: &str) {
    let rig = Rig::start(location).await;
    let lead = rig.person(&unique("Dana Lead"), &["Deployment Lead"]).await;
    let rm = rig
        .person(&unique("Rene Release"), &["Release Manager"])
        .await;
    let id = rig.deployment(&lead).await;
    let stream_path = format!("/api/v1/deployments/{id}/stream");
    let mut s = Stream::open(rig.addr, &stream_path, &auth(Some(&rm))).await;
    assert_eq!(s.status, 200);
    assert_eq!(sign(&rig, &rm, &id, "1.1.1", None).await.status, 200);
    let (seen, data) = tokio::time::timeout(std::time::Duration::from_secs(10), s.next())
        .await
        .expect("an event")
        .expect("open");
    assert_eq!(data["kind"], "signoff");
    drop(s); // the connection drops
    // while nobody listens
    assert_eq!(sign(&rig, &lead, &id, "1.1.2", None).await.status, 200);
    let mut h = auth(Some(&rm));
    h.push(("last-event-id".into(), seen.to_string()));
    let mut s = Stream::open(rig.addr, &stream_path, &h).await;
    let (next, data) = tokio::time::timeout(std::time::Duration::from_secs(10), s.next())
        .await
        .expect("the missed event")
        .expect("open");
    assert_eq!(next, seen + 1, "resumes right after the last seen");
    assert_eq!(data["kind"], "signoff");
    // a write from another process (the CLI on the same store) reaches it too
    let d = golive_deploy::open_stored(&rig.store, Some(&id))
        .await
        .unwrap();
    d.store
        .append(
            &id,
            &[
                golive_store::NewEvent::new("note", json!({ "text": "from the terminal" }))
                    .actor("cli"),
            ],
        )
        .await
        .unwrap();
    let (n, data) = tokio::time::timeout(std::time::Duration::from_secs(10), s.next())
        .await
        .expect("the CLI's event")
        .expect("open");
    assert_eq!((n, data["kind"].as_str()), (seen + 2, Some("note")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_stream_resumes_from_last_event_id_on_sqlite() {
    resumable(&common::sqlite("sse")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_stream_resumes_from_last_event_id_on_postgres() {
    resumable(&common::postgres()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_health_contract_and_a_graceful_shutdown_that_ends_streams() {
    let mut rig = Rig::start(&common::sqlite("health")).await;
    assert_eq!(rig.get("/live", None).await.body, "ok\n");
    assert_eq!(rig.get("/ready", None).await.status, 200);
    let h = rig.get("/health", None).await.json();
    assert_eq!(
        (h["status"].as_str(), h["checks"]["store"].as_str()),
        (Some("ok"), Some("ok"))
    );
    assert_eq!(
        rig.get("/version", None).await.json()["version"],
        env!("CARGO_PKG_VERSION")
    );
    let lead = rig.person(&unique("Dana Lead"), &["Deployment Lead"]).await;
    let ops = rig.person(&unique("Devi Ops"), &["DevOps Engineer"]).await;
    let id = rig.deployment(&lead).await;
    let mut s = Stream::open(
        rig.addr,
        &format!("/api/v1/deployments/{id}/stream"),
        &auth(Some(&ops)),
    )
    .await;
    assert_eq!(sign(&rig, &ops, &id, "1.1.2", None).await.status, 200);
    assert!(s.next().await.is_some());
    let m = rig.get("/metrics", None).await;
    assert!(
        m.header("content-type")
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    assert!(m.body.contains("golive_http_requests_total{method=\"POST\",route=\"/api/v1/deployments/{id}/signoffs\",status=\"200\"} 1"), "{}", m.body);
    assert!(
        m.body
            .contains("golive_http_request_duration_seconds_bucket{route=\"/live\",le=\"+Inf\"} 1"),
        "{}",
        m.body
    );
    assert!(m.body.contains("golive_sse_clients 1"), "{}", m.body);
    // the deployment's creation and the sign-off
    assert!(
        m.body.contains("golive_events_appended_total 2"),
        "{}",
        m.body
    );
    // shutdown: the stream ends cleanly and the server returns
    rig.stop().await;
    assert!(
        tokio::time::timeout(std::time::Duration::from_secs(5), s.next())
            .await
            .expect("the stream ends")
            .is_none()
    );
    assert!(
        tokio::net::TcpStream::connect(rig.addr).await.is_err(),
        "no longer listening"
    );
}

/// The rollback through the API: the manual authority signs, role by role,
/// then the Rollback Steps and the end.
async fn a_rollback(location: &str) {
    let rig = Rig::start(location).await;
    let t_lead = rig.person(&unique("Dana Lead"), &["Deployment Lead"]).await;
    let t_em = rig
        .person(&unique("Emil Manager"), &["Engineering Manager"])
        .await;
    let t_rm = rig
        .person(&unique("Rene Release"), &["Release Manager"])
        .await;
    let t_qa = rig.person(&unique("Quinn Tester"), &["QA Engineer"]).await;
    let id = rig.deployment(&t_lead).await;
    assert_eq!(sign(&rig, &t_rm, &id, "1.1.1", None).await.status, 200);
    assert_eq!(sign(&rig, &t_rm, &id, "1.1.2", None).await.status, 200);
    for t in [&t_lead, &t_em] {
        let r = rig
            .json(
                "POST",
                &format!("/api/v1/deployments/{id}/decision"),
                Some(t),
                &json!({ "verdict": "go" }),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let path = format!("/api/v1/deployments/{id}/rollback");
    let r = rig
        .json(
            "POST",
            &path,
            Some(&t_qa),
            &json!({ "reason": "errors up" }),
        )
        .await;
    assert_eq!(r.status, 403, "a role outside the authority: {}", r.body);
    let r = rig
        .json(
            "POST",
            &path,
            Some(&t_lead),
            &json!({ "reason": "errors up" }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.json()["said"][0]
            .as_str()
            .unwrap()
            .contains("waiting for the rest of"),
        "{}",
        r.body
    );
    let r = rig
        .json(
            "POST",
            &path,
            Some(&t_em),
            &json!({ "reason": "errors up" }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.json()["said"][0]
            .as_str()
            .unwrap()
            .starts_with("ROLLBACK INITIATED by"),
        "{}",
        r.body
    );
    let state = rig
        .get(&format!("/api/v1/deployments/{id}"), Some(&t_qa))
        .await
        .json();
    assert_eq!(state["state"], "ROLLING BACK");
    for step in ["7.2.1", "7.2.2"] {
        let r = rig
            .json(
                "POST",
                &format!("/api/v1/deployments/{id}/steps"),
                Some(&t_lead),
                &json!({ "step": step }),
            )
            .await;
        assert_eq!(r.status, 200, "{step}: {}", r.body);
    }
    // the last Rollback Step ends it; finishing again is refused
    let state = rig
        .get(&format!("/api/v1/deployments/{id}"), Some(&t_qa))
        .await
        .json();
    assert_eq!(state["state"], "ROLLED BACK");
    let r = rig
        .json(
            "POST",
            &format!("/api/v1/deployments/{id}/finish"),
            Some(&t_lead),
            &json!({}),
        )
        .await;
    assert_eq!(r.status, 409, "{}", r.body);
    assert_eq!(r.json()["message"], "the deployment has ended");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollback_through_the_api_on_sqlite() {
    a_rollback(&common::sqlite("rollback")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollback_through_the_api_on_postgres() {
    a_rollback(&common::postgres()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_https_with_the_certificate_it_is_given() {
    let pki = golive_testkit::Pki::new();
    let (cert, key) = pki.leaf_files(&["localhost", "127.0.0.1"], "serve");
    let mut cfg =
        golive_server::Config::new("127.0.0.1:0".parse().unwrap(), &common::sqlite("tls"));
    cfg.tls = Some((cert, key));
    let rig = Rig::with(cfg).await;
    let ca = pki.ca_file.display().to_string();
    let (status, body) = golive_probe::request(
        "GET",
        &format!("https://127.0.0.1:{}/live", rig.addr.port()),
        &[],
        None,
        Some(&ca),
    )
    .await
    .expect("https");
    assert_eq!((status, body.as_slice()), (200, b"ok\n".as_slice()));
    // plain HTTP on the TLS port gets no answer
    let plain = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        golive_probe::request(
            "GET",
            &format!("http://127.0.0.1:{}/live", rig.addr.port()),
            &[],
            None,
            None,
        ),
    )
    .await;
    assert!(
        !matches!(plain, Ok(Ok((200, _)))),
        "no plain answer on the TLS port"
    );
    // a bad key file is refused, naming the flag
    let mut bad =
        golive_server::Config::new("127.0.0.1:0".parse().unwrap(), &common::sqlite("tls-bad"));
    let junk = common::folder("tls-junk").join("junk.pem");
    std::fs::write(&junk, "not a key").unwrap();
    bad.tls = Some((pki.ca_file.clone(), junk));
    let e = golive_server::Server::bind(bad)
        .await
        .err()
        .expect("refused");
    assert!(e.starts_with("--tls-key"), "{e}");
}
