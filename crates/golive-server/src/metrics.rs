//! `/metrics` in Prometheus' text format: requests by route and status, a
//! latency histogram by route, open event streams, events appended.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// The server's counters.
#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, String, u16), u64>>,
    latency: Mutex<BTreeMap<String, Histogram>>,
    pub streams: AtomicI64,
    pub events_appended: AtomicU64,
}

impl Metrics {
    /// One request answered.
    pub fn request(&self, method: &str, route: &str, status: u16, seconds: f64) {
        {
            let mut r = self.requests.lock().unwrap_or_else(|p| p.into_inner());
            *r.entry((method.to_string(), route.to_string(), status))
                .or_default() += 1;
        }
        let mut l = self.latency.lock().unwrap_or_else(|p| p.into_inner());
        let h = l.entry(route.to_string()).or_default();
        for (i, b) in BUCKETS.iter().enumerate() {
            if seconds <= *b {
                h.counts[i] += 1;
            }
        }
        h.count += 1;
        h.sum += seconds;
    }

    /// The text `/metrics` answers.
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str("# HELP golive_http_requests_total HTTP requests answered, by route and status.\n# TYPE golive_http_requests_total counter\n");
        for ((m, route, status), n) in self
            .requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            let _ = writeln!(
                out,
                "golive_http_requests_total{{method=\"{m}\",route=\"{}\",status=\"{status}\"}} {n}",
                escape(route)
            );
        }
        out.push_str("# HELP golive_http_request_duration_seconds Time to answer, by route.\n# TYPE golive_http_request_duration_seconds histogram\n");
        for (route, h) in self
            .latency
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            let route = escape(route);
            for (i, b) in BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "golive_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"{b}\"}} {}",
                    h.counts[i]
                );
            }
            let _ = writeln!(
                out,
                "golive_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {}\ngolive_http_request_duration_seconds_sum{{route=\"{route}\"}} {}\ngolive_http_request_duration_seconds_count{{route=\"{route}\"}} {}",
                h.count, h.sum, h.count
            );
        }
        let _ = writeln!(
            out,
            "# HELP golive_sse_clients Event streams open now.\n# TYPE golive_sse_clients gauge\ngolive_sse_clients {}",
            self.streams.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP golive_events_appended_total Events appended to deployments through this server.\n# TYPE golive_events_appended_total counter\ngolive_events_appended_total {}",
            self.events_appended.load(Ordering::Relaxed)
        );
        out
    }
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// A small listener of a process that is not the server (a probe agent):
/// `GET /metrics` answers what `render` says (Prometheus' text format) and
/// `GET /live` answers 200, on `addr`, until `stop`. Where it listens.
pub async fn listen_metrics(
    addr: std::net::SocketAddr,
    render: std::sync::Arc<dyn Fn() -> String + Send + Sync>,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<std::net::SocketAddr, String> {
    use axum::routing::get;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("--metrics-listen {addr}: {e}"))?;
    let at = listener
        .local_addr()
        .map_err(|e| format!("--metrics-listen {addr}: {e}"))?;
    let app = axum::Router::new()
        .route(
            "/metrics",
            get(move || {
                let text = render();
                async move {
                    (
                        [(
                            axum::http::header::CONTENT_TYPE,
                            "text/plain; version=0.0.4; charset=utf-8",
                        )],
                        text,
                    )
                }
            }),
        )
        .route("/live", get(|| async { "live\n" }));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(stop)
            .await;
    });
    Ok(at)
}
