//! `golive agent`: a probe agent. It only calls out, to one server, with
//! its own token: it beats its heart, claims the jobs of its location, runs
//! each check with golive's probes (the runbook fetched from the server,
//! the deployment's variables from the job, secrets from this machine's own
//! `--secret` bindings) and posts the result. Results the server cannot
//! take now (it is unreachable) are kept and sent again, in order, until it
//! takes them; a result the server refuses because the job was taken over
//! is dropped.

use golive_deploy::vars::Redactor;
use serde_json::{Value, json};
use std::collections::{HashMap, VecDeque};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// What `golive agent` is given.
pub struct Settings {
    pub server: String,
    pub token: String,
    pub location: String,
    pub concurrency: usize,
    pub ca: Option<String>,
    pub vars: golive_probe::Vars,
    pub defaults: toml::Table,
    /// How often it beats its heart (and looks for jobs when idle).
    pub every: Duration,
    /// Where it serves its own `/metrics`, if anywhere.
    pub metrics_listen: Option<std::net::SocketAddr>,
}

/// What the agent counts, for its `/metrics`.
#[derive(Default)]
struct Counts {
    claimed: AtomicU64,
    passed: AtomicU64,
    failed: AtomicU64,
    error: AtomicU64,
    skipped: AtomicU64,
    sent: AtomicU64,
    refused: AtomicU64,
    unreachable: AtomicU64,
    outbox: AtomicU64,
    /// When the server last answered (epoch seconds).
    contact: AtomicU64,
}

impl Counts {
    fn ran(&self, data: &Value) {
        let c = match data["outcome"].as_str() {
            Some("passed") => &self.passed,
            Some("failed") => &self.failed,
            Some("skipped") => &self.skipped,
            _ => &self.error,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    fn answered(&self) {
        let now = jiff::Timestamp::now().as_second().max(0) as u64;
        self.contact.store(now, Ordering::Relaxed);
    }

    /// Prometheus' text format.
    fn render(&self, agent: &str, location: &str, concurrency: usize) -> String {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let label = |v: &str| v.replace('\\', "\\\\").replace('"', "\\\"");
        let mut out = String::new();
        out.push_str("# HELP golive_agent_info The agent, its location and version.\n# TYPE golive_agent_info gauge\n");
        out.push_str(&format!(
            "golive_agent_info{{agent=\"{}\",location=\"{}\",version=\"{}\"}} 1\n",
            label(agent),
            label(location),
            env!("CARGO_PKG_VERSION")
        ));
        out.push_str(&format!("# HELP golive_agent_concurrency Checks run at once, at most.\n# TYPE golive_agent_concurrency gauge\ngolive_agent_concurrency {concurrency}\n"));
        out.push_str(&format!("# HELP golive_agent_jobs_claimed_total Jobs claimed from the server.\n# TYPE golive_agent_jobs_claimed_total counter\ngolive_agent_jobs_claimed_total {}\n", g(&self.claimed)));
        out.push_str("# HELP golive_agent_checks_total Checks run, by outcome.\n# TYPE golive_agent_checks_total counter\n");
        for (o, c) in [
            ("passed", &self.passed),
            ("failed", &self.failed),
            ("error", &self.error),
            ("skipped", &self.skipped),
        ] {
            out.push_str(&format!(
                "golive_agent_checks_total{{outcome=\"{o}\"}} {}\n",
                g(c)
            ));
        }
        out.push_str(&format!("# HELP golive_agent_results_sent_total Results the server recorded.\n# TYPE golive_agent_results_sent_total counter\ngolive_agent_results_sent_total {}\n", g(&self.sent)));
        out.push_str(&format!("# HELP golive_agent_results_refused_total Results the server refused (the job taken over, or gone).\n# TYPE golive_agent_results_refused_total counter\ngolive_agent_results_refused_total {}\n", g(&self.refused)));
        out.push_str(&format!("# HELP golive_agent_results_pending Results kept to send (the server did not take them yet).\n# TYPE golive_agent_results_pending gauge\ngolive_agent_results_pending {}\n", g(&self.outbox)));
        out.push_str(&format!("# HELP golive_agent_server_unreachable_total Calls the server did not answer.\n# TYPE golive_agent_server_unreachable_total counter\ngolive_agent_server_unreachable_total {}\n", g(&self.unreachable)));
        out.push_str(&format!("# HELP golive_agent_last_contact_seconds When the server last answered (Unix time).\n# TYPE golive_agent_last_contact_seconds gauge\ngolive_agent_last_contact_seconds {}\n", g(&self.contact)));
        out
    }
}

struct Client {
    base: String,
    token: String,
    ca: Option<String>,
}

impl Client {
    async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Result<(u16, Value), String> {
        let mut headers = vec![("authorization", format!("Bearer {}", self.token))];
        if body.is_some() {
            headers.push(("content-type", "application/json".to_string()));
        }
        let url = format!("{}{path}", self.base);
        let call = golive_probe::request(
            method,
            &url,
            &headers,
            body.map(|b| b.to_string()),
            self.ca.as_deref(),
        );
        let (status, bytes) = tokio::time::timeout(Duration::from_secs(15), call)
            .await
            .map_err(|_| format!("{}: no answer within 15s", self.base))?
            .map_err(|e| format!("{}: {e}", self.base))?;
        Ok((
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        ))
    }
}

fn said(v: &Value) -> String {
    v["message"].as_str().unwrap_or("").to_string()
}

/// The most results one request sends.
const BATCH: usize = 200;

pub async fn run(
    s: Settings,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<ExitCode, String> {
    let stopping = Arc::new(tokio::sync::Notify::new());
    let stopped = Arc::new(std::sync::atomic::AtomicBool::new(false));
    {
        let (stopping, stopped) = (stopping.clone(), stopped.clone());
        tokio::spawn(async move {
            stop.await;
            stopped.store(true, std::sync::atomic::Ordering::SeqCst);
            stopping.notify_waiters();
        });
    }
    let c = Arc::new(Client {
        base: s.server.trim_end_matches('/').to_string(),
        token: s.token.clone(),
        ca: s.ca.clone(),
    });
    // who the token says this is, and that it is the location given
    let (status, me) = c
        .call("POST", "/api/v1/agent/heartbeat", Some(json!({})))
        .await?;
    if status != 200 {
        return Err(format!(
            "{}: the server refused the agent ({status}): {}",
            c.base,
            said(&me)
        ));
    }
    let location = me["location"].as_str().unwrap_or_default().to_string();
    if location != s.location {
        return Err(format!(
            "--location {}: the server knows this agent ({}) at {location}",
            s.location,
            me["agent"].as_str().unwrap_or("?")
        ));
    }
    let name = me["agent"].as_str().unwrap_or("?").to_string();
    let counts = Arc::new(Counts::default());
    counts.answered();
    if let Some(addr) = s.metrics_listen {
        let (c, n, l, k) = (
            counts.clone(),
            name.clone(),
            location.clone(),
            s.concurrency,
        );
        let stop = {
            let (stopping, stopped) = (stopping.clone(), stopped.clone());
            async move {
                while !stopped.load(std::sync::atomic::Ordering::SeqCst) {
                    tokio::select! {
                        _ = stopping.notified() => {}
                        _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                    }
                }
            }
        };
        let at = golive_server::metrics::listen_metrics(
            addr,
            Arc::new(move || c.render(&n, &l, k)),
            stop,
        )
        .await?;
        tracing::info!(addr = %at, "metrics at http://{at}/metrics");
    }
    tracing::info!(agent = %name, location = %location, server = %c.base, "agent {name} of {location}, on {}", c.base);
    let mut runbooks: HashMap<String, Arc<golive_runbook::Runbook>> = HashMap::new();
    let mut plans: HashMap<String, Arc<Planned>> = HashMap::new();
    let mut outbox: VecDeque<(String, Value)> = VecDeque::new();
    loop {
        // what could not be sent yet goes first, in parts of at most
        // BATCH results (each part one append per deployment)
        while !outbox.is_empty() {
            let part: Vec<(String, Value)> = outbox.iter().take(BATCH).cloned().collect();
            let results: Vec<Value> = part
                .iter()
                .map(|(job, data)| json!({ "job": job, "data": data }))
                .collect();
            match c
                .call(
                    "POST",
                    "/api/v1/agent/results",
                    Some(json!({ "results": results })),
                )
                .await
            {
                Ok((200, v)) => {
                    counts.answered();
                    let each = v["results"].as_array().cloned().unwrap_or_default();
                    for ((job, _), r) in part
                        .iter()
                        .zip(each.iter().chain(std::iter::repeat(&Value::Null)))
                    {
                        // taken over, or gone: another agent's result stands
                        if let Some(status) = r["status"].as_u64() {
                            counts.refused.fetch_add(1, Ordering::Relaxed);
                            tracing::warn!(job = %job, status, "{job}: refused ({status}): {}", said(r));
                        } else {
                            counts.sent.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    outbox.drain(..part.len());
                }
                Ok((status, v)) if status < 500 && status != 429 => {
                    counts.answered();
                    counts
                        .refused
                        .fetch_add(part.len() as u64, Ordering::Relaxed);
                    tracing::warn!(
                        status,
                        "{} result(s) refused ({status}): {}",
                        part.len(),
                        said(&v)
                    );
                    outbox.drain(..part.len());
                }
                Ok(_) => {
                    counts.answered();
                    break;
                }
                Err(e) => {
                    counts.unreachable.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!("{e} (results kept: {})", outbox.len());
                    break;
                }
            }
        }
        counts.outbox.store(outbox.len() as u64, Ordering::Relaxed);
        // asked to stop: the checks begun were finished and sent above
        if stopped.load(std::sync::atomic::Ordering::SeqCst) {
            if !outbox.is_empty() {
                tracing::warn!(
                    pending = outbox.len(),
                    "stopping with {} result(s) not sent",
                    outbox.len()
                );
            }
            return Ok(ExitCode::SUCCESS);
        }
        let claimed = c
            .call(
                "POST",
                "/api/v1/agent/claims",
                Some(json!({ "max": s.concurrency })),
            )
            .await;
        let jobs: Vec<Value> = match claimed {
            Ok((200, v)) => {
                counts.answered();
                let jobs = v["jobs"].as_array().cloned().unwrap_or_default();
                counts
                    .claimed
                    .fetch_add(jobs.len() as u64, Ordering::Relaxed);
                jobs
            }
            Ok((status, v)) => {
                counts.answered();
                tracing::warn!(status, "claims refused ({status}): {}", said(&v));
                Vec::new()
            }
            Err(e) => {
                counts.unreachable.fetch_add(1, Ordering::Relaxed);
                tracing::warn!("{e} (results kept: {})", outbox.len());
                Vec::new()
            }
        };
        let mut running = Vec::new();
        for j in jobs {
            let sha = j["runbook"].as_str().unwrap_or_default().to_string();
            let rb = match runbooks.get(&sha) {
                Some(rb) => rb.clone(),
                None => match c
                    .call("GET", &format!("/api/v1/agent/runbooks/{sha}"), None)
                    .await
                {
                    Ok((200, v)) => {
                        let rb = Arc::new(golive_runbook::parse_runbook(
                            v["path"].as_str().unwrap_or("runbook.md"),
                            v["text"].as_str().unwrap_or(""),
                        ));
                        runbooks.insert(sha.clone(), rb.clone());
                        rb
                    }
                    _ => continue,
                },
            };
            // a runbook's checks planned once for each set of variables
            // (a plan of a large runbook costs more than a check)
            let key = format!("{sha}\n{}", j["vars"]);
            let plan = match plans.get(&key) {
                Some(p) => p.clone(),
                None => {
                    if plans.len() >= 64 {
                        plans.clear();
                    }
                    let vars = job_vars(&s.vars, &j["vars"]);
                    let p = Arc::new(Planned {
                        plan: golive_engine::plan(&rb, &vars, &[], &s.defaults),
                        vars,
                    });
                    plans.insert(key, p.clone());
                    p
                }
            };
            running.push(tokio::spawn(async move {
                let id = j["job"].as_str().unwrap_or_default().to_string();
                (id, run_job(&rb, &plan, &j).await)
            }));
        }
        let busy = !running.is_empty();
        for r in running {
            if let Ok((job, data)) = r.await {
                counts.ran(&data);
                outbox.push_back((job, data));
            }
        }
        counts.outbox.store(outbox.len() as u64, Ordering::Relaxed);
        if busy {
            continue;
        }
        tokio::select! {
            _ = tokio::time::sleep(s.every) => {}
            _ = stopping.notified() => {}
        }
    }
}

/// The job's variables (the deployment's), with this machine's bindings
/// (its secrets among them) over them.
fn job_vars(own: &golive_probe::Vars, theirs: &Value) -> golive_probe::Vars {
    let mut v = golive_probe::Vars::new();
    if let Some(m) = theirs.as_object() {
        for (k, val) in m {
            if let Some(s) = val.as_str() {
                v.set(k, s);
            }
        }
    }
    for (k, val) in own.plain() {
        v.set(k, val);
    }
    for k in own.secret_names().map(str::to_string).collect::<Vec<_>>() {
        if let Some(val) = own.get(&k) {
            v.set_secret(&k, val);
        }
    }
    v
}

/// A runbook's checks planned with a job's variables (this machine's
/// bindings over the deployment's).
struct Planned {
    plan: Result<golive_engine::Plan, String>,
    vars: golive_probe::Vars,
}

/// Run the job's check (from the plan of its runbook with its
/// variables): the event data its result records, or a result that could
/// not observe, saying why.
async fn run_job(rb: &golive_runbook::Runbook, planned: &Planned, j: &Value) -> Value {
    let item = j["item"].as_str().unwrap_or_default();
    let line = j["line"].as_i64().unwrap_or(0);
    let not_run = |why: String| json!({ "outcome": "error", "message": why });
    let plan = match &planned.plan {
        Ok(p) => p,
        Err(e) => return not_run(format!("could not plan the check: {e}")),
    };
    let Some(check) = plan
        .checks
        .iter()
        .find(|c| rb.items[c.item].id == item && i64::from(c.loc.line) == line)
        .cloned()
    else {
        return not_run(format!(
            "the runbook has no check of {item} at line {line} this agent can run (a variable or secret it lacks?)"
        ));
    };
    let res = golive_engine::run::run_check(check, &golive_engine::Baselines::default()).await;
    let mut data = golive_deploy::record::check_event(rb, &res, &Redactor::new(&planned.vars)).data;
    if let Value::Object(m) = &mut data {
        m.remove("line");
    }
    data
}
