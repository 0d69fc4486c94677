//! The tls probe against rustls servers with certificates from a test CA, and
//! against `openssl s_server` for the protocols rustls cannot speak. Days left
//! and the negotiated protocol are compared with what `openssl` reports.

mod common;

use common::{observe, probe, s, tool};
use golive_testkit::{OpensslServer, Pki, https, routes};
use serde_json::Value;
use std::time::Duration;

const T: Duration = Duration::from_secs(10);

async fn tls_obs(
    pki: &Pki,
    chain_key: (
        Vec<rustls_pki_types::CertificateDer<'static>>,
        rustls_pki_types::PrivateKeyDer<'static>,
    ),
    sni: &str,
) -> Value {
    let server = https(chain_key.0, chain_key.1, routes(&[("/", 200, "ok")])).await;
    let target = format!("127.0.0.1:{}", server.addr.port());
    let ca = pki.ca_file.to_string_lossy().into_owned();
    let p = probe(
        "tls",
        &[
            ("target", s(&target)),
            ("sni", s(sni)),
            ("ca_file", s(&ca)),
            ("legacy", toml::Value::Boolean(false)),
        ],
    );
    observe(p.as_ref(), T).await.0.expect("observed")
}

#[tokio::test]
async fn valid_certificate() {
    let pki = Pki::new();
    let obs = tls_obs(
        &pki,
        pki.leaf(&["shop.example.test"], -1, 90),
        "shop.example.test",
    )
    .await;
    let cert = &obs["cert"];
    assert_eq!(cert["chain_valid"], true, "{obs}");
    assert_eq!(cert["hostname_match"], true);
    assert!(
        (88..=90).contains(&cert["days_left"].as_i64().unwrap_or(0)),
        "{cert}"
    );
    assert_eq!(cert["sans"][0], "shop.example.test");
    assert_eq!(cert["self_signed"], false);
    assert_eq!(obs["protocol"], "TLSv1.3");
}

#[tokio::test]
async fn expired_not_yet_valid_wrong_host_and_self_signed() {
    let pki = Pki::new();
    let expired = tls_obs(
        &pki,
        pki.leaf(&["shop.example.test"], -60, -2),
        "shop.example.test",
    )
    .await;
    assert_eq!(expired["cert"]["chain_valid"], false);
    assert_eq!(expired["cert"]["chain_error"], "expired");
    assert!(expired["cert"]["days_left"].as_i64().unwrap_or(0) < 0);

    let future = tls_obs(
        &pki,
        pki.leaf(&["shop.example.test"], 5, 90),
        "shop.example.test",
    )
    .await;
    assert_eq!(future["cert"]["chain_valid"], false);
    assert_eq!(future["cert"]["chain_error"], "not yet valid");

    let wrong = tls_obs(
        &pki,
        pki.leaf(&["other.example.test"], -1, 90),
        "shop.example.test",
    )
    .await;
    assert_eq!(wrong["cert"]["chain_valid"], true);
    assert_eq!(wrong["cert"]["hostname_match"], false);

    let selfsigned = tls_obs(
        &pki,
        Pki::self_signed(&["shop.example.test"]),
        "shop.example.test",
    )
    .await;
    assert_eq!(selfsigned["cert"]["self_signed"], true);
    assert_eq!(selfsigned["cert"]["chain_valid"], false);
    assert!(
        selfsigned["cert"]["chain_error"]
            .as_str()
            .is_some_and(|e| e.contains("unknown issuer"))
    );
}

fn openssl_connect(port: u16, extra: &[&str]) -> String {
    let mut args = vec!["s_client", "-connect"];
    let target = format!("127.0.0.1:{port}");
    args.push(&target);
    args.extend(["-servername", "shop.example.test"]);
    args.extend(extra);
    let out = std::process::Command::new("openssl")
        .args(&args)
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .expect("openssl");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Days left as `openssl x509 -enddate` gives them, and the protocol
/// `openssl s_client` negotiates, on the same server.
#[tokio::test]
async fn agrees_with_openssl_on_days_left_and_protocol() {
    let pki = Pki::new();
    let (cert, key) = pki.leaf_files(&["shop.example.test"], "agree");
    let server = OpensslServer::start(&cert, &key, &["-www"]);
    let ca = pki.ca_file.to_string_lossy().into_owned();
    let target = format!("127.0.0.1:{}", server.port);
    let p = probe(
        "tls",
        &[
            ("target", s(&target)),
            ("sni", s("shop.example.test")),
            ("ca_file", s(&ca)),
        ],
    );
    let obs = tokio::task::spawn(async move { observe(p.as_ref(), T).await.0 })
        .await
        .expect("task")
        .expect("observed");

    let enddate = tool(
        "openssl",
        &[
            "x509",
            "-noout",
            "-enddate",
            "-dateopt",
            "iso_8601",
            "-in",
            &cert.to_string_lossy(),
        ],
    );
    let iso = enddate
        .trim()
        .trim_start_matches("notAfter=")
        .replace(' ', "T");
    let not_after: jiff::Timestamp = iso.parse().expect("openssl date");
    let days = (not_after.as_second() - jiff::Timestamp::now().as_second()).div_euclid(86_400);
    assert_eq!(obs["cert"]["days_left"], days);
    assert_eq!(obs["cert"]["not_after"], not_after.to_string());

    let port = server.port;
    let sc = tokio::task::spawn_blocking(move || openssl_connect(port, &[]))
        .await
        .expect("s_client");
    let proto = sc
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("Protocol  :")
                .or_else(|| l.split("New, ").nth(1).and_then(|r| r.split(',').next()))
        })
        .map(|p| p.trim().to_string())
        .expect("s_client prints the protocol");
    assert_eq!(
        obs["protocol"].as_str(),
        Some(proto.as_str()),
        "openssl said {proto}"
    );
    assert_eq!(obs["tls10"], false, "{}", obs["legacy"]);
    assert_eq!(obs["tls11"], false);
}

/// A server that still accepts TLS 1.0 (besides newer versions) is seen as
/// such, exactly as `openssl s_client -tls1` sees it; one limited to TLS 1.2
/// is not, and neither accepts what it does not.
#[tokio::test]
async fn tls10_acceptance_matches_openssl() {
    let pki = Pki::new();
    let (cert, key) = pki.leaf_files(&["shop.example.test"], "old");
    let old = OpensslServer::start(
        &cert,
        &key,
        &[
            "-www",
            "-cipher",
            "DEFAULT:@SECLEVEL=0",
            "-min_protocol",
            "TLSv1",
        ],
    );
    let modern = OpensslServer::start(&cert, &key, &["-www", "-tls1_2"]);
    for (server, accepts) in [(&old, true), (&modern, false)] {
        let port = server.port;
        let target = format!("127.0.0.1:{port}");
        let p = probe(
            "tls",
            &[("target", s(&target)), ("sni", s("shop.example.test"))],
        );
        let obs = observe(p.as_ref(), T).await.0.expect("observed");
        let sc = tokio::task::spawn_blocking(move || {
            openssl_connect(port, &["-tls1", "-cipher", "DEFAULT:@SECLEVEL=0"])
        })
        .await
        .expect("s_client");
        let openssl_accepts = sc.contains("New, TLSv1.0,");
        assert_eq!(openssl_accepts, accepts, "openssl s_client -tls1: {sc}");
        assert_eq!(obs["tls10"].as_bool(), Some(accepts), "{}", obs["legacy"]);
        if !accepts {
            assert!(
                obs["legacy"]["tls10"]
                    .as_str()
                    .is_some_and(|w| w.starts_with("alert")),
                "{}",
                obs["legacy"]
            );
            assert_eq!(obs["protocol"], "TLSv1.2");
        }
    }
}
