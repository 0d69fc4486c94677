//! The dns probe against an authoritative server on 127.0.0.1, compared
//! record by record with `dig @127.0.0.1 -p PORT`.

mod common;

use common::{observe, probe, s, tool};
use std::time::Duration;

const T: Duration = Duration::from_secs(5);

async fn ask(port: u16, name: &str, record: &str) -> serde_json::Value {
    let ns = format!("127.0.0.1:{port}");
    let p = probe(
        "dns",
        &[
            ("target", s(name)),
            ("record", s(record)),
            ("nameserver", s(&ns)),
        ],
    );
    observe(p.as_ref(), T).await.0.expect("observed")
}

/// `dig +noall +answer` lines: (name, ttl, type, data).
fn dig(port: u16, name: &str, record: &str) -> (String, Vec<(String, u64, String, String)>) {
    let p = format!("{port}");
    let full = tool("dig", &["@127.0.0.1", "-p", &p, "+norec", name, record]);
    let status = full
        .split("status: ")
        .nth(1)
        .and_then(|r| r.split(',').next())
        .unwrap_or("")
        .to_string();
    let answers = tool(
        "dig",
        &[
            "@127.0.0.1",
            "-p",
            &p,
            "+norec",
            "+noall",
            "+answer",
            name,
            record,
        ],
    );
    let rows = answers
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let data = f[4..].join(" ").trim_matches('"').to_string();
            (
                f[0].to_string(),
                f[1].parse().unwrap_or(0),
                f[3].to_string(),
                data,
            )
        })
        .collect();
    (status, rows)
}

#[tokio::test]
async fn records_ttls_and_rcode_agree_with_dig() {
    let server = golive_testkit::dns().await;
    let port = server.addr.port();
    for (name, record) in [
        ("www.example.test", "A"),
        ("www.example.test", "AAAA"),
        ("alias.example.test", "CNAME"),
        ("txt.example.test", "TXT"),
        ("example.test", "MX"),
        ("alias.example.test", "A"),
        ("nope.example.test", "A"),
    ] {
        let obs = ask(port, name, record).await;
        let (status, rows) = tokio::task::spawn_blocking(move || dig(port, name, record))
            .await
            .expect("dig");
        assert_eq!(obs["rcode"], status, "{name} {record}");
        let ours: Vec<(String, u64, String, String)> = obs["records"]
            .as_array()
            .expect("records")
            .iter()
            .map(|r| {
                (
                    r["name"].as_str().unwrap_or("").to_string(),
                    r["ttl"].as_u64().unwrap_or(0),
                    r["type"].as_str().unwrap_or("").to_string(),
                    r["data"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect();
        assert_eq!(ours, rows, "{name} {record}");
    }
}

#[tokio::test]
async fn answers_and_smallest_ttl() {
    let server = golive_testkit::dns().await;
    let obs = ask(server.addr.port(), "www.example.test", "A").await;
    assert_eq!(obs["answers"][0], "127.0.0.1");
    assert_eq!(obs["ttl"], 300);
    assert_eq!(obs["authoritative"], true);
    let cname = ask(server.addr.port(), "alias.example.test", "A").await;
    assert_eq!(
        cname["answers"][0], "127.0.0.1",
        "the A record behind the CNAME"
    );
    assert_eq!(cname["records"][0]["type"], "CNAME");
    let nx = ask(server.addr.port(), "nope.example.test", "A").await;
    assert_eq!(nx["rcode"], "NXDOMAIN");
    assert_eq!(nx["answers"].as_array().map(Vec::len), Some(0));
}

#[tokio::test]
async fn a_silent_nameserver_times_out() {
    // a UDP socket that never answers
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let ns = sock.local_addr().expect("addr").to_string();
    let mut t = toml::Table::new();
    t.insert("target".into(), s("www.example.test"));
    t.insert("nameserver".into(), s(&ns));
    let p = golive_probe::kind("dns")
        .expect("dns")
        .probe(&t)
        .expect("spec");
    let (r, took) = observe(p.as_ref(), Duration::from_secs(2)).await;
    assert!(r.is_err(), "{r:?}");
    assert!(took < Duration::from_secs(3), "{took:?}");
}
