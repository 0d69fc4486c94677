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

/// `golive probe load` prints what oha prints: a summary, the latency
/// percentiles, a histogram holding every answer, and the status codes; with
/// `--expect` it judges the run as a check would.
#[tokio::test(flavor = "multi_thread")]
async fn load_probe_prints_a_summary_and_a_histogram() {
    let latency = golive_testkit::Latency {
        base: std::time::Duration::from_millis(1),
        slow: std::time::Duration::from_millis(10),
        every: 20,
    };
    let server =
        golive_testkit::slow_http(golive_testkit::routes(&[("/", 200, "ok\n")]), latency).await;
    let url = format!("http://127.0.0.1:{}/", server.addr.port());
    let out =
        tokio::task::block_in_place(|| golive(&["probe", "load", &url, "-n", "200", "-c", "4"]));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(0), "{text}");
    for line in [
        "  Success rate:  100.00 %",
        "  Requests:      200 (200 answered 2xx/3xx)",
        "  Connections:   4 opened for 4 workers on 1 thread, HTTP/1.1",
        "  [200] 200 responses",
    ] {
        assert!(text.lines().any(|l| l == line), "no {line:?} in:\n{text}");
    }
    assert!(text.contains("\nLatency (ms):\n  min "), "{text}");
    // every answer is in one of the ten bars, the slow ones (every 20th, 10 ms)
    // apart from the rest
    let bars: Vec<u64> = text
        .lines()
        .filter_map(|l| l.split_once(" [")?.1.split_once(']')?.0.trim().parse().ok())
        .collect();
    assert_eq!(bars.len(), 10 + 1, "ten bars and the status line: {text}");
    assert_eq!(bars[..10].iter().sum::<u64>(), 200, "{text}");
    let out = tokio::task::block_in_place(|| {
        golive(&[
            "probe",
            "load",
            &url,
            "-n",
            "100",
            "-c",
            "4",
            "--expect",
            "latency_ms.p99 < 5.0",
        ])
    });
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        out.status.code(),
        Some(1),
        "p99 waits the slow 10 ms: {text}"
    );
    assert!(text.contains("FAIL: latency_ms.p99 < 5.0"), "{text}");
}

/// A load test's duration lengthens its check's timeout; a timeout too short
/// for it is refused where it is written, before anything runs.
#[test]
fn a_load_checks_timeout_leaves_room_for_its_duration() {
    let dir = std::env::temp_dir().join(format!("golive-soak-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let runbook = dir.join("soak.md");
    let check = |extra: &str| {
        format!(
            "  ```golive\n  check    = \"load\"\n  target   = \"http://127.0.0.1:9/\"\n  duration = \"15m\"\n{extra}  ```\n"
        )
    };
    std::fs::write(
        &runbook,
        format!(
            "# Soak\n\n## Checks (1 item)\n\n### Load (1 item)\n\n- [ ] **Soak for fifteen minutes**\n{}",
            check("")
        ),
    )
    .expect("runbook");
    let path = runbook.to_str().expect("path");
    let out = golive(&["plan", path, "--format", "json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    // 15 minutes, one request_timeout (30 s) and ten seconds
    assert_eq!(v["checks"][0]["timeout_ms"], 940_000, "{v}");
    std::fs::write(
        &runbook,
        format!(
            "# Soak\n\n## Checks (1 item)\n\n### Load (1 item)\n\n- [ ] **Soak for fifteen minutes**\n{}",
            check("  timeout  = \"10m\"\n")
        ),
    )
    .expect("runbook");
    let out = golive(&["plan", path]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("`timeout` 10m leaves no room for a run of 930s")
            && err.contains("soak.md:8:3"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `--threads` sets the load's threads, as wrk's `-t` does; out of range it
/// is refused naming the flag, and the same rule holds for `threads` in a
/// runbook, where the refusal points at the check's line.
#[tokio::test(flavor = "multi_thread")]
async fn the_load_probe_threads_flag_is_honoured_and_checked() {
    let server = golive_testkit::http(golive_testkit::routes(&[("/", 200, "ok\n")])).await;
    let url = format!("http://127.0.0.1:{}/", server.addr.port());
    let run = |args: &[&str]| {
        let mut all = vec!["probe", "load", url.as_str(), "-n", "200", "-c", "4"];
        all.extend_from_slice(args);
        tokio::task::block_in_place(|| golive(&all))
    };
    for threads in ["1", "2", "4"] {
        let out = run(&["--threads", threads, "--format", "json"]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        assert_eq!(
            v["observation"]["threads"],
            threads.parse::<u64>().expect("n")
        );
        assert_eq!(v["observation"]["statuses"]["200"], 200, "{v}");
    }
    let out = run(&[]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        text.lines()
            .any(|l| l == "  Connections:   4 opened for 4 workers on 1 thread, HTTP/1.1"),
        "{text}"
    );
    for (threads, shown) in [
        (
            "0",
            "--threads: 0 threads for 4 connections: must be from 1 to the concurrency",
        ),
        (
            "5",
            "--threads: 5 threads for 4 connections: must be from 1 to the concurrency",
        ),
    ] {
        let out = run(&["--threads", threads]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains(shown), "{err}");
        assert!(out.stdout.is_empty(), "nothing ran");
    }
    // the other load flags are named the same way
    let out = tokio::task::block_in_place(|| golive(&["probe", "load", &url, "-c", "0"]));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--concurrency: must be from 1 to 10000"),
        "{err}"
    );

    let dir = std::env::temp_dir().join(format!("golive-threads-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let runbook = dir.join("load.md");
    std::fs::write(
        &runbook,
        "# Load\n\n## Checks (1 item)\n\n### Load (1 item)\n\n- [ ] **Ten connections**\n  ```golive\n  check       = \"load\"\n  target      = \"http://127.0.0.1:9/\"\n  concurrency = 10\n  threads     = 12\n  ```\n",
    )
    .expect("runbook");
    let out = golive(&["plan", runbook.to_str().expect("path")]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("`threads`: 12 threads for 10 connections: must be from 1 to the concurrency")
            && err.contains("load.md:8:3"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
