//! A real `golive serve` on 127.0.0.1:0 over a real store, and a small
//! HTTP/1.1 client to talk to it.
#![allow(dead_code)]

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

pub const MINI: &str = include_str!("../fixtures/mini.md");

/// The test PostgreSQL that `.ci/run` starts.
pub fn postgres() -> String {
    std::env::var("GOLIVE_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

pub fn folder(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("golive-server-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    dir
}

pub fn sqlite(tag: &str) -> String {
    format!("sqlite://{}", folder(tag).join("golive.db").display())
}

/// A name no other test (nor an earlier run on the shared PostgreSQL) has.
pub fn unique(name: &str) -> String {
    format!("{name} {}", golive_server::auth::random_hex(3))
}

/// What the server logged, for the tests that look for a tracking id.
pub fn log() -> Arc<Mutex<Vec<u8>>> {
    static LOG: std::sync::OnceLock<Arc<Mutex<Vec<u8>>>> = std::sync::OnceLock::new();
    LOG.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let w = Writer(buf.clone());
        let _ = tracing_subscriber::fmt()
            .json()
            .with_writer(move || w.clone())
            .try_init();
        buf
    })
    .clone()
}

#[derive(Clone)]
struct Writer(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Writer {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

pub struct Rig {
    pub addr: SocketAddr,
    pub location: String,
    pub store: golive_store::Store,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    pub done: Option<tokio::task::JoinHandle<Result<(), String>>>,
}

impl Rig {
    pub async fn start(location: &str) -> Rig {
        Rig::with(golive_server::Config::new(
            "127.0.0.1:0".parse().unwrap(),
            location,
        ))
        .await
    }

    pub async fn with(mut cfg: golive_server::Config) -> Rig {
        log();
        // quicker than the default, unless the test chose its own
        if cfg.poll == std::time::Duration::from_secs(1) {
            cfg.poll = std::time::Duration::from_millis(200);
        }
        let location = cfg.store.clone();
        let server = golive_server::Server::bind(cfg).await.expect("bind");
        let addr = server.local_addr();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let done = tokio::spawn(server.run(async move {
            let _ = rx.await;
        }));
        let store = golive_deploy::open_store(&location).await.expect("store");
        Rig {
            addr,
            location,
            store,
            stop: Some(tx),
            done: Some(done),
        }
    }

    /// Shut the server down and wait until it has.
    pub async fn stop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(d) = self.done.take() {
            d.await.expect("join").expect("run");
        }
    }

    /// A person with `roles`, and their token.
    pub async fn person(&self, name: &str, roles: &[&str]) -> String {
        let roles: Vec<String> = roles.iter().map(|r| r.to_string()).collect();
        golive_server::auth::add_person(&self.store, name, &roles, None)
            .await
            .expect("person")
            .0
    }

    /// The mini runbook registered, and a deployment of it started by `token`.
    pub async fn deployment(&self, token: &str) -> String {
        self.deployment_of(token, MINI).await
    }

    pub async fn deployment_of(&self, token: &str, text: &str) -> String {
        let r = self
            .json(
                "POST",
                "/api/v1/runbooks",
                Some(token),
                &serde_json::json!({ "path": "mini.md", "text": text }),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
        let sha = r.json()["sha256"].as_str().unwrap().to_string();
        let r = self
            .json(
                "POST",
                "/api/v1/deployments",
                Some(token),
                &serde_json::json!({ "runbook": sha }),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
        r.json()["id"].as_str().unwrap().to_string()
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Answer {
        self.call("GET", path, &auth(token), Bytes::new()).await
    }

    pub async fn json(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: &serde_json::Value,
    ) -> Answer {
        let mut h = auth(token);
        h.push(("content-type".into(), "application/json".into()));
        self.call(method, path, &h, Bytes::from(body.to_string()))
            .await
    }

    pub async fn call(
        &self,
        method: &str,
        path: &str,
        headers: &[(String, String)],
        body: Bytes,
    ) -> Answer {
        call(self.addr, method, path, headers, body).await
    }
}

pub fn auth(token: Option<&str>) -> Vec<(String, String)> {
    token
        .map(|t| vec![("authorization".to_string(), format!("Bearer {t}"))])
        .unwrap_or_default()
}

#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: String,
}

impl Answer {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }
}

/// One request on a new connection.
pub async fn call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(String, String)],
    body: Bytes,
) -> Answer {
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (mut send, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .expect("handshake");
    tokio::spawn(conn);
    let mut req = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr.to_string());
    for (k, v) in headers {
        req = req.header(k.as_str(), v.as_str());
    }
    let r = send
        .send_request(req.body(Full::new(body)).unwrap())
        .await
        .expect("request");
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let bytes = r
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    Answer {
        status,
        headers,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

/// An event stream opened with `headers`: its body, read as it comes.
pub struct Stream {
    body: hyper::body::Incoming,
    buf: String,
    pub status: u16,
}

impl Stream {
    pub async fn open(addr: SocketAddr, path: &str, headers: &[(String, String)]) -> Stream {
        let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let (mut send, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .expect("handshake");
        tokio::spawn(conn);
        let mut req = hyper::Request::builder()
            .uri(path)
            .header("host", addr.to_string());
        for (k, v) in headers {
            req = req.header(k.as_str(), v.as_str());
        }
        let r = send
            .send_request(req.body(Full::new(Bytes::new())).unwrap())
            .await
            .expect("request");
        Stream {
            status: r.status().as_u16(),
            body: r.into_body(),
            buf: String::new(),
        }
    }

    /// The next event's (id, data), or None when the stream ended.
    pub async fn next(&mut self) -> Option<(i64, serde_json::Value)> {
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let mut id = None;
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("id:") {
                        id = v.trim().parse().ok();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim_start());
                    }
                }
                if let Some(id) = id {
                    return Some((id, serde_json::from_str(&data).expect("event data")));
                }
                continue; // a keep-alive comment
            }
            match self.body.frame().await {
                Some(Ok(f)) => {
                    if let Ok(d) = f.into_data() {
                        self.buf.push_str(&String::from_utf8_lossy(&d));
                    }
                }
                _ => return None,
            }
        }
    }
}
