//! One test suite, run on SQLite and on PostgreSQL: appends, the chain, and
//! tamper evidence against edits made with the databases' own tools
//! (`sqlite3`, `psql`), as an insider would make them.

use golive_store::{NewDeployment, NewEvent, Store, ViolationKind};
use serde_json::json;
use std::process::Command;

/// The PostgreSQL the tests use: `GOLIVE_TEST_PG`, or the local server that
/// `.ci/run` makes sure is running.
fn pg_url() -> String {
    std::env::var("GOLIVE_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

fn sqlite_path(tag: &str) -> String {
    let dir = std::env::temp_dir().join(format!(
        "golive-store-{}-{tag}-{}",
        std::process::id(),
        jiff::Timestamp::now().as_nanosecond()
    ));
    std::fs::create_dir_all(&dir).expect("dir");
    dir.join("golive.db").to_string_lossy().into_owned()
}

async fn backends(tag: &str) -> Vec<(&'static str, Store, String)> {
    let path = sqlite_path(tag);
    vec![
        (
            "sqlite",
            Store::open(&format!("sqlite://{path}"))
                .await
                .expect("sqlite store"),
            path,
        ),
        (
            "postgres",
            Store::open(&pg_url())
                .await
                .expect("postgres store (is it running? .ci/run starts it)"),
            pg_url(),
        ),
    ]
}

async fn deployment(store: &Store) -> String {
    store
        .create_deployment(&NewDeployment {
            runbook_path: "examples/aiwg-production.md".into(),
            runbook_sha256: "ab".repeat(32),
            started_by: "release-manager".into(),
            vars: json!({ "DOMAIN": "shop.example.test" }),
        })
        .await
        .expect("deployment")
}

fn events(n: usize) -> Vec<NewEvent> {
    (0..n)
        .map(|i| {
            NewEvent::new("check", json!({ "n": i, "passed": i % 3 != 0 }))
                .item(&format!("1.1.{i}"))
                .actor("golive")
        })
        .collect()
}

#[tokio::test]
async fn appends_chain_and_verify_on_both_backends() {
    for (name, store, _) in backends("append").await {
        let id = deployment(&store).await;
        let first = store.append(&id, &events(3)).await.expect("append");
        assert_eq!(
            first.iter().map(|e| e.seq).collect::<Vec<_>>(),
            [1, 2, 3],
            "{name}"
        );
        store.append(&id, &events(2)).await.expect("append");
        let all = store.events(&id).await.expect("events");
        assert_eq!(all.len(), 5, "{name}");
        assert_eq!(all[3].prev_hash, all[2].hash, "{name}: linked");
        assert_eq!(all[0].data["n"], 0);
        assert_eq!(store.verify(&id).await.expect("verify"), Ok(5), "{name}");
        // the newest: on SQLite this test's own file; the PostgreSQL
        // database is shared with the other tests running meanwhile
        let d = match name {
            "sqlite" => store.deployment(None).await.expect("newest"),
            _ => store.deployment(Some(&id)).await.expect("this one"),
        };
        assert_eq!(d.id, id, "{name}");
        assert_eq!(
            (d.head_seq, d.head_hash.clone()),
            (5, all[4].hash.clone()),
            "{name}"
        );
        assert!(store.deployment(Some("d-nope")).await.is_err());
        // more events than one insert takes (500): the earlier ones sent
        // apart, the last with the statement that moves the head
        let many = store.append(&id, &events(1203)).await.expect("large");
        assert_eq!(many.first().map(|e| e.seq), Some(6), "{name}");
        assert_eq!(many.last().map(|e| e.seq), Some(1208), "{name}");
        assert_eq!(store.verify(&id).await.expect("verify"), Ok(1208), "{name}");
        let d = store.deployment(Some(&id)).await.expect("this one");
        assert_eq!(
            (d.head_seq, d.head_hash),
            (1208, many[1202].hash.clone()),
            "{name}"
        );
        assert_eq!(store.events(&id).await.expect("events").len(), 1208);
    }
}

#[tokio::test]
async fn concurrent_appenders_are_serialised_without_lock_errors() {
    for (name, _, location) in backends("concurrent").await {
        let location = if name == "sqlite" {
            format!("sqlite://{location}")
        } else {
            location
        };
        let store = Store::open(&location).await.expect("store");
        let id = deployment(&store).await;
        // 20 writers, each with its own connection pool, at once
        let mut tasks = Vec::new();
        for w in 0..20 {
            let (location, id) = (location.clone(), id.clone());
            tasks.push(tokio::spawn(async move {
                let s = Store::open(&location).await.expect("store");
                for k in 0..5 {
                    s.append(
                        &id,
                        &[NewEvent::new("sign", json!({ "writer": w, "k": k }))],
                    )
                    .await
                    .expect("no lock error");
                }
            }));
        }
        for t in tasks {
            t.await.expect("writer");
        }
        assert_eq!(store.verify(&id).await.expect("verify"), Ok(100), "{name}");
    }
}

/// A tiny deterministic generator (the trials must be reproducible).
struct Lcg(u64);
impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

fn sql_tool(backend: &str, location: &str, sql: &str) {
    let out = match backend {
        "sqlite" => Command::new("sqlite3").arg(location).arg(sql).output(),
        _ => Command::new("psql")
            .args([location, "-v", "ON_ERROR_STOP=1", "-q", "-c", sql])
            .output(),
    }
    .expect("sqlite3 and psql are installed (.ci/run installs them)");
    assert!(
        out.status.success(),
        "{backend}: {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Edit, delete or swap one random event row with the database's own tool:
/// verify fails and names that row, in 100 of 100 trials on each backend.
#[tokio::test]
async fn any_edit_delete_or_swap_is_found_and_named() {
    for (name, store, location) in backends("tamper").await {
        let mut rng = Lcg(0x5eed ^ name.len() as u64);
        let mut found = 0;
        for trial in 0..100 {
            let id = deployment(&store).await;
            let n = 8;
            store.append(&id, &events(n)).await.expect("append");
            let k = rng.below(n as u64) as i64 + 1;
            let (sql, expect_seq) = match trial % 3 {
                0 => (
                    format!(
                        "UPDATE events SET data = '{{\"n\":99,\"passed\":true}}' WHERE deployment_id = '{id}' AND seq = {k}"
                    ),
                    k,
                ),
                1 => (
                    format!("DELETE FROM events WHERE deployment_id = '{id}' AND seq = {k}"),
                    k,
                ),
                _ => {
                    // swap the contents of rows k and k+1 (or k-1), keeping
                    // their sequence numbers
                    let j = if k < n as i64 { k + 1 } else { k - 1 };
                    let (a, b) = (k.min(j), k.max(j));
                    (
                        format!(
                            "UPDATE events SET kind = CASE seq WHEN {a} THEN (SELECT kind FROM events WHERE deployment_id = '{id}' AND seq = {b}) ELSE (SELECT kind FROM events WHERE deployment_id = '{id}' AND seq = {a}) END, \
                             data = CASE seq WHEN {a} THEN (SELECT data FROM events WHERE deployment_id = '{id}' AND seq = {b}) ELSE (SELECT data FROM events WHERE deployment_id = '{id}' AND seq = {a}) END, \
                             item = CASE seq WHEN {a} THEN (SELECT item FROM events WHERE deployment_id = '{id}' AND seq = {b}) ELSE (SELECT item FROM events WHERE deployment_id = '{id}' AND seq = {a}) END, \
                             hash = CASE seq WHEN {a} THEN (SELECT hash FROM events WHERE deployment_id = '{id}' AND seq = {b}) ELSE (SELECT hash FROM events WHERE deployment_id = '{id}' AND seq = {a}) END, \
                             prev_hash = CASE seq WHEN {a} THEN (SELECT prev_hash FROM events WHERE deployment_id = '{id}' AND seq = {b}) ELSE (SELECT prev_hash FROM events WHERE deployment_id = '{id}' AND seq = {a}) END \
                             WHERE deployment_id = '{id}' AND seq IN ({a}, {b})"
                        ),
                        a,
                    )
                }
            };
            sql_tool(name, &location, &sql);
            let v = store
                .verify(&id)
                .await
                .expect("verify runs")
                .expect_err("tampering is found");
            assert_eq!(v.seq, expect_seq, "{name} trial {trial}: {v}");
            match trial % 3 {
                0 => assert_eq!(v.kind, ViolationKind::Edited),
                1 if k == n as i64 => assert_eq!(v.kind, ViolationKind::Truncated, "{v}"),
                1 => assert_eq!(v.kind, ViolationKind::Deleted, "{v}"),
                _ => assert_eq!(v.kind, ViolationKind::Edited, "{v}"),
            }
            found += 1;
        }
        assert_eq!(found, 100, "{name}");
    }
}

/// `open_existing` finds no store where there is none, says so, and creates
/// nothing: no SQLite file, no tables in an empty PostgreSQL database. Once
/// `open` has made the store, it opens it.
#[tokio::test]
async fn open_existing_creates_nothing() {
    let path = sqlite_path("missing");
    let missing = Store::open_existing(&format!("sqlite://{path}")).await;
    assert!(
        matches!(missing, Err(golive_store::StoreError::Missing(_))),
        "{:?}",
        missing.err()
    );
    assert!(!std::path::Path::new(&path).exists());
    Store::open(&format!("sqlite://{path}"))
        .await
        .expect("open");
    Store::open_existing(&format!("sqlite://{path}"))
        .await
        .expect("open_existing after open");

    let db = format!("golive_empty_{}", std::process::id());
    let psql = |sql: &str, database: &str| {
        let out = Command::new("psql")
            .args([
                "-h",
                "127.0.0.1",
                "-U",
                "postgres",
                "-d",
                database,
                "-tAc",
                sql,
            ])
            .output()
            .expect("psql");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    psql(&format!("DROP DATABASE IF EXISTS {db}"), "postgres");
    psql(&format!("CREATE DATABASE {db}"), "postgres");
    let url = format!("postgres://postgres@127.0.0.1:5432/{db}");
    let missing = Store::open_existing(&url).await;
    assert!(
        matches!(missing, Err(golive_store::StoreError::Missing(_))),
        "{:?}",
        missing.err()
    );
    let tables = "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'";
    assert_eq!(psql(tables, &db), "0", "tables were created");
    let store = Store::open(&url).await.expect("open");
    drop(store);
    Store::open_existing(&url)
        .await
        .expect("open_existing after open");
    assert_ne!(psql(tables, &db), "0");
    psql(&format!("DROP DATABASE {db} WITH (FORCE)"), "postgres");
}

/// A deployment's write lock excludes a second holder until it is dropped,
/// on both backends, and does not hold up another deployment's (PostgreSQL;
/// SQLite has one lock for the whole file).
#[tokio::test]
async fn the_write_lock_is_held_until_dropped() {
    for (name, store, _) in backends("lock").await {
        let id = deployment(&store).await;
        let first = store.lock(&id).await.expect("first lock");
        let (tx, mut rx) = tokio::sync::oneshot::channel();
        let s2 = store.clone();
        let id2 = id.clone();
        let waiter = tokio::spawn(async move {
            let l = s2.lock(&id2).await.expect("second lock");
            let _ = tx.send(());
            drop(l);
        });
        // still waiting while the first is held, however long we look
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        assert!(rx.try_recv().is_err(), "{name}: taken twice at once");
        if name == "postgres" {
            let other = deployment(&store).await;
            drop(store.lock(&other).await.expect("another deployment's lock"));
        }
        drop(first);
        waiter.await.expect("the second holder got the lock");
        assert!(rx.try_recv().is_ok(), "{name}");
    }
}

/// The deployment's own row (id, runbook hash, variables, who started it and
/// when) is where its chain starts: editing the variables or the runbook's
/// hash with the database's own tool is found, and names the row.
#[tokio::test]
async fn the_deployment_row_is_outside_the_hash_chain() {
    for (name, store, location) in backends("row").await {
        for (column, value) in [
            ("vars", r#"{"DOMAIN":"evil.example.test"}"#.to_string()),
            ("runbook_sha256", "cd".repeat(32)),
            ("started_by", "someone-else".to_string()),
            ("created_at", "2020-01-01T00:00:00Z".to_string()),
        ] {
            let id = deployment(&store).await;
            store.append(&id, &events(3)).await.expect("append");
            assert_eq!(store.verify(&id).await.expect("verify"), Ok(3), "{name}");
            sql_tool(
                name,
                &location,
                &format!("UPDATE deployments SET {column} = '{value}' WHERE id = '{id}'"),
            );
            let v = store
                .verify(&id)
                .await
                .expect("verify runs")
                .expect_err(&format!("{name}: editing {column} is found"));
            assert!(
                v.to_string().contains("the deployment row was edited"),
                "{name} {column}: {v}"
            );
        }
    }
}

/// A deployment recorded before its row was part of the chain (its first
/// event links to the hash of its id alone) still verifies, and says that
/// its row is not covered.
#[tokio::test]
async fn a_deployment_of_an_older_golive_still_verifies() {
    for (name, store, location) in backends("legacy").await {
        let id = deployment(&store).await;
        // rewritten as an older golive recorded it: the chain from the id's hash
        let legacy = golive_store::legacy_genesis(&id);
        let at = "2026-11-27T12:00:00Z";
        let hash = golive_store::event_hash(&legacy, &id, 1, at, "run.started", None, None, "{}");
        sql_tool(
            name,
            &location,
            &format!(
                "INSERT INTO events (deployment_id, seq, at, kind, item, actor, data, prev_hash, hash) VALUES ('{id}', 1, '{at}', 'run.started', NULL, NULL, '{{}}', '{legacy}', '{hash}'); \
                 UPDATE deployments SET head_seq = 1, head_hash = '{hash}' WHERE id = '{id}'"
            ),
        );
        assert_eq!(store.verify(&id).await.expect("verify"), Ok(1), "{name}");
        let d = store.deployment(Some(&id)).await.expect("deployment");
        assert!(!d.row_covered(), "{name}");
        // appends go on from the old chain
        store.append(&id, &events(2)).await.expect("append");
        assert_eq!(store.verify(&id).await.expect("verify"), Ok(3), "{name}");
        let fresh = deployment(&store).await;
        let d = store.deployment(Some(&fresh)).await.expect("deployment");
        assert!(d.row_covered(), "{name}");
    }
}

/// Rows deleted at the end, with the deployment's head set back to the new
/// last row, leave a chain that holds by itself: only a head kept elsewhere
/// shows that it no longer reaches as far.
#[tokio::test]
async fn a_truncated_tail_goes_unseen() {
    for (name, store, location) in backends("tail").await {
        let id = deployment(&store).await;
        store.append(&id, &events(6)).await.expect("append");
        // as printed, then read back
        let kept = store
            .deployment(Some(&id))
            .await
            .expect("deployment")
            .head()
            .to_string();
        let all = store.events(&id).await.expect("events");
        sql_tool(
            name,
            &location,
            &format!(
                "DELETE FROM events WHERE deployment_id = '{id}' AND seq > 4; \
                 UPDATE deployments SET head_seq = 4, head_hash = '{}' WHERE id = '{id}'",
                all[3].hash
            ),
        );
        assert_eq!(store.verify(&id).await.expect("verify"), Ok(4), "{name}");
        let head: golive_store::Head = kept.parse().expect("head");
        let v = store
            .verify_to(&id, Some(&head))
            .await
            .expect("verify runs")
            .expect_err("the kept head is no longer reached");
        assert!(v.to_string().contains("no longer reaches"), "{name}: {v}");
        // a head from before still holds, as does one given by a prefix
        let earlier: golive_store::Head =
            format!("3:{}", &all[2].hash[..12]).parse().expect("head");
        assert_eq!(
            store.verify_to(&id, Some(&earlier)).await.expect("verify"),
            Ok(4),
            "{name}"
        );
        // a row rewritten at the kept head's place is no match either
        let other: golive_store::Head = format!("4:{}", &all[2].hash[..16]).parse().expect("head");
        let v = store
            .verify_to(&id, Some(&other))
            .await
            .expect("verify runs")
            .expect_err("another row at seq 4");
        assert!(v.to_string().contains("no longer reaches"), "{name}: {v}");
    }
}

/// The lock a process holds while it runs a step is taken by one holder at a
/// time, without waiting, on both backends; dropped, it is free again.
#[tokio::test]
async fn a_running_step_is_held_by_one_process_at_a_time() {
    for (name, store, _) in backends("running").await {
        let id = deployment(&store).await;
        let held = store
            .try_lock_running(&id, "step-1")
            .await
            .expect("try")
            .expect("free at first");
        assert!(
            store
                .try_lock_running(&id, "step-1")
                .await
                .expect("try")
                .is_none(),
            "{name}: taken twice"
        );
        let other = store.try_lock_running(&id, "step-2").await.expect("try");
        assert!(other.is_some(), "{name}: another step is not held");
        held.release().await;
        // (a process another test forks at that moment holds a copy of the
        // lock's descriptor until it execs: give it that moment)
        let mut free = false;
        for _ in 0..50 {
            free = store
                .try_lock_running(&id, "step-1")
                .await
                .expect("try")
                .is_some();
            if free {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert!(free, "{name}: free once dropped");
    }
}
