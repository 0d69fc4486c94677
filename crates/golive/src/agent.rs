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
    eprintln!(
        "golive: agent {} of {location}, on {}",
        me["agent"].as_str().unwrap_or("?"),
        c.base
    );
    let mut runbooks: HashMap<String, Arc<golive_runbook::Runbook>> = HashMap::new();
    let mut outbox: VecDeque<(String, Value)> = VecDeque::new();
    loop {
        // what could not be sent yet goes first
        while let Some((job, data)) = outbox.front().cloned() {
            match c
                .call(
                    "POST",
                    "/api/v1/agent/results",
                    Some(json!({ "job": job, "data": data })),
                )
                .await
            {
                Ok((200, _)) => {
                    outbox.pop_front();
                }
                // taken over, or gone: another agent's result stands
                Ok((404 | 409, v)) => {
                    eprintln!("golive: agent: {job}: {}", said(&v));
                    outbox.pop_front();
                }
                Ok((status, v)) if status < 500 && status != 429 => {
                    eprintln!("golive: agent: {job}: refused ({status}): {}", said(&v));
                    outbox.pop_front();
                }
                _ => break,
            }
        }
        // asked to stop: the checks begun were finished and sent above
        if stopped.load(std::sync::atomic::Ordering::SeqCst) {
            if !outbox.is_empty() {
                eprintln!(
                    "golive: agent: stopping with {} result(s) not sent",
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
            Ok((200, v)) => v["jobs"].as_array().cloned().unwrap_or_default(),
            Ok((status, v)) => {
                eprintln!("golive: agent: claims refused ({status}): {}", said(&v));
                Vec::new()
            }
            Err(e) => {
                eprintln!("golive: agent: {e} (results kept: {})", outbox.len());
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
            let (vars, defaults) = (job_vars(&s.vars, &j["vars"]), s.defaults.clone());
            running.push(tokio::spawn(async move {
                let id = j["job"].as_str().unwrap_or_default().to_string();
                (id, run_job(&rb, &vars, &defaults, &j).await)
            }));
        }
        let busy = !running.is_empty();
        for r in running {
            if let Ok((job, data)) = r.await {
                outbox.push_back((job, data));
            }
        }
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

/// Run the job's check: the event data its result records, or a result
/// that could not observe, saying why.
async fn run_job(
    rb: &golive_runbook::Runbook,
    vars: &golive_probe::Vars,
    defaults: &toml::Table,
    j: &Value,
) -> Value {
    let item = j["item"].as_str().unwrap_or_default();
    let line = j["line"].as_i64().unwrap_or(0);
    let not_run = |why: String| json!({ "outcome": "error", "message": why });
    let plan = match golive_engine::plan(rb, vars, &[], defaults) {
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
    let mut data = golive_deploy::record::check_event(rb, &res, &Redactor::new(vars)).data;
    if let Value::Object(m) = &mut data {
        m.remove("line");
    }
    data
}
