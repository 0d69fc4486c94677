//! The lifecycle driven as a library, without the binary: every command on
//! a real store (SQLite in a temporary folder, PostgreSQL on 127.0.0.1),
//! every refusal asserted by its kind, and the kept state checked against
//! the replay of the chain after each step.

use golive_deploy::record::KeptCheck;
use golive_deploy::{
    Choose, Decide, Deployment, Done, Error, Kept, Quiet, Raised, RefusalKind as K, RolledBack,
    Sign, SignOff, Skip, Source,
};
use golive_store::NewDeployment;
use std::path::PathBuf;

const MINI: &str = include_str!("fixtures/mini.md");

struct Env {
    dir: PathBuf,
    location: String,
    source: Source,
}

impl Env {
    fn sqlite(tag: &str) -> Env {
        Env::sqlite_with(tag, MINI)
    }

    fn postgres(tag: &str) -> Env {
        Env::postgres_with(tag, MINI)
    }

    /// A fresh folder for the test's files.
    fn folder(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("golive-lib-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        dir
    }

    /// A runbook of this text, on a SQLite store in its own folder.
    fn sqlite_with(tag: &str, text: &str) -> Env {
        let dir = Env::folder(tag);
        let location = format!("sqlite://{}", dir.join("golive.db").display());
        Env::at(dir, location, text)
    }

    /// A runbook of this text, on the test PostgreSQL.
    fn postgres_with(tag: &str, text: &str) -> Env {
        let location = std::env::var("GOLIVE_TEST_PG")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
        Env::at(Env::folder(tag), location, text)
    }

    fn at(dir: PathBuf, location: String, text: &str) -> Env {
        let path = dir.join("mini.md");
        std::fs::write(&path, text).expect("runbook");
        Env {
            source: Source::new(path.display().to_string(), text),
            dir,
            location,
        }
    }

    /// A new deployment of the runbook, opened.
    async fn start(&self) -> Deployment {
        let store = golive_deploy::create_store(&self.location)
            .await
            .expect("store");
        let id = store
            .create_deployment(&NewDeployment {
                runbook_path: self.source.path.clone(),
                runbook_sha256: self.source.sha256.clone(),
                started_by: "lifecycle test".into(),
                vars: serde_json::json!({}),
            })
            .await
            .expect("deployment");
        let row = golive_deploy::find(&store, Some(&id)).await.expect("row");
        Deployment::new(store, row, &self.source).expect("open")
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The kind of a refusal; anything else fails the test.
fn kind<T: std::fmt::Debug>(r: golive_deploy::Result<T>) -> K {
    match r {
        Err(Error::Refused(r)) | Err(Error::Invalid(r)) => r.kind,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn sign<'a>(item: &'a str, name: &'a str, role: &'a str) -> Sign<'a> {
    Sign {
        item,
        name,
        role,
        result: golive_deploy::lifecycle::SignResult::Done,
        comment: None,
        evidence: &[],
        roster: None,
        signer: None,
    }
}

fn decide<'a>(go: bool, name: &'a str, role: &'a str, reason: Option<&'a str>) -> Decide<'a> {
    Decide {
        go,
        name,
        role,
        reason,
        roster: None,
        signer: None,
    }
}

fn done<'a>(step: &'a str, name: &'a str, skipped: bool, vars: &'a golive_probe::Vars) -> Done<'a> {
    Done {
        step,
        name,
        skipped,
        comment: None,
        roster: None,
        run: false,
        allow_commands: false,
        confirm_rerun: false,
        vars,
    }
}

/// The kept state is what replaying the chain gives, and verify says so.
async fn kept_is_replay(d: &Deployment) -> Kept {
    let kept = d.kept(&Quiet).await.expect("kept");
    let events = d.store.events(d.id()).await.expect("events");
    assert_eq!(kept, Kept::replay(&events), "kept state = replay");
    let v = golive_deploy::record::verify(&d.store, Some(d.id()), None)
        .await
        .expect("verify");
    assert!(v.chain.is_ok());
    assert_eq!(v.kept, KeptCheck::Equal);
    kept
}

/// The pre-deployment items signed, then GO by both signers.
async fn to_go(d: &Deployment) {
    let q = &Quiet;
    d.sign(&sign("1.1.1", "Rene Release", "Release Manager"), q)
        .await
        .expect("1");
    d.sign(&sign("1.1.2", "Quinn Tester", "QA Engineer"), q)
        .await
        .expect("2");
    for (name, role) in [
        ("Dana Lead", "Deployment Lead"),
        ("Emil Manager", "Engineering Manager"),
    ] {
        d.decide(&decide(true, name, role, None), q)
            .await
            .expect("GO");
    }
}

/// How many events the deployment holds: a refusal must not change it.
async fn events(d: &Deployment) -> usize {
    d.store.events(d.id()).await.expect("events").len()
}

async fn the_whole_lifecycle(env: Env) {
    let d = env.start().await;
    let vars = golive_probe::Vars::new();
    let q = &Quiet;

    // sign: what may be signed, by whom
    assert_eq!(
        kind(
            d.sign(&sign("9.9.9", "Dana Lead", "Deployment Lead"), q)
                .await
        ),
        K::Unknown
    );
    assert_eq!(
        kind(
            d.sign(&sign("1.1.1/1", "Rene Release", "Release Manager"), q)
                .await
        ),
        K::SubCheck
    );
    assert_eq!(
        kind(
            d.sign(&sign("3.1.1", "Dana Lead", "Deployment Lead"), q)
                .await
        ),
        K::NotSignable
    );
    assert_eq!(
        kind(
            d.sign(&sign("2.1", "Dana Lead", "Deployment Lead"), q)
                .await
        ),
        K::NotSignable
    );
    assert_eq!(
        kind(
            d.sign(&sign("1.1.1", "Nobody Here", "Release Manager"), q)
                .await
        ),
        K::NotOnRoster
    );
    assert_eq!(
        kind(
            d.sign(&sign("1.1.1", "Dana Lead", "Release Manager"), q)
                .await
        ),
        K::RoleNotHeld
    );
    assert_eq!(
        kind(
            d.sign(&sign("1.1.1", "Dana Lead", "Deployment Lead"), q)
                .await
        ),
        K::WrongRole
    );
    assert_eq!(events(&d).await, 0, "refusals record nothing");
    let s = d
        .sign(&sign("1.1.1", "Rene Release", "Release Manager"), q)
        .await
        .expect("signed");
    assert_eq!(d.rb.items[s.item].address, "1.1.1");
    assert_eq!(
        kind(
            d.sign(&sign("1.1.1", "rene release", "Release Manager"), q)
                .await
        ),
        K::SignedAlready
    );
    kept_is_replay(&d).await;

    // before GO: nothing of the procedure, no gate, no end
    assert_eq!(
        kind(d.done(&done("3.1.1", "Dana Lead", false, &vars), q).await),
        K::BeforeGo
    );
    assert_eq!(
        kind(d.gate("smoke", "Dana Lead", None, q).await),
        K::BeforeGo
    );
    assert_eq!(
        kind(d.finish("Dana Lead", None, jiff::Timestamp::now(), q).await),
        K::BeforeGo
    );
    assert_eq!(
        kind(d.done(&done("1.1.2", "Dana Lead", false, &vars), q).await),
        K::NotAStep
    );

    // the decision
    assert_eq!(
        kind(
            d.decide(&decide(true, "Quinn Tester", "QA Engineer", None), q)
                .await
        ),
        K::WrongRole
    );
    assert_eq!(
        kind(
            d.decide(&decide(false, "Dana Lead", "Deployment Lead", None), q)
                .await
        ),
        K::Incomplete
    );
    let refused = d
        .decide(&decide(true, "Dana Lead", "Deployment Lead", None), q)
        .await;
    match &refused {
        Err(Error::Refused(r)) => {
            assert_eq!(r.kind, K::PreDeploymentOpen);
            // the first open item, where the document has it
            let at = r.at.as_ref().expect("a place");
            assert_eq!(at.address.as_deref(), Some("1.1.2"));
            assert_eq!(at.line, 15);
        }
        other => panic!("{other:?}"),
    }
    d.sign(&sign("1.1.2", "Quinn Tester", "QA Engineer"), q)
        .await
        .expect("anyone on the roster signs an item without a role");
    let first = d
        .decide(&decide(true, "Dana Lead", "Deployment Lead", None), q)
        .await
        .expect("first signature");
    assert!(!first.taken());
    assert_eq!(first.waiting, vec!["Engineering Manager".to_string()]);
    assert_eq!(
        kind(
            d.decide(&decide(true, "Dana Lead", "Engineering Manager", None), q)
                .await
        ),
        K::RoleNotHeld
    );
    assert_eq!(
        kind(
            d.decide(
                &decide(
                    false,
                    "Emil Manager",
                    "Engineering Manager",
                    Some("not ready")
                ),
                q
            )
            .await
        ),
        K::SignersDisagree
    );
    let go = d
        .decide(
            &decide(true, "Emil Manager", "Engineering Manager", None),
            q,
        )
        .await
        .expect("GO");
    assert!(go.taken());
    assert_eq!(go.verdict, "GO");
    assert_eq!(
        kind(
            d.decide(
                &decide(true, "Emil Manager", "Engineering Manager", None),
                q
            )
            .await
        ),
        K::Decided
    );
    let st = d.status(q).await.expect("status");
    assert_eq!(st.state, "DEPLOYING");

    // the procedure, in order; only an optional step is skipped
    assert_eq!(
        kind(d.done(&done("3.2.1", "Devi Ops", false, &vars), q).await),
        K::OutOfOrder
    );
    assert_eq!(
        kind(d.done(&done("3.1.1", "Devi Ops", true, &vars), q).await),
        K::NotOptional
    );
    assert_eq!(
        kind(d.done(&done("7.2.1", "Devi Ops", false, &vars), q).await),
        K::WrongSequence
    );
    let mut with_run = done("3.1.1", "Devi Ops", false, &vars);
    with_run.run = true;
    assert_eq!(kind(d.done(&with_run, q).await), K::Commands);
    {
        // another process holds the step's running lock: it is running now
        let held = d
            .store
            .try_lock_running(
                d.id(),
                &d.rb.items[d
                    .rb
                    .resolve("3.1.1")
                    .map(|t| match t {
                        golive_runbook::Target::Item(i) => i,
                        golive_runbook::Target::SubCheck(i, _) => i,
                    })
                    .expect("step")]
                .id,
            )
            .await
            .expect("lock")
            .expect("free");
        assert_eq!(
            kind(d.done(&done("3.1.1", "Devi Ops", false, &vars), q).await),
            K::Running
        );
        held.release().await;
    }
    d.done(&done("3.1.1", "Devi Ops", false, &vars), q)
        .await
        .expect("done")
        .expect("recorded");
    assert_eq!(
        kind(d.done(&done("3.1.1", "Devi Ops", false, &vars), q).await),
        K::Done
    );
    let skipped = d
        .done(&done("3.1.2", "Devi Ops", true, &vars), q)
        .await
        .expect("skipped")
        .expect("recorded");
    assert!(skipped.skipped);
    // the end needs every step and every gate
    assert_eq!(
        kind(d.finish("Dana Lead", None, jiff::Timestamp::now(), q).await),
        K::StepsOpen
    );
    d.done(&done("3.2.1", "Devi Ops", false, &vars), q)
        .await
        .expect("done")
        .expect("recorded");
    assert_eq!(
        kind(d.finish("Dana Lead", None, jiff::Timestamp::now(), q).await),
        K::GateNotPassed
    );
    assert_eq!(
        kind(d.gate("canary", "Quinn Tester", None, q).await),
        K::NoSuchChoice
    );

    // gates count items with a result (these have no checks: signed passed
    // or failed); while one has none the gate decides nothing
    d.sign(&sign("4.1", "Quinn Tester", "QA Engineer"), q)
        .await
        .expect("smoke 1");
    let before = d.store.events(d.id()).await.expect("events").len();
    assert_eq!(
        kind(d.gate("smoke", "Quinn Tester", None, q).await),
        K::NotTried
    );
    assert_eq!(
        d.store.events(d.id()).await.expect("events").len(),
        before,
        "a premature gate records nothing"
    );
    let mut failed = sign("4.2", "Quinn Tester", "QA Engineer");
    failed.result = golive_deploy::lifecycle::SignResult::Failed;
    assert_eq!(
        kind(d.sign(&failed, q).await),
        K::Incomplete,
        "needs what failed"
    );
    failed.comment = Some("the login page times out");
    d.sign(&failed, q).await.expect("smoke 2 failed");
    let smoke = d
        .gate("smoke", "Quinn Tester", None, q)
        .await
        .expect("smoke");
    assert_eq!(
        (smoke.tally.passed, smoke.tally.total, smoke.tally.target),
        (1, 2, 1)
    );
    assert_eq!(smoke.raised, Raised::Nothing);
    assert_eq!(d.status(q).await.expect("status").state, "VERIFYING");
    assert_eq!(
        kind(d.finish("Dana Lead", None, jiff::Timestamp::now(), q).await),
        K::GateNotPassed
    );
    d.sign(&sign("6.1", "Quinn Tester", "QA Engineer"), q)
        .await
        .expect("verified");
    let v = d
        .gate("verification", "Quinn Tester", None, q)
        .await
        .expect("verification");
    assert_eq!(v.raised, Raised::Nothing);
    let f = d
        .finish("Dana Lead", None, jiff::Timestamp::now(), q)
        .await
        .expect("finished");
    assert_eq!(f.target_seconds, Some(3600));
    assert_eq!(f.health, "HEALTHY");
    let st = d.status(q).await.expect("status");
    assert_eq!(st.state, "SUCCEEDED");
    assert_eq!(
        kind(
            d.rollback("Dana Lead", "Deployment Lead", "late", None, q)
                .await
        ),
        K::Ended
    );
    assert_eq!(
        kind(d.finish("Dana Lead", None, jiff::Timestamp::now(), q).await),
        K::Ended
    );
    let kept = kept_is_replay(&d).await;
    assert_eq!(kept.events() as usize, events(&d).await);
}

async fn a_rollback(env: Env) {
    let d = env.start().await;
    let vars = golive_probe::Vars::new();
    let q = &Quiet;
    to_go(&d).await;
    // no rollback raised: the manual authority, each role once, distinct people
    assert_eq!(
        kind(
            d.rollback("Devi Ops", "DevOps Engineer", "errors", None, q)
                .await
        ),
        K::WrongRole
    );
    let first = d
        .rollback("Dana Lead", "Deployment Lead", "errors", None, q)
        .await
        .expect("signed");
    assert!(matches!(first, RolledBack::Signed { .. }));
    assert_eq!(
        kind(
            d.rollback("Dana Lead", "Deployment Lead", "errors", None, q)
                .await
        ),
        K::SignedAlready
    );
    let started = d
        .rollback("Emil Manager", "Engineering Manager", "errors", None, q)
        .await
        .expect("started");
    assert_eq!(
        started,
        RolledBack::Started {
            by: vec!["Deployment Lead".into(), "Engineering Manager".into()]
        }
    );
    assert_eq!(
        kind(
            d.rollback("Emil Manager", "Engineering Manager", "again", None, q)
                .await
        ),
        K::RollingBack
    );
    assert_eq!(
        kind(d.done(&done("3.1.1", "Devi Ops", false, &vars), q).await),
        K::WrongSequence
    );
    assert_eq!(
        kind(d.finish("Dana Lead", None, jiff::Timestamp::now(), q).await),
        K::StepsOpen,
        "the Rollback Steps are not done"
    );
    d.done(&done("7.2.1", "Devi Ops", false, &vars), q)
        .await
        .expect("R1")
        .expect("R1");
    let last = d
        .done(&done("7.2.2", "Devi Ops", false, &vars), q)
        .await
        .expect("R2")
        .expect("R2");
    assert!(
        last.lines.iter().any(|l| l.starts_with("ROLLED BACK")),
        "{:?}",
        last.lines
    );
    let st = d.status(q).await.expect("status");
    assert_eq!(st.state, "ROLLED BACK");
    // the open items of a rolled-back deployment: its post-rollback actions
    let open: Vec<&str> = st
        .pending
        .iter()
        .map(|o| d.rb.items[o.item].address.as_str())
        .collect();
    assert_eq!(open, ["7.3.1"]);
    kept_is_replay(&d).await;
}

#[tokio::test]
async fn every_command_and_refusal_on_sqlite() {
    the_whole_lifecycle(Env::sqlite("whole")).await;
}

#[tokio::test]
async fn every_command_and_refusal_on_postgres() {
    the_whole_lifecycle(Env::postgres("whole-pg")).await;
}

#[tokio::test]
async fn a_manual_rollback_to_its_end_on_sqlite() {
    a_rollback(Env::sqlite("rollback")).await;
}

#[tokio::test]
async fn a_manual_rollback_to_its_end_on_postgres() {
    a_rollback(Env::postgres("rollback-pg")).await;
}

#[tokio::test]
async fn a_failed_smoke_gate_starts_the_rollback_with_automatic_authority() {
    let env = Env::sqlite("smoke-fails");
    let d = env.start().await;
    let q = &Quiet;
    let vars = golive_probe::Vars::new();
    to_go(&d).await;
    for s in ["3.1.1", "3.1.2", "3.2.1"] {
        d.done(&done(s, "Devi Ops", false, &vars), q)
            .await
            .expect(s)
            .expect(s);
    }
    // nothing tried yet: the gate decides nothing and starts no rollback
    assert_eq!(
        kind(d.gate("smoke", "Quinn Tester", None, q).await),
        K::NotTried
    );
    assert_eq!(d.status(q).await.expect("status").state, "DEPLOYING");
    for item in ["4.1", "4.2"] {
        let mut failed = sign(item, "Quinn Tester", "QA Engineer");
        failed.result = golive_deploy::lifecycle::SignResult::Failed;
        failed.comment = Some("500 from the load balancer");
        d.sign(&failed, q).await.expect("failed");
    }
    let g = d
        .gate("smoke", "Quinn Tester", None, q)
        .await
        .expect("evaluated");
    assert_eq!((g.tally.passed, g.tally.target), (0, 1));
    assert_eq!(g.raised, Raised::Started);
    assert_eq!(d.status(q).await.expect("status").state, "ROLLING BACK");
    // evaluated again: the rollback is not raised twice
    let again = d
        .gate("smoke", "Quinn Tester", None, q)
        .await
        .expect("again");
    assert_eq!(again.raised, Raised::Already);
    kept_is_replay(&d).await;
}

#[tokio::test]
async fn a_gate_with_nothing_to_count_is_refused_naming_the_stage() {
    let text = MINI.replace(
        "- [ ] **Test 1: Homepage Loads**\n- [ ] **Test 2: Login Works**\n",
        "",
    );
    let dir = std::env::temp_dir().join(format!("golive-lib-nothing-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let location = format!("sqlite://{}", dir.join("golive.db").display());
    let env = Env::at(dir, location, &text);
    let d = env.start().await;
    let q = &Quiet;
    to_go(&d).await;
    let before = events(&d).await;
    match d.gate("smoke", "Quinn Tester", None, q).await {
        Err(Error::Refused(r)) => {
            assert_eq!(r.kind, K::NothingToCount);
            assert!(r.message.contains("no items"), "{}", r.message);
            assert_eq!(r.at.expect("the stage").address.as_deref(), Some("4"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(events(&d).await, before);
}

#[tokio::test]
async fn a_changed_runbook_is_not_opened() {
    let env = Env::sqlite("changed");
    let d = env.start().await;
    let row = d.row.clone();
    let changed = Source::new(env.source.path.clone(), format!("{MINI}\nedited\n"));
    let r = Deployment::new(d.store.clone(), row, &changed);
    assert_eq!(kind(r.map(|_| ())), K::RunbookChanged);
}

#[tokio::test]
async fn a_damaged_missing_or_behind_state_is_read_from_the_chain_and_rebuilt() {
    let env = Env::sqlite("damaged");
    let d = env.start().await;
    let q = &Quiet;
    d.sign(&sign("1.1.1", "Rene Release", "Release Manager"), q)
        .await
        .expect("1");
    d.sign(&sign("1.1.2", "Quinn Tester", "QA Engineer"), q)
        .await
        .expect("2");
    let good = kept_is_replay(&d).await;
    let db = rusqlite::Connection::open(env.dir.join("golive.db")).expect("db");
    let verify = || async {
        golive_deploy::record::verify(&d.store, Some(d.id()), None)
            .await
            .expect("verify")
            .kept
    };
    struct Notes(std::sync::Mutex<Vec<String>>);
    impl golive_deploy::Listener for Notes {
        fn note(&self, t: &str) {
            self.0.lock().expect("notes").push(t.to_string());
        }
    }

    // damaged: it does not read
    db.execute("UPDATE deployment_state SET state = 'not a state'", [])
        .expect("damage");
    assert!(matches!(verify().await, KeptCheck::Damaged(_)));
    let notes = Notes(Default::default());
    assert_eq!(
        d.kept(&notes).await.expect("read"),
        good,
        "read from the chain"
    );
    assert!(notes.0.lock().expect("n")[0].contains("golive audit rebuild"));
    let r = golive_deploy::record::rebuild(&d.store, Some(d.id()))
        .await
        .expect("rebuilt");
    assert!(r.written && matches!(r.was, KeptCheck::Damaged(_)));
    assert_eq!(verify().await, KeptCheck::Equal);

    // different: it reads, and says another thing than the chain
    let mut wrong = good.clone();
    wrong.signoffs.pop();
    db.execute(
        "UPDATE deployment_state SET state = ?1",
        [serde_json::to_string(&wrong).expect("json")],
    )
    .expect("edit");
    assert_eq!(verify().await, KeptCheck::Differs(vec!["signoffs"]));
    golive_deploy::record::rebuild(&d.store, Some(d.id()))
        .await
        .expect("rebuilt");
    assert_eq!(verify().await, KeptCheck::Equal);

    // missing, then appended to: it stays missing (never built from a
    // part of the chain) until rebuilt
    db.execute("DELETE FROM deployment_state", [])
        .expect("delete");
    d.decide(&decide(true, "Dana Lead", "Deployment Lead", None), q)
        .await
        .expect("GO 1");
    assert_eq!(verify().await, KeptCheck::Missing);
    let r = golive_deploy::record::rebuild(&d.store, Some(d.id()))
        .await
        .expect("rebuilt");
    assert_eq!(
        (r.was.clone(), r.written, r.events),
        (KeptCheck::Missing, true, 3)
    );
    // behind: kept for an earlier event
    db.execute("UPDATE deployment_state SET seq = seq - 1", [])
        .expect("behind");
    assert_eq!(verify().await, KeptCheck::Behind { seq: 2, head: 3 });
    golive_deploy::record::rebuild(&d.store, Some(d.id()))
        .await
        .expect("rebuilt");
    let k = kept_is_replay(&d).await;
    assert_eq!(k.decision_signatures.len(), 1);
    // equal: nothing to write
    let r = golive_deploy::record::rebuild(&d.store, Some(d.id()))
        .await
        .expect("again");
    assert!(!r.written);
}

#[tokio::test]
async fn after_no_go_the_procedure_does_not_run() {
    let env = Env::sqlite("no-go");
    let d = env.start().await;
    let q = &Quiet;
    let vars = golive_probe::Vars::new();
    let why = Some("the release notes are missing");
    d.decide(&decide(false, "Dana Lead", "Deployment Lead", why), q)
        .await
        .expect("1");
    let no = d
        .decide(
            &decide(false, "Emil Manager", "Engineering Manager", why),
            q,
        )
        .await
        .expect("NO-GO");
    assert_eq!((no.verdict, no.taken()), ("NO-GO", true));
    assert_eq!(
        kind(d.done(&done("3.1.1", "Devi Ops", false, &vars), q).await),
        K::NoGo
    );
    let st = d.status(q).await.expect("status");
    assert_eq!(st.state, "NO-GO");
    assert!(st.kept.has_ended());
    assert!(st.pending.is_empty(), "nothing is due after NO-GO");
    kept_is_replay(&d).await;
}

/// A runbook whose checks look at files in `dir` and whose first step has a
/// command: the run, the advance and the watch, without the network.
fn automated(dir: &std::path::Path) -> String {
    let d = dir.display();
    format!(
        "# Automated\n\n## Pre-Deployment Checklist\n\n### Readiness (2 items)\n\n\
- [ ] **Artifact present**\n  ```golive\n  check = \"file\"\n  path = \"{d}/artifact\"\n  auto_sign = true\n  ```\n\n\
- [ ] **Change approved**\n\n\
## Pre-Deployment Go/No-Go Decision\n\n**Decision:**\n- [ ] **GO** - Proceed\n- [ ] **NO-GO** - Abort\n\n\
**Sign-offs:**\n- Deployment Lead: ________ Date: ____\n\n\
## Deployment Procedure\n\n### Phase 1: Deploy (5 minutes)\n\n\
**Step 1.1: Deploy the new version**\n```bash\necho deployed > {d}/deployed\n```\n- [ ] New version running\n\n\
**Step 1.2: Tell the team**\n- [ ] Team told\n\n\
## Post-Deployment Verification Checklist (1 item)\n\n\
- [ ] **New version deployed**\n  ```golive\n  check = \"file\"\n  path = \"{d}/deployed\"\n  for = \"1ms\"\n  ```\n\n\
## Appendices\n\n### A. Contact Information\n\n- Deployment Lead: Dana Lead (lead@auto.example.test)\n- QA Engineer: Quinn Tester (qa@auto.example.test)\n"
    )
}

/// Counts what a run or a watch reports.
#[derive(Default)]
struct Heard {
    checks: std::sync::atomic::AtomicUsize,
    lines: std::sync::Mutex<Vec<String>>,
    evaluations: std::sync::atomic::AtomicUsize,
}

impl golive_deploy::Listener for Heard {
    fn check(&self, _rb: &golive_runbook::Runbook, _r: &golive_engine::CheckResult) {
        self.checks
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    fn line(&self, text: &str) {
        self.lines.lock().expect("lines").push(text.to_string());
    }
}

impl golive_deploy::watch::WatchListener for Heard {
    fn watch(
        &self,
        _rb: &golive_runbook::Runbook,
        e: &golive_deploy::watch::WatchEvent<'_>,
    ) -> Result<(), String> {
        if let golive_deploy::watch::WatchEvent::Evaluated { events, .. } = e {
            assert!(!events.is_empty(), "the day's events reach the report");
            self.evaluations
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        Ok(())
    }
}

/// `count` evaluations of a watch of `only` (every watched item when empty),
/// 5 ms apart.
async fn watch(
    d: &Deployment,
    only: &[String],
    count: u64,
    vars: &golive_probe::Vars,
    heard: &Heard,
) -> golive_deploy::watch::Watched {
    golive_deploy::watch::watch(
        d.store.clone(),
        d.id().to_string(),
        d.rb.clone(),
        golive_deploy::watch::Watch {
            interval: std::time::Duration::from_millis(5),
            count: Some(count),
            remind: std::time::Duration::from_secs(60),
            hooks: Vec::new(),
            only,
            vars,
            defaults: toml::Table::new(),
            notify: None,
        },
        heard,
    )
    .await
    .expect("watched")
}

#[tokio::test]
async fn runs_record_checks_and_advance_the_procedure_and_a_watch_evaluates() {
    use golive_deploy::procedure::Stop;
    use golive_deploy::record;
    use std::sync::Arc;
    use std::sync::atomic::Ordering::Relaxed;
    let dir = std::env::temp_dir().join(format!("golive-lib-auto-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(dir.join("artifact"), "v2\n").expect("artifact");
    let location = format!("sqlite://{}", dir.join("golive.db").display());
    let env = Env::at(dir.clone(), location.clone(), &automated(&dir));
    let rb = env.source.runbook();
    let vars = golive_probe::Vars::new();
    let redact = golive_deploy::vars::Redactor::new(&vars);
    let plan = golive_engine::plan(&rb, &vars, &[], &toml::Table::new()).expect("plan");
    assert!(plan.problems.is_empty(), "{:?}", plan.problems);
    let request = record::Run {
        store: &location,
        only: &[],
        opts: golive_engine::RunOptions {
            concurrency: 4,
            allow_commands: true,
            baselines: Default::default(),
        },
        new: false,
        deployment: None,
        confirm_rerun: false,
        vars: &vars,
    };
    let run = |heard: Arc<Heard>| {
        let (rb, plan, redact, request) = (&rb, &plan, &redact, &request);
        async move {
            record::run(rb, plan, redact, request, heard)
                .await
                .expect("run")
        }
    };

    // before GO: the checks run and are recorded; nothing advances
    let heard = Arc::new(Heard::default());
    let first = run(heard.clone()).await;
    assert_eq!(first.stop, Stop::Idle);
    assert_eq!(heard.checks.load(Relaxed), 2);
    let outcomes: Vec<&str> = first.results.iter().map(|r| r.outcome.as_str()).collect();
    assert_eq!(outcomes, ["passed", "failed"]);

    // the passing check signs its item (auto_sign); GO needs the other
    let store = golive_deploy::open_store(&location).await.expect("store");
    let row = golive_deploy::find(&store, Some(&first.deployment))
        .await
        .expect("row");
    let d = Deployment::new(store, row, &env.source).expect("open");
    let q = &Quiet;
    assert_eq!(
        kind(
            d.decide(&decide(true, "Dana Lead", "Deployment Lead", None), q)
                .await
        ),
        K::PreDeploymentOpen
    );
    d.sign(&sign("1.1.2", "Quinn Tester", "QA Engineer"), q)
        .await
        .expect("signed");
    d.decide(&decide(true, "Dana Lead", "Deployment Lead", None), q)
        .await
        .expect("GO");

    // after GO the same run continues the deployment and runs Step 1.1's
    // command, then waits for the person's step
    let heard = Arc::new(Heard::default());
    let second = run(heard.clone()).await;
    assert_eq!(second.deployment, first.deployment, "continued");
    assert_eq!(
        second.stop,
        Stop::Waiting(
            d.rb.resolve("3.1.2")
                .map(|t| match t {
                    golive_runbook::Target::Item(i) | golive_runbook::Target::SubCheck(i, _) => i,
                })
                .expect("step")
        )
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("deployed")).expect("ran"),
        "deployed\n"
    );
    assert!(
        heard
            .lines
            .lock()
            .expect("lines")
            .iter()
            .any(|l| l.contains("3.1.1") && l.contains("done by golive")),
        "{:?}",
        heard.lines.lock().expect("lines")
    );
    let st = d.status(q).await.expect("status");
    assert!(
        st.kept
            .step_done(
                &d.rb.items[d
                    .rb
                    .resolve("3.1.1")
                    .map(|t| match t {
                        golive_runbook::Target::Item(i)
                        | golive_runbook::Target::SubCheck(i, _) => i,
                    })
                    .expect("step")]
                .id
            )
            .is_some()
    );

    // a watch of the deployment evaluates its verification check
    let heard = Heard::default();
    let watched = watch(&d, &[], 3, &vars, &heard).await;
    assert!(matches!(
        watched,
        golive_deploy::watch::Watched::Ran { firing: false }
    ));
    assert_eq!(heard.evaluations.load(Relaxed), 3);
    let k = kept_is_replay(&d).await;
    assert!(k.last_tick.is_some());
    assert_eq!(
        k.checks_of(
            &d.rb
                .items
                .iter()
                .find(|i| i.title == "New version deployed")
                .expect("item")
                .id
        )[0]
        .data["outcome"],
        "passed"
    );
}

/// The automated runbook with two rollback criteria that compare the error
/// rate of `metrics` with its baseline.
fn with_baseline_criteria(dir: &std::path::Path, metrics: &str) -> String {
    let block = |factor: &str| {
        format!(
            "  ```golive\n  check = \"metrics\"\n  target = \"{metrics}\"\n  interval = \"20ms\"\n  total = \"http_requests_total\"\n  errors = 'http_requests_total{{code=~\"5..\"}}'\n  expect = \"error_rate <= {factor} * baseline.error_rate\"\n  ```\n"
        )
    };
    let text = automated(dir);
    let (before, appendices) = text.split_once("## Appendices").expect("appendices");
    format!(
        "{before}## Rollback Procedure\n\n### Rollback Decision Criteria\n\n\
- [ ] **Error rate >2x baseline**\n{}\n\
- [ ] **Error rate >3x baseline**\n{}\n\
## Appendices{appendices}",
        block("2.0"),
        block("3.0")
    )
}

/// A criterion stated against the baseline: a run before GO records what
/// its check observes; after GO the check compares with that record (which
/// no later run changes), and a check that never ran before GO cannot be
/// judged.
#[tokio::test]
async fn baselines_are_recorded_before_go_and_compared_with_after() {
    use golive_deploy::record;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
    let errors = Arc::new(AtomicU64::new(10));
    let server = golive_testkit::http(golive_testkit::error_counters(errors.clone())).await;
    let metrics = format!("http://{}/metrics", server.addr);
    let dir = Env::folder("baseline");
    std::fs::write(dir.join("artifact"), "v2\n").expect("artifact");
    let location = format!("sqlite://{}", dir.join("golive.db").display());
    let env = Env::at(
        dir.clone(),
        location.clone(),
        &with_baseline_criteria(&dir, &metrics),
    );
    let rb = env.source.runbook();
    let id_of = |title: &str| {
        rb.items
            .iter()
            .find(|i| i.title == title)
            .unwrap_or_else(|| panic!("no item {title}"))
            .id
            .clone()
    };
    let (two, three) = (
        id_of("Error rate >2x baseline"),
        id_of("Error rate >3x baseline"),
    );
    let vars = golive_probe::Vars::new();
    let redact = golive_deploy::vars::Redactor::new(&vars);
    let run = |only: Vec<String>| {
        let (rb, redact, location, vars) = (&rb, &redact, &location, &vars);
        let (two, three) = (&two, &three);
        async move {
            let plan = golive_engine::plan(rb, vars, &only, &toml::Table::new()).expect("plan");
            assert!(plan.problems.is_empty(), "{:?}", plan.problems);
            let request = record::Run {
                store: location,
                only: &only,
                opts: golive_engine::RunOptions {
                    concurrency: 4,
                    allow_commands: false,
                    baselines: Default::default(),
                },
                new: false,
                deployment: None,
                confirm_rerun: false,
                vars,
            };
            let out = record::run(rb, &plan, redact, &request, Arc::new(Quiet))
                .await
                .expect("run");
            let of = |id: &str| {
                out.results
                    .iter()
                    .find(|r| rb.items[r.check.item].id == id)
                    .map(|r| (r.outcome.clone(), r.baseline.clone(), r.actual.clone()))
            };
            (of(two), of(three), out.deployment.clone())
        }
    };

    // before GO, at 1 % errors: the first criterion records its baseline and
    // passes; the second does not run
    let (first, none, deployment) = run(vec![id_of("Artifact present"), two.clone()]).await;
    let (outcome, baseline, _) = first.expect("ran");
    assert_eq!(outcome, golive_engine::Outcome::Passed);
    assert_eq!(baseline, Some(serde_json::json!({ "error_rate": 0.01 })));
    assert!(none.is_none());

    let store = golive_deploy::open_store(&location).await.expect("store");
    let row = golive_deploy::find(&store, Some(&deployment))
        .await
        .expect("row");
    let d = Deployment::new(store, row, &env.source).expect("open");
    let q = &Quiet;
    let key = format!(
        "{two}#{}",
        rb.items[rb.items.iter().position(|i| i.id == two).expect("item")].annotations[0]
            .loc
            .line
    );
    assert_eq!(
        kept_is_replay(&d).await.baselines.get(&key),
        Some(&serde_json::json!({ "error_rate": 0.01 }))
    );
    d.sign(&sign("1.1.2", "Quinn Tester", "QA Engineer"), q)
        .await
        .expect("signed");
    d.decide(&decide(true, "Dana Lead", "Deployment Lead", None), q)
        .await
        .expect("GO");

    // after GO, at 1.5 %: within twice the baseline; the second criterion
    // has no baseline to compare with
    errors.store(15, SeqCst);
    let (first, second, again) = run(vec![two.clone(), three.clone()]).await;
    assert_eq!(again, deployment, "continued");
    let (outcome, baseline, actual) = first.expect("ran");
    assert_eq!(outcome, golive_engine::Outcome::Passed);
    assert_eq!(baseline, None, "nothing is recorded after GO");
    assert!(
        actual.contains(&("baseline.error_rate".to_string(), serde_json::json!(0.01))),
        "{actual:?}"
    );
    match second.expect("ran").0 {
        golive_engine::Outcome::Error(why) => {
            assert!(why.contains("did not run before the GO decision"), "{why}")
        }
        other => panic!("expected no baseline, got {other:?}"),
    }

    // at 5 %, more than twice the baseline: the criterion fails
    errors.store(50, SeqCst);
    let (first, _, _) = run(vec![two.clone()]).await;
    assert_eq!(first.expect("ran").0, golive_engine::Outcome::Failed);
    // and a watch of the criterion, comparing with the same baseline, fires
    let watched = watch(&d, std::slice::from_ref(&two), 2, &vars, &Heard::default()).await;
    assert!(matches!(
        watched,
        golive_deploy::watch::Watched::Ran { firing: true }
    ));
    let k = kept_is_replay(&d).await;
    assert_eq!(k.baselines.len(), 1, "{:?}", k.baselines);
    assert_eq!(k.baselines[&key], serde_json::json!({ "error_rate": 0.01 }));
    drop(server);
}

/// A canary checklist of another team's shape, with an optional item and a
/// list step added.
fn canary() -> String {
    format!(
        "{}\n## Extras\n\n- [ ] Warm the cache (optional)\n\n## Deployment Steps\n\n1. Restart the workers (if needed)\n",
        include_str!("../../../tests/corpus/canary-rollout.md")
    )
}

const ROSTER: &str = "[[person]]\nname = \"Ann\"\nroles = [\"Deployment Lead\"]\n";

async fn options_and_skips(env: Env) {
    std::fs::write(env.dir.join("roster.toml"), ROSTER).expect("roster");
    let d = env.start().await;
    let q = &Quiet;
    let choose = |option| Choose {
        option,
        name: "Ann",
        role: "Deployment Lead",
        roster: None,
    };
    let skip = |item, reason| Skip {
        item,
        name: "Ann",
        role: "Deployment Lead",
        reason,
        roster: None,
    };
    assert_eq!(
        kind(d.choose(&choose("Option Z"), q).await),
        K::NoSuchChoice
    );
    // an option followed already (an item of it signed) is the one chosen
    d.sign(&sign("2.1.1", "Ann", "Deployment Lead"), q)
        .await
        .expect("an item of option A signed");
    assert_eq!(kind(d.choose(&choose("2.1/3"), q).await), K::SignedAlready);
    let c = d
        .choose(&choose("Option A: Blue-Green"), q)
        .await
        .expect("chosen");
    assert_eq!((c.option, c.set_aside), (0, 8));
    assert_eq!(kind(d.choose(&choose("canary"), q).await), K::Decided);
    let k = kept_is_replay(&d).await;
    let aside = golive_deploy::lifecycle::set_aside(&d.rb, &k);
    let ids: Vec<&str> = aside
        .keys()
        .map(|&i| d.rb.items[i].address.as_str())
        .collect();
    assert_eq!(
        ids,
        [
            "2.1.4", "2.1.5", "2.1.6", "2.1.7", "2.1.8", "2.1.9", "2.1.10", "2.1.11"
        ]
    );
    assert!(
        aside
            .values()
            .all(|why| why == "not the option chosen (Option A: Blue-Green)")
    );
    // skipping: only what the document marks optional, a task not a step,
    // with a reason, once
    assert_eq!(
        kind(d.skip(&skip("1.1", "not needed"), q).await),
        K::NotOptional
    );
    assert_eq!(
        kind(d.skip(&skip("6.1", "not needed"), q).await),
        K::NotSignable
    );
    assert_eq!(kind(d.skip(&skip("5.1", "  "), q).await), K::Incomplete);
    let i = d
        .skip(&skip("5.1", "cache is cold by design"), q)
        .await
        .expect("skipped");
    assert_eq!(d.rb.items[i].title, "Warm the cache (optional)");
    assert_eq!(
        kind(d.skip(&skip("5.1", "again"), q).await),
        K::SignedAlready
    );
    let k = kept_is_replay(&d).await;
    let status = golive_deploy::status_of(&d.rb, k);
    let extras = status
        .stages
        .iter()
        .find(|s| d.rb.stages[s.stage].title() == "Extras")
        .expect("extras");
    assert_eq!((extras.complete, extras.total), (1, 1));
}

#[tokio::test]
async fn options_chosen_and_items_skipped_on_sqlite() {
    options_and_skips(Env::sqlite_with("options", &canary())).await;
}

#[tokio::test]
async fn options_chosen_and_items_skipped_on_postgres() {
    options_and_skips(Env::postgres_with("options-pg", &canary())).await;
}

/// A checklist written as phases, to its end and its Phase 8 role blocks.
async fn sign_offs(env: Env) {
    std::fs::write(
        env.dir.join("roster.toml"),
        "[[person]]\nname = \"Ann\"\nroles = [\"Deployment Lead\", \"Launch Lead\"]\n\n\
         [[person]]\nname = \"Bob\"\nroles = [\"Head of Support\"]\n",
    )
    .expect("roster");
    let d = env.start().await;
    let q = &Quiet;
    let off = |role| SignOff {
        stage: None,
        name: if role == "Head of Support" {
            "Bob"
        } else {
            "Ann"
        },
        role,
        comment: Some("all phases done"),
        roster: None,
    };
    for i in ["1.1", "1.2", "1.3", "2.1", "2.2", "2.3"] {
        d.sign(&sign(i, "Ann", "Launch Lead"), q)
            .await
            .expect("signed");
    }
    d.decide(&decide(true, "Ann", "Deployment Lead", None), q)
        .await
        .expect("GO");
    for i in ["4.1", "4.2", "4.3", "5.1", "5.2", "5.3"] {
        d.sign(&sign(i, "Ann", "Launch Lead"), q)
            .await
            .expect("signed");
    }
    assert_eq!(
        kind(d.sign_off(&off("Launch Lead"), q).await),
        K::Incomplete
    );
    d.gate("smoke", "Ann", None, q).await.expect("gate");
    d.finish("Ann", None, jiff::Timestamp::now(), q)
        .await
        .expect("finished");
    assert_eq!(kind(d.sign_off(&off("QA Lead"), q).await), K::WrongRole);
    let unknown = SignOff {
        stage: Some("99"),
        ..off("Launch Lead")
    };
    assert_eq!(kind(d.sign_off(&unknown, q).await), K::Unknown);
    let first = d
        .sign_off(&off("Launch Lead"), q)
        .await
        .expect("signed off");
    assert_eq!(first.waiting, ["Head of Support"]);
    assert_eq!(
        kind(d.sign_off(&off("launch lead"), q).await),
        K::SignedAlready
    );
    let last = d
        .sign_off(&off("Head of Support"), q)
        .await
        .expect("signed off");
    assert!(last.waiting.is_empty());
    assert_eq!(last.signed.len(), 2);
    kept_is_replay(&d).await;
}

#[tokio::test]
async fn a_stage_signed_off_by_its_roles_on_sqlite() {
    let text = include_str!("../../../tests/corpus/phased-launch.md");
    sign_offs(Env::sqlite_with("signoff", text)).await;
}

#[tokio::test]
async fn a_stage_signed_off_by_its_roles_on_postgres() {
    let text = include_str!("../../../tests/corpus/phased-launch.md");
    sign_offs(Env::postgres_with("signoff-pg", text)).await;
}

/// A write asked at a state version the deployment has moved on from is
/// refused and records nothing; at the current version it goes through.
#[tokio::test]
async fn a_write_at_a_version_the_deployment_moved_on_from_is_refused() {
    let env = Env::sqlite("moved-on");
    let d = env.start().await;
    let v = d.kept(&Quiet).await.unwrap().seq;
    d.sign(&sign("1.1.2", "Dana Lead", "Deployment Lead"), &Quiet)
        .await
        .unwrap();
    *d.seen.lock().unwrap() = Some(v);
    let r = d
        .sign(&sign("1.1.1", "Rene Release", "Release Manager"), &Quiet)
        .await;
    assert_eq!(kind(r), K::MovedOn);
    assert_eq!(events(&d).await, 1, "nothing more recorded");
    // checked once: the next write decides from the state as it is
    *d.seen.lock().unwrap() = Some(v + 1);
    d.sign(&sign("1.1.1", "Rene Release", "Release Manager"), &Quiet)
        .await
        .unwrap();
    assert_eq!(events(&d).await, 2);
}
