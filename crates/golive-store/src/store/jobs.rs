//! Probe agents and the jobs they claim: one check of a deployment's run
//! at one location, leased to one agent at a time (`FOR UPDATE SKIP
//! LOCKED` on PostgreSQL; SQLite serialises its writers), released when the
//! lease runs out so another agent of the location takes it over.

use super::{Backend, Store, StoreError, now};

/// One check to run at one location.
#[derive(Debug, Clone, PartialEq)]
pub struct JobRow {
    /// `DEPLOYMENT/RUN/ITEM/LINE/LOCATION`: one per check, run and location.
    pub id: String,
    pub deployment: String,
    /// The run it belongs to (the event number that asked for it).
    pub run: i64,
    /// The item's id and the line of its check's annotation.
    pub item: String,
    pub line: i64,
    pub location: String,
    /// `queued`, `claimed`, `done` or `unobserved`.
    pub state: String,
    pub agent: Option<String>,
    /// Epoch milliseconds the claim holds until.
    pub lease_until: Option<i64>,
    pub attempts: i64,
    pub created_ms: i64,
}

/// A probe agent: its name, location and last heartbeat.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentRow {
    pub name: String,
    pub location: String,
    /// Epoch milliseconds of its last heartbeat.
    pub last_seen: Option<i64>,
    pub created_at: String,
}

type JobTuple = (
    String,
    String,
    i64,
    String,
    i64,
    String,
    String,
    Option<String>,
    Option<i64>,
    i64,
    i64,
);

fn job_from(t: JobTuple) -> JobRow {
    JobRow {
        id: t.0,
        deployment: t.1,
        run: t.2,
        item: t.3,
        line: t.4,
        location: t.5,
        state: t.6,
        agent: t.7,
        lease_until: t.8,
        attempts: t.9,
        created_ms: t.10,
    }
}

macro_rules! job_columns {
    () => {
        "id, deployment_id, run, item, line, location, state, agent, lease_until, attempts, created_ms"
    };
}

/// The claim: the jobs of a location queued or whose lease ran out, oldest
/// first, `$pick` locking the rows taken and skipping those another claim
/// holds.
macro_rules! claim_sql {
    ($pick:literal) => {
        concat!(
            "UPDATE jobs SET state = 'claimed', agent = $1, lease_until = $2, attempts = attempts + 1 ",
            "WHERE id IN (SELECT id FROM jobs WHERE location = $3 AND (state = 'queued' OR (state = 'claimed' AND lease_until < $4)) ",
            "ORDER BY created_ms, id LIMIT $5",
            $pick,
            ") RETURNING ",
            job_columns!()
        )
    };
}

impl Store {
    /// Add the agent `name` at `location` (or move it there).
    pub async fn put_agent(&self, name: &str, location: &str) -> Result<(), StoreError> {
        let at = now();
        on_both!(self, |pool| {
            sqlx::query(
                "INSERT INTO agents (name, location, created_at) VALUES ($1, $2, $3) ON CONFLICT (name) DO UPDATE SET location = excluded.location",
            )
            .bind(name)
            .bind(location)
            .bind(&at)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// The agent `name`, when there is one.
    pub async fn agent(&self, name: &str) -> Result<Option<AgentRow>, StoreError> {
        let row: Option<(String, String, Option<i64>, String)> = on_both!(self, |pool| {
            sqlx::query_as(
                "SELECT name, location, last_seen, created_at FROM agents WHERE name = $1",
            )
            .bind(name)
            .fetch_optional(pool)
            .await?
        });
        Ok(row.map(|(name, location, last_seen, created_at)| AgentRow {
            name,
            location,
            last_seen,
            created_at,
        }))
    }

    /// Every agent, by name.
    pub async fn agents(&self) -> Result<Vec<AgentRow>, StoreError> {
        let rows: Vec<(String, String, Option<i64>, String)> = on_both!(self, |pool| {
            sqlx::query_as("SELECT name, location, last_seen, created_at FROM agents ORDER BY name")
                .fetch_all(pool)
                .await?
        });
        Ok(rows
            .into_iter()
            .map(|(name, location, last_seen, created_at)| AgentRow {
                name,
                location,
                last_seen,
                created_at,
            })
            .collect())
    }

    /// The agent `name` is alive at `now_ms`.
    pub async fn heartbeat(&self, name: &str, now_ms: i64) -> Result<(), StoreError> {
        on_both!(self, |pool| {
            sqlx::query("UPDATE agents SET last_seen = $1 WHERE name = $2")
                .bind(now_ms)
                .bind(name)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// Queue `jobs`; one already there (same id) is left as it is.
    pub async fn add_jobs(&self, jobs: &[JobRow]) -> Result<u64, StoreError> {
        let mut added = 0;
        on_both!(self, |pool| {
            let mut tx = pool.begin().await?;
            for j in jobs {
                added += sqlx::query(
                    "INSERT INTO jobs (id, deployment_id, run, item, line, location, state, agent, lease_until, attempts, created_ms) VALUES ($1, $2, $3, $4, $5, $6, 'queued', NULL, NULL, 0, $7) ON CONFLICT (id) DO NOTHING",
                )
                .bind(&j.id)
                .bind(&j.deployment)
                .bind(j.run)
                .bind(&j.item)
                .bind(j.line)
                .bind(&j.location)
                .bind(j.created_ms)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            }
            tx.commit().await?;
        });
        Ok(added)
    }

    /// Claim at most `max` jobs of `location` for `agent` until `until_ms`:
    /// those queued, and those whose claim ran out by `now_ms` (an agent
    /// that died), oldest first. Two agents never get the same job.
    pub async fn claim_jobs(
        &self,
        location: &str,
        agent: &str,
        max: i64,
        now_ms: i64,
        until_ms: i64,
    ) -> Result<Vec<JobRow>, StoreError> {
        let sql = match &self.backend {
            Backend::Postgres(_) => claim_sql!(" FOR UPDATE SKIP LOCKED"),
            Backend::Sqlite(_) => claim_sql!(""),
        };
        let rows: Vec<JobTuple> = on_both!(self, |pool| {
            sqlx::query_as(sql)
                .bind(agent)
                .bind(until_ms)
                .bind(location)
                .bind(now_ms)
                .bind(max)
                .fetch_all(pool)
                .await?
        });
        let mut out: Vec<JobRow> = rows.into_iter().map(job_from).collect();
        out.sort_by(|a, b| (a.created_ms, &a.id).cmp(&(b.created_ms, &b.id)));
        Ok(out)
    }

    /// The jobs of `deployment`, oldest first.
    pub async fn jobs_of(&self, deployment: &str) -> Result<Vec<JobRow>, StoreError> {
        let sql = concat!(
            "SELECT ",
            job_columns!(),
            " FROM jobs WHERE deployment_id = $1 ORDER BY created_ms, id"
        );
        let rows: Vec<JobTuple> = on_both!(self, |pool| {
            sqlx::query_as(sql).bind(deployment).fetch_all(pool).await?
        });
        Ok(rows.into_iter().map(job_from).collect())
    }

    /// The jobs of `location` still to observe (queued, or claimed), which
    /// become `unobserved`: its agents went quiet. Returns them.
    pub async fn give_up_jobs(&self, location: &str) -> Result<Vec<JobRow>, StoreError> {
        let sql = concat!(
            "UPDATE jobs SET state = 'unobserved', lease_until = NULL WHERE location = $1 AND state IN ('queued', 'claimed') RETURNING ",
            job_columns!()
        );
        let rows: Vec<JobTuple> = on_both!(self, |pool| {
            sqlx::query_as(sql).bind(location).fetch_all(pool).await?
        });
        Ok(rows.into_iter().map(job_from).collect())
    }
}

impl Store {
    /// The job `id`, when there is one.
    /// The jobs among `ids` that exist, in one query (an agent's batch of
    /// results reads its jobs at once).
    pub async fn jobs_by_id(&self, ids: &[&str]) -> Result<Vec<JobRow>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let rows: Vec<JobTuple> = on_both!(self, |pool| {
            let mut qb = sqlx::QueryBuilder::new(concat!(
                "SELECT ",
                job_columns!(),
                " FROM jobs WHERE id IN ("
            ));
            let mut list = qb.separated(", ");
            for id in ids {
                list.push_bind(*id);
            }
            qb.push(")");
            qb.build_query_as().fetch_all(pool).await?
        });
        Ok(rows.into_iter().map(job_from).collect())
    }

    pub async fn job(&self, id: &str) -> Result<Option<JobRow>, StoreError> {
        let sql = concat!("SELECT ", job_columns!(), " FROM jobs WHERE id = $1");
        let row: Option<JobTuple> = on_both!(self, |pool| {
            sqlx::query_as(sql).bind(id).fetch_optional(pool).await?
        });
        Ok(row.map(job_from))
    }
}
