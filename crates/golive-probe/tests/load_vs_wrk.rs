//! The load probe against wrk on the same local target, one after the
//! other. Loose bounds only (the machine is shared): the figures must be of
//! the same kind, not equal; the exact comparison is bench/load.sh.

use golive_testkit::routes;

/// wrk's `--latency` lines and `Requests/sec`, in milliseconds and per second.
fn wrk(url: &str) -> (f64, f64, f64) {
    let out = std::process::Command::new("wrk")
        .args(["-t2", "-c10", "-d2s", "--latency", url])
        .output()
        .expect("wrk is installed (.ci/run installs Debian's wrk)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let ms = |key: &str| -> f64 {
        let v = text
            .lines()
            .find_map(|l| l.trim().strip_prefix(key))
            .map(str::trim)
            .unwrap_or_else(|| panic!("wrk printed no {key}: {text}"));
        let (num, unit) = v.split_at(v.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(v.len()));
        let n: f64 = num.parse().unwrap_or_else(|_| panic!("{v}"));
        match unit {
            "us" => n / 1e3,
            "ms" => n,
            "s" => n * 1e3,
            other => panic!("unit {other} in {v}"),
        }
    };
    let rps = text
        .lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("wrk printed no Requests/sec: {text}"));
    (rps, ms("50%"), ms("99%"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throughput_and_latency_are_of_the_same_order_as_wrk() {
    let s = golive_testkit::http(routes(&[("/", 200, "ok\n")])).await;
    let url = format!("http://127.0.0.1:{}/", s.addr.port());
    let u = url.clone();
    let (w_rps, w_p50, w_p99) = tokio::task::spawn_blocking(move || wrk(&u))
        .await
        .expect("wrk");
    let mut t: toml::Table = toml::from_str("duration = '2s'\nconcurrency = 10").expect("options");
    t.insert("target".into(), toml::Value::String(url));
    let obs = golive_probe::kind("load")
        .expect("kind")
        .probe(&t)
        .expect("spec")
        .observe()
        .await
        .expect("observed");
    let g_rps = obs["rps"].as_f64().expect("rps");
    let g_p50 = obs["latency_ms"]["p50"].as_f64().expect("p50");
    let g_p99 = obs["latency_ms"]["p99"].as_f64().expect("p99");
    let figures = format!(
        "golive {g_rps:.0}/s p50 {g_p50} ms p99 {g_p99} ms; wrk {w_rps:.0}/s p50 {w_p50} ms p99 {w_p99} ms"
    );
    eprintln!("{figures}");
    assert_eq!(obs["error_rate"], 0.0, "{figures}");
    // the same order: within a factor of 3 for throughput, 10 for latency
    // (wrk times from its write to its read, on its own event loop; golive
    // from when the request was due to the end of its body)
    assert!((w_rps / 3.0..w_rps * 3.0).contains(&g_rps), "{figures}");
    assert!((w_p50 / 10.0..w_p50 * 10.0).contains(&g_p50), "{figures}");
    assert!(g_p99 < w_p99 * 10.0, "{figures}");
}
