//! `postgres`: connect to PostgreSQL, run a query (by default `SELECT 1`),
//! optionally a schema-version query, and time both.
//!
//! Observes `connected`, `connect_ms`, `query_ms`, `rows` (the query's first
//! 100 rows as JSON objects), `value` (the first column of the first row),
//! `row_count`, `schema_version` (the first column of the version query's
//! first row, when `version_query` is set), `server_version` and `ssl` (the
//! session is encrypted) with `sslmode` as the URL asked. The target is a
//! `postgres://` URL; its password is never shown. Queries are `SELECT`s:
//! they run wrapped as `SELECT row_to_json(q) FROM (…) q`.

use crate::{BoxFuture, Kind, Observation, Probe, ProbeError, Spec, SpecError, millis};
use golive_postgres::{ConnectError, Target};
use serde_json::{Value, json};
use sqlx::{Connection, Row};
use std::time::{Duration, Instant};

pub(crate) static KIND: Kind = Kind {
    name: "postgres",
    summary: "connect to PostgreSQL and run a query: value, rows, latency, schema version, ssl",
    options: &["query", "version_query"],
    default_expect: "connected && value == 1",
    default_timeout: crate::DEFAULT_TIMEOUT,
    observes: &[
        ("connected", &[]),
        ("connect_ms", &[]),
        ("query_ms", &[]),
        ("value", &[]),
        ("row_count", &[]),
        ("rows", &[]),
        ("schema_version", &[]),
        ("server_version", &[]),
        ("ssl", &[]),
        ("sslmode", &[]),
    ],
    causes: &[],
    build,
};

#[derive(Debug)]
struct Postgres {
    url: String,
    /// The URL read: without `connect_timeout`, it waits as long as the
    /// check's timeout allows.
    target: Target,
    shown: String,
    query: String,
    version_query: Option<String>,
}

fn build(spec: &Spec) -> Result<Box<dyn Probe>, SpecError> {
    let url = spec.required("target")?;
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err(SpecError::Invalid(
            "target".into(),
            "a PostgreSQL target is a postgres:// URL".into(),
        ));
    }
    let target =
        Target::parse(&url).map_err(|e| SpecError::Invalid("target".into(), e.to_string()))?;
    Ok(Box::new(Postgres {
        shown: without_password(&url),
        target,
        url,
        query: spec.text("query")?.unwrap_or_else(|| "SELECT 1".into()),
        version_query: spec.text("version_query")?,
    }))
}

/// The one way golive shows a URL: its password hidden, however written.
pub(crate) fn without_password(url: &str) -> String {
    golive_runbook::url::redact_password(url)
}

fn wrapped(query: &str) -> String {
    let q = query.trim().trim_end_matches(';');
    format!("SELECT row_to_json(q)::text FROM ({q}) q LIMIT 100")
}

/// A database error as the server or driver said it, without the URL.
fn db_error(e: sqlx::Error) -> ProbeError {
    match e {
        sqlx::Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
            ProbeError::Refused("the PostgreSQL server".into())
        }
        sqlx::Error::Database(d) => ProbeError::Protocol(format!("postgres: {}", d.message())),
        other => ProbeError::Protocol(format!("postgres: {other}")),
    }
}

/// A failed connection as the probe reports it: refused and TLS failures
/// as such, the rest with their cause.
fn connect_error(e: ConnectError) -> ProbeError {
    match e {
        ConnectError::Refused(at) => ProbeError::Refused(at),
        ConnectError::Tls { at, why } => ProbeError::Tls(at, why),
        ConnectError::Server(_) => ProbeError::Protocol(format!("postgres: {e}")),
        other => ProbeError::Io(other.to_string()),
    }
}

async fn rows(conn: &mut sqlx::PgConnection, query: &str) -> Result<Vec<Value>, ProbeError> {
    // the query is the runbook author's own, as a migration would be
    let rows = sqlx::query(sqlx::AssertSqlSafe(wrapped(query)))
        .fetch_all(&mut *conn)
        .await
        .map_err(db_error)?;
    rows.iter()
        .map(|r| {
            let text: String = r.try_get(0).map_err(db_error)?;
            serde_json::from_str(&text).map_err(|e| ProbeError::Protocol(e.to_string()))
        })
        .collect()
}

fn first_value(rows: &[Value]) -> Value {
    rows.first()
        .and_then(Value::as_object)
        .and_then(|o| o.values().next().cloned())
        .unwrap_or(Value::Null)
}

impl Probe for Postgres {
    fn target(&self) -> String {
        self.shown.clone()
    }

    fn observe(&self) -> BoxFuture<'_, Result<Observation, ProbeError>> {
        Box::pin(async move {
            let t = Instant::now();
            let mut conn = self
                .target
                .connect(self.target.connect_timeout())
                .await
                .map_err(connect_error)?;
            let connect = t.elapsed();
            let t = Instant::now();
            let found = rows(&mut conn, &self.query).await?;
            let query = t.elapsed();
            let schema_version = match &self.version_query {
                Some(q) => first_value(&rows(&mut conn, q).await?),
                None => Value::Null,
            };
            let facts = rows(
                &mut conn,
                "SELECT current_setting('server_version') AS v, coalesce((SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()), false) AS ssl",
            )
            .await?;
            let _ = tokio::time::timeout(Duration::from_secs(1), conn.close()).await;
            let sslmode = self
                .url
                .split_once('?')
                .and_then(|(_, q)| q.split('&').find_map(|kv| kv.strip_prefix("sslmode=")))
                .unwrap_or("prefer");
            Ok(json!({
                "connected": true,
                "connect_ms": millis(connect),
                "query_ms": millis(query),
                "value": first_value(&found),
                "row_count": found.len(),
                "rows": found,
                "schema_version": schema_version,
                "server_version": facts.first().map_or(Value::Null, |f| f["v"].clone()),
                "ssl": facts.first().map_or(Value::Null, |f| f["ssl"].clone()),
                "sslmode": sslmode,
            }))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The PostgreSQL server the tests use (`.ci/run` starts one).
    fn server() -> String {
        std::env::var("GOLIVE_TEST_PG")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
    }

    fn probe(url: &str, extra: &str) -> Result<Box<dyn Probe>, SpecError> {
        let mut t: toml::Table = toml::from_str(extra).expect("options");
        t.insert("target".into(), toml::Value::String(url.into()));
        KIND.probe(&t)
    }

    #[tokio::test]
    async fn select_one_and_a_schema_version() {
        let url = server();
        let mut conn = sqlx::PgConnection::connect(&url).await.expect("server");
        sqlx::query("CREATE TABLE IF NOT EXISTS golive_probe_migrations (version BIGINT)")
            .execute(&mut conn)
            .await
            .expect("table");
        sqlx::query("DELETE FROM golive_probe_migrations")
            .execute(&mut conn)
            .await
            .expect("clear");
        sqlx::query("INSERT INTO golive_probe_migrations VALUES (20261101), (20261127)")
            .execute(&mut conn)
            .await
            .expect("rows");
        let obs = probe(
            &url,
            "version_query = 'SELECT max(version) FROM golive_probe_migrations'",
        )
        .expect("spec")
        .observe()
        .await
        .expect("observed");
        assert_eq!(obs["connected"], true);
        assert_eq!(obs["value"], 1);
        assert_eq!(obs["schema_version"], 20261127);
        // `prefer` (no sslmode) encrypts when the server offers TLS
        let offered: String = sqlx::query_scalar("SHOW ssl")
            .fetch_one(&mut conn)
            .await
            .expect("ssl setting");
        assert_eq!(obs["ssl"], offered == "on");
        assert_eq!(obs["sslmode"], "prefer");
        let version: String = sqlx::query_scalar("SHOW server_version")
            .fetch_one(&mut conn)
            .await
            .expect("version");
        assert_eq!(obs["server_version"], version.as_str());
        let obs = probe(
            &url,
            r#"query = "SELECT 2 AS a, 'x' AS b UNION ALL SELECT 3, 'y';""#,
        )
        .expect("spec")
        .observe()
        .await
        .expect("observed");
        assert_eq!(obs["row_count"], 2);
        assert_eq!(obs["rows"][1], json!({ "a": 3, "b": "y" }));
    }

    #[tokio::test]
    async fn a_bad_query_or_closed_port_cannot_observe() {
        let err = probe(&server(), "query = 'SELECT * FROM no_such_table_here'")
            .expect("spec")
            .observe()
            .await
            .expect_err("fails");
        assert!(err.to_string().contains("no_such_table_here"), "{err}");
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = l.local_addr().expect("addr").port();
        drop(l);
        let err = probe(&format!("postgres://postgres@127.0.0.1:{port}/test"), "")
            .expect("spec")
            .observe()
            .await
            .expect_err("refused");
        assert!(matches!(err, ProbeError::Refused(_)), "{err}");
    }

    #[test]
    fn the_password_is_never_shown() {
        let p = probe("postgres://app:hunter2@db.internal:5432/shop", "").expect("spec");
        assert_eq!(p.target(), "postgres://app:***@db.internal:5432/shop");
        assert!(probe("mysql://x", "").is_err());
    }
}
