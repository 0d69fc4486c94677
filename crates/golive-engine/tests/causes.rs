//! A failed check carries its cause beside the fields its condition read:
//! a TLS check's chain error, a load check's statuses and errors, against
//! real servers on 127.0.0.1.

use golive_engine::{Baselines, Outcome, plan};
use golive_testkit::{Pki, http, https, routes};

async fn run_one(block: &str) -> golive_engine::CheckResult {
    let text = format!("# T\n\n## Checks\n\n- [ ] **The check**\n  ```golive\n{block}  ```\n");
    let rb = golive_runbook::parse_runbook("causes.md", &text);
    let p = plan(&rb, &golive_probe::Vars::new(), &[], &toml::Table::new()).expect("plan");
    assert!(p.problems.is_empty(), "{:?}", p.problems);
    let check = p.checks.into_iter().next().expect("one check");
    golive_engine::run::run_check(check, &Baselines::Record).await
}

fn actual(r: &golive_engine::CheckResult, field: &str) -> serde_json::Value {
    r.actual
        .iter()
        .find(|(k, _)| k == field)
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| panic!("no `{field}` beside the failure: {:?}", r.actual))
}

#[tokio::test]
async fn a_tls_check_that_fails_on_its_chain_says_why() {
    let pki = Pki::new();
    let (chain, key) = pki.leaf(&["shop.example.test"], -1, 90);
    let server = https(chain, key, routes(&[("/", 200, "ok")])).await;
    // no ca_file: the generated CA is unknown to the bundled roots
    let r = run_one(&format!(
        "  check = \"tls\"\n  target = \"{}\"\n  sni = \"shop.example.test\"\n  legacy = false\n  expect = \"cert.chain_valid\"\n",
        server.addr
    ))
    .await;
    assert_eq!(r.outcome, Outcome::Failed);
    let why = actual(&r, "cert.chain_error");
    assert!(
        why.as_str().is_some_and(|w| w.contains("unknown issuer")),
        "{why}"
    );
}

#[tokio::test]
async fn a_load_check_that_fails_on_its_error_rate_says_which_answers_came() {
    let server = http(routes(&[("/ok", 200, "ok")])).await;
    let r = run_one(&format!(
        "  check = \"load\"\n  target = \"http://{}/missing\"\n  requests = 20\n  concurrency = 2\n  expect = \"error_rate < 0.01\"\n",
        server.addr
    ))
    .await;
    assert_eq!(r.outcome, Outcome::Failed);
    assert_eq!(actual(&r, "error_rate"), serde_json::json!(1.0));
    assert_eq!(actual(&r, "statuses")["404"], 20);
}
