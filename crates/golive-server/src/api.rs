//! The JSON API under `/api/v1/`. Every handler reads the actor from the
//! request's token or session ([`Actor`]), never from its body, and hands
//! the write to the lifecycle (golive-deploy), whose refusals become the
//! answer's status ([`ApiError`]). Writes may carry the state `version`
//! they saw: a deployment that moved on since answers 409.

use crate::auth::{Actor, CSRF_HEADER};
use crate::error::ApiError;
use crate::{App, Body};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream::Stream;
use golive_deploy::lifecycle::{self, SignResult};
use golive_deploy::{Deployment, Quiet};
use golive_store::Event;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use utoipa::ToSchema;

type Shared = Arc<App>;

/// A deployment as listed.
#[derive(Serialize, ToSchema)]
pub struct DeploymentSummary {
    pub id: String,
    pub runbook: String,
    pub sha256: String,
    pub state: String,
    pub started_by: String,
    pub created_at: String,
    /// The state version: the number of the last event recorded.
    pub version: i64,
}

/// A runbook registered with the server.
#[derive(Serialize, ToSchema)]
pub struct RunbookSummary {
    pub sha256: String,
    pub path: String,
    pub added_by: String,
    pub added_at: String,
    pub title: String,
    pub items: usize,
}

/// `POST /api/v1/runbooks`: a runbook's text and the path it is known by.
#[derive(Deserialize, ToSchema)]
pub struct NewRunbook {
    pub path: String,
    pub text: String,
}

/// `POST /api/v1/deployments`: start a deployment of a registered runbook.
#[derive(Deserialize, ToSchema)]
pub struct NewDeployment {
    /// The runbook's SHA-256, as `POST /api/v1/runbooks` answered.
    pub runbook: String,
    /// Values of the runbook's placeholders.
    #[serde(default)]
    pub vars: BTreeMap<String, String>,
    /// The scheduled start (RFC 3339): the communication plan's
    /// announcement and support alert go now, as with `golive run --at`.
    #[serde(default)]
    pub at: Option<String>,
}

/// `POST …/signoffs`: sign an item (or several) done, N/A or failed.
#[derive(Deserialize, ToSchema)]
pub struct SignRequest {
    /// The item's address (`1.2.3`), a group's or a stage's.
    pub item: String,
    /// More items, signed in the same write.
    #[serde(default)]
    pub more: Vec<String>,
    /// The role to sign in; by default the item's Responsible role when
    /// the person holds it, else their first.
    pub role: Option<String>,
    /// `done` (the default), `na` or `failed`; the last two need a comment.
    pub result: Option<String>,
    pub comment: Option<String>,
    /// The state version the signer saw.
    pub version: Option<i64>,
    /// The sign-off signed with the person's SSH key (one item only).
    #[serde(default)]
    pub ssh: Option<SshSignature>,
}

/// A signature the person made with their SSH key (`ssh-keygen -Y sign -n
/// golive`) over the payload `GET …/payload` gave them, at most ten minutes
/// before, at the deployment's head then. It must verify with one of their
/// keys (`golive users add … --ssh-key`).
#[derive(Deserialize, ToSchema, Clone)]
pub struct SshSignature {
    /// The payload, byte for byte as given.
    pub payload: String,
    /// The armored signature (`-----BEGIN SSH SIGNATURE-----` …).
    pub signature: String,
}

/// The payload to sign for an act, and the namespace to sign it in.
#[derive(Serialize, ToSchema)]
pub struct Payload {
    pub payload: String,
    pub namespace: &'static str,
}

/// `GET …/payload`: which act is to be signed.
#[derive(Deserialize, utoipa::IntoParams)]
pub struct PayloadQuery {
    /// An item's address, `decision`, `rollback`, `continue` or `finish`.
    pub act: String,
    /// For an item `done` (default), `na` or `failed`; for the decision
    /// `go` (default) or `no-go`.
    pub result: Option<String>,
    /// The role the act is done in (default: as the act's write picks it).
    pub role: Option<String>,
}

/// A signer handing over the signature the request carries.
fn presigned(
    s: &Option<SshSignature>,
) -> Option<impl Fn(&[u8]) -> Result<golive_deploy::sshsig::Signed, String> + Sync + '_> {
    s.as_ref().map(|s| {
        move |_: &[u8]| {
            Ok(golive_deploy::sshsig::Signed {
                signature: s.signature.clone(),
                payload: Some(s.payload.clone()),
            })
        }
    })
}

/// `POST …/decision`: one signature of the go/no-go decision.
#[derive(Deserialize, ToSchema)]
pub struct DecideRequest {
    /// `go` or `no-go`.
    pub verdict: String,
    pub role: Option<String>,
    /// Why, for a NO-GO.
    pub reason: Option<String>,
    pub version: Option<i64>,
    /// The signature signed with the person's SSH key.
    #[serde(default)]
    pub ssh: Option<SshSignature>,
}

/// `POST …/steps`: a procedure or rollback step done or skipped. The
/// server records it; a step's commands are run at a terminal
/// (`golive done --run`), never by the server.
#[derive(Deserialize, ToSchema)]
pub struct DoneRequest {
    pub step: String,
    #[serde(default)]
    pub skipped: bool,
    pub comment: Option<String>,
    pub version: Option<i64>,
}

/// `POST …/gates`: count a gate (`smoke` or `verification`).
#[derive(Deserialize, ToSchema)]
pub struct GateRequest {
    pub gate: String,
    pub version: Option<i64>,
}

/// `POST …/rollback`: sign the rollback, or the decision to continue.
#[derive(Deserialize, ToSchema)]
pub struct RollbackRequest {
    pub role: Option<String>,
    pub reason: String,
    /// Decide to continue instead of rolling back a raised decision.
    #[serde(default, rename = "continue")]
    pub continue_: bool,
    pub version: Option<i64>,
    /// The signature signed with the person's SSH key.
    #[serde(default)]
    pub ssh: Option<SshSignature>,
}

/// `POST …/finish`: end the deployment.
#[derive(Deserialize, ToSchema)]
pub struct FinishRequest {
    pub version: Option<i64>,
    /// The end signed with the person's SSH key.
    #[serde(default)]
    pub ssh: Option<SshSignature>,
}

/// What a write did: the lines the CLI prints for it, the state version
/// after it, and the lifecycle's outcome.
#[derive(Serialize, ToSchema)]
pub struct Outcome {
    pub deployment: String,
    pub version: i64,
    /// What `golive` prints for the same command.
    pub said: Vec<String>,
    /// The exit code `golive` gives for it (1: a gate failed).
    pub exit: u8,
}

/// An error answer.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: String,
    pub message: String,
    pub tracking_id: Option<String>,
}

/// Who the token or session is.
#[derive(Serialize, ToSchema)]
pub struct Me {
    pub name: String,
    pub roles: Vec<String>,
    pub email: Option<String>,
    /// Logged in from a browser (writes need `X-CSRF-Token`).
    pub session: bool,
}

#[derive(Deserialize)]
pub struct After {
    pub after: Option<i64>,
}

/// The deployment `id`, opened with the server's people as its roster.
pub async fn open(app: &App, id: &str) -> Result<Deployment, ApiError> {
    // the row first: an unknown id is a 404, not a failure
    let row = app.store.deployment(Some(id)).await?;
    golive_deploy::store::intact(&row).map_err(ApiError::Internal)?;
    let rb = match app.runbook(&row.runbook_sha256) {
        Some(rb) => rb,
        None => {
            let Some(text) = app.store.runbook(&row.runbook_sha256).await? else {
                // says which runbook to register, in the log
                return Err(golive_deploy::open_stored(&app.store, Some(id))
                    .await
                    .err()
                    .map(ApiError::from)
                    .unwrap_or_else(|| ApiError::Internal("runbook missing".into())));
            };
            app.keep_runbook(
                &row.runbook_sha256,
                golive_deploy::Source::new(text.path, text.text).runbook(),
            )
        }
    };
    let mut d = Deployment::with_runbook(app.store.clone(), row, (*rb).clone())?;
    let mut people = crate::auth::roster(&app.store).await?;
    // who the communication plan's names stand for (`--groups`)
    people.groups.clone_from(&app.cfg.groups);
    d.people = Some(people);
    Ok(d)
}

/// Open `id` for a write by `actor` at `version`, checking the session's
/// CSRF token.
async fn for_write(
    app: &App,
    actor: &Actor,
    headers: &HeaderMap,
    id: &str,
    version: Option<i64>,
) -> Result<Deployment, ApiError> {
    actor.check_csrf(headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok()))?;
    actor.may_write()?;
    open_at(app, id, version).await
}

/// The deployment `id`, opened for a write asked at the state `version`
/// (refused by the lifecycle when the deployment moved on since).
pub async fn open_at(app: &App, id: &str, version: Option<i64>) -> Result<Deployment, ApiError> {
    let d = open(app, id).await?;
    *d.seen.lock().unwrap_or_else(|p| p.into_inner()) = version;
    Ok(d)
}

/// After a write: the new version, counted and heard by the streams.
pub async fn written(
    app: &App,
    d: &Deployment,
    said: Vec<String>,
    exit: u8,
) -> Result<Outcome, ApiError> {
    // the head this process appended, when it did since the row was read:
    // no second read of the row
    let head = match app.store.appended_head(d.id()) {
        Some(h) if h > d.row.head_seq => h,
        _ => app.store.deployment(Some(d.id())).await?.head_seq,
    };
    let n = (head - d.row.head_seq).max(0) as u64;
    app.metrics.events_appended.fetch_add(n, Ordering::Relaxed);
    app.hub.poke(d.id());
    if let Some(n) = &app.notifier {
        n.poke(d.id());
    }
    Ok(Outcome {
        deployment: d.id().to_string(),
        version: head,
        said,
        exit,
    })
}

pub fn sign_result(s: Option<&str>) -> Result<SignResult, ApiError> {
    match s.unwrap_or("done").to_ascii_lowercase().as_str() {
        "done" | "" => Ok(SignResult::Done),
        "na" | "n/a" | "not-applicable" => Ok(SignResult::NotApplicable),
        "failed" => Ok(SignResult::Failed),
        other => Err(ApiError::Unprocessable(format!(
            "result: `{other}` is not one of done, na, failed"
        ))),
    }
}

/// Sign as `actor`: the lifecycle decides.
pub async fn do_sign(
    app: &App,
    actor: &Actor,
    d: &Deployment,
    r: &SignRequest,
) -> Result<Outcome, ApiError> {
    let role = match &r.role {
        Some(role) => role.clone(),
        None => {
            let wanted = match d.rb.resolve(&r.item) {
                Ok(golive_runbook::Target::Item(i)) => lifecycle::signing_roles(&d.rb, i),
                _ => Vec::new(),
            };
            lifecycle::acting_role(&actor.person, &wanted)
        }
    };
    let more: Vec<&str> = r.more.iter().map(String::as_str).collect();
    if r.ssh.is_some() && !more.is_empty() {
        return Err(ApiError::Unprocessable(
            "ssh: a signature signs one item's sign-off; sign the others one by one".into(),
        ));
    }
    let signer = presigned(&r.ssh);
    let sign = golive_deploy::Sign {
        item: &r.item,
        name: actor.name(),
        role: &role,
        result: sign_result(r.result.as_deref())?,
        comment: r.comment.as_deref(),
        evidence: &[],
        roster: None,
        signer: signer
            .as_ref()
            .map(|f| f as golive_deploy::sshsig::Signer<'_>),
    };
    let all = d.sign_each(&sign, &more, &Quiet).await?;
    let said = golive_report::said::signed(&d.rb, d.id(), &all);
    written(app, d, said, 0).await
}

pub async fn do_decide(
    app: &App,
    actor: &Actor,
    d: &Deployment,
    r: &DecideRequest,
) -> Result<Outcome, ApiError> {
    let go = match r.verdict.to_ascii_lowercase().as_str() {
        "go" => true,
        "no-go" | "nogo" | "no_go" => false,
        other => {
            return Err(ApiError::Unprocessable(format!(
                "verdict: `{other}` is not go or no-go"
            )));
        }
    };
    let team = d.roster(None)?.team;
    let role = r.role.clone().unwrap_or_else(|| {
        lifecycle::acting_role(&actor.person, &lifecycle::roles(&d.rb, &team).decision)
    });
    let signer = presigned(&r.ssh);
    let o = d
        .decide(
            &golive_deploy::Decide {
                go,
                name: actor.name(),
                role: &role,
                reason: r.reason.as_deref(),
                roster: None,
                signer: signer
                    .as_ref()
                    .map(|f| f as golive_deploy::sshsig::Signer<'_>),
            },
            &Quiet,
        )
        .await?;
    written(app, d, golive_report::said::decided(d.id(), &o), 0).await
}

pub async fn do_done(
    app: &App,
    actor: &Actor,
    d: &Deployment,
    r: &DoneRequest,
) -> Result<Outcome, ApiError> {
    let vars = golive_probe::Vars::default();
    let done = golive_deploy::Done {
        step: &r.step,
        name: actor.name(),
        skipped: r.skipped,
        comment: r.comment.as_deref(),
        roster: None,
        run: false,
        allow_commands: false,
        confirm_rerun: false,
        vars: &vars,
    };
    match d.done(&done, &Quiet).await? {
        Ok(s) => written(app, d, golive_report::said::step_done(&s), 0).await,
        Err(golive_deploy::NotDone::DoneMeanwhile(step)) => Err(ApiError::Conflict(format!(
            "{} was recorded done by another command meanwhile",
            d.rb.items[step].address
        ))),
    }
}

pub async fn do_rollback(
    app: &App,
    actor: &Actor,
    d: &Deployment,
    r: &RollbackRequest,
) -> Result<Outcome, ApiError> {
    let team = d.roster(None)?.team;
    let roles = lifecycle::roles(&d.rb, &team);
    let mut wanted = roles.manual_rollback.clone();
    wanted.push(roles.automatic_rollback.clone());
    let role = r
        .role
        .clone()
        .unwrap_or_else(|| lifecycle::acting_role(&actor.person, &wanted));
    let signer = presigned(&r.ssh);
    let signer = signer
        .as_ref()
        .map(|f| f as golive_deploy::sshsig::Signer<'_>);
    let said = if r.continue_ {
        let c = d
            .continue_signed(actor.name(), &role, &r.reason, None, signer, &Quiet)
            .await?;
        golive_report::said::continued(&c, actor.name(), &role)
    } else {
        let rb = d
            .rollback_signed(actor.name(), &role, &r.reason, None, signer, &Quiet)
            .await?;
        golive_report::said::rolled_back(&rb)
    };
    written(app, d, said, 0).await
}

fn list_json(rows: Vec<golive_store::Deployment>, states: Vec<String>) -> Vec<DeploymentSummary> {
    rows.into_iter()
        .zip(states)
        .map(|(d, state)| DeploymentSummary {
            version: d.head_seq,
            id: d.id,
            runbook: d.runbook_path,
            sha256: d.runbook_sha256,
            state,
            started_by: d.started_by,
            created_at: d.created_at,
        })
        .collect()
}

/// Every deployment with its state, newest first.
pub async fn summaries(app: &App) -> Result<Vec<DeploymentSummary>, ApiError> {
    let rows = app.store.deployments().await?;
    let mut states = Vec::new();
    for r in &rows {
        let state = match golive_deploy::Kept::read(&app.store, &r.id).await {
            Ok((k, _)) => lifecycle::state(&k).to_string(),
            Err(_) => "UNKNOWN".to_string(),
        };
        states.push(state);
    }
    Ok(list_json(rows, states))
}

#[utoipa::path(get, path = "/api/v1/deployments", tag = "deployments",
    responses((status = 200, body = Vec<DeploymentSummary>), (status = 401, body = ErrorBody)))]
pub async fn list_deployments(
    State(app): State<Shared>,
    _a: Actor,
) -> Result<Json<Vec<DeploymentSummary>>, ApiError> {
    Ok(Json(summaries(&app).await?))
}

#[utoipa::path(post, path = "/api/v1/deployments", tag = "deployments", request_body = NewDeployment,
    responses((status = 201, body = DeploymentSummary), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_deployment(
    State(app): State<Shared>,
    a: Actor,
    headers: HeaderMap,
    Body(r): Body<NewDeployment>,
) -> Result<(StatusCode, Json<DeploymentSummary>), ApiError> {
    a.check_csrf(headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok()))?;
    a.may_write()?;
    if app.store.runbook(&r.runbook).await?.is_none() {
        return Err(ApiError::NotFound(format!(
            "runbook: no runbook registered under sha256 `{}`: POST /api/v1/runbooks first",
            r.runbook
        )));
    }
    let at =
        r.at.as_deref()
            .map(|t| {
                t.parse::<jiff::Timestamp>().map_err(|e| {
                    ApiError::Unprocessable(format!(
                        "at: `{t}` is not a time ({e}); write RFC 3339 such as 2026-12-02T14:00:00Z"
                    ))
                })
            })
            .transpose()?;
    let vars = serde_json::to_value(&r.vars).unwrap_or(json!({}));
    let id = golive_deploy::start_stored(&app.store, &r.runbook, vars, a.name()).await?;
    if let Some(at) = at {
        let d = open(&app, &id).await?;
        d.schedule(at, &Quiet).await?;
    }
    let row = app.store.deployment(Some(&id)).await?;
    app.metrics.events_appended.fetch_add(1, Ordering::Relaxed);
    if let Some(n) = &app.notifier {
        n.poke(&id);
    }
    let mut out = list_json(vec![row], vec!["PRE-DEPLOYMENT".into()]);
    Ok((StatusCode::CREATED, Json(out.remove(0))))
}

#[derive(Deserialize)]
pub struct StatusFormat {
    pub format: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/deployments/{id}", tag = "deployments",
    params(("id" = String, Path, description = "the deployment's id"), ("format" = Option<String>, Query, description = "json (the default), text (what `golive status` prints) or message (the status-update message)")),
    responses((status = 200, description = "the deployment's state, as `golive status --format json` gives it, with `version`", body = Object), (status = 404, body = ErrorBody)))]
pub async fn get_deployment(
    State(app): State<Shared>,
    _a: Actor,
    Path(id): Path<String>,
    Query(q): Query<StatusFormat>,
) -> Result<Response, ApiError> {
    let d = open(&app, &id).await?;
    let s = d.status(&Quiet).await?;
    let now = jiff::Timestamp::now();
    Ok(match q.format.as_deref().unwrap_or("json") {
        "json" => {
            let mut v = golive_report::status::status_json(&d.rb, &d.row, &s);
            v["version"] = json!(s.kept.seq);
            Json(v).into_response()
        }
        "text" => (
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            golive_report::status::status_text(&d.rb, &d.row, &s, now),
        )
            .into_response(),
        "message" => (
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            golive_report::render_message(&d.rb, &d.row, &s.kept, now),
        )
            .into_response(),
        other => {
            return Err(ApiError::Unprocessable(format!(
                "format: `{other}` is not one of json, text, message"
            )));
        }
    })
}

#[utoipa::path(get, path = "/api/v1/deployments/{id}/items", tag = "deployments",
    params(("id" = String, Path, description = "the deployment's id")),
    responses((status = 200, description = "every item with its state", body = Object), (status = 404, body = ErrorBody)))]
pub async fn get_items(
    State(app): State<Shared>,
    _a: Actor,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let d = open(&app, &id).await?;
    let k = d.kept(&Quiet).await?;
    let st = lifecycle::states(&d.rb, &k);
    let items: Vec<Value> =
        d.rb.items
            .iter()
            .enumerate()
            .map(|(i, it)| {
                let s = st.get(&it.id);
                json!({
                    "id": it.id, "address": it.address, "title": it.title,
                    "kind": format!("{:?}", it.kind).to_lowercase(),
                    "role": lifecycle::signing_roles(&d.rb, i).first(),
                    "complete": lifecycle::complete(&d.rb, i, s),
                    "checks": s.map(|s| s.checks.clone()).unwrap_or_default(),
                    "signed_by": s.map(|s| s.signed_by.clone()).unwrap_or_default(),
                    "set_aside": s.and_then(|s| s.set_aside.clone()),
                })
            })
            .collect();
    Ok(Json(
        json!({ "deployment": id, "version": k.seq, "items": items }),
    ))
}

#[utoipa::path(post, path = "/api/v1/deployments/{id}/signoffs", tag = "lifecycle", request_body = SignRequest,
    params(("id" = String, Path, description = "the deployment's id")),
    responses((status = 200, body = Outcome), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn sign(
    State(app): State<Shared>,
    a: Actor,
    headers: HeaderMap,
    Path(id): Path<String>,
    Body(r): Body<SignRequest>,
) -> Result<Json<Outcome>, ApiError> {
    let d = for_write(&app, &a, &headers, &id, r.version).await?;
    Ok(Json(do_sign(&app, &a, &d, &r).await?))
}

#[utoipa::path(post, path = "/api/v1/deployments/{id}/decision", tag = "lifecycle", request_body = DecideRequest,
    params(("id" = String, Path, description = "the deployment's id")),
    responses((status = 200, body = Outcome), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn decide(
    State(app): State<Shared>,
    a: Actor,
    headers: HeaderMap,
    Path(id): Path<String>,
    Body(r): Body<DecideRequest>,
) -> Result<Json<Outcome>, ApiError> {
    let d = for_write(&app, &a, &headers, &id, r.version).await?;
    Ok(Json(do_decide(&app, &a, &d, &r).await?))
}

#[utoipa::path(post, path = "/api/v1/deployments/{id}/steps", tag = "lifecycle", request_body = DoneRequest,
    params(("id" = String, Path, description = "the deployment's id")),
    responses((status = 200, body = Outcome), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn done(
    State(app): State<Shared>,
    a: Actor,
    headers: HeaderMap,
    Path(id): Path<String>,
    Body(r): Body<DoneRequest>,
) -> Result<Json<Outcome>, ApiError> {
    let d = for_write(&app, &a, &headers, &id, r.version).await?;
    Ok(Json(do_done(&app, &a, &d, &r).await?))
}

#[utoipa::path(post, path = "/api/v1/deployments/{id}/gates", tag = "lifecycle", request_body = GateRequest,
    params(("id" = String, Path, description = "the deployment's id")),
    responses((status = 200, body = Outcome), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn gate(
    State(app): State<Shared>,
    a: Actor,
    headers: HeaderMap,
    Path(id): Path<String>,
    Body(r): Body<GateRequest>,
) -> Result<Json<Outcome>, ApiError> {
    let d = for_write(&app, &a, &headers, &id, r.version).await?;
    let g = d.gate(&r.gate, a.name(), None, &Quiet).await?;
    let exit = u8::from(g.raised != golive_deploy::Raised::Nothing);
    Ok(Json(
        written(&app, &d, golive_report::said::gate(&g), exit).await?,
    ))
}

#[utoipa::path(post, path = "/api/v1/deployments/{id}/rollback", tag = "lifecycle", request_body = RollbackRequest,
    params(("id" = String, Path, description = "the deployment's id")),
    responses((status = 200, body = Outcome), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn rollback(
    State(app): State<Shared>,
    a: Actor,
    headers: HeaderMap,
    Path(id): Path<String>,
    Body(r): Body<RollbackRequest>,
) -> Result<Json<Outcome>, ApiError> {
    let d = for_write(&app, &a, &headers, &id, r.version).await?;
    Ok(Json(do_rollback(&app, &a, &d, &r).await?))
}

#[utoipa::path(post, path = "/api/v1/deployments/{id}/finish", tag = "lifecycle", request_body = FinishRequest,
    params(("id" = String, Path, description = "the deployment's id")),
    responses((status = 200, body = Outcome), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn finish(
    State(app): State<Shared>,
    a: Actor,
    headers: HeaderMap,
    Path(id): Path<String>,
    Body(r): Body<FinishRequest>,
) -> Result<Json<Outcome>, ApiError> {
    let d = for_write(&app, &a, &headers, &id, r.version).await?;
    let signer = presigned(&r.ssh);
    let signer = signer
        .as_ref()
        .map(|f| f as golive_deploy::sshsig::Signer<'_>);
    let f = d
        .finish_signed(a.name(), None, jiff::Timestamp::now(), signer, &Quiet)
        .await?;
    Ok(Json(
        written(&app, &d, golive_report::said::finished(d.id(), &f), 0).await?,
    ))
}

#[utoipa::path(get, path = "/api/v1/deployments/{id}/payload", tag = "lifecycle",
    params(("id" = String, Path, description = "the deployment's id"), PayloadQuery),
    responses((status = 200, body = Payload), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
/// The payload the person signs with their SSH key for an act, now: post
/// the act within ten minutes with `"ssh": {"payload", "signature"}`.
pub async fn payload(
    State(app): State<Shared>,
    a: Actor,
    Path(id): Path<String>,
    Query(q): Query<PayloadQuery>,
) -> Result<Json<Payload>, ApiError> {
    let d = open(&app, &id).await?;
    let role = match &q.role {
        Some(r) => r.clone(),
        None => {
            let team = d.roster(None)?.team;
            let roles = lifecycle::roles(&d.rb, &team);
            let wanted = match q.act.to_lowercase().as_str() {
                "decision" => roles.decision,
                "rollback" | "continue" => {
                    let mut w = roles.manual_rollback;
                    w.push(roles.automatic_rollback);
                    w
                }
                "finish" => Vec::new(),
                _ => match d.rb.resolve(&q.act) {
                    Ok(golive_runbook::Target::Item(i)) => lifecycle::signing_roles(&d.rb, i),
                    _ => Vec::new(),
                },
            };
            lifecycle::acting_role(&a.person, &wanted)
        }
    };
    let payload = d
        .payload_for(&q.act, q.result.as_deref(), a.name(), &role, &Quiet)
        .await?;
    Ok(Json(Payload {
        payload,
        namespace: golive_deploy::sshsig::NAMESPACE,
    }))
}

#[utoipa::path(get, path = "/api/v1/deployments/{id}/events", tag = "events",
    params(("id" = String, Path, description = "the deployment's id"), ("after" = Option<i64>, Query, description = "only events after this sequence number")),
    responses((status = 200, description = "the deployment's events in order", body = Object), (status = 404, body = ErrorBody)))]
pub async fn events(
    State(app): State<Shared>,
    _a: Actor,
    Path(id): Path<String>,
    Query(q): Query<After>,
) -> Result<Json<Value>, ApiError> {
    app.store.deployment(Some(&id)).await?;
    let events = app.store.events_after(&id, q.after.unwrap_or(0)).await?;
    Ok(Json(
        json!({ "deployment": id, "events": events.iter().map(event_json).collect::<Vec<_>>() }),
    ))
}

pub fn event_json(e: &Event) -> Value {
    json!({ "seq": e.seq, "at": e.at, "kind": e.kind, "item": e.item, "actor": e.actor, "data": e.data, "hash": e.hash })
}

/// The reports a deployment has, by name.
const REPORTS: [(&str, &str); 4] = [
    ("report.md", "text/markdown; charset=utf-8"),
    ("report.html", "text/html; charset=utf-8"),
    ("report.json", "application/json"),
    ("report.junit", "application/xml"),
];

#[utoipa::path(get, path = "/api/v1/deployments/{id}/reports/{name}", tag = "reports",
    params(("id" = String, Path, description = "the deployment's id"), ("name" = String, Path, description = "report.md, report.html, report.json or report.junit")),
    responses((status = 200, description = "the report"), (status = 404, body = ErrorBody)))]
pub async fn report(
    State(app): State<Shared>,
    _a: Actor,
    Path((id, name)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let Some((_, mime)) = REPORTS.iter().find(|(n, _)| *n == name) else {
        return Err(ApiError::NotFound(format!(
            "no report named `{name}`: the reports are {}",
            REPORTS.map(|r| r.0).join(", ")
        )));
    };
    let d = open(&app, &id).await?;
    let events = app.store.events(d.id()).await?;
    let body = match name.as_str() {
        "report.md" => {
            golive_report::render_markdown(&d.rb, &d.row, &events).map_err(ApiError::Internal)?
        }
        "report.html" => golive_report::render_html(&d.rb, &d.row, &events, jiff::Timestamp::now()),
        "report.json" => serde_json::to_string_pretty(&golive_report::report_json(&d.row, &events))
            .unwrap_or_default(),
        _ => golive_report::render_junit(&d.rb, &d.row, &events),
    };
    Ok(([(header::CONTENT_TYPE, *mime)], body).into_response())
}

#[utoipa::path(get, path = "/api/v1/runbooks", tag = "runbooks",
    responses((status = 200, body = Vec<RunbookSummary>)))]
pub async fn list_runbooks(
    State(app): State<Shared>,
    _a: Actor,
) -> Result<Json<Vec<RunbookSummary>>, ApiError> {
    let out = app
        .store
        .runbooks()
        .await?
        .into_iter()
        .map(|r| {
            let rb = golive_runbook::parse_runbook(&r.path, &r.text);
            RunbookSummary {
                title: rb
                    .title
                    .as_ref()
                    .map(|h| h.text.clone())
                    .unwrap_or_else(|| r.path.clone()),
                items: rb.items.len(),
                sha256: r.sha256,
                path: r.path,
                added_by: r.added_by,
                added_at: r.added_at,
            }
        })
        .collect();
    Ok(Json(out))
}

#[utoipa::path(post, path = "/api/v1/runbooks", tag = "runbooks", request_body = NewRunbook,
    responses((status = 201, body = RunbookSummary), (status = 422, body = ErrorBody)))]
pub async fn add_runbook(
    State(app): State<Shared>,
    a: Actor,
    headers: HeaderMap,
    Body(r): Body<NewRunbook>,
) -> Result<(StatusCode, Json<RunbookSummary>), ApiError> {
    a.check_csrf(headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok()))?;
    a.may_write()?;
    let rb = golive_runbook::parse_runbook(&r.path, &r.text);
    if rb.items.is_empty() {
        return Err(ApiError::Unprocessable(format!(
            "text: {} holds no checklist item (`- [ ] …`, a procedure step or a ☐ table row): nothing to deploy",
            r.path
        )));
    }
    let sha = app.store.put_runbook(&r.path, &r.text, a.name()).await?;
    let row = app
        .store
        .runbook(&sha)
        .await?
        .ok_or_else(|| ApiError::Internal("runbook not kept".into()))?;
    Ok((
        StatusCode::CREATED,
        Json(RunbookSummary {
            title: rb
                .title
                .as_ref()
                .map(|h| h.text.clone())
                .unwrap_or_else(|| r.path.clone()),
            items: rb.items.len(),
            sha256: row.sha256,
            path: row.path,
            added_by: row.added_by,
            added_at: row.added_at,
        }),
    ))
}

#[utoipa::path(get, path = "/api/v1/me", tag = "people", responses((status = 200, body = Me), (status = 401, body = ErrorBody)))]
pub async fn me(a: Actor) -> Json<Me> {
    Json(Me {
        name: a.person.name.clone(),
        roles: a.person.roles.clone(),
        email: a.person.contact.clone(),
        session: a.session.is_some(),
    })
}

/// Where a stream starts: after the `Last-Event-ID` it was given, or
/// `after`, or the head now.
fn resume_point(headers: &HeaderMap, q: &After) -> Option<i64> {
    headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
        .or(q.after)
}

/// Counts an open stream while it lives.
struct Open(Arc<App>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.metrics.streams.fetch_sub(1, Ordering::Relaxed);
    }
}

struct Follow {
    backlog: VecDeque<Event>,
    rx: tokio::sync::broadcast::Receiver<Arc<Event>>,
    last: i64,
    id: String,
    closing: tokio::sync::watch::Receiver<bool>,
    open: Open,
}

#[utoipa::path(get, path = "/api/v1/deployments/{id}/stream", tag = "events",
    params(("id" = String, Path, description = "the deployment's id"), ("after" = Option<i64>, Query, description = "resume after this sequence number (or send Last-Event-ID)")),
    responses((status = 200, description = "text/event-stream: each event as `change`, its id the sequence number")))]
pub async fn stream(
    State(app): State<Shared>,
    _a: Actor,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<After>,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, std::convert::Infallible>>>, ApiError> {
    let row = app.store.deployment(Some(&id)).await?;
    let from = resume_point(&headers, &q).unwrap_or(row.head_seq);
    // subscribe first, then read what came before: nothing falls between
    let rx = app.hub.subscribe(&id, row.head_seq);
    let backlog: VecDeque<Event> = if from < row.head_seq {
        app.store.events_after(&id, from).await?.into()
    } else {
        VecDeque::new()
    };
    app.metrics.streams.fetch_add(1, Ordering::Relaxed);
    let state = Follow {
        backlog,
        rx,
        last: from,
        id,
        closing: app.closing.clone(),
        open: Open(app.clone()),
    };
    let s = futures_util::stream::unfold(state, |mut f| async move {
        loop {
            if let Some(e) = f.backlog.pop_front() {
                if e.seq <= f.last {
                    continue;
                }
                f.last = e.seq;
                return Some((Ok(sse_event(&e)), f));
            }
            if *f.closing.borrow() {
                return None;
            }
            tokio::select! {
                got = f.rx.recv() => match got {
                    Ok(e) => {
                        if e.seq > f.last {
                            f.last = e.seq;
                            return Some((Ok(sse_event(&e)), f));
                        }
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                        // too slow to keep up: read what it missed from the log
                        if let Ok(missed) = f.open.0.store.events_after(&f.id, f.last).await {
                            f.backlog = missed.into();
                        }
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
                },
                _ = f.closing.changed() => return None,
            }
        }
    });
    Ok(Sse::new(s).keep_alive(KeepAlive::default()))
}

fn sse_event(e: &Event) -> SseEvent {
    SseEvent::default()
        .id(e.seq.to_string())
        .event("change")
        .data(event_json(e).to_string())
}
