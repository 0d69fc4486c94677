//! What a server keeps beside the deployments: registered runbooks, the
//! people who act, and their tokens, hashed.

use super::{Backend, Deployment, Store, StoreError, deployment_from, now};
use sha2::{Digest, Sha256};
use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;

/// A runbook registered with the store, by the SHA-256 of its text.
#[derive(Debug, Clone, PartialEq)]
pub struct RunbookRow {
    pub sha256: String,
    /// The path it was registered from (what reports and messages name).
    pub path: String,
    pub text: String,
    pub added_by: String,
    pub added_at: String,
}

/// A person of the server's roster.
#[derive(Debug, Clone, PartialEq)]
pub struct PersonRow {
    pub name: String,
    pub email: Option<String>,
    pub roles: Vec<String>,
    pub created_at: String,
    /// Their SSH public keys (OpenSSH format): what their signed sign-offs
    /// through the API are checked against.
    pub ssh_keys: Vec<String>,
}

/// A token as stored: never the token itself, only its SHA-256.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenRow {
    /// A short name to list and revoke it by.
    pub id: String,
    pub hash: String,
    pub person: String,
    /// `api` (a person's token) or `session` (a browser's login).
    pub kind: String,
    /// A session's CSRF token (not a secret of the person: it is put in
    /// every form the session is shown).
    pub csrf: Option<String>,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub revoked_at: Option<String>,
}

impl TokenRow {
    /// Not revoked, and not expired at `now` (RFC 3339).
    pub fn valid_at(&self, now: &str) -> bool {
        self.revoked_at.is_none()
            && self.expires_at.as_deref().is_none_or(|e| {
                match (e.parse::<jiff::Timestamp>(), now.parse::<jiff::Timestamp>()) {
                    (Ok(e), Ok(n)) => e > n,
                    _ => false,
                }
            })
    }
}

type TokenTuple = (
    String,
    String,
    String,
    String,
    Option<String>,
    String,
    Option<String>,
    Option<String>,
);

fn token_from(t: TokenTuple) -> TokenRow {
    TokenRow {
        id: t.0,
        hash: t.1,
        person: t.2,
        kind: t.3,
        csrf: t.4,
        created_at: t.5,
        expires_at: t.6,
        revoked_at: t.7,
    }
}

type PersonTuple = (String, Option<String>, String, String, Option<String>);

fn person_from((name, email, roles, created_at, keys): PersonTuple) -> PersonRow {
    PersonRow {
        name,
        email,
        roles: serde_json::from_str(&roles).unwrap_or_default(),
        created_at,
        ssh_keys: keys
            .and_then(|k| serde_json::from_str(&k).ok())
            .unwrap_or_default(),
    }
}

macro_rules! token_sql {
    ($rest:literal) => {
        concat!(
            "SELECT id, hash, person, kind, csrf, created_at, expires_at, revoked_at FROM tokens",
            $rest
        )
    };
}

impl Store {
    /// Register `text` (read from `path`) under its SHA-256, which it
    /// returns. Registering the same text again changes nothing.
    pub async fn put_runbook(
        &self,
        path: &str,
        text: &str,
        by: &str,
    ) -> Result<String, StoreError> {
        let sha = hex::encode(Sha256::digest(text.as_bytes()));
        let at = now();
        on_both!(self, |pool| {
            sqlx::query(
                "INSERT INTO runbooks (sha256, path, text, added_by, added_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (sha256) DO NOTHING",
            )
            .bind(&sha)
            .bind(path)
            .bind(text)
            .bind(by)
            .bind(&at)
            .execute(pool)
            .await?;
        });
        Ok(sha)
    }

    /// The runbook registered under `sha256`, when there is one.
    pub async fn runbook(&self, sha256: &str) -> Result<Option<RunbookRow>, StoreError> {
        let row: Option<(String, String, String, String, String)> = on_both!(self, |pool| {
            sqlx::query_as(
                "SELECT sha256, path, text, added_by, added_at FROM runbooks WHERE sha256 = $1",
            )
            .bind(sha256)
            .fetch_optional(pool)
            .await?
        });
        Ok(row.map(|r| RunbookRow {
            sha256: r.0,
            path: r.1,
            text: r.2,
            added_by: r.3,
            added_at: r.4,
        }))
    }

    /// Every registered runbook, newest first (with its text).
    pub async fn runbooks(&self) -> Result<Vec<RunbookRow>, StoreError> {
        let rows: Vec<(String, String, String, String, String)> = on_both!(self, |pool| {
            sqlx::query_as(
                "SELECT sha256, path, text, added_by, added_at FROM runbooks ORDER BY added_at DESC, sha256",
            )
            .fetch_all(pool)
            .await?
        });
        Ok(rows
            .into_iter()
            .map(|r| RunbookRow {
                sha256: r.0,
                path: r.1,
                text: r.2,
                added_by: r.3,
                added_at: r.4,
            })
            .collect())
    }

    /// Every deployment, newest first.
    pub async fn deployments(&self) -> Result<Vec<Deployment>, StoreError> {
        let sql = concat!(deployment_sql!(), " ORDER BY created_at DESC, id DESC");
        match &self.backend {
            Backend::Sqlite(pool) => {
                let rows: Vec<SqliteRow> = sqlx::query(sql).fetch_all(pool).await?;
                rows.iter().map(deployment_from).collect()
            }
            Backend::Postgres(pool) => {
                let rows: Vec<PgRow> = sqlx::query(sql).fetch_all(pool).await?;
                rows.iter().map(deployment_from).collect()
            }
        }
    }

    /// Add the person `name`, or change their email and roles.
    pub async fn put_person(
        &self,
        name: &str,
        email: Option<&str>,
        roles: &[String],
    ) -> Result<(), StoreError> {
        let roles = serde_json::to_string(roles).unwrap_or_else(|_| "[]".into());
        let at = now();
        on_both!(self, |pool| {
            sqlx::query(
                "INSERT INTO people (name, email, roles, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT (name) DO UPDATE SET email = excluded.email, roles = excluded.roles",
            )
            .bind(name)
            .bind(email)
            .bind(&roles)
            .bind(&at)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// Every person, by name.
    pub async fn people(&self) -> Result<Vec<PersonRow>, StoreError> {
        let rows: Vec<PersonTuple> = on_both!(self, |pool| {
            sqlx::query_as(
                "SELECT name, email, roles, created_at, ssh_keys FROM people ORDER BY name",
            )
            .fetch_all(pool)
            .await?
        });
        Ok(rows.into_iter().map(person_from).collect())
    }

    /// The person `name`, when there is one.
    pub async fn person(&self, name: &str) -> Result<Option<PersonRow>, StoreError> {
        let row: Option<PersonTuple> = on_both!(self, |pool| {
            sqlx::query_as(
                "SELECT name, email, roles, created_at, ssh_keys FROM people WHERE name = $1",
            )
            .bind(name)
            .fetch_optional(pool)
            .await?
        });
        Ok(row.map(person_from))
    }

    /// Set the SSH public keys of the person `name` (none: their API
    /// sign-offs cannot be signed): whether there is such a person.
    pub async fn set_ssh_keys(&self, name: &str, keys: &[String]) -> Result<bool, StoreError> {
        let keys = serde_json::to_string(keys).unwrap_or_else(|_| "[]".into());
        let n = on_both!(self, |pool| {
            sqlx::query("UPDATE people SET ssh_keys = $1 WHERE name = $2")
                .bind(&keys)
                .bind(name)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(n > 0)
    }

    /// Remember that the session `token_hash` was opened through an
    /// identity provider's session `sid_hash` for its subject `sub_hash`
    /// (each a SHA-256, never the value).
    pub async fn link_provider_session(
        &self,
        token_hash: &str,
        sid_hash: Option<&str>,
        sub_hash: &str,
    ) -> Result<(), StoreError> {
        let at = now();
        on_both!(self, |pool| {
            sqlx::query(
                "INSERT INTO provider_sessions (token_hash, sid_hash, sub_hash, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT (token_hash) DO NOTHING",
            )
            .bind(token_hash)
            .bind(sid_hash)
            .bind(sub_hash)
            .bind(&at)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// Whether the session `token_hash` was opened through an identity
    /// provider.
    pub async fn is_provider_session(&self, token_hash: &str) -> Result<bool, StoreError> {
        let n: i64 = on_both!(self, |pool| {
            sqlx::query_scalar("SELECT count(*) FROM provider_sessions WHERE token_hash = $1")
                .bind(token_hash)
                .fetch_one(pool)
                .await?
        });
        Ok(n > 0)
    }

    /// Revoke the sessions opened through the provider's session
    /// `sid_hash`, or, without one, every session of the subject
    /// `sub_hash`: how many were revoked now.
    pub async fn revoke_provider_sessions(
        &self,
        sid_hash: Option<&str>,
        sub_hash: Option<&str>,
    ) -> Result<u64, StoreError> {
        let at = now();
        let n = on_both!(self, |pool| {
            sqlx::query(
                "UPDATE tokens SET revoked_at = $1 WHERE revoked_at IS NULL AND hash IN (SELECT token_hash FROM provider_sessions WHERE ($2 IS NOT NULL AND sid_hash = $2) OR ($2 IS NULL AND sub_hash = $3))",
            )
            .bind(&at)
            .bind(sid_hash)
            .bind(sub_hash)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(n)
    }

    /// Keep a token (its hash, never the token).
    pub async fn add_token(&self, t: &TokenRow) -> Result<(), StoreError> {
        on_both!(self, |pool| {
            sqlx::query(
                "INSERT INTO tokens (id, hash, person, kind, csrf, created_at, expires_at, revoked_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(&t.id)
            .bind(&t.hash)
            .bind(&t.person)
            .bind(&t.kind)
            .bind(&t.csrf)
            .bind(&t.created_at)
            .bind(&t.expires_at)
            .bind(&t.revoked_at)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// The token whose SHA-256 is `hash`, revoked or not.
    pub async fn token(&self, hash: &str) -> Result<Option<TokenRow>, StoreError> {
        let sql = token_sql!(" WHERE hash = $1");
        let row: Option<TokenTuple> = on_both!(self, |pool| {
            sqlx::query_as(sql).bind(hash).fetch_optional(pool).await?
        });
        Ok(row.map(token_from))
    }

    /// The token whose hash is `hash`, with the person it is of (when
    /// that is a person of the roster): one query, what every request's
    /// authentication reads.
    pub async fn token_and_person(
        &self,
        hash: &str,
    ) -> Result<Option<(TokenRow, Option<PersonRow>)>, StoreError> {
        let sql = "SELECT t.id, t.hash, t.person, t.kind, t.csrf, t.created_at, t.expires_at, t.revoked_at, p.name, p.email, p.roles, p.created_at, p.ssh_keys FROM tokens t LEFT JOIN people p ON p.name = t.person WHERE t.hash = $1";
        type Both = (
            String,
            String,
            String,
            String,
            Option<String>,
            String,
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
        );
        let row: Option<Both> = on_both!(self, |pool| {
            sqlx::query_as(sql).bind(hash).fetch_optional(pool).await?
        });
        Ok(row.map(|r| {
            let token = token_from((r.0, r.1, r.2, r.3, r.4, r.5, r.6, r.7));
            let person = match (r.8, r.10, r.11) {
                (Some(name), Some(roles), Some(created_at)) => {
                    Some(person_from((name, r.9, roles, created_at, r.12)))
                }
                _ => None,
            };
            (token, person)
        }))
    }

    /// The tokens of `kind`, oldest first.
    pub async fn tokens(&self, kind: &str) -> Result<Vec<TokenRow>, StoreError> {
        let sql = token_sql!(" WHERE kind = $1 ORDER BY created_at, id");
        let rows: Vec<TokenTuple> = on_both!(self, |pool| sqlx::query_as(sql)
            .bind(kind)
            .fetch_all(pool)
            .await?);
        Ok(rows.into_iter().map(token_from).collect())
    }

    /// Revoke the token `id`, or every token of the person `id` names:
    /// how many were revoked now.
    pub async fn revoke(&self, id: &str) -> Result<u64, StoreError> {
        let at = now();
        let n = on_both!(self, |pool| {
            sqlx::query(
                "UPDATE tokens SET revoked_at = $1 WHERE (id = $2 OR person = $2) AND revoked_at IS NULL",
            )
            .bind(&at)
            .bind(id)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(n)
    }

    /// Revoke the token whose hash is `hash` (a session at logout).
    pub async fn revoke_hash(&self, hash: &str) -> Result<(), StoreError> {
        let at = now();
        on_both!(self, |pool| {
            sqlx::query("UPDATE tokens SET revoked_at = $1 WHERE hash = $2 AND revoked_at IS NULL")
                .bind(&at)
                .bind(hash)
                .execute(pool)
                .await?;
        });
        Ok(())
    }
}

impl Store {
    /// Whether the database answers (a server's `/ready`).
    pub async fn ping(&self) -> Result<(), StoreError> {
        on_both!(self, |pool| {
            sqlx::query("SELECT 1").execute(pool).await?;
        });
        Ok(())
    }
}
