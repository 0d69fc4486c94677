//! `golive sample-service`'s contract, endpoint by endpoint, against the
//! running binary on 127.0.0.1, observed with golive's own probes.

use serde_json::{Value, json};
use std::io::BufRead;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

struct Sample {
    child: Child,
    https: u16,
    http: u16,
    ca: String,
    admin: String,
    dir: PathBuf,
}

impl Drop for Sample {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn start(tag: &str, extra: &[&str]) -> Sample {
    let dir = std::env::temp_dir().join(format!("golive-sample-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut child = Command::new(env!("CARGO_BIN_EXE_golive"))
        .args([
            "sample-service",
            "--listen",
            "127.0.0.1:0",
            "--http-listen",
            "127.0.0.1:0",
            "--dir",
        ])
        .arg(&dir)
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("golive sample-service starts");
    let out = child.stdout.take().expect("stdout");
    // read on a thread that keeps draining: the service may print more
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let (mut https, mut http, mut ca) = (0, 0, String::new());
    while let Ok(line) = rx.recv_timeout(std::time::Duration::from_secs(30)) {
        let port = |l: &str, scheme: &str| -> Option<u16> {
            l.trim()
                .strip_prefix(&format!("{scheme}://localhost:"))?
                .split('/')
                .next()?
                .parse()
                .ok()
        };
        if let Some(p) = port(&line, "https") {
            https = p;
            ca = line
                .split("(CA: ")
                .nth(1)
                .map(|c| c.trim_end_matches(')').to_string())
                .unwrap_or_default();
        }
        if let Some(p) = port(&line, "http") {
            http = p;
        }
        if line.contains("admin API token in") {
            break;
        }
    }
    let admin = std::fs::read_to_string(dir.join("admin-token")).expect("admin token file");
    Sample {
        child,
        https,
        http,
        ca,
        admin,
        dir,
    }
}

impl Sample {
    fn url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.https)
    }

    async fn probe(&self, kind: &str, options: Value) -> Value {
        let mut t: toml::Table = toml::from_str(&format!("ca_file = '{}'", self.ca)).expect("ca");
        if let Value::Object(o) = options {
            for (k, v) in o {
                let v: toml::Value =
                    serde_json::from_value(v).unwrap_or_else(|_| panic!("option {k}"));
                t.insert(k, v);
            }
        }
        if kind != "http" && kind != "ratelimit" && kind != "tls" {
            t.remove("ca_file");
        }
        golive_probe::kind(kind)
            .expect("kind")
            .probe(&t)
            .expect("spec")
            .observe()
            .await
            .expect("observed")
    }

    async fn get(&self, path: &str) -> Value {
        self.probe("http", json!({ "target": self.url(path) }))
            .await
    }

    async fn call(&self, method: &str, path: &str, token: &str, body: Value) -> Value {
        self.probe(
            "http",
            json!({
                "target": self.url(path),
                "method": method,
                "body": body.to_string(),
                "headers": { "authorization": format!("Bearer {token}"), "content-type": "application/json" },
            }),
        )
        .await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_health_contract_tls_and_redirect() {
    let s = start("health", &[]);
    let r = s
        .probe(
            "http",
            json!({ "target": format!("http://127.0.0.1:{}/health?x=1", s.http) }),
        )
        .await;
    assert_eq!(r["status"], 301);
    assert_eq!(
        r["headers"]["location"],
        format!("https://127.0.0.1:{}/health?x=1", s.https)
    );
    let tls = s
        .probe(
            "tls",
            json!({ "target": format!("localhost:{}", s.https), "legacy": true }),
        )
        .await;
    assert_eq!(tls["cert"]["chain_valid"], true, "{tls}");
    assert_eq!(tls["cert"]["hostname_match"], true);
    let sans = tls["cert"]["sans"].to_string();
    assert!(
        sans.contains("localhost") && sans.contains("127.0.0.1"),
        "{sans}"
    );
    let days = tls["cert"]["days_left"].as_i64().expect("days");
    assert!((89..=90).contains(&days), "a 90-day certificate: {days}");
    assert_eq!(tls["tls10"], false);
    assert_eq!(tls["tls11"], false);
    let root = s.get("/").await;
    assert_eq!(root["status"], 200);
    assert_eq!(root["hsts"]["max_age"], 31536000);
    let health = s.get("/health").await;
    assert_eq!(
        health["json"],
        json!({ "status": "healthy", "version": "v1.0.0" })
    );
    let ready = s.get("/ready").await;
    assert_eq!(
        ready["json"],
        json!({ "status": "ready", "dependencies": { "database": "ok", "filesystem": "ok" } })
    );
    assert_eq!(s.get("/live").await["status"], 200);
    let version = s.get("/version").await["json"].clone();
    assert_eq!(version["version"], "v1.0.0");
    assert!(version["build"].is_string() && version["commit"].is_string());
    let missing = s.get("/nonexistent").await;
    assert_eq!(missing["status"], 404);
    assert!(
        missing["body"]
            .as_str()
            .is_some_and(|b| b.contains("home page"))
    );
    let err = s.get("/error").await;
    assert_eq!(err["status"], 500);
    assert!(err["json"]["tracking_id"].is_string());
    let body = err["body"].as_str().unwrap_or("");
    for inside in ["panic", "src/", ".rs", "thread", "stack", "sample"] {
        assert!(!body.contains(inside), "{inside} in {body}");
    }
    let metrics = s.get("/metrics").await["body"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(
        metrics.contains("http_requests_total{code=\"200\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("http_requests_total{code=\"404\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("http_request_duration_seconds_bucket{le=\"+Inf\"}"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_api_test_alert_and_rate_limit() {
    let (hooks, got) = golive_testkit::receiver(200).await;
    let s = start("api", &["--rate-limit", "20"]);
    assert_eq!(s.get("/api/v1/test").await["status"], 401);
    let bad = s
        .call(
            "POST",
            "/login",
            "",
            json!({ "username": "demo", "password": "nope" }),
        )
        .await;
    assert_eq!(bad["status"], 401);
    let login = s
        .call(
            "POST",
            "/login",
            "",
            json!({ "username": "demo", "password": "demo-password" }),
        )
        .await;
    let token = login["json"]["token"].as_str().expect("token").to_string();
    let test = s.call("GET", "/api/v1/test", &token, Value::Null).await;
    assert_eq!(test["status"], 200);
    let db = s
        .call("GET", "/api/v1/db-health", &token, Value::Null)
        .await;
    assert_eq!(db["json"]["database"], "connected");
    assert!(db["json"]["latency_ms"].as_f64().is_some());
    // no webhook yet, then one
    assert_eq!(
        s.call("POST", "/api/v1/test-alert", &token, Value::Null)
            .await["status"],
        409
    );
    let url = format!("http://127.0.0.1:{}/hook", hooks.addr.port());
    s.call("POST", "/admin/webhook", &s.admin, json!({ "url": url }))
        .await;
    let alert = s
        .call("POST", "/api/v1/test-alert", &token, Value::Null)
        .await;
    assert_eq!(alert["status"], 202);
    assert_eq!(alert["json"]["delivered"], true);
    assert_eq!(got.lock().unwrap_or_else(|e| e.into_inner()).len(), 1);
    // a client is an address and its token: this token made 4 API calls so
    // far (the anonymous one counts apart), so the burst finds the 429 after
    // the other 16 of 20
    let limit = s
        .probe(
            "ratelimit",
            json!({ "target": s.url("/api/v1/test"), "headers": { "authorization": format!("Bearer {token}") } }),
        )
        .await;
    assert_eq!(limit["limited"], true, "{limit}");
    assert_eq!(limit["allowed"], 16, "{limit}");
    assert_eq!(limit["retry_after"]["valid"], true);
    assert_eq!(limit["retry_after"]["sane"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_switches_versions_and_injects_faults() {
    let s = start("admin", &[]);
    assert_eq!(
        s.call(
            "POST",
            "/admin/version",
            "wrong",
            json!({ "version": "v9" })
        )
        .await["status"],
        401
    );
    let v = s
        .call(
            "POST",
            "/admin/version",
            &s.admin,
            json!({ "version": "v1.1.0" }),
        )
        .await;
    assert_eq!(v["json"]["previous"], "v1.0.0");
    assert_eq!(s.get("/health").await["json"]["version"], "v1.1.0");
    s.call(
        "POST",
        "/admin/faults",
        &s.admin,
        json!({ "failing_health": true }),
    )
    .await;
    assert_eq!(s.get("/health").await["status"], 503);
    s.call(
        "POST",
        "/admin/faults",
        &s.admin,
        json!({ "error_rate": 1.0 }),
    )
    .await;
    assert_eq!(s.get("/").await["status"], 500);
    s.call(
        "POST",
        "/admin/faults",
        &s.admin,
        json!({ "latency_ms": 150 }),
    )
    .await;
    let slow = s.get("/").await;
    assert_eq!(slow["status"], 200);
    assert!(slow["timing"]["total_ms"].as_f64() >= Some(150.0), "{slow}");
    s.call("POST", "/admin/faults", &s.admin, json!({})).await;
    s.call(
        "POST",
        "/admin/maintenance",
        &s.admin,
        json!({ "on": true }),
    )
    .await;
    let m = s.get("/").await;
    assert_eq!(m["status"], 503);
    assert_eq!(m["headers"]["retry-after"], "60");
    assert_eq!(
        s.get("/live").await["status"],
        200,
        "liveness is not maintenance"
    );
    s.call(
        "POST",
        "/admin/maintenance",
        &s.admin,
        json!({ "on": false }),
    )
    .await;
    std::fs::write(s.dir.join("data/orders.db"), "42 orders").expect("data");
    let snap = s
        .call("POST", "/admin/snapshot", &s.admin, Value::Null)
        .await;
    let name = snap["json"]["snapshot"]
        .as_str()
        .expect("snapshot")
        .to_string();
    std::fs::write(s.dir.join("data/orders.db"), "broken").expect("data");
    let r = s
        .call(
            "POST",
            "/admin/restore",
            &s.admin,
            json!({ "snapshot": name }),
        )
        .await;
    assert_eq!(r["status"], 200, "{r}");
    assert_eq!(
        std::fs::read_to_string(s.dir.join("data/orders.db")).expect("data"),
        "42 orders"
    );
    let mode = std::fs::metadata(s.dir.join("admin-token"))
        .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o777)
        .expect("token file");
    assert_eq!(mode, 0o600);
}

/// A figure of `/proc/PID/status` in KiB (VmRSS: now; VmHWM: the peak).
fn memory_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("{field} in {status}"))
}

/// A body of `left` 64 KiB frames of spaces that announces no length: over
/// HTTP/1.1 it goes chunked, over HTTP/2 as frames.
struct Spaces {
    left: usize,
}

impl hyper::body::Body for Spaces {
    type Data = bytes::Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<bytes::Bytes>, Self::Error>>> {
        static FRAME: [u8; 1 << 16] = [b' '; 1 << 16];
        if self.left == 0 {
            return std::task::Poll::Ready(None);
        }
        self.left -= 1;
        std::task::Poll::Ready(Some(Ok(hyper::body::Frame::data(
            bytes::Bytes::from_static(&FRAME),
        ))))
    }
}

impl Sample {
    /// POST `mib` MiB of a streamed body over `alpn` (`http/1.1` or `h2`)
    /// with hyper's client, which takes an answer that comes before the
    /// body is all sent; the status it got.
    async fn stream(&self, path: &str, token: &str, mib: usize, alpn: &str) -> u16 {
        use rustls_pki_types::pem::PemObject;
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_pki_types::CertificateDer::pem_file_iter(&self.ca).expect("ca") {
            roots.add(cert.expect("ca cert")).expect("ca added");
        }
        let mut tls = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("tls versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
        tls.alpn_protocols = vec![alpn.as_bytes().to_vec()];
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", self.https))
            .await
            .expect("connect");
        let name = rustls_pki_types::ServerName::try_from("localhost").expect("name");
        let tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(tls))
            .connect(name, tcp)
            .await
            .expect("tls");
        if alpn == "h2" {
            let io = hyper_util::rt::TokioIo::new(tls);
            let (mut send, conn) =
                hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), io)
                    .await
                    .expect("h2 handshake");
            tokio::spawn(conn);
            let req = http::Request::post(self.url(path))
                .header("content-type", "application/json")
                .header("authorization", format!("Bearer {token}"))
                .body(Spaces { left: mib * 16 })
                .expect("request");
            return send
                .send_request(req)
                .await
                .expect("an answer")
                .status()
                .as_u16();
        }
        // HTTP/1.1 chunked, written by hand: the chunks go out while the
        // answer is read, as a browser does
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut rd, mut wr) = tokio::io::split(tls);
        let head = format!(
            "POST {path} HTTP/1.1\r\nhost: localhost:{}\r\ncontent-type: application/json\r\nauthorization: Bearer {token}\r\ntransfer-encoding: chunked\r\n\r\n",
            self.https
        );
        let writer = tokio::spawn(async move {
            let chunk = [b' '; 1 << 16];
            wr.write_all(head.as_bytes()).await?;
            for _ in 0..mib * 16 {
                wr.write_all(b"10000\r\n").await?;
                wr.write_all(&chunk).await?;
                wr.write_all(b"\r\n").await?;
            }
            wr.write_all(b"0\r\n\r\n").await
        });
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        let status = loop {
            // the first answer that is not a 1xx
            let text = String::from_utf8_lossy(&got).into_owned();
            let mut heads = text.split("\r\n\r\n").collect::<Vec<_>>();
            heads.pop();
            let code = heads.iter().find_map(|h| {
                let code: u16 = h.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()?;
                (code >= 200).then_some(code)
            });
            if let Some(code) = code {
                break code;
            }
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => panic!("no answer: {text}"),
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        };
        writer.abort();
        status
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunked_upload_is_capped_not_kept_in_memory() {
    let s = start("cap", &[]);
    let pid = s.child.id();
    // the service at rest, after one request of each kind
    assert_eq!(s.get("/health").await["status"], 200);
    let (rss, peak) = (memory_kib(pid, "VmRSS"), memory_kib(pid, "VmHWM"));
    assert_eq!(
        s.stream("/login", "", 32, "http/1.1").await,
        413,
        "login, chunked"
    );
    assert_eq!(
        s.stream("/admin/version", &s.admin, 32, "http/1.1").await,
        413,
        "admin API, chunked"
    );
    assert_eq!(
        s.stream("/login", "", 32, "h2").await,
        413,
        "login, HTTP/2 without a length"
    );
    assert_eq!(
        s.stream("/hooks/alert", "", 32, "http/1.1").await,
        413,
        "the alert receiver"
    );
    let (rss_after, peak_after) = (memory_kib(pid, "VmRSS"), memory_kib(pid, "VmHWM"));
    assert!(
        rss_after < rss + 16 * 1024 && peak_after < peak + 16 * 1024,
        "128 MiB sent: VmRSS {rss} -> {rss_after} KiB, VmHWM {peak} -> {peak_after} KiB"
    );
    // a body within the cap is still read, and the service still answers
    let login = s
        .call(
            "POST",
            "/login",
            "",
            json!({ "username": "demo", "password": "demo-password" }),
        )
        .await;
    assert_eq!(login["status"], 200, "{login}");
    // a length announced past the cap is refused before any of it is read
    let big = s
        .call("POST", "/login", "", Value::String("x".repeat(100 * 1024)))
        .await;
    assert_eq!(big["status"], 413, "{big}");
    assert!(
        big["body"].as_str().unwrap_or("").contains("65536"),
        "{big}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_refuses_a_snapshot_name_that_leaves_the_snapshot_folder() {
    let s = start("restore", &[]);
    std::fs::write(s.dir.join("data/orders.db"), "42 orders").expect("data");
    // a folder next to the snapshots that `../x` would name
    std::fs::create_dir_all(s.dir.join("x")).expect("x");
    std::fs::write(s.dir.join("x/planted.db"), "planted").expect("planted");
    std::fs::create_dir_all(s.dir.join("snapshots/a/b")).expect("a/b");
    std::fs::create_dir_all(s.dir.join("snapshots/.hidden")).expect(".hidden");
    for name in ["..", "../x", "a/b", "a\\b", ".hidden", "", "x\u{0}"] {
        for action in ["/admin/restore", "/admin/snapshot"] {
            let r = s
                .call("POST", action, &s.admin, json!({ "snapshot": name }))
                .await;
            assert_eq!(r["status"], 422, "{action} {name:?}: {r}");
            let error = r["json"]["error"].as_str().unwrap_or("");
            assert!(error.starts_with("snapshot: "), "names the field: {r}");
            assert_eq!(r["json"]["field"], "snapshot", "{r}");
        }
    }
    // nothing was read from outside the snapshots nor written anywhere
    let mut data: Vec<_> = std::fs::read_dir(s.dir.join("data"))
        .expect("data")
        .map(|e| e.expect("entry").file_name())
        .collect();
    data.sort();
    assert_eq!(data, ["orders.db"]);
    assert_eq!(
        std::fs::read_to_string(s.dir.join("data/orders.db")).expect("data"),
        "42 orders"
    );
    let mut snapshots: Vec<_> = std::fs::read_dir(s.dir.join("snapshots"))
        .expect("snapshots")
        .map(|e| e.expect("entry").file_name())
        .collect();
    snapshots.sort();
    assert_eq!(snapshots, [".hidden", "a"]);
    assert!(!s.dir.join("x/orders.db").exists());
    // a name of its own is taken, and put back
    let snap = s
        .call(
            "POST",
            "/admin/snapshot",
            &s.admin,
            json!({ "snapshot": "before-v1.1.0" }),
        )
        .await;
    assert_eq!(snap["json"]["snapshot"], "before-v1.1.0", "{snap}");
    std::fs::write(s.dir.join("data/orders.db"), "broken").expect("data");
    let r = s
        .call(
            "POST",
            "/admin/restore",
            &s.admin,
            json!({ "snapshot": "before-v1.1.0" }),
        )
        .await;
    assert_eq!(r["status"], 200, "{r}");
    assert_eq!(
        std::fs::read_to_string(s.dir.join("data/orders.db")).expect("data"),
        "42 orders"
    );
}

/// One plain HTTP/1.1 request written by hand; the answer's Location.
fn redirect_of(port: u16, request: &str) -> String {
    use std::io::{Read, Write};
    let mut tcp = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    tcp.write_all(request.as_bytes()).expect("send");
    let mut answer = String::new();
    let _ = tcp.read_to_string(&mut answer);
    assert!(
        answer.starts_with("HTTP/1.") && answer[8..].starts_with(" 301"),
        "{answer}"
    );
    answer
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("location")
                .then(|| value.trim().to_string())
        })
        .unwrap_or_else(|| panic!("a Location: {answer}"))
}

#[test]
fn the_http_redirect_ignores_the_host_header() {
    let s = start("host", &[]);
    let own = format!("https://127.0.0.1:{}", s.https);
    for (request, path) in [
        (
            "GET /health?x=1 HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n",
            "/health?x=1",
        ),
        (
            "GET /login HTTP/1.1\r\nHost: evil.example:8443\r\nConnection: close\r\n\r\n",
            "/login",
        ),
        (
            "GET http://evil.example/x HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n",
            "/x",
        ),
        (
            "GET //evil.example/ HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n",
            "//evil.example/",
        ),
        ("GET / HTTP/1.0\r\n\r\n", "/"),
    ] {
        assert_eq!(
            redirect_of(s.http, request),
            format!("{own}{path}"),
            "{request:?}"
        );
    }
}
