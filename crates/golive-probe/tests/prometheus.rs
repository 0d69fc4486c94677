//! The `prometheus` probe against a real Prometheus scraping a local
//! service's `/metrics` every second.

use golive_testkit::{PrometheusServer, full};
use serde_json::Value;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A service whose counters move by a known amount per scrape: 10
/// requests, 1 of them a 503; 8 answered under 100 ms, all under 500 ms.
async fn service() -> golive_testkit::Server {
    let scrapes = Arc::new(AtomicU64::new(0));
    golive_testkit::http(Arc::new(move |_req| {
        let n = scrapes.fetch_add(1, Ordering::Relaxed) as f64 + 1.0;
        http::Response::new(full(format!(
            "# TYPE requests_total counter\nrequests_total{{code=\"200\"}} {}\nrequests_total{{code=\"503\"}} {}\n# TYPE d_seconds histogram\nd_seconds_bucket{{le=\"0.1\"}} {}\nd_seconds_bucket{{le=\"0.5\"}} {}\nd_seconds_bucket{{le=\"+Inf\"}} {}\nd_seconds_count {}\n",
            9.0 * n, n, 8.0 * n, 10.0 * n, 10.0 * n, 10.0 * n
        )))
    }))
    .await
}

async fn observe(url: &str, options: &str) -> Result<Value, golive_probe::ProbeError> {
    let mut t: toml::Table = toml::from_str(options).expect("options");
    t.insert("target".into(), toml::Value::String(url.into()));
    let probe = golive_probe::kind("prometheus")
        .expect("kind")
        .probe(&t)
        .expect("spec");
    probe.observe().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instant_and_range_queries_against_a_real_prometheus() {
    let svc = service().await;
    let prom = PrometheusServer::start(&[svc.addr], "1s");
    let url = prom.url();
    // wait until three scrapes are in (rates need two)
    let mut ready = false;
    for _ in 0..60 {
        if let Ok(o) = observe(&url, "query = 'count_over_time(up[1m])'").await
            && o["value"].as_f64() >= Some(3.0)
        {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(ready, "prometheus did not scrape the service in 30 s");

    let up = observe(&url, "query = 'up{job=\"svc\"}'")
        .await
        .expect("up");
    assert_eq!(up["value"], 1.0);
    assert_eq!(up["count"], 1);
    assert_eq!(up["series"][0]["labels"]["instance"], svc.addr.to_string());
    let age = up["sample_age_s"].as_f64().expect("age");
    assert!((0.0..15.0).contains(&age), "a sample every second: {up}");

    let errors = observe(
        &url,
        r#"query = 'sum(rate(requests_total{code=~"5.."}[1m])) / sum(rate(requests_total[1m]))'"#,
    )
    .await
    .expect("error rate");
    assert!(
        (errors["value"].as_f64().expect("value") - 0.1).abs() < 1e-9,
        "{errors}"
    );

    // p50 of ten per scrape, eight under 0.1 s: 0.1 * 5/8
    let p50 = observe(
        &url,
        "query = 'histogram_quantile(0.5, sum by (le) (rate(d_seconds_bucket[1m])))'",
    )
    .await
    .expect("p50");
    assert!(
        (p50["value"].as_f64().expect("value") - 0.0625).abs() < 1e-9,
        "{p50}"
    );

    let range = observe(&url, "query = 'up'\nrange = '10s'\nstep = '1s'")
        .await
        .expect("range");
    assert_eq!(range["count"], 1);
    assert!(range["points"].as_u64() >= Some(2), "{range}");
    assert_eq!(range["min"], 1.0);
    assert_eq!(range["max"], 1.0);
    assert_eq!(range["last"], 1.0);

    let none = observe(&url, "query = 'no_such_metric'")
        .await
        .expect("empty");
    assert_eq!(none["count"], 0);
    assert!(none["value"].is_null() && none["sample_age_s"].is_null());

    let err = observe(&url, "query = 'sum(('")
        .await
        .expect_err("bad query");
    assert!(err.to_string().contains("parse error"), "{err}");
}
