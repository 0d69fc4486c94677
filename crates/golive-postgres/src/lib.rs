//! golive-postgres: how golive connects to PostgreSQL, for the store and the
//! `postgres` probe alike. A [`Target`] is a `postgres://` URL read once:
//! the options the driver takes, plus the ones golive handles itself
//! (`connect_timeout`, a check that `sslrootcert` is there); [`Target::connect`]
//! makes one connection and, when it fails, says why in a [`ConnectError`]:
//! refused, no answer in time, TLS (and what about the certificate), or the
//! server's own reason. TLS is sqlx's rustls with ring.
//!
//! ```no_run
//! # async fn f() -> Result<(), golive_postgres::ConnectError> {
//! let target = golive_postgres::Target::parse(
//!     "postgres://app@db.internal/shop?sslmode=verify-full&sslrootcert=ca.pem&connect_timeout=5",
//! )?;
//! let conn = target.connect(target.connect_timeout()).await?;
//! # drop(conn); Ok(()) }
//! ```

use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgSslMode};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Why a connection could not be made. Messages never hold the URL (nor its
/// password): callers show the URL through
/// [`golive_runbook::url::redact_password`].
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The URL is not one golive can use: bad input, nothing was tried.
    #[error("{0}")]
    Url(String),
    #[error("sslrootcert={path}: {why}")]
    RootCert { path: String, why: String },
    #[error("connection refused by {0}")]
    Refused(String),
    #[error(
        "no answer from the server within {}s at {at} (connect_timeout=SECONDS in the URL waits longer)",
        .wait.as_secs()
    )]
    NoAnswer { at: String, wait: Duration },
    #[error("TLS with {at}: {why}")]
    Tls { at: String, why: String },
    /// The server answered and refused (pg_hba, authentication, no such
    /// database), in its words.
    #[error("the server refused: {0}")]
    Server(String),
    #[error("{at}: {why}")]
    Io { at: String, why: String },
    #[error("{0}")]
    Other(String),
}

/// A PostgreSQL URL, read.
#[derive(Debug, Clone)]
pub struct Target {
    options: PgConnectOptions,
    /// A server on this machine, with no `sslmode` in the URL: tried
    /// without TLS first (as libpq's `sslmode=allow`), since sqlx 0.9.0's
    /// TLS request costs two delayed acknowledgements (about 90 ms) per
    /// connection; with the URL's options when the server wants TLS.
    plain: Option<PgConnectOptions>,
    /// The server refused a connection without TLS: the URL's options from
    /// then on.
    plain_refused: Arc<AtomicBool>,
    sslmode_given: bool,
    connect_timeout: Option<Duration>,
    root_cert: Option<String>,
}

/// Whether `host` is this machine.
fn loopback(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare.eq_ignore_ascii_case("localhost")
        || bare
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

impl Target {
    /// Read `url` (`postgres://` or `postgresql://`, libpq's keys). golive
    /// takes `connect_timeout` (whole seconds, at least 1) out of it before
    /// the driver reads the rest.
    pub fn parse(url: &str) -> Result<Target, ConnectError> {
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(ConnectError::Url(
                "a PostgreSQL URL starts with postgres://".into(),
            ));
        }
        let (url, wait) = golive_runbook::url::take_query_param(url, "connect_timeout");
        let connect_timeout = match wait {
            None => None,
            Some(v) => match v.trim().parse::<u64>() {
                Ok(s) if s > 0 => Some(Duration::from_secs(s)),
                _ => {
                    return Err(ConnectError::Url(format!(
                        "connect_timeout={v}: give whole seconds, at least 1 (e.g. connect_timeout=5)"
                    )));
                }
            },
        };
        let (_, root_cert) = golive_runbook::url::take_query_param(&url, "sslrootcert");
        let options = PgConnectOptions::from_str(&url)
            .map_err(|e| ConnectError::Url(format!("not a PostgreSQL URL: {e}")))?;
        let (_, sslmode) = golive_runbook::url::take_query_param(&url, "sslmode");
        Ok(Target {
            options,
            plain: None,
            sslmode_given: sslmode.is_some(),
            plain_refused: Arc::new(AtomicBool::new(false)),
            connect_timeout,
            root_cert: root_cert.filter(|r| !r.trim_start().starts_with("-----BEGIN")),
        })
    }

    /// For the store: a server on this machine, when the URL names no
    /// `sslmode`, is tried without TLS first (see the `plain` field). The
    /// probe keeps libpq's `prefer`, since what it observes (`ssl`) must be
    /// what a client of the server gets.
    pub fn plain_first_on_loopback(mut self) -> Target {
        if !self.sslmode_given && loopback(self.options.get_host()) {
            self.plain = Some(self.options.clone().ssl_mode(PgSslMode::Disable));
        }
        self
    }

    /// The URL's `connect_timeout`, if it has one.
    pub fn connect_timeout(&self) -> Option<Duration> {
        self.connect_timeout
    }

    /// The options as the driver reads them (for a pool): without TLS for a
    /// server on this machine that took a connection without it (see
    /// [`Target::connect`]), else the URL's.
    pub fn options(&self) -> &PgConnectOptions {
        match &self.plain {
            Some(plain) if !self.plain_refused.load(Ordering::Relaxed) => plain,
            _ => &self.options,
        }
    }

    /// `host:port`, for messages.
    pub fn at(&self) -> String {
        format!("{}:{}", self.options.get_host(), self.options.get_port())
    }

    /// One connection, waiting at most `wait` for the server (`None`: as
    /// long as it takes; the caller bounds it).
    pub async fn connect(&self, wait: Option<Duration>) -> Result<PgConnection, ConnectError> {
        if let Some(path) = &self.root_cert {
            std::fs::metadata(path).map_err(|e| ConnectError::RootCert {
                path: path.clone(),
                why: e.to_string(),
            })?;
        }
        let first = self.connect_with(self.options(), wait).await;
        match first {
            // a server on this machine that accepts only TLS (pg_hba
            // `hostssl`) refuses the connection without it: the URL's way
            Err(sqlx::Error::Database(d))
                if self.plain.is_some()
                    && !self.plain_refused.load(Ordering::Relaxed)
                    && d.code().as_deref() == Some("28000") =>
            {
                self.plain_refused.store(true, Ordering::Relaxed);
                self.connect_with(&self.options, wait).await
            }
            other => other,
        }
        .map_err(|e| match e {
            sqlx::Error::PoolTimedOut => ConnectError::NoAnswer {
                at: self.at(),
                wait: wait.unwrap_or_default(),
            },
            e => self.cause(e),
        })
    }

    async fn connect_with(
        &self,
        options: &PgConnectOptions,
        wait: Option<Duration>,
    ) -> Result<PgConnection, sqlx::Error> {
        let connect = PgConnection::connect_with(options);
        match wait {
            Some(wait) => tokio::time::timeout(wait, connect)
                .await
                .map_err(|_| sqlx::Error::PoolTimedOut)?,
            None => connect.await,
        }
    }

    /// Why connecting failed, from the driver's error.
    pub fn cause(&self, e: sqlx::Error) -> ConnectError {
        let at = self.at();
        match e {
            sqlx::Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
                ConnectError::Refused(at)
            }
            sqlx::Error::Io(io) => match io
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
            {
                Some(tls) => ConnectError::Tls {
                    at,
                    why: tls_cause(tls, self.options.get_host()),
                },
                None => ConnectError::Io {
                    at,
                    why: io.to_string(),
                },
            },
            sqlx::Error::Tls(t) => ConnectError::Tls {
                at,
                why: t.to_string(),
            },
            sqlx::Error::Database(d) => ConnectError::Server(d.message().to_string()),
            other => ConnectError::Other(other.to_string()),
        }
    }
}

/// A TLS failure, with what to do for the two a deployer meets.
fn tls_cause(e: &rustls::Error, host: &str) -> String {
    use rustls::CertificateError as C;
    match e {
        // BadSignature: a CA of the same name signed it, not the one trusted
        rustls::Error::InvalidCertificate(C::UnknownIssuer | C::BadSignature) => format!(
            "the server's certificate is not signed by a CA trusted here ({e}): sslrootcert=PATH names the CA to trust"
        ),
        rustls::Error::InvalidCertificate(
            C::NotValidForName | C::NotValidForNameContext { .. },
        ) => {
            format!(
                "the server's certificate is not valid for the host name `{host}` ({e}): connect by a name it holds, or use sslmode=verify-ca to check only the CA"
            )
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_timeout_is_golives_and_must_be_whole_seconds() {
        let t = Target::parse("postgres://u@h:5433/db?connect_timeout=3&sslmode=require")
            .expect("parses");
        assert_eq!(t.connect_timeout(), Some(Duration::from_secs(3)));
        assert_eq!(t.at(), "h:5433");
        for bad in ["0", "1.5", "soon"] {
            let err = Target::parse(&format!("postgres://u@h/db?connect_timeout={bad}"))
                .expect_err("refused");
            assert!(
                err.to_string()
                    .starts_with(&format!("connect_timeout={bad}: ")),
                "{err}"
            );
        }
        assert!(matches!(
            Target::parse("mysql://u@h/db"),
            Err(ConnectError::Url(_))
        ));
    }
}
