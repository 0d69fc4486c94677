//! A stand-in for the reference checklist's service, for benchmarks: HTTPS on
//! 127.0.0.1 with a CA generated at start, answering the smoke tests'
//! endpoints. Prints `PORT CA_FILE` and serves until killed.
//!
//!     cargo run --release -p golive-testkit --bin standin
//!
//! With `--plain`: HTTP/1.1 and HTTP/2 (prior knowledge) on 127.0.0.1,
//! answering every path with a small 200, as a target for load benchmarks.
//! Prints `PORT`. `--plain --latency BASE[,SLOW/N]` (milliseconds, as in
//! `--latency 2,20/50`) holds each answer back BASE ms, and every N-th
//! SLOW ms: a target whose latency percentiles are known in advance.

use golive_testkit::Pki;

const TOKEN: &str = "bench-token";

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--plain") {
        let ok = golive_testkit::routes(&[("/", 200, "ok\n")]);
        let latency = args
            .iter()
            .position(|a| a == "--latency")
            .map(|i| args.get(i + 1).and_then(|v| latency(v)));
        let server = match latency {
            None => golive_testkit::http(ok).await,
            Some(Some(l)) => golive_testkit::slow_http(ok, l).await,
            Some(None) => {
                eprintln!("standin: --latency wants BASE[,SLOW/N] in milliseconds, as in 2,20/50");
                std::process::exit(2);
            }
        };
        println!("{}", server.addr.port());
        let _keep = server;
        std::future::pending::<()>().await;
    }
    let pki = Pki::new();
    let (chain, key) = pki.leaf(&["localhost"], -1, 90);
    let handler = golive_testkit::smoke_service("v1.1.0", TOKEN);
    let server = golive_testkit::https(chain, key, handler).await;
    println!("{} {}", server.addr.port(), pki.ca_file.display());
    let _keep = (server, pki);
    std::future::pending::<()>().await;
}

/// `BASE[,SLOW/N]` in milliseconds.
fn latency(text: &str) -> Option<golive_testkit::Latency> {
    let ms = |v: &str| v.trim().parse::<f64>().ok().filter(|v| *v >= 0.0);
    let (base, tail) = match text.split_once(',') {
        Some((b, t)) => (ms(b)?, Some(t.split_once('/')?)),
        None => (ms(text)?, None),
    };
    let (slow, every) = match tail {
        Some((s, n)) => (ms(s)?, n.trim().parse::<u64>().ok().filter(|n| *n > 0)?),
        None => (base, 0),
    };
    Some(golive_testkit::Latency {
        base: std::time::Duration::from_secs_f64(base / 1e3),
        slow: std::time::Duration::from_secs_f64(slow / 1e3),
        every,
    })
}
