//! Single sign-on against a real OpenID Connect provider (the certified
//! `oidc-provider` package on Node.js) started on 127.0.0.1: login with the
//! code flow and PKCE, a role from the groups claim, a replayed `state`, an
//! expired ID token, an ID token for another application, logout (here and
//! at the provider), and a provider that is down while tokens still work.

mod common;

use base64::Engine;
use bytes::Bytes;
use common::{call, sqlite, unique};
use golive_testkit::OidcProvider;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::net::SocketAddr;

const SECRET: &str = "golive-test-client-secret-0123456789";

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// The provider's settings: `accounts`, golive's client at `port`, and
/// `more` merged in (skew, other clients).
fn provider(port: u16, accounts: Value, more: Value) -> OidcProvider {
    let mut clients = vec![json!({
        "client_id": "golive",
        "client_secret": SECRET,
        "redirect_uris": [format!("http://127.0.0.1:{port}/login/oidc/callback")],
        "post_logout_redirect_uris": [format!("http://127.0.0.1:{port}/login")],
        "backchannel_logout_uri": format!("http://127.0.0.1:{port}/login/oidc/backchannel"),
        "backchannel_logout_session_required": true,
    })];
    if let Some(extra) = more["clients"].as_array() {
        clients.extend(extra.iter().cloned());
    }
    let mut settings = json!({ "accounts": accounts, "clients": clients });
    if let Some(s) = more.get("skew") {
        settings["skew"] = s.clone();
    }
    if let Some(s) = more.get("idTokenTtl") {
        settings["idTokenTtl"] = s.clone();
    }
    OidcProvider::start(&settings)
}

fn config(tag: &str, port: u16, issuer: &str) -> golive_server::Config {
    let mut cfg =
        golive_server::Config::new(format!("127.0.0.1:{port}").parse().unwrap(), &sqlite(tag));
    cfg.oidc = Some(golive_server::oidc::OidcConfig {
        issuer: issuer.to_string(),
        client_id: "golive".into(),
        client_secret: SECRET.into(),
        public_url: format!("http://127.0.0.1:{port}"),
        claim: "email".into(),
        groups_claim: Some("groups".into()),
        roles: vec![
            ("sre-leads".into(), "Engineering Manager".into()),
            ("release".into(), "Release Manager".into()),
        ],
        scopes: vec!["groups".into()],
        ca_file: None,
    });
    cfg
}

/// A browser enough for the code flow: cookies per host (kept whatever
/// their expiry says: the provider whose clock is behind sets them in the
/// past), redirects followed one by one.
#[derive(Default)]
struct Browser {
    jar: BTreeMap<String, BTreeMap<String, String>>,
}

struct Page {
    url: String,
    status: u16,
    headers: http::HeaderMap,
    body: String,
}

fn split(url: &str) -> (SocketAddr, String) {
    let rest = url.strip_prefix("http://").expect("http URL");
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    (host.parse().expect("host:port"), format!("/{path}"))
}

impl Browser {
    async fn request(&mut self, method: &str, url: &str, form: Option<&[(&str, &str)]>) -> Page {
        let (addr, path) = split(url);
        let host = addr.to_string();
        let mut headers = Vec::new();
        if let Some(c) = self.jar.get(&host)
            && !c.is_empty()
        {
            let cookie: Vec<String> = c.iter().map(|(k, v)| format!("{k}={v}")).collect();
            headers.push(("cookie".to_string(), cookie.join("; ")));
        }
        let body = match form {
            Some(f) => {
                headers.push((
                    "content-type".into(),
                    "application/x-www-form-urlencoded".into(),
                ));
                let pairs: Vec<String> = f
                    .iter()
                    .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
                    .collect();
                Bytes::from(pairs.join("&"))
            }
            None => Bytes::new(),
        };
        let a = call(addr, method, &path, &headers, body).await;
        for v in a.headers.get_all("set-cookie") {
            let v = v.to_str().unwrap_or("");
            let first = v.split(';').next().unwrap_or("");
            if let Some((k, val)) = first.split_once('=') {
                let gone = v.to_ascii_lowercase().contains("max-age=0") || val.is_empty();
                let jar = self.jar.entry(host.clone()).or_default();
                if gone {
                    jar.remove(k.trim());
                } else {
                    jar.insert(k.trim().to_string(), val.to_string());
                }
            }
        }
        Page {
            url: url.to_string(),
            status: a.status,
            headers: a.headers,
            body: a.body,
        }
    }

    /// GET `url` and follow redirects to the first page that is not one.
    async fn follow(&mut self, url: &str) -> Page {
        let mut page = self.request("GET", url, None).await;
        for _ in 0..20 {
            if !(300..400).contains(&page.status) {
                return page;
            }
            let to = location(&page);
            page = self.request("GET", &to, None).await;
        }
        panic!("too many redirects from {url}");
    }

    fn cookie(&self, addr: SocketAddr, name: &str) -> Option<String> {
        self.jar.get(&addr.to_string())?.get(name).cloned()
    }
}

fn location(page: &Page) -> String {
    let to = page
        .headers
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("no Location from {} ({})", page.url, page.status))
        .to_string();
    if to.starts_with("http") {
        to
    } else {
        let (addr, _) = split(&page.url);
        format!("http://{addr}{to}")
    }
}

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The `action` of the page's form.
fn action(page: &Page) -> String {
    let at = page.body.find("action=\"").expect("a form") + 8;
    let end = page.body[at..].find('"').unwrap() + at;
    let to = page.body[at..end].replace("&amp;", "&");
    if to.starts_with("http") {
        to
    } else {
        let (addr, _) = split(&page.url);
        format!("http://{addr}{to}")
    }
}

/// Through the provider's sign-in and consent screens as `login`, from
/// the page the flow is on, to the first page that is not the provider's:
/// that page, and the URL golive was called back at.
async fn sign_in(
    b: &mut Browser,
    provider: SocketAddr,
    mut page: Page,
    login: &str,
) -> (Page, String) {
    let mut callback = String::new();
    for _ in 0..10 {
        if split(&page.url).0 != provider {
            return (page, callback);
        }
        assert_eq!(page.status, 200, "the provider: {}", page.body);
        let prompt = if page.body.contains("value=\"login\"") {
            vec![("prompt", "login"), ("login", login), ("password", "any")]
        } else if page.body.contains("value=\"consent\"") {
            vec![("prompt", "consent")]
        } else {
            panic!("an unexpected provider page: {}", page.body);
        };
        let to = action(&page);
        let mut next = b.request("POST", &to, Some(&prompt)).await;
        while (300..400).contains(&next.status) {
            let to = location(&next);
            if to.contains("/login/oidc/callback") {
                callback = to.clone();
            }
            next = b.request("GET", &to, None).await;
        }
        page = next;
    }
    panic!("the provider never sent the browser back");
}

/// Log in with single sign-on at golive (`golive`) as `login`: the page
/// the browser lands on and the callback URL used.
async fn login(
    b: &mut Browser,
    golive: SocketAddr,
    provider: SocketAddr,
    login: &str,
) -> (Page, String) {
    let first = b
        .request("GET", &format!("http://{golive}/login/oidc"), None)
        .await;
    assert_eq!(first.status, 303, "{}", first.body);
    assert!(location(&first).starts_with(&format!("http://{provider}/")));
    let page = b.follow(&location(&first)).await;
    sign_in(b, provider, page, login).await
}

async fn me(golive: SocketAddr, session: &str) -> (u16, Value) {
    let a = call(
        golive,
        "GET",
        "/api/v1/me",
        &[("cookie".into(), format!("golive_session={session}"))],
        Bytes::new(),
    )
    .await;
    (
        a.status,
        serde_json::from_str(&a.body).unwrap_or(Value::Null),
    )
}

fn accounts(alice: &str, bob: &str) -> Value {
    json!({
        "alice": { "email": alice, "email_verified": true, "name": "Alice Lead", "groups": ["sre-leads", "staff"] },
        "bob": { "email": bob, "email_verified": true, "name": "Bob Ops", "groups": ["staff"] },
        "mallory": { "email": "mallory@example.test", "email_verified": false, "groups": ["release"] },
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_with_the_provider_then_logout_here_and_at_the_provider() {
    let port = free_port();
    let alice = format!("{}@example.test", unique("alice").replace(' ', "."));
    let bob = format!("{}@example.test", unique("bob").replace(' ', "."));
    let idp = provider(port, accounts(&alice, &bob), json!({}));
    let mut rig = common::Rig::with(config("oidc-login", port, &idp.issuer)).await;
    let golive = rig.addr;

    // the login page offers the provider beside the token form
    let page = rig.get("/login", None).await;
    assert!(page.body.contains("/login/oidc"), "{}", page.body);
    assert!(page.body.contains("name=\"token\""), "{}", page.body);

    // Alice is nobody on the server yet: her group grants her a role
    let mut b = Browser::default();
    let (landed, callback) = login(&mut b, golive, idp.addr(), "alice").await;
    assert_eq!(landed.status, 200, "{}", landed.body);
    let session = b
        .cookie(golive, "golive_session")
        .expect("a session cookie");
    let (status, who) = me(golive, &session).await;
    assert_eq!(status, 200, "{who}");
    assert_eq!(who["name"], "Alice Lead");
    assert_eq!(who["roles"], json!(["Engineering Manager"]));
    let stored = rig.store.person("Alice Lead").await.unwrap().unwrap();
    assert_eq!(stored.email.as_deref(), Some(alice.as_str()));
    // the browser's login cookie is gone, and the store keeps only hashes
    assert!(b.cookie(golive, "golive_oidc").is_none());
    let rows = rig.store.tokens("session").await.unwrap();
    assert!(rows.iter().all(|r| r.hash != session));

    // the same callback again: the state was used once, and is refused
    let again = b.request("GET", &callback, None).await;
    assert_eq!(again.status, 400, "{}", again.body);
    assert!(again.body.contains("already used"), "{}", again.body);
    assert!(again.headers.get("set-cookie").is_none());

    // a callback with a state golive never gave out
    let forged = callback.replace("state=", "state=x");
    let r = b.request("GET", &forged, None).await;
    assert_eq!(r.status, 400, "{}", r.body);

    // Bob is matched by his verified email to the person he is, and
    // his groups grant no role: he only views
    golive_server::auth::add_person(
        &rig.store,
        "Bob Ops",
        &["Deployment Lead".into()],
        Some(&bob),
    )
    .await
    .unwrap();
    let mut b2 = Browser::default();
    let (landed, _) = login(&mut b2, golive, idp.addr(), "bob").await;
    assert_eq!(landed.status, 200, "{}", landed.body);
    let s2 = b2.cookie(golive, "golive_session").unwrap();
    let (_, who) = me(golive, &s2).await;
    assert_eq!(who["name"], "Bob Ops");
    assert_eq!(
        who["roles"],
        json!([]),
        "the provider's groups are the roles"
    );

    // an email the provider does not call verified matches nobody
    let mut b3 = Browser::default();
    let (landed, _) = login(&mut b3, golive, idp.addr(), "mallory").await;
    assert_eq!(landed.status, 403, "{}", landed.body);
    assert!(landed.body.contains("verified"), "{}", landed.body);
    assert!(b3.cookie(golive, "golive_session").is_none());

    // logout here ends the session and the provider's: golive sends the
    // browser to the provider's end-session page
    let csrf = who_csrf(golive, &session).await;
    let out = b
        .request(
            "POST",
            &format!("http://{golive}/logout"),
            Some(&[("csrf", &csrf)]),
        )
        .await;
    assert_eq!(out.status, 303, "{}", out.body);
    let to = location(&out);
    assert!(to.starts_with(&idp.issuer), "to the provider: {to}");
    assert!(to.contains("client_id=golive"), "{to}");
    assert_eq!(
        me(golive, &session).await.0,
        401,
        "the session has ended here"
    );
    let confirm = b.follow(&to).await;
    assert_eq!(confirm.status, 200, "{}", confirm.body);
    let xsrf = hidden(&confirm.body, "xsrf");
    let mut done = b
        .request(
            "POST",
            &action(&confirm),
            Some(&[("xsrf", &xsrf), ("logout", "yes")]),
        )
        .await;
    while (300..400).contains(&done.status) {
        let to = location(&done);
        done = b.request("GET", &to, None).await;
    }
    assert!(
        done.url.starts_with(&format!("http://{golive}/login")),
        "back at golive: {}",
        done.url
    );

    // Bob logs out at the provider alone: its back-channel logout ends
    // his golive session too
    assert_eq!(me(golive, &s2).await.0, 200);
    let end = b2.follow(&format!("{}/session/end", idp.issuer)).await;
    let xsrf = hidden(&end.body, "xsrf");
    let mut r = b2
        .request(
            "POST",
            &action(&end),
            Some(&[("xsrf", &xsrf), ("logout", "yes")]),
        )
        .await;
    while (300..400).contains(&r.status) {
        let to = location(&r);
        r = b2.request("GET", &to, None).await;
    }
    let mut ended = false;
    for _ in 0..50 {
        if me(golive, &s2).await.0 == 401 {
            ended = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        ended,
        "the provider's logout ended the golive session: {}",
        std::fs::read_to_string(&idp.log).unwrap_or_default()
    );
    // a logout token golive did not get from the provider changes nothing
    let r = call(
        golive,
        "POST",
        "/login/oidc/backchannel",
        &[(
            "content-type".into(),
            "application/x-www-form-urlencoded".into(),
        )],
        Bytes::from("logout_token=eyJhbGciOiJub25lIn0.eyJzdWIiOiJhbGljZSJ9."),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    rig.stop().await;
}

/// The CSRF token the page puts in the session's forms.
async fn who_csrf(golive: SocketAddr, session: &str) -> String {
    let page = call(
        golive,
        "GET",
        "/",
        &[("cookie".into(), format!("golive_session={session}"))],
        Bytes::new(),
    )
    .await;
    let at = page
        .body
        .find("name=\"csrf\"")
        .expect("a form with a CSRF token");
    let rest = &page.body[at..];
    let v = rest.find("value=\"").unwrap() + 7;
    let end = rest[v..].find('"').unwrap();
    rest[v..v + end].to_string()
}

fn hidden(body: &str, name: &str) -> String {
    let key = format!("name=\"{name}\" value=\"");
    let at = body
        .find(&key)
        .unwrap_or_else(|| panic!("no {name} in {body}"))
        + key.len();
    let end = body[at..].find('"').unwrap() + at;
    body[at..end].to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_id_token_opens_no_session() {
    // the provider's clock is an hour behind: its ID tokens (ten minutes
    // long) have expired when they arrive
    let port = free_port();
    let alice = format!("{}@example.test", unique("alice").replace(' ', "."));
    let idp = provider(
        port,
        accounts(&alice, "bob@example.test"),
        json!({ "skew": -3600, "idTokenTtl": 600 }),
    );
    let mut rig = common::Rig::with(config("oidc-expired", port, &idp.issuer)).await;
    let mut b = Browser::default();
    let (landed, _) = login(&mut b, rig.addr, idp.addr(), "alice").await;
    assert_eq!(landed.status, 400, "{}", landed.body);
    assert!(landed.body.contains("expired"), "{}", landed.body);
    assert!(b.cookie(rig.addr, "golive_session").is_none());
    assert!(rig.store.person("Alice Lead").await.unwrap().is_none());
    rig.stop().await;
}

/// The code flow run by the test itself as `client`: the ID token the
/// provider issues it.
async fn id_token_for(
    idp: &OidcProvider,
    client: &str,
    secret: &str,
    redirect: &str,
    login: &str,
) -> String {
    let verifier = golive_server::auth::random_hex(32);
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(Sha256::digest(verifier.as_bytes()));
    let mut b = Browser::default();
    let url = format!(
        "{}/auth?client_id={client}&response_type=code&scope=openid%20email&redirect_uri={}&state=s1&nonce=n1&code_challenge={challenge}&code_challenge_method=S256",
        idp.issuer,
        enc(redirect)
    );
    let page = b.follow(&url).await;
    // sign in and consent, stopping at the redirect back to the client
    let mut page = page;
    let code = loop {
        let prompt = if page.body.contains("value=\"login\"") {
            vec![("prompt", "login"), ("login", login), ("password", "any")]
        } else {
            vec![("prompt", "consent")]
        };
        let mut next = b.request("POST", &action(&page), Some(&prompt)).await;
        let mut code = None;
        while (300..400).contains(&next.status) {
            let to = location(&next);
            if to.starts_with(redirect) {
                code = to
                    .split(['?', '&'])
                    .find_map(|p| p.strip_prefix("code="))
                    .map(String::from);
                break;
            }
            next = b.request("GET", &to, None).await;
        }
        if let Some(c) = code {
            break c;
        }
        page = next;
    };
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{client}:{secret}"));
    let form = format!(
        "grant_type=authorization_code&code={code}&redirect_uri={}&code_verifier={verifier}",
        enc(redirect)
    );
    let r = call(
        idp.addr(),
        "POST",
        "/token",
        &[
            ("authorization".into(), format!("Basic {basic}")),
            (
                "content-type".into(),
                "application/x-www-form-urlencoded".into(),
            ),
        ],
        Bytes::from(form),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()["id_token"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_id_token_for_another_application_is_refused() {
    let port = free_port();
    let alice = format!("{}@example.test", unique("alice").replace(' ', "."));
    let other = json!({
        "client_id": "wiki",
        "client_secret": "wiki-client-secret-0123456789abcdef",
        "redirect_uris": ["http://127.0.0.1:9/cb"],
    });
    let mut accounts = accounts(&alice, "bob@example.test");
    // the ID tokens of this flow carry the email itself
    accounts["alice"]["email_verified"] = json!(true);
    let idp = provider(port, accounts, json!({ "clients": [other] }));
    let mut rig = common::Rig::with(config("oidc-audience", port, &idp.issuer)).await;
    golive_server::auth::add_person(
        &rig.store,
        "Alice Lead",
        &["Deployment Lead".into()],
        Some(&alice),
    )
    .await
    .unwrap();
    // an ID token the provider issued to the wiki, presented to golive
    let wiki = id_token_for(
        &idp,
        "wiki",
        "wiki-client-secret-0123456789abcdef",
        "http://127.0.0.1:9/cb",
        "alice",
    )
    .await;
    let r = rig.get("/api/v1/me", Some(&wiki)).await;
    assert_eq!(r.status, 401, "{}", r.body);
    assert!(r.body.contains("another application"), "{}", r.body);
    // one issued to golive is taken, for the person it names
    let ours = id_token_for(
        &idp,
        "golive",
        SECRET,
        &format!("http://127.0.0.1:{port}/login/oidc/callback"),
        "alice",
    )
    .await;
    let r = rig.get("/api/v1/me", Some(&ours)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["name"], "Alice Lead");
    // the same token with its signature changed is not
    let sig_at = ours.rfind('.').unwrap() + 10;
    let mut forged = ours.clone().into_bytes();
    forged[sig_at] = if forged[sig_at] == b'A' { b'B' } else { b'A' };
    let forged = String::from_utf8(forged).unwrap();
    let r = rig.get("/api/v1/me", Some(&forged)).await;
    assert_eq!(r.status, 401, "{}", r.body);
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_provider_down_tokens_and_sessions_still_work() {
    let port = free_port();
    let alice = format!("{}@example.test", unique("alice").replace(' ', "."));
    let mut idp = provider(port, accounts(&alice, "bob@example.test"), json!({}));
    let mut rig = common::Rig::with(config("oidc-down", port, &idp.issuer)).await;
    let mut b = Browser::default();
    let (landed, _) = login(&mut b, rig.addr, idp.addr(), "alice").await;
    assert_eq!(landed.status, 200, "{}", landed.body);
    let session = b.cookie(rig.addr, "golive_session").unwrap();
    let lead = rig.person(&unique("Dana Lead"), &["Deployment Lead"]).await;
    let em = rig
        .person(&unique("Emil Manager"), &["Engineering Manager"])
        .await;
    let rm = rig
        .person(&unique("Rene Release"), &["Release Manager"])
        .await;
    let id = rig.deployment(&lead).await;

    idp.stop();

    // the login page says so, and offers the token form
    let r = b
        .request("GET", &format!("http://{}/login/oidc", rig.addr), None)
        .await;
    assert_eq!(r.status, 502, "{}", r.body);
    assert!(r.body.contains("does not answer"), "{}", r.body);
    assert!(r.body.contains("name=\"token\""), "{}", r.body);
    // the session opened before goes on
    assert_eq!(me(rig.addr, &session).await.0, 200);
    // tokens work: sign-offs, GO, and a rollback, none behind a login
    for item in ["1.1.1", "1.1.2"] {
        let r = rig
            .json(
                "POST",
                &format!("/api/v1/deployments/{id}/signoffs"),
                Some(&rm),
                &json!({ "item": item }),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    for t in [&lead, &em] {
        let r = rig
            .json(
                "POST",
                &format!("/api/v1/deployments/{id}/decision"),
                Some(t),
                &json!({ "verdict": "go" }),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let r = rig
        .json(
            "POST",
            &format!("/api/v1/deployments/{id}/rollback"),
            Some(&lead),
            &json!({ "reason": "errors up" }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    // and a token logs a browser in
    let r = call(
        rig.addr,
        "POST",
        "/login",
        &[(
            "content-type".into(),
            "application/x-www-form-urlencoded".into(),
        )],
        Bytes::from(format!("token={lead}")),
    )
    .await;
    assert_eq!(r.status, 303, "{}", r.body);
    rig.stop().await;
}
