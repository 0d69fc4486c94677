//! A stand-in for the reference checklist's service, started by a test: an
//! HTTPS service with a test CA, an HTTP server that redirects to it, a DNS
//! server and a git repository with a release tag.

use super::root;
use golive_testkit::{Pki, PrometheusServer, Server, full};
use http::{Request, Response};
use hyper::body::Incoming;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::Arc;

pub const TOKEN: &str = "s3cr3t-Token-9f2c";
/// The test PagerDuty routing key: a secret, never in any output or row.
pub const ROUTING_KEY: &str = "R0uting-K3y-77a1";

pub struct StandIn {
    pub pki: Pki,
    pub https: Server,
    pub http: Server,
    pub dns: Server,
    pub repo: PathBuf,
    /// A real Prometheus scraping the service's `/metrics` every second.
    pub prometheus: PrometheusServer,
    /// Where test alerts go (PagerDuty's Events API stands here).
    pub alerts: Server,
    pub received: Arc<std::sync::Mutex<Vec<golive_testkit::Received>>>,
}

/// The PostgreSQL server the tests use (`.ci/run` starts one).
pub fn database_url() -> String {
    std::env::var("GOLIVE_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// The Redis server the tests use (`.ci/run` starts one).
pub fn redis_url() -> String {
    format!(
        "redis://{}",
        std::env::var("GOLIVE_TEST_REDIS").unwrap_or_else(|_| "127.0.0.1:6379".into())
    )
}

/// The schema version table the reference checklist's database check reads,
/// created once under a lock (tests start stand-ins in parallel).
fn schema_migrations() {
    let out = Command::new("psql")
        .arg(database_url())
        .args(["-qAt", "-v", "ON_ERROR_STOP=1", "-c"])
        .arg("BEGIN; SELECT pg_advisory_xact_lock(74210); CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY); INSERT INTO schema_migrations VALUES (20261127) ON CONFLICT DO NOTHING; COMMIT;")
        .output()
        .expect("psql is installed (.ci/run installs it)");
    assert!(
        out.status.success(),
        "schema_migrations: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

pub async fn stand_in(version: &'static str) -> StandIn {
    let pki = Pki::new();
    let (chain, key) = pki.leaf(&["localhost"], -1, 90);
    let https =
        golive_testkit::https(chain, key, golive_testkit::smoke_service(version, TOKEN)).await;
    let port = https.addr.port();
    let http = golive_testkit::http(Arc::new(move |req: &Request<Incoming>| {
        Response::builder()
            .status(301)
            .header(
                "location",
                format!("https://localhost:{port}{}", req.uri().path()),
            )
            .body(full(""))
            .expect("response")
    }))
    .await;
    let dns = golive_testkit::dns().await;
    let repo = pki.dir.join("repo");
    std::fs::create_dir_all(&repo).expect("repo dir");
    std::fs::write(repo.join("package-lock.json"), "{\"lockfileVersion\":3}\n").expect("lock");
    std::fs::write(repo.join(".env.production.example"), "DATABASE_URL=\n").expect("env");
    let git = |args: &[&str]| {
        let ok = Command::new("git")
            .args(args)
            .current_dir(&repo)
            .env("GIT_AUTHOR_NAME", "Release Bot")
            .env("GIT_AUTHOR_EMAIL", "release@example.test")
            .env("GIT_COMMITTER_NAME", "Release Bot")
            .env("GIT_COMMITTER_EMAIL", "release@example.test")
            .output()
            .expect("git")
            .status
            .success();
        assert!(ok, "git {args:?}");
    };
    git(&["init", "-q"]);
    git(&["add", "."]);
    git(&["commit", "-q", "-m", "release"]);
    git(&["tag", "v1.1.0"]);
    let (addr, ca) = (https.addr, pki.ca_file.clone());
    let prometheus = tokio::task::spawn_blocking(move || {
        schema_migrations();
        let p = PrometheusServer::start_tls(&[addr], "1s", &ca);
        assert!(
            p.wait_for_scrapes(2),
            "prometheus did not scrape the stand-in"
        );
        p
    })
    .await
    .expect("prometheus");
    let (alerts, received) = golive_testkit::receiver(202).await;
    StandIn {
        pki,
        https,
        http,
        dns,
        repo,
        prometheus,
        alerts,
        received,
    }
}

/// `golive run` of the annotated reference checklist against the stand-in,
/// recording into `store`.
pub fn run_seed(s: &StandIn, store: &str, version: &str, extra: &[&str]) -> Output {
    let domain = format!("localhost:{}", s.https.addr.port());
    let http_url = format!("http://127.0.0.1:{}/", s.http.addr.port());
    let ns = format!("127.0.0.1:{}", s.dns.addr.port());
    let mut args: Vec<String> = vec![
        "run".into(),
        "examples/aiwg-production.md".into(),
        "--var".into(),
        format!("DOMAIN={domain}"),
        "--var".into(),
        format!("VERSION={version}"),
        "--var".into(),
        format!("HTTP_URL={http_url}"),
        "--var".into(),
        format!("REPO_DIR={}", s.repo.display()),
        // a generous budget for /live: the test asserts outcomes, not speed
        "--var".into(),
        "LIVE_BUDGET_MS=5000".into(),
        "--secret".into(),
        "TEST_TOKEN=env:GOLIVE_TEST_TOKEN".into(),
        "--secret".into(),
        "DATABASE_URL=env:GOLIVE_TEST_DATABASE_URL".into(),
        "--var".into(),
        format!("PROMETHEUS_URL={}", s.prometheus.url()),
        "--var".into(),
        format!("REDIS_URL={}", redis_url()),
        "--var".into(),
        format!(
            "PAGERDUTY_EVENTS_URL=http://127.0.0.1:{}/v2/enqueue",
            s.alerts.addr.port()
        ),
        "--secret".into(),
        "PAGERDUTY_ROUTING_KEY=env:GOLIVE_TEST_ROUTING_KEY".into(),
        "--ca-file".into(),
        s.pki.ca_file.to_string_lossy().into_owned(),
        "--nameserver".into(),
        ns,
    ];
    args.extend(extra.iter().map(|a| a.to_string()));
    Command::new(env!("CARGO_BIN_EXE_golive"))
        .args(&args)
        .current_dir(root())
        .env("GOLIVE_TEST_TOKEN", TOKEN)
        .env("GOLIVE_TEST_DATABASE_URL", database_url())
        .env("GOLIVE_TEST_ROUTING_KEY", ROUTING_KEY)
        .env("GOLIVE_STORE", store)
        .output()
        .expect("golive runs")
}

pub fn store_of(s: &StandIn) -> String {
    format!("sqlite://{}", s.pki.dir.join("golive.db").display())
}

pub fn no_secret(out: &Output) {
    for stream in [&out.stdout, &out.stderr] {
        let text = String::from_utf8_lossy(stream);
        assert!(!text.contains(TOKEN), "the secret leaked: {text}");
        assert!(
            !text.contains(ROUTING_KEY),
            "the routing key leaked: {text}"
        );
    }
}
