//! One event, many streams: how long a deployment's event takes to reach
//! every open stream of `golive serve`. Opens N streams (one connection
//! each), then signs E items one after another, each time from before the
//! POST until each stream has the event; prints percentiles over N×E
//! deliveries.
//!
//!     cargo bench -p golive-server --bench sse_fanout -- URL[,URL…] TOKEN DEPLOYMENT [STREAMS] [EVENTS]
//!
//! With several URLs (replicas of one PostgreSQL store) the streams are
//! spread over them in turn and the sign-offs go through the first: the
//! others hear them through the store. `bench/sse.sh` and
//! `bench/replicas.sh` start the servers and give it its arguments.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

type Arrivals = Arc<Mutex<Vec<(i64, Instant)>>>;

async fn connect(addr: &str) -> hyper::client::conn::http1::SendRequest<Full<Bytes>> {
    let s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (send, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(s))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    send
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    if args.len() < 3 {
        eprintln!("sse_fanout URL TOKEN DEPLOYMENT [STREAMS] [EVENTS]");
        std::process::exit(2);
    }
    let addrs: Vec<String> = args[0]
        .split(',')
        .map(|u| {
            u.trim_start_matches("http://")
                .trim_end_matches('/')
                .to_string()
        })
        .collect();
    let addr = addrs[0].clone();
    let (token, id) = (args[1].clone(), args[2].clone());
    let streams: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(500);
    let events: usize = args.get(4).and_then(|s| s.parse().ok()).unwrap_or(50);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let mut all: Vec<Arrivals> = Vec::new();
        for n in 0..streams {
            let at = &addrs[n % addrs.len()];
            let mut send = connect(at).await;
            let req = hyper::Request::builder()
                .uri(format!("/api/v1/deployments/{id}/stream"))
                .header("host", at)
                .header("authorization", format!("Bearer {token}"))
                .body(Full::new(Bytes::new()))
                .unwrap();
            let r = send.send_request(req).await.expect("stream");
            assert_eq!(r.status(), 200, "a stream opens");
            let arrivals: Arrivals = Arc::new(Mutex::new(Vec::new()));
            all.push(arrivals.clone());
            let mut body = r.into_body();
            tokio::spawn(async move {
                let _keep = send;
                let mut buf = String::new();
                while let Some(Ok(f)) = body.frame().await {
                    let now = Instant::now();
                    if let Ok(d) = f.into_data() {
                        buf.push_str(&String::from_utf8_lossy(&d));
                    }
                    while let Some(end) = buf.find("\n\n") {
                        let block: String = buf.drain(..end + 2).collect();
                        if let Some(seq) = block.lines().find_map(|l| l.strip_prefix("id:")).and_then(|v| v.trim().parse().ok()) {
                            arrivals.lock().await.push((seq, now));
                        }
                    }
                }
            });
        }
        eprintln!("{streams} streams open");
        tokio::time::sleep(Duration::from_millis(500)).await;
        let mut writer = connect(&addr).await;
        let mut lat = hdrhistogram::Histogram::<u64>::new(3).unwrap();
        let mut missing = 0usize;
        for e in 0..events {
            let body = format!("{{\"item\":\"1.1.{}\"}}", e + 1);
            let req = hyper::Request::builder()
                .method("POST")
                .uri(format!("/api/v1/deployments/{id}/signoffs"))
                .header("host", &addr)
                .header("authorization", format!("Bearer {token}"))
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from(body)))
                .unwrap();
            // a connection the server closed (keep-alive ended) is made again
            if writer.ready().await.is_err() {
                writer = connect(&addr).await;
            }
            let t0 = Instant::now();
            let r = writer.send_request(req).await.expect("sign");
            let status = r.status();
            let text = r.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
            assert_eq!(status, 200, "{}", String::from_utf8_lossy(&text));
            let v: serde_json::Value = serde_json::from_slice(&text).unwrap();
            let seq = v["version"].as_i64().unwrap();
            let deadline = t0 + Duration::from_secs(5);
            for a in &all {
                loop {
                    let got = a.lock().await.iter().find(|(s, _)| *s == seq).map(|(_, t)| *t);
                    if let Some(t) = got {
                        lat.record(t.duration_since(t0).as_micros() as u64).unwrap();
                        break;
                    }
                    if Instant::now() > deadline {
                        missing += 1;
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
        }
        let ms = |q: f64| lat.value_at_quantile(q) as f64 / 1000.0;
        println!(
            "{streams} streams over {} server(s) x {events} events: {} deliveries, {missing} missing; p50 {:.2} ms  p90 {:.2} ms  p99 {:.2} ms  max {:.2} ms",
            addrs.len(),
            lat.len(),
            ms(0.5),
            ms(0.9),
            ms(0.99),
            lat.max() as f64 / 1000.0
        );
    });
}
