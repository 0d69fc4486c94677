//! What the page shows, read over a real listener: a viewer only looks,
//! a failed check shows expected beside actual, the phases show their
//! steps against the budgets.

mod common;

use bytes::Bytes;
use common::{Rig, unique};
use serde_json::json;

async fn page(rig: &Rig, token: &str, id: &str) -> String {
    let r = rig
        .call(
            "POST",
            "/login",
            &[(
                "content-type".into(),
                "application/x-www-form-urlencoded".into(),
            )],
            Bytes::from(format!("token={token}")),
        )
        .await;
    let c = r
        .header("set-cookie")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let r = rig
        .call(
            "GET",
            &format!("/d/{id}"),
            &[("cookie".into(), c)],
            Bytes::new(),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_sees_the_deployment_and_no_form_and_may_not_write() {
    let rig = Rig::start(&common::sqlite("viewer")).await;
    let lead = rig.person(&unique("Dana Lead"), &["Deployment Lead"]).await;
    let viewer = rig.person(&unique("Pat Product"), &["viewer"]).await;
    let id = rig.deployment(&lead).await;
    let body = page(&rig, &viewer, &id).await;
    assert!(body.contains("Mini Deployment Checklist") && body.contains("id=\"count-1\""));
    assert!(!body.contains("action=\"/d/"), "no form for a viewer");
    assert!(body.contains("You view this deployment"));
    let lead_page = page(&rig, &lead, &id).await;
    assert!(
        lead_page.contains(&format!("action=\"/d/{id}/sign\"")),
        "the lead sees 1.1.2's form"
    );
    let r = rig
        .json(
            "POST",
            &format!("/api/v1/deployments/{id}/signoffs"),
            Some(&viewer),
            &json!({ "item": "1.1.2" }),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap()
            .contains("only views deployments")
    );
    assert_eq!(rig.store.events(&id).await.unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_check_shows_expected_beside_actual_and_steps_show_their_budgets() {
    let rig = Rig::start(&common::sqlite("failed-check")).await;
    let lead = rig.person(&unique("Dana Lead"), &["Deployment Lead"]).await;
    let em = rig
        .person(&unique("Emil Manager"), &["Engineering Manager"])
        .await;
    let rm = rig
        .person(&unique("Rene Release"), &["Release Manager"])
        .await;
    let id = rig.deployment(&lead).await;
    // a check's result as `golive run` records it
    rig.store
        .append(
            &id,
            &[golive_store::NewEvent::new(
                "check",
                json!({
                    "outcome": "failed", "kind": "http", "target": "https://shop.example.test/health",
                    "expect": "status == 200", "actual": { "status": 503 }, "line": 10,
                }),
            )
            .item("pre-deployment-checklist/code-readiness/release-tagged")
            .actor("golive")],
        )
        .await
        .unwrap();
    let body = page(&rig, &lead, &id).await;
    let failed = &body[body.find("id=\"failed\"").expect("a failed-checks section")..];
    assert!(
        failed.contains("status == 200") && failed.contains("&quot;status&quot;:503"),
        "{failed}"
    );
    assert!(
        failed.contains("1.1.1") && failed.contains("failed"),
        "{failed}"
    );
    // GO, then a step: the phase lists its steps with their time
    for (t, item) in [(&rm, "1.1.1"), (&rm, "1.1.2")] {
        let r = rig
            .json(
                "POST",
                &format!("/api/v1/deployments/{id}/signoffs"),
                Some(t),
                &json!({ "item": item, "comment": "checked by hand" }),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    for t in [&lead, &em] {
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
            &format!("/api/v1/deployments/{id}/steps"),
            Some(&lead),
            &json!({ "step": "3.1.1" }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let body = page(&rig, &lead, &id).await;
    let timeline =
        &body[body.find("id=\"timeline\"").unwrap()..body.find("id=\"rollback\"").unwrap()];
    assert!(
        timeline.contains("Phase 1: Preparation")
            && timeline.contains("1/2")
            && timeline.contains("of 5m00s"),
        "{timeline}"
    );
    assert!(
        timeline.contains("✓ 3.1.1 Step 1.1: Announce the deployment"),
        "{timeline}"
    );
    assert!(
        timeline.contains("· 3.2.1 Step 2.1: Deploy the new version"),
        "{timeline}"
    );
    assert!(body.contains("Next step 3.1.2"), "the next step's form");
}
