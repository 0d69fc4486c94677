//! `golive probe`: one probe ad hoc, as people use curl, dig or openssl today.

use std::process::{Command, Output};

fn golive(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_golive"))
        .args(args)
        .output()
        .expect("golive runs")
}

#[tokio::test(flavor = "multi_thread")]
async fn http_probe_prints_the_observation_and_judges_expect() {
    let server = golive_testkit::http(golive_testkit::routes(&[(
        "/health",
        200,
        r#"{"status":"healthy"}"#,
    )]))
    .await;
    let url = format!("http://127.0.0.1:{}/health", server.addr.port());
    let out = tokio::task::block_in_place(|| {
        golive(&[
            "probe",
            "http",
            &url,
            "--expect",
            "json.status == 'healthy'",
            "--format",
            "json",
        ])
    });
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["observation"]["status"], 200);
    assert_eq!(v["passed"], true);
    let out = tokio::task::block_in_place(|| {
        golive(&["probe", "http", &url, "--expect", "status == 500"])
    });
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("FAIL: status == 500") && text.contains("actual: status = 200"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn dns_probe_takes_options() {
    let server = golive_testkit::dns().await;
    let ns = format!("nameserver={}", server.addr);
    let out = tokio::task::block_in_place(|| {
        golive(&["probe", "dns", "www.example.test", "record=AAAA", &ns])
    });
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("rcode: \"NOERROR\""), "{text}");
    assert!(text.contains("\"::1\""), "{text}");
}

#[test]
fn could_not_observe_is_exit_1_and_bad_input_exit_2() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let out = golive(&[
        "probe",
        "http",
        &format!("http://127.0.0.1:{port}/"),
        "--timeout",
        "2s",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("could not observe: connection refused"));
    let out = golive(&["probe", "ldap", "x"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown probe kind `ldap`"));
    let out = golive(&["probe", "tcp", "127.0.0.1:1", "sni=x"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no option `sni`"));
    let out = golive(&[
        "probe",
        "http",
        "http://127.0.0.1:1/",
        "--expect",
        "status ==",
    ]);
    assert_eq!(out.status.code(), Some(2));
}
