//! `ratelimit`: is a rate limit in force? Sends a bounded burst of requests
//! one after another on a kept-alive connection (the seed's `for i in
//! {1..100}; do curl …; done | grep 429`) and stops at the first 429.
//!
//! Observes `limited` (a 429 came), `allowed` (answers before the first
//! 429), `first_limited_at` (its 1-based position, or null), `requests`
//! (sent), `statuses`, and `retry_after`: `present`, `raw`, `seconds` (a
//! delay in seconds or an HTTP date, as seconds from now), `valid` (it
//! parses) and `sane` (between 1 second and one day).

use crate::load::{Conn, Plan, exchange, plan};
use crate::net::resolve;
use crate::{BoxFuture, Kind, Observation, Probe, ProbeError, Spec, SpecError};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

pub(crate) static KIND: Kind = Kind {
    name: "ratelimit",
    summary: "a bounded burst until the first 429: how many were allowed, and its Retry-After",
    options: &[
        "burst",
        "method",
        "headers",
        "body",
        "ca_file",
        "insecure",
        "nameserver",
        "http2",
        "request_timeout",
    ],
    default_expect: "limited && retry_after.valid && retry_after.sane",
    default_timeout: Duration::from_secs(60),
    observes: &[
        ("limited", &[]),
        ("allowed", &[]),
        ("first_limited_at", &[]),
        ("requests", &[]),
        ("statuses", &[]),
        (
            "retry_after",
            &["present", "raw", "seconds", "valid", "sane"],
        ),
    ],
    causes: &[],
    build,
};

#[derive(Debug)]
struct RateLimit {
    plan: Arc<Plan>,
    burst: u64,
}

fn build(spec: &Spec) -> Result<Box<dyn Probe>, SpecError> {
    let burst = match spec.int("burst")?.unwrap_or(100) {
        b @ 1..=100_000 => b as u64,
        _ => {
            return Err(SpecError::Invalid(
                "burst".into(),
                "must be from 1 to 100000".into(),
            ));
        }
    };
    Ok(Box::new(RateLimit {
        plan: Arc::new(plan(spec)?),
        burst,
    }))
}

impl Probe for RateLimit {
    fn target(&self) -> String {
        self.plan.url.to_string()
    }

    fn observe(&self) -> BoxFuture<'_, Result<Observation, ProbeError>> {
        Box::pin(async move {
            let p = &self.plan;
            let (addrs, _) = resolve(&p.host, p.port, p.nameserver.as_deref()).await?;
            let mut conn: Option<Conn> = None;
            let mut statuses: BTreeMap<u16, u64> = BTreeMap::new();
            let mut sent = 0;
            let mut limited = None;
            while sent < self.burst {
                sent += 1;
                let x = tokio::time::timeout(p.request_timeout, exchange(p, &addrs, &mut conn))
                    .await
                    .map_err(|_| ProbeError::Timeout(p.request_timeout))?
                    .map_err(|e| {
                        if sent == 1 {
                            ProbeError::Protocol(e)
                        } else {
                            ProbeError::Protocol(format!("request {sent} of the burst: {e}"))
                        }
                    })?;
                *statuses.entry(x.status).or_default() += 1;
                if x.status == 429 {
                    limited = Some((sent, x.headers));
                    break;
                }
            }
            let now = jiff::Timestamp::now();
            let retry_after = match &limited {
                Some((_, h)) => retry_after(
                    h.get(http::header::RETRY_AFTER)
                        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()),
                    now,
                ),
                None => Value::Null,
            };
            Ok(json!({
                "limited": limited.is_some(),
                "allowed": limited.as_ref().map_or(sent, |(n, _)| n - 1),
                "first_limited_at": limited.as_ref().map(|(n, _)| n),
                "requests": sent,
                "statuses": statuses.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<Map<_, _>>(),
                "retry_after": retry_after,
            }))
        })
    }
}

/// A `Retry-After` value: delay-seconds or an HTTP date (RFC 9110 §10.2.3).
fn retry_after(raw: Option<String>, now: jiff::Timestamp) -> Value {
    let Some(raw) = raw else {
        return json!({ "present": false, "raw": null, "seconds": null, "valid": false, "sane": false });
    };
    let t = raw.trim();
    let seconds: Option<i64> = if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
        t.parse().ok()
    } else {
        jiff::fmt::rfc2822::parse(t)
            .ok()
            .map(|z| z.timestamp().as_second() - now.as_second())
    };
    json!({
        "present": true,
        "raw": raw,
        "seconds": seconds,
        "valid": seconds.is_some(),
        "sane": seconds.is_some_and(|s| (1..=86_400).contains(&s)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use golive_testkit::full;
    use std::sync::atomic::{AtomicU64, Ordering};

    /// A server that allows `allow` requests, then answers 429 with the
    /// given Retry-After (or none).
    async fn limiter(allow: u64, retry: Option<&'static str>) -> golive_testkit::Server {
        let seen = Arc::new(AtomicU64::new(0));
        golive_testkit::http(Arc::new(move |_req| {
            if seen.fetch_add(1, Ordering::Relaxed) < allow {
                return http::Response::new(full("ok"));
            }
            let mut r = http::Response::builder().status(429);
            if let Some(v) = retry {
                r = r.header("retry-after", v);
            }
            r.body(full("slow down"))
                .unwrap_or_else(|_| http::Response::new(full("")))
        }))
        .await
    }

    fn probe(port: u16, burst: i64) -> Box<dyn Probe> {
        let mut t = toml::Table::new();
        t.insert(
            "target".into(),
            toml::Value::String(format!("http://127.0.0.1:{port}/api/v1/test")),
        );
        t.insert("burst".into(), toml::Value::Integer(burst));
        KIND.probe(&t).expect("spec")
    }

    #[tokio::test]
    async fn the_first_429_and_its_retry_after() {
        let s = limiter(7, Some("30")).await;
        let obs = probe(s.addr.port(), 100).observe().await.expect("observed");
        assert_eq!(obs["limited"], true);
        assert_eq!(obs["allowed"], 7);
        assert_eq!(obs["first_limited_at"], 8);
        assert_eq!(obs["requests"], 8, "it stops at the first 429");
        assert_eq!(obs["statuses"]["200"], 7);
        assert_eq!(obs["retry_after"]["seconds"], 30);
        assert_eq!(obs["retry_after"]["sane"], true);
    }

    #[tokio::test]
    async fn no_limit_within_the_burst() {
        let s = limiter(1000, None).await;
        let obs = probe(s.addr.port(), 50).observe().await.expect("observed");
        assert_eq!(obs["limited"], false);
        assert_eq!(obs["allowed"], 50);
        assert_eq!(obs["requests"], 50);
        assert!(obs["first_limited_at"].is_null());
    }

    #[tokio::test]
    async fn a_missing_or_unparseable_retry_after_is_seen() {
        let s = limiter(0, None).await;
        let obs = probe(s.addr.port(), 10).observe().await.expect("observed");
        assert_eq!(obs["allowed"], 0);
        assert_eq!(obs["retry_after"]["present"], false);
        let s = limiter(2, Some("soon")).await;
        let obs = probe(s.addr.port(), 10).observe().await.expect("observed");
        assert_eq!(obs["retry_after"]["present"], true);
        assert_eq!(obs["retry_after"]["valid"], false);
    }

    #[test]
    fn http_dates_and_insane_delays() {
        let now: jiff::Timestamp = "2026-11-27T12:00:00Z".parse().expect("time");
        let v = retry_after(Some("Fri, 27 Nov 2026 12:02:00 GMT".into()), now);
        assert_eq!(v["seconds"], 120);
        assert_eq!(v["sane"], true);
        let v = retry_after(Some("0".into()), now);
        assert_eq!(
            (v["valid"].clone(), v["sane"].clone()),
            (json!(true), json!(false))
        );
        let v = retry_after(Some("999999".into()), now);
        assert_eq!(v["sane"], false);
    }
}
