//! Shared by the network probes: name resolution, connecting with timings,
//! TLS client configurations.

use crate::ProbeError;
pub(crate) use crate::addr::{AbortOnDrop, host_port};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

/// The one crypto backend golive uses.
pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Resolve `host:port`; an IP literal costs nothing.
/// Resolve `host:port` with the system's resolver, or by asking
/// `nameserver` (`ip[:port]`) when one is given.
pub(crate) async fn resolve(
    host: &str,
    port: u16,
    nameserver: Option<&str>,
) -> Result<(Vec<SocketAddr>, Duration), ProbeError> {
    let t = Instant::now();
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<std::net::IpAddr>() {
        return Ok((vec![SocketAddr::new(ip, port)], Duration::ZERO));
    }
    // Checks of one run often name the same host at once: they share one
    // lookup (for a second at most, so a long watch still sees DNS changes).
    let cell = {
        let mut cache = RESOLVED.lock().unwrap_or_else(|e| e.into_inner());
        cache.retain(|_, (at, _)| at.elapsed() < Duration::from_secs(1));
        cache
            .entry((bare.to_string(), port, nameserver.map(str::to_string)))
            .or_insert_with(|| (Instant::now(), Arc::new(tokio::sync::OnceCell::new())))
            .1
            .clone()
    };
    let addrs = cell
        .get_or_init(|| async {
            match nameserver {
                Some(ns) => crate::dns::lookup_addrs(bare, ns, Duration::from_secs(5))
                    .await
                    .map(|ips| {
                        ips.into_iter()
                            .map(|ip| SocketAddr::new(ip, port))
                            .collect()
                    })
                    .map_err(|e| match e {
                        ProbeError::Resolve(m) => m
                            .trim_start_matches(bare)
                            .trim_start_matches(": ")
                            .to_string(),
                        other => other.to_string(),
                    }),
                None => tokio::net::lookup_host((bare, port))
                    .await
                    .map(|a| a.collect::<Vec<_>>())
                    .map_err(|e| io_reason(&e)),
            }
        })
        .await
        .clone()
        .map_err(|e| ProbeError::Resolve(format!("{bare}: {e}")))?;
    if addrs.is_empty() {
        return Err(ProbeError::Resolve(format!("{bare}: no addresses")));
    }
    Ok((addrs, t.elapsed()))
}

type Lookup = Arc<tokio::sync::OnceCell<Result<Vec<SocketAddr>, String>>>;

/// Lookups shared for a second, keyed by (host, port).
type LookupCache = std::collections::HashMap<(String, u16, Option<String>), (Instant, Lookup)>;

static RESOLVED: std::sync::LazyLock<std::sync::Mutex<LookupCache>> =
    std::sync::LazyLock::new(Default::default);

/// Connect to the first address that accepts.
pub(crate) async fn connect(
    addrs: &[SocketAddr],
) -> Result<(TcpStream, SocketAddr, Duration), ProbeError> {
    let t = Instant::now();
    let mut last = None;
    for a in addrs {
        match TcpStream::connect(a).await {
            Ok(s) => {
                let _ = s.set_nodelay(true);
                return Ok((s, *a, t.elapsed()));
            }
            Err(e) => last = Some((e, *a)),
        }
    }
    Err(match last {
        Some((e, a)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            ProbeError::Refused(a.to_string())
        }
        Some((e, a)) => ProbeError::Io(format!("connect to {a}: {}", io_reason(&e))),
        None => ProbeError::Io("no address to connect to".into()),
    })
}

/// A short reason for an I/O error, without the OS error number.
pub(crate) fn io_reason(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_lowercase(),
        None => s.to_lowercase(),
    }
}

/// Trust anchors: the bundled web roots, or only the given CA file.
pub(crate) fn roots(ca_file: Option<&str>) -> Result<RootCertStore, String> {
    let mut store = RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
                .map_err(|e| format!("cannot read CA file {path}: {e}"))?
                .collect::<Result<_, _>>()
                .map_err(|e| format!("CA file {path}: {e}"))?;
            if certs.is_empty() {
                return Err(format!("CA file {path} holds no certificate"));
            }
            for c in certs {
                store.add(c).map_err(|e| format!("CA file {path}: {e}"))?;
            }
        }
        None => store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    Ok(store)
}

/// A client configuration that verifies against `roots`, or accepts any
/// certificate when `insecure`.
pub(crate) fn client_config(
    ca_file: Option<&str>,
    insecure: bool,
    alpn: &[&[u8]],
) -> Result<Arc<ClientConfig>, String> {
    // one configuration per trust setting: the CA file is read once and TLS
    // sessions can be resumed across checks
    let key = (
        ca_file.map(str::to_string),
        insecure,
        alpn.iter().map(|a| a.to_vec()).collect::<Vec<_>>(),
    );
    let mut cache = CONFIGS.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(c) = cache.get(&key) {
        return Ok(c.clone());
    }
    let config = build_client_config(ca_file, insecure, alpn)?;
    cache.insert(key, config.clone());
    Ok(config)
}

type ConfigKey = (Option<String>, bool, Vec<Vec<u8>>);

static CONFIGS: std::sync::LazyLock<
    std::sync::Mutex<std::collections::HashMap<ConfigKey, Arc<ClientConfig>>>,
> = std::sync::LazyLock::new(Default::default);

fn build_client_config(
    ca_file: Option<&str>,
    insecure: bool,
    alpn: &[&[u8]],
) -> Result<Arc<ClientConfig>, String> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let mut config = if insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAny(provider())))
            .with_no_client_auth()
    } else {
        builder
            .with_root_certificates(roots(ca_file)?)
            .with_no_client_auth()
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

/// Accepts any certificate (signatures are still checked): for `insecure`
/// HTTP checks and for the TLS probe, which verifies the chain itself after
/// the handshake so it can report what is wrong instead of failing.
#[derive(Debug)]
pub(crate) struct AcceptAny(pub Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
