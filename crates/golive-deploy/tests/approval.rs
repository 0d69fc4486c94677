//! The approval rules a document states, on a real store with real check
//! runs: self-approval refused, "2 of ROLE" needing two distinct people, a
//! sign-off gone stale after a new failing run, and a pending approval's
//! reminder and expiry on a clock the test sets.

use golive_deploy::{Decide, Deployment, Error, Quiet, RefusalKind as K, Sign, lifecycle, notify};
use golive_store::NewDeployment;
use std::path::Path;
use std::sync::Arc;

fn document(dir: &Path) -> String {
    let d = dir.display();
    format!(
        "# Rules\n\n```golive\nself_approval = false\nremind_after = \"30m\"\nexpire_after = \"2h\"\n```\n\n\
## Pre-Deployment Checklist\n\n### Readiness (2 items)\n\n\
- [ ] **Artifact present**\n  - **Responsible:** Release Manager\n  ```golive\n  check = \"file\"\n  path = \"{d}/artifact\"\n  ```\n\n\
- [ ] **Security review**\n  - **Responsible:** 2 of Security Engineer\n\n\
## Pre-Deployment Go/No-Go Decision\n\n**Decision:**\n- [ ] **GO** - Proceed\n- [ ] **NO-GO** - Abort\n\n\
**Sign-offs:**\n- Deployment Lead: ________ Date: ____\n- Engineering Manager: ________ Date: ____\n\n\
## Deployment Procedure\n\n### Phase 1: Deploy (5 minutes)\n\n**Step 1.1: Deploy the new version**\n- [ ] New version running\n\n\
## Appendices\n\n### A. Contact Information\n\n\
- Deployment Lead: Dana Lead (lead@rules.example.test)\n\
- Engineering Manager: Emil Manager (em@rules.example.test)\n\
- Engineering Manager: Erin Second (erin@rules.example.test)\n\
- Release Manager: Rene Release (rm@rules.example.test)\n\
- Security Engineer: Sam Secure (sam@rules.example.test)\n\
- Security Engineer: Sasha Shield (sasha@rules.example.test)\n"
    )
}

fn kind<T: std::fmt::Debug>(r: golive_deploy::Result<T>) -> K {
    match r {
        Err(Error::Refused(r)) | Err(Error::Invalid(r)) => r.kind,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn sign<'a>(item: &'a str, name: &'a str, role: &'a str, comment: Option<&'a str>) -> Sign<'a> {
    Sign {
        item,
        name,
        role,
        result: lifecycle::SignResult::Done,
        comment,
        evidence: &[],
        roster: None,
        signer: None,
    }
}

fn go<'a>(name: &'a str, role: &'a str) -> Decide<'a> {
    Decide {
        go: true,
        name,
        role,
        reason: None,
        roster: None,
        signer: None,
    }
}

struct Rig {
    dir: std::path::PathBuf,
    location: String,
    source: golive_deploy::Source,
}

impl Rig {
    fn new(tag: &str) -> Rig {
        let dir = std::env::temp_dir().join(format!("golive-rules-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let text = document(&dir);
        let path = dir.join("rules.md");
        std::fs::write(&path, &text).unwrap();
        Rig {
            location: format!("sqlite://{}", dir.join("golive.db").display()),
            source: golive_deploy::Source::new(path.display().to_string(), &text),
            dir,
        }
    }

    /// A deployment started by `by`.
    async fn start(&self, by: &str) -> Deployment {
        let store = golive_deploy::create_store(&self.location).await.unwrap();
        let id = store
            .create_deployment(&NewDeployment {
                runbook_path: self.source.path.clone(),
                runbook_sha256: self.source.sha256.clone(),
                started_by: by.into(),
                vars: serde_json::json!({}),
            })
            .await
            .unwrap();
        let row = golive_deploy::find(&store, Some(&id)).await.unwrap();
        Deployment::new(store, row, &self.source).unwrap()
    }

    /// Run the document's checks into deployment `d`.
    async fn run(&self, d: &Deployment) -> Vec<String> {
        let rb = self.source.runbook();
        let vars = golive_probe::Vars::new();
        let redact = golive_deploy::vars::Redactor::new(&vars);
        let plan = golive_engine::plan(&rb, &vars, &[], &toml::Table::new()).unwrap();
        let request = golive_deploy::record::Run {
            store: &self.location,
            only: &[],
            opts: golive_engine::RunOptions {
                concurrency: 2,
                allow_commands: false,
                baselines: Default::default(),
            },
            new: false,
            deployment: Some(d.id()),
            confirm_rerun: false,
            vars: &vars,
        };
        let out = golive_deploy::record::run(&rb, &plan, &redact, &request, Arc::new(Quiet))
            .await
            .expect("run");
        out.results
            .iter()
            .map(|r| r.outcome.as_str().to_string())
            .collect()
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Whether item `address` is complete, and who signed it done (stale
/// sign-offs apart).
async fn item(d: &Deployment, address: &str) -> (bool, Vec<String>, Vec<String>) {
    let k = d.kept(&Quiet).await.unwrap();
    let i =
        d.rb.items
            .iter()
            .position(|i| i.address == address)
            .unwrap();
    let st = lifecycle::states(&d.rb, &k);
    let s = st.get(&d.rb.items[i].id);
    (
        lifecycle::complete(&d.rb, i, s),
        s.map(|s| s.signed_by.clone()).unwrap_or_default(),
        s.map(|s| s.stale_by.clone()).unwrap_or_default(),
    )
}

fn later(minutes: i64) -> jiff::Timestamp {
    jiff::Timestamp::now()
        .checked_add(jiff::SignedDuration::from_mins(minutes))
        .unwrap()
}

#[tokio::test]
async fn two_of_a_role_needs_two_distinct_people() {
    let rig = Rig::new("two-of");
    let d = rig.start("Dana Lead").await;
    let q = &Quiet;
    d.sign(&sign("1.1.2", "Sam Secure", "Security Engineer", None), q)
        .await
        .expect("first");
    assert!(!item(&d, "1.1.2").await.0, "one of two is not enough");
    // the same person again is not a second person
    assert_eq!(
        kind(
            d.sign(&sign("1.1.2", "Sam Secure", "Security Engineer", None), q)
                .await
        ),
        K::SignedAlready
    );
    // another role is not the role named
    assert_eq!(
        kind(
            d.sign(&sign("1.1.2", "Rene Release", "Release Manager", None), q)
                .await
        ),
        K::WrongRole
    );
    d.sign(&sign("1.1.2", "Sasha Shield", "Security Engineer", None), q)
        .await
        .expect("second");
    let (done, by, _) = item(&d, "1.1.2").await;
    assert!(done);
    assert_eq!(by, ["Sam Secure", "Sasha Shield"]);
    // the roster check reads the role out of "2 of ROLE"
    let open = lifecycle::open_items(&d.rb, &d.kept(q).await.unwrap());
    assert!(open.iter().all(|o| d.rb.items[o.item].address != "1.1.2"));
}

#[tokio::test]
async fn the_starter_may_not_sign_go_when_the_document_says_so() {
    let rig = Rig::new("self");
    std::fs::write(rig.dir.join("artifact"), "v2\n").unwrap();
    let d = rig.start("Emil Manager").await;
    let q = &Quiet;
    assert_eq!(rig.run(&d).await, ["passed"]);
    d.sign(&sign("1.1.1", "Rene Release", "Release Manager", None), q)
        .await
        .unwrap();
    for who in ["Sam Secure", "Sasha Shield"] {
        d.sign(&sign("1.1.2", who, "Security Engineer", None), q)
            .await
            .unwrap();
    }
    let before = d.store.events(d.id()).await.unwrap().len();
    let r = d
        .decide(&go("Emil Manager", "Engineering Manager"), q)
        .await;
    match &r {
        Err(Error::Refused(r)) => {
            assert_eq!(r.kind, K::SelfApproval);
            assert!(r.message.contains("self_approval = false"), "{}", r.message);
        }
        other => panic!("expected the self-approval refusal, got {other:?}"),
    }
    assert_eq!(
        d.store.events(d.id()).await.unwrap().len(),
        before,
        "nothing recorded"
    );
    // another Engineering Manager signs, and GO is taken
    d.decide(&go("Dana Lead", "Deployment Lead"), q)
        .await
        .unwrap();
    let taken = d
        .decide(&go("Erin Second", "Engineering Manager"), q)
        .await
        .unwrap();
    assert!(taken.taken());
    // with the rule left at its default, the starter signs
    let plain = golive_runbook::parse_runbook(
        "plain.md",
        &document(&rig.dir).replace("self_approval = false\n", ""),
    );
    assert!(golive_deploy::approval::rules(&plain).self_approval);
    assert!(
        golive_deploy::approval::self_approval(&plain, "Emil Manager", "Emil Manager", true)
            .is_none()
    );
}

#[tokio::test]
async fn a_sign_off_goes_stale_after_a_new_failing_run() {
    let rig = Rig::new("stale");
    std::fs::write(rig.dir.join("artifact"), "v2\n").unwrap();
    let d = rig.start("Rene Release").await;
    let q = &Quiet;
    assert_eq!(rig.run(&d).await, ["passed"]);
    d.sign(&sign("1.1.1", "Rene Release", "Release Manager", None), q)
        .await
        .unwrap();
    assert_eq!(
        item(&d, "1.1.1").await,
        (true, vec!["Rene Release".into()], vec![])
    );
    // the same outcome again leaves the sign-off standing
    assert_eq!(rig.run(&d).await, ["passed"]);
    assert!(item(&d, "1.1.1").await.0);
    // the artifact is gone: the run fails, and the sign-off given over a
    // passing check no longer counts
    std::fs::remove_file(rig.dir.join("artifact")).unwrap();
    assert_eq!(rig.run(&d).await, ["failed"]);
    let (done, by, stale) = item(&d, "1.1.1").await;
    assert!(!done, "stale");
    assert!(by.is_empty());
    assert_eq!(stale, ["Rene Release"]);
    for who in ["Sam Secure", "Sasha Shield"] {
        d.sign(&sign("1.1.2", who, "Security Engineer", None), q)
            .await
            .unwrap();
    }
    assert_eq!(
        kind(d.decide(&go("Dana Lead", "Deployment Lead"), q).await),
        K::PreDeploymentOpen,
        "GO waits for the stale item"
    );
    // signing it again over the failure is an override, with why
    assert_eq!(
        kind(
            d.sign(&sign("1.1.1", "Rene Release", "Release Manager", None), q)
                .await
        ),
        K::Incomplete
    );
    d.sign(
        &sign(
            "1.1.1",
            "Rene Release",
            "Release Manager",
            Some("artifact moved to the CDN"),
        ),
        q,
    )
    .await
    .expect("signed again");
    assert!(item(&d, "1.1.1").await.0);
    d.decide(&go("Dana Lead", "Deployment Lead"), q)
        .await
        .expect("GO");
    let taken = d
        .decide(&go("Emil Manager", "Engineering Manager"), q)
        .await
        .expect("GO");
    assert!(taken.taken());
    // the rule can be turned off
    let off = golive_runbook::parse_runbook(
        "off.md",
        &document(&rig.dir).replace("self_approval = false\n", "stale_signoffs = false\n"),
    );
    assert!(!golive_deploy::approval::rules(&off).stale_signoffs);
}

#[tokio::test]
async fn a_pending_approval_is_reminded_then_expires_on_the_tests_clock() {
    let rig = Rig::new("pending");
    let mut d = rig.start("Rene Release").await;
    let q = &Quiet;
    d.sign(&sign("1.1.2", "Sam Secure", "Security Engineer", None), q)
        .await
        .unwrap();
    let k = d.kept(q).await.unwrap();
    let first = k.signoffs[0].seq;
    let key = format!("reminder:{}:{first}", d.rb.items[1].id);
    // ten minutes in: nothing yet; 31 minutes in: the reminder is due
    assert!(!notify::due_keys(&d.rb, &k, later(10), None).contains(&key));
    let due = notify::due_keys(&d.rb, &k, later(31), None);
    assert!(due.contains(&key), "{due:?}");
    let m = notify::message_for(&d.rb, &d.row, &k, later(31), &key);
    assert_eq!(m.to, ["Security Engineer"]);
    assert!(m.subject.contains("1.1.2 Security review"), "{}", m.subject);
    assert!(m.body.contains("Sam Secure"), "{}", m.body);
    assert!(m.body.contains("expire at"), "{}", m.body);
    // the roster's Security Engineers are who it reaches
    let roster = golive_deploy::roster_for(&d.rb, None).unwrap();
    let to = roster.addresses(&m.to[0]).unwrap_or_default();
    assert!(
        to.iter()
            .any(|a| a.as_str().contains("sam@rules.example.test")),
        "{to:?}"
    );
    assert!(
        to.iter()
            .any(|a| a.as_str().contains("sasha@rules.example.test")),
        "{to:?}"
    );
    // sent through the channels that send the communication plan, once
    let (hooks, seen) = golive_testkit::scripted_receiver(&[]).await;
    let channels = vec![
        golive_deploy::channel::Channel::parse(
            &format!("webhook=http://{}/hook", hooks.addr),
            &|_| None,
        )
        .unwrap(),
    ];
    let report = |_: &golive_runbook::Runbook,
                  _: &golive_store::Deployment,
                  _: &[golive_store::Event]| String::new();
    let sender = notify::Sender {
        channels: &channels,
        interval: None,
        report: &report,
        backoff: std::time::Duration::from_secs(1),
    };
    let queued = notify::queue(&d, &sender, later(31), q)
        .await
        .expect("queued");
    assert_eq!(queued, std::slice::from_ref(&key));
    let sent = notify::deliver(&d, &sender, q).await.expect("delivered");
    assert_eq!(sent.sent.len(), 1, "{sent:?}");
    let got = seen.lock().unwrap().clone();
    assert_eq!(got.len(), 1);
    assert!(
        got[0].body.contains("Reminder: 1.1.2 Security review"),
        "{}",
        got[0].body
    );
    let k = d.kept(q).await.unwrap();
    assert!(k.notices.contains_key(&key));
    assert!(
        notify::queue(&d, &sender, later(40), q)
            .await
            .unwrap()
            .is_empty()
    );

    // three hours in (past expire_after = 2h): the second signature does
    // not complete the approval; Sam's has expired and must be given again
    d.clock = Some(later(180));
    assert!(
        !notify::due_keys(&d.rb, &k, later(180), None)
            .iter()
            .any(|k| k.starts_with("reminder:"))
    );
    d.sign(&sign("1.1.2", "Sasha Shield", "Security Engineer", None), q)
        .await
        .unwrap();
    let (done, by, _) = item(&d, "1.1.2").await;
    assert!(!done, "an expired signature does not count");
    assert_eq!(by, ["Sasha Shield"]);
    let events = d.store.events(d.id()).await.unwrap();
    let expired: Vec<_> = events
        .iter()
        .filter(|e| e.kind == "approval.expired")
        .collect();
    assert_eq!(expired.len(), 1);
    assert_eq!(expired[0].data["signed"], serde_json::json!(["Sam Secure"]));
    // back to the store's time (its events are stamped by it): Sam signs
    // again, and the item is complete
    d.clock = None;
    d.sign(&sign("1.1.2", "Sam Secure", "Security Engineer", None), q)
        .await
        .expect("again");
    assert!(item(&d, "1.1.2").await.0);

    // the decision's signatures expire the same way
    d.clock = None;
    std::fs::write(rig.dir.join("artifact"), "v2\n").unwrap();
    assert_eq!(rig.run(&d).await, ["passed"]);
    d.sign(&sign("1.1.1", "Rene Release", "Release Manager", None), q)
        .await
        .unwrap();
    d.decide(&go("Emil Manager", "Engineering Manager"), q)
        .await
        .unwrap();
    d.clock = Some(later(150));
    let late = d.decide(&go("Erin Second", "Engineering Manager"), q).await;
    assert!(
        late.is_ok(),
        "Emil's signature expired, so the role is open again: {late:?}"
    );
    let late = late.unwrap();
    assert_eq!(late.waiting, ["Deployment Lead"]);
    d.clock = None;
    let taken = d
        .decide(&go("Dana Lead", "Deployment Lead"), q)
        .await
        .unwrap();
    assert!(taken.taken());
    let k = d.kept(q).await.unwrap();
    let signers: Vec<&str> = k.decision.as_ref().unwrap().data["signers"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["name"].as_str())
        .collect();
    assert_eq!(signers, ["Erin Second", "Dana Lead"]);
    // the record still verifies: expiry is an event of the chain
    let v = golive_deploy::record::verify(&d.store, Some(d.id()), None)
        .await
        .unwrap();
    assert!(v.chain.is_ok());
}
