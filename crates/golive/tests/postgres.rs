//! PostgreSQL as the store and as a probe's target, through the real binary:
//! a URL's password never shows, however it is written; a refused or silent
//! server is named with its cause; `sslmode` asks for TLS through rustls and
//! gets it, checked against a PostgreSQL started here with TLS on.

mod common;

use common::standin::database_url;
use std::path::PathBuf;
use std::process::{Command, Output};

fn golive(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_golive"))
        .args(args)
        .env_remove("GOLIVE_STORE")
        .output()
        .expect("golive runs")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A port nothing listens on, held (bound, not listening: connecting is
/// refused) for as long as the socket returned lives, so that no other test
/// takes it meanwhile.
fn closed_port() -> (tokio::net::TcpSocket, u16) {
    let held = tokio::net::TcpSocket::new_v4().expect("socket");
    held.bind("127.0.0.1:0".parse().expect("addr"))
        .expect("bind");
    let port = held.local_addr().expect("addr").port();
    (held, port)
}

/// `url` (`postgres://user@host…`) with `password` written into its userinfo
/// as it is, unencoded.
fn with_password(url: &str, password: &str) -> String {
    let (scheme, rest) = url.split_once("://").expect("a URL");
    match rest.split_once('@') {
        Some((user, host)) => {
            let user = user.split(':').next().unwrap_or(user);
            format!("{scheme}://{user}:{password}@{host}")
        }
        None => format!("{scheme}://postgres:{password}@{rest}"),
    }
}

/// `url` with one more query parameter.
fn with_param(url: &str, param: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{param}")
}

/// A one-item runbook in a folder of its own.
fn runbook(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("golive-pgtest-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("runbook.md");
    std::fs::write(&path, "## Go\n\n- [ ] **Ship it**\n").expect("runbook");
    path
}

/// Each password, and each piece of it around an `@` or `:`, is absent.
fn assert_hidden(out: &Output, passwords: &[&str]) {
    let all = text(out);
    for pw in passwords {
        for piece in std::iter::once(*pw).chain(pw.split(['@', ':'])) {
            if piece.len() >= 3 {
                assert!(
                    !all.contains(piece),
                    "`{piece}` of a password shown:\n{all}"
                );
            }
        }
    }
}

/// Defect: a password given as `?password=` was printed in clear, and with an
/// unencoded `@` in the password the part after it was. The store's location
/// is shown without it whatever the form, on a closed port and on the real
/// server.
#[test]
fn postgres_url_password_is_never_shown_by_the_store() {
    let rb = runbook("store-redact");
    let rb = rb.to_str().expect("path");
    let (_held, port) = closed_port();
    let closed = format!("postgres://postgres@127.0.0.1:{port}/test");
    let at = format!("127.0.0.1:{port}/test");
    let forms = [
        (
            with_password(&closed, "s3cr@t"),
            vec!["s3cr@t"],
            format!("postgres://postgres:***@{at}?"),
        ),
        (
            with_password(&closed, "pa:ss@wo@rd"),
            vec!["pa:ss@wo@rd"],
            format!("postgres://postgres:***@{at}?"),
        ),
        (
            with_param(&closed, "password=Qu3ryPw"),
            vec!["Qu3ryPw"],
            format!("postgres://postgres@{at}?password=***&"),
        ),
        (
            with_param(
                &with_param(&closed, "sslmode=disable"),
                "PassWord=Am9ersand",
            ),
            vec!["Am9ersand"],
            format!("postgres://postgres@{at}?sslmode=disable&PassWord=***&"),
        ),
        (
            with_password(&closed, "pct%40Enc0ded"),
            vec!["pct%40Enc0ded", "pct@Enc0ded"],
            format!("postgres://postgres:***@{at}?"),
        ),
    ];
    for (url, secret, shown) in &forms {
        let url = with_param(url, "connect_timeout=2");
        let out = golive(&["run", rb, "--store", &url]);
        assert_eq!(out.status.code(), Some(2), "{}", text(&out));
        assert_hidden(&out, secret);
        assert!(
            text(&out).contains(&format!("cannot open the store {shown}")),
            "shown as {shown}: {}",
            text(&out)
        );
    }
    let real = database_url();
    for (url, secret) in [
        (with_password(&real, "s3cr@t"), "s3cr@t"),
        (with_param(&real, "password=Qu3ryPw"), "Qu3ryPw"),
    ] {
        let out = golive(&["run", rb, "--store", &url]);
        assert!(text(&out).contains("golive: recorded "), "{}", text(&out));
        assert_hidden(&out, &[secret]);
        let out = golive(&["status", "--store", &url]);
        assert_hidden(&out, &[secret]);
    }
}

/// Defect: the probe printed a `?password=` and the part of a password after
/// an unencoded `@`.
#[test]
fn postgres_url_password_is_never_shown_by_the_probe() {
    let (_held, port) = closed_port();
    let closed = format!("postgres://postgres@127.0.0.1:{port}/test");
    let real = database_url();
    for base in [&closed, &real] {
        for (url, secret) in [
            (with_password(base, "s3cr@t"), "s3cr@t"),
            (with_password(base, "pa:ss@wo@rd"), "pa:ss@wo@rd"),
            (with_param(base, "password=Qu3ryPw"), "Qu3ryPw"),
            (with_param(base, "PASSWORD=Qu3ryPw"), "Qu3ryPw"),
        ] {
            for format in ["text", "json"] {
                let out = golive(&["probe", "postgres", &url, "--format", format]);
                assert_hidden(&out, &[secret]);
                let expected = if base == &real { Some(0) } else { Some(1) };
                assert_eq!(out.status.code(), expected, "{url}: {}", text(&out));
            }
        }
    }
}

/// Defect: a refused port and a server that accepts and never answers were
/// reported, by the store, as a pool time-out after 10 s; both the store and
/// the probe now name the cause.
#[tokio::test(flavor = "multi_thread")]
async fn postgres_refused_or_silent_server_is_reported_with_its_cause() {
    let rb = runbook("refused");
    let rb = rb.to_str().expect("path");
    let (_held, port) = closed_port();
    let refused = format!("postgres://postgres@127.0.0.1:{port}/test?connect_timeout=1");
    let silent = golive_testkit::silent().await;
    let silent = format!(
        "postgres://postgres@127.0.0.1:{}/test?connect_timeout=1",
        silent.addr.port()
    );
    let out = golive(&["run", rb, "--store", &refused]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("connection refused"), "{}", text(&out));
    let out = golive(&["run", rb, "--store", &silent]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("no answer from the server within 1s"),
        "{}",
        text(&out)
    );
    let out = golive(&["probe", "postgres", &refused]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("connection refused"), "{}", text(&out));
    let out = golive(&["probe", "postgres", &silent, "--timeout", "5s"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("no answer from the server within 1s"),
        "{}",
        text(&out)
    );
}

/// How each `sslmode` fares against a server with TLS on and only `hostssl`
/// allowed, for a client at `open` (the store or the probe): what must be
/// found in its output when it connects, or why it was refused.
struct TlsCase {
    url: String,
    connects: bool,
    says: &'static str,
}

fn tls_cases(server: &golive_testkit::PostgresServer, ca: &str, wrong_ca: &str) -> Vec<TlsCase> {
    let at = server.url("127.0.0.1");
    let by_name = server.url("localhost");
    let case = |url: String, connects: bool, says: &'static str| TlsCase {
        url,
        connects,
        says,
    };
    vec![
        // no sslmode, on this machine: golive tries without TLS first, and
        // takes TLS when the server refuses that (hostssl only)
        case(at.clone(), true, ""),
        case(with_param(&at, "sslmode=require"), true, ""),
        case(format!("{at}?sslmode=verify-ca&sslrootcert={ca}"), true, ""),
        // verify-ca checks the CA, not the name
        case(
            format!("{by_name}?sslmode=verify-ca&sslrootcert={ca}"),
            true,
            "",
        ),
        case(
            format!("{at}?sslmode=verify-full&sslrootcert={ca}"),
            true,
            "",
        ),
        case(
            format!("{at}?sslmode=verify-full&sslrootcert={wrong_ca}"),
            false,
            "the server's certificate is not signed by a CA trusted here",
        ),
        case(
            format!("{at}?sslmode=verify-ca&sslrootcert={wrong_ca}"),
            false,
            "the server's certificate is not signed by a CA trusted here",
        ),
        case(
            format!("{by_name}?sslmode=verify-full&sslrootcert={ca}"),
            false,
            "the server's certificate is not valid for the host name `localhost`",
        ),
        case(
            with_param(&at, "sslmode=disable"),
            false,
            "no pg_hba.conf entry for host \"127.0.0.1\", user \"postgres\", database \"postgres\", no encryption",
        ),
        case(
            format!("{at}?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem"),
            false,
            "sslrootcert=/nonexistent/ca.pem: No such file",
        ),
    ]
}

/// Defect: `sslmode=require` failed for the store ("built without TLS
/// support"), so no managed PostgreSQL requiring TLS could hold deployments.
/// `require`, `verify-ca` and `verify-full` now work through rustls; a wrong
/// CA, a wrong host name and a refused plain connection say why.
#[test]
fn postgres_sslmode_require_verify_ca_verify_full_work_for_the_store() {
    let pki = golive_testkit::Pki::new();
    let other = golive_testkit::Pki::new();
    let server = golive_testkit::PostgresServer::start_tls(&pki, &["127.0.0.1"]);
    let rb = runbook("store-tls");
    let rb = rb.to_str().expect("path");
    let (ca, wrong) = (pki.ca_file.display(), other.ca_file.display());
    for case in tls_cases(&server, &ca.to_string(), &wrong.to_string()) {
        let out = golive(&["run", rb, "--store", &case.url]);
        if case.connects {
            // the server lets in nothing but TLS over TCP: recorded means encrypted
            assert!(
                text(&out).contains("golive: recorded "),
                "{}: {}",
                case.url,
                text(&out)
            );
            let out = golive(&["status", "--store", &case.url]);
            assert_eq!(out.status.code(), Some(0), "{}: {}", case.url, text(&out));
        } else {
            assert_eq!(out.status.code(), Some(2), "{}: {}", case.url, text(&out));
            assert!(
                text(&out).contains("cannot open the store") && text(&out).contains(case.says),
                "{}: expected `{}`: {}",
                case.url,
                case.says,
                text(&out)
            );
        }
    }
}

/// Defect: `sslmode=require` failed for the probe ("built without TLS
/// support"). The probe's `ssl` is the server's own word
/// (`pg_stat_ssl` of its session).
#[test]
fn postgres_sslmode_require_verify_ca_verify_full_work_for_the_probe() {
    let pki = golive_testkit::Pki::new();
    let other = golive_testkit::Pki::new();
    let server = golive_testkit::PostgresServer::start_tls(&pki, &["127.0.0.1"]);
    let (ca, wrong) = (pki.ca_file.display(), other.ca_file.display());
    for case in tls_cases(&server, &ca.to_string(), &wrong.to_string()) {
        let out = golive(&["probe", "postgres", &case.url, "--format", "json"]);
        if case.connects {
            assert_eq!(out.status.code(), Some(0), "{}: {}", case.url, text(&out));
            let v: serde_json::Value =
                serde_json::from_slice(&out.stdout).expect("the observation as JSON");
            assert_eq!(v["observation"]["ssl"], true, "{}: {v}", case.url);
            assert_eq!(v["observation"]["value"], 1, "{}: {v}", case.url);
        } else {
            assert_eq!(out.status.code(), Some(1), "{}: {}", case.url, text(&out));
            assert!(
                text(&out).contains("could not observe") && text(&out).contains(case.says),
                "{}: expected `{}`: {}",
                case.url,
                case.says,
                text(&out)
            );
        }
    }
}
