//! A deployment with a long record, for the benchmarks: `fill STORE RUNBOOK
//! EVENTS` records a deployment of RUNBOOK (the path as given) in STORE and
//! appends EVENTS events to it as a hypercare watch would (each evaluation a
//! `watch.tick` and a result per check of the Post-Deployment Verification
//! items), in transactions of 10,000, with the state kept as in every
//! append. Prints the deployment's id.

use golive_store::{NewDeployment, NewEvent};
use serde_json::json;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [location, path, events] = args.as_slice() else {
        return Err("usage: fill STORE RUNBOOK EVENTS".into());
    };
    let total: usize = events
        .parse()
        .map_err(|_| format!("EVENTS: `{events}` is not a number"))?;
    let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    let source = golive_deploy::Source::new(path.clone(), text);
    let rb = source.runbook();
    let store = golive_deploy::create_store(location)
        .await
        .map_err(|e| e.to_string())?;
    let id = store
        .create_deployment(&NewDeployment {
            runbook_path: source.path.clone(),
            runbook_sha256: source.sha256.clone(),
            started_by: "bench".into(),
            vars: json!({}),
        })
        .await
        .map_err(|e| e.to_string())?;
    // the checks a watch evaluates: the verification items with annotations
    let watched: Vec<(String, u32)> = rb
        .items
        .iter()
        .filter(|it| rb.stages[it.stage].kind == golive_runbook::StageKind::Verification)
        .flat_map(|it| {
            it.annotations
                .iter()
                .map(move |a| (it.id.clone(), a.loc.line))
        })
        .collect();
    let mut batch = Vec::with_capacity(10_000);
    let mut n = 0usize;
    let mut tick = 0u64;
    while n < total {
        if n == 0 || watched.is_empty() || n.is_multiple_of(watched.len() + 1) {
            tick += 1;
            batch.push(NewEvent::new(
                "watch.tick",
                json!({ "n": tick, "passed": watched.len(), "total": watched.len() }),
            ));
        } else {
            let (item, line) = &watched[(n % (watched.len() + 1)) - 1];
            batch.push(
                NewEvent::new(
                    "check",
                    json!({ "outcome": "passed", "kind": "http", "line": line, "duration_ms": 1.0 }),
                )
                .item(item)
                .actor("golive"),
            );
        }
        n += 1;
        if batch.len() == 10_000 || n == total {
            store.append(&id, &batch).await.map_err(|e| e.to_string())?;
            batch.clear();
        }
    }
    println!("{id}");
    Ok(())
}
