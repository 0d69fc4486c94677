//! `golive serve` with channels: the server sends the communication plan
//! from one worker, after writes through the API and on its timer (the
//! status update every interval the document states), to a real receiver.

mod common;

use common::{MINI, Rig, sqlite, unique};
use serde_json::{Value, json};
use std::time::Duration;

/// The mini runbook with a communication plan whose updates go every 2
/// seconds.
fn runbook() -> String {
    MINI.replace(
        "## Final Sign-off",
        "## Communication Plan\n\n### Before Deployment (T-24 Hours)\n\n**Stakeholder Notification:**\n- [ ] **To:** Deployment Lead\n- [ ] **Subject:** \"Mini scheduled: [DATE] [TIME]\"\n- [ ] **Sent by:** ________ **Time:** ____\n\n### During Deployment (Every 2 Seconds)\n\n**Updates Required:**\n- [ ] T+0: Deployment started\n\n### After Deployment\n\n**Success Notification:**\n- [ ] **To:** Stakeholders\n- [ ] **Subject:** \"Mini deployed\"\n- [ ] **Sent by:** ________ **Time:** ____\n\n## Final Sign-off",
    )
}

/// The keys the receiver took so far.
fn keys(seen: &std::sync::Mutex<Vec<golive_testkit::Hooked>>) -> Vec<String> {
    seen.lock()
        .unwrap()
        .iter()
        .map(|h| {
            let v: Value = serde_json::from_str(&h.body).unwrap();
            v["key"].as_str().unwrap().to_string()
        })
        .collect()
}

/// Wait (up to 30 s) until the receiver took a message whose key `want`s.
async fn wait_for(
    seen: &std::sync::Mutex<Vec<golive_testkit::Hooked>>,
    want: &dyn Fn(&str) -> bool,
) {
    for _ in 0..300 {
        if keys(seen).iter().any(|k| want(k)) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("never sent: {:?}", keys(seen));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_sends_after_each_write_and_every_interval() {
    let (hooks, seen) = golive_testkit::scripted_receiver(&[]).await;
    let pki = golive_testkit::Pki::new();
    let smtp = golive_testkit::SmtpServer::start(&pki, "bot", "pa55");
    let mut cfg = golive_server::Config::new("127.0.0.1:0".parse().unwrap(), &sqlite("notify"));
    cfg.notify = golive_deploy::channel::Channel::parse_all(
        &[
            format!("webhook=http://{}/hook/T0KEN", hooks.addr),
            format!(
                "email=smtp://bot@127.0.0.1:{}?from=golive@example.test&ca={}",
                smtp.port,
                pki.ca_file.display()
            ),
        ],
        &|k| (k == "GOLIVE_SMTP_PASSWORD").then(|| "pa55".to_string()),
    )
    .unwrap();
    // who "Stakeholders" are, as `golive serve --groups FILE` reads them
    cfg.groups = golive_engine::roster::Roster::groups_from_toml(
        "[groups]\n\"Stakeholders\" = [\"exec@example.test\", \"cto@example.test\"]\n",
        "groups.toml",
    )
    .unwrap();
    cfg.notify_tick = Duration::from_millis(200);
    let mut rig = Rig::with(cfg).await;
    let t_lead = rig.person(&unique("Dana Lead"), &["Deployment Lead"]).await;
    let t_em = rig
        .person(&unique("Emil Manager"), &["Engineering Manager"])
        .await;
    let t_rm = rig
        .person(&unique("Rene Release"), &["Release Manager"])
        .await;
    let id = rig.deployment_of(&t_lead, &runbook()).await;
    // a start that is no time is refused, naming the field
    let r = rig
        .json(
            "POST",
            "/api/v1/runbooks",
            Some(&t_lead),
            &json!({ "path": "mini.md", "text": runbook() }),
        )
        .await;
    let sha = r.json()["sha256"].as_str().unwrap().to_string();
    let r = rig
        .json(
            "POST",
            "/api/v1/deployments",
            Some(&t_lead),
            &json!({ "runbook": sha, "at": "tomorrow" }),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(
        r.body.contains("at: `tomorrow` is not a time"),
        "{}",
        r.body
    );
    // scheduled: the announcement goes at once, filled with the start
    let scheduled = rig
        .json(
            "POST",
            "/api/v1/deployments",
            Some(&t_lead),
            &json!({ "runbook": sha, "at": "2026-12-02T14:00:00Z" }),
        )
        .await;
    assert_eq!(scheduled.status, 201, "{}", scheduled.body);
    wait_for(&seen, &|k| k == "announcement").await;
    let subject = seen.lock().unwrap().iter().find_map(|h| {
        let v: Value = serde_json::from_str(&h.body).unwrap();
        (v["key"] == "announcement").then(|| v["subject"].as_str().unwrap().to_string())
    });
    assert_eq!(
        subject.as_deref(),
        Some("Mini scheduled: 2026-12-02 14:00 UTC")
    );
    seen.lock().unwrap().clear();
    for item in ["1.1.1", "1.1.2"] {
        let r = rig
            .json(
                "POST",
                &format!("/api/v1/deployments/{id}/signoffs"),
                Some(&t_rm),
                &json!({ "item": item }),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    assert!(keys(&seen).is_empty(), "nothing is due before GO");
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
    // after the write that took GO
    wait_for(&seen, &|k| k == "status:go").await;
    // and by the timer, every 2 seconds as the document says
    wait_for(&seen, &|k| k.starts_with("status:t+") && k.ends_with('s')).await;
    let all = keys(&seen);
    assert_eq!(all[0], "status:go", "{all:?}");
    let mut unique_keys = all.clone();
    unique_keys.sort();
    unique_keys.dedup();
    assert_eq!(unique_keys.len(), all.len(), "each once: {all:?}");
    // the milestone (T+0) went by email too, to the group the document names
    let mut mails = smtp.messages();
    for _ in 0..100 {
        if !mails.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        mails = smtp.messages();
    }
    let (envelope, raw) = mails.first().expect("an email");
    assert_eq!(
        envelope["to"],
        json!(["exec@example.test", "cto@example.test"]),
        "{raw}"
    );
    assert_eq!(envelope["tls"], true);
    // the deployment shows each delivery
    let r = rig
        .get(&format!("/api/v1/deployments/{id}/events"), Some(&t_lead))
        .await;
    assert_eq!(r.status, 200);
    let events = r.json();
    let sent = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "notice.sent")
        .count();
    assert!(sent >= 2, "{}", r.body);
    assert!(!r.body.contains("T0KEN"), "the URL's token is never shown");
    rig.stop().await;
}
