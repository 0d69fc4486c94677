//! The page's and the API's defences, attacked over a real listener: CSRF,
//! sessions after logout, guessed tokens, path traversal, markup in
//! comments.

mod common;

use bytes::Bytes;
use common::{Rig, auth, unique};
use http_body_util::{BodyExt, Full};
use serde_json::json;

/// Log in with `token`: the session cookie (`name=value`).
async fn login(rig: &Rig, token: &str) -> String {
    let r = rig
        .call(
            "POST",
            "/login",
            &[(
                "content-type".into(),
                "application/x-www-form-urlencoded".into(),
            )],
            Bytes::from(format!("token={token}")),
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    let c = r.header("set-cookie").expect("a session cookie");
    assert!(
        c.contains("HttpOnly") && c.contains("SameSite=Strict") && c.contains("Path=/"),
        "{c}"
    );
    assert!(!c.contains(token), "the cookie is a session, not the token");
    c.split(';').next().unwrap().to_string()
}

fn cookie(c: &str) -> Vec<(String, String)> {
    vec![("cookie".into(), c.to_string())]
}

/// The CSRF token of a logged-in page.
async fn csrf(rig: &Rig, c: &str, id: &str) -> String {
    let page = rig
        .call("GET", &format!("/d/{id}"), &cookie(c), Bytes::new())
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    let at = page
        .body
        .find("name=\"csrf\" value=\"")
        .expect("a csrf field")
        + 19;
    page.body[at..at + 32].to_string()
}

fn form(c: &str) -> Vec<(String, String)> {
    let mut h = cookie(c);
    h.push((
        "content-type".into(),
        "application/x-www-form-urlencoded".into(),
    ));
    h
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_form_without_its_csrf_token_is_refused_and_records_nothing() {
    let rig = Rig::start(&common::sqlite("csrf")).await;
    let lead = rig.person(&unique("Dana Lead"), &["Deployment Lead"]).await;
    let ops = rig.person(&unique("Devi Ops"), &["DevOps Engineer"]).await;
    let id = rig.deployment(&lead).await;
    let c = login(&rig, &ops).await;
    let token = csrf(&rig, &c, &id).await;
    let events = || async { rig.store.events(&id).await.unwrap().len() };
    let before = events().await;
    for body in [
        "item=1.1.2&result=done".to_string(),
        "item=1.1.2&result=done&csrf=0123456789abcdef0123456789abcdef".to_string(),
    ] {
        let r = rig
            .call(
                "POST",
                &format!("/d/{id}/sign"),
                &form(&c),
                Bytes::from(body),
            )
            .await;
        assert_eq!(r.status, 403, "{}", r.body);
        assert!(
            r.body.contains("CSRF token is missing or not this session"),
            "{}",
            r.body
        );
    }
    // the API with the session cookie and no X-CSRF-Token header
    let mut h = cookie(&c);
    h.push(("content-type".into(), "application/json".into()));
    let r = rig
        .call(
            "POST",
            &format!("/api/v1/deployments/{id}/signoffs"),
            &h,
            Bytes::from(json!({ "item": "1.1.2" }).to_string()),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(events().await, before, "nothing recorded");
    // with it, the form works
    let r = rig
        .call(
            "POST",
            &format!("/d/{id}/sign"),
            &form(&c),
            Bytes::from(format!("item=1.1.2&result=done&csrf={token}")),
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(events().await, before + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_cookie_replayed_after_logout_is_refused() {
    let rig = Rig::start(&common::sqlite("logout")).await;
    let lead = rig.person(&unique("Dana Lead"), &["Deployment Lead"]).await;
    let id = rig.deployment(&lead).await;
    let c = login(&rig, &lead).await;
    assert_eq!(
        rig.call("GET", "/api/v1/me", &cookie(&c), Bytes::new())
            .await
            .status,
        200
    );
    let token = csrf(&rig, &c, &id).await;
    let r = rig
        .call(
            "POST",
            "/logout",
            &form(&c),
            Bytes::from(format!("csrf={token}")),
        )
        .await;
    assert_eq!(r.status, 303);
    assert!(r.header("set-cookie").unwrap().contains("Max-Age=0"));
    // the old cookie, sent again
    let r = rig
        .call("GET", "/api/v1/me", &cookie(&c), Bytes::new())
        .await;
    assert_eq!(r.status, 401, "{}", r.body);
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap()
            .contains("session has ended")
    );
    let r = rig
        .call("GET", &format!("/d/{id}"), &cookie(&c), Bytes::new())
        .await;
    assert_eq!(
        (r.status, r.header("location").as_deref()),
        (303, Some("/login"))
    );
    let r = rig
        .call(
            "POST",
            &format!("/d/{id}/sign"),
            &form(&c),
            Bytes::from(format!("item=1.1.2&csrf={token}")),
        )
        .await;
    assert_eq!(r.status, 303, "to the login page");
    assert_eq!(
        rig.store.events(&id).await.unwrap().len(),
        1,
        "nothing recorded after the deployment's creation"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_guessed_tokens_are_rate_limited_and_none_is_accepted() {
    let rig = Rig::start(&common::sqlite("guess")).await;
    let real = rig.person(&unique("Dana Lead"), &["Deployment Lead"]).await;
    let stream = tokio::net::TcpStream::connect(rig.addr).await.unwrap();
    let (mut send, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let (mut unauthorized, mut limited, mut accepted) = (0, 0, 0);
    for i in 0..10_000u32 {
        // guesses of the token's shape, one differing from the real one in its last digit
        let guess = if i == 9_999 {
            let mut g = real.clone();
            let last = if g.ends_with('0') { '1' } else { '0' };
            g.pop();
            g.push(last);
            g
        } else {
            format!("glv_{:064x}", u128::from(i) * 0x9e37_79b9_7f4a_7c15)
        };
        send.ready().await.unwrap();
        let req = hyper::Request::builder()
            .uri("/api/v1/me")
            .header("host", rig.addr.to_string())
            .header("authorization", format!("Bearer {guess}"))
            .body(Full::new(Bytes::new()))
            .unwrap();
        let r = send.send_request(req).await.unwrap();
        let status = r.status().as_u16();
        if status == 429 {
            assert!(r.headers().get("retry-after").is_some());
        }
        let _ = r.into_body().collect().await;
        match status {
            401 => unauthorized += 1,
            429 => limited += 1,
            200 => accepted += 1,
            other => panic!("guess {i}: {other}"),
        }
    }
    assert_eq!(accepted, 0);
    assert!(
        unauthorized <= 25,
        "{unauthorized} guesses were even looked up"
    );
    assert_eq!(unauthorized + limited, 10_000);
    // the login form is limited the same way
    let r = rig
        .call(
            "POST",
            "/login",
            &[(
                "content-type".into(),
                "application/x-www-form-urlencoded".into(),
            )],
            Bytes::from("token=glv_nope"),
        )
        .await;
    assert_eq!(r.status, 429, "{}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_path_traversal_in_a_report_name_or_an_asset_finds_nothing() {
    let rig = Rig::start(&common::sqlite("traversal")).await;
    let lead = rig.person(&unique("Dana Lead"), &["Deployment Lead"]).await;
    let id = rig.deployment(&lead).await;
    for name in [
        "..%2F..%2F..%2Fetc%2Fpasswd",
        "../../../../etc/passwd",
        "report.md%00.html",
        "%2e%2e%2fCargo.toml",
        "report.md/../../x",
    ] {
        let r = rig
            .get(
                &format!("/api/v1/deployments/{id}/reports/{name}"),
                Some(&lead),
            )
            .await;
        assert_eq!(r.status, 404, "{name}: {}", r.body);
        assert!(
            !r.body.contains("root:") && !r.body.contains("[package]"),
            "{name}"
        );
    }
    for path in [
        "/assets/..%2F..%2FCargo.toml",
        "/assets/../src/lib.rs",
        "/assets/vendor/..%2f..%2f..%2fCargo.toml",
    ] {
        let r = rig.get(path, None).await;
        assert_eq!(r.status, 404, "{path}: {}", r.body);
        assert!(
            !r.body.contains("[package]") && !r.body.contains("pub mod"),
            "{path}"
        );
    }
    assert_eq!(rig.get("/assets/golive.css", None).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn markup_in_a_comment_is_escaped_everywhere_it_is_shown() {
    let rig = Rig::start(&common::sqlite("xss")).await;
    let lead = rig.person(&unique("Dana Lead"), &["Deployment Lead"]).await;
    let ops = rig.person(&unique("Devi Ops"), &["DevOps Engineer"]).await;
    let id = rig.deployment(&lead).await;
    let evil = "<script>alert('x')</script><img src=x onerror=alert(1)>";
    let r = rig
        .json(
            "POST",
            &format!("/api/v1/deployments/{id}/signoffs"),
            Some(&ops),
            &json!({ "item": "1.1.2", "result": "na", "comment": evil }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let c = login(&rig, &ops).await;
    let page = rig
        .call("GET", &format!("/d/{id}"), &cookie(&c), Bytes::new())
        .await
        .body;
    let live = rig
        .call("GET", &format!("/d/{id}/live"), &cookie(&c), Bytes::new())
        .await
        .body;
    let html = rig
        .get(
            &format!("/api/v1/deployments/{id}/reports/report.html"),
            Some(&ops),
        )
        .await
        .body;
    for (what, body) in [
        ("page", &page),
        ("live part", &live),
        ("HTML report", &html),
    ] {
        assert!(
            !body.contains("<script>alert") && !body.contains("<img src=x"),
            "{what} carries the markup as markup"
        );
        assert!(
            body.contains("&lt;script&gt;") || body.contains("&lt;script"),
            "{what} shows the comment escaped"
        );
    }
    // JSON carries it as data
    let events = rig
        .get(&format!("/api/v1/deployments/{id}/events"), Some(&ops))
        .await
        .json();
    assert!(
        events["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["data"]["comment"] == evil)
    );
    let _ = auth(None);
}
