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
    let prefix = match kind {
        "session" => "gls_",
        "agent" => "gla_",
        _ => "glv_",
    };
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

/// `golive agents add`: the probe agent `name` at `location` (added, or
/// moved there) and a new token for it, returned once.
pub async fn add_agent(
    store: &Store,
    name: &str,
    location: &str,
) -> Result<(String, TokenRow), StoreError> {
    store.put_agent(name, location).await?;
    let (token, row) = issue(name, "agent", None);
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
                ssh_keys: p.ssh_keys,
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
    /// The CSRF token of a person a trusted proxy named (`--identity-header`):
    /// their writes must carry it, as a session's must.
    pub proxy_csrf: Option<String>,
}

impl Actor {
    pub fn name(&self) -> &str {
        &self.person.name
    }

    /// A write with a session must carry the session's CSRF token; one
    /// with an API token needs none (a browser never sends that one by
    /// itself).
    pub fn check_csrf(&self, given: Option<&str>) -> Result<(), ApiError> {
        let want = match (&self.session, &self.proxy_csrf) {
            (Some(s), _) => s.csrf.as_deref().unwrap_or_default(),
            (None, Some(p)) => p.as_str(),
            (None, None) => return Ok(()),
        };
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
            .or(self.proxy_csrf.as_deref())
            .unwrap_or_default()
    }
}

/// A cookie's value from the request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a axum::http::HeaderMap, name: &str) -> Option<&'a str> {
    headers
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
    let Some((row, person)) = app.store.token_and_person(&token_hash(token)).await? else {
        return Ok(None);
    };
    if !kinds.contains(&row.kind.as_str()) || !row.valid_at(&jiff::Timestamp::now().to_string()) {
        return Ok(None);
    }
    let Some(p) = person else {
        return Ok(None);
    };
    Ok(Some((
        Person {
            name: p.name,
            roles: p.roles,
            contact: p.email,
            ssh_keys: p.ssh_keys,
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
    cookie(&parts.headers, SESSION_COOKIE).map(|t| (t, true))
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
        // an API token first; else the identity a trusted proxy vouches for
        if !parts.headers.contains_key(header::AUTHORIZATION)
            && let Some(name) = &app.cfg.identity_header
            && let Some(value) = parts.headers.get(name)
        {
            return proxied(app, client, name, value).await;
        }
        let Some((token, session)) = presented(parts) else {
            return Err(ApiError::Unauthorized(
                "no token: send `Authorization: Bearer TOKEN` (`golive users add` prints one) or log in at /login".into(),
            ));
        };
        if !session
            && let Some(oidc) = &app.oidc
            && token.split('.').count() == 3
        {
            return id_token(app, oidc, client, token).await;
        }
        let kinds: &[&str] = if session { &["session"] } else { &["api"] };
        match lookup(app, token, kinds).await? {
            Some((person, row)) => Ok(Actor {
                person,
                session: session.then_some(row),
                proxy_csrf: None,
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

/// The person an ID token from the identity provider names, presented as
/// a bearer token: checked as a login's is, for one of the server's people.
async fn id_token(
    app: &App,
    oidc: &crate::oidc::Oidc,
    client: std::net::IpAddr,
    token: &str,
) -> Result<Actor, ApiError> {
    let refused = |e: crate::oidc::Refused| match e {
        crate::oidc::Refused::Provider(m) => ApiError::BadGateway(m),
        crate::oidc::Refused::Bad(m) => ApiError::Unauthorized(m),
        crate::oidc::Refused::Nobody(m) => ApiError::Forbidden(m),
    };
    let identity = match oidc.bearer(token).await {
        Ok(i) => i,
        Err(e) => {
            if matches!(e, crate::oidc::Refused::Bad(_))
                && let Err(wait) = app.auth_failures.take(client)
            {
                return Err(ApiError::TooMany(wait));
            }
            return Err(refused(e));
        }
    };
    let people = app.store.people().await?;
    let (found, _, roles) = oidc.person_for(&identity, &people).map_err(refused)?;
    let Some(p) = found else {
        return Err(ApiError::Forbidden(
            "the ID token names nobody on the server yet: log in on the page once, or `golive users add NAME --role ROLE --email EMAIL`".into(),
        ));
    };
    Ok(Actor {
        person: Person {
            name: p.name.clone(),
            roles: roles.unwrap_or_else(|| p.roles.clone()),
            contact: p.email.clone(),
            ssh_keys: p.ssh_keys.clone(),
        },
        session: None,
        proxy_csrf: None,
    })
}

/// The person a proxy's identity header names, when the request comes from
/// a trusted proxy; refused, and logged, from anyone else.
async fn proxied(
    app: &App,
    client: std::net::IpAddr,
    name: &header::HeaderName,
    value: &header::HeaderValue,
) -> Result<Actor, ApiError> {
    if !app.cfg.trusted_proxies.iter().any(|c| c.contains(client)) {
        // counted as a failed login: a client that keeps trying is slowed
        if let Err(wait) = app.auth_failures.take(client) {
            return Err(ApiError::TooMany(wait));
        }
        tracing::warn!(
            peer = %client,
            header = %name,
            "identity header from an address that is not a trusted proxy: refused"
        );
        return Err(ApiError::Forbidden(format!(
            "the {name} header is taken only from the trusted proxies (--trusted-proxy), and {client} is not one: nothing was done"
        )));
    }
    let who = value.to_str().unwrap_or("").trim();
    if who.is_empty() {
        return Err(ApiError::Unauthorized(format!(
            "the trusted proxy sent an empty {name} header"
        )));
    }
    let people = app.store.people().await?;
    let Some(p) = crate::matching(&people, who) else {
        tracing::info!(peer = %client, header = %name, "identity from the proxy names nobody on the server");
        return Err(ApiError::Forbidden(format!(
            "{who}, as the proxy names them, is not one of the server's people: `golive users add NAME --role ROLE --email {who}`"
        )));
    };
    Ok(Actor {
        proxy_csrf: Some(proxy_csrf(&app.proxy_secret, &p.name)),
        person: Person {
            name: p.name.clone(),
            roles: p.roles.clone(),
            contact: p.email.clone(),
            ssh_keys: p.ssh_keys.clone(),
        },
        session: None,
    })
}

/// The CSRF token of a person the proxy names: HMAC-SHA256 of their name
/// under the server's secret (a page from this server carries it; another
/// site cannot read it).
pub fn proxy_csrf(secret: &[u8], person: &str) -> String {
    use sha2::{Digest, Sha256};
    let mut key = [0u8; 64];
    if secret.len() > 64 {
        key[..32].copy_from_slice(&Sha256::digest(secret));
    } else {
        key[..secret.len()].copy_from_slice(secret);
    }
    let pad = |b: u8| key.iter().map(|k| k ^ b).collect::<Vec<u8>>();
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(person.as_bytes())
        .finalize();
    let outer = Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize();
    hex::encode(outer)
}

/// `--identity-header NAME` as a header name.
pub fn identity_header(name: &str) -> Result<header::HeaderName, String> {
    name.trim().parse::<header::HeaderName>().map_err(|_| {
        format!("--identity-header `{name}`: not a header name (write X-Forwarded-Email)")
    })
}

/// An address range: `10.0.0.0/8`, `127.0.0.1` (one address), `::1/128`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    pub net: std::net::IpAddr,
    pub bits: u8,
}

impl Cidr {
    pub fn parse(s: &str) -> Result<Cidr, String> {
        let (addr, bits) = match s.split_once('/') {
            Some((a, b)) => (a, Some(b)),
            None => (s, None),
        };
        let net: std::net::IpAddr = addr
            .trim()
            .parse()
            .map_err(|_| format!("--trusted-proxy `{s}`: `{addr}` is not an IP address (write 10.0.0.0/8 or 127.0.0.1)"))?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        let bits = match bits {
            None => max,
            Some(b) => b
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|&b| b <= max)
                .ok_or_else(|| format!("--trusted-proxy `{s}`: the prefix length is 0 to {max}"))?,
        };
        Ok(Cidr { net, bits })
    }

    pub fn contains(&self, ip: std::net::IpAddr) -> bool {
        use std::net::IpAddr::*;
        // an IPv4 client seen over IPv6 (`::ffff:10.0.0.1`) is that IPv4 one
        let ip = match ip {
            V6(v6) => v6.to_ipv4_mapped().map_or(ip, V4),
            v4 => v4,
        };
        match (self.net, ip) {
            (V4(n), V4(a)) => {
                let mask = if self.bits == 0 {
                    0
                } else {
                    u32::MAX << (32 - self.bits)
                };
                u32::from(n) & mask == u32::from(a) & mask
            }
            (V6(n), V6(a)) => {
                let mask = if self.bits == 0 {
                    0
                } else {
                    u128::MAX << (128 - self.bits)
                };
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

/// Whether a request's method writes.
pub fn writes(m: &Method) -> bool {
    !matches!(*m, Method::GET | Method::HEAD | Method::OPTIONS)
}
