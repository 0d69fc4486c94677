//! Each kind's table of what it observes (`Kind::observes`, which lint
//! checks conditions against) agrees with what its probe really observes,
//! both ways: every field observed is in the table, and every field of the
//! table was observed in one of the runs, against real servers on 127.0.0.1.

mod common;

use common::{observe, probe, s};
use golive_testkit::{Pki, http, https, routes};
use serde_json::Value;
use std::collections::BTreeSet;
use std::time::Duration;

const T: Duration = Duration::from_secs(10);

/// The table of `kind` and the observations agree both ways.
fn agrees(kind: &str, observations: &[Value]) {
    let table = golive_probe::kind(kind).expect("kind").observes;
    let mut seen = BTreeSet::new();
    for obs in observations {
        let obj = obs.as_object().unwrap_or_else(|| panic!("{kind}: {obs}"));
        for (key, value) in obj {
            let (_, nested) = table
                .iter()
                .find(|(k, _)| k == key)
                .unwrap_or_else(|| panic!("{kind} observes `{key}`, which its table lacks"));
            seen.insert(key.as_str());
            if let (false, Value::Object(inner)) = (nested.is_empty(), value) {
                for k in inner.keys() {
                    assert!(
                        nested.contains(&k.as_str()),
                        "{kind}: `{key}.{k}` is observed, not in the table"
                    );
                }
                for k in *nested {
                    assert!(
                        inner.contains_key(*k),
                        "{kind}: the table's `{key}.{k}` was not observed"
                    );
                }
            }
        }
    }
    for (k, _) in table {
        assert!(
            seen.contains(k),
            "{kind}: the table's `{k}` was never observed"
        );
    }
}

async fn obs(kind: &str, pairs: &[(&str, toml::Value)]) -> Value {
    observe(probe(kind, pairs).as_ref(), T)
        .await
        .0
        .unwrap_or_else(|e| panic!("{kind} observed: {e}"))
}

#[tokio::test]
async fn file_tcp_command_and_http_observe_what_their_tables_say() {
    let dir = std::env::temp_dir().join(format!("golive-observes-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let present = dir.join("present");
    std::fs::write(&present, "x").expect("file");
    let file = [
        obs("file", &[("path", s(&present.display().to_string()))]).await,
        obs(
            "file",
            &[("path", s(&dir.join("absent").display().to_string()))],
        )
        .await,
    ];
    agrees("file", &file);

    let server = http(routes(&[("/", 200, r#"{"ok":true}"#)])).await;
    let free = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let closed = free.local_addr().expect("addr");
    drop(free);
    let tcp = [
        obs("tcp", &[("target", s(&server.addr.to_string()))]).await,
        obs("tcp", &[("target", s(&closed.to_string()))]).await,
    ];
    agrees("tcp", &tcp);

    agrees(
        "command",
        &[obs("command", &[("command", s("echo hi"))]).await],
    );

    let url = format!("http://{}/", server.addr);
    agrees("http", &[obs("http", &[("target", s(&url))]).await]);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn tls_and_dns_observe_what_their_tables_say() {
    let pki = Pki::new();
    let (chain, key) = pki.leaf(&["shop.example.test"], -1, 90);
    let server = https(chain, key, routes(&[("/", 200, "ok")])).await;
    let ca = pki.ca_file.to_string_lossy().into_owned();
    let tls = obs(
        "tls",
        &[
            ("target", s(&server.addr.to_string())),
            ("sni", s("shop.example.test")),
            ("ca_file", s(&ca)),
        ],
    )
    .await;
    agrees("tls", &[tls]);

    let dns = golive_testkit::dns().await;
    let answer = obs(
        "dns",
        &[
            ("target", s("www.example.test")),
            ("nameserver", s(&dns.addr.to_string())),
        ],
    )
    .await;
    agrees("dns", &[answer]);
}

#[tokio::test]
async fn redis_and_postgres_observe_what_their_tables_say() {
    let redis = obs(
        "redis",
        &[
            ("target", s("redis://127.0.0.1:6379")),
            ("command", s("PING")),
        ],
    )
    .await;
    agrees("redis", &[redis]);
    let url = std::env::var("GOLIVE_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let pg = obs(
        "postgres",
        &[
            ("target", s(&url)),
            ("query", s("SELECT 1 AS one")),
            ("version_query", s("SELECT '7'")),
        ],
    )
    .await;
    agrees("postgres", &[pg]);
}
