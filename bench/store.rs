//! Benchmark: durable event appends per second (batched) and `verify` of a
//! long chain, on SQLite and PostgreSQL.
//!
//!     cargo bench -p golive-store --bench store [-- EVENTS]
//!
//! PostgreSQL: `GOLIVE_TEST_PG` (default postgres://postgres@127.0.0.1:5432/test).

use golive_store::{NewDeployment, NewEvent, Store};
use serde_json::json;
use std::time::Instant;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let total: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000_000);
    let batch = 1000;
    let dir = std::env::temp_dir().join(format!("golive-bench-store-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let pg = std::env::var("GOLIVE_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let sqlite = format!("sqlite://{}", dir.join("bench.db").display());
    println!("{total} events, appended in transactions of {batch}; then verify of the whole chain");
    println!(
        "{:<10} {:>14} {:>16} {:>12} {:>12}",
        "store", "append s", "appends/s", "verify s", "again s"
    );
    for (name, location) in [("sqlite", sqlite), ("postgres", pg)] {
        let store = Store::open(&location).await.expect("store");
        let id = store
            .create_deployment(&NewDeployment {
                runbook_path: "bench.md".into(),
                runbook_sha256: "00".repeat(32),
                started_by: "bench".into(),
                vars: json!({}),
            })
            .await
            .expect("deployment");
        let events: Vec<NewEvent> = (0..batch)
            .map(|i| {
                NewEvent::new(
                    "check",
                    json!({ "outcome": "passed", "n": i, "duration_ms": 1.25 }),
                )
                .item("pre-deployment-checklist/infrastructure-readiness/ssl-certificates-valid")
                .actor("golive")
            })
            .collect();
        let t = Instant::now();
        for _ in 0..total / batch {
            store.append(&id, &events).await.expect("append");
        }
        let append = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let n = store.verify(&id).await.expect("verify").expect("intact");
        let verify = t.elapsed().as_secs_f64();
        assert_eq!(n as usize, total / batch * batch);
        // again, the log settled (SQLite: checkpointed by the first verify)
        let t = Instant::now();
        store.verify(&id).await.expect("verify").expect("intact");
        let again = t.elapsed().as_secs_f64();
        println!(
            "{:<10} {:>14.2} {:>16.0} {:>12.2} {:>12.2}",
            name,
            append,
            n as f64 / append,
            verify,
            again
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
