//! `golive sample-service`: a small service that honours the contract the
//! reference checklist's smoke tests expect, for trying runbooks (and for the
//! demo) on one machine: HTTPS with a CA and a 90-day certificate made at
//! start, the health endpoints, a session login, an API behind it, metrics,
//! a per-address rate limit, maintenance mode, and an admin API that switches
//! the running version and injects faults.
//!
//! Its "database" is a folder: `/ready` and `/api/v1/db-health` write and read
//! a file there, for real; a snapshot is a copy of it.

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How the service starts.
#[derive(Debug, Clone)]
pub struct Options {
    pub https: SocketAddr,
    pub http: SocketAddr,
    pub version: String,
    /// Its data, CA and snapshots.
    pub dir: PathBuf,
    /// Where `/api/v1/test-alert` delivers (Slack format).
    pub webhook: Option<String>,
    /// Requests to `/api/…` per client per minute (a client: an address and
    /// its token, or its address alone when it sends none).
    pub rate_limit: u64,
    /// A version that misbehaves once it runs (the demo's faults).
    pub faulty: Option<(String, Fault)>,
}

/// A fault a version can bring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Half the answers are 500s.
    ErrorRate,
    /// Every answer takes 600 ms more (the SLO is a 500 ms mean).
    Latency,
    /// `/health` answers 503.
    Down,
}

impl Fault {
    fn faults(self) -> Faults {
        match self {
            Fault::ErrorRate => Faults {
                error_rate: 0.5,
                ..Faults::default()
            },
            Fault::Latency => Faults {
                latency_ms: 600,
                ..Faults::default()
            },
            Fault::Down => Faults {
                failing_health: true,
                ..Faults::default()
            },
        }
    }
}

/// A running service: where it listens and what a client needs.
pub struct Running {
    pub https: SocketAddr,
    pub http: SocketAddr,
    pub ca_file: PathBuf,
    /// Bearer token of the admin API.
    pub admin_token: String,
    /// A bearer token `/api/…` accepts besides session tokens (for checks).
    pub api_token: String,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// The demo user of `/login`.
pub const DEMO_USER: (&str, &str) = ("demo", "demo-password");

#[derive(Default, Clone, Copy)]
struct Faults {
    error_rate: f64,
    latency_ms: u64,
    failing_health: bool,
}

/// Latency buckets of `/metrics`, in seconds.
const BUCKETS: [f64; 8] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0, 5.0];

struct State {
    version: Mutex<String>,
    build: String,
    commit: String,
    maintenance: AtomicBool,
    faults: Mutex<Faults>,
    served: AtomicU64,
    /// sha256 of each session token: the tokens themselves are not kept.
    sessions: Mutex<HashSet<String>>,
    admin_token: String,
    api_token: String,
    faulty: Option<(String, Fault)>,
    alerts_received: AtomicU64,
    data: PathBuf,
    snapshots: PathBuf,
    webhook: Mutex<Option<String>>,
    rate_limit: u64,
    windows: Mutex<HashMap<(IpAddr, String), (Instant, u64)>>,
    by_status: Mutex<BTreeMap<u16, u64>>,
    /// Cumulative counts per bucket, then the +Inf count and the sum.
    latency: Mutex<([u64; 8], u64, f64)>,
    cache: Mutex<BTreeMap<String, String>>,
}

fn token() -> String {
    let mut bytes = [0u8; 24];
    // the kernel's randomness, as a session token deserves
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes))
        .is_err()
    {
        let seed = jiff::Timestamp::now().as_nanosecond().to_le_bytes();
        bytes[..16].copy_from_slice(&seed);
    }
    hex::encode(bytes)
}

fn sha(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// A CA and a 90-day leaf for `localhost` and 127.0.0.1, made now; the CA's
/// PEM is written to `dir/ca.pem`.
#[allow(clippy::type_complexity)]
fn pki(
    dir: &Path,
) -> Result<
    (
        Vec<CertificateDer<'static>>,
        PrivateKeyDer<'static>,
        PathBuf,
    ),
    String,
> {
    let err = |e: rcgen::Error| format!("certificate: {e}");
    let today = jiff::Timestamp::now();
    let ymd = |days: i64| {
        let d = today
            .checked_add(jiff::SignedDuration::from_hours(24 * days))
            .unwrap_or(today)
            .to_zoned_datetime(jiff::tz::TimeZone::UTC)
            .date();
        rcgen::date_time_ymd(i32::from(d.year()), d.month() as u8, d.day() as u8)
    };
    let ca_key = KeyPair::generate().map_err(err)?;
    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
    ca.distinguished_name
        .push(DnType::CommonName, "golive sample-service CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca.not_before = ymd(-1);
    ca.not_after = ymd(365);
    let ca_cert = ca.self_signed(&ca_key).map_err(err)?;
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().map_err(err)?;
    let mut leaf = CertificateParams::new(vec!["localhost".to_string()]).map_err(err)?;
    leaf.subject_alt_names
        .push(SanType::IpAddress(IpAddr::from([127, 0, 0, 1])));
    leaf.distinguished_name
        .push(DnType::CommonName, "localhost");
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    leaf.not_before = ymd(0);
    leaf.not_after = ymd(90);
    let cert = leaf.signed_by(&key, &issuer).map_err(err)?;
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, ca_cert.pem()).map_err(|e| format!("{}: {e}", ca_file.display()))?;
    Ok((
        vec![cert.der().clone()],
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        ca_file,
    ))
}

/// Start the service; it runs until the returned value is dropped.
pub async fn start(opts: Options) -> Result<Running, String> {
    let data = opts.dir.join("data");
    let snapshots = opts.dir.join("snapshots");
    for d in [&data, &snapshots] {
        std::fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
    }
    let (chain, key, ca_file) = pki(&opts.dir)?;
    let mut tls = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    // TLS 1.2 and 1.3 only
    .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
    .map_err(|e| e.to_string())?
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .map_err(|e| e.to_string())?;
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
    let admin_token = token();
    let api_token = token();
    let state = Arc::new(State {
        version: Mutex::new(opts.version.clone()),
        build: "1024".into(),
        commit: sha(&opts.version)[..7].to_string(),
        maintenance: AtomicBool::new(false),
        faults: Mutex::new(Faults::default()),
        served: AtomicU64::new(0),
        sessions: Mutex::new(HashSet::new()),
        admin_token: admin_token.clone(),
        api_token: api_token.clone(),
        faulty: opts.faulty.clone(),
        alerts_received: AtomicU64::new(0),
        data,
        snapshots,
        webhook: Mutex::new(opts.webhook.clone()),
        rate_limit: opts.rate_limit,
        windows: Mutex::new(HashMap::new()),
        by_status: Mutex::new(BTreeMap::new()),
        latency: Mutex::new(([0; 8], 0, 0.0)),
        cache: Mutex::new(BTreeMap::new()),
    });
    let bind = |a: SocketAddr| async move {
        tokio::net::TcpListener::bind(a)
            .await
            .map_err(|e| format!("cannot listen on {a}: {e}"))
    };
    let https_l = bind(opts.https).await?;
    let http_l = bind(opts.http).await?;
    let https = https_l.local_addr().map_err(|e| e.to_string())?;
    let http = http_l.local_addr().map_err(|e| e.to_string())?;
    let origin: Arc<str> = own_origin(opts.https, https.port()).into();
    let st = state.clone();
    let https_task = tokio::spawn(async move {
        loop {
            let Ok((tcp, peer)) = https_l.accept().await else {
                continue;
            };
            let _ = tcp.set_nodelay(true);
            let (acceptor, st) = (acceptor.clone(), st.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let svc = hyper::service::service_fn(move |req| {
                    let st = st.clone();
                    async move { Ok::<_, Infallible>(serve(&st, req, peer.ip()).await) }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), svc)
                    .await;
            });
        }
    });
    let http_task = tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = http_l.accept().await else {
                continue;
            };
            let origin = origin.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let origin = origin.clone();
                    async move { Ok::<_, Infallible>(redirect(&origin, &req)) }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tcp), svc)
                    .await;
            });
        }
    });
    Ok(Running {
        https,
        http,
        ca_file,
        admin_token,
        api_token,
        tasks: vec![https_task, http_task],
    })
}

type Answer = Response<Full<Bytes>>;

/// A request refused before it is served: the status and the JSON it says.
struct Refusal(u16, Value);

impl Refusal {
    fn answer(self) -> Answer {
        answer(self.0, self.1)
    }
}

/// Where plain HTTP sends its clients: the HTTPS address the service was
/// told to listen on (`localhost` when that is every address), never a name
/// a request brings in its `Host` header.
fn own_origin(listen: SocketAddr, port: u16) -> String {
    match listen.ip() {
        ip if ip.is_unspecified() => format!("https://localhost:{port}"),
        IpAddr::V4(ip) => format!("https://{ip}:{port}"),
        IpAddr::V6(ip) => format!("https://[{ip}]:{port}"),
    }
}

/// Plain HTTP's only answer: 301 to the same path on the service's own
/// HTTPS origin.
fn redirect(origin: &str, req: &Request<Incoming>) -> Answer {
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str())
        .filter(|p| p.starts_with('/'))
        .unwrap_or("/");
    Response::builder()
        .status(StatusCode::MOVED_PERMANENTLY)
        .header("location", format!("{origin}{path}"))
        .body(Full::new(Bytes::new()))
        .unwrap_or_default()
}

fn answer(status: u16, body: Value) -> Answer {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap_or_default()
}

fn html(status: u16, body: &str) -> Answer {
    Response::builder()
        .status(status)
        .header("content-type", "text/html; charset=utf-8")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap_or_default()
}

fn bearer(req: &Request<Incoming>) -> Option<String> {
    req.headers()
        .get(http::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::to_string)
}

/// Write, read back and remove a file in the data folder: the "database"
/// check, and how long it took.
fn store_check(data: &Path) -> Result<f64, String> {
    let t = Instant::now();
    // a name of its own: checks may run at once
    let probe = data.join(format!(".health-{}", token()));
    let stamp = jiff::Timestamp::now().to_string();
    std::fs::write(&probe, &stamp).map_err(|e| e.to_string())?;
    let back = std::fs::read_to_string(&probe).map_err(|e| e.to_string())?;
    std::fs::remove_file(&probe).map_err(|e| e.to_string())?;
    if back != stamp {
        return Err("read back something else".into());
    }
    Ok((t.elapsed().as_secs_f64() * 1e6).round() / 1e3)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

async fn serve(st: &State, req: Request<Incoming>, peer: IpAddr) -> Answer {
    let t = Instant::now();
    let path = req.uri().path().to_string();
    let mut resp = route(st, req, peer).await;
    let status = resp.status().as_u16();
    if path != "/metrics" {
        *lock(&st.by_status).entry(status).or_default() += 1;
        let secs = t.elapsed().as_secs_f64();
        let mut l = lock(&st.latency);
        for (i, b) in BUCKETS.iter().enumerate() {
            if secs <= *b {
                l.0[i] += 1;
            }
        }
        l.1 += 1;
        l.2 += secs;
    }
    resp.headers_mut().insert(
        "strict-transport-security",
        http::HeaderValue::from_static("max-age=31536000; includeSubDomains"),
    );
    resp
}

async fn route(st: &State, req: Request<Incoming>, peer: IpAddr) -> Answer {
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    if let Some(rest) = path.strip_prefix("/admin/") {
        if bearer(&req).is_none_or(|t| sha(&t) != sha(&st.admin_token)) {
            return answer(401, json!({ "error": "the admin API needs its token" }));
        }
        let rest = rest.to_string();
        return match json_body(req).await {
            Ok(body) => admin(st, &rest, &body),
            Err(refused) => refused.answer(),
        };
    }
    if path == "/metrics" {
        return metrics(st);
    }
    if path == "/live" {
        return html(200, "ok");
    }
    if st.maintenance.load(Ordering::Relaxed) {
        let mut r = answer(503, json!({ "status": "maintenance" }));
        r.headers_mut()
            .insert("retry-after", http::HeaderValue::from_static("60"));
        return r;
    }
    let faults = *lock(&st.faults);
    if faults.latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(faults.latency_ms)).await;
    }
    // a fault's error rate, spread evenly over the requests
    let n = st.served.fetch_add(1, Ordering::Relaxed);
    if faults.error_rate > 0.0
        && ((n + 1) as f64 * faults.error_rate).floor() > (n as f64 * faults.error_rate).floor()
    {
        return internal_error();
    }
    let client = (peer, bearer(&req).map(|t| sha(&t)).unwrap_or_default());
    if path.starts_with("/api/") && !within_limit(st, &client) {
        let mut r = answer(429, json!({ "error": "too many requests" }));
        let wait = lock(&st.windows).get(&client).map_or(60, |(start, _)| {
            60u64.saturating_sub(start.elapsed().as_secs()).max(1)
        });
        if let Ok(v) = http::HeaderValue::from_str(&wait.to_string()) {
            r.headers_mut().insert("retry-after", v);
        }
        return r;
    }
    let version = lock(&st.version).clone();
    let signed_in = bearer(&req)
        .is_some_and(|t| sha(&t) == sha(&st.api_token) || lock(&st.sessions).contains(&sha(&t)));
    match (method, path.as_str()) {
        (Method::GET, "/") => html(
            200,
            &format!("<!doctype html><title>shop</title><h1>shop {version}</h1>"),
        ),
        (Method::GET, "/health") if faults.failing_health => {
            answer(503, json!({ "status": "unhealthy", "version": version }))
        }
        (Method::GET, "/health") => answer(200, json!({ "status": "healthy", "version": version })),
        (Method::GET, "/ready") => match store_check(&st.data) {
            Ok(_) => answer(
                200,
                json!({ "status": "ready", "dependencies": { "database": "ok", "filesystem": "ok" } }),
            ),
            Err(_) => answer(
                503,
                json!({ "status": "not ready", "dependencies": { "database": "failed", "filesystem": "failed" } }),
            ),
        },
        (Method::GET, "/version") => answer(
            200,
            json!({ "version": version, "build": st.build, "commit": st.commit }),
        ),
        (Method::POST, "/login") => {
            let body = match json_body(req).await {
                Ok(body) => body,
                Err(refused) => return refused.answer(),
            };
            if body["username"] == DEMO_USER.0 && body["password"] == DEMO_USER.1 {
                let t = token();
                lock(&st.sessions).insert(sha(&t));
                answer(200, json!({ "token": t, "expires_in": 3600 }))
            } else {
                answer(401, json!({ "error": "wrong username or password" }))
            }
        }
        (_, "/api/v1/test" | "/api/v1/db-health" | "/api/v1/test-alert") if !signed_in => {
            answer(401, json!({ "error": "sign in first: POST /login" }))
        }
        (Method::GET, "/api/v1/test") => answer(200, json!({ "ok": true, "version": version })),
        (Method::GET, "/api/v1/db-health") => match store_check(&st.data) {
            Ok(ms) => answer(200, json!({ "database": "connected", "latency_ms": ms })),
            Err(_) => answer(503, json!({ "database": "disconnected" })),
        },
        (Method::POST, "/api/v1/test-alert") => {
            let Some(url) = lock(&st.webhook).clone() else {
                return answer(409, json!({ "error": "no webhook is configured" }));
            };
            let alert = golive_probe::Alert {
                deployment: "sample-service".into(),
                runbook: "sample-service".into(),
                rule: "Test alert".into(),
                state: "test".into(),
                severity: "info".into(),
                summary: format!("test alert from the sample service {version}"),
                details: json!({ "version": version }),
                dedup_key: format!("sample-test-{}", jiff::Timestamp::now().as_millisecond()),
            };
            match golive_probe::post_json(
                &url,
                golive_probe::slack_payload(&alert).to_string(),
                None,
            )
            .await
            {
                Ok((s, took)) if (200..300).contains(&s) => answer(
                    202,
                    json!({ "delivered": true, "delivery_ms": (took.as_secs_f64() * 1e6).round() / 1e3 }),
                ),
                _ => answer(502, json!({ "delivered": false })),
            }
        }
        (Method::GET, "/error") => internal_error(),
        // the alerting system's stand-in: takes a webhook's alert
        (Method::POST, "/hooks/alert") => {
            let body = match read_body(req).await {
                Ok(body) => body,
                Err(refused) => return refused.answer(),
            };
            if serde_json::from_slice::<Value>(&body).is_ok() {
                let n = st.alerts_received.fetch_add(1, Ordering::Relaxed) + 1;
                answer(202, json!({ "status": "success", "received": n }))
            } else {
                answer(400, json!({ "error": "an alert is a JSON body" }))
            }
        }
        _ => html(
            404,
            "<!doctype html><title>Not found</title><h1>Page not found</h1><p>The page you asked for is not here. <a href=\"/\">Back to the home page</a>.</p>",
        ),
    }
}

/// A 500 that says nothing of the inside: a tracking id to quote.
fn internal_error() -> Answer {
    answer(
        500,
        json!({ "error": "something went wrong on our side", "tracking_id": token()[..16] }),
    )
}

/// Count a request of a client against its window; whether it is within
/// the limit.
fn within_limit(st: &State, client: &(IpAddr, String)) -> bool {
    let mut w = lock(&st.windows);
    let e = w.entry(client.clone()).or_insert((Instant::now(), 0));
    if e.0.elapsed() >= Duration::from_secs(60) {
        *e = (Instant::now(), 0);
    }
    e.1 += 1;
    e.1 <= st.rate_limit
}

fn metrics(st: &State) -> Answer {
    let mut out = String::from(
        "# HELP http_requests_total Requests answered, by status.\n# TYPE http_requests_total counter\n",
    );
    for (code, n) in lock(&st.by_status).iter() {
        out.push_str(&format!("http_requests_total{{code=\"{code}\"}} {n}\n"));
    }
    let (buckets, count, sum) = *lock(&st.latency);
    out.push_str("# HELP http_request_duration_seconds Time to answer.\n# TYPE http_request_duration_seconds histogram\n");
    for (b, n) in BUCKETS.iter().zip(buckets) {
        out.push_str(&format!(
            "http_request_duration_seconds_bucket{{le=\"{b}\"}} {n}\n"
        ));
    }
    out.push_str(&format!(
        "http_request_duration_seconds_bucket{{le=\"+Inf\"}} {count}\nhttp_request_duration_seconds_sum {sum}\nhttp_request_duration_seconds_count {count}\n"
    ));
    out.push_str(&format!(
        "# TYPE sample_maintenance gauge\nsample_maintenance {}\n",
        u8::from(st.maintenance.load(Ordering::Relaxed))
    ));
    Response::builder()
        .header("content-type", "text/plain; version=0.0.4")
        .body(Full::new(Bytes::from(out)))
        .unwrap_or_default()
}

/// The admin API: `version`, `maintenance`, `faults`, `cache/clear`,
/// `snapshot`, `restore`, `webhook`.
fn admin(st: &State, what: &str, body: &Value) -> Answer {
    match what {
        "version" => match body["version"].as_str() {
            Some(v) if v.starts_with('v') && v.len() < 40 => {
                let before = std::mem::replace(&mut *lock(&st.version), v.to_string());
                // the version's own behaviour comes with it
                *lock(&st.faults) = match &st.faulty {
                    Some((bad, fault)) if bad == v => fault.faults(),
                    _ => Faults::default(),
                };
                answer(200, json!({ "version": v, "previous": before }))
            }
            _ => answer(400, json!({ "error": "send {\"version\": \"v1.2.3\"}" })),
        },
        "maintenance" => {
            let on = body["on"].as_bool().unwrap_or(false);
            st.maintenance.store(on, Ordering::Relaxed);
            answer(200, json!({ "maintenance": on }))
        }
        "faults" => {
            let f = Faults {
                error_rate: body["error_rate"].as_f64().unwrap_or(0.0).clamp(0.0, 1.0),
                latency_ms: body["latency_ms"].as_u64().unwrap_or(0).min(60_000),
                failing_health: body["failing_health"].as_bool().unwrap_or(false),
            };
            *lock(&st.faults) = f;
            answer(
                200,
                json!({ "error_rate": f.error_rate, "latency_ms": f.latency_ms, "failing_health": f.failing_health }),
            )
        }
        "cache/clear" => {
            let mut c = lock(&st.cache);
            let n = c.len();
            c.clear();
            answer(200, json!({ "cleared": n }))
        }
        "snapshot" => {
            let name = match snapshot_name(body) {
                Ok(Some(name)) => name,
                Ok(None) => format!("snapshot-{}", jiff::Timestamp::now().as_millisecond()),
                Err(refused) => return refused.answer(),
            };
            let to = st.snapshots.join(&name);
            if std::fs::symlink_metadata(&to).is_ok() {
                return answer(
                    409,
                    json!({ "error": format!("snapshot: {name} exists: choose another name"), "field": "snapshot" }),
                );
            }
            match copy_dir(&st.data, &to) {
                Ok(files) => answer(200, json!({ "snapshot": name, "files": files })),
                Err(e) => answer(500, json!({ "error": e })),
            }
        }
        "restore" => {
            let name = match snapshot_name(body) {
                Ok(name) => name.or_else(|| latest_snapshot(&st.snapshots)),
                Err(refused) => return refused.answer(),
            };
            // a snapshot is a real folder inside the snapshot folder, not a
            // link out of it
            let Some(name) = name.filter(|n| {
                std::fs::symlink_metadata(st.snapshots.join(n)).is_ok_and(|m| m.is_dir())
            }) else {
                return answer(
                    404,
                    json!({ "error": "snapshot: no such snapshot (POST /admin/snapshot makes one)", "field": "snapshot" }),
                );
            };
            match restore(&st.snapshots.join(&name), &st.data) {
                Ok(files) => answer(200, json!({ "restored": name, "files": files })),
                Err(e) => answer(500, json!({ "error": e })),
            }
        }
        "webhook" => {
            let url = body["url"].as_str().map(str::to_string);
            *lock(&st.webhook) = url.clone();
            answer(200, json!({ "webhook": url.is_some() }))
        }
        _ => answer(404, json!({ "error": "unknown admin action" })),
    }
}

/// The longest snapshot name.
const SNAPSHOT_NAME_MAX: usize = 64;

/// Whether `name` is a snapshot name: 1 to 64 ASCII letters, digits, `.`,
/// `_` or `-`, not starting with `.` and without `..`. Such a name is always
/// one entry inside the snapshot folder: it cannot climb out of it, reach
/// into a subfolder or name a hidden file.
fn is_snapshot_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= SNAPSHOT_NAME_MAX
        && !name.starts_with('.')
        && !name.contains("..")
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// The `snapshot` field of an admin request: absent, or a snapshot name;
/// anything else is refused with a 422 naming the field.
fn snapshot_name(body: &Value) -> Result<Option<String>, Refusal> {
    match &body["snapshot"] {
        Value::Null => Ok(None),
        Value::String(name) if is_snapshot_name(name) => Ok(Some(name.clone())),
        _ => Err(Refusal(
            422,
            json!({
                "error": format!("snapshot: not a snapshot name: use 1 to {SNAPSHOT_NAME_MAX} letters, digits, '.', '_' or '-', not starting with '.' and without '..'"),
                "field": "snapshot",
            }),
        )),
    }
}

/// The newest snapshot's name.
fn latest_snapshot(dir: &Path) -> Option<String> {
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| is_snapshot_name(n))
        .max()
}

/// Put a snapshot back: copied beside the data folder first, then swapped
/// in, so a copy that fails leaves the data as it was.
fn restore(snapshot: &Path, data: &Path) -> Result<usize, String> {
    let tag = token();
    let fresh = data.with_file_name(format!(".data-restoring-{}", &tag[..12]));
    let old = data.with_file_name(format!(".data-replaced-{}", &tag[..12]));
    let files = match copy_dir(snapshot, &fresh) {
        Ok(files) => files,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&fresh);
            return Err(e);
        }
    };
    let replaced = match std::fs::rename(data, &old) {
        Ok(()) => true,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&fresh);
            return Err(e.to_string());
        }
    };
    if let Err(e) = std::fs::rename(&fresh, data) {
        if replaced {
            let _ = std::fs::rename(&old, data);
        }
        let _ = std::fs::remove_dir_all(&fresh);
        return Err(e.to_string());
    }
    if replaced {
        let _ = std::fs::remove_dir_all(&old);
    }
    Ok(files)
}

/// Copy the regular files of `from` (not its links, not its folders).
fn copy_dir(from: &Path, to: &Path) -> Result<usize, String> {
    std::fs::create_dir_all(to).map_err(|e| e.to_string())?;
    let mut n = 0;
    for entry in std::fs::read_dir(from).map_err(|e| e.to_string())? {
        let entry = entry.map_err(|e| e.to_string())?;
        if entry.file_type().is_ok_and(|t| t.is_file()) {
            std::fs::copy(entry.path(), to.join(entry.file_name())).map_err(|e| e.to_string())?;
            n += 1;
        }
    }
    Ok(n)
}

/// Write `text` to a file only its owner may read.
pub fn write_private(path: &Path, text: &str) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    f.write_all(text.as_bytes())
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// What a client of the service needs, in its folder: `service.json` (the
/// ports), `admin-token` and `api-token` (mode 0600).
pub fn write_info(dir: &Path, s: &Running) -> Result<(), String> {
    write_private(&dir.join("admin-token"), &s.admin_token)?;
    write_private(&dir.join("api-token"), &s.api_token)?;
    let info =
        json!({ "https_port": s.https.port(), "http_port": s.http.port(), "ca_file": s.ca_file });
    std::fs::write(dir.join("service.json"), info.to_string())
        .map_err(|e| format!("{}: {e}", dir.display()))
}

/// `golive sample-admin DIR ACTION [ARG]`: one call of a running sample
/// service's admin API, with the token from its folder (never shown): the
/// answer's body, and whether its status was a success.
pub async fn admin_call(
    dir: &Path,
    action: &str,
    arg: Option<&str>,
) -> Result<(String, bool), String> {
    let read = |name: &str| {
        std::fs::read_to_string(dir.join(name)).map_err(|e| {
            format!(
                "{}: {e}: is it a sample service's folder?",
                dir.join(name).display()
            )
        })
    };
    let info: Value = serde_json::from_str(&read("service.json")?)
        .map_err(|e| format!("{}: {e}", dir.join("service.json").display()))?;
    let token = read("admin-token")?;
    let body = match (action, arg) {
        ("version", Some(v)) => json!({ "version": v }),
        ("maintenance", Some(on)) => json!({ "on": on == "on" }),
        ("restore" | "snapshot", Some(name)) => json!({ "snapshot": name }),
        ("webhook", Some(url)) => json!({ "url": url }),
        ("faults", Some(f)) => serde_json::from_str(f).map_err(|e| format!("faults: {e}"))?,
        ("snapshot" | "restore" | "cache/clear", None) => json!({}),
        _ => {
            return Err(format!(
                "sample-admin: `{action}` (actions: version V, maintenance on|off, snapshot [NAME], restore [NAME], cache/clear, faults JSON, webhook URL)"
            ));
        }
    };
    let mut table = toml::Table::new();
    let port = info["https_port"].as_u64().unwrap_or(0);
    table.insert(
        "target".into(),
        toml::Value::String(format!("https://localhost:{port}/admin/{action}")),
    );
    table.insert("method".into(), toml::Value::String("POST".into()));
    table.insert("body".into(), toml::Value::String(body.to_string()));
    table.insert(
        "ca_file".into(),
        toml::Value::String(dir.join("ca.pem").display().to_string()),
    );
    let mut headers = toml::Table::new();
    headers.insert(
        "authorization".into(),
        toml::Value::String(format!("Bearer {}", token.trim())),
    );
    headers.insert(
        "content-type".into(),
        toml::Value::String("application/json".into()),
    );
    table.insert("headers".into(), toml::Value::Table(headers));
    let probe = golive_probe::kind("http")
        .ok_or("no http probe")?
        .probe(&table)
        .map_err(|e| e.to_string())?;
    let obs = probe
        .observe()
        .await
        .map_err(|e| format!("sample-admin {action}: {e}"))?;
    Ok((
        obs["body"].as_str().unwrap_or("").to_string(),
        (200..300).contains(&obs["status"].as_u64().unwrap_or(0)),
    ))
}

/// The most a request body may hold, in bytes (64 KiB): the largest body
/// the service expects is a login or an admin call of a few hundred bytes.
const MAX_BODY: usize = 64 * 1024;

/// A request's body, read whole but never past [`MAX_BODY`]: every body the
/// service reads comes through here. A body announcing a larger length is
/// refused before any of it is read; one that grows past the cap as it
/// streams (chunked, or HTTP/2 frames without a length) is refused as soon
/// as it does, and the rest is never read (the connection closes).
async fn read_body(req: Request<Incoming>) -> Result<Bytes, Refusal> {
    let announced = req
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|n| n > MAX_BODY as u64) {
        return Err(too_large());
    }
    match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(body) => Ok(body.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => Err(too_large()),
        Err(_) => Err(Refusal(
            400,
            json!({ "error": "the request body could not be read" }),
        )),
    }
}

fn too_large() -> Refusal {
    Refusal(
        413,
        json!({ "error": format!("a request body holds at most {MAX_BODY} bytes") }),
    )
}

/// A request's body as JSON (null when it is not JSON), read by
/// [`read_body`].
async fn json_body(req: Request<Incoming>) -> Result<Value, Refusal> {
    let body = read_body(req).await?;
    Ok(serde_json::from_slice(&body).unwrap_or(Value::Null))
}
