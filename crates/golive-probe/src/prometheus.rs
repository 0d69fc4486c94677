//! `prometheus`: a PromQL query against a Prometheus server's HTTP API.
//!
//! The target is the server's base URL (`http://prometheus:9090`). With
//! `query` alone it is an instant query: observes `value` (the first series'
//! value, a number), `series` (`[{labels, value}]`), `count`, and
//! `sample_age_s`: how old the newest sample behind the query is (from
//! `time() - timestamp(…)`), so "metrics are flowing" is `sample_age_s <
//! 60`. With `range` (`"5m"`) it is a range query ending now, one point per
//! `step` (default 15s): observes `series` (`[{labels, values: [[t, v]…]}]`),
//! `points`, and `min`, `max`, `avg` and `last` over every point.
//!
//! Annotation examples: availability `query = 'avg_over_time(up[5m])'`,
//! `expect = "value >= 0.999"`; p99 from histogram buckets `query =
//! 'histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket[5m])))'`.

use crate::{BoxFuture, Kind, Observation, Probe, ProbeError, Spec, SpecError};
use serde_json::{Value, json};
use std::time::Duration;

pub(crate) static KIND: Kind = Kind {
    name: "prometheus",
    summary: "a PromQL instant or range query: value(s), sample age, min/max/avg over a range",
    options: &["query", "range", "step", "headers", "ca_file", "insecure"],
    default_expect: "count > 0",
    default_timeout: crate::DEFAULT_TIMEOUT,
    observes: &[
        ("value", &[]),
        ("count", &[]),
        ("series", &[]),
        ("sample_age_s", &[]),
        ("points", &[]),
        ("min", &[]),
        ("max", &[]),
        ("avg", &[]),
        ("last", &[]),
    ],
    causes: &[],
    build,
};

#[derive(Debug)]
struct Prometheus {
    base: String,
    query: String,
    range: Option<Duration>,
    step: Duration,
    spec_table: toml::Table,
}

fn invalid(key: &str, msg: impl Into<String>) -> SpecError {
    SpecError::Invalid(key.into(), msg.into())
}

fn build(spec: &Spec) -> Result<Box<dyn Probe>, SpecError> {
    let base = spec.required("target")?.trim_end_matches('/').to_string();
    let query = spec.required("query")?;
    let duration = |key: &str| -> Result<Option<Duration>, SpecError> {
        spec.text(key)?
            .map(|t| crate::parse_duration(&t).map_err(|e| invalid(key, e)))
            .transpose()
    };
    let step = duration("step")?.unwrap_or(Duration::from_secs(15));
    if step.is_zero() {
        return Err(invalid("step", "must be longer than zero"));
    }
    // the requests are `http` requests: same TLS options and headers
    let mut table = toml::Table::new();
    table.insert("max_body".into(), toml::Value::Integer(32 << 20));
    for key in ["headers", "ca_file", "insecure"] {
        if let Some(v) = spec.table.get(key) {
            table.insert(key.into(), v.clone());
        }
    }
    let p = Prometheus {
        base,
        query,
        range: duration("range")?,
        step,
        spec_table: table,
    };
    // the URL is checked now, not at the first run
    p.request("query", &[("query", "1")], spec.vars, spec.timeout)?;
    Ok(Box::new(p))
}

/// `application/x-www-form-urlencoded` for a query string.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// A sample value as Prometheus sends it (a string) → a number; NaN and
/// infinities become null.
fn number(v: &Value) -> Value {
    v.as_str()
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|f| f.is_finite())
        .map_or(Value::Null, |f| json!(f))
}

impl Prometheus {
    fn request(
        &self,
        endpoint: &str,
        params: &[(&str, &str)],
        vars: &crate::Vars,
        timeout: Duration,
    ) -> Result<Box<dyn Probe>, SpecError> {
        let query: Vec<String> = params
            .iter()
            .map(|(k, v)| format!("{k}={}", encode(v)))
            .collect();
        let mut table = self.spec_table.clone();
        table.insert(
            "target".into(),
            toml::Value::String(format!(
                "{}/api/v1/{endpoint}?{}",
                self.base,
                query.join("&")
            )),
        );
        (crate::http::KIND.build)(&Spec {
            kind: "http",
            table: &table,
            vars,
            commands: Vec::new(),
            timeout,
        })
    }

    /// Run one API call; its `data`, or the server's error.
    async fn call(&self, endpoint: &str, params: &[(&str, &str)]) -> Result<Value, ProbeError> {
        let probe = self
            .request(
                endpoint,
                params,
                &crate::Vars::new(),
                crate::DEFAULT_TIMEOUT,
            )
            .map_err(|e| ProbeError::Protocol(e.to_string()))?;
        let obs = probe.observe().await?;
        let body = &obs["json"];
        if body["status"] != "success" {
            return Err(ProbeError::Protocol(format!(
                "prometheus answered {}: {}",
                obs["status"],
                body["error"]
                    .as_str()
                    .unwrap_or("not a Prometheus API answer")
            )));
        }
        Ok(body["data"].clone())
    }
}

impl Probe for Prometheus {
    fn target(&self) -> String {
        format!("{} {}", self.base, self.query)
    }

    fn observe(&self) -> BoxFuture<'_, Result<Observation, ProbeError>> {
        Box::pin(async move {
            let now = jiff::Timestamp::now();
            let now_s = format!("{:.3}", now.as_millisecond() as f64 / 1e3);
            if let Some(range) = self.range {
                let start = format!(
                    "{:.3}",
                    (now.as_millisecond() as f64 - range.as_millis() as f64) / 1e3
                );
                let step = format!("{}", self.step.as_secs_f64());
                let data = self
                    .call(
                        "query_range",
                        &[
                            ("query", &self.query),
                            ("start", &start),
                            ("end", &now_s),
                            ("step", &step),
                        ],
                    )
                    .await?;
                let mut all = Vec::new();
                let series: Vec<Value> = data["result"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|s| {
                        let values: Vec<Value> = s["values"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .map(|p| json!([p[0], number(&p[1])]))
                            .collect();
                        all.extend(values.iter().filter_map(|p| p[1].as_f64()));
                        json!({ "labels": s["metric"], "values": values })
                    })
                    .collect();
                let stat = |f: fn(&[f64]) -> f64| {
                    if all.is_empty() {
                        Value::Null
                    } else {
                        json!(f(&all))
                    }
                };
                return Ok(json!({
                    "count": series.len(),
                    "points": all.len(),
                    "series": series,
                    "min": stat(|v| v.iter().copied().fold(f64::INFINITY, f64::min)),
                    "max": stat(|v| v.iter().copied().fold(f64::NEG_INFINITY, f64::max)),
                    "avg": stat(|v| v.iter().sum::<f64>() / v.len() as f64),
                    "last": all.last().map_or(Value::Null, |v| json!(v)),
                }));
            }
            let data = self
                .call("query", &[("query", &self.query), ("time", &now_s)])
                .await?;
            let series: Vec<Value> = match data["resultType"].as_str() {
                Some("vector") => data["result"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|s| json!({ "labels": s["metric"], "value": number(&s["value"][1]) }))
                    .collect(),
                // a scalar (`1 + 1`, `time()`)
                _ => vec![json!({ "labels": {}, "value": number(&data["result"][1]) })],
            };
            // the newest sample's age; null for queries over no series
            let age_query = format!("min(time() - timestamp({}))", self.query);
            let age = self
                .call("query", &[("query", &age_query), ("time", &now_s)])
                .await
                .ok()
                .and_then(|d| d["result"].get(0).map(|s| number(&s["value"][1])))
                .unwrap_or(Value::Null);
            Ok(json!({
                "value": series.first().map_or(Value::Null, |s| s["value"].clone()),
                "count": series.len(),
                "series": series,
                "sample_age_s": age,
            }))
        })
    }
}
