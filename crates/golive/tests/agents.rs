//! `golive serve` and `golive agent` as processes: agents in two locations
//! share the checks of theirs; the agents of one location are killed
//! (SIGKILL): after the heartbeat window its checks are "could not observe"
//! and an alert reaches the server's channel; an agent started there again
//! observes the next run.

use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::Duration;

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn golive(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_golive"))
        .args(args)
        .current_dir(dir)
        .env(
            "GOLIVE_STORE",
            format!("sqlite://{}", dir.join("golive.db").display()),
        )
        .env_remove("GOLIVE_NOTIFY")
        .env_remove("GOLIVE_SERVER")
        .env_remove("GOLIVE_TOKEN")
        .output()
        .expect("golive runs")
}

/// The token a `golive users add` or `agents add` printed last.
fn token(dir: &Path, args: &[&str]) -> String {
    let o = golive(dir, args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .last()
        .unwrap()
        .to_string()
}

fn serve(dir: &Path, hook: &str) -> (Proc, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_golive"))
        .args(["serve", "--notify"])
        .arg(format!("webhook={hook}"))
        // its other settings from the environment (the heartbeat window the
        // quiet location's test waits out is 2 s, not the default 30 s)
        .env("GOLIVE_LISTEN", "127.0.0.1:0")
        .env("GOLIVE_AGENT_WINDOW", "2s")
        .current_dir(dir)
        .env(
            "GOLIVE_STORE",
            format!("sqlite://{}", dir.join("golive.db").display()),
        )
        .env_remove("GOLIVE_NOTIFY")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("golive serve");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let url = loop {
        let l = lines.next().expect("serve says where it listens").unwrap();
        if let Some(rest) = l.strip_prefix("golive: serving ") {
            break rest
                .split_whitespace()
                .next()
                .unwrap()
                .trim_end_matches('/')
                .to_string();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    (Proc(child), url)
}

fn agent(dir: &Path, url: &str, token: &str, location: &str) -> Proc {
    Proc(
        Command::new(env!("CARGO_BIN_EXE_golive"))
            .args([
                "agent",
                "--server",
                url,
                "--token",
                token,
                "--location",
                location,
            ])
            .args(["--every", "100ms", "--concurrency", "2"])
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("golive agent"),
    )
}

async fn api(
    url: &str,
    token: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut headers = vec![("authorization", format!("Bearer {token}"))];
    if body.is_some() {
        headers.push(("content-type", "application/json".into()));
    }
    let (status, bytes) = golive_probe::request(
        method,
        &format!("{url}{path}"),
        &headers,
        body.map(|b| b.to_string()),
        None,
    )
    .await
    .expect("the server answers");
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// The check events of run `run` (after its `run.started`, before the next).
async fn checks_of_run(url: &str, token: &str, id: &str, run: i64) -> Vec<Value> {
    let (_, v) = api(
        url,
        token,
        "GET",
        &format!("/api/v1/deployments/{id}/events?after={}", run),
        None,
    )
    .await;
    let mut out = Vec::new();
    for e in v["events"].as_array().cloned().unwrap_or_default() {
        if e["kind"] == "run.started" {
            break;
        }
        if e["kind"] == "check" {
            out.push(e);
        }
    }
    out
}

/// Wait (at most 30 s) until run `run` has `n` check events.
async fn wait_checks(url: &str, token: &str, id: &str, run: i64, n: usize) -> Vec<Value> {
    for _ in 0..300 {
        let c = checks_of_run(url, token, id, run).await;
        if c.len() >= n {
            return c;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    checks_of_run(url, token, id, run).await
}

fn document(dir: &Path, target: &str) -> PathBuf {
    let mut text =
        String::from("# Located\n\n## Pre-Deployment Checklist\n\n### Reachable (3 items)\n\n");
    for n in 1..=3 {
        text.push_str(&format!(
            "- [ ] **Endpoint {n} reachable**\n  ```golive\n  check = \"http\"\n  target = \"{target}/live\"\n  expect = \"status == 200\"\n  locations = [\"eu-west\", \"us-east\"]\n  ```\n\n"
        ));
    }
    let path = dir.join("located.md");
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_in_two_locations_and_one_location_going_quiet() {
    let dir = std::env::temp_dir().join(format!("golive-agents-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (hooks, seen) = golive_testkit::scripted_receiver(&[]).await;
    let lead = token(
        &dir,
        &["users", "add", "Dana Lead", "--role", "Deployment Lead"],
    );
    let eu1 = token(&dir, &["agents", "add", "eu-1", "--location", "eu-west"]);
    let eu2 = token(&dir, &["agents", "add", "eu-2", "--location", "eu-west"]);
    let us1 = token(&dir, &["agents", "add", "us-1", "--location", "us-east"]);
    assert!(eu1.starts_with("gla_"), "{eu1}");
    let (_server, url) = serve(&dir, &format!("http://{}/hook", hooks.addr));
    let path = document(&dir, &url);
    let sha = token(&dir, &["runbooks", "add", &path.display().to_string()]);
    let (s, v) = api(
        &url,
        &lead,
        "POST",
        "/api/v1/deployments",
        Some(json!({ "runbook": sha })),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let id = v["id"].as_str().unwrap().to_string();
    // an agent's token is no person's: it cannot sign
    let (s, _) = api(
        &url,
        &eu1,
        "POST",
        &format!("/api/v1/deployments/{id}/signoffs"),
        Some(json!({ "item": "1.1.1" })),
    )
    .await;
    assert_eq!(s, 401);
    // the agent at the wrong location is told so
    let o = Command::new(env!("CARGO_BIN_EXE_golive"))
        .args([
            "agent",
            "--server",
            &url,
            "--token",
            &us1,
            "--location",
            "eu-west",
        ])
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("knows this agent (us-1) at us-east"));

    let a1 = agent(&dir, &url, &eu1, "eu-west");
    let a2 = agent(&dir, &url, &eu2, "eu-west");
    let mut b1 = agent(&dir, &url, &us1, "us-east");
    let (s, v) = api(
        &url,
        &lead,
        "POST",
        &format!("/api/v1/deployments/{id}/runs"),
        Some(json!({})),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["jobs"], 6);
    let run = v["run"].as_i64().unwrap();
    let checks = wait_checks(&url, &lead, &id, run, 6).await;
    assert_eq!(checks.len(), 6, "{checks:#?}");
    // every check once per location, passed, by an agent of that location
    let mut jobs: Vec<&str> = checks
        .iter()
        .map(|c| c["data"]["job"].as_str().unwrap())
        .collect();
    jobs.sort();
    jobs.dedup();
    assert_eq!(jobs.len(), 6, "no job recorded twice");
    for c in &checks {
        assert_eq!(c["data"]["outcome"], "passed", "{c}");
        let (loc, by) = (
            c["data"]["location"].as_str().unwrap(),
            c["actor"].as_str().unwrap(),
        );
        assert!(
            (loc == "eu-west" && by.starts_with("eu-")) || (loc == "us-east" && by == "us-1"),
            "{loc} by {by}"
        );
    }

    // us-east's only agent dies
    b1.0.kill().unwrap();
    b1.0.wait().unwrap();
    drop(b1);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (s, v) = api(
        &url,
        &lead,
        "POST",
        &format!("/api/v1/deployments/{id}/runs"),
        Some(json!({})),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let run = v["run"].as_i64().unwrap();
    let checks = wait_checks(&url, &lead, &id, run, 6).await;
    assert_eq!(checks.len(), 6, "{checks:#?}");
    for c in &checks {
        match c["data"]["location"].as_str().unwrap() {
            "eu-west" => assert_eq!(c["data"]["outcome"], "passed"),
            _ => {
                assert_eq!(c["data"]["outcome"], "error", "never a pass: {c}");
                assert!(
                    c["data"]["message"]
                        .as_str()
                        .unwrap()
                        .contains("could not observe"),
                    "{c}"
                );
            }
        }
    }
    // the alert went to the server's channel
    let mut alerted = false;
    for _ in 0..50 {
        alerted = seen
            .lock()
            .unwrap()
            .iter()
            .any(|h| h.body.contains("location us-east is not observed"));
        if alerted {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(alerted, "{:?}", seen.lock().unwrap());

    // started again, it observes the next run
    let _b2 = agent(&dir, &url, &us1, "us-east");
    let (_, v) = api(
        &url,
        &lead,
        "POST",
        &format!("/api/v1/deployments/{id}/runs"),
        Some(json!({})),
    )
    .await;
    let run = v["run"].as_i64().unwrap();
    let checks = wait_checks(&url, &lead, &id, run, 6).await;
    assert_eq!(checks.len(), 6);
    assert!(
        checks.iter().all(|c| c["data"]["outcome"] == "passed"),
        "{checks:#?}"
    );
    let list = String::from_utf8_lossy(&golive(&dir, &["agents", "list"]).stdout).into_owned();
    assert!(list.contains("us-1: us-east (last heartbeat"), "{list}");
    drop((a1, a2));
    let _ = std::fs::remove_dir_all(&dir);
}

/// A port free on loopback now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_set_from_its_environment_logs_json_and_serves_its_metrics() {
    let dir = std::env::temp_dir().join(format!("golive-agents-ops-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (hooks, _seen) = golive_testkit::scripted_receiver(&[]).await;
    let lead = token(
        &dir,
        &["users", "add", "Dana Lead", "--role", "Deployment Lead"],
    );
    let eu1 = token(&dir, &["agents", "add", "eu-1", "--location", "eu-west"]);
    let eu2 = token(&dir, &["agents", "add", "eu-2", "--location", "eu-west"]);
    let (_server, url) = serve(&dir, &format!("http://{}/hook", hooks.addr));
    let path = document(&dir, &url);
    let sha = token(&dir, &["runbooks", "add", &path.display().to_string()]);
    let (s, v) = api(
        &url,
        &lead,
        "POST",
        "/api/v1/deployments",
        Some(json!({ "runbook": sha })),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let id = v["id"].as_str().unwrap().to_string();
    let runs = format!("/api/v1/deployments/{id}/runs");
    // a run of what is not in the document is refused, naming it
    let (s, v) = api(&url, &lead, "POST", &runs, Some(json!({ "only": ["9.9"] }))).await;
    assert_eq!(s, 422, "{v}");
    assert!(
        v["message"].as_str().unwrap().starts_with("only: 9.9"),
        "{v}"
    );
    // the results endpoint: a request that is neither form, and a batch
    // whose job is unknown
    let results = "/api/v1/agent/results";
    let (s, v) = api(&url, &eu2, "POST", results, Some(json!({}))).await;
    assert_eq!(s, 422, "{v}");
    assert!(v["message"].as_str().unwrap().contains("`results`"), "{v}");
    let (s, v) = api(
        &url,
        &eu2,
        "POST",
        results,
        Some(json!({ "results": [{ "job": "no-such-job", "data": { "outcome": "passed" } }] })),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["results"][0]["status"], 404, "{v}");

    // the agent, every setting from its environment
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_golive"))
        .arg("agent")
        .current_dir(&dir)
        .env("GOLIVE_SERVER", &url)
        .env("GOLIVE_AGENT_TOKEN", &eu1)
        .env("GOLIVE_LOCATION", "eu-west")
        .env("GOLIVE_EVERY", "100ms")
        .env("GOLIVE_CONCURRENCY", "2")
        .env("GOLIVE_LOG_JSON", "true")
        .env("GOLIVE_METRICS_LISTEN", format!("127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("golive agent");
    let lines = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    {
        let lines = lines.clone();
        let err = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for l in BufReader::new(err).lines().map_while(Result::ok) {
                lines.lock().unwrap().push(l);
            }
        });
    }
    let mut agent = Proc(child);
    // one item of the document, at eu-west and us-east
    let (s, v) = api(
        &url,
        &lead,
        "POST",
        &runs,
        Some(json!({ "only": ["1.1.2"] })),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["jobs"], 2, "{v}");
    let run = v["run"].as_i64().unwrap();
    let checks = wait_checks(&url, &lead, &id, run, 1).await;
    assert_eq!(checks.len(), 1, "{checks:#?}");
    assert_eq!(checks[0]["data"]["location"], "eu-west");
    assert_eq!(checks[0]["data"]["outcome"], "passed");
    // its metrics say what it did
    let metrics = format!("http://127.0.0.1:{port}/metrics");
    let mut text = String::new();
    for _ in 0..50 {
        let (_, body) = golive_probe::request("GET", &metrics, &[], None, None)
            .await
            .expect("the agent serves its metrics");
        text = String::from_utf8_lossy(&body).into_owned();
        if text.contains("golive_agent_results_sent_total 1") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for want in [
        "golive_agent_info{agent=\"eu-1\",location=\"eu-west\"",
        "golive_agent_checks_total{outcome=\"passed\"} 1",
        "golive_agent_jobs_claimed_total 1",
        "golive_agent_results_sent_total 1",
        "golive_agent_results_pending 0",
        "golive_agent_concurrency 2",
    ] {
        assert!(text.contains(want), "{want}\n{text}");
    }
    // SIGTERM: it stops cleanly
    let pid = agent.0.id().to_string();
    assert!(
        Command::new("sh")
            .args(["-c", &format!("kill -TERM {pid}")])
            .status()
            .unwrap()
            .success()
    );
    let mut code = None;
    for _ in 0..100 {
        if let Some(s) = agent.0.try_wait().unwrap() {
            code = s.code();
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(code, Some(0), "stopped cleanly on SIGTERM");
    // every line it logged is a JSON object
    let logged = lines.lock().unwrap().clone();
    assert!(!logged.is_empty());
    for l in &logged {
        let v: Value = serde_json::from_str(l).unwrap_or_else(|_| panic!("not JSON: {l}"));
        assert!(v["level"].is_string() && v["fields"].is_object(), "{l}");
    }
    assert!(
        logged.iter().any(|l| l.contains("agent eu-1 of eu-west")),
        "{logged:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
