//! The http probe against real HTTP and HTTPS servers on 127.0.0.1, and
//! against curl on the same targets.

mod common;

use common::{observe, probe, s, tool};
use golive_testkit::{Pki, full, http, https, routes};
use http::Response;
use std::sync::Arc;
use std::time::Duration;

const T: Duration = Duration::from_secs(5);

#[tokio::test]
async fn status_headers_json_and_timing_phases() {
    let server = http(routes(&[(
        "/health",
        200,
        r#"{"status":"healthy","version":"v1.1.0"}"#,
    )]))
    .await;
    let url = format!("http://127.0.0.1:{}/health", server.addr.port());
    let (obs, _) = observe(probe("http", &[("target", s(&url))]).as_ref(), T).await;
    let obs = obs.expect("observed");
    assert_eq!(obs["status"], 200);
    assert_eq!(obs["json"]["status"], "healthy");
    assert_eq!(obs["headers"]["content-type"], "application/json");
    assert_eq!(obs["http_version"], "1.1");
    for phase in ["dns_ms", "connect_ms", "first_byte_ms", "total_ms"] {
        assert!(obs["timing"][phase].as_f64().is_some(), "{phase}");
    }
    assert!(obs["timing"]["tls_ms"].is_null());
    let (missing, _) = observe(
        probe("http", &[("target", s(&url.replace("health", "nope")))]).as_ref(),
        T,
    )
    .await;
    assert_eq!(missing.expect("observed")["status"], 404);
}

#[tokio::test]
async fn https_with_a_test_ca_hsts_and_http2() {
    let pki = Pki::new();
    let (chain, key) = pki.leaf(&["localhost"], -1, 90);
    let handler = Arc::new(|_: &http::Request<hyper::body::Incoming>| {
        Response::builder()
            .header(
                "strict-transport-security",
                "max-age=31536000; includeSubDomains",
            )
            .body(full("ok"))
            .expect("response")
    });
    let server = https(chain, key, handler).await;
    let url = format!("https://localhost:{}/", server.addr.port());
    let ca = pki.ca_file.to_string_lossy().into_owned();
    let (obs, _) = observe(
        probe("http", &[("target", s(&url)), ("ca_file", s(&ca))]).as_ref(),
        T,
    )
    .await;
    let obs = obs.expect("observed");
    assert_eq!(obs["status"], 200);
    assert_eq!(obs["http_version"], "2");
    assert_eq!(obs["hsts"]["max_age"], 31536000);
    assert_eq!(obs["hsts"]["include_subdomains"], true);
    assert!(obs["timing"]["tls_ms"].as_f64().is_some());
    // without the CA the certificate is not trusted: could not observe
    let (err, _) = observe(probe("http", &[("target", s(&url))]).as_ref(), T).await;
    let err = err.expect_err("untrusted");
    assert!(err.to_string().contains("tls handshake"), "{err}");
    // insecure skips verification
    let (obs, _) = observe(
        probe(
            "http",
            &[
                ("target", s(&url)),
                ("insecure", toml::Value::Boolean(true)),
            ],
        )
        .as_ref(),
        T,
    )
    .await;
    assert_eq!(obs.expect("observed")["status"], 200);
}

#[tokio::test]
async fn redirects_are_reported_and_followed_on_request() {
    let target = http(routes(&[("/", 200, "secure")])).await;
    let to = format!("http://127.0.0.1:{}/", target.addr.port());
    let redirect = http(Arc::new(move |_: &http::Request<hyper::body::Incoming>| {
        Response::builder()
            .status(301)
            .header("location", to.clone())
            .body(full(""))
            .expect("response")
    }))
    .await;
    let url = format!("http://127.0.0.1:{}/", redirect.addr.port());
    let (obs, _) = observe(probe("http", &[("target", s(&url))]).as_ref(), T).await;
    let obs = obs.expect("observed");
    assert_eq!(obs["status"], 301);
    assert!(
        obs["headers"]["location"]
            .as_str()
            .is_some_and(|l| l.contains(&target.addr.port().to_string()))
    );
    let (obs, _) = observe(
        probe(
            "http",
            &[
                ("target", s(&url)),
                ("follow_redirects", toml::Value::Boolean(true)),
            ],
        )
        .as_ref(),
        T,
    )
    .await;
    let obs = obs.expect("observed");
    assert_eq!(obs["status"], 200);
    assert_eq!(obs["body"], "secure");
    assert_eq!(obs["redirects"][0]["status"], 301);
}

/// Status and headers as `curl -sI` reports them, on the same server.
#[tokio::test]
async fn agrees_with_curl_on_status_and_headers() {
    let server = http(Arc::new(|_: &http::Request<hyper::body::Incoming>| {
        Response::builder()
            .status(418)
            .header("x-version", "v1.1.0")
            .header("cache-control", "no-store")
            .body(full("teapot"))
            .expect("response")
    }))
    .await;
    let url = format!("http://127.0.0.1:{}/", server.addr.port());
    let curl = tokio::task::spawn_blocking(move || tool("curl", &["-sI", &url]))
        .await
        .expect("curl");
    let url = format!("http://127.0.0.1:{}/", server.addr.port());
    let (obs, _) = observe(
        probe("http", &[("target", s(&url)), ("method", s("HEAD"))]).as_ref(),
        T,
    )
    .await;
    let obs = obs.expect("observed");
    let status_line = curl.lines().next().unwrap_or("");
    assert!(
        status_line.contains(&obs["status"].to_string()),
        "curl: {status_line}"
    );
    for line in curl.lines().skip(1).filter(|l| l.contains(':')) {
        let (k, v) = line.split_once(':').expect("header");
        let k = k.trim().to_ascii_lowercase();
        assert_eq!(obs["headers"][&k].as_str(), Some(v.trim()), "header {k}");
    }
}
