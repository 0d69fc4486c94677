//! A stand-in for the reference checklist's service, for benchmarks: HTTPS on
//! 127.0.0.1 with a CA generated at start, answering the smoke tests'
//! endpoints. Prints `PORT CA_FILE` and serves until killed.
//!
//!     cargo run --release -p golive-testkit --bin standin

use golive_testkit::Pki;

const TOKEN: &str = "bench-token";

#[tokio::main]
async fn main() {
    let pki = Pki::new();
    let (chain, key) = pki.leaf(&["localhost"], -1, 90);
    let handler = golive_testkit::smoke_service("v1.1.0", TOKEN);
    let server = golive_testkit::https(chain, key, handler).await;
    println!("{} {}", server.addr.port(), pki.ca_file.display());
    let _keep = (server, pki);
    std::future::pending::<()>().await;
}
