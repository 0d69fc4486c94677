//! The communication plan sent from the document's own templates, against
//! real receivers on 127.0.0.1: an SMTP server with STARTTLS and
//! authentication (Debian's python3-aiosmtpd), Slack- and Teams-shaped
//! webhook receivers whose payloads are checked against the formats those
//! services document, a receiver that fails twice, and a golive killed
//! with a message queued and not delivered.

mod common;

use golive_testkit::{Hooked, Pki, SmtpServer, scripted_receiver};
use serde_json::Value;
use std::path::PathBuf;
use std::process::{Command, Output};

const PASSWORD: &str = "smtp-pa55-word";

struct Env {
    dir: PathBuf,
    notify: String,
}

impl Env {
    fn new(tag: &str, notify: String) -> Env {
        let dir = std::env::temp_dir().join(format!("golive-notify-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        std::fs::write(dir.join("comms.md"), include_str!("fixtures/comms.md")).expect("runbook");
        std::fs::write(
            dir.join("roster.toml"),
            r#"
[[person]]
name = "Dana Lead"
roles = ["Deployment Lead"]
contact = "lead@mini.example.test"

[[person]]
name = "Emil Manager"
roles = ["Engineering Manager"]
contact = "em@mini.example.test"

[[person]]
name = "Rene Release"
roles = ["Release Manager"]

[[person]]
name = "Quinn Tester"
roles = ["QA Engineer"]

[[person]]
name = "Devi Ops"
roles = ["DevOps Engineer"]
contact = "devops@mini.example.test"

[groups]
"Stakeholders" = ["exec@mini.example.test", "Engineering Manager"]
"Engineering team" = ["eng@mini.example.test", "DevOps Engineer"]
"#,
        )
        .expect("roster");
        Env { dir, notify }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_golive"));
        c.args(args)
            .current_dir(&self.dir)
            .env(
                "GOLIVE_STORE",
                format!("sqlite://{}", self.dir.join("golive.db").display()),
            )
            .env("GOLIVE_NOTIFY", &self.notify)
            .env("GOLIVE_SMTP_PASSWORD", PASSWORD)
            .env_remove("GOLIVE_SERVER")
            .env_remove("GOLIVE_TOKEN");
        c
    }

    fn golive(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("golive runs")
    }

    /// Run `args`; it must exit 0. Its stdout and stderr.
    fn ok(&self, args: &[&str]) -> (String, String) {
        let o = self.golive(args);
        let (stdout, stderr) = (
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        );
        assert_eq!(o.status.code(), Some(0), "{args:?}: {stdout}{stderr}");
        no_secret(&stdout);
        no_secret(&stderr);
        (stdout, stderr)
    }

    fn events(&self) -> Vec<Value> {
        let (out, _) = self.ok(&["report", "--format", "json"]);
        let v: Value = serde_json::from_str(&out).expect("json");
        v["events"].as_array().cloned().unwrap_or_default()
    }

    /// From a new deployment to GO.
    fn to_go(&self, at: Option<&str>) {
        let mut run = vec!["run", "comms.md", "--var", "VERSION=1.1.0"];
        if let Some(at) = at {
            run.extend(["--at", at]);
        }
        self.ok(&run);
        self.ok(&[
            "sign",
            "1.1.1",
            "--as",
            "Rene Release",
            "--role",
            "Release Manager",
        ]);
        self.ok(&[
            "sign",
            "1.1.2",
            "--as",
            "Rene Release",
            "--role",
            "Release Manager",
        ]);
        self.ok(&[
            "decide",
            "go",
            "--as",
            "Dana Lead",
            "--role",
            "Deployment Lead",
        ]);
        self.ok(&[
            "decide",
            "go",
            "--as",
            "Emil Manager",
            "--role",
            "Engineering Manager",
        ]);
    }

    /// From GO to SUCCESS.
    fn to_success(&self) {
        for step in ["3.1.1", "3.1.2", "3.2.1"] {
            self.ok(&["done", step, "--as", "Dana Lead"]);
        }
        self.ok(&[
            "sign",
            "4.1",
            "4.2",
            "--as",
            "Quinn Tester",
            "--role",
            "QA Engineer",
        ]);
        self.ok(&["gate", "smoke", "--as", "Dana Lead"]);
        self.ok(&[
            "sign",
            "6.1",
            "--as",
            "Quinn Tester",
            "--role",
            "QA Engineer",
        ]);
        self.ok(&["gate", "verification", "--as", "Dana Lead"]);
        self.ok(&["finish", "--as", "Dana Lead"]);
    }

    /// Nothing of a secret in the store's bytes.
    fn store_has_no_secret(&self) {
        let db = std::fs::read(self.dir.join("golive.db")).expect("db");
        let text = String::from_utf8_lossy(&db);
        no_secret(&text);
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The secrets of these tests: the SMTP password and the webhook paths'
/// token.
fn no_secret(text: &str) {
    assert!(!text.contains(PASSWORD), "the SMTP password leaked: {text}");
    assert!(!text.contains("T0KEN"), "a webhook URL leaked: {text}");
}

/// A Slack incoming webhook's body as Slack documents it: a `text`
/// fallback, Block Kit blocks of known types, a header of plain text up to
/// 150 characters, section text up to 3000, at most 50 blocks.
fn check_slack(p: &Value) {
    assert!(p["text"].as_str().is_some_and(|t| !t.is_empty()), "{p}");
    let blocks = p["blocks"].as_array().expect("blocks");
    assert!(!blocks.is_empty() && blocks.len() <= 50);
    for b in blocks {
        match b["type"].as_str() {
            Some("header") => {
                assert_eq!(b["text"]["type"], "plain_text");
                assert!(b["text"]["text"].as_str().unwrap().chars().count() <= 150);
            }
            Some("section") => {
                assert!(["mrkdwn", "plain_text"].contains(&b["text"]["type"].as_str().unwrap()));
                assert!(b["text"]["text"].as_str().unwrap().chars().count() <= 3000);
            }
            Some("context") => {
                let e = b["elements"].as_array().expect("elements");
                assert!(!e.is_empty() && e.len() <= 10);
            }
            other => panic!("block type {other:?} in {p}"),
        }
    }
}

/// A Teams workflow webhook's body: a `message` with one Adaptive Card
/// attachment (its content type, schema, version and TextBlocks).
fn check_teams(p: &Value) {
    assert_eq!(p["type"], "message");
    let a = p["attachments"].as_array().expect("attachments");
    assert_eq!(a.len(), 1);
    assert_eq!(
        a[0]["contentType"],
        "application/vnd.microsoft.card.adaptive"
    );
    let card = &a[0]["content"];
    assert_eq!(card["type"], "AdaptiveCard");
    assert_eq!(
        card["$schema"],
        "http://adaptivecards.io/schemas/adaptive-card.json"
    );
    assert!(
        card["version"]
            .as_str()
            .is_some_and(|v| v.starts_with("1."))
    );
    for b in card["body"].as_array().expect("body") {
        assert_eq!(b["type"], "TextBlock");
        assert!(b["text"].is_string());
    }
}

fn bodies(seen: &[Hooked], path: &str) -> Vec<Value> {
    seen.iter()
        .filter(|h| h.path == path)
        .map(|h| serde_json::from_str(&h.body).expect("json body"))
        .collect()
}

/// The text of a Slack payload's header and section.
fn slack_text(p: &Value) -> String {
    format!(
        "{}\n{}",
        p["blocks"][0]["text"]["text"].as_str().unwrap_or(""),
        p["blocks"][1]["text"]["text"].as_str().unwrap_or("")
    )
}

fn header<'a>(raw: &'a str, name: &str) -> Option<&'a str> {
    raw.lines()
        .find(|l| {
            l.to_lowercase()
                .starts_with(&format!("{}:", name.to_lowercase()))
        })
        .map(|l| l[name.len() + 1..].trim())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_scripted_deployment_tells_everyone_on_every_channel() {
    let pki = Pki::new();
    let smtp = SmtpServer::start(&pki, "golive-bot", PASSWORD);
    let (hooks, seen) = scripted_receiver(&[]).await;
    let notify = format!(
        "slack=http://{0}/slack/T0KEN,teams=http://{0}/teams/T0KEN,email=smtp://golive-bot@127.0.0.1:{1}?from=golive@mini.example.test&ca={2}",
        hooks.addr,
        smtp.port,
        pki.ca_file.display()
    );
    let env = Env::new("all", notify);
    tokio::task::block_in_place(|| {
        env.to_go(Some("2026-12-02T14:00:00Z"));
        env.to_success();
    });
    let seen = seen.lock().unwrap().clone();
    // Slack: every message, in order, each as Slack documents it
    let slack = bodies(&seen, "/slack/T0KEN");
    slack.iter().for_each(check_slack);
    let keys: Vec<String> = slack
        .iter()
        .map(|p| {
            p["blocks"][2]["elements"][0]["text"]
                .as_str()
                .unwrap()
                .rsplit(" · ")
                .next()
                .unwrap()
                .to_string()
        })
        .collect();
    let gates: Vec<&String> = keys
        .iter()
        .filter(|k| k.starts_with("status:gate:"))
        .collect();
    assert_eq!(gates.len(), 2, "the smoke and verification gates: {keys:?}");
    assert_eq!(
        keys,
        [
            "announcement",
            "status:go",
            "status:phase:deployment-procedure/phase-1-preparation",
            "status:phase:deployment-procedure/phase-2-deploy",
            gates[0],
            gates[1],
            "success",
            "report"
        ],
        "{keys:?}"
    );
    let go = slack_text(&slack[1]);
    assert!(go.contains("MINI STATUS - 20"), "{go}");
    assert!(go.contains("Progress: 0/3 steps complete"), "{go}");
    assert!(go.contains("Issues: NONE"), "{go}");
    let phase = slack_text(&slack[2]);
    assert!(
        phase.contains("Progress: 2/3 steps complete") && phase.contains("Next: Smoke testing"),
        "{phase}"
    );
    let success = slack_text(&slack[6]);
    assert!(
        success.starts_with("Mini Deployment Complete: v1.1.0"),
        "{success}"
    );
    assert!(
        success.contains("- Smoke test results: 2/2 passed"),
        "{success}"
    );
    let dur = regex::Regex::new(r"- Deployment duration: \d+\.\d minutes").unwrap();
    assert!(dur.is_match(&success), "{success}");
    // Teams: the same messages as Adaptive Cards
    let teams = bodies(&seen, "/teams/T0KEN");
    teams.iter().for_each(check_teams);
    assert_eq!(teams.len(), slack.len());
    // each delivery carries its own idempotency key
    let mut ids: Vec<&str> = seen
        .iter()
        .filter_map(|h| h.idempotency_key.as_deref())
        .collect();
    assert_eq!(ids.len(), seen.len());
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), seen.len(), "no message went twice");

    // email: the milestones only, over STARTTLS, authenticated
    let mail = smtp.messages();
    let subjects: Vec<&str> = mail
        .iter()
        .map(|(_, raw)| header(raw, "Subject").unwrap_or(""))
        .collect();
    assert_eq!(subjects.len(), 4, "{subjects:?}");
    assert_eq!(
        subjects[0],
        "Mini Deployment Scheduled: 2026-12-02 14:00 UTC"
    );
    assert!(subjects[1].starts_with("MINI STATUS - "), "{subjects:?}");
    assert_eq!(subjects[2], "Mini Deployment Complete: v1.1.0");
    for (envelope, _) in &mail {
        assert_eq!(envelope["tls"], true, "STARTTLS before the message");
        assert_eq!(envelope["user"], "golive-bot", "authenticated");
        assert_eq!(envelope["from"], "golive@mini.example.test");
    }
    // the recipients: the groups and roles the document names, resolved
    let to = |n: usize| {
        let mut t: Vec<String> = mail[n].0["to"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect();
        t.sort();
        t
    };
    assert_eq!(
        to(0),
        [
            "em@mini.example.test",
            "exec@mini.example.test",
            "lead@mini.example.test"
        ]
    );
    assert_eq!(to(2), ["em@mini.example.test", "exec@mini.example.test"]);
    assert_eq!(to(3), ["devops@mini.example.test", "eng@mini.example.test"]);
    let success_mail = &mail[2].1;
    assert!(
        success_mail.contains("Smoke test results: 2/2 passed"),
        "{success_mail}"
    );
    assert!(success_mail.contains("Version") || success_mail.contains("v1.1.0"));
    // the internal report carries the HTML report
    let report_mail = &mail[3].1;
    assert!(report_mail.contains("multipart/mixed"), "{report_mail}");
    assert!(
        report_mail.contains("Content-Type: text/html"),
        "{report_mail}"
    );
    assert!(
        report_mail.contains("Content-Disposition: attachment; filename=\"d-"),
        "{report_mail}"
    );

    // the filled document: each message's items ticked, Sent by golive
    let (md, _) = env.ok(&["report", "--format", "md"]);
    let sent_by =
        regex::Regex::new(r"\*\*Sent by:\*\* golive \*\*Time:\*\* \d\d:\d\d UTC").unwrap();
    assert_eq!(
        sent_by.find_iter(&md).count(),
        2,
        "announcement and success:\n{md}"
    );
    assert!(md.contains("- [x] **To:** Stakeholders\n"), "{md}");
    assert!(md.contains("- [x] T+0: Deployment started"), "{md}");
    assert!(
        md.contains("- [ ] T+15: Phase 1-2 complete"),
        "not sent: {md}"
    );
    assert!(
        md.contains("- [x] T+30: Deployment complete / SUCCESS or ROLLBACK initiated"),
        "{md}"
    );
    let completed =
        regex::Regex::new(r"\*\*Completed by:\*\* golive \*\*Time:\*\* \d\d:\d\d UTC").unwrap();
    assert!(completed.is_match(&md), "the internal report: {md}");
    no_secret(&md);
    // status tells each delivery
    let (status, _) = env.ok(&["status"]);
    assert!(
        status.contains("Messages: 8 queued; 20 of 20 deliveries sent"),
        "{status}"
    );
    env.store_has_no_secret();
    assert_eq!(env.golive(&["audit", "verify"]).status.code(), Some(0));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_rollback_is_announced_with_its_reason_by_the_command_that_starts_it() {
    let (hooks, seen) = scripted_receiver(&[]).await;
    let env = Env::new(
        "rollback",
        format!("webhook=http://{}/hook/T0KEN", hooks.addr),
    );
    let (events_before, rollback) = tokio::task::block_in_place(|| {
        env.to_go(None);
        let before = env.events().len();
        env.ok(&[
            "rollback",
            "--as",
            "Dana Lead",
            "--role",
            "Deployment Lead",
            "--reason",
            "error rate 4% after deploy",
        ]);
        let (_, stderr) = env.ok(&[
            "rollback",
            "--as",
            "Emil Manager",
            "--role",
            "Engineering Manager",
            "--reason",
            "error rate 4% after deploy",
        ]);
        (before, stderr)
    });
    assert!(
        rollback.contains("golive: sent rollback-initiated to webhook at 127.0.0.1"),
        "{rollback}"
    );
    let seen_now = seen.lock().unwrap().clone();
    let last = seen_now.last().expect("a message");
    let body: Value = serde_json::from_str(&last.body).unwrap();
    assert_eq!(
        body["subject"],
        "ROLLBACK INITIATED - error rate 4% after deploy - ETA 5 minutes"
    );
    assert_eq!(body["kind"], "rollback-initiated");
    // queued and sent by the command that started the rollback: right
    // after its own events, before any other command's
    let events = env.events();
    let kinds: Vec<&str> = events[events_before..]
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    let started = kinds
        .iter()
        .position(|k| *k == "rollback.started")
        .expect("started");
    assert_eq!(
        &kinds[started + 1..],
        ["notice.queued", "notice.sending", "notice.sent"],
        "{kinds:?}"
    );
    tokio::task::block_in_place(|| {
        env.ok(&["done", "7.2.1", "--as", "Dana Lead"]);
        env.ok(&["done", "7.2.2", "--as", "Dana Lead"]);
    });
    let seen_now = seen.lock().unwrap().clone();
    let kinds: Vec<String> = seen_now
        .iter()
        .map(|h| {
            serde_json::from_str::<Value>(&h.body).unwrap()["key"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(
        kinds[kinds.len() - 2..],
        ["rollback-complete", "report"],
        "{kinds:?}"
    );
    let (md, _) = env.ok(&["report", "--format", "md"]);
    // R1's announcement lines, and the post-rollback communication
    assert!(
        md.contains("- [x] Rollback announced\n- [x] Stakeholders notified"),
        "{md}"
    );
    assert!(md.contains("- [x] **Stakeholder Communication**"), "{md}");
    assert!(
        md.contains("- [x] T+30: Deployment complete / SUCCESS or ROLLBACK initiated"),
        "{md}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_receiver_that_fails_twice_gets_the_message_once() {
    let (hooks, seen) = scripted_receiver(&[("/flaky/T0KEN", &[500, 500])]).await;
    let env = Env::new(
        "flaky",
        format!("webhook=http://{}/flaky/T0KEN", hooks.addr),
    );
    let stderr = tokio::task::block_in_place(|| {
        env.ok(&["run", "comms.md", "--var", "VERSION=1.1.0"]);
        env.ok(&[
            "sign",
            "1.1.1",
            "1.1.2",
            "--as",
            "Rene Release",
            "--role",
            "Release Manager",
        ]);
        env.ok(&[
            "decide",
            "go",
            "--as",
            "Dana Lead",
            "--role",
            "Deployment Lead",
        ]);
        env.ok(&[
            "decide",
            "go",
            "--as",
            "Emil Manager",
            "--role",
            "Engineering Manager",
        ])
        .1
    });
    assert!(
        stderr.contains("status:go to webhook at 127.0.0.1"),
        "{stderr}"
    );
    assert!(
        stderr.contains("failed (attempt 1): webhook at 127.0.0.1"),
        "{stderr}"
    );
    assert!(stderr.contains("answered 500"), "{stderr}");
    // the command waits a few seconds for the retries; what it could not
    // wait for, the next golive sends (on a slow machine)
    tokio::task::block_in_place(|| env.ok(&["notify", "--send"]));
    let seen = seen.lock().unwrap().clone();
    let statuses: Vec<u16> = seen.iter().map(|h| h.status).collect();
    assert_eq!(statuses, [500, 500, 200]);
    let keys: Vec<&str> = seen
        .iter()
        .filter_map(|h| h.idempotency_key.as_deref())
        .collect();
    assert_eq!(keys.len(), 3);
    assert!(
        keys.iter()
            .all(|k| *k == keys[0] && k.ends_with("/status:go/webhook")),
        "{keys:?}"
    );
    let events = tokio::task::block_in_place(|| env.events());
    let count = |kind: &str| events.iter().filter(|e| e["kind"] == kind).count();
    assert_eq!((count("notice.failed"), count("notice.sent")), (2, 1));
    let failed = events
        .iter()
        .find(|e| e["kind"] == "notice.failed")
        .unwrap();
    assert!(
        failed["data"]["cause"]
            .as_str()
            .unwrap()
            .contains("answered 500")
    );
    assert!(failed["data"]["retry_at"].is_string());
    // sent once: a later command sends nothing again
    let (out, _) = tokio::task::block_in_place(|| env.ok(&["notify", "--send"]));
    assert!(out.contains("0 sent now, 0 not delivered"), "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_golive_killed_before_delivery_sends_once_after_restart() {
    // a listener that never accepts: the golive sending to it waits for an
    // answer that does not come, holding its claim, and is killed
    let black_hole = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let env = Env::new(
        "killed",
        format!(
            "webhook=http://{}/hook/T0KEN",
            black_hole.local_addr().unwrap()
        ),
    );
    tokio::task::block_in_place(|| {
        env.ok(&["run", "comms.md", "--var", "VERSION=1.1.0"]);
        env.ok(&[
            "sign",
            "1.1.1",
            "1.1.2",
            "--as",
            "Rene Release",
            "--role",
            "Release Manager",
        ]);
        env.ok(&[
            "decide",
            "go",
            "--as",
            "Dana Lead",
            "--role",
            "Deployment Lead",
        ]);
    });
    let mut child = env
        .command(&[
            "decide",
            "go",
            "--as",
            "Emil Manager",
            "--role",
            "Engineering Manager",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("golive decide");
    // wait for its claim on the delivery, then kill it
    let db = env.dir.join("golive.db");
    let claimed = || {
        let c =
            rusqlite::Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
                .ok()?;
        c.query_row(
            "SELECT count(*) FROM events WHERE kind = 'notice.sending'",
            [],
            |r| r.get::<_, i64>(0),
        )
        .ok()
    };
    let mut waited = 0;
    while claimed() != Some(1) {
        assert!(waited < 600, "golive never claimed the delivery");
        std::thread::sleep(std::time::Duration::from_millis(50));
        waited += 1;
    }
    child.kill().expect("kill");
    child.wait().expect("wait");
    drop(black_hole);
    let queued_only = tokio::task::block_in_place(|| env.events());
    assert!(queued_only.iter().any(|e| e["kind"] == "notice.queued"));
    assert!(!queued_only.iter().any(|e| e["kind"] == "notice.sent"));
    let (status, _) = tokio::task::block_in_place(|| env.ok(&["status"]));
    assert!(status.contains("status:go on webhook: sending"), "{status}");

    // restarted (the same channel, now answering): sent once, at once
    let (hooks, seen) = scripted_receiver(&[]).await;
    let again = Env {
        dir: env.dir.clone(),
        notify: format!("webhook=http://{}/hook/T0KEN", hooks.addr),
    };
    let (out, _) = tokio::task::block_in_place(|| again.ok(&["notify", "--send"]));
    assert!(out.contains("1 sent now, 0 not delivered"), "{out}");
    let (out, _) = tokio::task::block_in_place(|| again.ok(&["notify", "--send"]));
    assert!(out.contains("0 sent now, 0 not delivered"), "{out}");
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1, "sent once");
    let body: Value = serde_json::from_str(&seen[0].body).unwrap();
    assert_eq!(body["key"], "status:go");
    let events = tokio::task::block_in_place(|| again.events());
    assert_eq!(
        events.iter().filter(|e| e["kind"] == "notice.sent").count(),
        1
    );
    std::mem::forget(again); // the folder is env's
}

#[tokio::test(flavor = "multi_thread")]
async fn a_watch_delivers_what_the_commands_could_not() {
    // the receiver is down for the decision and the first retries
    let (hooks, seen) = scripted_receiver(&[("/hook/T0KEN", &[503, 503, 503])]).await;
    let env = Env::new("watch", format!("webhook=http://{}/hook/T0KEN", hooks.addr));
    let (status, watched) = tokio::task::block_in_place(|| {
        env.to_go(None);
        let (status, _) = env.ok(&["status"]);
        let watched = env.ok(&["watch", "comms.md", "--count", "6", "--interval", "1s"]);
        (status, watched)
    });
    assert!(
        status.contains("status:go on webhook: retrying (attempt "),
        "{status}"
    );
    assert!(
        status.contains(" failed: webhook at 127.0.0.1:"),
        "{status}"
    );
    assert!(
        watched
            .1
            .contains("golive: sent status:go to webhook at 127.0.0.1"),
        "{}",
        watched.1
    );
    let statuses: Vec<u16> = seen.lock().unwrap().iter().map(|h| h.status).collect();
    assert_eq!(statuses, [503, 503, 503, 200]);
    let (status, _) = env.ok(&["status"]);
    assert!(
        status.contains("Messages: 1 queued; 1 of 1 deliveries sent"),
        "{status}"
    );
}

#[test]
fn preview_prints_every_message_with_its_recipients_and_sends_nothing() {
    let env = Env::new(
        "preview",
        "webhook=http://127.0.0.1:9/hook/T0KEN,email=smtp://127.0.0.1:9".into(),
    );
    env.ok(&[
        "run",
        "comms.md",
        "--var",
        "VERSION=1.1.0",
        "--notify",
        "webhook=http://127.0.0.1:9/x",
    ]);
    let (out, _) = env.ok(&["notify", "--preview"]);
    for want in [
        "== announcement (not queued)",
        "Subject: Mini Deployment Scheduled: [DATE] [TIME]",
        "To: Stakeholders <exec@mini.example.test, em@mini.example.test>; Deployment Lead <lead@mini.example.test>",
        "Channels: webhook at 127.0.0.1:9, email via 127.0.0.1:9",
        "== status:go (not queued)",
        "MINI STATUS - ",
        "== rollback-initiated (not queued)",
        "Subject: ROLLBACK INITIATED - [REASON] - ETA 5 minutes",
        "== success (not queued)",
        "Subject: Mini Deployment Complete: v1.1.0",
        "== report (not queued)",
        "To: Engineering team <eng@mini.example.test, devops@mini.example.test>",
        "Attached: the HTML report",
    ] {
        assert!(out.contains(want), "{want}\n{out}");
    }
    // a status update goes to the chat channels only
    let go = out.split("== status:go").nth(1).unwrap();
    assert!(
        go.contains("Channels: webhook at 127.0.0.1:9\n")
            || go.contains("Channels: webhook at 127.0.0.1:9, email"),
        "{go}"
    );
    assert!(
        !env.events().iter().any(|e| e["kind"] == "notice.queued"),
        "nothing queued"
    );
}

#[test]
fn a_recipient_with_no_address_is_a_lint_finding_when_email_is_configured() {
    let env = Env::new("lint", String::new());
    let out = env
        .command(&["lint", "comms.md", "--notify", "email=smtp://127.0.0.1:9"])
        .env_remove("GOLIVE_NOTIFY")
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(0),
        "a warning, not an error: {text}"
    );
    assert!(
        !text.contains("no address"),
        "every recipient resolves: {text}"
    );
    std::fs::write(
        env.dir.join("roster.toml"),
        "[[person]]\nname = \"Dana Lead\"\nroles = [\"Deployment Lead\"]\n",
    )
    .unwrap();
    let out = env
        .command(&["lint", "comms.md", "--notify", "email=smtp://127.0.0.1:9"])
        .env_remove("GOLIVE_NOTIFY")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let line = include_str!("fixtures/comms.md")
        .lines()
        .position(|l| l == "- [ ] **To:** Stakeholders, Deployment Lead")
        .unwrap()
        + 1;
    assert!(
        text.contains(&format!("warning[unaddressed-recipient]: Stakeholders has no email address, and the plan sends by email via 127.0.0.1:9\n  --> comms.md:{line}:1")),
        "{text}"
    );
    // without a channel that needs addresses, no finding
    let out = env
        .command(&["lint", "comms.md"])
        .env_remove("GOLIVE_NOTIFY")
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&out.stdout).contains("unaddressed"));
}
