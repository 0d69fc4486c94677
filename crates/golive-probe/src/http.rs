//! `http`: one request (and its redirects, if followed) with timing phases.
//!
//! Built on hyper directly so every phase is measured: `timing.dns_ms`,
//! `connect_ms`, `tls_ms`, `first_byte_ms`, `total_ms`. Observes `status`,
//! `headers` (lower-case names), `body` (text, at most `max_body` bytes, 1 MiB
//! by default: the rest is never read), `json` (the body parsed, when it is
//! JSON), `url` (the final URL), `redirects` (`[{status, location}]`),
//! `http_version`, `hsts` (`{max_age, include_subdomains}` or null).

use crate::net::{AbortOnDrop, client_config, connect, resolve};
use crate::{BoxFuture, Kind, Observation, Probe, ProbeError, Spec, SpecError, millis};
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Uri};
use http_body_util::{BodyExt, Empty, Full, combinators::BoxBody};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use serde_json::{Map, Value, json};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub(crate) static KIND: Kind = Kind {
    name: "http",
    summary: "an HTTP(S) request: status, headers, body, JSON, timing phases, redirects, HSTS",
    options: &[
        "method",
        "headers",
        "body",
        "follow_redirects",
        "max_redirects",
        "ca_file",
        "insecure",
        "max_body",
        "nameserver",
    ],
    default_expect: "status >= 200 && status < 400",
    default_timeout: crate::DEFAULT_TIMEOUT,
    observes: &[
        ("status", &[]),
        ("http_version", &[]),
        ("headers", &[]),
        ("body", &[]),
        ("body_bytes", &[]),
        ("body_truncated", &[]),
        ("json", &[]),
        ("url", &[]),
        ("redirects", &[]),
        (
            "timing",
            &[
                "dns_ms",
                "connect_ms",
                "tls_ms",
                "first_byte_ms",
                "total_ms",
            ],
        ),
        ("hsts", &["max_age", "include_subdomains", "preload"]),
    ],
    causes: &[],
    build,
};

#[derive(Debug)]
struct Http {
    method: Method,
    url: Uri,
    headers: Vec<(HeaderName, HeaderValue)>,
    body: Option<Bytes>,
    follow: bool,
    max_redirects: usize,
    max_body: usize,
    tls: Arc<ClientConfig>,
    nameserver: Option<String>,
}

fn invalid(key: &str, msg: impl Into<String>) -> SpecError {
    SpecError::Invalid(key.into(), msg.into())
}

/// The `method` (default GET) and `headers` options, checked.
#[allow(clippy::type_complexity)]
pub(crate) fn method_and_headers(
    spec: &Spec,
) -> Result<(Method, Vec<(HeaderName, HeaderValue)>), SpecError> {
    let method = spec
        .text("method")?
        .unwrap_or_else(|| "GET".into())
        .to_uppercase()
        .parse::<Method>()
        .map_err(|e| invalid("method", e.to_string()))?;
    let mut headers = Vec::new();
    for (k, v) in spec.string_table("headers")? {
        let name = HeaderName::try_from(k.as_str())
            .map_err(|e| invalid("headers", format!("{k}: {e}")))?;
        let value = HeaderValue::try_from(v.as_str())
            .map_err(|e| invalid("headers", format!("{k}: {e}")))?;
        headers.push((name, value));
    }
    Ok((method, headers))
}

fn build(spec: &Spec) -> Result<Box<dyn Probe>, SpecError> {
    let target = spec.required("target")?;
    let url = parse_url(&target).map_err(|e| invalid("target", e))?;
    let (method, headers) = method_and_headers(spec)?;
    let max_body = spec.int("max_body")?.unwrap_or(1 << 20);
    let insecure = spec.flag("insecure")?.unwrap_or(false);
    let ca = spec.text("ca_file")?;
    let tls = client_config(ca.as_deref(), insecure, &[b"h2", b"http/1.1"])
        .map_err(|e| invalid("ca_file", e))?;
    Ok(Box::new(Http {
        method,
        url,
        headers,
        body: spec.text("body")?.map(Bytes::from),
        follow: spec.flag("follow_redirects")?.unwrap_or(false),
        max_redirects: usize::try_from(spec.int("max_redirects")?.unwrap_or(10)).unwrap_or(10),
        max_body: usize::try_from(max_body).map_err(|_| invalid("max_body", "must be positive"))?,
        tls,
        nameserver: spec.text("nameserver")?,
    }))
}

/// POST `body` as JSON to `url` as given (no placeholders: a webhook's
/// payload may hold brackets): the answer's status and how long it took to
/// arrive whole. The bundled web roots verify https, or `ca_file` when given.
pub async fn post_json(
    url: &str,
    body: String,
    ca_file: Option<&str>,
) -> Result<(u16, Duration), ProbeError> {
    post_json_with(url, body, &[], ca_file).await
}

/// [`post_json`] with more headers (an `Idempotency-Key`).
pub async fn post_json_with(
    url: &str,
    body: String,
    more: &[(&str, String)],
    ca_file: Option<&str>,
) -> Result<(u16, Duration), ProbeError> {
    let url = parse_url(url).map_err(ProbeError::Protocol)?;
    let tls = client_config(ca_file, false, &[b"h2", b"http/1.1"]).map_err(ProbeError::Protocol)?;
    let mut headers = vec![(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    )];
    for (k, v) in more {
        let name = http::header::HeaderName::from_bytes(k.as_bytes())
            .map_err(|e| ProbeError::Protocol(format!("header {k}: {e}")))?;
        let value = HeaderValue::from_str(v)
            .map_err(|e| ProbeError::Protocol(format!("header {k}: {e}")))?;
        headers.push((name, value));
    }
    let h = Http {
        method: Method::POST,
        url: url.clone(),
        headers,
        body: Some(Bytes::from(body)),
        follow: false,
        max_redirects: 0,
        max_body: 64 << 10,
        tls,
        nameserver: None,
    };
    let t = Instant::now();
    let f = h.fetch(&url).await?;
    Ok((f.status, t.elapsed()))
}

/// One request to `url` as given, for a client of golive's own API: the
/// answer's status and body (at most 16 MiB). The bundled web roots verify
/// https, or `ca_file` when given.
pub async fn request(
    method: &str,
    url: &str,
    headers: &[(&str, String)],
    body: Option<String>,
    ca_file: Option<&str>,
) -> Result<(u16, Vec<u8>), ProbeError> {
    let mut req = http::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        req = req.header(*k, v.as_str());
    }
    let req = req
        .body(body.map(String::into_bytes).unwrap_or_default())
        .map_err(|e| ProbeError::Protocol(format!("{url}: {e}")))?;
    let answer = exchange(req, ca_file).await?;
    Ok((answer.status().as_u16(), answer.into_body()))
}

/// One HTTP request as given, its answer whole (status, headers, body of at
/// most 16 MiB): what a client of another service (an identity provider)
/// sends by. The bundled web roots verify https, or `ca_file` when given.
pub async fn exchange(
    req: http::Request<Vec<u8>>,
    ca_file: Option<&str>,
) -> Result<http::Response<Vec<u8>>, ProbeError> {
    let (parts, body) = req.into_parts();
    let url = parse_url(&parts.uri.to_string()).map_err(ProbeError::Protocol)?;
    let tls = client_config(ca_file, false, &[b"http/1.1"]).map_err(ProbeError::Protocol)?;
    let h = Http {
        method: parts.method,
        url: url.clone(),
        headers: parts
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        body: (!body.is_empty()).then(|| Bytes::from(body)),
        follow: false,
        max_redirects: 0,
        max_body: 16 << 20,
        tls,
        nameserver: None,
    };
    let f = h.fetch(&url).await?;
    let mut answer = http::Response::new(f.body);
    *answer.status_mut() = http::StatusCode::from_u16(f.status)
        .map_err(|e| ProbeError::Protocol(format!("status {}: {e}", f.status)))?;
    *answer.headers_mut() = f.headers;
    Ok(answer)
}

fn parse_url(text: &str) -> Result<Uri, String> {
    let url: Uri = text
        .trim()
        .parse()
        .map_err(|e| format!("`{text}` is not a URL: {e}"))?;
    match url.scheme_str() {
        Some("http" | "https") => {}
        _ => {
            return Err(format!(
                "`{text}`: the URL must start with http:// or https://"
            ));
        }
    }
    if url.host().is_none_or(str::is_empty) {
        return Err(format!("`{text}` has no host"));
    }
    Ok(url)
}

/// One response, as far as it was read.
struct Fetched {
    status: u16,
    version: &'static str,
    headers: HeaderMap,
    body: Vec<u8>,
    truncated: bool,
    timing: Map<String, Value>,
}

impl Http {
    async fn fetch(&self, url: &Uri) -> Result<Fetched, ProbeError> {
        let https = url.scheme_str() == Some("https");
        let host = url.host().unwrap_or_default().to_string();
        let port = url.port_u16().unwrap_or(if https { 443 } else { 80 });
        let start = Instant::now();
        let (addrs, dns) = resolve(&host, port, self.nameserver.as_deref()).await?;
        let (tcp, _, conn_t) = connect(&addrs).await?;
        let mut tls_t = None;
        let path = url.path_and_query().map_or("/", |p| p.as_str()).to_string();
        let authority = url
            .authority()
            .map(|a| a.to_string())
            .unwrap_or(host.clone());
        let body: BoxBody<Bytes, std::convert::Infallible> = match &self.body {
            Some(b) => Full::new(b.clone()).boxed(),
            None => Empty::new().boxed(),
        };
        let (parts_status, version, headers, mut incoming, first_byte, _driver) = if https {
            let t = Instant::now();
            let name = ServerName::try_from(
                host.trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_string(),
            )
            .map_err(|e| ProbeError::Tls(host.clone(), e.to_string()))?;
            let stream = tokio_rustls::TlsConnector::from(self.tls.clone())
                .connect(name, tcp)
                .await
                .map_err(|e| ProbeError::Tls(format!("{host}:{port}"), tls_reason(&e)))?;
            tls_t = Some(t.elapsed());
            let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
            self.send(
                TokioIo::new(stream),
                h2,
                &path,
                &authority,
                url,
                body,
                start,
            )
            .await?
        } else {
            self.send(
                TokioIo::new(tcp),
                false,
                &path,
                &authority,
                url,
                body,
                start,
            )
            .await?
        };
        let mut buf = Vec::new();
        let mut truncated = false;
        while let Some(frame) = incoming.frame().await {
            let frame = frame.map_err(|e| {
                ProbeError::Protocol(format!("reading the body: {}", hyper_reason(&e)))
            })?;
            if let Ok(data) = frame.into_data() {
                let room = self.max_body.saturating_sub(buf.len());
                buf.extend_from_slice(&data[..data.len().min(room)]);
                if data.len() > room {
                    truncated = true;
                    break;
                }
            }
        }
        let mut timing = Map::new();
        timing.insert("dns_ms".into(), json!(millis(dns)));
        timing.insert("connect_ms".into(), json!(millis(conn_t)));
        timing.insert(
            "tls_ms".into(),
            tls_t.map_or(Value::Null, |t| json!(millis(t))),
        );
        timing.insert("first_byte_ms".into(), json!(millis(first_byte)));
        timing.insert("total_ms".into(), json!(millis(start.elapsed())));
        Ok(Fetched {
            status: parts_status,
            version,
            headers,
            body: buf,
            truncated,
            timing,
        })
    }

    #[allow(clippy::too_many_arguments, clippy::type_complexity)]
    async fn send<T>(
        &self,
        io: TokioIo<T>,
        h2: bool,
        path: &str,
        authority: &str,
        url: &Uri,
        body: BoxBody<Bytes, std::convert::Infallible>,
        start: Instant,
    ) -> Result<
        (
            u16,
            &'static str,
            HeaderMap,
            hyper::body::Incoming,
            Duration,
            AbortOnDrop,
        ),
        ProbeError,
    >
    where
        T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let mut req = Request::builder().method(self.method.clone());
        req = if h2 {
            req.uri(url.clone())
        } else {
            req.uri(path).header(http::header::HOST, authority)
        };
        let mut req = req
            .body(body)
            .map_err(|e| ProbeError::Protocol(e.to_string()))?;
        for (k, v) in &self.headers {
            req.headers_mut().insert(k.clone(), v.clone());
        }
        if !req.headers().contains_key(http::header::USER_AGENT) {
            req.headers_mut()
                .insert(http::header::USER_AGENT, HeaderValue::from_static("golive"));
        }
        let handshake_err =
            |e: hyper::Error| ProbeError::Protocol(format!("http handshake: {}", hyper_reason(&e)));
        let (resp, driver) = if h2 {
            let (mut sender, conn) =
                hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                    .await
                    .map_err(handshake_err)?;
            let driver = AbortOnDrop(tokio::spawn(async move {
                let _ = conn.await;
            }));
            (sender.send_request(req).await, driver)
        } else {
            let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
                .await
                .map_err(handshake_err)?;
            let driver = AbortOnDrop(tokio::spawn(async move {
                let _ = conn.await;
            }));
            (sender.send_request(req).await, driver)
        };
        let resp =
            resp.map_err(|e| ProbeError::Protocol(format!("no response: {}", hyper_reason(&e))))?;
        let first_byte = start.elapsed();
        let version = match resp.version() {
            http::Version::HTTP_2 => "2",
            http::Version::HTTP_10 => "1.0",
            _ => "1.1",
        };
        let status = resp.status().as_u16();
        let (parts, body) = resp.into_parts();
        Ok((status, version, parts.headers, body, first_byte, driver))
    }
}

/// A hyper error with its causes, as one short line.
pub(crate) fn hyper_reason(e: &hyper::Error) -> String {
    let mut s = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s.replace(" (os error 104)", "")
}

fn tls_reason(e: &std::io::Error) -> String {
    e.get_ref()
        .map_or_else(|| e.to_string(), |inner| inner.to_string())
}

fn headers_json(h: &HeaderMap) -> Value {
    let mut map = Map::new();
    for name in h.keys() {
        let values: Vec<String> = h
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect();
        map.insert(name.as_str().to_string(), json!(values.join(", ")));
    }
    Value::Object(map)
}

fn hsts(h: &HeaderMap) -> Value {
    let Some(v) = h
        .get("strict-transport-security")
        .and_then(|v| v.to_str().ok())
    else {
        return Value::Null;
    };
    let mut max_age = None;
    let mut sub = false;
    let mut preload = false;
    for part in v.split(';').map(str::trim) {
        let lower = part.to_ascii_lowercase();
        if let Some(n) = lower.strip_prefix("max-age=") {
            max_age = n.trim_matches('"').parse::<i64>().ok();
        } else if lower == "includesubdomains" {
            sub = true;
        } else if lower == "preload" {
            preload = true;
        }
    }
    json!({ "max_age": max_age, "include_subdomains": sub, "preload": preload })
}

fn next_url(base: &Uri, location: &str) -> Result<Uri, ProbeError> {
    if let Ok(abs) = parse_url(location) {
        return Ok(abs);
    }
    let mut parts = base.clone().into_parts();
    let path = if location.starts_with('/') {
        location.to_string()
    } else {
        let dir = base.path().rsplit_once('/').map_or("", |(d, _)| d);
        format!("{dir}/{location}")
    };
    parts.path_and_query = Some(
        path.parse()
            .map_err(|_| ProbeError::Protocol(format!("bad redirect location `{location}`")))?,
    );
    Uri::from_parts(parts)
        .map_err(|_| ProbeError::Protocol(format!("bad redirect location `{location}`")))
}

impl Probe for Http {
    fn target(&self) -> String {
        format!("{} {}", self.method, self.url)
    }

    fn observe(&self) -> BoxFuture<'_, Result<Observation, ProbeError>> {
        Box::pin(async move {
            let mut url = self.url.clone();
            let mut redirects = Vec::new();
            let mut seen = HashSet::from([url.to_string()]);
            loop {
                let f = self.fetch(&url).await?;
                let location = f
                    .headers
                    .get(http::header::LOCATION)
                    .and_then(|v| v.to_str().ok());
                if self.follow
                    && (300..400).contains(&f.status)
                    && let Some(loc) = location
                {
                    let next = next_url(&url, loc)?;
                    redirects.push(json!({ "status": f.status, "location": loc }));
                    if !seen.insert(next.to_string()) {
                        return Err(ProbeError::Protocol(format!(
                            "redirect loop: {next} redirects back to a URL already visited ({} redirects)",
                            redirects.len()
                        )));
                    }
                    if redirects.len() > self.max_redirects {
                        return Err(ProbeError::Protocol(format!(
                            "more than {} redirects",
                            self.max_redirects
                        )));
                    }
                    url = next;
                    continue;
                }
                let text = String::from_utf8_lossy(&f.body).into_owned();
                let parsed = serde_json::from_str::<Value>(text.trim()).ok();
                return Ok(json!({
                    "status": f.status,
                    "http_version": f.version,
                    "headers": headers_json(&f.headers),
                    "body": text,
                    "body_bytes": f.body.len(),
                    "body_truncated": f.truncated,
                    "json": parsed,
                    "url": url.to_string(),
                    "redirects": redirects,
                    "timing": Value::Object(f.timing),
                    "hsts": hsts(&f.headers),
                }));
            }
        })
    }
}
