//! Behind a proxy that authenticates (oauth2-proxy and the like): the
//! identity header is believed from the trusted proxies' addresses only;
//! from anyone else it is refused and logged. A person the proxy names
//! writes with the page's CSRF token, as a session does.

mod common;

use common::{Rig, auth, log, sqlite, unique};
use serde_json::json;

fn config(tag: &str, trusted: &str) -> golive_server::Config {
    let mut cfg = golive_server::Config::new("127.0.0.1:0".parse().unwrap(), &sqlite(tag));
    cfg.trusted_proxies = vec![golive_server::auth::Cidr::parse(trusted).unwrap()];
    cfg.identity_header = Some(golive_server::auth::identity_header("X-Forwarded-Email").unwrap());
    cfg
}

fn header(email: &str) -> Vec<(String, String)> {
    vec![("x-forwarded-email".into(), email.into())]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_identity_header_is_believed_from_a_trusted_proxy() {
    // the tests' requests come from 127.0.0.1: the proxy
    let rig = Rig::with(config("proxy-trusted", "127.0.0.0/8")).await;
    let name = unique("Dana Lead");
    let email = format!("{}@example.test", name.replace(' ', ".").to_lowercase());
    golive_server::auth::add_person(&rig.store, &name, &["Deployment Lead".into()], Some(&email))
        .await
        .unwrap();
    let me = rig
        .call(
            "GET",
            "/api/v1/me",
            &header(&email.to_uppercase()),
            Default::default(),
        )
        .await;
    assert_eq!(me.status, 200, "{}", me.body);
    assert_eq!(me.json()["name"], name.as_str());
    // the page renders for them, with their CSRF token
    let page = rig
        .call("GET", "/", &header(&email), Default::default())
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    // a write without the token is refused (another site could make the
    // browser send it through the proxy); with the page's token it goes
    let token = rig.person(&unique("Starter"), &["Deployment Lead"]).await;
    let id = rig.deployment(&token).await;
    let body = json!({ "item": "1.1.2" }).to_string();
    let path = format!("/api/v1/deployments/{id}/signoffs");
    let mut h = header(&email);
    h.push(("content-type".into(), "application/json".into()));
    let r = rig.call("POST", &path, &h, body.clone().into()).await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.body.contains("CSRF"), "{}", r.body);
    // with the token the page puts in its forms, signed as the person the
    // proxy named
    let form_token = csrf_of(&page.body).expect("the page carries a CSRF token");
    h.push(("x-csrf-token".into(), form_token));
    let r = rig.call("POST", &path, &h, body.into()).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.json()["said"][0]
            .as_str()
            .unwrap()
            .contains(&format!("signed by {name} as Deployment Lead")),
        "{}",
        r.body
    );
    // an unknown person, as the proxy names them
    let r = rig
        .call(
            "GET",
            "/api/v1/me",
            &header("nobody@example.test"),
            Default::default(),
        )
        .await;
    assert_eq!(r.status, 403);
    assert!(
        r.body.contains("is not one of the server's people"),
        "{}",
        r.body
    );
    // a token still works beside the proxy, and takes precedence
    let r = rig
        .call("GET", "/api/v1/me", &auth(Some(&token)), Default::default())
        .await;
    assert_eq!(r.status, 200);
    assert_ne!(r.json()["name"], name.as_str());
}

/// The `csrf` value of the page's first form field.
fn csrf_of(html: &str) -> Option<String> {
    let at = html.find("name=\"csrf\"")?;
    let rest = &html[at..];
    let v = rest.find("value=\"")? + 7;
    let end = rest[v..].find('"')?;
    Some(rest[v..v + end].to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_identity_header_from_anyone_else_is_refused_and_logged() {
    let logs = log();
    // only 10.0.0.0/8 is the proxy: the tests' 127.0.0.1 is not
    let rig = Rig::with(config("proxy-untrusted", "10.0.0.0/8")).await;
    let name = unique("Emil Manager");
    let email = format!("{}@example.test", name.replace(' ', ".").to_lowercase());
    golive_server::auth::add_person(
        &rig.store,
        &name,
        &["Engineering Manager".into()],
        Some(&email),
    )
    .await
    .unwrap();
    let r = rig
        .call("GET", "/api/v1/me", &header(&email), Default::default())
        .await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(
        r.body.contains("the x-forwarded-email header is taken only from the trusted proxies (--trusted-proxy), and 127.0.0.1 is not one"),
        "{}",
        r.body
    );
    let text = String::from_utf8_lossy(&logs.lock().unwrap()).into_owned();
    let line = text
        .lines()
        .find(|l| l.contains("not a trusted proxy") && l.contains("x-forwarded-email"))
        .unwrap_or_else(|| panic!("not logged: {text}"));
    assert!(line.contains("127.0.0.1"), "{line}");
    // the header is not a way around a token either
    let token = rig.person(&unique("Other"), &["Viewer"]).await;
    let mut h = auth(Some(&token));
    h.extend(header(&email));
    let r = rig.call("GET", "/api/v1/me", &h, Default::default()).await;
    assert_eq!(r.status, 200);
    assert_ne!(
        r.json()["name"],
        name.as_str(),
        "the token's person, not the header's"
    );
}

#[test]
fn ranges_hold_what_they_say() {
    use golive_server::auth::Cidr;
    let c = Cidr::parse("10.0.0.0/8").unwrap();
    assert!(c.contains("10.200.3.4".parse().unwrap()));
    assert!(!c.contains("11.0.0.1".parse().unwrap()));
    assert!(
        c.contains("::ffff:10.1.2.3".parse().unwrap()),
        "IPv4 seen over IPv6"
    );
    assert!(
        Cidr::parse("127.0.0.1")
            .unwrap()
            .contains("127.0.0.1".parse().unwrap())
    );
    assert!(
        !Cidr::parse("127.0.0.1")
            .unwrap()
            .contains("127.0.0.2".parse().unwrap())
    );
    assert!(
        Cidr::parse("::1/128")
            .unwrap()
            .contains("::1".parse().unwrap())
    );
    assert!(
        Cidr::parse("0.0.0.0/0")
            .unwrap()
            .contains("192.0.2.1".parse().unwrap())
    );
    assert!(Cidr::parse("10.0.0.0/33").unwrap_err().contains("0 to 32"));
    assert!(
        Cidr::parse("proxy.local")
            .unwrap_err()
            .contains("not an IP address")
    );
}
