//! A stand-in for the reference checklist's service, for benchmarks: HTTPS on
//! 127.0.0.1 with a CA generated at start, answering the smoke tests'
//! endpoints. Prints `PORT CA_FILE` and serves until killed.
//!
//!     cargo run --release -p golive-testkit --bin standin
//!
//! With `--plain`: HTTP/1.1 and HTTP/2 (prior knowledge) on 127.0.0.1,
//! answering every path with a small 200, as a target for load benchmarks.
//! Prints `PORT`.

use golive_testkit::Pki;

const TOKEN: &str = "bench-token";

#[tokio::main]
async fn main() {
    if std::env::args().any(|a| a == "--plain") {
        let server = golive_testkit::http(golive_testkit::routes(&[("/", 200, "ok\n")])).await;
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
