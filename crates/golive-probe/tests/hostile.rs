//! Hostile targets: every check ends within its timeout plus one second, with
//! a message naming the cause, and never buffers an unbounded body.

mod common;

use common::{observe, probe, s};
use golive_probe::ProbeError;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(2);

fn within(took: Duration) {
    assert!(took <= TIMEOUT + Duration::from_secs(1), "took {took:?}");
}

#[tokio::test]
async fn server_that_accepts_and_never_answers() {
    let server = golive_testkit::silent().await;
    let url = format!("http://127.0.0.1:{}/", server.addr.port());
    let (r, took) = observe(probe("http", &[("target", s(&url))]).as_ref(), TIMEOUT).await;
    within(took);
    assert_eq!(r.expect_err("no answer"), ProbeError::Timeout(TIMEOUT));
    let target = format!("127.0.0.1:{}", server.addr.port());
    let (r, took) = observe(probe("tls", &[("target", s(&target))]).as_ref(), TIMEOUT).await;
    within(took);
    assert!(matches!(r, Err(ProbeError::Timeout(_))), "{r:?}");
}

#[tokio::test]
async fn server_that_drips_one_byte_a_second() {
    let server = golive_testkit::drip().await;
    let url = format!("http://127.0.0.1:{}/", server.addr.port());
    let (r, took) = observe(probe("http", &[("target", s(&url))]).as_ref(), TIMEOUT).await;
    within(took);
    let e = r.expect_err("never finishes");
    assert!(e.to_string().contains("timed out after 2s"), "{e}");
}

#[tokio::test]
async fn a_one_gigabyte_body_is_cut_at_max_body() {
    let server = golive_testkit::huge(1 << 30).await;
    let url = format!("http://127.0.0.1:{}/", server.addr.port());
    let p = probe(
        "http",
        &[
            ("target", s(&url)),
            ("max_body", toml::Value::Integer(64 * 1024)),
        ],
    );
    let (r, took) = observe(p.as_ref(), TIMEOUT).await;
    within(took);
    let obs = r.expect("observed the head of the body");
    assert_eq!(obs["status"], 200);
    assert_eq!(obs["body_bytes"], 64 * 1024);
    assert_eq!(obs["body_truncated"], true);
}

#[tokio::test]
async fn reset_in_the_middle_of_a_response() {
    let server = golive_testkit::reset_midway().await;
    let url = format!("http://127.0.0.1:{}/", server.addr.port());
    let (r, took) = observe(probe("http", &[("target", s(&url))]).as_ref(), TIMEOUT).await;
    within(took);
    let e = r.expect_err("reset");
    let msg = e.to_string();
    assert!(
        msg.contains("reading the body") || msg.contains("reset") || msg.contains("closed"),
        "{msg}"
    );
}

#[tokio::test]
async fn redirect_loop() {
    use std::sync::Arc;
    let server = golive_testkit::http(Arc::new(|req: &http::Request<hyper::body::Incoming>| {
        let next = if req.uri().path() == "/a" { "/b" } else { "/a" };
        http::Response::builder()
            .status(302)
            .header("location", next)
            .body(golive_testkit::full(""))
            .expect("response")
    }))
    .await;
    let url = format!("http://127.0.0.1:{}/a", server.addr.port());
    let p = probe(
        "http",
        &[
            ("target", s(&url)),
            ("follow_redirects", toml::Value::Boolean(true)),
        ],
    );
    let (r, took) = observe(p.as_ref(), TIMEOUT).await;
    within(took);
    let e = r.expect_err("loop");
    assert!(e.to_string().contains("redirect loop"), "{e}");
}

/// The name is asked of a DNS server on 127.0.0.1 (never the machine's own
/// resolver: tests touch loopback only), which answers NXDOMAIN.
#[tokio::test]
async fn unknown_host() {
    let dns = golive_testkit::dns().await;
    let ns = dns.addr.to_string();
    for kind in ["http", "tls", "tcp"] {
        let target = match kind {
            "http" => "http://nope.example.test/".to_string(),
            _ => "nope.example.test:443".to_string(),
        };
        let p = probe(kind, &[("target", s(&target)), ("nameserver", s(&ns))]);
        let (r, took) = observe(p.as_ref(), TIMEOUT).await;
        within(took);
        match r {
            Err(ProbeError::Resolve(m)) => {
                assert!(
                    m.contains("nope.example.test") && m.contains("NXDOMAIN"),
                    "{kind}: {m}"
                )
            }
            other => panic!("{kind}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn refused_connection() {
    // bound, not listening: refused, and no other test can take the port
    let held = tokio::net::TcpSocket::new_v4().expect("socket");
    held.bind("127.0.0.1:0".parse().expect("addr"))
        .expect("bind");
    let port = held.local_addr().expect("addr").port();
    let url = format!("http://127.0.0.1:{port}/");
    let (r, took) = observe(probe("http", &[("target", s(&url))]).as_ref(), TIMEOUT).await;
    within(took);
    assert!(matches!(r, Err(ProbeError::Refused(_))), "{r:?}");
}
