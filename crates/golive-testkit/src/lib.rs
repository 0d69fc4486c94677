//! golive-testkit: real servers on 127.0.0.1 for tests. Nothing here is a
//! mock: the HTTP servers are hyper, the TLS is rustls with certificates from
//! a CA generated per test, the legacy-TLS server is `openssl s_server`, the
//! PostgreSQL with TLS ([`PostgresServer`]) is Debian's own, in a fresh cluster.
//!
//! ```no_run
//! # async fn f() {
//! let pki = golive_testkit::Pki::new();
//! let (chain, key) = pki.leaf(&["localhost"], -1, 90);
//! let server = golive_testkit::https(chain, key, golive_testkit::routes(&[("/", 200, "ok")])).await;
//! println!("https://localhost:{}/", server.addr.port());
//! # }
//! ```

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

/// A response body: fixed or streamed.
pub type Body = BoxBody<Bytes, Infallible>;

/// What a test server answers for a request.
pub type Handler = Arc<dyn Fn(&Request<Incoming>) -> Response<Body> + Send + Sync>;

/// A fixed body.
pub fn full(text: impl Into<Bytes>) -> Body {
    Full::new(text.into()).boxed()
}

/// A handler answering `path → (status, body)`; anything else is 404.
pub fn routes(table: &[(&str, u16, &str)]) -> Handler {
    let table: Vec<(String, u16, String)> = table
        .iter()
        .map(|(p, s, b)| ((*p).to_string(), *s, (*b).to_string()))
        .collect();
    Arc::new(move |req| {
        let path = req.uri().path();
        match table.iter().find(|(p, _, _)| p == path) {
            Some((_, s, b)) => Response::builder()
                .status(*s)
                .header(
                    "content-type",
                    if b.starts_with('{') {
                        "application/json"
                    } else {
                        "text/plain"
                    },
                )
                .body(full(b.clone()))
                .unwrap_or_else(|_| Response::new(full(""))),
            None => {
                let mut r = Response::new(full("not found"));
                *r.status_mut() = StatusCode::NOT_FOUND;
                r
            }
        }
    })
}

/// Anonymous requests to `/api/v1/test` the smoke service answers before it
/// rate-limits them (429, `Retry-After: 30`); authenticated ones are not
/// limited.
pub const ANONYMOUS_LIMIT: u64 = 20;

/// What the smoke service counts for its `/metrics`.
#[derive(Default)]
struct Stats {
    by_status: std::sync::Mutex<std::collections::BTreeMap<u16, u64>>,
    anonymous: std::sync::atomic::AtomicU64,
}

impl Stats {
    fn count(&self, status: u16) {
        *self
            .by_status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(status)
            .or_default() += 1;
    }

    /// Prometheus text: requests by status, and a latency histogram (every
    /// answer here is immediate: all in the first bucket).
    fn exposition(&self) -> String {
        let by = self.by_status.lock().unwrap_or_else(|e| e.into_inner());
        let total: u64 = by.values().sum();
        let mut out = String::from(
            "# HELP http_requests_total Requests answered, by status.\n# TYPE http_requests_total counter\n",
        );
        for (code, n) in by.iter() {
            out.push_str(&format!("http_requests_total{{code=\"{code}\"}} {n}\n"));
        }
        out.push_str("# TYPE http_request_duration_seconds histogram\n");
        for le in ["0.005", "0.05", "0.5", "1", "5"] {
            out.push_str(&format!(
                "http_request_duration_seconds_bucket{{le=\"{le}\"}} {total}\n"
            ));
        }
        out.push_str(&format!(
            "http_request_duration_seconds_bucket{{le=\"+Inf\"}} {total}\nhttp_request_duration_seconds_sum {}\nhttp_request_duration_seconds_count {total}\n",
            total as f64 * 0.001
        ));
        out
    }
}

/// The endpoints the reference checklist's smoke tests call, for a service at
/// `version` whose API wants `Authorization: Bearer {token}`; every answer
/// carries HSTS. `/metrics` counts what it answered; anonymous calls of
/// `/api/v1/test` are rate-limited after [`ANONYMOUS_LIMIT`].
pub fn smoke_service(version: &'static str, token: &'static str) -> Handler {
    let stats = Arc::new(Stats::default());
    Arc::new(move |req: &Request<Incoming>| {
        let authed = req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            == Some(&format!("Bearer {token}"));
        let anonymous_api = !authed && req.uri().path() == "/api/v1/test";
        let limited = anonymous_api
            && stats
                .anonymous
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                >= ANONYMOUS_LIMIT;
        let (status, body) = match req.uri().path() {
            "/metrics" => (200, stats.exposition()),
            _ if limited => (429, r#"{"error":"rate limited"}"#.to_string()),
            "/" => (200, "<h1>shop</h1>".to_string()),
            "/health" => (
                200,
                format!(r#"{{"status":"healthy","version":"{version}"}}"#),
            ),
            "/ready" => (
                200,
                r#"{"status":"ready","dependencies":{"database":"ok","filesystem":"ok"}}"#
                    .to_string(),
            ),
            "/live" => (200, "ok".to_string()),
            "/version" => (
                200,
                format!(r#"{{"version":"{version}","build":"412","commit":"3f2a9c1"}}"#),
            ),
            "/api/v1/test" if authed => (200, r#"{"ok":true}"#.to_string()),
            "/api/v1/db-health" if authed => (
                200,
                r#"{"database":"connected","latency_ms":3}"#.to_string(),
            ),
            "/api/v1/test" | "/api/v1/db-health" => {
                (401, r#"{"error":"unauthorized"}"#.to_string())
            }
            _ => (
                404,
                "<h1>Not found</h1><p>Try the home page.</p>".to_string(),
            ),
        };
        if req.uri().path() != "/metrics" {
            stats.count(status);
        }
        let mut r = Response::builder();
        if status == 429 {
            r = r.header("retry-after", "30");
        }
        r.status(status)
            .header(
                "strict-transport-security",
                "max-age=31536000; includeSubDomains",
            )
            .header(
                "content-type",
                if body.starts_with('{') {
                    "application/json"
                } else {
                    "text/html"
                },
            )
            .body(full(body))
            .unwrap_or_else(|_| Response::new(full("")))
    })
}

/// A Prometheus text endpoint at `/metrics` whose counters grow by 1,000
/// requests per scrape, `errors` ‰ of them with code 500: between any two
/// scrapes the error rate is `errors / 1000`, whatever else scrapes it.
pub fn error_counters(errors: Arc<std::sync::atomic::AtomicU64>) -> Handler {
    use std::sync::atomic::Ordering::SeqCst;
    let served = Arc::new(std::sync::Mutex::new((0u64, 0u64)));
    Arc::new(move |req: &Request<Incoming>| {
        if req.uri().path() != "/metrics" {
            return Response::builder()
                .status(404)
                .body(full("not found"))
                .expect("response");
        }
        let (ok, failed) = {
            let mut c = served.lock().expect("counters");
            let e = errors.load(SeqCst).min(1000);
            c.0 += 1000 - e;
            c.1 += e;
            *c
        };
        let text = format!(
            "# TYPE http_requests_total counter\nhttp_requests_total{{code=\"200\"}} {ok}\nhttp_requests_total{{code=\"500\"}} {failed}\n"
        );
        Response::builder()
            .header("content-type", "text/plain; version=0.0.4")
            .body(full(text))
            .expect("response")
    })
}

/// A running server; its tasks stop when it is dropped.
pub struct Server {
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn listen() -> TcpListener {
    TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0")
}

/// Plain HTTP/1.1 with `handler`.
pub async fn http(handler: Handler) -> Server {
    serve_plain(handler, None).await
}

/// How long a [`slow_http`] server waits before each answer: `base` for
/// most, `slow` for every `every`-th request it receives (counted across
/// all connections), so that its latency percentiles are known in advance:
/// with `every = 50`, 98 % of the answers wait `base` and p99 waits `slow`
/// (`every = 0`: none is slow).
#[derive(Clone, Copy, Debug)]
pub struct Latency {
    pub base: Duration,
    pub slow: Duration,
    pub every: u64,
}

/// Plain HTTP/1.1 (and HTTP/2 by prior knowledge) with `handler`, each
/// answer held back as `latency` says (a timer, not a busy wait: the server
/// stays idle while it waits, as a service waiting on its database does).
pub async fn slow_http(handler: Handler, latency: Latency) -> Server {
    serve_plain(handler, Some(latency)).await
}

async fn serve_plain(handler: Handler, latency: Option<Latency>) -> Server {
    let counter = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let listener = listen().await;
    let addr = listener.local_addr().expect("addr");
    let task = tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            // as production servers do: no 40 ms Nagle/delayed-ACK stalls
            let _ = tcp.set_nodelay(true);
            let h = handler.clone();
            let counter = counter.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| {
                    let r = h(&req);
                    let wait = latency.map(|l| {
                        let n = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                        if n.is_multiple_of(l.every) {
                            l.slow
                        } else {
                            l.base
                        }
                    });
                    async move {
                        if let Some(wait) = wait {
                            tokio::time::sleep(wait).await;
                        }
                        Ok::<_, Infallible>(r)
                    }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tcp), svc)
                    .await;
            });
        }
    });
    Server { addr, task }
}

/// HTTPS (TLS 1.2 and 1.3, ALPN h2 and http/1.1) with the given certificate.
pub async fn https(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    handler: Handler,
) -> Server {
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .expect("certificate and key match");
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = listen().await;
    let addr = listener.local_addr().expect("addr");
    let task = tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            // as production servers do: no 40 ms Nagle/delayed-ACK stalls
            let _ = tcp.set_nodelay(true);
            let h = handler.clone();
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let svc = hyper::service::service_fn(move |req| {
                    let r = h(&req);
                    async move { Ok::<_, Infallible>(r) }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), svc)
                    .await;
            });
        }
    });
    Server { addr, task }
}

/// Accepts connections and never sends a byte.
pub async fn silent() -> Server {
    raw(|mut s| async move {
        tokio::time::sleep(Duration::from_secs(3600)).await;
        let _ = s.shutdown().await;
    })
    .await
}

/// Answers with headers, then drips the body one byte a second.
pub async fn drip() -> Server {
    raw(|mut s| async move {
        let _ = s
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 100000\r\n\r\n")
            .await;
        loop {
            if s.write_all(b"x").await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    })
    .await
}

/// Answers 200 with a body of `len` bytes, generated as it is sent.
pub async fn huge(len: u64) -> Server {
    raw(move |mut s| async move {
        let head = format!("HTTP/1.1 200 OK\r\ncontent-length: {len}\r\n\r\n");
        if s.write_all(head.as_bytes()).await.is_err() {
            return;
        }
        let chunk = vec![b'a'; 64 * 1024];
        let mut left = len;
        while left > 0 {
            let n = left.min(chunk.len() as u64) as usize;
            if s.write_all(&chunk[..n]).await.is_err() {
                return;
            }
            left -= n as u64;
        }
    })
    .await
}

/// Sends half a response, then resets the connection.
pub async fn reset_midway() -> Server {
    raw(|s| async move {
        let mut s = s;
        let _ = s
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\npartial")
            .await;
        let _ = s.flush().await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        // SO_LINGER 0: closing sends a reset instead of a clean FIN
        #[allow(deprecated)]
        let _ = s.set_linger(Some(Duration::ZERO));
        drop(s);
    })
    .await
}

async fn raw<F, Fut>(f: F) -> Server
where
    F: Fn(tokio::net::TcpStream) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = listen().await;
    let addr = listener.local_addr().expect("addr");
    let f = Arc::new(f);
    let task = tokio::spawn(async move {
        let mut conns = Vec::new();
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let f = f.clone();
            conns.push(AbortGuard(tokio::spawn(async move { f(tcp).await })));
        }
    });
    Server { addr, task }
}

struct AbortGuard(tokio::task::JoinHandle<()>);

impl Drop for AbortGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A certificate authority generated for one test, with its PEM in a file.
pub struct Pki {
    issuer: Issuer<'static, KeyPair>,
    pub ca_pem: String,
    pub dir: PathBuf,
    pub ca_file: PathBuf,
}

/// Year, month, day of today plus `days_from_now` (UTC).
fn ymd(days_from_now: i64) -> (i32, u8, u8) {
    let d = jiff::Timestamp::now()
        .checked_add(jiff::SignedDuration::from_hours(24 * days_from_now))
        .expect("date in range")
        .to_zoned_datetime(jiff::tz::TimeZone::UTC)
        .date();
    (i32::from(d.year()), d.month() as u8, d.day() as u8)
}

macro_rules! date {
    ($days:expr) => {{
        let (y, m, d) = ymd($days);
        rcgen::date_time_ymd(y, m, d)
    }};
}

impl Pki {
    pub fn new() -> Pki {
        let key = KeyPair::generate().expect("key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params
            .distinguished_name
            .push(DnType::CommonName, "golive test CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.not_before = date!(-30);
        params.not_after = date!(3650);
        let cert = params.self_signed(&key).expect("CA");
        let ca_pem = cert.pem();
        let dir = std::env::temp_dir().join(format!(
            "golive-pki-{}-{}",
            std::process::id(),
            jiff::Timestamp::now().as_nanosecond()
        ));
        std::fs::create_dir_all(&dir).expect("pki dir");
        let ca_file = dir.join("ca.pem");
        std::fs::write(&ca_file, &ca_pem).expect("write CA");
        Pki {
            issuer: Issuer::new(params, key),
            ca_pem,
            dir,
            ca_file,
        }
    }

    fn leaf_params(names: &[&str], from_days: i64, to_days: i64) -> CertificateParams {
        let mut params =
            CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .expect("names");
        params
            .distinguished_name
            .push(DnType::CommonName, names.first().copied().unwrap_or("leaf"));
        params.not_before = date!(from_days);
        params.not_after = date!(to_days);
        params
    }

    /// A leaf for `names`, valid from `from_days` to `to_days` from today,
    /// signed by this CA.
    pub fn leaf(
        &self,
        names: &[&str],
        from_days: i64,
        to_days: i64,
    ) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
        let key = KeyPair::generate().expect("key");
        let cert = Self::leaf_params(names, from_days, to_days)
            .signed_by(&key, &self.issuer)
            .expect("sign");
        (
            vec![cert.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
    }

    /// A self-signed certificate for `names` (no CA).
    pub fn self_signed(names: &[&str]) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
        let key = KeyPair::generate().expect("key");
        let cert = Self::leaf_params(names, -1, 90)
            .self_signed(&key)
            .expect("self-signed");
        (
            vec![cert.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
    }

    /// Write a leaf's certificate and key as PEM files (for `openssl s_server`).
    pub fn leaf_files(&self, names: &[&str], tag: &str) -> (PathBuf, PathBuf) {
        let key = KeyPair::generate().expect("key");
        let cert = Self::leaf_params(names, -1, 90)
            .signed_by(&key, &self.issuer)
            .expect("sign");
        let c = self.dir.join(format!("{tag}.crt"));
        let k = self.dir.join(format!("{tag}.key"));
        std::fs::write(&c, cert.pem()).expect("cert file");
        std::fs::write(&k, key.serialize_pem()).expect("key file");
        (c, k)
    }
}

impl Default for Pki {
    fn default() -> Self {
        Pki::new()
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `openssl s_server` on 127.0.0.1 with extra arguments; killed when dropped.
pub struct OpensslServer {
    pub port: u16,
    child: std::process::Child,
}

impl OpensslServer {
    /// Start `openssl s_server -cert C -key K ARGS…` and wait until it accepts.
    pub fn start(cert: &std::path::Path, key: &std::path::Path, args: &[&str]) -> OpensslServer {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let child = std::process::Command::new("openssl")
            .args([
                "s_server",
                "-accept",
                &format!("127.0.0.1:{port}"),
                "-naccept",
                "1000",
                "-quiet",
            ])
            .arg("-cert")
            .arg(cert)
            .arg("-key")
            .arg(key)
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("openssl is installed (.ci/run installs it)");
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        OpensslServer { port, child }
    }
}

impl Drop for OpensslServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An authoritative DNS server for `example.test.` on UDP 127.0.0.1 (hickory):
/// `www` A 127.0.0.1 and AAAA ::1 (TTL 300), `alias` CNAME `www` (TTL 60),
/// `txt` TXT "v=spf1 -all" (TTL 120), the apex MX 10 `mail` (TTL 3600);
/// other names in the zone are NXDOMAIN. `localhost.` A 127.0.0.1 (TTL 300).
pub async fn dns() -> Server {
    use hickory_server::net::runtime::TokioRuntimeProvider;
    use hickory_server::proto::rr::rdata::{A, AAAA, CNAME, MX, SOA, TXT};
    use hickory_server::proto::rr::{LowerName, Name, RData, Record};
    use hickory_server::store::in_memory::InMemoryZoneHandler;
    use hickory_server::zone_handler::{AxfrPolicy, Catalog, ZoneType};
    use std::str::FromStr;
    let n = |s: &str| Name::from_str(s).expect("name");
    // a zone: its SOA (negative answers carry it) and its records
    let zone = |origin: &str, records: Vec<(&str, u32, RData)>| {
        let apex = n(origin);
        let mut z = InMemoryZoneHandler::<TokioRuntimeProvider>::empty(
            apex.clone(),
            ZoneType::Primary,
            AxfrPolicy::Deny,
        );
        let soa = SOA::new(
            n(&format!("ns.{origin}")),
            n(&format!("hostmaster.{origin}")),
            1,
            3600,
            600,
            86400,
            30,
        );
        z.upsert_mut(Record::from_rdata(apex.clone(), 3600, RData::SOA(soa)), 1);
        for (name, ttl, data) in records {
            z.upsert_mut(Record::from_rdata(n(name), ttl, data), 1);
        }
        (LowerName::from(&apex), z)
    };
    let mut catalog = Catalog::new();
    let (name, example) = zone(
        "example.test.",
        vec![
            (
                "www.example.test.",
                300,
                RData::A(A(std::net::Ipv4Addr::LOCALHOST)),
            ),
            (
                "www.example.test.",
                300,
                RData::AAAA(AAAA(std::net::Ipv6Addr::LOCALHOST)),
            ),
            (
                "alias.example.test.",
                60,
                RData::CNAME(CNAME(n("www.example.test."))),
            ),
            (
                "txt.example.test.",
                120,
                RData::TXT(TXT::new(vec!["v=spf1 -all".into()])),
            ),
            (
                "example.test.",
                3600,
                RData::MX(MX::new(10, n("mail.example.test."))),
            ),
        ],
    );
    catalog.upsert(name, vec![Arc::new(example)]);
    // `localhost.` too, so a stand-in reached as localhost can be looked up
    let (name, local) = zone(
        "localhost.",
        vec![(
            "localhost.",
            300,
            RData::A(A(std::net::Ipv4Addr::LOCALHOST)),
        )],
    );
    catalog.upsert(name, vec![Arc::new(local)]);
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("bind udp");
    let addr = socket.local_addr().expect("addr");
    let mut server = hickory_server::Server::new(catalog);
    server.register_socket(socket);
    let task = tokio::spawn(async move {
        let _ = server.block_until_done().await;
    });
    Server { addr, task }
}

/// A real Prometheus (Debian's `prometheus`) on 127.0.0.1, scraping the given
/// `host:port` targets' `/metrics` every `interval` as job `svc`, with its
/// data in a fresh folder; killed and removed when dropped.
pub struct PrometheusServer {
    pub port: u16,
    child: std::process::Child,
    dir: PathBuf,
}

impl PrometheusServer {
    /// Start it and wait until it says it is ready (at most 30 s).
    pub fn start(targets: &[SocketAddr], interval: &str) -> PrometheusServer {
        Self::start_with(targets, interval, None)
    }

    /// As [`start`](Self::start), scraping over https with this CA (PEM),
    /// the targets named `localhost`.
    pub fn start_tls(
        targets: &[SocketAddr],
        interval: &str,
        ca_file: &std::path::Path,
    ) -> PrometheusServer {
        Self::start_with(targets, interval, Some(ca_file))
    }

    fn start_with(
        targets: &[SocketAddr],
        interval: &str,
        ca: Option<&std::path::Path>,
    ) -> PrometheusServer {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let dir =
            std::env::temp_dir().join(format!("golive-prometheus-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("prometheus dir");
        let list: Vec<String> = targets
            .iter()
            .map(|t| match ca {
                Some(_) => format!("'localhost:{}'", t.port()),
                None => format!("'{t}'"),
            })
            .collect();
        let tls = ca.map_or(String::new(), |ca| {
            format!(
                "    scheme: https\n    tls_config:\n      ca_file: {}\n      server_name: localhost\n",
                ca.display()
            )
        });
        std::fs::write(
            dir.join("prometheus.yml"),
            format!(
                "global:\n  scrape_interval: {interval}\n  evaluation_interval: {interval}\nscrape_configs:\n  - job_name: svc\n{tls}    static_configs:\n      - targets: [{}]\n",
                list.join(", ")
            ),
        )
        .expect("prometheus config");
        let child = std::process::Command::new("prometheus")
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=warn")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("prometheus is installed (.ci/run installs Debian's prometheus)");
        let server = PrometheusServer { port, child, dir };
        for _ in 0..300 {
            if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
                use std::io::{Read, Write};
                let _ = s.write_all(b"GET /-/ready HTTP/1.0\r\n\r\n");
                let mut answer = String::new();
                let _ = s.read_to_string(&mut answer);
                if answer.starts_with("HTTP/1.0 200") || answer.starts_with("HTTP/1.1 200") {
                    return server;
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("prometheus on 127.0.0.1:{port} did not become ready in 30 s");
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Wait until the target has been scraped `n` times (at most 30 s);
    /// whether it was.
    pub fn wait_for_scrapes(&self, n: u32) -> bool {
        use std::io::{Read, Write};
        for _ in 0..300 {
            if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", self.port)) {
                let _ = s.write_all(
                    b"GET /api/v1/query?query=sum(count_over_time(up%5B1m%5D)) HTTP/1.0\r\n\r\n",
                );
                let mut answer = String::new();
                let _ = s.read_to_string(&mut answer);
                let count = answer
                    .rsplit_once("\"value\":[")
                    .and_then(|(_, v)| v.split('"').nth(1))
                    .and_then(|v| v.parse::<f64>().ok());
                if count.is_some_and(|c| c >= f64::from(n)) {
                    return true;
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }
}

impl Drop for PrometheusServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One request a [`receiver`] took: when it arrived, its path, its body.
#[derive(Debug, Clone)]
pub struct Received {
    pub at: std::time::Instant,
    pub path: String,
    pub body: String,
}

/// A webhook receiver on 127.0.0.1: records every request's body and
/// answers 202 (as PagerDuty's Events API does), or `status` when set.
pub async fn receiver(status: u16) -> (Server, Arc<std::sync::Mutex<Vec<Received>>>) {
    let seen: Arc<std::sync::Mutex<Vec<Received>>> = Arc::default();
    let listener = listen().await;
    let addr = listener.local_addr().expect("addr");
    let log = seen.clone();
    let task = tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let log = log.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let log = log.clone();
                    async move {
                        let path = req.uri().path().to_string();
                        let body = req
                            .into_body()
                            .collect()
                            .await
                            .map(|b| String::from_utf8_lossy(&b.to_bytes()).into_owned())
                            .unwrap_or_default();
                        log.lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push(Received {
                                at: std::time::Instant::now(),
                                path,
                                body,
                            });
                        let mut r = Response::new(full("{\"status\":\"success\"}"));
                        *r.status_mut() =
                            StatusCode::from_u16(status).unwrap_or(StatusCode::ACCEPTED);
                        Ok::<_, Infallible>(r)
                    }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tcp), svc)
                    .await;
            });
        }
    });
    (Server { addr, task }, seen)
}

/// A PostgreSQL server of a test's own (Debian's `postgresql`): a fresh
/// cluster in a temporary folder, on a free port of 127.0.0.1, with TLS on
/// (a certificate for `names` signed by the test's CA) and only `hostssl`
/// connections allowed, user `postgres` trusted. A connection that is let in
/// over TCP is therefore encrypted; one without TLS is refused by the server
/// with its reason. As root (the tests and CI), it runs as the `postgres`
/// system user: PostgreSQL refuses to run as root. Stopped and removed when
/// dropped.
pub struct PostgresServer {
    pub port: u16,
    dir: PathBuf,
    bin: PathBuf,
    as_postgres: bool,
}

impl PostgresServer {
    /// Create the cluster, start it and wait until it accepts (at most 60 s).
    pub fn start_tls(pki: &Pki, names: &[&str]) -> PostgresServer {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path().join("bin"))
            .filter(|b| b.join("initdb").is_file())
            .max_by_key(|b| {
                b.parent()
                    .and_then(|v| v.file_name())
                    .and_then(|v| v.to_str())
                    .and_then(|v| v.parse::<u32>().ok())
            })
            .expect("initdb in /usr/lib/postgresql/*/bin (.ci/run installs Debian's postgresql)");
        let as_postgres = std::process::Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| o.stdout.trim_ascii() == b"0");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let dir =
            std::env::temp_dir().join(format!("golive-postgres-{}-{port}", std::process::id()));
        let data = dir.join("data");
        std::fs::create_dir_all(&dir).expect("postgres dir");
        let server = PostgresServer {
            port,
            dir,
            bin,
            as_postgres,
        };
        server.own(&server.dir);
        server.run(
            "initdb",
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-U".as_ref(),
                "postgres".as_ref(),
                "--auth=trust".as_ref(),
                "--no-sync".as_ref(),
                "--encoding=UTF8".as_ref(),
            ],
        );
        let (cert, key) = pki.leaf_files(names, "postgres-server");
        std::fs::copy(cert, data.join("server.crt")).expect("server certificate");
        std::fs::copy(key, data.join("server.key")).expect("server key");
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(
                data.join("server.key"),
                std::fs::Permissions::from_mode(0o600),
            )
            .expect("key mode");
        }
        let mut conf = std::fs::read_to_string(data.join("postgresql.conf")).expect("conf");
        conf.push_str(&format!(
            "\nlisten_addresses = '127.0.0.1'\nport = {port}\nunix_socket_directories = '{}'\nssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\nfsync = off\nmax_connections = 30\nshared_buffers = 16MB\n",
            server.dir.display()
        ));
        std::fs::write(data.join("postgresql.conf"), conf).expect("conf");
        std::fs::write(
            data.join("pg_hba.conf"),
            "local all all trust\nhostssl all all 127.0.0.1/32 trust\n",
        )
        .expect("pg_hba.conf");
        server.own(&data);
        let log = server.dir.join("log");
        server.run(
            "pg_ctl",
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-l".as_ref(),
                log.as_os_str(),
                "-w".as_ref(),
                "-t".as_ref(),
                "60".as_ref(),
                "start".as_ref(),
            ],
        );
        server
    }

    /// `postgres://postgres@HOST:PORT/postgres`, `host` being how the client
    /// names the server (127.0.0.1, or a name resolving to it).
    pub fn url(&self, host: &str) -> String {
        format!("postgres://postgres@{host}:{}/postgres", self.port)
    }

    /// Hand `path` (and what is in it) to the `postgres` user, when running
    /// as root.
    fn own(&self, path: &std::path::Path) {
        if self.as_postgres {
            let ok = std::process::Command::new("chown")
                .arg("-R")
                .arg("postgres:postgres")
                .arg(path)
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "chown -R postgres {}", path.display());
        }
    }

    /// Run one of PostgreSQL's programs, as `postgres` when root; panics
    /// with its output (and the server's log) when it fails.
    fn run(&self, program: &str, args: &[&std::ffi::OsStr]) {
        if let Err(e) = self.try_run(program, args) {
            panic!("{e}");
        }
    }

    fn try_run(&self, program: &str, args: &[&std::ffi::OsStr]) -> Result<(), String> {
        let program = self.bin.join(program);
        let mut cmd = if self.as_postgres {
            let mut c = std::process::Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&program);
            c
        } else {
            std::process::Command::new(&program)
        };
        let out = cmd
            .args(args)
            .current_dir(&self.dir)
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(|e| format!("{}: {e}", program.display()))?;
        if out.status.success() {
            return Ok(());
        }
        Err(format!(
            "{} failed: {}{}\n{}",
            program.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
        ))
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        let data = self.dir.join("data");
        if data.join("postmaster.pid").exists() {
            // never a panic here: it may run while a failed test unwinds
            let _ = self.try_run(
                "pg_ctl",
                &[
                    "-D".as_ref(),
                    data.as_os_str(),
                    "-m".as_ref(),
                    "immediate".as_ref(),
                    "-w".as_ref(),
                    "stop".as_ref(),
                ],
            );
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One request a [`scripted_receiver`] took.
#[derive(Debug, Clone)]
pub struct Hooked {
    pub path: String,
    pub idempotency_key: Option<String>,
    pub body: String,
    /// The status it was answered with (0: never answered).
    pub status: u16,
}

/// A webhook receiver on 127.0.0.1 whose answers follow a script: for each
/// path, the statuses of its first requests in turn (`0`: the request is
/// read, then never answered), 200 after the script runs out. Records
/// every request with its `Idempotency-Key`.
pub async fn scripted_receiver(
    script: &[(&str, &[u16])],
) -> (Server, Arc<std::sync::Mutex<Vec<Hooked>>>) {
    let seen: Arc<std::sync::Mutex<Vec<Hooked>>> = Arc::default();
    let plan: Arc<
        std::sync::Mutex<std::collections::HashMap<String, std::collections::VecDeque<u16>>>,
    > = Arc::new(std::sync::Mutex::new(
        script
            .iter()
            .map(|(p, s)| ((*p).to_string(), s.iter().copied().collect()))
            .collect(),
    ));
    let listener = listen().await;
    let addr = listener.local_addr().expect("addr");
    let log = seen.clone();
    let task = tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let (log, plan) = (log.clone(), plan.clone());
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let (log, plan) = (log.clone(), plan.clone());
                    async move {
                        let path = req.uri().path().to_string();
                        let key = req
                            .headers()
                            .get("idempotency-key")
                            .and_then(|v| v.to_str().ok())
                            .map(str::to_string);
                        let body = req
                            .into_body()
                            .collect()
                            .await
                            .map(|b| String::from_utf8_lossy(&b.to_bytes()).into_owned())
                            .unwrap_or_default();
                        let status = plan
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .get_mut(&path)
                            .and_then(|q| q.pop_front())
                            .unwrap_or(200);
                        log.lock().unwrap_or_else(|e| e.into_inner()).push(Hooked {
                            path,
                            idempotency_key: key,
                            body,
                            status,
                        });
                        if status == 0 {
                            std::future::pending::<()>().await;
                        }
                        let mut r = Response::new(full("ok"));
                        *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
                        Ok::<_, Infallible>(r)
                    }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tcp), svc)
                    .await;
            });
        }
    });
    (Server { addr, task }, seen)
}

/// An SMTP server on 127.0.0.1 (Debian's python3-aiosmtpd): STARTTLS with
/// a certificate of `pki` required, then authentication as `user` /
/// `password`; each message kept in `dir` as `N.eml` and `N.json` (the
/// envelope). Stopped when dropped.
pub struct SmtpServer {
    pub port: u16,
    pub dir: PathBuf,
    child: std::process::Child,
}

impl SmtpServer {
    pub fn start(pki: &Pki, user: &str, password: &str) -> SmtpServer {
        use std::io::BufRead;
        let dir = pki.dir.join(format!("smtp-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("smtp dir");
        let (cert, key) = pki.leaf_files(&["127.0.0.1", "localhost"], "smtp");
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
            l.local_addr().expect("addr").port()
        };
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/smtp.py");
        let mut child = std::process::Command::new("/usr/bin/python3")
            .arg(script)
            .arg(port.to_string())
            .arg(&dir)
            .arg(&cert)
            .arg(&key)
            .arg(user)
            .arg(password)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("python3 -m aiosmtpd: install Debian's python3-aiosmtpd");
        let out = child.stdout.take().expect("stdout");
        let mut line = String::new();
        std::io::BufReader::new(out)
            .read_line(&mut line)
            .expect("ready line");
        assert!(
            line.starts_with("ready"),
            "the SMTP server did not start: {line}"
        );
        SmtpServer { port, dir, child }
    }

    /// The messages received so far: (envelope JSON, raw message), in order.
    pub fn messages(&self) -> Vec<(serde_json::Value, String)> {
        let mut out = Vec::new();
        for n in 1.. {
            let base = self.dir.join(n.to_string());
            let (Ok(env), Ok(raw)) = (
                std::fs::read_to_string(base.with_extension("json")),
                std::fs::read_to_string(base.with_extension("eml")),
            ) else {
                break;
            };
            out.push((serde_json::from_str(&env).unwrap_or_default(), raw));
        }
        out
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An OpenID Connect provider on 127.0.0.1: the certified `oidc-provider`
/// package (npm, pinned in `scripts/oidc/package-lock.json`) on Node.js,
/// with the accounts, clients and clock `settings` give (see
/// `scripts/oidc/provider.mjs`). Its packages are installed with `npm ci`
/// the first time. Stopped when dropped, or by [`OidcProvider::stop`].
pub struct OidcProvider {
    pub issuer: String,
    pub log: PathBuf,
    child: Option<std::process::Child>,
}

impl OidcProvider {
    pub fn start(settings: &serde_json::Value) -> OidcProvider {
        use std::io::BufRead;
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/oidc");
        let node = std::path::Path::new(dir).join("node_modules/oidc-provider/package.json");
        if !node.exists() {
            let out = std::process::Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund", "--prefix", dir])
                .stdin(std::process::Stdio::null())
                .output()
                .expect("npm: install Debian's nodejs and npm (.ci/run does)");
            assert!(
                out.status.success() && node.exists(),
                "npm ci --prefix {dir} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let log = std::env::temp_dir().join(format!(
            "golive-oidc-{}-{}.log",
            std::process::id(),
            COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let mut child = std::process::Command::new("node")
            .arg(std::path::Path::new(dir).join("provider.mjs"))
            .arg(settings.to_string())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::fs::File::create(&log).expect("provider log"))
            .spawn()
            .expect("node: install Debian's nodejs (.ci/run does)");
        let out = child.stdout.take().expect("stdout");
        let mut line = String::new();
        std::io::BufReader::new(out)
            .read_line(&mut line)
            .expect("ready line");
        let issuer = line
            .strip_prefix("ready ")
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|| {
                panic!(
                    "the OpenID Connect provider did not start: {line}\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                )
            });
        OidcProvider {
            issuer,
            log,
            child: Some(child),
        }
    }

    /// The provider's address.
    pub fn addr(&self) -> std::net::SocketAddr {
        self.issuer
            .trim_start_matches("http://")
            .parse()
            .expect("issuer address")
    }

    /// Stop the provider (it is down from now on).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            drop(c.stdin.take());
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

impl Drop for OidcProvider {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A database of its own on the test PostgreSQL (`GOLIVE_TEST_PG`, else
/// `postgres://postgres@127.0.0.1:5432/test`), made with `psql` and dropped
/// when this is: for tests whose workers look at every deployment of the
/// store (replicas, agents), which must see only their own.
pub struct FreshDatabase {
    pub url: String,
    pub name: String,
    base: String,
}

impl FreshDatabase {
    pub fn new(tag: &str) -> FreshDatabase {
        let base = std::env::var("GOLIVE_TEST_PG")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
        let (root, _) = base.rsplit_once('/').expect("a database URL");
        let name = format!(
            "golive_{tag}_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        let o = std::process::Command::new("psql")
            .args([&base, "-qc", &format!("CREATE DATABASE {name}")])
            .output()
            .expect("psql (postgresql-client, which .ci/run installs)");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        FreshDatabase {
            url: format!("{root}/{name}"),
            name,
            base,
        }
    }
}

impl Drop for FreshDatabase {
    fn drop(&mut self) {
        let _ = std::process::Command::new("psql")
            .args([
                &self.base,
                "-qc",
                &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
            ])
            .output();
    }
}
