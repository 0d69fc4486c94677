//! `load`: many requests against one URL, the way `ab`, `wrk` and oha are
//! used: a number of requests or a duration, a concurrency (one connection
//! per worker, HTTP/1.1 keep-alive or HTTP/2), optionally a fixed rate.
//!
//! Observes `requests`, `succeeded` (2xx and 3xx), `success_rate`,
//! `error_rate`, `statuses` (`{"200": n}`), `errors` (by cause), `rps`,
//! `duration_s`, `latency_ms` (`min`, `mean`, `stdev`, `p50`, `p90`, `p95`,
//! `p99`, `p99_9`, `max`), `concurrency`, `threads`, `rate`, `corrected`,
//! `http_version`, `connections` and `bytes` (body bytes read).
//!
//! Latencies go into an HDR histogram per worker (microseconds, three
//! significant digits), merged at the end: memory stays the same whatever
//! the count. With a `rate`, request *i* is due at `start + i / rate` and its
//! latency is measured from then, not from when it was sent, so a stalled
//! server cannot hide its stall by slowing the load down (coordinated
//! omission). The load runs on threads of its own, each with a runtime and
//! its share of the connections, so the caller's runtime does not limit it;
//! by default one thread per 25 connections, at most one per core, so that
//! at few connections a server on the same machine keeps its cores.

use crate::http::hyper_reason;
use crate::net::{client_config, connect, resolve};
use crate::{BoxFuture, Kind, Observation, Probe, ProbeError, Spec, SpecError};
use bytes::Bytes;
use hdrhistogram::Histogram;
use http::{HeaderMap, HeaderValue, Method, Request, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub(crate) static KIND: Kind = Kind {
    name: "load",
    summary: "many requests at a concurrency or a fixed rate: throughput, statuses, errors, latency percentiles",
    options: &[
        "requests",
        "duration",
        "concurrency",
        "threads",
        "rate",
        "http2",
        "method",
        "headers",
        "body",
        "ca_file",
        "insecure",
        "nameserver",
        "request_timeout",
    ],
    default_expect: "error_rate < 0.001",
    default_timeout: Duration::from_secs(600),
    observes: &[
        ("latency_histogram", &[]),
        ("requests", &[]),
        ("succeeded", &[]),
        ("success_rate", &[]),
        ("error_rate", &[]),
        ("statuses", &[]),
        ("errors", &[]),
        ("rps", &[]),
        ("duration_s", &[]),
        (
            "latency_ms",
            &[
                "min", "mean", "stdev", "p50", "p90", "p95", "p99", "p99_9", "max",
            ],
        ),
        ("concurrency", &[]),
        ("threads", &[]),
        ("rate", &[]),
        ("corrected", &[]),
        ("http_version", &[]),
        ("connections", &[]),
        ("bytes", &[]),
    ],
    causes: &[
        ("error_rate", "errors"),
        ("error_rate", "statuses"),
        ("success_rate", "errors"),
        ("succeeded", "errors"),
    ],
    build,
};

/// The most distinct error causes kept; the rest are counted as `other`.
const MAX_CAUSES: usize = 32;

#[derive(Debug)]
struct Load {
    plan: Arc<Plan>,
}

/// What every worker needs, shared.
#[derive(Debug)]
pub(crate) struct Plan {
    pub(crate) url: Uri,
    /// The path and query alone: the request target of HTTP/1.1.
    path: Uri,
    https: bool,
    pub(crate) host: String,
    pub(crate) port: u16,
    method: Method,
    headers: HeaderMap,
    /// `headers` with `Host` (HTTP/2 sends `:authority` instead).
    h1_headers: HeaderMap,
    body: Bytes,
    requests: Option<u64>,
    duration: Option<Duration>,
    concurrency: usize,
    /// The threads the load runs on, each with a runtime of its own and its
    /// share of the connections.
    threads: usize,
    rate: Option<f64>,
    http2: bool,
    tls: Arc<ClientConfig>,
    pub(crate) nameserver: Option<String>,
    pub(crate) request_timeout: Duration,
    /// An empty histogram each worker starts from: 1 µs to 1 hour at three
    /// significant digits, a fixed size whatever the count.
    empty: Histogram<u64>,
}

fn invalid(key: &str, msg: impl Into<String>) -> SpecError {
    SpecError::Invalid(key.into(), msg.into())
}

fn duration_option(spec: &Spec, key: &str) -> Result<Option<Duration>, SpecError> {
    spec.text(key)?
        .map(|t| crate::parse_duration(&t).map_err(|e| invalid(key, e)))
        .transpose()
}

fn build(spec: &Spec) -> Result<Box<dyn Probe>, SpecError> {
    Ok(Box::new(Load {
        plan: Arc::new(plan(spec)?),
    }))
}

/// The request and its connections, from the options `load` shares with
/// `ratelimit`.
pub(crate) fn plan(spec: &Spec) -> Result<Plan, SpecError> {
    let target = spec.required("target")?;
    let url: Uri = target
        .trim()
        .parse()
        .map_err(|e| invalid("target", format!("`{target}` is not a URL: {e}")))?;
    let https = match url.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => {
            return Err(invalid(
                "target",
                format!("`{target}`: the URL must start with http:// or https://"),
            ));
        }
    };
    let host = url.host().unwrap_or_default().to_string();
    if host.is_empty() {
        return Err(invalid("target", format!("`{target}` has no host")));
    }
    let port = url.port_u16().unwrap_or(if https { 443 } else { 80 });
    let (method, pairs) = crate::http::method_and_headers(spec)?;
    let mut headers = HeaderMap::new();
    for (name, value) in pairs {
        headers.insert(name, value);
    }
    headers
        .entry(http::header::USER_AGENT)
        .or_insert(HeaderValue::from_static("golive"));
    let mut h1_headers = headers.clone();
    if let Some(a) = url.authority()
        && let Ok(v) = HeaderValue::try_from(a.as_str())
    {
        h1_headers.entry(http::header::HOST).or_insert(v);
    }
    let path: Uri = url
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .parse()
        .map_err(|e| invalid("target", format!("{e}")))?;
    let duration = duration_option(spec, "duration")?;
    let requests = match spec.int("requests")? {
        Some(n) if n < 1 => return Err(invalid("requests", "must be at least 1")),
        Some(n) => Some(n as u64),
        // neither: the 100 requests of `ab -n 100`
        None if duration.is_none() => Some(100),
        None => None,
    };
    let concurrency = match spec.int("concurrency")?.unwrap_or(10) {
        c @ 1..=10_000 => c as usize,
        _ => return Err(invalid("concurrency", "must be from 1 to 10000")),
    };
    let threads = match spec.int("threads")? {
        None => default_threads(cores(), concurrency),
        Some(t) if (1..=concurrency as i64).contains(&t) => t as usize,
        Some(t) => {
            return Err(invalid(
                "threads",
                format!(
                    "{t} threads for {concurrency} connections: must be from 1 to the \
                     concurrency, each thread drives connections of its own"
                ),
            ));
        }
    };
    let rate = match spec.table.get("rate") {
        None => None,
        Some(toml::Value::Integer(r)) if *r > 0 => Some(*r as f64),
        Some(toml::Value::Float(r)) if *r > 0.0 => Some(*r),
        Some(_) => {
            return Err(invalid(
                "rate",
                "must be a positive number of requests per second",
            ));
        }
    };
    let http2 = spec.flag("http2")?.unwrap_or(false);
    let alpn: &[&[u8]] = if http2 { &[b"h2"] } else { &[b"http/1.1"] };
    let tls = client_config(
        spec.text("ca_file")?.as_deref(),
        spec.flag("insecure")?.unwrap_or(false),
        alpn,
    )
    .map_err(|e| invalid("ca_file", e))?;
    let request_timeout =
        duration_option(spec, "request_timeout")?.unwrap_or(Duration::from_secs(30));
    Ok(Plan {
        url,
        path,
        https,
        host,
        port,
        method,
        headers,
        h1_headers,
        body: spec.text("body")?.map(Bytes::from).unwrap_or_default(),
        requests,
        duration,
        concurrency,
        threads,
        rate,
        http2,
        tls,
        nameserver: spec.text("nameserver")?,
        request_timeout,
        empty: Histogram::new_with_bounds(1, 3_600_000_000, 3)
            .map_err(|e| invalid("target", format!("latency histogram: {e}")))?,
    })
}

impl Probe for Load {
    fn target(&self) -> String {
        self.plan.url.to_string()
    }

    fn least_time(&self) -> Option<Duration> {
        self.plan.duration.map(|d| d + self.plan.request_timeout)
    }

    fn observe(&self) -> BoxFuture<'_, Result<Observation, ProbeError>> {
        let plan = self.plan.clone();
        Box::pin(async move {
            let (addrs, _) = resolve(&plan.host, plan.port, plan.nameserver.as_deref()).await?;
            let stop = Arc::new(AtomicBool::new(false));
            // dropping this future (a timeout, a cancelled run) stops the load
            let _guard = StopOnDrop(stop.clone());
            // threads with a runtime each and their share of the workers: no
            // work stealing between them, and the caller's runtime does not
            // limit the load
            let threads = plan.threads;
            let start = Instant::now();
            let shared = Arc::new(Shared {
                plan: plan.clone(),
                addrs,
                next: AtomicU64::new(0),
                stop,
                start,
                deadline: plan.duration.map(|d| start + d),
            });
            let mut parts = Vec::new();
            for i in 0..threads {
                let workers =
                    plan.concurrency / threads + usize::from(i < plan.concurrency % threads);
                let (tx, rx) = tokio::sync::oneshot::channel();
                let shared = shared.clone();
                std::thread::Builder::new()
                    .name("golive-load".into())
                    .spawn(move || {
                        let rt = tokio::runtime::Builder::new_current_thread()
                            .enable_all()
                            .build();
                        let result = match rt {
                            Ok(rt) => Ok(rt.block_on(run(shared, workers))),
                            Err(e) => Err(ProbeError::Io(format!("cannot start the load: {e}"))),
                        };
                        let _ = tx.send(result);
                    })
                    .map_err(|e| ProbeError::Io(format!("cannot start the load: {e}")))?;
                parts.push(rx);
            }
            let mut total = Tally::new(&plan.empty);
            let mut end = start;
            for rx in parts {
                let (tally, ended) = rx
                    .await
                    .map_err(|_| ProbeError::Io("the load stopped without a result".into()))??;
                total.merge(tally);
                end = end.max(ended);
            }
            Ok(observation(&plan, &total, end.duration_since(start)))
        })
    }
}

/// The cores this process may run on.
fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Connections one thread drives before the default gives the load another
/// thread. At few connections a second thread does not send more: it takes
/// a core from a server on the same machine (bench/RESULTS.md, a one-worker
/// nginx on two cores).
const CONNECTIONS_PER_THREAD: usize = 25;

/// The threads a load runs on unless `threads` says otherwise: one per
/// [`CONNECTIONS_PER_THREAD`] connections, at least one, at most one per
/// core.
pub(crate) fn default_threads(cores: usize, connections: usize) -> usize {
    (connections / CONNECTIONS_PER_THREAD).clamp(1, cores.max(1))
}

struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// One worker's counts.
struct Tally {
    latency: Histogram<u64>,
    statuses: BTreeMap<u16, u64>,
    errors: BTreeMap<String, u64>,
    bytes: u64,
    connections: u64,
    version: Option<&'static str>,
}

impl Tally {
    fn new(empty: &Histogram<u64>) -> Tally {
        Tally {
            latency: empty.clone(),
            statuses: BTreeMap::new(),
            errors: BTreeMap::new(),
            bytes: 0,
            connections: 0,
            version: None,
        }
    }

    fn error(&mut self, cause: String) {
        let key = if self.errors.len() >= MAX_CAUSES && !self.errors.contains_key(&cause) {
            "other".to_string()
        } else {
            cause
        };
        *self.errors.entry(key).or_default() += 1;
    }

    fn merge(&mut self, other: Tally) {
        let _ = self.latency.add(&other.latency);
        for (k, v) in other.statuses {
            *self.statuses.entry(k).or_default() += v;
        }
        for (k, v) in other.errors {
            let key = if self.errors.len() >= MAX_CAUSES && !self.errors.contains_key(&k) {
                "other".to_string()
            } else {
                k
            };
            *self.errors.entry(key).or_default() += v;
        }
        self.bytes += other.bytes;
        self.connections += other.connections;
        self.version = self.version.or(other.version);
    }
}

/// An open connection of one worker.
pub(crate) enum Conn {
    H1(hyper::client::conn::http1::SendRequest<Full<Bytes>>),
    H2(hyper::client::conn::http2::SendRequest<Full<Bytes>>),
}

/// One worker's place: its counts (kept when a stuck worker is replaced)
/// and when its request in flight started (µs after the start, plus one; 0
/// when idle), for the watchdog.
struct Slot {
    tally: std::sync::Mutex<Tally>,
    since: AtomicU64,
}

/// What every worker shares.
struct Shared {
    plan: Arc<Plan>,
    addrs: Vec<SocketAddr>,
    next: AtomicU64,
    stop: Arc<AtomicBool>,
    start: Instant,
    deadline: Option<Instant>,
}

/// `workers` workers on this thread's runtime, and their watchdog; their
/// counts and when the last ended.
async fn run(shared: Arc<Shared>, workers: usize) -> (Tally, Instant) {
    let plan = shared.plan.clone();
    let slots: Vec<Arc<Slot>> = (0..workers)
        .map(|_| {
            Arc::new(Slot {
                tally: std::sync::Mutex::new(Tally::new(&plan.empty)),
                since: AtomicU64::new(0),
            })
        })
        .collect();
    let start = shared.start;
    let mut set = tokio::task::JoinSet::new();
    let mut handles: Vec<tokio::task::AbortHandle> = slots
        .iter()
        .map(|slot| set.spawn(worker(shared.clone(), slot.clone())))
        .collect();
    // one timer for the whole load, not one per request (a timer set and
    // cancelled per request costs a tenth of the throughput): a request in
    // flight for longer than `request_timeout` has its worker replaced, and
    // counts as timed out
    let limit = plan.request_timeout;
    let tick = (limit / 4).clamp(Duration::from_millis(10), Duration::from_millis(250));
    let mut watchdog = tokio::time::interval(tick);
    watchdog.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            joined = set.join_next() => {
                if joined.is_none() {
                    break;
                }
            }
            _ = watchdog.tick() => {
                let now = start.elapsed().as_micros() as u64 + 1;
                for (i, slot) in slots.iter().enumerate() {
                    let since = slot.since.load(Ordering::Relaxed);
                    if since != 0 && now.saturating_sub(since) >= limit.as_micros() as u64 {
                        handles[i].abort();
                        slot.since.store(0, Ordering::Relaxed);
                        lock(slot).error(format!("timed out after {}", crate::show_duration(limit)));
                        handles[i] = set.spawn(worker(shared.clone(), slot.clone()));
                    }
                }
            }
        }
    }
    let ended = Instant::now();
    let mut total = Tally::new(&plan.empty);
    for slot in &slots {
        let t = std::mem::replace(&mut *lock(slot), Tally::new(&plan.empty));
        total.merge(t);
    }
    (total, ended)
}

fn lock(slot: &Slot) -> std::sync::MutexGuard<'_, Tally> {
    slot.tally.lock().unwrap_or_else(|e| e.into_inner())
}

async fn worker(shared: Arc<Shared>, slot: Arc<Slot>) {
    let plan = &shared.plan;
    let mut conn: Option<Conn> = None;
    loop {
        if shared.stop.load(Ordering::Relaxed) {
            break;
        }
        let ticket = shared.next.fetch_add(1, Ordering::Relaxed);
        if plan.requests.is_some_and(|n| ticket >= n) {
            break;
        }
        let due = match plan.rate {
            Some(rate) => {
                let at = shared.start + Duration::from_secs_f64(ticket as f64 / rate);
                if shared.deadline.is_some_and(|d| at >= d) {
                    break;
                }
                tokio::time::sleep_until(at.into()).await;
                at
            }
            None => Instant::now(),
        };
        if shared.deadline.is_some_and(|d| due >= d) {
            break;
        }
        slot.since.store(
            due.duration_since(shared.start).as_micros() as u64 + 1,
            Ordering::Relaxed,
        );
        let outcome = exchange(plan, &shared.addrs, &mut conn).await;
        slot.since.store(0, Ordering::Relaxed);
        let mut tally = lock(&slot);
        match outcome {
            Ok(x) => {
                // microseconds; a request faster than 1 µs is recorded as 1
                let us = (due.elapsed().as_micros() as u64).max(1);
                let _ = tally.latency.record(us);
                *tally.statuses.entry(x.status).or_default() += 1;
                tally.connections += u64::from(x.opened);
                tally.bytes += x.bytes;
                tally.version = tally.version.or(Some(x.version));
            }
            Err(cause) => {
                tally.error(cause);
                conn = None;
            }
        }
    }
}

/// What one request and its answer came to.
pub(crate) struct Exchange {
    pub(crate) status: u16,
    pub(crate) headers: HeaderMap,
    pub(crate) version: &'static str,
    pub(crate) bytes: u64,
    /// A new connection was opened for it.
    pub(crate) opened: bool,
}

/// Send the plan's request on `conn` (opened, or replaced when the server
/// closed it) and read the answer to its end.
pub(crate) async fn exchange(
    plan: &Plan,
    addrs: &[SocketAddr],
    conn: &mut Option<Conn>,
) -> Result<Exchange, String> {
    // a connection the server closed after its last answer (HTTP/1.0,
    // `Connection: close`, an idle timeout) is replaced before sending: no
    // request was lost on it
    let usable = match conn {
        Some(Conn::H1(s)) => s.ready().await.is_ok(),
        Some(Conn::H2(s)) => s.ready().await.is_ok(),
        None => false,
    };
    if !usable {
        *conn = Some(open(plan, addrs).await?);
    }
    // everything of the request but its body is built once, in the plan
    let mut req = Request::new(Full::new(plan.body.clone()));
    *req.method_mut() = plan.method.clone();
    let resp = match conn {
        Some(Conn::H1(s)) => {
            *req.uri_mut() = plan.path.clone();
            *req.headers_mut() = plan.h1_headers.clone();
            s.send_request(req).await
        }
        Some(Conn::H2(s)) => {
            *req.uri_mut() = plan.url.clone();
            *req.headers_mut() = plan.headers.clone();
            s.send_request(req).await
        }
        None => return Err("no connection".into()),
    }
    .map_err(|e| hyper_reason(&e))?;
    let version = match resp.version() {
        http::Version::HTTP_2 => "2",
        http::Version::HTTP_10 => "1.0",
        _ => "1.1",
    };
    let status = resp.status().as_u16();
    let closing = resp.version() == http::Version::HTTP_10
        || resp
            .headers()
            .get(http::header::CONNECTION)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"));
    let (parts, mut body) = resp.into_parts();
    let mut bytes = 0;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| format!("reading the body: {}", hyper_reason(&e)))?;
        if let Some(data) = frame.data_ref() {
            bytes += data.len() as u64;
        }
    }
    if closing {
        *conn = None;
    }
    Ok(Exchange {
        status,
        headers: parts.headers,
        version,
        bytes,
        opened: !usable,
    })
}

/// A new connection: TCP, TLS when https, then the HTTP handshake. The
/// connection's driver runs as a task until the connection closes.
async fn open(plan: &Plan, addrs: &[SocketAddr]) -> Result<Conn, String> {
    let (tcp, _, _) = connect(addrs).await.map_err(|e| e.to_string())?;
    if plan.https {
        let name = ServerName::try_from(
            plan.host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string(),
        )
        .map_err(|e| format!("tls: {e}"))?;
        let tls = tokio_rustls::TlsConnector::from(plan.tls.clone())
            .connect(name, tcp)
            .await
            .map_err(|e| format!("tls handshake failed: {e}"))?;
        let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
        handshake(TokioIo::new(tls), h2).await
    } else {
        handshake(TokioIo::new(tcp), plan.http2).await
    }
}

async fn handshake<T>(io: TokioIo<T>, h2: bool) -> Result<Conn, String>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    if h2 {
        let (sender, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
            .await
            .map_err(|e| format!("http/2 handshake: {}", hyper_reason(&e)))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(Conn::H2(sender))
    } else {
        let (sender, conn) = hyper::client::conn::http1::handshake(io)
            .await
            .map_err(|e| format!("http handshake: {}", hyper_reason(&e)))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(Conn::H1(sender))
    }
}

/// Milliseconds from a histogram value in microseconds.
fn ms(us: u64) -> f64 {
    us as f64 / 1e3
}

/// Bars of the latency distribution, as oha draws them: ten equal spans from
/// the fastest answer to the slowest, each with its upper bound and count.
fn histogram(h: &Histogram<u64>) -> Value {
    const BARS: u64 = 10;
    if h.is_empty() {
        return json!([]);
    }
    let (min, max) = (h.min() as f64, h.max() as f64);
    // a run whose answers all took the same time has one bar's worth of width
    let width = ((max - min) / BARS as f64).max(1.0 / BARS as f64);
    let mut counts = [0u64; BARS as usize];
    for v in h.iter_recorded() {
        let at = (v.value_iterated_to() as f64).clamp(min, max);
        let i = (((at - min) / width) as u64).min(BARS - 1);
        counts[i as usize] += v.count_at_value();
    }
    counts
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let upper = min + width * (i as f64 + 1.0);
            let upper = if i as u64 == BARS - 1 { max } else { upper };
            json!({ "up_to_ms": upper.round() / 1e3, "count": n })
        })
        .collect()
}

fn observation(plan: &Plan, t: &Tally, elapsed: Duration) -> Value {
    let responses: u64 = t.statuses.values().sum();
    let errors: u64 = t.errors.values().sum();
    let requests = responses + errors;
    let succeeded: u64 = t
        .statuses
        .iter()
        .filter(|(s, _)| (200..400).contains(*s))
        .map(|(_, n)| n)
        .sum();
    let rate = |n: u64| {
        if requests == 0 {
            0.0
        } else {
            n as f64 / requests as f64
        }
    };
    let h = &t.latency;
    let latency = if h.is_empty() {
        Value::Null
    } else {
        json!({
            "min": ms(h.min()),
            "mean": (h.mean() / 1e3 * 1e3).round() / 1e3,
            "stdev": (h.stdev() / 1e3 * 1e3).round() / 1e3,
            "p50": ms(h.value_at_quantile(0.50)),
            "p90": ms(h.value_at_quantile(0.90)),
            "p95": ms(h.value_at_quantile(0.95)),
            "p99": ms(h.value_at_quantile(0.99)),
            "p99_9": ms(h.value_at_quantile(0.999)),
            "max": ms(h.max()),
        })
    };
    let secs = elapsed.as_secs_f64();
    json!({
        "latency_histogram": histogram(h),
        "requests": requests,
        "succeeded": succeeded,
        "success_rate": rate(succeeded),
        "error_rate": 1.0 - rate(succeeded),
        "statuses": t.statuses.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<Map<_, _>>(),
        "errors": t.errors.iter().map(|(k, v)| (k.clone(), json!(v))).collect::<Map<_, _>>(),
        "rps": if secs > 0.0 { (requests as f64 / secs * 10.0).round() / 10.0 } else { 0.0 },
        "duration_s": (secs * 1e3).round() / 1e3,
        "latency_ms": latency,
        "concurrency": plan.concurrency,
        "threads": plan.threads,
        "rate": plan.rate,
        "corrected": plan.rate.is_some(),
        "http_version": t.version,
        "connections": t.connections,
        "bytes": t.bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use golive_testkit::{Pki, full, routes};

    fn probe(target: &str, options: &str) -> Box<dyn Probe> {
        let mut t: toml::Table = toml::from_str(options).expect("options");
        t.insert("target".into(), toml::Value::String(target.into()));
        KIND.probe(&t).expect("spec")
    }

    #[tokio::test]
    async fn counts_every_request_on_kept_alive_connections() {
        let s = golive_testkit::http(routes(&[("/", 200, "hello\n"), ("/boom", 500, "no")])).await;
        let url = format!("http://127.0.0.1:{}/", s.addr.port());
        let obs = probe(&url, "requests = 500\nconcurrency = 8")
            .observe()
            .await
            .expect("observed");
        assert_eq!(obs["requests"], 500);
        assert_eq!(obs["succeeded"], 500);
        assert_eq!(obs["statuses"]["200"], 500);
        assert_eq!(obs["error_rate"], 0.0);
        assert_eq!(obs["bytes"], 500 * 6);
        assert_eq!(obs["http_version"], "1.1");
        // keep-alive: one connection per worker, not one per request
        assert_eq!(obs["connections"], 8);
        let l = &obs["latency_ms"];
        for (a, b) in [
            ("min", "p50"),
            ("p50", "p90"),
            ("p90", "p99"),
            ("p99", "max"),
        ] {
            assert!(l[a].as_f64() <= l[b].as_f64(), "{a} <= {b}: {l}");
        }
        // ten bars from the fastest to the slowest, every answer in one
        let bars = obs["latency_histogram"].as_array().expect("histogram");
        assert_eq!(bars.len(), 10);
        let counts: Vec<u64> = bars
            .iter()
            .map(|b| b["count"].as_u64().expect("count"))
            .collect();
        assert_eq!(counts.iter().sum::<u64>(), 500, "{bars:?}");
        assert!(
            counts[0] > 0 && counts[9] > 0,
            "min and max are in the end bars: {bars:?}"
        );
        let uppers: Vec<f64> = bars
            .iter()
            .map(|b| b["up_to_ms"].as_f64().expect("bound"))
            .collect();
        assert!(uppers.windows(2).all(|w| w[0] < w[1]), "{uppers:?}");
        assert_eq!(uppers[9], l["max"].as_f64().expect("max"));
        let obs = probe(&format!("{url}boom"), "requests = 40\nconcurrency = 4")
            .observe()
            .await
            .expect("observed");
        assert_eq!(obs["statuses"]["500"], 40);
        assert_eq!(obs["success_rate"], 0.0);
        assert_eq!(obs["error_rate"], 1.0);
    }

    #[tokio::test]
    async fn a_refused_target_is_counted_by_cause() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = l.local_addr().expect("addr").port();
        drop(l);
        let obs = probe(
            &format!("http://127.0.0.1:{port}/"),
            "requests = 30\nconcurrency = 3",
        )
        .observe()
        .await
        .expect("observed");
        assert_eq!(obs["requests"], 30);
        assert_eq!(obs["succeeded"], 0);
        assert_eq!(
            obs["errors"][format!("connection refused by 127.0.0.1:{port}")],
            30
        );
        assert!(obs["latency_ms"].is_null());
    }

    #[tokio::test]
    async fn http2_by_prior_knowledge_and_by_alpn() {
        let s = golive_testkit::http(routes(&[("/", 200, "ok")])).await;
        let obs = probe(
            &format!("http://127.0.0.1:{}/", s.addr.port()),
            "requests = 100\nconcurrency = 4\nhttp2 = true",
        )
        .observe()
        .await
        .expect("observed");
        assert_eq!(obs["http_version"], "2");
        assert_eq!(obs["statuses"]["200"], 100);
        let pki = Pki::new();
        let (chain, key) = pki.leaf(&["localhost"], -1, 90);
        let s = golive_testkit::https(chain, key, routes(&[("/", 200, "ok")])).await;
        let ca = pki.ca_file.display().to_string();
        for (h2, version) in [(true, "2"), (false, "1.1")] {
            let obs = probe(
                &format!("https://localhost:{}/", s.addr.port()),
                &format!("requests = 50\nconcurrency = 2\nhttp2 = {h2}\nca_file = '{ca}'"),
            )
            .observe()
            .await
            .expect("observed");
            assert_eq!(obs["http_version"], version);
            assert_eq!(obs["statuses"]["200"], 50, "{obs}");
            assert_eq!(obs["connections"], 2);
        }
    }

    #[tokio::test]
    async fn a_duration_bounds_the_run() {
        let s = golive_testkit::http(routes(&[("/", 200, "ok")])).await;
        let obs = probe(
            &format!("http://127.0.0.1:{}/", s.addr.port()),
            "duration = '300ms'\nconcurrency = 2",
        )
        .observe()
        .await
        .expect("observed");
        assert!(obs["requests"].as_u64() > Some(0), "{obs}");
        assert!(obs["duration_s"].as_f64() >= Some(0.3), "{obs}");
        assert_eq!(obs["error_rate"], 0.0);
    }

    /// At a fixed rate, a server that stalls cannot hide the stall: each
    /// request's latency counts from when it was due. Here every answer takes
    /// 40 ms, one at a time, while 25 requests are due within 0.25 s: the
    /// last is answered about a second after it was due.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_fixed_rate_corrects_for_coordinated_omission() {
        let slow: golive_testkit::Handler = Arc::new(|_req| {
            std::thread::sleep(Duration::from_millis(40));
            http::Response::new(full("slow"))
        });
        let s = golive_testkit::http(slow).await;
        let obs = probe(
            &format!("http://127.0.0.1:{}/", s.addr.port()),
            "rate = 100\nduration = '250ms'\nconcurrency = 1",
        )
        .observe()
        .await
        .expect("observed");
        assert_eq!(obs["requests"], 25, "{obs}");
        assert_eq!(obs["corrected"], true);
        // uncorrected, every latency would be ~40 ms
        assert!(obs["latency_ms"]["min"].as_f64() >= Some(40.0), "{obs}");
        assert!(
            obs["latency_ms"]["max"].as_f64() >= Some(25.0 * 40.0 - 250.0),
            "{obs}"
        );
        assert!(obs["latency_ms"]["p50"].as_f64() > Some(300.0), "{obs}");
    }

    /// A server that accepts and never answers: each request is given up
    /// after `request_timeout` and counted, and the load still ends.
    #[tokio::test]
    async fn a_silent_server_times_out_each_request() {
        let s = golive_testkit::silent().await;
        let obs = probe(
            &format!("http://127.0.0.1:{}/", s.addr.port()),
            "requests = 4\nconcurrency = 2\nrequest_timeout = '200ms'",
        )
        .observe()
        .await
        .expect("observed");
        assert_eq!(obs["requests"], 4, "{obs}");
        assert_eq!(obs["errors"]["timed out after 200ms"], 4, "{obs}");
        assert_eq!(obs["error_rate"], 1.0);
    }

    #[test]
    fn a_long_run_lengthens_its_timeout_or_is_refused_one_too_short() {
        let p = probe(
            "http://127.0.0.1:1/",
            "duration = '15m'\nrequest_timeout = '5s'",
        );
        assert_eq!(p.least_time(), Some(Duration::from_secs(905)));
        let default = KIND.default_timeout;
        assert_eq!(
            crate::timeout_for(&*p, None, default, "`timeout`"),
            Ok(Duration::from_secs(915)),
            "not cut at the default of {default:?}"
        );
        assert_eq!(
            crate::timeout_for(&*p, Some(Duration::from_secs(1200)), default, "`timeout`"),
            Ok(Duration::from_secs(1200))
        );
        let short = crate::timeout_for(&*p, Some(Duration::from_secs(60)), default, "`timeout`");
        assert!(
            short
                .as_ref()
                .is_err_and(|e| e.contains("leaves no room for a run of 905s")),
            "{short:?}"
        );
        // a count of requests has no least time: the default holds
        let p = probe("http://127.0.0.1:1/", "requests = 10");
        assert_eq!(
            crate::timeout_for(&*p, None, default, "`timeout`"),
            Ok(default)
        );
    }

    /// The default whatever the machine: one thread per 25 connections,
    /// at least one, at most the cores.
    #[test]
    fn the_default_threads_follow_the_connections_up_to_the_cores() {
        for (cores, connections, threads) in [
            (1, 1, 1),
            (1, 500, 1),
            (2, 1, 1),
            (2, 10, 1),
            (2, 49, 1),
            (2, 50, 2),
            (2, 1000, 2),
            (8, 10, 1),
            (8, 75, 3),
            (8, 10_000, 8),
        ] {
            assert_eq!(
                default_threads(cores, connections),
                threads,
                "{cores} cores, {connections} connections"
            );
        }
    }

    #[test]
    fn options_are_checked() {
        let mut t = toml::Table::new();
        t.insert("target".into(), toml::Value::String("ftp://x/".into()));
        assert!(KIND.probe(&t).is_err());
        for bad in [
            "concurrency = 0",
            "requests = 0",
            "rate = -1",
            "duration = 'soon'",
        ] {
            let mut t: toml::Table = toml::from_str(bad).expect("toml");
            t.insert(
                "target".into(),
                toml::Value::String("http://127.0.0.1/".into()),
            );
            assert!(KIND.probe(&t).is_err(), "{bad}");
        }
    }
}
