//! The page: server-rendered HTML (minijinja templates, embedded), htmx
//! and its SSE extension (vendored, embedded), no JavaScript build step.
//! A deployment's page follows its event stream and reloads its live part
//! on every event; its forms post to the lifecycle as the logged-in person,
//! with the session's CSRF token.

use crate::App;
use crate::api::{self, DecideRequest, DoneRequest, RollbackRequest, SignRequest};
use crate::auth::{self, Actor, SESSION_COOKIE};
use crate::error::ApiError;
use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use golive_deploy::{Quiet, lifecycle, procedure};
use minijinja::Environment;
use rust_embed::RustEmbed;
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;

#[derive(RustEmbed)]
#[folder = "assets/"]
struct Assets;

/// The templates, loaded once.
pub struct Pages {
    env: Environment<'static>,
}

impl Pages {
    pub fn new() -> Result<Pages, String> {
        let mut env = Environment::new();
        for (name, text) in [
            ("base.html", include_str!("../templates/base.html")),
            ("login.html", include_str!("../templates/login.html")),
            ("list.html", include_str!("../templates/list.html")),
            (
                "deployment.html",
                include_str!("../templates/deployment.html"),
            ),
            ("live.html", include_str!("../templates/live.html")),
            ("error.html", include_str!("../templates/error.html")),
            ("flash.html", include_str!("../templates/flash.html")),
        ] {
            env.add_template(name, text)
                .map_err(|e| format!("template {name}: {e}"))?;
        }
        Ok(Pages { env })
    }

    /// `name` rendered with `ctx` (HTML-escaped: the names end in `.html`).
    pub fn render(&self, name: &str, ctx: &Value) -> Result<String, ApiError> {
        self.env
            .get_template(name)
            .and_then(|t| t.render(minijinja::value::Serde(ctx)))
            .map_err(|e| ApiError::Internal(format!("template {name}: {e}")))
    }
}

pub fn routes() -> axum::Router<Arc<App>> {
    axum::Router::new()
        .route("/", get(list))
        .route("/login", get(login_form).post(login))
        .route("/logout", post(logout))
        .route("/login/oidc", get(sso_begin))
        .route("/login/oidc/callback", get(sso_callback))
        .route("/login/oidc/backchannel", post(sso_backchannel))
        .route("/assets/{*path}", get(asset))
        .route("/d/{id}", get(deployment))
        .route("/d/{id}/live", get(live))
        .route("/d/{id}/sign", post(sign))
        .route("/d/{id}/decide", post(decide))
        .route("/d/{id}/done", post(done))
        .route("/d/{id}/rollback", post(rollback))
}

/// An error as a page: its status, its words, a way back.
fn error_page(app: &App, e: ApiError) -> Response {
    let status = e.status();
    if status == StatusCode::UNAUTHORIZED {
        return Redirect::to("/login").into_response();
    }
    let (message, tracking) = e.public();
    let body = app
        .pages
        .render(
            "error.html",
            &json!({ "status": status.as_u16(), "reason": status.canonical_reason(), "message": message, "tracking": tracking }),
        )
        .unwrap_or_else(|_| "golive: error".into());
    let mut r = (status, Html(body)).into_response();
    e.decorate(&mut r);
    r
}

/// The friendly 404 of every route there is not: JSON under `/api/`, a
/// page elsewhere.
pub async fn not_found(State(app): State<Arc<App>>, uri: Uri) -> Response {
    let e = ApiError::NotFound(format!(
        "nothing at {}: the deployments are at /, the API under /api/v1/ (described at /openapi.json)",
        uri.path()
    ));
    if uri.path().starts_with("/api/") {
        e.into_response()
    } else {
        error_page(&app, e)
    }
}

async fn asset(Path(path): Path<String>) -> Response {
    match Assets::get(&path) {
        Some(f) => {
            let mime = if path.ends_with(".js") {
                "text/javascript; charset=utf-8"
            } else if path.ends_with(".css") {
                "text/css; charset=utf-8"
            } else if path.ends_with(".svg") {
                "image/svg+xml"
            } else {
                "application/octet-stream"
            };
            (
                [
                    (header::CONTENT_TYPE, mime),
                    (header::CACHE_CONTROL, "public, max-age=3600"),
                ],
                f.data.into_owned(),
            )
                .into_response()
        }
        None => (StatusCode::NOT_FOUND, "no such asset\n").into_response(),
    }
}

#[derive(Deserialize)]
struct LoginForm {
    token: String,
}

async fn login_form(State(app): State<Arc<App>>) -> Response {
    login_page(&app, StatusCode::OK, None)
}

/// The login page (a token form, and the identity provider's button when
/// single sign-on is configured), with what went wrong.
fn login_page(app: &App, status: StatusCode, error: Option<&str>) -> Response {
    let sso = app.oidc.as_ref().map(|o| o.cfg.issuer.clone());
    match app
        .pages
        .render("login.html", &json!({ "error": error, "sso": sso }))
    {
        Ok(b) => (status, Html(b)).into_response(),
        Err(e) => error_page(app, e),
    }
}

/// The session cookie for `token`.
fn session_cookie(app: &App, token: &str) -> String {
    format!(
        "{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
        app.cfg.session_hours * 3600,
        if app.cfg.secure_cookie {
            "; Secure"
        } else {
            ""
        }
    )
}

/// `GET /login/oidc`: off to the identity provider, this browser bound to
/// the login by a cookie.
async fn sso_begin(State(app): State<Arc<App>>) -> Response {
    let Some(oidc) = &app.oidc else {
        return error_page(
            &app,
            ApiError::NotFound(
                "single sign-on is not configured (golive serve --oidc-issuer)".into(),
            ),
        );
    };
    match oidc.begin().await {
        Ok((url, browser)) => {
            let mut r = Redirect::to(&url).into_response();
            let cookie = format!(
                "{}={browser}; Path=/login/oidc; HttpOnly; SameSite=Lax; Max-Age=600{}",
                crate::oidc::LOGIN_COOKIE,
                if app.cfg.secure_cookie {
                    "; Secure"
                } else {
                    ""
                }
            );
            if let Ok(v) = HeaderValue::from_str(&cookie) {
                r.headers_mut().insert(header::SET_COOKIE, v);
            }
            r
        }
        Err(e) => {
            tracing::warn!(issuer = %oidc.cfg.issuer, why = %e.message(), "single sign-on could not begin");
            login_page(
                &app,
                StatusCode::BAD_GATEWAY,
                Some(&format!(
                    "{} Log in with your golive token below meanwhile.",
                    e.message()
                )),
            )
        }
    }
}

#[derive(Deserialize)]
struct Callback {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// `GET /login/oidc/callback`: the provider sends the browser back; once
/// every check holds, a session for the person it names.
async fn sso_callback(
    State(app): State<Arc<App>>,
    peer: Option<axum::Extension<crate::Peer>>,
    axum::extract::Query(cb): axum::extract::Query<Callback>,
    req_headers: HeaderMap,
) -> Response {
    let Some(oidc) = &app.oidc else {
        return error_page(
            &app,
            ApiError::NotFound(
                "single sign-on is not configured (golive serve --oidc-issuer)".into(),
            ),
        );
    };
    let client = peer
        .map(|p| p.0.0.ip())
        .unwrap_or(std::net::IpAddr::from([127, 0, 0, 1]));
    if let Err(wait) = app.auth_failures.check(client) {
        return error_page(&app, ApiError::TooMany(wait));
    }
    let refuse = |status: StatusCode, why: &str| {
        tracing::warn!(peer = %client, why = %why, "single sign-on refused");
        login_page(&app, status, Some(why))
    };
    if let Some(e) = &cb.error {
        let why = format!(
            "The identity provider did not sign you in: {e}{}.",
            cb.error_description
                .as_deref()
                .map(|d| format!(" ({d})"))
                .unwrap_or_default()
        );
        return refuse(StatusCode::UNAUTHORIZED, &why);
    }
    let (Some(code), Some(state)) = (&cb.code, &cb.state) else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "The identity provider's answer carries no code and state: start again.",
        );
    };
    let browser = auth::cookie(&req_headers, crate::oidc::LOGIN_COOKIE);
    let identity = match oidc.finish(state, code, browser).await {
        Ok(i) => i,
        Err(e) => {
            let status = match &e {
                crate::oidc::Refused::Provider(_) => StatusCode::BAD_GATEWAY,
                crate::oidc::Refused::Bad(_) => StatusCode::BAD_REQUEST,
                crate::oidc::Refused::Nobody(_) => StatusCode::FORBIDDEN,
            };
            if status == StatusCode::BAD_REQUEST {
                let _ = app.auth_failures.take(client);
            }
            return refuse(status, e.message());
        }
    };
    let people = match app.store.people().await {
        Ok(p) => p,
        Err(e) => return error_page(&app, e.into()),
    };
    let (found, name, roles) = match oidc.person_for(&identity, &people) {
        Ok(f) => f,
        Err(e) => return refuse(StatusCode::FORBIDDEN, e.message()),
    };
    let email = identity
        .claims
        .get("email")
        .and_then(Value::as_str)
        .filter(|_| {
            identity
                .claims
                .get("email_verified")
                .and_then(Value::as_bool)
                == Some(true)
        })
        .map(String::from)
        .or_else(|| found.and_then(|p| p.email.clone()));
    // the provider's groups are the roles, when they are mapped
    if let Some(roles) = &roles {
        let changed = found.is_none_or(|p| &p.roles != roles || p.email != email);
        if changed && let Err(e) = app.store.put_person(&name, email.as_deref(), roles).await {
            return error_page(&app, e.into());
        }
        if found.is_none() {
            tracing::info!(person = %name, roles = ?roles, "person added by single sign-on");
        }
    }
    let (token, row) = auth::issue(&name, "session", Some(app.cfg.session_hours));
    if let Err(e) = app.store.add_token(&row).await {
        return error_page(&app, e.into());
    }
    let sid = identity.sid.as_deref().map(|s| oidc.hashed("sid", s));
    if let Err(e) = app
        .store
        .link_provider_session(
            &row.hash,
            sid.as_deref(),
            &oidc.hashed("sub", &identity.subject),
        )
        .await
    {
        return error_page(&app, e.into());
    }
    tracing::info!(person = %name, "logged in by single sign-on");
    // a page, not a redirect: the session cookie is SameSite=Strict, and a
    // redirect still counts as the provider's navigation
    let body = "<!doctype html><meta charset=utf-8><meta http-equiv=refresh content=\"0; url=/\"><title>golive</title><p>Signed in. <a href=\"/\">Continue</a></p>";
    let mut r = (StatusCode::OK, Html(body)).into_response();
    if let Ok(v) = HeaderValue::from_str(&session_cookie(&app, &token)) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    let clear = format!(
        "{}=; Path=/login/oidc; HttpOnly; Max-Age=0",
        crate::oidc::LOGIN_COOKIE
    );
    if let Ok(v) = HeaderValue::from_str(&clear) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}

#[derive(Deserialize)]
struct LogoutToken {
    logout_token: String,
}

/// `POST /login/oidc/backchannel`: the provider says one of its sessions
/// ended; the golive sessions opened through it end too.
async fn sso_backchannel(State(app): State<Arc<App>>, Form(f): Form<LogoutToken>) -> Response {
    let Some(oidc) = &app.oidc else {
        return (StatusCode::NOT_FOUND, "single sign-on is not configured\n").into_response();
    };
    let (sid, sub) = match oidc.logout_token(&f.logout_token).await {
        Ok(x) => x,
        Err(e) => {
            tracing::warn!(why = %e.message(), "back-channel logout refused");
            let body = json!({ "error": "invalid_request", "error_description": e.message() });
            return (StatusCode::BAD_REQUEST, axum::Json(body)).into_response();
        }
    };
    let sid = sid.map(|s| oidc.hashed("sid", &s));
    let sub = sub.map(|s| oidc.hashed("sub", &s));
    match app
        .store
        .revoke_provider_sessions(sid.as_deref(), sub.as_deref())
        .await
    {
        Ok(n) => {
            tracing::info!(
                sessions = n,
                "sessions ended by the identity provider's logout"
            );
            ([(header::CACHE_CONTROL, "no-store")], StatusCode::OK).into_response()
        }
        Err(e) => ApiError::from(e).into_response(),
    }
}

async fn login(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    peer: Option<axum::Extension<crate::Peer>>,
    Form(f): Form<LoginForm>,
) -> Response {
    let client = peer
        .map(|p| p.0.0.ip())
        .unwrap_or(std::net::IpAddr::from([127, 0, 0, 1]));
    if let Err(wait) = app.auth_failures.check(client) {
        return error_page(&app, ApiError::TooMany(wait));
    }
    let _ = headers;
    let found = match auth::lookup(&app, f.token.trim(), &["api"]).await {
        Ok(f) => f,
        Err(e) => return error_page(&app, e),
    };
    let Some((person, _)) = found else {
        if let Err(wait) = app.auth_failures.take(client) {
            return error_page(&app, ApiError::TooMany(wait));
        }
        return login_page(
            &app,
            StatusCode::UNAUTHORIZED,
            Some("That token is not valid: unknown, revoked or expired."),
        );
    };
    let (token, row) = auth::issue(&person.name, "session", Some(app.cfg.session_hours));
    if let Err(e) = app.store.add_token(&row).await {
        return error_page(&app, e.into());
    }
    let cookie = session_cookie(&app, &token);
    let mut r = Redirect::to("/").into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

#[derive(Deserialize)]
struct CsrfForm {
    csrf: Option<String>,
}

async fn logout(
    State(app): State<Arc<App>>,
    actor: Result<Actor, ApiError>,
    Form(f): Form<CsrfForm>,
) -> Response {
    let a = match actor {
        Ok(a) => a,
        Err(e) => return error_page(&app, e),
    };
    if let Err(e) = a.check_csrf(f.csrf.as_deref()) {
        return error_page(&app, e);
    }
    let mut through_provider = false;
    if let Some(s) = &a.session {
        if let Err(e) = app.store.revoke_hash(&s.hash).await {
            return error_page(&app, e.into());
        }
        through_provider = app.oidc.is_some()
            && app
                .store
                .is_provider_session(&s.hash)
                .await
                .unwrap_or(false);
    }
    // a session the provider opened ends at the provider too
    let to = match (&app.oidc, through_provider) {
        (Some(o), true) => o.end_session_url().await,
        _ => None,
    };
    let mut r = Redirect::to(to.as_deref().unwrap_or("/login")).into_response();
    r.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("golive_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    r
}

fn me(a: &Actor) -> Value {
    json!({ "name": a.person.name, "roles": a.person.roles, "csrf": a.csrf(), "readonly": readonly(a) })
}

fn readonly(a: &Actor) -> bool {
    a.readonly()
}

async fn list(State(app): State<Arc<App>>, actor: Result<Actor, ApiError>) -> Response {
    let a = match actor {
        Ok(a) => a,
        Err(e) => return error_page(&app, e),
    };
    let ds = match api::summaries(&app).await {
        Ok(d) => d,
        Err(e) => return error_page(&app, e),
    };
    let rows: Vec<Value> = ds
        .iter()
        .map(|d| json!({ "id": d.id, "runbook": d.runbook, "state": d.state, "started_by": d.started_by, "created_at": short_time(&d.created_at), "version": d.version }))
        .collect();
    match app
        .pages
        .render("list.html", &json!({ "me": me(&a), "deployments": rows }))
    {
        Ok(b) => Html(b).into_response(),
        Err(e) => error_page(&app, e),
    }
}

fn short_time(at: &str) -> String {
    at.parse::<jiff::Timestamp>()
        .map(|t| t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|_| at.to_string())
}

fn clock(at: &str) -> String {
    at.parse::<jiff::Timestamp>()
        .map(|t| t.strftime("%H:%M:%S").to_string())
        .unwrap_or_else(|_| at.to_string())
}

fn state_class(state: &str) -> &'static str {
    match state {
        "SUCCEEDED" => "ok",
        "ROLLED BACK" | "ROLLING BACK" | "NO-GO" => "bad",
        "ROLLBACK DECISION RAISED" => "warn",
        _ => "info",
    }
}

/// What the live part of a deployment's page shows, for `a`.
async fn view(
    app: &App,
    id: &str,
    a: &Actor,
    flash: Option<(&str, String)>,
) -> Result<Value, ApiError> {
    let d = api::open(app, id).await?;
    let s = d.status(&Quiet).await?;
    let (rb, k) = (&d.rb, &s.kept);
    let now = jiff::Timestamp::now();
    let addr = |item: &Option<String>| -> Option<(String, String)> {
        let id = item.as_deref()?;
        rb.items
            .iter()
            .find(|i| i.id == id)
            .map(|i| (i.address.clone(), i.title.clone()))
    };
    let stages: Vec<Value> = s
        .stages
        .iter()
        .map(|st| {
            let stage = &rb.stages[st.stage];
            json!({
                "id": stage.address, "title": stage.title(), "complete": st.complete, "total": st.total,
                "pct": (st.complete * 100).checked_div(st.total).unwrap_or(0),
                "groups": st.groups.iter().map(|&(g, c, t)| json!({ "title": stage.groups[g].title(), "complete": c, "total": t })).collect::<Vec<_>>(),
            })
        })
        .collect();
    let (done, total) = s
        .stages
        .iter()
        .fold((0, 0), |(a, b), st| (a + st.complete, b + st.total));
    let gates: Vec<Value> = lifecycle::required_gates(rb)
        .into_iter()
        .map(|g| match g.tally(rb, k) {
            Ok(t) => json!({ "name": g.name(), "label": g.label(), "passed": t.passed, "total": t.total, "target": t.target, "passes": t.passes(), "untried": t.untried.len() }),
            Err(why) => json!({ "name": g.name(), "label": g.label(), "why": why }),
        })
        .collect();
    let recorded_gates: Vec<Value> = k
        .gates
        .iter()
        .map(|e| json!({ "at": clock(&e.at), "data": e.data.to_string(), "by": e.actor }))
        .collect();
    let timeline: Vec<Value> = if k.go().is_some() {
        lifecycle::phase_timings(rb, k, now)
            .into_iter()
            .map(|p| {
                let over = p.budget.is_some_and(|b| p.seconds > b as f64);
                json!({
                    "title": p.title, "done": p.done, "total": p.total,
                    "took": golive_deploy::time::minutes_text(p.seconds),
                    "budget": p.budget.map(|b| golive_deploy::time::minutes_text(b as f64)),
                    "pct": p.budget.map(|b| ((p.seconds / (b.max(1) as f64)) * 100.0).min(100.0) as u64).unwrap_or(if p.done == p.total { 100 } else { 0 }),
                    "over": over, "complete": p.done == p.total, "overruns": p.overruns,
                    "steps": p.steps.iter().map(|st| {
                        let it = &rb.items[st.item];
                        json!({
                            "address": it.address, "title": it.title, "done": st.done, "over": st.over,
                            "took": st.seconds.map(golive_deploy::time::minutes_text),
                            "budget": st.budget.map(|b| golive_deploy::time::minutes_text(b as f64)),
                        })
                    }).collect::<Vec<_>>(),
                })
            })
            .collect()
    } else {
        Vec::new()
    };
    let criteria: Vec<Value> = golive_engine::rules::rollback_rules(rb)
        .into_iter()
        .map(|r| {
            let it = &rb.items[r.item];
            json!({ "address": it.address, "title": it.title, "automatic": r.automatic })
        })
        .collect();
    let rollback = json!({
        "raised": k.rollback_raised.as_ref().map(|e| json!({ "at": clock(&e.at), "by": e.actor, "reason": e.data.get("reason").and_then(Value::as_str).unwrap_or_default() })),
        "started": k.rollback_started.as_ref().map(|e| json!({ "at": clock(&e.at), "by": e.actor })),
        "resolved": !k.rollback_resolved.is_empty(),
    });
    let events = app.store.events_after(d.id(), (k.seq - 60).max(0)).await?;
    let log: Vec<Value> = events
        .iter()
        .rev()
        .map(|e| {
            let (address, title) = addr(&e.item).unwrap_or_default();
            let comment = e.data.get("comment").and_then(Value::as_str).unwrap_or_default();
            let outcome = e.data.get("outcome").and_then(Value::as_str).unwrap_or_default();
            json!({ "seq": e.seq, "at": clock(&e.at), "kind": e.kind, "actor": e.actor, "address": address, "title": title, "comment": comment, "outcome": outcome })
        })
        .collect();
    // checks that failed in their last run: expected beside actual
    let mut failed = Vec::new();
    for (item_id, c) in &k.checks {
        for e in &c.events {
            let o = e
                .data
                .get("outcome")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if o == "passed" {
                continue;
            }
            let (address, title) = addr(&Some(item_id.clone())).unwrap_or_default();
            failed.push(json!({
                "address": address, "title": title, "outcome": o,
                "kind": e.data.get("kind"), "target": e.data.get("target"),
                "expect": e.data.get("expect"), "actual": e.data.get("actual").map(|a| a.to_string()),
                "message": e.data.get("message"),
            }));
        }
    }
    let person = &a.person;
    let ro = readonly(a);
    let mine: Vec<Value> = if ro {
        Vec::new()
    } else {
        lifecycle::open_items_for(rb, k, person)
            .into_iter()
            .map(|o| {
                let it = &rb.items[o.item];
                json!({ "address": it.address, "title": it.title, "role": o.role })
            })
            .collect()
    };
    let state = s.state;
    let decision_roles: Vec<&String> = s
        .roles
        .decision
        .iter()
        .filter(|r| person.holds(r))
        .collect();
    let signed_decision: Vec<Value> = k.decision_signatures.iter().map(|e| json!({ "by": e.actor, "role": e.data.get("role"), "verdict": e.data.get("verdict") })).collect();
    let may_decide = !ro && state == "PRE-DEPLOYMENT" && !decision_roles.is_empty();
    let next = procedure::next_step(rb, k).map(|i| {
        let it = &rb.items[i];
        json!({ "address": it.address, "title": it.title })
    });
    let mut rollback_roles: Vec<String> = s.roles.manual_rollback.clone();
    rollback_roles.push(s.roles.automatic_rollback.clone());
    let may_rollback =
        !ro && matches!(
            state,
            "DEPLOYING" | "VERIFYING" | "ROLLBACK DECISION RAISED"
        ) && rollback_roles.iter().any(|r| person.holds(r));
    Ok(json!({
        "id": d.id(), "title": rb.title.as_ref().map(|h| h.text.clone()).unwrap_or_else(|| d.row.runbook_path.clone()),
        "runbook": d.row.runbook_path, "state": state, "state_class": state_class(state), "version": k.seq,
        "started_by": d.row.started_by, "started_at": short_time(&d.row.created_at),
        "stages": stages, "done": done, "total": total,
        "gates": gates, "recorded_gates": recorded_gates, "timeline": timeline,
        "criteria": criteria, "rollback": rollback, "log": log, "failed": failed,
        "mine": mine, "may_decide": may_decide, "decision_roles": decision_roles, "decision_signatures": signed_decision,
        "decision": k.decision.as_ref().map(|e| e.data.get("verdict").cloned()),
        "next_step": if ro { None } else { next }, "may_rollback": may_rollback,
        "raised": k.rollback_raised.is_some() && k.rollback_started.is_none(),
        "message": golive_report::render_message(rb, &d.row, k, now),
        "me": me(a),
        "flash": flash.map(|(kind, text)| json!({ "kind": kind, "text": text })),
    }))
}

async fn deployment(
    State(app): State<Arc<App>>,
    actor: Result<Actor, ApiError>,
    Path(id): Path<String>,
) -> Response {
    let a = match actor {
        Ok(a) => a,
        Err(e) => return error_page(&app, e),
    };
    match view(&app, &id, &a, None)
        .await
        .and_then(|v| app.pages.render("deployment.html", &v))
    {
        Ok(b) => Html(b).into_response(),
        Err(e) => error_page(&app, e),
    }
}

async fn live(
    State(app): State<Arc<App>>,
    actor: Result<Actor, ApiError>,
    Path(id): Path<String>,
) -> Response {
    let a = match actor {
        Ok(a) => a,
        Err(e) => return error_page(&app, e),
    };
    match view(&app, &id, &a, None)
        .await
        .and_then(|v| app.pages.render("live.html", &v))
    {
        Ok(b) => Html(b).into_response(),
        Err(e) => error_page(&app, e),
    }
}

/// A form's answer: the live part again, with what happened on top, for
/// htmx; the page again (after a redirect when it worked) without it.
async fn answer(
    app: &App,
    id: &str,
    a: &Actor,
    headers: &HeaderMap,
    r: Result<api::Outcome, ApiError>,
) -> Response {
    let htmx = headers.contains_key("hx-request");
    let (status, flash, extra) = match r {
        Ok(o) => (StatusCode::OK, ("ok", o.said.join("\n")), None),
        Err(e) => {
            let status = e.status();
            if status == StatusCode::UNAUTHORIZED {
                return error_page(app, e);
            }
            let (m, _) = e.public();
            (status, ("error", m), Some(e))
        }
    };
    if !htmx && status == StatusCode::OK {
        return Redirect::to(&format!("/d/{id}")).into_response();
    }
    let body = if htmx {
        // what happened, on top; the live part reloads on the event (or
        // at once, told by the header, when nothing was recorded)
        app.pages.render(
            "flash.html",
            &json!({ "flash": { "kind": flash.0, "text": flash.1 } }),
        )
    } else {
        view(app, id, a, Some(flash))
            .await
            .and_then(|v| app.pages.render("deployment.html", &v))
    };
    match body {
        Ok(b) => {
            let mut resp = (status, Html(b)).into_response();
            if let Some(e) = extra {
                e.decorate(&mut resp);
            }
            if htmx {
                resp.headers_mut()
                    .insert("hx-trigger", HeaderValue::from_static("golive-refresh"));
            }
            resp
        }
        Err(e) => error_page(app, e),
    }
}

/// The actor of a form, with its CSRF token checked, and not a viewer.
fn form_actor(actor: Result<Actor, ApiError>, csrf: Option<&str>) -> Result<Actor, ApiError> {
    let a = actor?;
    a.check_csrf(csrf)?;
    a.may_write()?;
    Ok(a)
}

#[derive(Deserialize)]
struct SignForm {
    csrf: Option<String>,
    item: String,
    result: Option<String>,
    comment: Option<String>,
    version: Option<i64>,
}

async fn sign(
    State(app): State<Arc<App>>,
    actor: Result<Actor, ApiError>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(f): Form<SignForm>,
) -> Response {
    let a = match form_actor(actor, f.csrf.as_deref()) {
        Ok(a) => a,
        Err(e) => return error_page(&app, e),
    };
    let r = async {
        let d = api::open_at(&app, &id, f.version).await?;
        let req = SignRequest {
            item: f.item.clone(),
            more: Vec::new(),
            role: None,
            result: f.result.clone(),
            comment: f.comment.clone().filter(|c| !c.trim().is_empty()),
            version: f.version,
            ssh: None,
        };
        api::do_sign(&app, &a, &d, &req).await
    }
    .await;
    answer(&app, &id, &a, &headers, r).await
}

#[derive(Deserialize)]
struct DecideForm {
    csrf: Option<String>,
    verdict: String,
    role: Option<String>,
    reason: Option<String>,
    version: Option<i64>,
}

async fn decide(
    State(app): State<Arc<App>>,
    actor: Result<Actor, ApiError>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(f): Form<DecideForm>,
) -> Response {
    let a = match form_actor(actor, f.csrf.as_deref()) {
        Ok(a) => a,
        Err(e) => return error_page(&app, e),
    };
    let r = async {
        let d = api::open_at(&app, &id, f.version).await?;
        let req = DecideRequest {
            verdict: f.verdict.clone(),
            role: f.role.clone().filter(|r| !r.is_empty()),
            reason: f.reason.clone().filter(|r| !r.trim().is_empty()),
            version: f.version,
            ssh: None,
        };
        api::do_decide(&app, &a, &d, &req).await
    }
    .await;
    answer(&app, &id, &a, &headers, r).await
}

#[derive(Deserialize)]
struct DoneForm {
    csrf: Option<String>,
    step: String,
    skipped: Option<String>,
    comment: Option<String>,
    version: Option<i64>,
}

async fn done(
    State(app): State<Arc<App>>,
    actor: Result<Actor, ApiError>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(f): Form<DoneForm>,
) -> Response {
    let a = match form_actor(actor, f.csrf.as_deref()) {
        Ok(a) => a,
        Err(e) => return error_page(&app, e),
    };
    let r = async {
        let d = api::open_at(&app, &id, f.version).await?;
        let req = DoneRequest {
            step: f.step.clone(),
            skipped: f.skipped.as_deref() == Some("on") || f.skipped.as_deref() == Some("true"),
            comment: f.comment.clone().filter(|c| !c.trim().is_empty()),
            version: f.version,
        };
        api::do_done(&app, &a, &d, &req).await
    }
    .await;
    answer(&app, &id, &a, &headers, r).await
}

#[derive(Deserialize)]
struct RollbackForm {
    csrf: Option<String>,
    reason: String,
    action: Option<String>,
    version: Option<i64>,
}

async fn rollback(
    State(app): State<Arc<App>>,
    actor: Result<Actor, ApiError>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(f): Form<RollbackForm>,
) -> Response {
    let a = match form_actor(actor, f.csrf.as_deref()) {
        Ok(a) => a,
        Err(e) => return error_page(&app, e),
    };
    let r = async {
        let d = api::open_at(&app, &id, f.version).await?;
        let req = RollbackRequest {
            role: None,
            reason: f.reason.clone(),
            continue_: f.action.as_deref() == Some("continue"),
            version: f.version,
            ssh: None,
        };
        api::do_rollback(&app, &a, &d, &req).await
    }
    .await;
    answer(&app, &id, &a, &headers, r).await
}
