//! Single sign-on with OpenID Connect: the authorisation code flow with
//! PKCE against the identity provider `golive serve --oidc-issuer` names.
//!
//! - The provider is discovered when someone first logs in (and again every
//!   ten minutes, or when a key is unknown), never at start: a server whose
//!   provider is down starts, and its tokens and sessions keep working, so
//!   a rollback is never behind a login page.
//! - A login is bound to the browser that began it (a cookie) and to its
//!   `state`, `nonce` and PKCE verifier, each used once; a `state` seen
//!   again is refused.
//! - The ID token's signature, issuer, audience, expiry and nonce are
//!   checked by `openidconnect`; then the person is matched by a verified
//!   email (or the configured claim) to the server's people, their roles
//!   optionally taken from a groups claim.
//! - The session it opens ends when the person logs out (golive then ends
//!   the provider's session too), when the provider's session ends (its
//!   back-channel logout), or after `--session-hours`.
//! - An ID token the provider issued for golive is also taken as a bearer
//!   token on the API, checked the same way (a pipeline's identity).

use base64::Engine;
use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreIdToken, CoreJsonWebKey, CoreJwsSigningAlgorithm,
};
use openidconnect::{
    AuthorizationCode, ClaimsVerificationError, ClientId, ClientSecret, CsrfToken, IssuerUrl,
    JsonWebKey, Nonce, OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier,
    ProviderMetadataWithLogout, RedirectUrl, Scope, TokenResponse,
};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How long a login begun may take to come back.
const PENDING: Duration = Duration::from_secs(600);
/// How many logins may be under way at once (a flood ends here).
const MAX_PENDING: usize = 10_000;
/// How long the provider's discovery document and keys are kept.
const METADATA: Duration = Duration::from_secs(600);
/// The cookie binding a login to the browser that began it.
pub const LOGIN_COOKIE: &str = "golive_oidc";
/// The back-channel logout event (OpenID Connect Back-Channel Logout 1.0).
const LOGOUT_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// What `golive serve --oidc-*` configures.
#[derive(Clone)]
pub struct OidcConfig {
    /// The provider's issuer URL (its discovery document is under it).
    pub issuer: String,
    pub client_id: String,
    /// Never shown, logged or kept (read from `GOLIVE_OIDC_CLIENT_SECRET`
    /// or a file).
    pub client_secret: String,
    /// The address people reach golive at: the redirect URL is
    /// `PUBLIC_URL/login/oidc/callback`.
    pub public_url: String,
    /// The claim a person is matched by: `email` (verified) matches the
    /// people's emails, any other claim their names.
    pub claim: String,
    /// The claim listing the person's groups, when roles come from it.
    pub groups_claim: Option<String>,
    /// A group and the document role it grants (`--oidc-role GROUP=ROLE`).
    pub roles: Vec<(String, String)>,
    /// Scopes asked for beside `openid email profile`.
    pub scopes: Vec<String>,
    /// A CA certificate (PEM) to trust for the provider, beside the web's.
    pub ca_file: Option<String>,
}

impl std::fmt::Debug for OidcConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcConfig")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("client_secret", &"(hidden)")
            .field("public_url", &self.public_url)
            .field("claim", &self.claim)
            .field("groups_claim", &self.groups_claim)
            .field("roles", &self.roles)
            .finish()
    }
}

impl OidcConfig {
    /// The URL the provider sends people back to.
    pub fn redirect_url(&self) -> String {
        format!(
            "{}/login/oidc/callback",
            self.public_url.trim_end_matches('/')
        )
    }

    /// The URL a logged-out person lands on.
    pub fn logged_out_url(&self) -> String {
        format!("{}/login", self.public_url.trim_end_matches('/'))
    }

    /// The URL the provider's back-channel logout posts to.
    pub fn backchannel_url(&self) -> String {
        format!(
            "{}/login/oidc/backchannel",
            self.public_url.trim_end_matches('/')
        )
    }

    /// `GROUP=ROLE`, as `--oidc-role` takes it.
    pub fn parse_role(spec: &str) -> Result<(String, String), String> {
        match spec.split_once('=') {
            Some((g, r)) if !g.trim().is_empty() && !r.trim().is_empty() => {
                Ok((g.trim().to_string(), r.trim().to_string()))
            }
            _ => Err(format!(
                "--oidc-role `{spec}`: write GROUP=ROLE, e.g. --oidc-role sre-leads=\"Engineering Manager\""
            )),
        }
    }
}

/// A login under way.
struct Pending {
    browser: String,
    nonce: String,
    verifier: String,
    begun: Instant,
}

/// Who a verified ID token names.
#[derive(Debug, Clone)]
pub struct Identity {
    pub subject: String,
    /// The provider's session, when it names one (`sid`).
    pub sid: Option<String>,
    /// Every claim: the ID token's, and the userinfo endpoint's.
    pub claims: Value,
}

/// Why a login or a bearer ID token was refused: what a person is shown.
#[derive(Debug, Clone, PartialEq)]
pub enum Refused {
    /// The provider does not answer, or answers nonsense (502).
    Provider(String),
    /// The login or token is not good (400/401).
    Bad(String),
    /// Good, but names nobody who may act here (403).
    Nobody(String),
}

impl Refused {
    pub fn message(&self) -> &str {
        match self {
            Refused::Provider(m) | Refused::Bad(m) | Refused::Nobody(m) => m,
        }
    }
}

/// The person an identity stands for: the one on the server (none: a new
/// person the groups claim grants roles), their name, and the roles the
/// groups claim grants (`None`: their roles stay as they are).
pub type Matched<'a> = (
    Option<&'a golive_store::PersonRow>,
    String,
    Option<Vec<String>>,
);

/// The identity provider, as golive uses it.
pub struct Oidc {
    pub cfg: OidcConfig,
    metadata: tokio::sync::Mutex<Option<(Instant, ProviderMetadataWithLogout)>>,
    pending: std::sync::Mutex<HashMap<String, Pending>>,
}

fn sha(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

impl Oidc {
    pub fn new(cfg: OidcConfig) -> Oidc {
        Oidc {
            cfg,
            metadata: tokio::sync::Mutex::new(None),
            pending: std::sync::Mutex::new(HashMap::new()),
        }
    }

    /// The SHA-256 a provider session or subject is kept under: never the
    /// value, and never one provider's for another's.
    pub fn hashed(&self, kind: &str, value: &str) -> String {
        sha(&format!("{}\n{kind}\n{value}", self.cfg.issuer))
    }

    async fn send(
        req: openidconnect::HttpRequest,
        ca: Option<String>,
    ) -> Result<openidconnect::HttpResponse, std::io::Error> {
        let host = req
            .uri()
            .authority()
            .map(|a| a.to_string())
            .unwrap_or_default();
        match tokio::time::timeout(
            Duration::from_secs(10),
            golive_probe::exchange(req, ca.as_deref()),
        )
        .await
        {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e)) => Err(std::io::Error::other(e.to_string())),
            Err(_) => Err(std::io::Error::other(format!(
                "{host}: no answer within 10s"
            ))),
        }
    }

    /// The provider's metadata and keys: kept, or discovered now.
    async fn metadata(&self, fresh: bool) -> Result<ProviderMetadataWithLogout, Refused> {
        let mut kept = self.metadata.lock().await;
        if !fresh
            && let Some((at, m)) = kept.as_ref()
            && at.elapsed() < METADATA
        {
            return Ok(m.clone());
        }
        let issuer = IssuerUrl::new(self.cfg.issuer.clone())
            .map_err(|e| Refused::Provider(format!("--oidc-issuer {}: {e}", self.cfg.issuer)))?;
        let ca = self.cfg.ca_file.clone();
        let http = move |req| Self::send(req, ca.clone());
        let m = ProviderMetadataWithLogout::discover_async(issuer, &http)
            .await
            .map_err(|e| {
                Refused::Provider(format!(
                    "the identity provider at {} does not answer as one: {}",
                    self.cfg.issuer,
                    error_chain(&e)
                ))
            })?;
        *kept = Some((Instant::now(), m.clone()));
        Ok(m)
    }

    fn client(
        &self,
        m: ProviderMetadataWithLogout,
    ) -> Result<
        CoreClient<
            openidconnect::EndpointSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointMaybeSet,
            openidconnect::EndpointMaybeSet,
        >,
        Refused,
    > {
        let redirect = RedirectUrl::new(self.cfg.redirect_url())
            .map_err(|e| Refused::Provider(format!("--public-url: {e}")))?;
        Ok(CoreClient::from_provider_metadata(
            m,
            ClientId::new(self.cfg.client_id.clone()),
            Some(ClientSecret::new(self.cfg.client_secret.clone())),
        )
        .set_redirect_uri(redirect))
    }

    /// Begin a login: the provider's URL to send the browser to, and the
    /// value of the cookie that binds the login to that browser.
    pub async fn begin(&self) -> Result<(String, String), Refused> {
        // looked up afresh: a provider that is down is said so here, not
        // by a browser that cannot reach it
        let client = self.client(self.metadata(true).await?)?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut req = client
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .add_scope(Scope::new("email".into()))
            .add_scope(Scope::new("profile".into()))
            .set_pkce_challenge(challenge);
        for s in &self.cfg.scopes {
            req = req.add_scope(Scope::new(s.clone()));
        }
        let (url, state, nonce) = req.url();
        let browser = crate::random_hex(24);
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        pending.retain(|_, p| p.begun.elapsed() < PENDING);
        if pending.len() >= MAX_PENDING {
            return Err(Refused::Provider(
                "too many logins are under way: try again in a few minutes".into(),
            ));
        }
        pending.insert(
            state.secret().clone(),
            Pending {
                browser: sha(&browser),
                nonce: nonce.secret().clone(),
                verifier: verifier.secret().clone(),
                begun: Instant::now(),
            },
        );
        Ok((url.to_string(), browser))
    }

    /// Finish a login the provider sent back: the identity its ID token
    /// names, once every check holds.
    pub async fn finish(
        &self,
        state: &str,
        code: &str,
        browser: Option<&str>,
    ) -> Result<Identity, Refused> {
        let p = {
            let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            pending.remove(state)
        };
        let Some(p) = p.filter(|p| p.begun.elapsed() < PENDING) else {
            return Err(Refused::Bad(
                "this sign-in was already used, or has expired (after 10 minutes): start again from the login page".into(),
            ));
        };
        if browser.map(sha).as_deref() != Some(p.browser.as_str()) {
            return Err(Refused::Bad(
                "this sign-in was begun in another browser: start again from the login page".into(),
            ));
        }
        let m = self.metadata(false).await?;
        let client = self.client(m.clone())?;
        let ca = self.cfg.ca_file.clone();
        let http = move |req| Self::send(req, ca.clone());
        let token = client
            .exchange_code(AuthorizationCode::new(code.to_string()))
            .map_err(|e| Refused::Provider(format!("the provider names no token endpoint: {e}")))?
            .set_pkce_verifier(PkceCodeVerifier::new(p.verifier))
            .request_async(&http)
            .await
            .map_err(|e| {
                Refused::Bad(format!(
                    "the identity provider refused the sign-in: {}",
                    error_chain(&e)
                ))
            })?;
        let id_token = token.id_token().ok_or_else(|| {
            Refused::Bad(
                "the identity provider returned no ID token (is `openid` a scope it grants?)"
                    .into(),
            )
        })?;
        let nonce = Nonce::new(p.nonce);
        let mut identity = match self.verify(&client, id_token, Some(&nonce)) {
            Err(Refused::Bad(why)) if why.contains("no key") => {
                // the provider rotated its keys: look them up once more
                let client = self.client(self.metadata(true).await?)?;
                self.verify(&client, id_token, Some(&nonce))?
            }
            other => other?,
        };
        if let Some(url) = m.userinfo_endpoint() {
            let info = self
                .userinfo(url.as_str(), token.access_token().secret())
                .await?;
            if info.get("sub").and_then(Value::as_str) == Some(identity.subject.as_str())
                && let (Some(all), Value::Object(more)) = (identity.claims.as_object_mut(), info)
            {
                for (k, v) in more {
                    all.entry(k).or_insert(v);
                }
            }
        }
        Ok(identity)
    }

    /// The claims of `id_token` once its signature, issuer, audience,
    /// expiry and (when given) nonce hold.
    fn verify(
        &self,
        client: &CoreClient<
            openidconnect::EndpointSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointMaybeSet,
            openidconnect::EndpointMaybeSet,
        >,
        id_token: &CoreIdToken,
        nonce: Option<&Nonce>,
    ) -> Result<Identity, Refused> {
        let verifier = client.id_token_verifier();
        let checked = match nonce {
            Some(n) => id_token
                .claims(&verifier, n)
                .map(|c| c.subject().to_string()),
            None => id_token
                .claims(&verifier, |_: Option<&Nonce>| Ok(()))
                .map(|c| c.subject().to_string()),
        };
        let subject = checked.map_err(|e| Refused::Bad(claims_error(&e, &self.cfg)))?;
        // verified: its claims as sent, every one (groups, sid, …)
        let raw = id_token.to_string();
        let claims = raw
            .split('.')
            .nth(1)
            .and_then(|p| {
                base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(p)
                    .ok()
            })
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
            .unwrap_or(Value::Null);
        Ok(Identity {
            sid: claims.get("sid").and_then(Value::as_str).map(String::from),
            subject,
            claims,
        })
    }

    async fn userinfo(&self, url: &str, access_token: &str) -> Result<Value, Refused> {
        let req = openidconnect::http::Request::builder()
            .method("GET")
            .uri(url)
            .header("authorization", format!("Bearer {access_token}"))
            .header("accept", "application/json")
            .body(Vec::new())
            .map_err(|e| Refused::Provider(format!("userinfo endpoint {url}: {e}")))?;
        let r = Self::send(req, self.cfg.ca_file.clone())
            .await
            .map_err(|e| Refused::Provider(format!("the provider's userinfo endpoint: {e}")))?;
        if !r.status().is_success() {
            return Err(Refused::Provider(format!(
                "the provider's userinfo endpoint answered {}",
                r.status().as_u16()
            )));
        }
        // a signed userinfo answer is not read: the ID token's claims stand
        Ok(serde_json::from_slice(r.body()).unwrap_or(Value::Null))
    }

    /// An ID token presented as a bearer token: who it names, once every
    /// check of a login's ID token holds (no nonce: none was asked).
    pub async fn bearer(&self, jwt: &str) -> Result<Identity, Refused> {
        let token: CoreIdToken = jwt.parse().map_err(|e| {
            Refused::Bad(format!(
                "the bearer token is neither golive's nor an ID token: {e}"
            ))
        })?;
        let client = self.client(self.metadata(false).await?)?;
        match self.verify(&client, &token, None) {
            Err(Refused::Bad(why)) if why.contains("no key") => {
                let client = self.client(self.metadata(true).await?)?;
                self.verify(&client, &token, None)
            }
            other => other,
        }
    }

    /// The provider's end-session URL logging out of golive sends the
    /// browser to, when it has one.
    pub async fn end_session_url(&self) -> Option<String> {
        let m = self.metadata(false).await.ok()?;
        let end = m.additional_metadata().end_session_endpoint.as_ref()?;
        let mut url = end.url().clone();
        url.query_pairs_mut()
            .append_pair("client_id", &self.cfg.client_id)
            .append_pair("post_logout_redirect_uri", &self.cfg.logged_out_url());
        Some(url.to_string())
    }

    /// A back-channel logout token from the provider: the session (`sid`)
    /// or subject (`sub`) whose sessions end, once its signature, issuer,
    /// audience, age and event hold.
    pub async fn logout_token(
        &self,
        jwt: &str,
    ) -> Result<(Option<String>, Option<String>), Refused> {
        let bad = |why: &str| Refused::Bad(format!("logout_token: {why}"));
        let parts: Vec<&str> = jwt.trim().split('.').collect();
        if parts.len() != 3 {
            return Err(bad("not a signed JWT"));
        }
        let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(s);
        let header: Value = b64(parts[0])
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or_else(|| bad("its header is not JSON"))?;
        let claims: Value = b64(parts[1])
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or_else(|| bad("its claims are not JSON"))?;
        let signature = b64(parts[2]).map_err(|_| bad("its signature is not base64url"))?;
        let alg: CoreJwsSigningAlgorithm = serde_json::from_value(header["alg"].clone())
            .map_err(|_| bad("an unknown signing algorithm"))?;
        if matches!(alg, CoreJwsSigningAlgorithm::None)
            || header["alg"].as_str().is_some_and(|a| a.starts_with("HS"))
        {
            return Err(bad("it must be signed with one of the provider's keys"));
        }
        let kid = header["kid"].as_str();
        let message = format!("{}.{}", parts[0], parts[1]);
        let mut verified = false;
        for fresh in [false, true] {
            let m = self.metadata(fresh).await?;
            let keys: Vec<&CoreJsonWebKey> = m
                .jwks()
                .keys()
                .iter()
                .filter(|k| kid.is_none() || k.key_id().map(|i| i.as_str()) == kid)
                .collect();
            if keys.iter().any(|k| {
                k.verify_signature(&alg, message.as_bytes(), &signature)
                    .is_ok()
            }) {
                verified = true;
                break;
            }
        }
        if !verified {
            return Err(bad("its signature is not one of the provider's keys"));
        }
        if claims["iss"].as_str() != Some(self.cfg.issuer.as_str()) {
            return Err(bad("issued by another provider"));
        }
        let aud_ok = match &claims["aud"] {
            Value::String(a) => a == &self.cfg.client_id,
            Value::Array(a) => a.iter().any(|v| v.as_str() == Some(&self.cfg.client_id)),
            _ => false,
        };
        if !aud_ok {
            return Err(bad("not addressed to golive's client id"));
        }
        let now = jiff::Timestamp::now().as_second();
        let iat = claims["iat"].as_i64().unwrap_or(0);
        if (now - iat).abs() > 600 {
            return Err(bad("issued more than ten minutes from now"));
        }
        if claims["events"].get(LOGOUT_EVENT).is_none() || claims.get("nonce").is_some() {
            return Err(bad("not a back-channel logout event"));
        }
        let sid = claims["sid"].as_str().map(String::from);
        let sub = claims["sub"].as_str().map(String::from);
        if sid.is_none() && sub.is_none() {
            return Err(bad("names neither a session (sid) nor a subject (sub)"));
        }
        Ok((sid, sub))
    }

    /// The person `identity` is among `people`, and the roles the groups
    /// claim grants (`None`: the person's roles stay as they are).
    pub fn person_for<'a>(
        &self,
        identity: &Identity,
        people: &'a [golive_store::PersonRow],
    ) -> Result<Matched<'a>, Refused> {
        let c = &identity.claims;
        let value = c
            .get(&self.cfg.claim)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| {
                Refused::Nobody(format!(
                    "the identity provider sent no `{}` claim: ask for its scope (--oidc-scope) or match by another (--oidc-claim)",
                    self.cfg.claim
                ))
            })?;
        if self.cfg.claim == "email"
            && c.get("email_verified").and_then(Value::as_bool) != Some(true)
        {
            return Err(Refused::Nobody(format!(
                "the identity provider does not say that {value} is verified: golive matches people by verified email only"
            )));
        }
        let roles = self.cfg.groups_claim.as_ref().map(|claim| {
            let groups: Vec<&str> = match c.get(claim) {
                Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
                Some(Value::String(s)) => s.split([',', ' ']).filter(|g| !g.is_empty()).collect(),
                _ => Vec::new(),
            };
            let mut roles = Vec::new();
            for (g, r) in &self.cfg.roles {
                if groups.contains(&g.as_str()) && !roles.contains(r) {
                    roles.push(r.clone());
                }
            }
            roles
        });
        let found = crate::matching(people, value);
        match (found, &roles) {
            (Some(p), _) => Ok((Some(p), p.name.clone(), roles)),
            (None, Some(r)) if !r.is_empty() => {
                // a person the provider vouches for, with a role its groups grant
                let name = c
                    .get("name")
                    .and_then(Value::as_str)
                    .filter(|n| !n.trim().is_empty())
                    .unwrap_or(value)
                    .trim()
                    .to_string();
                Ok((None, name, roles))
            }
            _ => Err(Refused::Nobody(format!(
                "{value} is not one of the server's people{}: `golive users add NAME --role ROLE --email {value}`",
                if self.cfg.groups_claim.is_some() {
                    ", and none of their groups grants a role"
                } else {
                    ""
                }
            ))),
        }
    }
}

/// The message of an ID token's failed check, for the person.
fn claims_error(e: &ClaimsVerificationError, cfg: &OidcConfig) -> String {
    match e {
        ClaimsVerificationError::Expired(_) => {
            "the identity provider's ID token has expired (is its clock, or golive's, wrong?): log in again".into()
        }
        ClaimsVerificationError::InvalidAudience(_) => format!(
            "the ID token was issued for another application, not golive's client id `{}`",
            cfg.client_id
        ),
        ClaimsVerificationError::InvalidIssuer(_) => format!(
            "the ID token was issued by another provider, not {}",
            cfg.issuer
        ),
        ClaimsVerificationError::InvalidNonce(_) => {
            "the ID token does not answer this sign-in (its nonce differs): start again".into()
        }
        ClaimsVerificationError::SignatureVerification(s) => {
            format!("the ID token's signature does not hold: {s} (no key of the provider made it)")
        }
        other => format!("the ID token does not hold: {other}"),
    }
}

/// An error and its causes, on one line.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let s = c.to_string();
        if !out.contains(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        cause = c.source();
    }
    out
}
