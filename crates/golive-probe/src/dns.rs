//! `dns`: ask one nameserver for one record type, exactly once, uncached.
//!
//! The nameserver is `nameserver` (`host` or `host:port`), or the first one in
//! the system configuration. The answer is observed whatever its rcode:
//! NXDOMAIN is an observation, not an error; no answer at all is.
//!
//! Observes `name`, `type`, `rcode` (`NOERROR`, `NXDOMAIN`, `SERVFAIL`,
//! `REFUSED` …), `records` (`[{name, type, ttl, data}]`, the answer section),
//! `answers` (the data of the records of the asked type), `ttl` (the smallest
//! TTL among them), `authoritative`, `server`, `time_ms`.

use crate::{BoxFuture, Kind, Observation, Probe, ProbeError, Spec, SpecError, millis};
use hickory_resolver::net::client::{Client, ClientHandle};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::udp::UdpClientStream;
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::{DNSClass, Name, RData, RecordType};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::{Duration, Instant};

pub(crate) static KIND: Kind = Kind {
    name: "dns",
    summary: "DNS records, TTLs and rcode from a chosen nameserver",
    options: &["record", "nameserver"],
    default_expect: "rcode == 'NOERROR' && size(answers) > 0",
    default_timeout: crate::DEFAULT_TIMEOUT,
    observes: &[
        ("name", &[]),
        ("type", &[]),
        ("rcode", &[]),
        ("records", &[]),
        ("answers", &[]),
        ("ttl", &[]),
        ("authoritative", &[]),
        ("server", &[]),
        ("time_ms", &[]),
    ],
    causes: &[],
    build,
};

#[derive(Debug)]
struct Dns {
    name: String,
    record: RecordType,
    nameserver: Option<String>,
    timeout: Duration,
}

const TYPES: &[&str] = &[
    "A", "AAAA", "CNAME", "TXT", "MX", "NS", "SOA", "CAA", "SRV", "PTR",
];

fn build(spec: &Spec) -> Result<Box<dyn Probe>, SpecError> {
    let target = spec.required("target")?;
    // a `host:port` target (the DOMAIN of an HTTPS check) asks for the host
    let name = crate::addr::host_port(&target, 0)
        .map(|(h, _)| h)
        .unwrap_or(target);
    let record = spec
        .text("record")?
        .unwrap_or_else(|| "A".into())
        .to_uppercase();
    if !TYPES.contains(&record.as_str()) {
        return Err(SpecError::Invalid(
            "record".into(),
            format!("`{record}` is not one of {}", TYPES.join(", ")),
        ));
    }
    let record = RecordType::from_str(&record)
        .map_err(|e| SpecError::Invalid("record".into(), e.to_string()))?;
    let fqdn = if name.ends_with('.') {
        name.clone()
    } else {
        format!("{name}.")
    };
    Name::from_str(&fqdn)
        .map_err(|e| SpecError::Invalid("target".into(), format!("`{name}`: {e}")))?;
    Ok(Box::new(Dns {
        name,
        record,
        nameserver: spec.text("nameserver")?,
        timeout: spec.timeout,
    }))
}

fn rcode_name(rc: ResponseCode) -> String {
    match rc {
        ResponseCode::NoError => "NOERROR".into(),
        ResponseCode::FormErr => "FORMERR".into(),
        ResponseCode::ServFail => "SERVFAIL".into(),
        ResponseCode::NXDomain => "NXDOMAIN".into(),
        ResponseCode::NotImp => "NOTIMP".into(),
        ResponseCode::Refused => "REFUSED".into(),
        other => format!("RCODE{}", u16::from(other)),
    }
}

fn rdata_text(d: &RData) -> String {
    match d {
        RData::A(a) => a.0.to_string(),
        RData::AAAA(a) => a.0.to_string(),
        RData::CNAME(c) => c.0.to_string(),
        RData::NS(n) => n.0.to_string(),
        RData::PTR(p) => p.0.to_string(),
        RData::MX(m) => format!("{} {}", m.preference, m.exchange),
        RData::TXT(t) => t
            .txt_data
            .iter()
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .collect::<Vec<_>>()
            .join(""),
        other => other.to_string(),
    }
}

/// The nameserver to ask: the given one, or the system's first.
fn server_addr(given: Option<&str>) -> Result<SocketAddr, ProbeError> {
    match given {
        Some(s) => {
            let (host, port) = crate::addr::host_port(s, 53).map_err(ProbeError::Protocol)?;
            let ip = host.parse::<std::net::IpAddr>().map_err(|_| {
                ProbeError::Protocol(format!("nameserver `{s}` must be an IP address"))
            })?;
            Ok(SocketAddr::new(ip, port))
        }
        None => {
            let (config, _) = hickory_resolver::system_conf::read_system_conf().map_err(|e| {
                ProbeError::Io(format!(
                    "cannot read the system resolver configuration: {e}"
                ))
            })?;
            config
                .name_servers()
                .first()
                .map(|ns| SocketAddr::new(ns.ip, ns.connections.first().map_or(53, |c| c.port)))
                .ok_or_else(|| {
                    ProbeError::Io("the system resolver configuration lists no nameserver".into())
                })
        }
    }
}

/// One query to `server`, whatever the answer's rcode.
pub(crate) async fn query(
    server: SocketAddr,
    name: &str,
    record: RecordType,
    timeout: Duration,
) -> Result<hickory_resolver::proto::op::DnsResponse, ProbeError> {
    let stream = UdpClientStream::builder(server, TokioRuntimeProvider::default())
        .with_timeout(Some(timeout))
        .build();
    let (mut client, bg) = Client::<TokioRuntimeProvider>::from_sender(stream);
    let _bg = crate::addr::AbortOnDrop(tokio::spawn(async move {
        let _ = bg.await;
    }));
    let fqdn = if name.ends_with('.') {
        name.to_string()
    } else {
        format!("{name}.")
    };
    let qname = Name::from_str(&fqdn).map_err(|e| ProbeError::Protocol(e.to_string()))?;
    client
        .query(qname, DNSClass::IN, record)
        .await
        .map_err(|e| {
            let s = e.to_string();
            if s.contains("timed out") || s.contains("timeout") {
                ProbeError::Timeout(timeout)
            } else {
                ProbeError::Protocol(format!("no answer from {server}: {s}"))
            }
        })
}

/// The IPv4 and IPv6 addresses of `name` according to `nameserver` (for the
/// probes that connect: http, tls, tcp).
pub(crate) async fn lookup_addrs(
    name: &str,
    nameserver: &str,
    timeout: Duration,
) -> Result<Vec<std::net::IpAddr>, ProbeError> {
    let server = server_addr(Some(nameserver))?;
    let mut out = Vec::new();
    for record in [RecordType::A, RecordType::AAAA] {
        let resp = query(server, name, record, timeout).await?;
        match resp.metadata.response_code {
            ResponseCode::NoError => {}
            rc => {
                return Err(ProbeError::Resolve(format!(
                    "{name}: {} from {server}",
                    rcode_name(rc)
                )));
            }
        }
        for r in &resp.answers {
            match &r.data {
                RData::A(a) => out.push(std::net::IpAddr::V4(a.0)),
                RData::AAAA(a) => out.push(std::net::IpAddr::V6(a.0)),
                _ => {}
            }
        }
    }
    Ok(out)
}

impl Probe for Dns {
    fn target(&self) -> String {
        match &self.nameserver {
            Some(ns) => format!("{} {} @{ns}", self.name, self.record),
            None => format!("{} {}", self.name, self.record),
        }
    }

    fn observe(&self) -> BoxFuture<'_, Result<Observation, ProbeError>> {
        Box::pin(async move {
            let server = server_addr(self.nameserver.as_deref())?;
            let t = Instant::now();
            let resp = query(server, &self.name, self.record, self.timeout).await?;
            let records: Vec<Value> = resp
                .answers
                .iter()
                .map(|r| {
                    json!({
                        "name": r.name.to_string(),
                        "type": r.record_type().to_string(),
                        "ttl": r.ttl,
                        "data": rdata_text(&r.data),
                    })
                })
                .collect();
            let matching: Vec<&hickory_resolver::proto::rr::Record> = resp
                .answers
                .iter()
                .filter(|r| r.record_type() == self.record)
                .collect();
            Ok(json!({
                "name": self.name,
                "type": self.record.to_string(),
                "rcode": rcode_name(resp.metadata.response_code),
                "records": records,
                "answers": matching.iter().map(|r| rdata_text(&r.data)).collect::<Vec<_>>(),
                "ttl": matching.iter().map(|r| r.ttl).min(),
                "authoritative": resp.metadata.authoritative,
                "server": server.to_string(),
                "time_ms": millis(t.elapsed()),
            }))
        })
    }
}
