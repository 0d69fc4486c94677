//! The store: one API over SQLite and PostgreSQL.

use crate::chain::{
    Head, Violation, ViolationKind, event_hash, event_hash_hex, legacy_genesis, row_genesis,
};
use serde_json::Value;
use sha2::Digest;
use sqlx::Connection;
use sqlx::postgres::{PgPoolOptions, PgRow};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{PgPool, Row, SqlitePool};
use std::str::FromStr;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the store {0}: {1}")]
    Open(String, String),
    #[error("store: {0}")]
    Db(String),
    #[error("no deployment `{0}` in this store")]
    NoDeployment(String),
    #[error("the store is empty: no deployment yet")]
    Empty,
    #[error(
        "no store at {0}: nothing is recorded there yet (`golive run RUNBOOK` records the first deployment; GOLIVE_STORE or --store names another store)"
    )]
    Missing(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        StoreError::Db(e.to_string())
    }
}

/// A deployment as recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct Deployment {
    pub id: String,
    pub runbook_path: String,
    pub runbook_sha256: String,
    pub started_by: String,
    pub created_at: String,
    pub vars: Value,
    pub head_seq: i64,
    pub head_hash: String,
    /// The hash of this row as stored now, where its chain starts.
    pub genesis: String,
    /// Whether the chain starts from this row as stored.
    pub binding: Binding,
}

/// How a deployment's own row is bound to its chain, judged from the link
/// of its first event (or, before any, its recorded head).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Binding {
    /// The chain starts from the hash of the row as it is.
    Covered,
    /// Recorded by an older golive: the chain starts from a hash of the id
    /// alone, and the rest of the row is not covered.
    Legacy,
    /// The chain starts from neither: the row (or the first event's link)
    /// was edited.
    Broken,
    /// The first event is missing: `verify` says what happened.
    Unknown,
}

impl Deployment {
    /// The chain's last point, `SEQ:HASH`.
    pub fn head(&self) -> Head {
        Head::new(self.head_seq, &self.head_hash)
    }

    /// Whether the row (runbook hash, variables, who, when) is covered by
    /// the chain: false for a deployment recorded by an older golive.
    pub fn row_covered(&self) -> bool {
        self.binding == Binding::Covered
    }
}

/// What a new deployment records.
#[derive(Debug, Clone)]
pub struct NewDeployment {
    pub runbook_path: String,
    pub runbook_sha256: String,
    pub started_by: String,
    /// Plain variables only: secrets are never stored.
    pub vars: Value,
}

/// One recorded change.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Event {
    pub deployment: String,
    pub seq: i64,
    pub at: String,
    pub kind: String,
    pub item: Option<String>,
    pub actor: Option<String>,
    pub data: Value,
    pub prev_hash: String,
    pub hash: String,
}

/// An event to append.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub kind: String,
    pub item: Option<String>,
    pub actor: Option<String>,
    pub data: Value,
}

impl NewEvent {
    pub fn new(kind: &str, data: Value) -> Self {
        NewEvent {
            kind: kind.into(),
            item: None,
            actor: None,
            data,
        }
    }

    pub fn item(mut self, item: &str) -> Self {
        self.item = Some(item.into());
        self
    }

    pub fn actor(mut self, actor: &str) -> Self {
        self.actor = Some(actor.into());
        self
    }
}

/// The PostgreSQL channel every append is announced on, as `SEQ:DEPLOYMENT`.
pub const APPENDS_CHANNEL: &str = "golive_appends";

const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../migrations/0001_events.sql")),
    (2, include_str!("../migrations/0002_kept_state.sql")),
    (3, include_str!("../migrations/0003_server.sql")),
    (4, include_str!("../migrations/0004_identity.sql")),
    (5, include_str!("../migrations/0005_agents.sql")),
];

/// How a deployment's state follows its events: the store calls it in the
/// transaction of every append, so the state it keeps is always that of the
/// chain's head. It knows nothing of what the events mean; the lifecycle
/// that gives them meaning implements it.
pub trait Projection: Send + Sync + std::fmt::Debug {
    /// The state after `events` (just chained, in order), from `before`,
    /// the state kept at the event before the first of them (None: no
    /// event yet). An error (a damaged state) leaves the kept state as it
    /// was, behind the head, where reading it finds it.
    fn apply(&self, before: Option<&str>, events: &[Event]) -> Result<String, String>;
}

/// The state kept for a deployment ([`Store::kept`]): what the projection
/// made of its events up to `seq`, whose hash is `hash`.
#[derive(Debug, Clone, PartialEq)]
pub struct KeptRow {
    pub seq: i64,
    pub hash: String,
    pub state: String,
    /// The deployment's head when it was read, and whether the state is
    /// that of the head.
    pub head_seq: i64,
    pub current: bool,
}

#[derive(Debug, Clone)]
enum Backend {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// A deployment's write lock, from [`Store::lock`]; released when dropped.
pub struct WriteLock {
    _held: Held,
}

impl WriteLock {
    /// Release the lock now and return once it is free for every process.
    /// Dropping it releases it too, but on PostgreSQL the server frees a
    /// lock whose connection is dropped only when it notices the closed
    /// socket, a moment after the drop: a process that takes the same lock
    /// again at once must release it with this first.
    pub async fn release(self) {
        match self._held {
            Held::File { _file } => drop(_file),
            Held::Postgres { _conn: mut conn } => {
                // the connection holds this lock alone
                let _ = sqlx::query("SELECT pg_advisory_unlock_all()")
                    .execute(&mut conn)
                    .await;
                let _ = sqlx::Connection::close(conn).await;
            }
            Held::Pooled { _lock: mut lock } => {
                if let Some(conn) = lock.conn.take() {
                    PooledLock::free(conn, lock.key).await;
                }
            }
        }
    }
}

/// What holds the lock: kept for its drop, which releases it.
enum Held {
    File { _file: std::fs::File },
    Postgres { _conn: sqlx::PgConnection },
    Pooled { _lock: PooledLock },
}

/// A session advisory lock on a connection of the store's lock pool: on
/// drop it is released and the connection goes back to the pool, or, when
/// the release fails, the connection is closed (and the lock with it). A
/// new connection per write would cost more than the write.
#[derive(Debug)]
struct PooledLock {
    conn: Option<sqlx::pool::PoolConnection<sqlx::Postgres>>,
    key: i64,
}

impl PooledLock {
    /// Release the lock on its connection, which goes back to the pool, or
    /// is closed (and the lock with it) when the release fails.
    async fn free(mut conn: sqlx::pool::PoolConnection<sqlx::Postgres>, key: i64) {
        let released: Result<bool, sqlx::Error> =
            sqlx::query_scalar("SELECT pg_advisory_unlock($1)")
                .bind(key)
                .fetch_one(&mut *conn)
                .await;
        if !matches!(released, Ok(true)) {
            // closed, never back in the pool holding the lock
            let _ = sqlx::Connection::close(conn.detach()).await;
        }
    }
}

impl Drop for PooledLock {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else {
            return;
        };
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(Self::free(conn, self.key));
            }
            Err(_) => drop(conn.detach()),
        }
    }
}

/// Deployments and their event logs, in SQLite or PostgreSQL.
#[derive(Debug, Clone)]
pub struct Store {
    backend: Backend,
    /// The SQLite file, read directly by `verify`.
    sqlite_path: Option<std::path::PathBuf>,
    /// Where it is, for messages (never with a password).
    pub location: String,
    /// What keeps each deployment's state as events are appended.
    projection: Option<std::sync::Arc<dyn Projection>>,
    /// PostgreSQL: the connections the write locks are held on, apart from
    /// the pool the commands read and append through (a command holding
    /// its lock must never wait for its own pool).
    locks: Option<PgPool>,
    /// The head each deployment had after this process's last append to
    /// it: what a server answers as a write's new version without reading
    /// the row again.
    appended: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, i64>>>,
    /// The kept state this process last read or wrote for a deployment,
    /// with the seq and hash it is the state at: an append whose locked
    /// head is that seq and hash starts from it instead of reading the
    /// state again (the hash names the whole chain up to it, and the state
    /// is a function of that chain).
    states: std::sync::Arc<std::sync::Mutex<Remembered>>,
}

/// The kept states a process remembers, bounded in number and in bytes:
/// forgetting one costs a read.
#[derive(Debug, Default)]
struct Remembered {
    by_deployment: std::collections::HashMap<String, KeptAt>,
    bytes: usize,
}

/// At most this many deployments' states remembered…
const REMEMBERED_STATES: usize = 1024;
/// …holding at most this many bytes together; a state larger than a
/// sixteenth of it is not remembered.
const REMEMBERED_BYTES: usize = 64 << 20;

impl Remembered {
    fn keep(&mut self, deployment: &str, kept: KeptAt) {
        if let Some(old) = self.by_deployment.remove(deployment) {
            self.bytes -= old.state.len();
        }
        if kept.state.len() > REMEMBERED_BYTES / 16 {
            return;
        }
        // the deployments being written now, not every one ever read
        if self.by_deployment.len() >= REMEMBERED_STATES
            || self.bytes + kept.state.len() > REMEMBERED_BYTES
        {
            self.by_deployment.clear();
            self.bytes = 0;
        }
        self.bytes += kept.state.len();
        self.by_deployment.insert(deployment.to_string(), kept);
    }
}

/// A kept state and the head it is the state at.
#[derive(Debug, Clone)]
struct KeptAt {
    seq: i64,
    hash: String,
    state: String,
}

/// A deployment's row, and the link its chain starts with: the first
/// event's `prev_hash`.
macro_rules! deployment_sql {
    () => {
        "SELECT id, runbook_path, runbook_sha256, started_by, created_at, vars, head_seq, head_hash, (SELECT prev_hash FROM events WHERE events.deployment_id = deployments.id AND events.seq = 1) AS first_link FROM deployments"
    };
}

/// Run the same query text on either backend (placeholders `$1`, `$2` … in
/// order, which both accept).
macro_rules! on_both {
    ($self:expr, |$pool:ident| $body:expr) => {
        match &$self.backend {
            Backend::Sqlite($pool) => $body,
            Backend::Postgres($pool) => $body,
        }
    };
}

/// The head of `deployment` read inside `tx` with `sql` (from
/// [`Store::head_locked`]), or the error that there is no such deployment.
macro_rules! locked_head {
    ($tx:expr, $sql:expr, $deployment:expr) => {{
        let head: Option<(i64, String)> = sqlx::query_as($sql)
            .bind($deployment)
            .fetch_optional(&mut *$tx)
            .await?;
        head.ok_or_else(|| StoreError::NoDeployment($deployment.into()))?
    }};
}

fn now() -> String {
    jiff::Timestamp::now().to_string()
}

impl Store {
    /// Open `sqlite://PATH`, a bare path (SQLite), or `postgres://…`,
    /// creating the schema when missing.
    pub async fn open(location: &str) -> Result<Store, StoreError> {
        Store::connect(location, true).await
    }

    /// Open a store that exists already, for the commands that read or add
    /// to a recorded deployment: when there is none (no SQLite file, no
    /// golive schema in the PostgreSQL database) it says so and creates
    /// nothing.
    pub async fn open_existing(location: &str) -> Result<Store, StoreError> {
        Store::connect(location, false).await
    }

    async fn connect(location: &str, create: bool) -> Result<Store, StoreError> {
        let shown = redact_url(location);
        let open_err = |e: sqlx::Error| StoreError::Open(shown.clone(), e.to_string());
        let mut sqlite_path = None;
        let mut locks = None;
        let backend =
            if location.starts_with("postgres://") || location.starts_with("postgresql://") {
                let pool = connect_postgres(location)
                    .await
                    .map_err(|cause| StoreError::Open(shown.clone(), cause))?;
                locks = Some(
                    pg_pool_options()
                        .max_connections(64)
                        .acquire_timeout(Duration::from_secs(60))
                        .connect_lazy_with((*pool.connect_options()).clone()),
                );
                Backend::Postgres(pool)
            } else {
                let path = location
                    .strip_prefix("sqlite://")
                    .or_else(|| location.strip_prefix("sqlite:"))
                    .unwrap_or(location);
                if !create && !std::path::Path::new(path).is_file() {
                    return Err(StoreError::Missing(shown));
                }
                if let Some(dir) = std::path::Path::new(path).parent()
                    && !dir.as_os_str().is_empty()
                {
                    std::fs::create_dir_all(dir)
                        .map_err(|e| StoreError::Open(shown.clone(), e.to_string()))?;
                }
                let opts = SqliteConnectOptions::from_str(&format!("sqlite://{path}"))
                    .map_err(open_err)?
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Full)
                    // many processes may write at once: wait for the lock, never
                    // report "database is locked"
                    .busy_timeout(Duration::from_secs(60));
                let pool = SqlitePoolOptions::new()
                    .max_connections(4)
                    .connect_with(opts)
                    .await
                    .map_err(open_err)?;
                sqlite_path = Some(std::path::PathBuf::from(path));
                Backend::Sqlite(pool)
            };
        let store = Store {
            backend,
            sqlite_path,
            location: shown,
            projection: None,
            locks,
            appended: Default::default(),
            states: Default::default(),
        };
        if !create && !store.has_schema().await? {
            return Err(StoreError::Missing(store.location));
        }
        store.migrate().await?;
        Ok(store)
    }

    /// Follow the appends every process makes to this store: (deployment,
    /// its head's number) as each commits, and (`""`, 0) each time the
    /// follower (re)connects, when some may have been missed: a reader then
    /// looks at everything it follows (a missed notification costs a query,
    /// never an event). PostgreSQL only (LISTEN/NOTIFY); `None` on SQLite,
    /// whose readers poll. Ends when the receiver is dropped.
    pub async fn follow_appends(&self) -> Option<tokio::sync::mpsc::Receiver<(String, i64)>> {
        let Backend::Postgres(pool) = &self.backend else {
            return None;
        };
        let pool = pool.clone();
        let (tx, rx) = tokio::sync::mpsc::channel(4096);
        tokio::spawn(async move {
            loop {
                let listening = async {
                    let mut l = sqlx::postgres::PgListener::connect_with(&pool).await?;
                    l.listen(APPENDS_CHANNEL).await?;
                    Ok::<_, sqlx::Error>(l)
                };
                let mut l = match listening.await {
                    Ok(l) => l,
                    Err(_) => {
                        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                        continue;
                    }
                };
                if tx.send((String::new(), 0)).await.is_err() {
                    return;
                }
                loop {
                    match l.try_recv().await {
                        Ok(Some(n)) => {
                            let (seq, id) = n.payload().split_once(':').unwrap_or(("0", ""));
                            let seq = seq.parse().unwrap_or(0);
                            if tx.send((id.to_string(), seq)).await.is_err() {
                                return;
                            }
                        }
                        // the connection was lost: the listener connects
                        // again at the next call; what came meanwhile is
                        // read, not heard
                        Ok(None) => {
                            if tx.send((String::new(), 0)).await.is_err() {
                                return;
                            }
                        }
                        Err(_) => break,
                    }
                }
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
        });
        Some(rx)
    }

    /// Wait for, then take, the write lock of `deployment`. A command that
    /// decides from the record and then appends (a sign-off refused when it
    /// was given already, a rollback raised once) holds it from its read to
    /// its append, so two such commands at once cannot both decide from the
    /// same record; the second reads what the first appended. Appends alone
    /// do not need it: each is one transaction on the chain's head.
    ///
    /// SQLite: an exclusive lock on the file `PATH.lock` beside the store
    /// (one for all its deployments). PostgreSQL: a session advisory lock
    /// keyed by the deployment, on a connection of its own. Released when
    /// the lock is dropped, and by the system when the process dies.
    pub async fn lock(&self, deployment: &str) -> Result<WriteLock, StoreError> {
        match &self.backend {
            Backend::Sqlite(_) => {
                let Some(db) = &self.sqlite_path else {
                    return Err(StoreError::Db("no SQLite file to lock".into()));
                };
                let mut path = db.clone().into_os_string();
                path.push(".lock");
                let file = std::fs::OpenOptions::new()
                    .create(true)
                    .truncate(false)
                    .write(true)
                    .open(&path)
                    .map_err(|e| StoreError::Db(format!("lock {}: {e}", path.display())))?;
                let file = tokio::task::spawn_blocking(move || file.lock().map(|()| file))
                    .await
                    .map_err(|e| StoreError::Db(format!("lock: {e}")))?
                    .map_err(|e| StoreError::Db(format!("lock {}: {e}", path.display())))?;
                Ok(WriteLock {
                    _held: Held::File { _file: file },
                })
            }
            Backend::Postgres(pool) => {
                let digest = sha2::Sha256::digest(format!("golive deployment {deployment}"));
                let mut key = [0u8; 8];
                key.copy_from_slice(&digest[..8]);
                let key = i64::from_be_bytes(key);
                let mut conn = match &self.locks {
                    Some(locks) => locks.acquire().await?,
                    None => pool.acquire().await?,
                };
                sqlx::query("SELECT pg_advisory_lock($1)")
                    .bind(key)
                    .execute(&mut *conn)
                    .await?;
                Ok(WriteLock {
                    _held: Held::Pooled {
                        _lock: PooledLock {
                            conn: Some(conn),
                            key,
                        },
                    },
                })
            }
        }
    }

    /// Take, without waiting, the lock that a process holds while it runs
    /// `item` of `deployment` (a procedure step's commands): None when
    /// another process holds it, that is, when the item is running now. The
    /// system releases it when its holder dies, so a step whose start is
    /// recorded and whose lock is free was left by a process that is gone.
    ///
    /// SQLite: an exclusive lock on a file of its own under `PATH.running/`
    /// beside the store. PostgreSQL: a session advisory lock keyed by the
    /// deployment and the item, on a connection of its own.
    pub async fn try_lock_running(
        &self,
        deployment: &str,
        item: &str,
    ) -> Result<Option<WriteLock>, StoreError> {
        let digest = sha2::Sha256::digest(format!("golive running {deployment} {item}"));
        match &self.backend {
            Backend::Sqlite(_) => {
                let Some(db) = &self.sqlite_path else {
                    return Err(StoreError::Db("no SQLite file to lock".into()));
                };
                let mut dir = db.clone().into_os_string();
                dir.push(".running");
                let path = std::path::PathBuf::from(dir)
                    .join(format!("{}.lock", hex::encode(&digest[..8])));
                let shown = path.display().to_string();
                let file = (|| {
                    std::fs::create_dir_all(path.parent().unwrap_or(std::path::Path::new(".")))?;
                    std::fs::OpenOptions::new()
                        .create(true)
                        .truncate(false)
                        .write(true)
                        .open(&path)
                })()
                .map_err(|e| StoreError::Db(format!("lock {shown}: {e}")))?;
                match file.try_lock() {
                    Ok(()) => Ok(Some(WriteLock {
                        _held: Held::File { _file: file },
                    })),
                    Err(std::fs::TryLockError::WouldBlock) => Ok(None),
                    Err(std::fs::TryLockError::Error(e)) => {
                        Err(StoreError::Db(format!("lock {shown}: {e}")))
                    }
                }
            }
            Backend::Postgres(pool) => {
                let mut conn = pool.acquire().await?.detach();
                let mut key = [0u8; 8];
                key.copy_from_slice(&digest[..8]);
                let taken: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
                    .bind(i64::from_be_bytes(key))
                    .fetch_one(&mut conn)
                    .await?;
                Ok(taken.then_some(WriteLock {
                    _held: Held::Postgres { _conn: conn },
                }))
            }
        }
    }

    /// Whether golive's schema is there (its migrations table).
    async fn has_schema(&self) -> Result<bool, StoreError> {
        let n: i64 = match &self.backend {
            Backend::Sqlite(pool) => {
                sqlx::query_scalar(
                    "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'golive_migrations'",
                )
                .fetch_one(pool)
                .await?
            }
            Backend::Postgres(pool) => {
                sqlx::query_scalar(
                    "SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = 'golive_migrations'",
                )
                .fetch_one(pool)
                .await?
            }
        };
        Ok(n > 0)
    }

    /// Apply the embedded migrations not applied yet. Several processes may
    /// open a new store at once: the whole check-and-apply holds a lock
    /// (SQLite: an immediate transaction; PostgreSQL: an advisory lock).
    async fn migrate(&self) -> Result<(), StoreError> {
        const CREATE: &str = "CREATE TABLE IF NOT EXISTS golive_migrations (version BIGINT PRIMARY KEY, applied_at TEXT NOT NULL)";
        let statements = |sql: &'static str| {
            sql.split(';')
                .map(str::trim)
                .filter(|s| !s.is_empty() && !s.lines().all(|l| l.trim_start().starts_with("--")))
        };
        macro_rules! apply {
            ($tx:expr) => {{
                sqlx::query(CREATE).execute(&mut *$tx).await?;
                for (version, sql) in MIGRATIONS {
                    let done: Option<i64> = sqlx::query_scalar(
                        "SELECT version FROM golive_migrations WHERE version = $1",
                    )
                    .bind(version)
                    .fetch_optional(&mut *$tx)
                    .await?;
                    if done.is_some() {
                        continue;
                    }
                    for stmt in statements(sql) {
                        sqlx::query(stmt).execute(&mut *$tx).await?;
                    }
                    sqlx::query(
                        "INSERT INTO golive_migrations (version, applied_at) VALUES ($1, $2)",
                    )
                    .bind(version)
                    .bind(now())
                    .execute(&mut *$tx)
                    .await?;
                }
            }};
        }
        // the common case: every migration applied, seen without taking
        // the write lock
        let latest = MIGRATIONS.last().map_or(0, |m| m.0);
        let applied: Result<Option<i64>, sqlx::Error> = on_both!(self, |pool| {
            sqlx::query_scalar("SELECT max(version) FROM golive_migrations")
                .fetch_one(pool)
                .await
        });
        if matches!(applied, Ok(Some(v)) if v >= latest) {
            return Ok(());
        }
        match &self.backend {
            Backend::Sqlite(pool) => {
                let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
                apply!(tx);
                tx.commit().await?;
            }
            Backend::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                sqlx::query("SELECT pg_advisory_xact_lock(7460551)")
                    .execute(&mut *tx)
                    .await?;
                apply!(tx);
                tx.commit().await?;
            }
        }
        Ok(())
    }

    /// Record a new deployment; returns its id (`d-` and a time-based suffix).
    pub async fn create_deployment(&self, d: &NewDeployment) -> Result<String, StoreError> {
        let ts = jiff::Timestamp::now();
        // time first (ids sort by creation), then 8 hex digits unique to this
        // process, instant and call
        static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let salt = sha2::Sha256::digest(
            format!("{}:{}:{n}", ts.as_nanosecond(), std::process::id()).as_bytes(),
        );
        let id = format!(
            "d-{}-{}",
            ts.strftime("%Y%m%dT%H%M%S"),
            hex::encode(&salt[..4])
        );
        let created_at = ts.to_string();
        let vars = d.vars.to_string();
        // the chain starts from the row itself
        let head = row_genesis(
            &id,
            &d.runbook_path,
            &d.runbook_sha256,
            &d.started_by,
            &created_at,
            &vars,
        );
        on_both!(self, |pool| {
            sqlx::query(
                "INSERT INTO deployments (id, runbook_path, runbook_sha256, started_by, created_at, vars, head_seq, head_hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(&id)
            .bind(&d.runbook_path)
            .bind(&d.runbook_sha256)
            .bind(&d.started_by)
            .bind(&created_at)
            .bind(&vars)
            .bind(0i64)
            .bind(&head)
            .execute(pool)
            .await?;
            Ok::<_, StoreError>(())
        })?;
        Ok(id)
    }

    /// The deployment `id`, or the newest one when `id` is None.
    pub async fn deployment(&self, id: Option<&str>) -> Result<Deployment, StoreError> {
        let sql_one = concat!(deployment_sql!(), " WHERE id = $1");
        let sql_newest = concat!(
            deployment_sql!(),
            " ORDER BY created_at DESC, id DESC LIMIT 1"
        );
        let d = match &self.backend {
            Backend::Sqlite(pool) => {
                let row: Option<SqliteRow> = match id {
                    Some(i) => sqlx::query(sql_one).bind(i).fetch_optional(pool).await?,
                    None => sqlx::query(sql_newest).fetch_optional(pool).await?,
                };
                row.map(|r| deployment_from(&r)).transpose()?
            }
            Backend::Postgres(pool) => {
                let row: Option<PgRow> = match id {
                    Some(i) => sqlx::query(sql_one).bind(i).fetch_optional(pool).await?,
                    None => sqlx::query(sql_newest).fetch_optional(pool).await?,
                };
                row.map(|r| deployment_from(&r)).transpose()?
            }
        };
        d.ok_or_else(|| match id {
            Some(i) => StoreError::NoDeployment(i.to_string()),
            None => StoreError::Empty,
        })
    }

    /// The newest deployment of the runbook at `path`, if any.
    pub async fn deployment_for(&self, path: &str) -> Result<Option<Deployment>, StoreError> {
        let sql = "SELECT id FROM deployments WHERE runbook_path = $1 ORDER BY created_at DESC, id DESC LIMIT 1";
        let id: Option<String> = on_both!(self, |pool| {
            sqlx::query_scalar(sql)
                .bind(path)
                .fetch_optional(pool)
                .await?
        });
        match id {
            Some(id) => self.deployment(Some(&id)).await.map(Some),
            None => Ok(None),
        }
    }

    /// Every deployment of the runbook at `path`, newest first.
    pub async fn deployments_for(&self, path: &str) -> Result<Vec<Deployment>, StoreError> {
        let sql = concat!(
            deployment_sql!(),
            " WHERE runbook_path = $1 ORDER BY created_at DESC, id DESC"
        );
        match &self.backend {
            Backend::Sqlite(pool) => {
                let rows: Vec<SqliteRow> = sqlx::query(sql).bind(path).fetch_all(pool).await?;
                rows.iter().map(deployment_from).collect()
            }
            Backend::Postgres(pool) => {
                let rows: Vec<PgRow> = sqlx::query(sql).bind(path).fetch_all(pool).await?;
                rows.iter().map(deployment_from).collect()
            }
        }
    }

    /// Append events in one transaction, each linked to its predecessor.
    /// Concurrent appenders to one deployment are serialised by the database
    /// (SQLite: an immediate transaction; PostgreSQL: a row lock).
    pub async fn append(
        &self,
        deployment: &str,
        events: &[NewEvent],
    ) -> Result<Vec<Event>, StoreError> {
        Ok(self.append_with(deployment, events, None).await?.1)
    }

    /// Append the results an agent reports for the jobs it claimed (the
    /// event `events[i]` the result of `jobs[i]`), and mark those jobs
    /// done, in one transaction. A job not claimed by `agent` any more (its
    /// lease ran out and another took it, or it was done) has its result
    /// left out: `None` in its place. A result is recorded once.
    pub async fn append_for_jobs(
        &self,
        deployment: &str,
        events: &[NewEvent],
        jobs: &[&str],
        agent: &str,
    ) -> Result<Vec<Option<Event>>, StoreError> {
        if events.len() != jobs.len() {
            return Err(StoreError::Db(format!(
                "{} results for {} jobs",
                events.len(),
                jobs.len()
            )));
        }
        let (kept, out) = self
            .append_with(deployment, events, Some((jobs, agent)))
            .await?;
        let mut out = out.into_iter();
        Ok(kept
            .into_iter()
            .map(|k| if k { out.next() } else { None })
            .collect())
    }

    /// Append `events` in one transaction; with `jobs`, only the events
    /// whose job (`jobs.0[i]` for `events[i]`) is still claimed by the
    /// agent `jobs.1`, those jobs marked done. Which events were kept, and
    /// the events appended.
    async fn append_with(
        &self,
        deployment: &str,
        events: &[NewEvent],
        jobs: Option<(&[&str], &str)>,
    ) -> Result<(Vec<bool>, Vec<Event>), StoreError> {
        let (begin, head_sql) = self.head_locked();
        on_both!(self, |pool| {
            let mut tx = pool.begin_with(begin).await?;
            let (seq, hash) = locked_head!(tx, head_sql, deployment);
            let known = self.state_at(deployment, seq, &hash);
            // a state remembered, not read: the stored one is replaced only
            // where it is the state at this head (one missing or behind
            // stays so, as when it is read)
            let remembered = known.is_some().then(|| hash.clone());
            // the kept state read after the head is locked, in a statement
            // of its own: one statement joining it to the locked row would
            // read it as it was when that statement began, before a
            // concurrent append committed (PostgreSQL re-reads only the
            // locked row)
            let (kept_seq, kept_state): (Option<i64>, Option<String>) = if self.projection.is_none()
            {
                (None, None)
            } else if let Some(state) = known {
                (Some(seq), Some(state))
            } else {
                let row: Option<(i64, String)> = sqlx::query_as(
                    "SELECT seq, state FROM deployment_state WHERE deployment_id = $1",
                )
                .bind(deployment)
                .fetch_optional(&mut *tx)
                .await?;
                row.map_or((None, None), |(a, b)| (Some(a), Some(b)))
            };
            let mut kept = vec![true; events.len()];
            if let Some((jobs, agent)) = jobs {
                for (k, job) in kept.iter_mut().zip(jobs) {
                    *k = sqlx::query(
                        "UPDATE jobs SET state = 'done', lease_until = NULL WHERE id = $1 AND agent = $2 AND state = 'claimed'",
                    )
                    .bind(*job)
                    .bind(agent)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected()
                        > 0;
                }
            }
            let events: Vec<NewEvent> = events
                .iter()
                .zip(&kept)
                .filter(|(_, k)| **k)
                .map(|(e, _)| e.clone())
                .collect();
            if events.is_empty() {
                tx.rollback().await?;
                return Ok((kept, Vec::new()));
            }
            let out = chain_events(deployment, seq, hash, &events);
            let Some(last) = out.last() else {
                tx.rollback().await?;
                return Ok((kept, out));
            };
            // the state after these events: a state missing or behind the
            // head (kept by an older golive, or damaged) is left as it is,
            // as is one the projection cannot read: reading it says so, and
            // `golive audit rebuild` writes it again
            let after = self.projection.as_ref().and_then(|p| {
                let before = match (kept_seq, kept_state) {
                    (Some(at), Some(state)) if at == seq => Some(Some(state)),
                    (None, _) if seq == 0 => Some(None),
                    _ => None,
                };
                before.and_then(|b| p.apply(b.as_deref(), &out).ok())
            });
            let was = remembered.as_deref().map(|h| (seq, h));
            // the events beyond one insert's worth first
            let (earlier, tail) = out.split_at(out.len().saturating_sub(INSERT_CHUNK));
            for chunk in earlier.chunks(INSERT_CHUNK) {
                let mut qb = sqlx::QueryBuilder::new("");
                qb.push_events(chunk).build().execute(&mut *tx).await?;
            }
            match &self.backend {
                // PostgreSQL: the last events inserted, the head moved, the
                // state kept and the append announced (a NOTIFY is
                // delivered with its transaction, on commit, to every
                // process following this store) in one statement
                Backend::Postgres(_) => {
                    let mut qb = sqlx::QueryBuilder::new("WITH ins AS (");
                    qb.push_events(tail).push(" RETURNING 1), moved AS (");
                    qb.push_head(deployment, last.seq, &last.hash)
                        .push(" RETURNING id)");
                    if let Some(after) = &after {
                        qb.push(", kept AS (");
                        qb.push_kept(deployment, (last.seq, &last.hash), after, was)
                            .push(" RETURNING 1)");
                    }
                    qb.push(" SELECT pg_notify(")
                        .push_bind(APPENDS_CHANNEL)
                        .push(", ")
                        .push_bind(format!("{}:{deployment}", last.seq))
                        .push(") FROM moved");
                    qb.build().execute(&mut *tx).await?;
                }
                Backend::Sqlite(_) => {
                    let mut qb = sqlx::QueryBuilder::new("");
                    qb.push_events(tail).build().execute(&mut *tx).await?;
                    let mut qb = sqlx::QueryBuilder::new("");
                    qb.push_head(deployment, last.seq, &last.hash)
                        .build()
                        .execute(&mut *tx)
                        .await?;
                    if let Some(after) = &after {
                        let mut qb = sqlx::QueryBuilder::new("");
                        qb.push_kept(deployment, (last.seq, &last.hash), after, was)
                            .build()
                            .execute(&mut *tx)
                            .await?;
                    }
                }
            }
            let (last_seq, last_hash) = (last.seq, last.hash.clone());
            tx.commit().await?;
            self.appended_to(deployment, last_seq);
            if let Some(after) = after {
                self.remember_state(deployment, last_seq, &last_hash, after);
            }
            Ok((kept, out))
        })
    }

    /// The head of `deployment` after this process's last append to it
    /// (None: it appended none since it opened the store).
    pub fn appended_head(&self, deployment: &str) -> Option<i64> {
        self.appended
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(deployment)
            .copied()
    }

    /// The kept state at `seq`/`hash` this process last read or wrote.
    fn state_at(&self, deployment: &str, seq: i64, hash: &str) -> Option<String> {
        let m = self.states.lock().unwrap_or_else(|p| p.into_inner());
        m.by_deployment
            .get(deployment)
            .filter(|k| k.seq == seq && k.hash == hash)
            .map(|k| k.state.clone())
    }

    fn remember_state(&self, deployment: &str, seq: i64, hash: &str, state: String) {
        let mut m = self.states.lock().unwrap_or_else(|p| p.into_inner());
        m.keep(
            deployment,
            KeptAt {
                seq,
                hash: hash.to_string(),
                state,
            },
        );
    }

    fn appended_to(&self, deployment: &str, seq: i64) {
        let mut m = self.appended.lock().unwrap_or_else(|p| p.into_inner());
        // a bound on what a long-lived server keeps: forgetting costs a read
        if m.len() >= 100_000 {
            m.clear();
        }
        let h = m.entry(deployment.to_string()).or_insert(seq);
        *h = (*h).max(seq);
    }

    /// How a transaction that moves a deployment's head begins, and the
    /// query that reads the head inside it, locked: SQLite takes the write
    /// lock at BEGIN; PostgreSQL locks the row.
    fn head_locked(&self) -> (&'static str, &'static str) {
        match &self.backend {
            Backend::Sqlite(_) => (
                "BEGIN IMMEDIATE",
                "SELECT head_seq, head_hash FROM deployments WHERE id = $1",
            ),
            Backend::Postgres(_) => (
                "BEGIN",
                "SELECT head_seq, head_hash FROM deployments WHERE id = $1 FOR UPDATE",
            ),
        }
    }

    /// Keep each deployment's state with `projection`, from now on: every
    /// append of this store updates it in the append's own transaction.
    pub fn with_projection(mut self, projection: std::sync::Arc<dyn Projection>) -> Store {
        self.projection = Some(projection);
        self
    }

    /// The state kept for `deployment` as stored, read with its head in
    /// one query (None: none is kept). It is current when its `seq` and
    /// `hash` are the head's.
    pub async fn kept(&self, deployment: &str) -> Result<Option<KeptRow>, StoreError> {
        let sql = "SELECT d.head_seq, d.head_hash, k.seq, k.hash, k.state FROM deployments d LEFT JOIN deployment_state k ON k.deployment_id = d.id WHERE d.id = $1";
        type Row = (i64, String, Option<i64>, Option<String>, Option<String>);
        let row: Option<Row> = on_both!(self, |pool| {
            sqlx::query_as(sql)
                .bind(deployment)
                .fetch_optional(pool)
                .await?
        });
        let (head_seq, head_hash, seq, hash, state) =
            row.ok_or_else(|| StoreError::NoDeployment(deployment.into()))?;
        Ok(match (seq, hash, state) {
            (Some(seq), Some(hash), Some(state)) => Some(KeptRow {
                current: {
                    let current = seq == head_seq && hash == head_hash;
                    if current {
                        self.remember_state(deployment, seq, &hash, state.clone());
                    }
                    current
                },
                head_seq,
                seq,
                hash,
                state,
            }),
            _ => None,
        })
    }

    /// Write the state kept for `deployment` (a rebuild from its chain):
    /// only while its head is still `seq`/`hash`, so a state made from a
    /// chain that has moved on since is never kept. False when the head
    /// moved: read the chain again and retry.
    pub async fn put_kept(
        &self,
        deployment: &str,
        seq_at: i64,
        hash_at: &str,
        state: &str,
    ) -> Result<bool, StoreError> {
        let (begin, head_sql) = self.head_locked();
        on_both!(self, |pool| {
            let mut tx = pool.begin_with(begin).await?;
            let (seq, hash) = locked_head!(tx, head_sql, deployment);
            if seq != seq_at || hash != hash_at {
                return Ok(false);
            }
            let mut qb = sqlx::QueryBuilder::new("");
            qb.push_kept(deployment, (seq_at, hash_at), state, None)
                .build()
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(true)
        })
    }

    /// The events of `deployment` after `seq`, in order: what a reader of
    /// the kept state needs beyond it (the day's evaluations of a watch).
    pub async fn events_after(&self, deployment: &str, seq: i64) -> Result<Vec<Event>, StoreError> {
        let sql = "SELECT deployment_id, seq, at, kind, item, actor, data, prev_hash, hash FROM events WHERE deployment_id = $1 AND seq > $2 ORDER BY seq";
        match &self.backend {
            Backend::Sqlite(pool) => {
                let rows: Vec<SqliteRow> = sqlx::query(sql)
                    .bind(deployment)
                    .bind(seq)
                    .fetch_all(pool)
                    .await?;
                rows.iter().map(event_from).collect()
            }
            Backend::Postgres(pool) => {
                let rows: Vec<PgRow> = sqlx::query(sql)
                    .bind(deployment)
                    .bind(seq)
                    .fetch_all(pool)
                    .await?;
                rows.iter().map(event_from).collect()
            }
        }
    }

    /// Every event of a deployment, in order.
    pub async fn events(&self, deployment: &str) -> Result<Vec<Event>, StoreError> {
        let sql = "SELECT deployment_id, seq, at, kind, item, actor, data, prev_hash, hash FROM events WHERE deployment_id = $1 ORDER BY seq";
        match &self.backend {
            Backend::Sqlite(pool) => {
                let rows: Vec<SqliteRow> =
                    sqlx::query(sql).bind(deployment).fetch_all(pool).await?;
                rows.iter().map(event_from).collect()
            }
            Backend::Postgres(pool) => {
                let rows: Vec<PgRow> = sqlx::query(sql).bind(deployment).fetch_all(pool).await?;
                rows.iter().map(event_from).collect()
            }
        }
    }

    /// Walk the chain of `deployment` from its row: the first row that does
    /// not hold, or Ok with the number of events checked. Rows are hashed as
    /// stored (the data's text, not a re-serialisation), so any byte changed
    /// is found.
    pub async fn verify(&self, deployment: &str) -> Result<Result<i64, Violation>, StoreError> {
        self.verify_to(deployment, None).await
    }

    /// [`Store::verify`], and that the chain still reaches `kept`, a head
    /// printed earlier and kept elsewhere: rows removed from the end, with
    /// the recorded head set back, hold by themselves, but no longer reach it.
    pub async fn verify_to(
        &self,
        deployment: &str,
        kept: Option<&Head>,
    ) -> Result<Result<i64, Violation>, StoreError> {
        let d = self.deployment(Some(deployment)).await?;
        let kept = kept.cloned();
        let sql = "SELECT seq, at, kind, item, actor, data, prev_hash, hash FROM events WHERE deployment_id = $1 ORDER BY seq";
        if let Backend::Sqlite(pool) = &self.backend {
            // fold the write-ahead log into the database first: reading a
            // million rows through a large WAL is several times slower
            sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                .execute(pool)
                .await?;
        }
        if let Some(path) = self.sqlite_path.clone() {
            // SQLite: read the chain on a blocking thread with a direct reader;
            // the async driver hands rows over one at a time and is several
            // times slower over a million of them
            return tokio::task::spawn_blocking(move || verify_sqlite(&path, &d, kept.as_ref()))
                .await
                .map_err(|e| StoreError::Db(e.to_string()))?;
        }
        let mut check = Chain::new(&d, kept.as_ref());
        on_both!(self, |pool| {
            use futures_util::TryStreamExt;
            let mut rows = sqlx::query(sql).bind(deployment).fetch(pool);
            while let Some(row) = rows.try_next().await? {
                // fields borrowed from the row: no copy per event
                let step = check.step(
                    row.try_get(0)?,
                    row.try_get(1)?,
                    row.try_get(2)?,
                    row.try_get(3)?,
                    row.try_get(4)?,
                    row.try_get(5)?,
                    row.try_get(6)?,
                    row.try_get(7)?,
                );
                if let Err(v) = step {
                    return Ok(Err(v));
                }
            }
            Ok(check.end())
        })
    }
}

const VERIFY_SQL: &str = "SELECT seq, at, kind, item, actor, data, prev_hash, hash FROM events WHERE deployment_id = ?1 ORDER BY seq";

/// Walk a deployment's chain in a SQLite file through a read-only
/// connection of its own (WAL: it sees the last committed state).
fn verify_sqlite(
    path: &std::path::Path,
    d: &Deployment,
    kept: Option<&Head>,
) -> Result<Result<i64, Violation>, StoreError> {
    use rusqlite::{Connection, OpenFlags};
    let db = |e: rusqlite::Error| StoreError::Db(e.to_string());
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(db)?;
    conn.busy_timeout(Duration::from_secs(60)).map_err(db)?;
    let mut stmt = conn.prepare(VERIFY_SQL).map_err(db)?;
    let mut rows = stmt.query([&d.id]).map_err(db)?;
    let mut check = Chain::new(d, kept);
    // a text column read as stored; a row whose column holds another type was
    // edited, and reads as text that cannot match its hash
    fn text<'r>(row: &'r rusqlite::Row<'_>, i: usize) -> Result<Option<&'r str>, StoreError> {
        use rusqlite::types::ValueRef;
        Ok(
            match row.get_ref(i).map_err(|e| StoreError::Db(e.to_string()))? {
                ValueRef::Null => None,
                ValueRef::Text(t) | ValueRef::Blob(t) => {
                    Some(std::str::from_utf8(t).unwrap_or("\u{fffd}"))
                }
                ValueRef::Integer(_) | ValueRef::Real(_) => Some("\u{fffd}"),
            },
        )
    }
    while let Some(row) = rows.next().map_err(db)? {
        let seq: i64 = row.get(0).map_err(db)?;
        let step = check.step(
            seq,
            text(row, 1)?.unwrap_or_default(),
            text(row, 2)?.unwrap_or_default(),
            text(row, 3)?,
            text(row, 4)?,
            text(row, 5)?.unwrap_or_default(),
            text(row, 6)?.unwrap_or_default(),
            text(row, 7)?.unwrap_or_default(),
        );
        if let Err(v) = step {
            return Ok(Err(v));
        }
    }
    Ok(check.end())
}

/// Rows per INSERT statement: 9 parameters a row stays far below both
/// databases' limits on parameters per statement.
const INSERT_CHUNK: usize = 500;

/// The statements of an append, pushed onto a query of either database
/// (the placeholders are the builder's): one place for each, whether an
/// append sends them together or apart.
trait AppendSql {
    /// The insert of `events` into the log.
    fn push_events(&mut self, events: &[Event]) -> &mut Self;
    /// The head of `deployment` moved to `seq`/`hash`.
    fn push_head(&mut self, deployment: &str, seq: i64, hash: &str) -> &mut Self;
    /// The kept state of `deployment` written as the state at `at`: where
    /// `was` is given, only over a stored state still at `was` (one missing
    /// or behind stays so); else inserted or replaced.
    fn push_kept(
        &mut self,
        deployment: &str,
        at: (i64, &str),
        state: &str,
        was: Option<(i64, &str)>,
    ) -> &mut Self;
}

impl<DB> AppendSql for sqlx::QueryBuilder<DB>
where
    DB: sqlx::Database,
    for<'t> String: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    for<'t> Option<String>: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    for<'t> i64: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
{
    fn push_events(&mut self, events: &[Event]) -> &mut Self {
        self.push(
            "INSERT INTO events (deployment_id, seq, at, kind, item, actor, data, prev_hash, hash) ",
        );
        self.push_values(events, |mut b, e| {
            b.push_bind(e.deployment.clone())
                .push_bind(e.seq)
                .push_bind(e.at.clone())
                .push_bind(e.kind.clone())
                .push_bind(e.item.clone())
                .push_bind(e.actor.clone())
                .push_bind(e.data.to_string())
                .push_bind(e.prev_hash.clone())
                .push_bind(e.hash.clone());
        });
        self
    }

    fn push_head(&mut self, deployment: &str, seq: i64, hash: &str) -> &mut Self {
        self.push("UPDATE deployments SET head_seq = ")
            .push_bind(seq)
            .push(", head_hash = ")
            .push_bind(hash.to_string())
            .push(" WHERE id = ")
            .push_bind(deployment.to_string())
    }

    fn push_kept(
        &mut self,
        deployment: &str,
        (seq, hash): (i64, &str),
        state: &str,
        was: Option<(i64, &str)>,
    ) -> &mut Self {
        match was {
            Some((was_seq, was_hash)) => self
                .push("UPDATE deployment_state SET seq = ")
                .push_bind(seq)
                .push(", hash = ")
                .push_bind(hash.to_string())
                .push(", state = ")
                .push_bind(state.to_string())
                .push(" WHERE deployment_id = ")
                .push_bind(deployment.to_string())
                .push(" AND seq = ")
                .push_bind(was_seq)
                .push(" AND hash = ")
                .push_bind(was_hash.to_string()),
            // both databases take this upsert
            None => self
                .push("INSERT INTO deployment_state (deployment_id, seq, hash, state) VALUES (")
                .push_bind(deployment.to_string())
                .push(", ")
                .push_bind(seq)
                .push(", ")
                .push_bind(hash.to_string())
                .push(", ")
                .push_bind(state.to_string())
                .push(") ON CONFLICT (deployment_id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash, state = excluded.state"),
        }
    }
}

fn chain_events(
    deployment: &str,
    mut seq: i64,
    mut prev: String,
    events: &[NewEvent],
) -> Vec<Event> {
    let at = now();
    events
        .iter()
        .map(|n| {
            seq += 1;
            let data = n.data.to_string();
            let hash = event_hash(
                &prev,
                deployment,
                seq,
                &at,
                &n.kind,
                n.item.as_deref(),
                n.actor.as_deref(),
                &data,
            );
            Event {
                deployment: deployment.into(),
                seq,
                at: at.clone(),
                kind: n.kind.clone(),
                item: n.item.clone(),
                actor: n.actor.clone(),
                data: n.data.clone(),
                prev_hash: std::mem::replace(&mut prev, hash.clone()),
                hash,
            }
        })
        .collect()
}

/// Walks a deployment's rows in order, from its row, against its chain,
/// its recorded head and a head kept elsewhere.
struct Chain<'d> {
    d: &'d Deployment,
    prev: String,
    expected: i64,
    kept: Option<&'d Head>,
    reached: bool,
}

impl<'d> Chain<'d> {
    fn new(d: &'d Deployment, kept: Option<&'d Head>) -> Self {
        // an older golive's chain starts from the id alone
        let prev = match d.binding {
            Binding::Legacy => legacy_genesis(&d.id),
            _ => d.genesis.clone(),
        };
        Chain {
            reached: kept.is_some_and(|k| k.matches(0, &prev)),
            d,
            prev,
            expected: 1,
            kept,
        }
    }

    /// Check the next row, as stored.
    #[allow(clippy::too_many_arguments)]
    fn step(
        &mut self,
        seq: i64,
        at: &str,
        kind: &str,
        item: Option<&str>,
        actor: Option<&str>,
        data: &str,
        prev_hash: &str,
        hash: &str,
    ) -> Result<(), Violation> {
        if seq > self.expected {
            return Err(Violation {
                seq: self.expected,
                kind: ViolationKind::Deleted,
            });
        }
        if event_hash_hex(prev_hash, &self.d.id, seq, at, kind, item, actor, data)
            != hash.as_bytes()
        {
            return Err(Violation {
                seq,
                kind: ViolationKind::Edited,
            });
        }
        if prev_hash != self.prev {
            // the first event, intact, links elsewhere than the row: the row
            // was edited
            let kind = if seq == 1 {
                ViolationKind::DeploymentRow
            } else {
                ViolationKind::OutOfOrder
            };
            return Err(Violation {
                seq: if seq == 1 { 0 } else { seq },
                kind,
            });
        }
        if let Some(k) = self.kept
            && k.seq == seq
        {
            if !k.matches(seq, hash) {
                return Err(Violation {
                    seq,
                    kind: ViolationKind::Unreached,
                });
            }
            self.reached = true;
        }
        self.prev.clear();
        self.prev.push_str(hash);
        self.expected = seq + 1;
        Ok(())
    }

    fn end(self) -> Result<i64, Violation> {
        let last = self.expected - 1;
        if last == 0 && self.d.binding == Binding::Broken {
            // no event yet: the recorded head is the row's hash
            return Err(Violation {
                seq: 0,
                kind: ViolationKind::DeploymentRow,
            });
        }
        if self.d.head_seq < last {
            // rows appended behind the store's back
            return Err(Violation {
                seq: self.d.head_seq + 1,
                kind: ViolationKind::OutOfOrder,
            });
        }
        if self.d.head_seq > last || (self.d.head_seq == last && self.d.head_hash != self.prev) {
            return Err(Violation {
                seq: self.expected.min(self.d.head_seq.max(1)),
                kind: ViolationKind::Truncated,
            });
        }
        if let Some(k) = self.kept
            && !self.reached
        {
            return Err(Violation {
                seq: k.seq,
                kind: ViolationKind::Unreached,
            });
        }
        Ok(last)
    }
}

fn deployment_from<R: Row>(r: &R) -> Result<Deployment, StoreError>
where
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    for<'a> String: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> Option<String>: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> i64: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
{
    let vars: String = r.try_get("vars")?;
    let (id, runbook_path, runbook_sha256, started_by, created_at): (
        String,
        String,
        String,
        String,
        String,
    ) = (
        r.try_get("id")?,
        r.try_get("runbook_path")?,
        r.try_get("runbook_sha256")?,
        r.try_get("started_by")?,
        r.try_get("created_at")?,
    );
    let head_seq: i64 = r.try_get("head_seq")?;
    let head_hash: String = r.try_get("head_hash")?;
    let first_link: Option<String> = r.try_get("first_link")?;
    // hashed as stored: the variables' text, not a re-serialisation
    let genesis = row_genesis(
        &id,
        &runbook_path,
        &runbook_sha256,
        &started_by,
        &created_at,
        &vars,
    );
    let link = match (&first_link, head_seq) {
        (Some(l), _) => Some(l.as_str()),
        (None, 0) => Some(head_hash.as_str()),
        (None, _) => None,
    };
    let binding = match link {
        None => Binding::Unknown,
        Some(l) if l == genesis => Binding::Covered,
        Some(l) if l == legacy_genesis(&id) => Binding::Legacy,
        Some(_) => Binding::Broken,
    };
    Ok(Deployment {
        vars: serde_json::from_str(&vars).unwrap_or(Value::Null),
        id,
        runbook_path,
        runbook_sha256,
        started_by,
        created_at,
        head_seq,
        head_hash,
        genesis,
        binding,
    })
}

fn event_from<R: Row>(r: &R) -> Result<Event, StoreError>
where
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    for<'a> String: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> Option<String>: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> i64: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
{
    let data: String = r.try_get("data")?;
    Ok(Event {
        deployment: r.try_get("deployment_id")?,
        seq: r.try_get("seq")?,
        at: r.try_get("at")?,
        kind: r.try_get("kind")?,
        item: r.try_get("item")?,
        actor: r.try_get("actor")?,
        // a row whose data is not JSON was edited: keep its text so the hash
        // check reports it
        data: serde_json::from_str(&data).unwrap_or(Value::String(data)),
        prev_hash: r.try_get("prev_hash")?,
        hash: r.try_get("hash")?,
    })
}

/// A store location fit to print: any password removed (one rule for every
/// URL golive shows).
fn redact_url(location: &str) -> String {
    golive_runbook::url::redact_password(location)
}

/// How long opening a PostgreSQL store waits for the server's answer when the
/// URL sets no `connect_timeout`.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A pool on the PostgreSQL server `url` names, once one connection to it
/// succeeded. The pool alone retries a refused port until its time-out and
/// then reports only that it timed out: the first connection, made here,
/// reports why it failed, at once.
/// How the store's PostgreSQL pools hand out connections: one that sat
/// idle for over a second is pinged first (a database that failed over
/// or restarted meanwhile closed it: the pool opens another, and the
/// command never sees the dead one); one just given back is handed out
/// as it is. A ping before every statement would double the round trips
/// of a write.
fn pg_pool_options() -> PgPoolOptions {
    PgPoolOptions::new()
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for > Duration::from_secs(1) {
                    conn.ping().await?;
                }
                Ok(true)
            })
        })
}

async fn connect_postgres(url: &str) -> Result<PgPool, String> {
    let target = golive_postgres::Target::parse(url)
        .map_err(|e| e.to_string())?
        .plain_first_on_loopback();
    let wait = target.connect_timeout().unwrap_or(CONNECT_TIMEOUT);
    let first = target
        .connect(Some(wait))
        .await
        .map_err(|e| e.to_string())?;
    let _ = tokio::time::timeout(Duration::from_secs(1), first.close()).await;
    pg_pool_options()
        .max_connections(8)
        .acquire_timeout(wait.max(CONNECT_TIMEOUT))
        .connect_with(target.options().clone())
        .await
        .map_err(|e| target.cause(e).to_string())
}

mod jobs;
mod people;
pub use jobs::{AgentRow, JobRow};
pub use people::{PersonRow, RunbookRow, TokenRow};

#[cfg(test)]
mod migration_tests {
    /// The migrations are split into statements at `;`: one in a comment
    /// would cut a statement in two.
    #[test]
    fn no_comment_of_a_migration_holds_a_semicolon() {
        for (version, sql) in super::MIGRATIONS {
            for (n, line) in sql.lines().enumerate() {
                assert!(
                    !(line.trim_start().starts_with("--") && line.contains(';')),
                    "migration {version}, line {}: a `;` in a comment splits the statement",
                    n + 1
                );
            }
        }
    }
}

#[cfg(test)]
mod remembered_tests {
    use super::{KeptAt, REMEMBERED_BYTES, REMEMBERED_STATES, Remembered};

    fn at(seq: i64, bytes: usize) -> KeptAt {
        KeptAt {
            seq,
            hash: format!("h{seq}"),
            state: "x".repeat(bytes),
        }
    }

    /// What a long-lived server remembers stays bounded in number and in
    /// bytes, and a state replaced is counted once.
    #[test]
    fn the_remembered_states_stay_within_their_bounds() {
        let mut m = Remembered::default();
        m.keep("a", at(1, 100));
        m.keep("a", at(2, 300));
        assert_eq!((m.by_deployment.len(), m.bytes), (1, 300));
        assert_eq!(m.by_deployment["a"].seq, 2);
        // too large to remember: and the older one is forgotten, not kept
        m.keep("a", at(3, REMEMBERED_BYTES / 16 + 1));
        assert_eq!((m.by_deployment.len(), m.bytes), (0, 0));
        for i in 0..REMEMBERED_STATES + 10 {
            m.keep(&format!("d{i}"), at(1, 10));
            assert!(m.by_deployment.len() <= REMEMBERED_STATES);
        }
        assert!(
            m.by_deployment
                .contains_key(&format!("d{}", REMEMBERED_STATES + 9))
        );
        let mut m = Remembered::default();
        for i in 0..40 {
            m.keep(&format!("d{i}"), at(1, REMEMBERED_BYTES / 16));
            assert!(m.bytes <= REMEMBERED_BYTES, "{} bytes", m.bytes);
            assert_eq!(
                m.bytes,
                m.by_deployment
                    .values()
                    .map(|k| k.state.len())
                    .sum::<usize>()
            );
        }
        assert!(m.by_deployment.contains_key("d39"));
    }
}
