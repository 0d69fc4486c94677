//! A stand-in for the reference checklist's service, for benchmarks: HTTPS on
//! 127.0.0.1 with a CA generated at start, answering the smoke tests'
//! endpoints. Prints `PORT CA_FILE` and serves until killed.
//!
//!     cargo run --release -p golive-testkit --bin standin

use golive_testkit::{Pki, full};
use http::{Request, Response};
use hyper::body::Incoming;
use std::sync::Arc;

const TOKEN: &str = "bench-token";

#[tokio::main]
async fn main() {
    let pki = Pki::new();
    let (chain, key) = pki.leaf(&["localhost"], -1, 90);
    let handler = Arc::new(|req: &Request<Incoming>| {
        let authed = req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            == Some(&format!("Bearer {TOKEN}"));
        let (status, body) = match req.uri().path() {
            "/" => (200, "<h1>shop</h1>"),
            "/health" => (200, r#"{"status":"healthy","version":"v1.1.0"}"#),
            "/ready" => (
                200,
                r#"{"status":"ready","dependencies":{"database":"ok","filesystem":"ok"}}"#,
            ),
            "/live" => (200, "ok"),
            "/version" => (
                200,
                r#"{"version":"v1.1.0","build":"412","commit":"3f2a9c1"}"#,
            ),
            "/api/v1/test" if authed => (200, r#"{"ok":true}"#),
            "/api/v1/db-health" if authed => (200, r#"{"database":"connected","latency_ms":3}"#),
            _ => (404, "<h1>Not found</h1>"),
        };
        Response::builder()
            .status(status)
            .header("strict-transport-security", "max-age=31536000")
            .header(
                "content-type",
                if body.starts_with('{') {
                    "application/json"
                } else {
                    "text/html"
                },
            )
            .body(full(body))
            .expect("response")
    });
    let server = golive_testkit::https(chain, key, handler).await;
    println!("{} {}", server.addr.port(), pki.ca_file.display());
    let _keep = (server, pki);
    std::future::pending::<()>().await;
}
