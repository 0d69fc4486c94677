//! golive-server: `golive serve`, the war room.
//!
//! One process serving, over the same store as the CLI:
//!
//! - the JSON API under `/api/v1/` ([`api`]), described by the OpenAPI 3.1
//!   document at `/openapi.json`, generated from the handlers' own types;
//! - the live page ([`page`]): the deployments, one deployment's stages,
//!   gates, timeline, rollback criteria and log, and the forms of the items
//!   the person holds the role of, updating by Server-Sent Events;
//! - the event stream of a deployment ([`events`]), resumable with
//!   `Last-Event-ID`;
//! - the health contract: `/health`, `/ready`, `/live`, `/version`,
//!   `/metrics`.
//!
//! The server owns HTTP only: who is asking ([`auth`]), sessions, CSRF,
//! limits, streams. Every write goes through golive-deploy with the actor
//! taken from the token or session.
//!
//! ```no_run
//! # async fn f() -> Result<(), String> {
//! let cfg = golive_server::Config::new("127.0.0.1:8080".parse().unwrap(), "sqlite://.golive/golive.db");
//! let server = golive_server::Server::bind(cfg).await?;
//! let addr = server.local_addr(); // the port, when 0 was asked
//! server.run(std::future::pending()).await?; // or until a signal
//! # drop(addr); Ok(()) }
//! ```

pub mod agents;
pub mod api;
pub mod auth;
pub mod error;
pub mod events;
mod health;
pub mod limit;
pub mod metrics;
pub mod notify;
pub mod oidc;
pub mod page;

use axum::extract::{FromRequest, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use error::ApiError;
use golive_store::Store;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// What `golive serve` is given.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    /// The store, as `--store` names it.
    pub store: String,
    /// A certificate chain and its key (PEM): serve HTTPS.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// The largest request body accepted, in bytes.
    pub body_limit: usize,
    /// Requests per client address (API, page and streams; not the health
    /// contract).
    pub rate: limit::Rate,
    /// Failed logins and bad tokens per client address.
    pub auth_failures: limit::Rate,
    /// How long a browser's login lasts.
    pub session_hours: i64,
    /// Mark the session cookie `Secure` (on with TLS; say so behind a
    /// TLS-terminating proxy).
    pub secure_cookie: bool,
    /// How often streams look for other processes' writes.
    pub poll: Duration,
    /// Where the communication plan's messages go (`--notify`); none: the
    /// server sends nothing.
    pub notify: Vec<golive_deploy::channel::Channel>,
    /// How often the server looks at every open deployment for messages
    /// due by time and retries.
    pub notify_tick: Duration,
    /// The addresses of the proxies that authenticate people
    /// (`--trusted-proxy`): only from them is `identity_header` believed.
    pub trusted_proxies: Vec<auth::Cidr>,
    /// The header a trusted proxy names the person in
    /// (`--identity-header X-Forwarded-Email`): their email, or their name.
    pub identity_header: Option<axum::http::HeaderName>,
    /// Who the names a communication plan sends to stand for (`--groups
    /// FILE`, a roster file's `[groups]`): addresses, people or roles.
    pub groups: std::collections::BTreeMap<String, Vec<String>>,
    /// Single sign-on through an OpenID Connect provider (`--oidc-issuer`).
    pub oidc: Option<oidc::OidcConfig>,
    /// The secret the CSRF tokens of people a trusted proxy names are made
    /// with (`GOLIVE_CSRF_SECRET`): the same on every replica, so a form
    /// one served posts to another; none: a new one at each start.
    pub csrf_secret: Option<Vec<u8>>,
    /// How long a location's agents may be quiet before its checks are
    /// given up as could not observe (`--agent-window`).
    pub agent_window: Duration,
}

impl Config {
    /// The defaults, listening on `listen` over the store at `store`.
    pub fn new(listen: SocketAddr, store: &str) -> Config {
        Config {
            listen,
            store: store.to_string(),
            tls: None,
            body_limit: 64 * 1024,
            rate: limit::Rate {
                per_second: 50.0,
                burst: 200.0,
            },
            auth_failures: limit::Rate {
                per_second: 0.2,
                burst: 20.0,
            },
            session_hours: 12,
            secure_cookie: false,
            poll: Duration::from_secs(1),
            notify: Vec::new(),
            notify_tick: Duration::from_secs(5),
            trusted_proxies: Vec::new(),
            identity_header: None,
            groups: std::collections::BTreeMap::new(),
            oidc: None,
            csrf_secret: None,
            agent_window: Duration::from_secs(30),
        }
    }
}

/// The server's one state.
pub struct App {
    pub store: Store,
    pub hub: Arc<events::Hub>,
    pub metrics: metrics::Metrics,
    pub requests: limit::Limiter,
    pub auth_failures: limit::Limiter,
    pub pages: page::Pages,
    pub cfg: Config,
    /// The communication plan's sender, when channels are configured.
    pub notifier: Option<Arc<notify::Notifier>>,
    /// The secret the CSRF tokens of people named by a trusted proxy are
    /// made with (new at each start).
    pub proxy_secret: Vec<u8>,
    /// The identity provider, when single sign-on is configured.
    pub oidc: Option<oidc::Oidc>,
    /// Runbooks parsed once, by the SHA-256 of their text.
    runbooks: std::sync::Mutex<std::collections::HashMap<String, Arc<golive_runbook::Runbook>>>,
    /// Set when the server shuts down: streams end cleanly.
    pub closing: tokio::sync::watch::Receiver<bool>,
    closing_tx: tokio::sync::watch::Sender<bool>,
}

/// The person `who` (an email, or a name) stands for among `people`: the
/// one whose email it is, else the one of that name (case aside). How a
/// trusted proxy's header and an identity provider's claim find a person.
pub fn matching<'a>(
    people: &'a [golive_store::PersonRow],
    who: &str,
) -> Option<&'a golive_store::PersonRow> {
    people
        .iter()
        .find(|p| {
            p.email
                .as_deref()
                .is_some_and(|e| e.eq_ignore_ascii_case(who))
        })
        .or_else(|| people.iter().find(|p| p.name.eq_ignore_ascii_case(who)))
}

/// `n` random bytes, as hex.
pub fn random_hex(n: usize) -> String {
    let mut b = vec![0u8; n];
    // the system's generator; it does not fail on the systems golive runs on
    getrandom::fill(&mut b).unwrap_or_else(|_| {
        let t = jiff::Timestamp::now().as_nanosecond().to_le_bytes();
        for (i, x) in b.iter_mut().enumerate() {
            *x = t[i % t.len()] ^ (i as u8);
        }
    });
    hex::encode(b)
}

/// The address a request came from.
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub SocketAddr);

/// A JSON body, refused with 422 and the reader's words when it is not
/// JSON of the expected shape, and with 413 when over the limit.
pub struct Body<T>(pub T);

impl<T, S> FromRequest<S> for Body<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let limit = req
            .extensions()
            .get::<BodyLimit>()
            .map(|b| b.0)
            .unwrap_or(64 * 1024);
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(Body(v)),
            Err(r) if r.status() == StatusCode::PAYLOAD_TOO_LARGE => Err(ApiError::TooLarge(limit)),
            Err(r) => Err(ApiError::Unprocessable(format!(
                "the request body is not what this endpoint takes: {}",
                r.body_text()
            ))),
        }
    }
}

#[derive(Clone, Copy)]
struct BodyLimit(usize);

#[derive(OpenApi)]
#[openapi(
    info(
        title = "golive",
        description = "The war room's API: deployments, their items, sign-offs, the decision, steps, gates, rollback, the end, events and reports. Authenticate with `Authorization: Bearer TOKEN`."
    ),
    components(schemas(api::ErrorBody))
)]
struct ApiDoc;

/// The router, with its OpenAPI document.
pub fn router(app: Arc<App>) -> axum::Router {
    let (api, openapi) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(api::list_deployments, api::create_deployment))
        .routes(routes!(api::get_deployment))
        .routes(routes!(api::get_items))
        .routes(routes!(api::sign))
        .routes(routes!(api::decide))
        .routes(routes!(api::done))
        .routes(routes!(api::gate))
        .routes(routes!(api::rollback))
        .routes(routes!(api::finish))
        .routes(routes!(api::payload))
        .routes(routes!(api::events))
        .routes(routes!(api::stream))
        .routes(routes!(api::report))
        .routes(routes!(api::list_runbooks, api::add_runbook))
        .routes(routes!(api::me))
        .split_for_parts();
    let openapi = Arc::new(openapi.to_pretty_json().unwrap_or_default());
    let limited = api.merge(page::routes()).merge(agents::routes()).layer(
        axum::middleware::from_fn_with_state(app.clone(), rate_limit),
    );
    axum::Router::new()
        .merge(health::routes())
        .route(
            "/openapi.json",
            axum::routing::get(move || {
                let doc = openapi.clone();
                async move {
                    (
                        [(axum::http::header::CONTENT_TYPE, "application/json")],
                        doc.as_str().to_string(),
                    )
                }
            }),
        )
        .merge(limited)
        .fallback(page::not_found)
        .layer(axum::extract::DefaultBodyLimit::max(app.cfg.body_limit))
        .layer(axum::middleware::from_fn_with_state(app.clone(), observe))
        .with_state(app)
}

/// Per-client limits on everything but the health contract (a load
/// balancer's probes must never see a 429).
async fn rate_limit(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    let client = req
        .extensions()
        .get::<Peer>()
        .map(|p| p.0.ip())
        .unwrap_or(std::net::IpAddr::from([127, 0, 0, 1]));
    if let Err(wait) = app.requests.take(client) {
        return ApiError::TooMany(wait).into_response();
    }
    next.run(req).await
}

/// Counts and times every request by its route.
async fn observe(State(app): State<Arc<App>>, mut req: Request, next: Next) -> Response {
    let t = Instant::now();
    let method = req.method().to_string();
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|m| m.as_str().to_string());
    req.extensions_mut().insert(BodyLimit(app.cfg.body_limit));
    let r = next.run(req).await;
    let route = route.unwrap_or_else(|| "unmatched".into());
    app.metrics.request(
        &method,
        &route,
        r.status().as_u16(),
        t.elapsed().as_secs_f64(),
    );
    r
}

/// How many parsed runbooks a server keeps.
const RUNBOOKS_KEPT: usize = 64;

impl App {
    /// The runbook registered under `sha256`, when it was parsed already.
    pub fn runbook(&self, sha256: &str) -> Option<Arc<golive_runbook::Runbook>> {
        self.runbooks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(sha256)
            .cloned()
    }

    /// Keep `rb`, parsed, for the next request (and forget them all when
    /// more than a few are kept: they are parsed again as needed).
    pub fn keep_runbook(
        &self,
        sha256: &str,
        rb: golive_runbook::Runbook,
    ) -> Arc<golive_runbook::Runbook> {
        let rb = Arc::new(rb);
        let mut kept = self.runbooks.lock().unwrap_or_else(|p| p.into_inner());
        if kept.len() >= RUNBOOKS_KEPT {
            kept.clear();
        }
        kept.insert(sha256.to_string(), rb.clone());
        rb
    }
}

/// A bound server, ready to run.
pub struct Server {
    listener: tokio::net::TcpListener,
    app: Arc<App>,
    tls: Option<tokio_rustls::TlsAcceptor>,
}

fn tls_acceptor(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<tokio_rustls::TlsAcceptor, String> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| format!("--tls-cert {}: {e}", cert.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("--tls-cert {}: {e}", cert.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "--tls-cert {}: no certificate in it",
            cert.display()
        ));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("--tls-key {}: {e}", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("--tls-cert/--tls-key: {e}"))?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(cfg)))
}

impl Server {
    /// Open the store (creating it when missing) and bind the listener.
    pub async fn bind(cfg: Config) -> Result<Server, String> {
        let store = golive_deploy::create_store(&cfg.store)
            .await
            .map_err(|e| e.to_string())?;
        let tls = match &cfg.tls {
            Some((c, k)) => Some(tls_acceptor(c, k)?),
            None => None,
        };
        let listener = tokio::net::TcpListener::bind(cfg.listen)
            .await
            .map_err(|e| format!("--listen {}: {e}", cfg.listen))?;
        let (closing_tx, closing) = tokio::sync::watch::channel(false);
        let app = Arc::new(App {
            hub: Arc::new(events::Hub::new(store.clone(), cfg.poll)),
            store,
            metrics: metrics::Metrics::default(),
            requests: limit::Limiter::new(cfg.rate),
            auth_failures: limit::Limiter::new(cfg.auth_failures),
            pages: page::Pages::new()?,
            proxy_secret: cfg
                .csrf_secret
                .clone()
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| hex::decode(random_hex(32)).unwrap_or_default()),
            oidc: cfg.oidc.clone().map(oidc::Oidc::new),
            notifier: (!cfg.notify.is_empty())
                .then(|| Arc::new(notify::Notifier::new(cfg.notify.clone(), cfg.notify_tick))),
            cfg,
            runbooks: std::sync::Mutex::new(std::collections::HashMap::new()),
            closing,
            closing_tx,
        });
        Ok(Server { listener, app, tls })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().unwrap_or(self.app.cfg.listen)
    }

    /// Serve until `shutdown` completes; then stop accepting, end every
    /// stream cleanly and let the requests in flight finish (10 s at most).
    pub async fn run(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send,
    ) -> Result<(), String> {
        use hyper_util::rt::{TokioExecutor, TokioIo};
        use hyper_util::server::conn::auto::Builder;
        use tower::ServiceExt;
        let router = router(self.app.clone());
        if let Some(n) = &self.app.notifier {
            tokio::spawn(notify::work(self.app.clone(), n.clone()));
        }
        tokio::spawn(agents::watch_locations(
            self.app.clone(),
            self.app.cfg.agent_window,
        ));
        // another server's writes reach this one's streams as they commit
        if let Some(appends) = self.app.store.follow_appends().await {
            self.app.hub.follow(appends);
        }
        let graceful = hyper_util::server::graceful::GracefulShutdown::new();
        let builder = Builder::new(TokioExecutor::new());
        tokio::pin!(shutdown);
        loop {
            let (stream, peer) = tokio::select! {
                got = self.listener.accept() => match got {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                _ = &mut shutdown => break,
            };
            let _ = stream.set_nodelay(true);
            let router = router.clone();
            let svc = hyper::service::service_fn(
                move |mut req: hyper::Request<hyper::body::Incoming>| {
                    req.extensions_mut().insert(Peer(peer));
                    router.clone().oneshot(req.map(axum::body::Body::new))
                },
            );
            let builder = builder.clone();
            let tls = self.tls.clone();
            let watcher = graceful.watcher();
            tokio::spawn(async move {
                match tls {
                    Some(acceptor) => {
                        let Ok(s) = acceptor.accept(stream).await else {
                            return;
                        };
                        let conn = builder
                            .serve_connection_with_upgrades(TokioIo::new(s), svc)
                            .into_owned();
                        let _ = watcher.watch(conn).await;
                    }
                    None => {
                        let conn = builder
                            .serve_connection_with_upgrades(TokioIo::new(stream), svc)
                            .into_owned();
                        let _ = watcher.watch(conn).await;
                    }
                }
            });
        }
        drop(self.listener);
        let _ = self.app.closing_tx.send(true);
        tokio::select! {
            _ = graceful.shutdown() => {}
            _ = tokio::time::sleep(Duration::from_secs(10)) => {
                tracing::warn!("connections still open 10 s after shutdown began; closing them");
            }
        }
        Ok(())
    }
}
