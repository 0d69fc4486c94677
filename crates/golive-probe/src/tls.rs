//! `tls`: the certificate a server presents and the protocols it accepts.
//!
//! The handshake accepts any certificate so that a bad one can be described
//! rather than merely refused; the chain is then verified on its own, against
//! the bundled web roots or `ca_file`. TLS 1.0 and 1.1 (which rustls cannot
//! speak) are tried with a minimal hand-built ClientHello: a ServerHello of that
//! version means accepted, anything else (an alert, a reset, silence) not.
//!
//! Observes `cert.{not_before, not_after, days_left, subject, issuer, sans,
//! hostname_match, chain_valid, chain_error, self_signed, chain_length}`,
//! `protocol` (`TLSv1.3`), `cipher`, `handshake_ms`, `tls10`, `tls11`
//! (accepted or not) and `legacy` (what each old handshake got back).

use crate::net::{AcceptAny, connect, host_port, provider, resolve, roots};
use crate::{BoxFuture, Kind, Observation, Probe, ProbeError, Spec, SpecError, millis};
use rustls::client::WebPkiServerVerifier;
use rustls::{CertificateError, ClientConfig};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

pub(crate) static KIND: Kind = Kind {
    name: "tls",
    summary: "a server's certificate (dates, chain, names) and accepted TLS versions",
    options: &["sni", "ca_file", "port", "legacy", "nameserver"],
    default_expect: "cert.chain_valid && cert.hostname_match && cert.days_left > 0",
    default_timeout: crate::DEFAULT_TIMEOUT,
    observes: &[
        (
            "cert",
            &[
                "subject",
                "issuer",
                "serial",
                "not_before",
                "not_after",
                "days_left",
                "sans",
                "hostname_match",
                "self_signed",
                "chain_valid",
                "chain_error",
                "chain_length",
            ],
        ),
        ("protocol", &[]),
        ("cipher", &[]),
        ("handshake_ms", &[]),
        ("address", &[]),
        ("tls10", &[]),
        ("tls11", &[]),
        ("legacy", &["tls10", "tls11"]),
    ],
    causes: &[
        ("cert.chain_valid", "cert.chain_error"),
        ("cert.hostname_match", "cert.sans"),
    ],
    build,
};

#[derive(Debug)]
struct Tls {
    host: String,
    port: u16,
    sni: String,
    ca_file: Option<String>,
    legacy: bool,
    nameserver: Option<String>,
}

fn build(spec: &Spec) -> Result<Box<dyn Probe>, SpecError> {
    let target = spec.required("target")?;
    let port = u16::try_from(spec.int("port")?.unwrap_or(443)).unwrap_or(443);
    let (host, port) =
        host_port(&target, port).map_err(|e| SpecError::Invalid("target".into(), e))?;
    let sni = spec.text("sni")?.unwrap_or_else(|| host.clone());
    Ok(Box::new(Tls {
        host,
        port,
        sni,
        ca_file: spec.text("ca_file")?,
        legacy: spec.flag("legacy")?.unwrap_or(true),
        nameserver: spec.text("nameserver")?,
    }))
}

impl Probe for Tls {
    fn target(&self) -> String {
        if self.sni == self.host {
            format!("{}:{}", self.host, self.port)
        } else {
            format!("{}:{} (SNI {})", self.host, self.port, self.sni)
        }
    }

    fn observe(&self) -> BoxFuture<'_, Result<Observation, ProbeError>> {
        Box::pin(self.run())
    }
}

impl Tls {
    async fn run(&self) -> Result<Observation, ProbeError> {
        let where_ = format!("{}:{}", self.host, self.port);
        let roots = roots(self.ca_file.as_deref()).map_err(ProbeError::Io)?;
        let (addrs, _) = resolve(&self.host, self.port, self.nameserver.as_deref()).await?;
        let (tcp, addr, _) = connect(&addrs).await?;
        let config = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| ProbeError::Tls(where_.clone(), e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAny(provider())))
            .with_no_client_auth();
        let name = ServerName::try_from(self.sni.clone())
            .map_err(|e| ProbeError::Tls(where_.clone(), format!("bad server name: {e}")))?;
        let t = Instant::now();
        let stream = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name.clone(), tcp)
            .await
            .map_err(|e| {
                ProbeError::Tls(
                    where_.clone(),
                    e.get_ref().map_or_else(|| e.to_string(), |i| i.to_string()),
                )
            })?;
        let handshake = t.elapsed();
        let conn = stream.get_ref().1;
        let protocol = match conn.protocol_version() {
            Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3",
            Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2",
            _ => "unknown",
        };
        let cipher = conn
            .negotiated_cipher_suite()
            .map(|s| format!("{:?}", s.suite()))
            .unwrap_or_default();
        let chain: Vec<CertificateDer<'static>> = conn
            .peer_certificates()
            .map(|c| c.iter().map(|c| c.clone().into_owned()).collect())
            .unwrap_or_default();
        drop(stream);
        let Some(leaf) = chain.first() else {
            return Err(ProbeError::Tls(
                where_,
                "the server sent no certificate".into(),
            ));
        };
        let mut cert = describe(leaf, &self.sni)?;
        let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider())
            .build()
            .map_err(|e| ProbeError::Io(e.to_string()))?;
        let verdict = rustls::client::danger::ServerCertVerifier::verify_server_cert(
            verifier.as_ref(),
            leaf,
            &chain[1..],
            &name,
            &[],
            UnixTime::now(),
        );
        let (valid, error) = match verdict {
            Ok(_) => (true, None),
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => (true, None),
            Err(rustls::Error::InvalidCertificate(e)) => (false, Some(cert_error(&e))),
            Err(e) => (false, Some(e.to_string())),
        };
        cert["chain_valid"] = json!(valid);
        cert["chain_error"] = json!(error);
        cert["chain_length"] = json!(chain.len());
        let mut obs = json!({
            "cert": cert,
            "protocol": protocol,
            "cipher": cipher,
            "handshake_ms": millis(handshake),
            "address": addr.to_string(),
        });
        if self.legacy {
            let (ok10, why10) = legacy_accepted(addr, &self.sni, 0x0301).await;
            let (ok11, why11) = legacy_accepted(addr, &self.sni, 0x0302).await;
            obs["tls10"] = json!(ok10);
            obs["tls11"] = json!(ok11);
            obs["legacy"] = json!({ "tls10": why10, "tls11": why11 });
        }
        Ok(obs)
    }
}

fn cert_error(e: &CertificateError) -> String {
    match e {
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => "expired".into(),
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
            "not yet valid".into()
        }
        CertificateError::UnknownIssuer => "unknown issuer (not signed by a trusted CA)".into(),
        CertificateError::BadSignature => "bad signature".into(),
        CertificateError::Revoked => "revoked".into(),
        other => format!("{other:?}").to_lowercase(),
    }
}

fn rfc3339(secs: i64) -> Value {
    jiff::Timestamp::from_second(secs).map_or(Value::Null, |t| json!(t.to_string()))
}

/// Dates, names and the hostname match of a leaf certificate.
fn describe(der: &CertificateDer<'_>, host: &str) -> Result<Value, ProbeError> {
    let (_, x) = X509Certificate::from_der(der.as_ref())
        .map_err(|e| ProbeError::Protocol(format!("unreadable certificate: {e}")))?;
    let not_before = x.validity().not_before.timestamp();
    let not_after = x.validity().not_after.timestamp();
    let now = jiff::Timestamp::now().as_second();
    let days_left = (not_after - now).div_euclid(86_400);
    let mut sans = Vec::new();
    if let Ok(Some(ext)) = x.subject_alternative_name() {
        for n in &ext.value.general_names {
            match n {
                GeneralName::DNSName(d) => sans.push(d.to_string()),
                GeneralName::IPAddress(b) => {
                    let ip = match b.len() {
                        4 => <[u8; 4]>::try_from(*b)
                            .ok()
                            .map(|a| std::net::IpAddr::from(a).to_string()),
                        16 => <[u8; 16]>::try_from(*b)
                            .ok()
                            .map(|a| std::net::IpAddr::from(a).to_string()),
                        _ => None,
                    };
                    sans.extend(ip);
                }
                _ => {}
            }
        }
    }
    let cn: Vec<String> = x
        .subject()
        .iter_common_name()
        .filter_map(|c| c.as_str().ok().map(str::to_string))
        .collect();
    let names = if sans.is_empty() { &cn } else { &sans };
    let hostname_match = names.iter().any(|n| name_matches(n, host));
    Ok(json!({
        "subject": x.subject().to_string(),
        "issuer": x.issuer().to_string(),
        "serial": x.raw_serial_as_string(),
        "not_before": rfc3339(not_before),
        "not_after": rfc3339(not_after),
        "days_left": days_left,
        "sans": sans,
        "hostname_match": hostname_match,
        "self_signed": x.subject().as_raw() == x.issuer().as_raw(),
    }))
}

/// A certificate name matches a host: exact (case-insensitive) or a
/// `*.example.test` wildcard covering exactly one label.
fn name_matches(pattern: &str, host: &str) -> bool {
    let (p, h) = (pattern.to_ascii_lowercase(), host.to_ascii_lowercase());
    let h = h.trim_end_matches('.');
    match p.strip_prefix("*.") {
        Some(rest) => h
            .split_once('.')
            .is_some_and(|(label, tail)| !label.is_empty() && tail == rest),
        None => p.trim_end_matches('.') == h,
    }
}

/// A ClientHello offering only `version` (0x0301 TLS 1.0, 0x0302 TLS 1.1),
/// with the cipher suites and extensions old servers expect.
fn legacy_client_hello(version: u16, sni: &str) -> Vec<u8> {
    let suites: [u16; 12] = [
        0xc013, 0xc014, 0xc009, 0xc00a, 0x0033, 0x0039, 0x002f, 0x0035, 0x000a, 0x0005, 0x0004,
        0x00ff,
    ];
    let mut body = Vec::new();
    body.extend(version.to_be_bytes());
    let seed = jiff::Timestamp::now().as_nanosecond();
    body.extend((0..32).map(|i| (seed >> (i % 16 * 8)) as u8 ^ (i as u8).wrapping_mul(151)));
    body.push(0); // session id
    body.extend(((suites.len() * 2) as u16).to_be_bytes());
    for s in suites {
        body.extend(s.to_be_bytes());
    }
    body.extend([1, 0]); // compression: null
    let mut ext = Vec::new();
    if sni.parse::<std::net::IpAddr>().is_err() && !sni.is_empty() && sni.len() < 256 {
        let name = sni.as_bytes();
        let mut list = vec![0u8];
        list.extend((name.len() as u16).to_be_bytes());
        list.extend(name);
        ext.extend(0u16.to_be_bytes());
        ext.extend(((list.len() + 2) as u16).to_be_bytes());
        ext.extend((list.len() as u16).to_be_bytes());
        ext.extend(list);
    }
    // supported groups: x25519, secp256r1, secp384r1
    ext.extend([
        0x00, 0x0a, 0x00, 0x08, 0x00, 0x06, 0x00, 0x1d, 0x00, 0x17, 0x00, 0x18,
    ]);
    // ec point formats: uncompressed
    ext.extend([0x00, 0x0b, 0x00, 0x02, 0x01, 0x00]);
    body.extend((ext.len() as u16).to_be_bytes());
    body.extend(ext);
    let mut hs = vec![1u8];
    hs.extend(&(body.len() as u32).to_be_bytes()[1..]);
    hs.extend(body);
    let mut rec = vec![0x16, 0x03, 0x01];
    rec.extend((hs.len() as u16).to_be_bytes());
    rec.extend(hs);
    rec
}

/// Whether the server answers an old-version ClientHello with a ServerHello
/// of that version, and what it answered.
async fn legacy_accepted(addr: SocketAddr, sni: &str, version: u16) -> (bool, String) {
    let attempt = async {
        let mut s = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| crate::net::io_reason(&e))?;
        s.write_all(&legacy_client_hello(version, sni))
            .await
            .map_err(|e| crate::net::io_reason(&e))?;
        let mut head = [0u8; 5];
        s.read_exact(&mut head)
            .await
            .map_err(|_| "connection closed".to_string())?;
        let len = u16::from_be_bytes([head[3], head[4]]) as usize;
        let mut body = vec![0u8; len.min(16_384)];
        s.read_exact(&mut body)
            .await
            .map_err(|_| "connection closed".to_string())?;
        match head[0] {
            0x16 if body.first() == Some(&2) && body.len() >= 6 => {
                let v = u16::from_be_bytes([body[4], body[5]]);
                if v == version {
                    Ok((true, "server hello".to_string()))
                } else {
                    Ok((false, format!("server answered version 0x{v:04x}")))
                }
            }
            0x15 if body.len() >= 2 => Ok((false, format!("alert {}", body[1]))),
            t => Ok((false, format!("unexpected record type {t}"))),
        }
    };
    match tokio::time::timeout(Duration::from_secs(3), attempt).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => (false, e),
        Err(_) => (false, "no answer within 3s".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_cover_one_label() {
        assert!(name_matches("*.example.test", "www.example.test"));
        assert!(!name_matches("*.example.test", "a.b.example.test"));
        assert!(!name_matches("*.example.test", "example.test"));
        assert!(name_matches("Shop.Example.Test", "shop.example.test."));
    }

    #[test]
    fn client_hello_is_well_formed() {
        let h = legacy_client_hello(0x0301, "shop.example.test");
        assert_eq!(&h[..3], &[0x16, 0x03, 0x01]);
        let rec_len = u16::from_be_bytes([h[3], h[4]]) as usize;
        assert_eq!(rec_len, h.len() - 5);
        assert_eq!(h[5], 1, "client hello");
        let hs_len = u32::from_be_bytes([0, h[6], h[7], h[8]]) as usize;
        assert_eq!(hs_len, h.len() - 9);
        assert_eq!(&h[9..11], &[0x03, 0x01]);
    }
}
