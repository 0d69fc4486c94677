//! Who is asking: a person's API token (`Authorization: Bearer glv_…`) or
//! a browser's session cookie, both kept in the store as SHA-256 hashes
//! only. The actor of every write comes from here, never from a request's
//! body. Writes made with a session also carry its CSRF token.

use crate::error::ApiError;
use crate::{App, Peer};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{Method, header};
use golive_engine::roster::{Person, Roster};
use golive_store::{Store, StoreError, TokenRow};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use subtle::ConstantTimeEq;

/// The cookie a browser's session rides in.
pub const SESSION_COOKIE: &str = "golive_session";
/// The header a session's writes carry their CSRF token in (forms carry it
/// as the field `csrf`).
pub const CSRF_HEADER: &str = "x-csrf-token";

pub use crate::random_hex;

/// The SHA-256 of a token, as the store keeps it.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A new token for `person`: the token itself (shown once, never stored)
/// and the row the store keeps.
pub fn issue(person: &str, kind: &str, hours: Option<i64>) -> (String, TokenRow) {
    let prefix = if kind == "session" { "gls_" } else { "glv_" };
    let token = format!("{prefix}{}", random_hex(32));
    let now = jiff::Timestamp::now();
    let expires = hours.and_then(|h| {
        now.checked_add(jiff::SignedDuration::from_hours(h))
            .ok()
            .map(|t| t.to_string())
    });
    let row = TokenRow {
        id: format!("t-{}", random_hex(4)),
        hash: token_hash(&token),
        person: person.to_string(),
        kind: kind.to_string(),
        csrf: (kind == "session").then(|| random_hex(16)),
        created_at: now.to_string(),
        expires_at: expires,
        revoked_at: None,
    };
    (token, row)
}

/// `golive users add`: the person `name` with `roles` (added, or their
/// roles and email changed) and a new API token for them, returned once.
pub async fn add_person(
    store: &Store,
    name: &str,
    roles: &[String],
    email: Option<&str>,
) -> Result<(String, TokenRow), StoreError> {
    store.put_person(name, email, roles).await?;
    let (token, row) = issue(name, "api", None);
    store.add_token(&row).await?;
    Ok((token, row))
}

/// The server's people as the lifecycle's roster: in server mode they are
/// who may act, whatever roster file sits beside a runbook.
pub async fn roster(store: &Store) -> Result<Roster, StoreError> {
    let mut r = Roster {
        source: "the server's people (golive users)".into(),
        from_file: true,
        ..Roster::default()
    };
    for p in store.people().await? {
        r.people.insert(
            p.name.clone(),
            Person {
                name: p.name,
                roles: p.roles,
                contact: p.email,
            },
        );
    }
    Ok(r)
}

/// The person a request acts as.
#[derive(Debug, Clone)]
pub struct Actor {
    pub person: Person,
    /// The session, when the request came from a logged-in browser.
    pub session: Option<TokenRow>,
}

impl Actor {
    pub fn name(&self) -> &str {
        &self.person.name
    }

    /// A write with a session must carry the session's CSRF token; one
    /// with an API token needs none (a browser never sends that one by
    /// itself).
    pub fn check_csrf(&self, given: Option<&str>) -> Result<(), ApiError> {
        let Some(s) = &self.session else {
            return Ok(());
        };
        let want = s.csrf.as_deref().unwrap_or_default();
        let ok = given
            .is_some_and(|g| !want.is_empty() && bool::from(g.as_bytes().ct_eq(want.as_bytes())));
        if ok {
            Ok(())
        } else {
            Err(ApiError::Forbidden(
                "the form's CSRF token is missing or not this session's: reload the page and try again".into(),
            ))
        }
    }

    /// A person who holds no role, or only `viewer`, only looks.
    pub fn readonly(&self) -> bool {
        self.person
            .roles
            .iter()
            .all(|r| r.eq_ignore_ascii_case("viewer"))
    }

    /// Refuse a write of a read-only person.
    pub fn may_write(&self) -> Result<(), ApiError> {
        if self.readonly() {
            return Err(ApiError::Forbidden(format!(
                "{} only views deployments (no role but viewer): nothing was recorded",
                self.name()
            )));
        }
        Ok(())
    }

    /// The CSRF token to put in forms, for a session.
    pub fn csrf(&self) -> &str {
        self.session
            .as_ref()
            .and_then(|s| s.csrf.as_deref())
            .unwrap_or_default()
    }
}

/// A cookie's value from the request's `Cookie` headers.
pub fn cookie<'a>(parts: &'a Parts, name: &str) -> Option<&'a str> {
    parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// The person `token` belongs to, when it is a valid one of `kinds`.
pub async fn lookup(
    app: &App,
    token: &str,
    kinds: &[&str],
) -> Result<Option<(Person, TokenRow)>, ApiError> {
    let Some(row) = app.store.token(&token_hash(token)).await? else {
        return Ok(None);
    };
    if !kinds.contains(&row.kind.as_str()) || !row.valid_at(&jiff::Timestamp::now().to_string()) {
        return Ok(None);
    }
    let Some(p) = app.store.person(&row.person).await? else {
        return Ok(None);
    };
    Ok(Some((
        Person {
            name: p.name,
            roles: p.roles,
            contact: p.email,
        },
        row,
    )))
}

/// The token a request carries, and whether it is a session's.
fn presented(parts: &Parts) -> Option<(&str, bool)> {
    if let Some(v) = parts.headers.get(header::AUTHORIZATION)
        && let Ok(v) = v.to_str()
    {
        let t = v
            .strip_prefix("Bearer ")
            .or_else(|| v.strip_prefix("bearer "))
            .unwrap_or("")
            .trim();
        return Some((t, false));
    }
    cookie(parts, SESSION_COOKIE).map(|t| (t, true))
}

impl FromRequestParts<Arc<App>> for Actor {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, ApiError> {
        let client = parts
            .extensions
            .get::<Peer>()
            .map(|p| p.0.ip())
            .unwrap_or(std::net::IpAddr::from([127, 0, 0, 1]));
        // a client that guessed wrong too often is not even looked up
        app.auth_failures.check(client).map_err(ApiError::TooMany)?;
        let Some((token, session)) = presented(parts) else {
            return Err(ApiError::Unauthorized(
                "no token: send `Authorization: Bearer TOKEN` (`golive users add` prints one) or log in at /login".into(),
            ));
        };
        let kinds: &[&str] = if session { &["session"] } else { &["api"] };
        match lookup(app, token, kinds).await? {
            Some((person, row)) => Ok(Actor {
                person,
                session: session.then_some(row),
            }),
            None => {
                if let Err(wait) = app.auth_failures.take(client) {
                    return Err(ApiError::TooMany(wait));
                }
                Err(ApiError::Unauthorized(if session {
                    "the session has ended (logged out or expired): log in again at /login".into()
                } else {
                    "the token is not valid: unknown, revoked or expired".into()
                }))
            }
        }
    }
}

/// Whether a request's method writes.
pub fn writes(m: &Method) -> bool {
    !matches!(*m, Method::GET | Method::HEAD | Method::OPTIONS)
}
