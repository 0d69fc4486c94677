//! Probe agents over HTTP: an agent (`golive agent`) only calls out, with
//! its own token (`golive agents add NAME --location L`): it beats its
//! heart, claims the jobs of its location, fetches the runbooks they are
//! of, runs the checks and posts their results. The rules (which checks
//! run where, a result recorded once, a quiet location's checks given up)
//! are golive-deploy's `agents` module; this is their translation.

use crate::api;
use crate::auth::{self, Actor, CSRF_HEADER};
use crate::error::ApiError;
use crate::{App, Body};
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use golive_deploy::Quiet;
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;

/// The agent a request comes from (a token of kind `agent`).
pub struct Agent {
    pub name: String,
    pub location: String,
}

impl FromRequestParts<Arc<App>> for Agent {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, ApiError> {
        let client = parts
            .extensions
            .get::<crate::Peer>()
            .map(|p| p.0.ip())
            .unwrap_or(std::net::IpAddr::from([127, 0, 0, 1]));
        app.auth_failures.check(client).map_err(ApiError::TooMany)?;
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .unwrap_or("");
        let row = app.store.token(&auth::token_hash(token)).await?;
        let now = jiff::Timestamp::now().to_string();
        let agent = match row.filter(|r| r.kind == "agent" && r.valid_at(&now)) {
            Some(r) => app.store.agent(&r.person).await?,
            None => None,
        };
        match agent {
            Some(a) => Ok(Agent {
                name: a.name,
                location: a.location,
            }),
            None => {
                if let Err(wait) = app.auth_failures.take(client) {
                    return Err(ApiError::TooMany(wait));
                }
                Err(ApiError::Unauthorized(
                    "not an agent's token: `golive agents add NAME --location L` prints one".into(),
                ))
            }
        }
    }
}

pub fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/api/v1/agent/heartbeat", post(heartbeat))
        .route("/api/v1/agent/claims", post(claims))
        .route("/api/v1/agent/results", post(results))
        .route("/api/v1/agent/runbooks/{sha}", get(runbook))
        .route("/api/v1/deployments/{id}/runs", post(run))
}

fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

async fn heartbeat(State(app): State<Arc<App>>, a: Agent) -> Result<Json<Value>, ApiError> {
    app.store.heartbeat(&a.name, now_ms()).await?;
    Ok(Json(json!({ "agent": a.name, "location": a.location })))
}

#[derive(Deserialize)]
struct ClaimRequest {
    /// How many jobs at most.
    max: Option<i64>,
}

/// `POST /api/v1/agent/claims`: the jobs of the agent's location it now
/// holds (a heartbeat too), each with what running it takes.
async fn claims(
    State(app): State<Arc<App>>,
    a: Agent,
    Body(r): Body<ClaimRequest>,
) -> Result<Json<Value>, ApiError> {
    let now = now_ms();
    app.store.heartbeat(&a.name, now).await?;
    let max = r.max.unwrap_or(8).clamp(1, 256);
    let jobs = app
        .store
        .claim_jobs(
            &a.location,
            &a.name,
            max,
            now,
            now + golive_deploy::agents::LEASE_MS,
        )
        .await?;
    let mut out = Vec::new();
    // a claim's jobs are mostly of one deployment: its row read once
    let mut rows: std::collections::HashMap<String, golive_store::Deployment> =
        std::collections::HashMap::new();
    for j in jobs {
        if !rows.contains_key(&j.deployment) {
            let row = app.store.deployment(Some(&j.deployment)).await?;
            rows.insert(j.deployment.clone(), row);
        }
        let row = &rows[&j.deployment];
        out.push(json!({
            "job": j.id, "deployment": j.deployment, "runbook": row.runbook_sha256,
            "item": j.item, "line": j.line, "location": j.location, "vars": row.vars,
            "lease_ms": golive_deploy::agents::LEASE_MS,
        }));
    }
    Ok(Json(json!({ "jobs": out })))
}

async fn runbook(
    State(app): State<Arc<App>>,
    _a: Agent,
    Path(sha): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let rb = app
        .store
        .runbook(&sha)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no runbook registered under {sha}")))?;
    Ok(Json(json!({ "path": rb.path, "text": rb.text })))
}

#[derive(Deserialize)]
struct OneResult {
    job: String,
    /// The check event's data, as the agent's run made it.
    data: Value,
}

/// One result (`{"job", "data"}`), or several (`{"results": [{"job",
/// "data"}, …]}`), which are recorded with one append per deployment.
#[derive(Deserialize)]
struct ResultRequest {
    job: Option<String>,
    data: Option<Value>,
    results: Option<Vec<OneResult>>,
}

/// The most results one request may carry.
const MAX_RESULTS: usize = 1000;

/// `POST /api/v1/agent/results`: claimed jobs' results, each recorded
/// once. One result answers `{"recorded": SEQ}` or the refusal's status;
/// several answer 200 with each one's `recorded` or its `status` and
/// `message`, in order.
async fn results(
    State(app): State<Arc<App>>,
    a: Agent,
    Body(r): Body<ResultRequest>,
) -> Result<Json<Value>, ApiError> {
    let (many, results) = match r {
        ResultRequest {
            results: Some(results),
            job: None,
            data: None,
        } => (true, results),
        ResultRequest {
            results: None,
            job: Some(job),
            data: Some(data),
        } => (false, vec![OneResult { job, data }]),
        _ => {
            return Err(ApiError::Unprocessable(
                "give either `job` and `data` (one result) or `results` (a list of them)".into(),
            ));
        }
    };
    if results.len() > MAX_RESULTS {
        return Err(ApiError::Unprocessable(format!(
            "results: {} results in one request, over the limit of {MAX_RESULTS}: send them in parts",
            results.len()
        )));
    }
    let mut answers: Vec<Option<Result<i64, ApiError>>> = Vec::new();
    // the results of each deployment, in order, with their places
    let mut by: std::collections::BTreeMap<String, Vec<(usize, golive_store::JobRow, Value)>> =
        Default::default();
    // the batch's jobs, read in one query
    let ids: Vec<&str> = results.iter().map(|r| r.job.as_str()).collect();
    let known: std::collections::HashMap<String, golive_store::JobRow> = app
        .store
        .jobs_by_id(&ids)
        .await?
        .into_iter()
        .map(|j| (j.id.clone(), j))
        .collect();
    for (n, r) in results.into_iter().enumerate() {
        answers.push(None);
        let job = match known.get(&r.job).cloned() {
            None => {
                answers[n] = Some(Err(ApiError::NotFound(format!("job: no job {}", r.job))));
                continue;
            }
            Some(j) if j.location != a.location => {
                answers[n] = Some(Err(ApiError::Forbidden(format!(
                    "job {} runs at {}, and {} is an agent of {}",
                    j.id, j.location, a.name, a.location
                ))));
                continue;
            }
            Some(j) => j,
        };
        by.entry(job.deployment.clone())
            .or_default()
            .push((n, job, r.data));
    }
    for (deployment, rs) in by {
        let d = api::open(&app, &deployment).await?;
        let (places, pairs): (Vec<usize>, Vec<(golive_store::JobRow, Value)>) =
            rs.into_iter().map(|(n, j, v)| (n, (j, v))).unzip();
        let recorded = d.report_each(&pairs, &a.name).await?;
        for (n, r) in places.into_iter().zip(recorded) {
            answers[n] = Some(r.map_err(ApiError::from));
        }
        app.hub.poke(&deployment);
    }
    let mut answers = answers.into_iter().flatten();
    if !many {
        return match answers.next() {
            Some(Ok(seq)) => Ok(Json(json!({ "recorded": seq }))),
            Some(Err(e)) => Err(e),
            None => Err(ApiError::Internal("no result".into())),
        };
    }
    let each: Vec<Value> = answers
        .map(|r| match r {
            Ok(seq) => json!({ "recorded": seq }),
            Err(e) => {
                json!({ "status": e.status().as_u16(), "error": e.code(), "message": e.public().0 })
            }
        })
        .collect();
    Ok(Json(json!({ "results": each })))
}

#[derive(Deserialize)]
struct RunRequest {
    /// Where the checks that name no location of their own run.
    #[serde(default)]
    locations: Vec<String>,
    /// The stages, groups or items whose checks run (none: all), as
    /// `golive run --only` names them.
    #[serde(default)]
    only: Vec<String>,
    version: Option<i64>,
}

/// `POST /api/v1/deployments/{id}/runs`: the document's checks run by the
/// agents of their locations.
async fn run(
    State(app): State<Arc<App>>,
    a: Actor,
    headers: HeaderMap,
    Path(id): Path<String>,
    Body(r): Body<RunRequest>,
) -> Result<Json<Value>, ApiError> {
    a.check_csrf(headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok()))?;
    a.may_write()?;
    let d = api::open_at(&app, &id, r.version).await?;
    let (run, jobs) = d
        .run_at_locations(&r.locations, &r.only, a.name(), &Quiet)
        .await?;
    app.hub.poke(&id);
    let mut locations: Vec<&str> = jobs.iter().map(|j| j.location.as_str()).collect();
    locations.sort();
    locations.dedup();
    Ok(Json(
        json!({ "run": run, "jobs": jobs.len(), "locations": locations }),
    ))
}

/// Every `window`, the locations whose agents went quiet: their checks
/// given up as could not observe, and an alert on the server's channels.
pub async fn watch_locations(app: Arc<App>, window: std::time::Duration) {
    let mut closing = app.closing.clone();
    let tick = (window / 4).max(std::time::Duration::from_millis(100));
    loop {
        tokio::select! {
            _ = tokio::time::sleep(tick) => {}
            _ = closing.changed() => return,
        }
        let window_ms = i64::try_from(window.as_millis()).unwrap_or(i64::MAX);
        match golive_deploy::agents::give_up_quiet(&app.store, window_ms, now_ms()).await {
            Ok(down) => {
                for d in down {
                    tracing::warn!(location = %d.location, jobs = d.jobs.len(), "no agent of the location beat its heart within the window: its checks could not be observed");
                    for j in &d.jobs {
                        app.hub.poke(&j.deployment);
                    }
                    let text = format!(
                        "golive: location {} is not observed: no agent beat its heart within {}s; {} check(s) could not be observed",
                        d.location,
                        window.as_secs(),
                        d.jobs.len()
                    );
                    let subject = format!("Location {} is not observed", d.location);
                    let key = format!("location.down/{}/{}", d.location, d.last_seen.unwrap_or(0));
                    for ch in app.cfg.notify.iter().filter(|c| !c.needs_addresses()) {
                        let m = golive_deploy::channel::Outgoing {
                            deployment: "",
                            key: &key,
                            kind: "alert",
                            subject: &subject,
                            body: &text,
                            to: &[],
                            idempotency_key: format!("{key}/{}", ch.name),
                            attachment: None,
                        };
                        if let Err(e) = ch.send(&m).await {
                            tracing::warn!(error = %e, "location alert not sent");
                        }
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "agents: cannot look at the locations"),
        }
    }
}
