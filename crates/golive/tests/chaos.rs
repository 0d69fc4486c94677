//! Three `golive serve` replicas and two probe agents on one PostgreSQL (a
//! database of its own), a whole deployment of the reference checklist
//! (its 48 pre-deployment sign-offs, the GO of three people, the 20
//! procedure steps, the smoke tests run by the agents against the
//! stand-in service, the gates, the verification, the end) driven through
//! replicas chosen at random, and at random moments a replica or an agent
//! killed with SIGKILL and started again. A request cut off by a kill is sent
//! again to another replica: an act that was recorded before the kill is
//! refused the second time, never recorded twice. At the end: every act
//! once, `audit verify` holds, every stream (moving to a live replica when
//! its own dies, from its Last-Event-ID) received every event in order, and
//! no check was left without a result.

mod common;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A small random source, its seed printed so a failure can be replayed
/// (`GOLIVE_CHAOS_SEED`).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn golive(dir: &Path, store: &str, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_golive"))
        .args(args)
        .current_dir(dir)
        .env("GOLIVE_STORE", store)
        .env_remove("GOLIVE_NOTIFY")
        .env_remove("GOLIVE_SERVER")
        .env_remove("GOLIVE_TOKEN")
        .output()
        .expect("golive")
}

fn last_line(o: &std::process::Output) -> String {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .last()
        .unwrap()
        .to_string()
}

fn serve(dir: &Path, store: &str) -> (Proc, String) {
    serve_at(dir, store, "127.0.0.1:0")
}

/// A replica on `listen` (`127.0.0.1:0`: a port of its own; a killed
/// one's address: started again where the load balancer sends).
fn serve_at(dir: &Path, store: &str, listen: &str) -> (Proc, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_golive"))
        .args([
            "serve",
            "--listen",
            listen,
            "--rate-limit",
            "0",
            "--agent-window",
            "60s",
        ])
        .current_dir(dir)
        .env("GOLIVE_STORE", store)
        .env_remove("GOLIVE_NOTIFY")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("golive serve");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let url = loop {
        let l = lines.next().expect("serve starts").unwrap();
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

/// A probe agent of the location `here`, run with `extra` (the bindings
/// of this machine: secrets, the stand-in's CA and nameserver).
fn agent(dir: &Path, url: &str, token: &str, extra: &[String]) -> Proc {
    Proc(
        Command::new(env!("CARGO_BIN_EXE_golive"))
            .args([
                "agent",
                "--server",
                url,
                "--token",
                token,
                "--location",
                "here",
            ])
            .args(["--every", "100ms", "--concurrency", "1"])
            .args(extra)
            .current_dir(dir)
            .env("GOLIVE_TEST_TOKEN", common::standin::TOKEN)
            .env("GOLIVE_TEST_DATABASE_URL", common::standin::database_url())
            .env("GOLIVE_TEST_ROUTING_KEY", common::standin::ROUTING_KEY)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("golive agent"),
    )
}

/// One request; `None` when the replica did not answer (killed).
async fn call(
    url: &str,
    token: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> Option<(u16, Value)> {
    let mut headers = vec![("authorization", format!("Bearer {token}"))];
    if body.is_some() {
        headers.push(("content-type", "application/json".to_string()));
    }
    let full = format!("{url}{path}");
    let call = golive_probe::request(method, &full, &headers, body.map(|b| b.to_string()), None);
    match tokio::time::timeout(Duration::from_secs(20), call).await {
        Ok(Ok((s, b))) => Some((s, serde_json::from_slice(&b).unwrap_or(Value::Null))),
        _ => None,
    }
}

/// A stream of the deployment's events that moves to a live replica when
/// its own goes, resuming from the last event it had.
fn follow(
    urls: Arc<Mutex<Vec<String>>>,
    token: String,
    id: String,
    seen: Arc<Mutex<Vec<i64>>>,
    start: usize,
) {
    tokio::spawn(async move {
        let mut turn = start;
        loop {
            let url = {
                let u = urls.lock().unwrap();
                u[turn % u.len()].clone()
            };
            turn += 1;
            let addr = url.trim_start_matches("http://").to_string();
            let Ok(tcp) = tokio::net::TcpStream::connect(&addr).await else {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            };
            let Ok((mut send, conn)) =
                hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp)).await
            else {
                continue;
            };
            tokio::spawn(conn);
            let last = seen.lock().unwrap().last().copied().unwrap_or(0);
            let req = hyper::Request::builder()
                .uri(format!("/api/v1/deployments/{id}/stream"))
                .header("host", &addr)
                .header("authorization", format!("Bearer {token}"))
                .header("last-event-id", last.to_string())
                .body(Full::new(Bytes::new()))
                .unwrap();
            let Ok(r) = send.send_request(req).await else {
                continue;
            };
            if r.status() != 200 {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            let mut body = r.into_body();
            let mut buf = String::new();
            while let Some(Ok(f)) = body.frame().await {
                if let Ok(d) = f.into_data() {
                    buf.push_str(&String::from_utf8_lossy(&d));
                }
                while let Some(end) = buf.find("\n\n") {
                    let block: String = buf.drain(..end + 2).collect();
                    if let Some(seq) = block
                        .lines()
                        .find_map(|l| l.strip_prefix("id:"))
                        .and_then(|v| v.trim().parse::<i64>().ok())
                    {
                        seen.lock().unwrap().push(seq);
                    }
                }
            }
        }
    });
}

struct Fleet {
    dir: PathBuf,
    store: String,
    replicas: Vec<(Proc, String)>,
    agents: Vec<Proc>,
    agent_tokens: Vec<String>,
    agent_args: Vec<String>,
    rng: Rng,
    kills: Vec<String>,
}

impl Fleet {
    fn url(&mut self) -> String {
        let n = self.rng.below(self.replicas.len());
        self.replicas[n].1.clone()
    }

    /// At random (one time in three), kill a replica or an agent with
    /// SIGKILL and start it again.
    fn chaos(&mut self) {
        self.chaos_sometimes(3);
    }

    /// One time in `n`, kill a replica or an agent and start it again.
    fn chaos_sometimes(&mut self, n: usize) {
        if self.rng.below(n) != 0 {
            return;
        }
        if self.rng.below(2) == 0 {
            let n = self.rng.below(self.replicas.len());
            let (mut p, url) = self.replicas.remove(n);
            let _ = p.0.kill();
            let _ = p.0.wait();
            let fresh = serve_at(&self.dir, &self.store, url.trim_start_matches("http://"));
            assert_eq!(fresh.1, url, "started again at its address");
            self.kills.push(format!("replica {url}"));
            self.replicas.insert(n, fresh);
        } else {
            let n = self.rng.below(self.agents.len());
            let _ = self.agents[n].0.kill();
            let _ = self.agents[n].0.wait();
            let url = self.url();
            self.agents[n] = agent(&self.dir, &url, &self.agent_tokens[n], &self.agent_args);
            self.kills.push(format!("agent {n}"));
        }
    }

    /// POST an act through a random replica, again through another when
    /// one is cut off; `accept` says which answers mean it was recorded
    /// (the first time, or before the cut).
    async fn act(&mut self, token: &str, path: &str, body: Value, accept: &[&str]) {
        for _ in 0..20 {
            let n = self.rng.below(self.replicas.len());
            let url = self.replicas[n].1.clone();
            // one time in four the replica is killed while the write is in
            // flight (before, during or after its commit)
            let cut = (self.rng.below(4) == 0).then(|| {
                let pid = self.replicas[n].0.0.id().to_string();
                let delay = Duration::from_micros(self.rng.below(8000) as u64);
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    let _ = Command::new("sh")
                        .args(["-c", &format!("kill -KILL {pid}")])
                        .status();
                })
            });
            let answer = call(&url, token, "POST", path, Some(body.clone())).await;
            if let Some(kill) = cut {
                let _ = kill.await;
                let (mut p, url) = self.replicas.remove(n);
                let _ = p.0.wait();
                let fresh = serve_at(&self.dir, &self.store, url.trim_start_matches("http://"));
                self.kills.push(format!("replica {url} during {path}"));
                self.replicas.insert(n, fresh);
            }
            match answer {
                Some((200, _)) => {
                    self.chaos();
                    return;
                }
                Some((_, v)) if accept.iter().any(|a| v.to_string().contains(a)) => {
                    self.chaos();
                    return;
                }
                Some((429 | 500..=599, _)) | None => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Some((s, v)) => panic!("{path} {body}: {s} {v}"),
            }
        }
        panic!("{path}: no replica took it");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_reference_through_three_replicas_and_two_agents_killed_at_random() {
    let seed: u64 = std::env::var("GOLIVE_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| jiff::Timestamp::now().as_nanosecond() as u64 | 1);
    eprintln!("chaos seed {seed} (GOLIVE_CHAOS_SEED={seed} replays it)");
    let dir = std::env::temp_dir().join(format!("golive-chaos-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let s = common::standin::stand_in("v1.1.0").await;
    // a database of its own
    let db = golive_testkit::FreshDatabase::new("chaos");
    let store = db.url.clone();
    let root = common::root();
    let reference = root.join("examples/aiwg-production.md");
    let show: Value = serde_json::from_slice(
        &golive(
            &dir,
            &store,
            &["show", &reference.display().to_string(), "--format", "json"],
        )
        .stdout,
    )
    .expect("show");

    let tok = |args: &[&str]| last_line(&golive(&dir, &store, args));
    let mut crew = vec!["users", "add", "Release Crew"];
    for r in common::ITEM_ROLES {
        crew.extend(["--role", r]);
    }
    let crew = tok(&crew);
    let lead = tok(&["users", "add", "Lead Signer", "--role", "Deployment Lead"]);
    let manager = tok(&[
        "users",
        "add",
        "Manager Signer",
        "--role",
        "Engineering Manager",
    ]);
    let product = tok(&[
        "users",
        "add",
        "Product Signer",
        "--role",
        "Product Manager",
    ]);
    let agent_tokens = vec![
        tok(&["agents", "add", "here-1", "--location", "here"]),
        tok(&["agents", "add", "here-2", "--location", "here"]),
    ];
    let sha = tok(&["runbooks", "add", &reference.display().to_string()]);
    // what an agent binds on its own machine: the secrets (never sent to
    // the server), the stand-in's CA and nameserver
    let agent_args: Vec<String> = [
        "--secret",
        "TEST_TOKEN=env:GOLIVE_TEST_TOKEN",
        "--secret",
        "DATABASE_URL=env:GOLIVE_TEST_DATABASE_URL",
        "--secret",
        "PAGERDUTY_ROUTING_KEY=env:GOLIVE_TEST_ROUTING_KEY",
        "--ca-file",
        &s.pki.ca_file.display().to_string(),
        "--nameserver",
        &format!("127.0.0.1:{}", s.dns.addr.port()),
    ]
    .iter()
    .map(|a| a.to_string())
    .collect();
    let replicas: Vec<(Proc, String)> = (0..3).map(|_| serve(&dir, &store)).collect();
    let urls = Arc::new(Mutex::new(
        replicas.iter().map(|r| r.1.clone()).collect::<Vec<_>>(),
    ));
    let agents = agent_tokens
        .iter()
        .map(|t| agent(&dir, &replicas[0].1, t, &agent_args))
        .collect();
    let mut f = Fleet {
        dir: dir.clone(),
        store: store.clone(),
        replicas,
        agents,
        agent_tokens,
        agent_args,
        rng: Rng(seed),
        kills: Vec::new(),
    };
    // the deployment, with the values of the reference's placeholders
    let vars = json!({
        "DOMAIN": format!("localhost:{}", s.https.addr.port()),
        "VERSION": "1.1.0",
        "HTTP_URL": format!("http://127.0.0.1:{}/", s.http.addr.port()),
        "REPO_DIR": s.repo.display().to_string(),
        "LIVE_BUDGET_MS": "5000",
        "PROMETHEUS_URL": s.prometheus.url(),
        "REDIS_URL": common::standin::redis_url(),
        "PAGERDUTY_EVENTS_URL": format!("http://127.0.0.1:{}/v2/enqueue", s.alerts.addr.port()),
    });
    let url = f.url();
    let (st, v) = call(
        &url,
        &lead,
        "POST",
        "/api/v1/deployments",
        Some(json!({ "runbook": sha, "vars": vars })),
    )
    .await
    .unwrap();
    assert_eq!(st, 201, "{v}");
    let id = v["id"].as_str().unwrap().to_string();
    let streams: Vec<Arc<Mutex<Vec<i64>>>> =
        (0..3).map(|_| Arc::new(Mutex::new(Vec::new()))).collect();
    for (n, s) in streams.iter().enumerate() {
        follow(urls.clone(), lead.clone(), id.clone(), s.clone(), n);
    }
    let d = format!("/api/v1/deployments/{id}");
    let again = ["already", "signed already"];
    let mut signed = Vec::new();
    // the 48 pre-deployment items, each by the role it names
    let mut items = common::task_items(&show);
    items.truncate(48);
    for (item, role) in &items {
        f.act(
            &crew,
            &format!("{d}/signoffs"),
            json!({ "item": item, "role": role }),
            &again,
        )
        .await;
        signed.push(item.clone());
    }
    // GO: the three signers of the decision
    for t in [&lead, &manager, &product] {
        f.act(
            t,
            &format!("{d}/decision"),
            json!({ "verdict": "go" }),
            &["already", "decision was taken"],
        )
        .await;
    }
    // the 20 procedure steps, in order
    let steps = common::stage_items(&show, "Deployment Procedure");
    assert_eq!(steps.len(), 20);
    for step in &steps {
        f.act(
            &lead,
            &format!("{d}/steps"),
            json!({ "step": step }),
            &["already done", "is done"],
        )
        .await;
    }
    // the smoke tests' checks run by the agents, whichever of them lives
    let mut run = None;
    for _ in 0..20 {
        let url = f.url();
        if let Some((200, v)) = call(
            &url,
            &lead,
            "POST",
            &format!("{d}/runs"),
            Some(json!({ "locations": ["here"], "only": ["smoke-testing-checklist"] })),
        )
        .await
        {
            run = v["run"].as_i64().zip(v["jobs"].as_u64());
            break;
        }
    }
    let (run, jobs) = run.expect("a run");
    assert!(jobs >= 10, "the smoke tests' checks: {jobs}");
    f.chaos();
    // an agent killed holding a job loses it after its 30 s lease
    let mut observed = 0;
    for _ in 0..1200 {
        let url = f.url();
        if let Some((200, v)) =
            call(&url, &lead, "GET", &format!("{d}/events?after={run}"), None).await
        {
            observed = v["events"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|e| e["kind"] == "check")
                .count() as u64;
            if observed >= jobs {
                break;
            }
        }
        if observed < jobs {
            f.chaos_sometimes(50);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        observed, jobs,
        "the agents observed every check (kills: {:?})",
        f.kills
    );
    // the smoke tests a person checks, the smoke gate; the verification
    // items, the verification gate
    for (items, gate) in [
        (
            common::manual_items(&show, "Smoke Testing Checklist"),
            "smoke",
        ),
        (
            common::stage_items(&show, "Post-Deployment Verification"),
            "verification",
        ),
    ] {
        for item in items {
            f.act(
                &crew,
                &format!("{d}/signoffs"),
                json!({ "item": item, "role": "Deployment Lead" }),
                &again,
            )
            .await;
            signed.push(item);
        }
        f.act(&lead, &format!("{d}/gates"), json!({ "gate": gate }), &[])
            .await;
    }
    f.act(&lead, &format!("{d}/finish"), json!({}), &["has ended"])
        .await;

    // the record: every act once
    let url = f.url();
    let (_, v) = call(&url, &lead, "GET", &format!("{d}/events"), None)
        .await
        .unwrap();
    let events = v["events"].as_array().unwrap().clone();
    let of = |kind: &str| -> Vec<&Value> { events.iter().filter(|e| e["kind"] == kind).collect() };
    let mut signoffs: Vec<String> = of("signoff")
        .iter()
        .map(|e| e["item"].as_str().unwrap_or("").to_string())
        .collect();
    signoffs.sort();
    signed.sort();
    assert_eq!(
        signoffs, signed,
        "each sign-off once (kills: {:?})",
        f.kills
    );
    assert_eq!(of("decision.signature").len(), 3);
    assert_eq!(of("decision").len(), 1);
    let mut done: Vec<String> = of("step.done")
        .iter()
        .map(|e| e["item"].as_str().unwrap_or("").to_string())
        .collect();
    done.sort();
    let mut want = steps.clone();
    want.sort();
    assert_eq!(done, want, "each step once");
    assert_eq!(of("gate").len(), 2, "each gate once");
    assert_eq!(of("deployment.ended").len(), 1);
    let ended = of("deployment.ended")[0];
    assert_eq!(ended["data"]["outcome"], "SUCCESS", "{ended}");
    let smoke = of("gate")
        .into_iter()
        .find(|g| g["data"]["stage"] == "smoke")
        .expect("the smoke gate");
    assert_eq!(smoke["data"]["result"], "pass", "{smoke}");
    assert_eq!(smoke["data"]["passed"], 20, "{smoke}");
    // every check of the run has one result, observed or not
    let mut results: Vec<&str> = events
        .iter()
        .filter(|e| e["kind"] == "check" && e["seq"].as_i64().unwrap() > run)
        .filter_map(|e| e["data"]["job"].as_str())
        .collect();
    let n = results.len();
    results.sort();
    results.dedup();
    assert_eq!(results.len(), n, "a job recorded twice");
    assert_eq!(n as u64, jobs, "a job without a result");
    let head = events.last().unwrap()["seq"].as_i64().unwrap();
    // the chain holds
    let o = golive(&dir, &store, &["audit", "verify", &id]);
    assert!(
        o.status.success(),
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    // no secret of an agent's reached the record
    for secret in [
        common::standin::TOKEN,
        common::standin::ROUTING_KEY,
        &common::standin::database_url(),
    ] {
        assert!(!v.to_string().contains(secret), "a secret in the record");
    }
    // every stream heard every event from where it began, in order
    for (n, s) in streams.iter().enumerate() {
        let mut got = Vec::new();
        for _ in 0..200 {
            got = s.lock().unwrap().clone();
            if got.last().copied().unwrap_or(0) >= head {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(!got.is_empty(), "stream {n} heard nothing");
        let want: Vec<i64> = (got[0]..=head).collect();
        assert_eq!(got, want, "stream {n} (kills: {:?})", f.kills);
    }
    eprintln!("{} kills: {:?}", f.kills.len(), f.kills);
    drop(f);
    drop(db);
    drop(s);
    let _ = std::fs::remove_dir_all(&dir);
}
