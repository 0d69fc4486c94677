//! `tcp`: can a connection be opened, and how long does it take.
//!
//! Observes `open` (false when refused), `address`, `connect_ms`, `resolve_ms`.
//! A name that does not resolve or a connect that hangs could not be observed.

use crate::net::{connect, host_port, resolve};
use crate::{BoxFuture, Kind, Observation, Probe, ProbeError, Spec, SpecError, millis};
use serde_json::json;

pub(crate) static KIND: Kind = Kind {
    name: "tcp",
    summary: "open a TCP connection: reachable or refused, and how fast",
    options: &["port", "nameserver"],
    default_expect: "open",
    default_timeout: crate::DEFAULT_TIMEOUT,
    observes: &[
        ("open", &[]),
        ("refused", &[]),
        ("address", &[]),
        ("connect_ms", &[]),
        ("resolve_ms", &[]),
    ],
    causes: &[],
    build,
};

#[derive(Debug)]
struct Tcp {
    host: String,
    port: u16,
    nameserver: Option<String>,
}

fn build(spec: &Spec) -> Result<Box<dyn Probe>, SpecError> {
    let target = spec.required("target")?;
    let default = spec.int("port")?.unwrap_or(0);
    let (host, port) = host_port(&target, u16::try_from(default).unwrap_or(0))
        .map_err(|e| SpecError::Invalid("target".into(), e))?;
    if port == 0 {
        return Err(SpecError::Invalid(
            "target".into(),
            format!("`{target}` needs a port (host:port)"),
        ));
    }
    Ok(Box::new(Tcp {
        host,
        port,
        nameserver: spec.text("nameserver")?,
    }))
}

impl Probe for Tcp {
    fn target(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    fn observe(&self) -> BoxFuture<'_, Result<Observation, ProbeError>> {
        Box::pin(async move {
            let (addrs, resolve_t) =
                resolve(&self.host, self.port, self.nameserver.as_deref()).await?;
            match connect(&addrs).await {
                Ok((_, addr, t)) => Ok(json!({
                    "open": true,
                    "address": addr.to_string(),
                    "connect_ms": millis(t),
                    "resolve_ms": millis(resolve_t),
                })),
                Err(ProbeError::Refused(a)) => Ok(json!({
                    "open": false,
                    "refused": true,
                    "address": a,
                    "resolve_ms": millis(resolve_t),
                })),
                Err(e) => Err(e),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Vars;

    fn probe(target: &str) -> Box<dyn Probe> {
        let mut t = toml::Table::new();
        t.insert("target".into(), toml::Value::String(target.into()));
        let vars = Vars::new();
        let spec = Spec {
            kind: "tcp",
            table: &t,
            vars: &vars,
            commands: Vec::new(),
            timeout: crate::DEFAULT_TIMEOUT,
        };
        build(&spec).expect("spec")
    }

    #[tokio::test]
    async fn open_port_and_refused_port() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let obs = probe(&addr.to_string()).observe().await.expect("observed");
        assert_eq!(obs["open"], true);
        assert_eq!(obs["address"], addr.to_string());
        assert!(obs["connect_ms"].as_f64().is_some());
        drop(listener);
        // a port bound but not listening refuses, and stays this test's: a
        // port merely freed can be taken at once by another test's listener
        let held = tokio::net::TcpSocket::new_v4().expect("socket");
        held.bind("127.0.0.1:0".parse().expect("addr"))
            .expect("bind");
        let closed = held.local_addr().expect("addr");
        let obs = probe(&closed.to_string())
            .observe()
            .await
            .expect("observed");
        assert_eq!(obs["open"], false);
        assert_eq!(obs["refused"], true);
        drop(held);
    }

    #[test]
    fn a_port_is_required() {
        let mut t = toml::Table::new();
        t.insert("target".into(), toml::Value::String("localhost".into()));
        let vars = Vars::new();
        let spec = Spec {
            kind: "tcp",
            table: &t,
            vars: &vars,
            commands: vec![],
            timeout: crate::DEFAULT_TIMEOUT,
        };
        assert!(build(&spec).is_err());
    }
}
