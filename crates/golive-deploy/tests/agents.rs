//! The rules of probe agents, as a library on a real store (SQLite and
//! PostgreSQL): jobs per check and location, claims that never hand one job
//! to two agents, a claim taken over when its lease runs out (the first
//! agent's late result refused, the second's recorded once), and a quiet
//! location's checks given up as could not observe.

use golive_deploy::{Deployment, Error, Quiet, RefusalKind as K, agents};
use golive_store::NewDeployment;
use serde_json::json;

const DOC: &str = "# Located\n\n## Pre-Deployment Checklist\n\n### Reachable (2 items)\n\n\
- [ ] **Homepage reachable**\n  ```golive\n  check = \"tcp\"\n  target = \"127.0.0.1:9\"\n  locations = [\"eu-west\", \"us-east\"]\n  ```\n\n\
- [ ] **API reachable**\n  ```golive\n  check = \"tcp\"\n  target = \"127.0.0.1:9\"\n  ```\n";

async fn deployment(location: &str, tag: &str) -> Deployment {
    let dir = std::env::temp_dir().join(format!("golive-agents-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("located.md");
    std::fs::write(&path, DOC).unwrap();
    let source = golive_deploy::Source::new(path.display().to_string(), DOC);
    let store = golive_deploy::create_store(location).await.unwrap();
    let id = store
        .create_deployment(&NewDeployment {
            runbook_path: source.path.clone(),
            runbook_sha256: source.sha256.clone(),
            started_by: "agents test".into(),
            vars: json!({}),
        })
        .await
        .unwrap();
    let row = golive_deploy::find(&store, Some(&id)).await.unwrap();
    Deployment::new(store, row, &source).unwrap()
}

fn sqlite(tag: &str) -> String {
    let dir = std::env::temp_dir().join(format!("golive-agents-db-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    format!("sqlite://{}", dir.join("golive.db").display())
}

async fn claims_and_takeover(location: &str, tag: &str) {
    let d = deployment(location, tag).await;
    let now = jiff::Timestamp::now().as_millisecond();
    // the first check runs where it says, the second where the run asks
    let (run, jobs) = d
        .run_at_locations(&["eu-west".into()], &[], "Dana Lead", &Quiet)
        .await
        .unwrap();
    let mut at: Vec<(String, String)> = jobs
        .iter()
        .map(|j| (j.item.clone(), j.location.clone()))
        .collect();
    at.sort();
    assert_eq!(at.len(), 3, "{at:?}");
    assert_eq!(at.iter().filter(|(_, l)| l == "us-east").count(), 1);
    // two agents of eu-west claim at once: two jobs between them, none twice
    let (a, b) = tokio::join!(
        d.store
            .claim_jobs("eu-west", "agent-a", 1, now, now + 30_000),
        d.store
            .claim_jobs("eu-west", "agent-b", 5, now, now + 30_000),
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    let mine: Vec<&golive_store::JobRow> = a
        .iter()
        .chain(b.iter())
        .filter(|j| j.deployment == d.row.id)
        .collect();
    assert_eq!(mine.len(), 2, "{mine:?}");
    assert!(
        a.iter().all(|j| !b.iter().any(|k| k.id == j.id)),
        "a job claimed twice"
    );
    // nothing left for a third agent while the leases hold
    let c = d
        .store
        .claim_jobs("eu-west", "agent-c", 5, now, now + 30_000)
        .await
        .unwrap();
    assert!(c.iter().all(|j| j.deployment != d.row.id));
    // agent-a dies holding its job; once its lease ran out agent-c takes it
    let held = a
        .iter()
        .find(|j| j.deployment == d.row.id)
        .cloned()
        .unwrap_or_else(|| b[0].clone());
    let holder = held.agent.clone().unwrap();
    let later = now + 31_000;
    let taken = d
        .store
        .claim_jobs("eu-west", "agent-c", 5, later, later + 30_000)
        .await
        .unwrap();
    let taken: Vec<_> = taken
        .into_iter()
        .filter(|j| j.deployment == d.row.id)
        .collect();
    assert!(taken.iter().any(|j| j.id == held.id), "{taken:?}");
    assert!(taken.iter().all(|j| j.attempts == 2));
    let result = json!({ "outcome": "passed", "kind": "tcp", "target": "127.0.0.1:9" });
    // the first holder's late result is refused, recording nothing
    let job = d.store.job(&held.id).await.unwrap().unwrap();
    let before = d.store.events(d.id()).await.unwrap().len();
    match d.report(&job, &holder, &result).await {
        Err(Error::Refused(r)) => assert_eq!(r.kind, K::MovedOn, "{}", r.message),
        other => panic!("a late result was taken: {other:?}"),
    }
    assert_eq!(d.store.events(d.id()).await.unwrap().len(), before);
    // the second's is recorded, once: again, it is refused
    d.report(&job, "agent-c", &result).await.expect("recorded");
    assert!(d.report(&job, "agent-c", &result).await.is_err());
    let checks: Vec<_> = d
        .store
        .events(d.id())
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == "check")
        .collect();
    assert_eq!(checks.len(), 1);
    assert_eq!(checks[0].data["location"], "eu-west");
    assert_eq!(checks[0].data["agent"], "agent-c");
    assert_eq!(checks[0].actor.as_deref(), Some("agent-c"));
    assert!(run > 0);
    // a result of an outcome that is none is refused
    let other = d
        .store
        .jobs_of(d.id())
        .await
        .unwrap()
        .into_iter()
        .find(|j| j.state == "claimed")
        .unwrap();
    let who = other.agent.clone().unwrap();
    match d.report(&other, &who, &json!({ "outcome": "fine" })).await {
        Err(Error::Refused(r)) => assert!(r.message.contains("outcome"), "{}", r.message),
        o => panic!("{o:?}"),
    }
}

#[tokio::test]
async fn claims_are_leases_never_held_twice_and_taken_over_on_sqlite() {
    claims_and_takeover(&sqlite("claims"), "claims-sqlite").await;
}

#[tokio::test]
async fn claims_are_leases_never_held_twice_and_taken_over_on_postgres() {
    // a database of its own: the jobs of other runs do not share its queue
    let db = golive_testkit::FreshDatabase::new("agents");
    claims_and_takeover(&db.url, "claims-pg").await;
}

#[tokio::test]
async fn a_quiet_location_has_its_checks_given_up_as_could_not_observe() {
    let d = deployment(&sqlite("quiet"), "quiet").await;
    let now = jiff::Timestamp::now().as_millisecond();
    d.store.put_agent("eu-1", "eu-west").await.unwrap();
    d.store.put_agent("us-1", "us-east").await.unwrap();
    d.store.heartbeat("eu-1", now).await.unwrap();
    d.store.heartbeat("us-1", now - 60_000).await.unwrap();
    d.run_at_locations(&["eu-west".into()], &[], "Dana Lead", &Quiet)
        .await
        .unwrap();
    let down = agents::give_up_quiet(&d.store, 30_000, now).await.unwrap();
    assert_eq!(down.len(), 1, "{down:?}");
    assert_eq!(down[0].location, "us-east");
    assert_eq!(down[0].jobs.len(), 1);
    let events = d.store.events(d.id()).await.unwrap();
    let given_up: Vec<_> = events
        .iter()
        .filter(|e| e.kind == "check" && e.data["unobserved"] == true)
        .collect();
    assert_eq!(given_up.len(), 1);
    assert_eq!(given_up[0].data["outcome"], "error");
    assert!(
        given_up[0].data["message"]
            .as_str()
            .unwrap()
            .contains("could not observe")
    );
    assert!(
        events
            .iter()
            .any(|e| e.kind == "location.down" && e.data["location"] == "us-east")
    );
    // the checks of the location that is observed wait for their agents
    let jobs = d.store.jobs_of(d.id()).await.unwrap();
    assert_eq!(jobs.iter().filter(|j| j.state == "queued").count(), 2);
    // the item is not passed: it could not be observed
    let k = d.kept(&Quiet).await.unwrap();
    let st = golive_deploy::lifecycle::states(&d.rb, &k);
    let home = &d.rb.items[0].id;
    assert_eq!(st[home].checks, ["error"]);
    // nothing more to give up a second time
    assert!(
        agents::give_up_quiet(&d.store, 30_000, now)
            .await
            .unwrap()
            .is_empty()
    );
}

/// Results reported together: one append for all of them, a refused one
/// (its job taken over) leaving the others recorded; runs queued one after
/// another keep one result per check and location in the kept state.
async fn batched(location: &str, tag: &str) {
    let d = deployment(location, tag).await;
    let now = jiff::Timestamp::now().as_millisecond();
    let result = json!({ "outcome": "passed", "kind": "tcp", "target": "127.0.0.1:9" });
    for _ in 0..3 {
        d.run_at_locations(&["eu-west".into()], &[], "Dana Lead", &Quiet)
            .await
            .unwrap();
    }
    let eu = d
        .store
        .claim_jobs("eu-west", "eu-1", 100, now, now + 30_000)
        .await
        .unwrap();
    let us = d
        .store
        .claim_jobs("us-east", "us-1", 100, now, now + 30_000)
        .await
        .unwrap();
    assert_eq!((eu.len(), us.len()), (6, 3));
    // one of eu-1's jobs was taken over by eu-2 meanwhile (its lease ran
    // out: eu-2 claims one)
    let later = now + 31_000;
    let taken = d
        .store
        .claim_jobs("eu-west", "eu-2", 1, later, later + 30_000)
        .await
        .unwrap();
    assert_eq!(taken.len(), 1);
    let lost = eu.iter().position(|j| j.id == taken[0].id).unwrap();
    let before = d.store.events(d.id()).await.unwrap().len();
    let pairs: Vec<_> = eu.iter().map(|j| (j.clone(), result.clone())).collect();
    let each = d.report_each(&pairs, "eu-1").await.unwrap();
    assert_eq!(each.len(), 6);
    match &each[lost] {
        Err(Error::Refused(r)) => assert_eq!(r.kind, K::MovedOn, "{}", r.message),
        o => panic!("a taken-over job's result was recorded: {o:?}"),
    }
    let seqs: Vec<i64> = each
        .iter()
        .enumerate()
        .filter(|(n, _)| *n != lost)
        .map(|(_, r)| *r.as_ref().unwrap())
        .collect();
    assert_eq!(seqs.len(), 5);
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{seqs:?}");
    let after = d.store.events(d.id()).await.unwrap();
    assert_eq!(after.len(), before + 5, "one event per recorded result");
    // a result of no outcome in a batch is refused alone
    let mut pairs: Vec<_> = us.iter().map(|j| (j.clone(), result.clone())).collect();
    pairs[1].1 = json!({ "outcome": "fine" });
    let each = d.report_each(&pairs, "us-1").await.unwrap();
    assert!(each[0].is_ok() && each[2].is_ok(), "{each:?}");
    assert!(matches!(&each[1], Err(Error::Refused(r)) if r.message.contains("outcome")));
    // three runs' results, one kept per check and location
    let k = d.kept(&Quiet).await.unwrap();
    let homepage = k.checks_of(&d.rb.items[0].id);
    let mut at: Vec<&str> = homepage
        .iter()
        .filter_map(|e| e.data["location"].as_str())
        .collect();
    at.sort();
    assert_eq!(at, ["eu-west", "us-east"], "{homepage:?}");
    let api = k.checks_of(&d.rb.items[1].id);
    assert_eq!(api.len(), 1, "{api:?}");
    // the state kept append by append is the chain's, replayed
    let all = d.store.events(d.id()).await.unwrap();
    assert_eq!(golive_deploy::Kept::replay(&all), k);
    assert!(d.store.verify(d.id()).await.unwrap().is_ok());
}

#[tokio::test]
async fn results_reported_together_are_one_append_on_sqlite() {
    batched(&sqlite("batched"), "batched-sqlite").await;
}

#[tokio::test]
async fn results_reported_together_are_one_append_on_postgres() {
    let db = golive_testkit::FreshDatabase::new("agentbatch");
    batched(&db.url, "batched-pg").await;
}
