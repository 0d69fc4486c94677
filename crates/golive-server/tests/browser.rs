//! The page in headless Chromium, driven through WebDriver (Debian's
//! chromium-driver): two people logged in at once, each in their own
//! browser session; one signs, the other sees the count change without a
//! reload; a person without the role sees no form, and a forged POST from
//! their browser gets 403. Screenshots are kept under target/screenshots/.

mod common;

use common::{Rig, unique};
use fantoccini::{Client, ClientBuilder, Locator};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

struct Driver {
    child: Child,
    url: String,
    _dir: PathBuf,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// chromedriver on a free loopback port.
async fn driver() -> Driver {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = common::folder("chromedriver");
    let child = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .arg("--allowed-ips=127.0.0.1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver is installed (.ci/run installs Debian's chromium-driver)");
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
        _dir: dir,
    }
}

/// A browser session of its own (its own profile, so its own cookies).
async fn browser(d: &Driver, tag: &str) -> Client {
    let profile = common::folder(&format!("profile-{tag}"));
    let caps = serde_json::json!({
        "goog:chromeOptions": {
            "binary": "/usr/bin/chromium",
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-quic", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--window-size=1280,1000",
                format!("--user-data-dir={}", profile.display()),
            ]
        }
    });
    let serde_json::Value::Object(caps) = caps else {
        unreachable!()
    };
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&d.url)
        .await
        .expect("a WebDriver session")
}

async fn log_in(c: &Client, rig: &Rig, token: &str) {
    c.goto(&format!("http://{}/login", rig.addr)).await.unwrap();
    c.find(Locator::Css("#token"))
        .await
        .unwrap()
        .send_keys(token)
        .await
        .unwrap();
    c.find(Locator::Css("form.card button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    c.wait().for_element(Locator::Css("h1")).await.unwrap();
    assert!(
        c.current_url().await.unwrap().path() == "/",
        "logged in, on the list"
    );
}

async fn text(c: &Client, css: &str) -> String {
    c.find(Locator::Css(css))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

fn shots() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/screenshots");
    let _ = std::fs::create_dir_all(&dir);
    dir
}

async fn screenshot(c: &Client, name: &str, width: u32) {
    c.set_window_size(width, if width < 600 { 1600 } else { 1100 })
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let png = c.screenshot().await.unwrap();
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 20_000,
        "{name}: a page, not a blank"
    );
    std::fs::write(shots().join(format!("{name}-{width}.png")), png).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_signs_in_a_browser_and_the_other_sees_the_count_change_without_reload() {
    let rig = Rig::start(&common::sqlite("browser")).await;
    let lead = rig.person(&unique("Dana Lead"), &["Deployment Lead"]).await;
    let rm_name = unique("Rene Release");
    let rm = rig.person(&rm_name, &["Release Manager"]).await;
    let ops = rig.person(&unique("Devi Ops"), &["DevOps Engineer"]).await;
    let id = rig.deployment(&lead).await;
    let d = driver().await;
    let a = browser(&d, "a").await;
    let b = browser(&d, "b").await;
    log_in(&a, &rig, &rm).await;
    log_in(&b, &rig, &ops).await;
    let page = format!("http://{}/d/{id}", rig.addr);
    a.goto(&page).await.unwrap();
    b.goto(&page).await.unwrap();
    assert_eq!(text(&b, "#count-1").await, "0/2");
    // marks B's page: a reload would lose it
    b.execute("window.__still_here = 'yes'; return true;", vec![])
        .await
        .unwrap();

    // A signs 1.1.1, theirs
    let form = a
        .find(Locator::Css("form[data-item='1.1.1']"))
        .await
        .expect("the Release Manager sees the sign form of 1.1.1");
    form.find(Locator::Css("button[value='done']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    a.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::XPath(
            "//p[@id='flash' and contains(., 'signed by')]",
        ))
        .await
        .expect("A is told it is signed");

    // B sees the count change, live
    let mut seen = String::new();
    for _ in 0..100 {
        seen = text(&b, "#count-1").await;
        if seen == "1/2" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        seen, "1/2",
        "the second browser's count follows the sign-off"
    );
    let still = b
        .execute("return window.__still_here || 'reloaded';", vec![])
        .await
        .unwrap();
    assert_eq!(still, serde_json::json!("yes"), "without a reload");
    let log = text(&b, "#log").await;
    assert!(
        log.contains(&rm_name),
        "the Deployment Log names the signer: {log}"
    );

    // B holds no Release Manager role: no form for 1.1.1, and a forged POST is refused
    assert!(
        b.find_all(Locator::Css("form[data-item='1.1.1']"))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        !b.find_all(Locator::Css("form[data-item='1.1.2']"))
            .await
            .unwrap()
            .is_empty(),
        "1.1.2 names no role: B may sign it"
    );
    let status = b
        .execute(
            "const csrf = document.querySelector('input[name=csrf]').value;\
             const body = new URLSearchParams({csrf, item: '1.1.1', result: 'done'});\
             return fetch(location.pathname + '/sign', {method: 'POST', body}).then(r => r.status);",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(status, serde_json::json!(403));
    let k = golive_deploy::Kept::read(&rig.store, &id).await.unwrap().0;
    assert_eq!(k.signoffs.len(), 1, "only A's sign-off is recorded");

    screenshot(&a, "server-deployment", 1280).await;
    screenshot(&a, "server-deployment", 390).await;
    b.goto(&format!("http://{}/", rig.addr)).await.unwrap();
    screenshot(&b, "server-list", 1280).await;
    a.close().await.unwrap();
    b.close().await.unwrap();
}
