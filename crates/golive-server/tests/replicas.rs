//! Several `golive serve` processes on one PostgreSQL: writes through any
//! of them go through the lifecycle's lock and transaction there, so the
//! same sign-off sent to three at once is recorded once; and every stream,
//! on whichever replica, hears every event in order as it commits
//! (LISTEN/NOTIFY): the replicas here poll only once an hour.

mod common;

use common::{Rig, Stream, auth, postgres, unique};
use serde_json::json;
use std::time::Duration;

async fn replica() -> Rig {
    let mut cfg = golive_server::Config::new("127.0.0.1:0".parse().unwrap(), &postgres());
    cfg.poll = Duration::from_secs(3600);
    Rig::with(cfg).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_replicas_record_each_act_once_and_every_stream_hears_every_event() {
    let mut rigs = vec![replica().await, replica().await, replica().await];
    let lead = rigs[0]
        .person(&unique("Dana Lead"), &["Deployment Lead"])
        .await;
    let em = rigs[1]
        .person(&unique("Emil Manager"), &["Engineering Manager"])
        .await;
    let rm = rigs[2]
        .person(&unique("Rene Release"), &["Release Manager"])
        .await;
    let id = rigs[0].deployment(&lead).await;
    let path = format!("/api/v1/deployments/{id}/stream");
    let mut streams = Vec::new();
    for r in &rigs {
        let s = Stream::open(r.addr, &path, &auth(Some(&rm))).await;
        assert_eq!(s.status, 200);
        streams.push(s);
    }

    // the same sign-off through the three at once: one records it
    let sign = |i: usize, item: &'static str| {
        let (addr, rm) = (rigs[i].addr, rm.clone());
        let id = id.clone();
        async move {
            common::call(
                addr,
                "POST",
                &format!("/api/v1/deployments/{id}/signoffs"),
                &[
                    ("authorization".into(), format!("Bearer {rm}")),
                    ("content-type".into(), "application/json".into()),
                ],
                json!({ "item": item }).to_string().into(),
            )
            .await
        }
    };
    let (a, b, c) = tokio::join!(sign(0, "1.1.1"), sign(1, "1.1.1"), sign(2, "1.1.1"));
    let statuses = [a.status, b.status, c.status];
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?} {} {} {}",
        a.body,
        b.body,
        c.body
    );
    assert!(
        [a, b, c]
            .iter()
            .filter(|r| r.status != 200)
            .all(|r| r.body.contains("already signed")),
        "the others are told why"
    );
    // the rest of the way to GO, each act through another replica
    assert_eq!(sign(1, "1.1.2").await.status, 200);
    for (i, t) in [(2, &lead), (0, &em)] {
        let r = rigs[i]
            .json(
                "POST",
                &format!("/api/v1/deployments/{id}/decision"),
                Some(t),
                &json!({ "verdict": "go" }),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    // the record: each act once
    let events = rigs[0].store.events(&id).await.unwrap();
    let head = events.last().unwrap().seq;
    let signoffs = events.iter().filter(|e| e.kind == "signoff").count();
    assert_eq!(signoffs, 2, "each item once");
    assert_eq!(events.iter().filter(|e| e.kind == "decision").count(), 1);

    // every stream, on every replica, heard every event after it opened,
    // in order, none twice
    for (n, s) in streams.iter_mut().enumerate() {
        let mut seen = Vec::new();
        while seen.last().copied().unwrap_or(0) < head {
            let next = tokio::time::timeout(Duration::from_secs(30), s.next())
                .await
                .unwrap_or_else(|_| panic!("replica {n}'s stream heard {seen:?} of ..{head}"))
                .expect("open");
            seen.push(next.0);
        }
        let first = seen[0];
        let want: Vec<i64> = (first..=head).collect();
        assert_eq!(seen, want, "replica {n}");
        // it opened at the head after the deployment was created
        assert!(first <= events.iter().find(|e| e.kind == "signoff").unwrap().seq);
    }
    drop(streams);
    for r in &mut rigs {
        r.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_timed_work_of_two_replicas_is_done_once() {
    // a database of its own: the workers see only this test's deployments
    let db = golive_testkit::FreshDatabase::new("timed");
    let location = db.url.clone();
    let (hooks, seen) = golive_testkit::scripted_receiver(&[]).await;
    let replica = || {
        let mut cfg = golive_server::Config::new("127.0.0.1:0".parse().unwrap(), &location);
        cfg.notify = golive_deploy::channel::Channel::parse_all(
            &[format!("webhook=http://{}/hook", hooks.addr)],
            &|_| None,
        )
        .unwrap();
        cfg.notify_tick = Duration::from_millis(100);
        Rig::with(cfg)
    };
    let mut a = replica().await;
    let mut b = replica().await;
    let lead = a.person(&unique("Dana Lead"), &["Deployment Lead"]).await;
    let em = a
        .person(&unique("Emil Manager"), &["Engineering Manager"])
        .await;
    let rm = a
        .person(&unique("Rene Release"), &["Release Manager"])
        .await;
    let id = a.deployment(&lead).await;
    for (r, item) in [(&a, "1.1.1"), (&b, "1.1.2")] {
        let s = r
            .json(
                "POST",
                &format!("/api/v1/deployments/{id}/signoffs"),
                Some(&rm),
                &json!({ "item": item }),
            )
            .await;
        assert_eq!(s.status, 200, "{}", s.body);
    }
    for (r, t) in [(&b, &lead), (&a, &em)] {
        let s = r
            .json(
                "POST",
                &format!("/api/v1/deployments/{id}/decision"),
                Some(t),
                &json!({ "verdict": "go" }),
            )
            .await;
        assert_eq!(s.status, 200, "{}", s.body);
    }
    // both workers look at the deployment every 100 ms; the GO update is
    // sent once, claimed by one of them under the deployment's lock
    let key = format!("{id}/status:go/webhook");
    let mut sent = 0;
    for _ in 0..100 {
        sent = seen
            .lock()
            .unwrap()
            .iter()
            .filter(|h| h.idempotency_key.as_deref() == Some(key.as_str()))
            .count();
        if sent > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(sent, 1, "sent once: {key}");
    // many passes later, still once, and recorded once
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let got: Vec<String> = seen
        .lock()
        .unwrap()
        .iter()
        .filter_map(|h| h.idempotency_key.clone())
        .collect();
    let mut unique_keys = got.clone();
    unique_keys.sort();
    unique_keys.dedup();
    assert_eq!(got.len(), unique_keys.len(), "no message twice: {got:?}");
    let events = a.store.events(&id).await.unwrap();
    let sent_events = events
        .iter()
        .filter(|e| e.kind == "notice.sent" && e.data["key"] == "status:go")
        .count();
    assert_eq!(sent_events, 1);
    a.stop().await;
    b.stop().await;
    drop(db);
}
