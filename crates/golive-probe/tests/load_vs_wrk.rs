//! The load probe against wrk on the same local target, one after the
//! other. Loose bounds only (the machine is shared); the exact comparison,
//! with oha as well, is bench/load-agreement.sh.

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

/// golive's load probe at 10 connections for 2 s against `url`: requests/s,
/// p50 and p99 in milliseconds.
async fn golive(url: &str) -> (f64, f64, f64) {
    let mut t: toml::Table = toml::from_str("duration = '2s'\nconcurrency = 10").expect("options");
    t.insert("target".into(), toml::Value::String(url.to_string()));
    let obs = golive_probe::kind("load")
        .expect("kind")
        .probe(&t)
        .expect("spec")
        .observe()
        .await
        .expect("observed");
    assert_eq!(obs["error_rate"], 0.0, "{obs}");
    let f = |v: &serde_json::Value| v.as_f64().expect("a number");
    (
        f(&obs["rps"]),
        f(&obs["latency_ms"]["p50"]),
        f(&obs["latency_ms"]["p99"]),
    )
}

/// One measurement at a time: the tests of this file would otherwise load
/// the machine at once and measure each other.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Both tools, one after the other, against the same server.
async fn both(url: String) -> ((f64, f64, f64), (f64, f64, f64), String) {
    let _turn = ONE_AT_A_TIME.lock().await;
    let u = url.clone();
    let w = tokio::task::spawn_blocking(move || wrk(&u))
        .await
        .expect("wrk");
    let g = golive(&url).await;
    let figures = format!(
        "golive {:.0}/s p50 {} ms p99 {} ms; wrk {:.0}/s p50 {} ms p99 {} ms",
        g.0, g.1, g.2, w.0, w.1, w.2
    );
    eprintln!("{figures}");
    (g, w, figures)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn against_a_service_with_known_latency_the_figures_agree_with_wrk() {
    // 98 % of the answers wait 2 ms, every 50th waits 20 ms: p50 and p99
    // are the server's, whoever measures them, and requests/s at 10
    // connections follows from them
    let latency = golive_testkit::Latency {
        base: std::time::Duration::from_millis(2),
        slow: std::time::Duration::from_millis(20),
        every: 50,
    };
    let s = golive_testkit::slow_http(routes(&[("/", 200, "ok\n")]), latency).await;
    let ((g_rps, g_p50, g_p99), (w_rps, w_p50, w_p99), figures) =
        both(format!("http://127.0.0.1:{}/", s.addr.port())).await;
    // loose bounds (the bench holds the exact figures): within a factor of
    // 1.5 of wrk's, and each at least what the server itself waits
    let near = |g: f64, w: f64| (w / 1.5..w * 1.5).contains(&g);
    assert!(near(g_rps, w_rps), "requests/s: {figures}");
    assert!(near(g_p50, w_p50) && g_p50 >= 2.0, "p50: {figures}");
    assert!(near(g_p99, w_p99) && g_p99 >= 20.0, "p99: {figures}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_saturation_the_figures_are_of_the_same_order_as_wrk() {
    let s = golive_testkit::http(routes(&[("/", 200, "ok\n")])).await;
    let ((g_rps, g_p50, g_p99), (w_rps, w_p50, w_p99), figures) =
        both(format!("http://127.0.0.1:{}/", s.addr.port())).await;
    // at saturation the figures are each tool's own speed: the same order
    // only, within a factor of 3 for throughput, 10 for latency (wrk times
    // from its write to its read, on its own event loop; golive from when
    // the request was due to the end of its body)
    assert!((w_rps / 3.0..w_rps * 3.0).contains(&g_rps), "{figures}");
    assert!((w_p50 / 10.0..w_p50 * 10.0).contains(&g_p50), "{figures}");
    assert!(g_p99 < w_p99 * 10.0, "{figures}");
}
