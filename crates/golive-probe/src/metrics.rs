//! `metrics`: scrape a Prometheus text endpoint (`/metrics`) twice, an
//! `interval` apart, and observe what changed in between: no Prometheus
//! server needed.
//!
//! Options name what to compute, as selectors (`name`, `name{label="v"}`,
//! `name{code=~"5.."}`, `!=`, `!~`; matching series are summed):
//! - `total` and `errors`: counters of all requests and of failed ones →
//!   `request_rate` (per second), `error_rate` (errors / total between the
//!   scrapes; 0 when no request came);
//! - `histogram`: a histogram (its `_bucket` series) → `quantiles` (`p50`,
//!   `p90`, `p95`, `p99`, linear within a bucket, as Prometheus's
//!   `histogram_quantile` does) over the requests between the scrapes, and
//!   `latency_ms` when the histogram counts seconds;
//! - `select`: a table `alias = "selector"` → `values.alias` (at the second
//!   scrape) and `rates.alias` (per second between the scrapes).
//!
//! Also observes `interval_s`, `series` (how many the second scrape held) and
//! `scrape_ms`. Counters that went down between the scrapes (a restart)
//! count from zero, as Prometheus's `rate` does.
//!
//! The text format is parsed here (about a hundred lines): the crates that
//! parse it pull a date library and have not been released in years.

use crate::{BoxFuture, Kind, Observation, Probe, ProbeError, Spec, SpecError, millis};
use serde_json::{Map, json};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

pub(crate) static KIND: Kind = Kind {
    name: "metrics",
    summary: "scrape a /metrics endpoint twice: counter rates, error rate, histogram quantiles",
    options: &[
        "interval",
        "total",
        "errors",
        "histogram",
        "select",
        "headers",
        "ca_file",
        "insecure",
    ],
    default_expect: "series > 0",
    default_timeout: Duration::from_secs(120),
    observes: &[
        ("interval_s", &[]),
        ("series", &[]),
        ("scrape_ms", &[]),
        ("request_rate", &[]),
        ("errors_per_s", &[]),
        ("error_rate", &[]),
        ("count", &[]),
        ("quantiles", &["p50", "p90", "p95", "p99"]),
        ("latency_ms", &["p50", "p90", "p95", "p99"]),
        ("values", &[]),
        ("rates", &[]),
    ],
    causes: &[],
    build,
};

#[derive(Debug)]
struct Metrics {
    fetch: Box<dyn Probe>,
    url: String,
    interval: Duration,
    total: Option<Selector>,
    errors: Option<Selector>,
    histogram: Option<Selector>,
    select: Vec<(String, Selector)>,
}

fn invalid(key: &str, msg: impl Into<String>) -> SpecError {
    SpecError::Invalid(key.into(), msg.into())
}

fn build(spec: &Spec) -> Result<Box<dyn Probe>, SpecError> {
    let url = spec.required("target")?;
    let interval = match spec.text("interval")? {
        Some(t) => crate::parse_duration(&t).map_err(|e| invalid("interval", e))?,
        None => Duration::from_secs(5),
    };
    let selector = |key: &str| -> Result<Option<Selector>, SpecError> {
        spec.text(key)?
            .map(|t| Selector::parse(&t).map_err(|e| invalid(key, e)))
            .transpose()
    };
    let select = spec
        .string_table("select")?
        .into_iter()
        .map(|(k, v)| Ok((k, Selector::parse(&v).map_err(|e| invalid("select", e))?)))
        .collect::<Result<_, SpecError>>()?;
    // the scrape itself is an `http` request (TLS options and headers alike)
    let mut table = toml::Table::new();
    table.insert("target".into(), toml::Value::String(url.clone()));
    table.insert("max_body".into(), toml::Value::Integer(16 << 20));
    for key in ["headers", "ca_file", "insecure"] {
        if let Some(v) = spec.table.get(key) {
            table.insert(key.into(), v.clone());
        }
    }
    let fetch = (crate::http::KIND.build)(&Spec {
        kind: "http",
        table: &table,
        vars: spec.vars,
        commands: Vec::new(),
        timeout: spec.timeout,
    })?;
    Ok(Box::new(Metrics {
        fetch,
        url,
        interval,
        total: selector("total")?,
        errors: selector("errors")?,
        histogram: selector("histogram")?,
        select,
    }))
}

/// One sample: name, labels, value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// Parse the Prometheus text exposition format: comments and `# TYPE`
/// lines skipped, timestamps ignored. A line that does not parse is an
/// error naming its number.
pub(crate) fn parse(text: &str) -> Result<Vec<Sample>, String> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        out.push(sample(line).ok_or_else(|| format!("line {}: not a sample: {line:.60}", n + 1))?);
    }
    Ok(out)
}

fn sample(line: &str) -> Option<Sample> {
    let name_end = line
        .find(|c: char| c == '{' || c.is_whitespace())
        .unwrap_or(line.len());
    let name = &line[..name_end];
    if name.is_empty() {
        return None;
    }
    let mut rest = &line[name_end..];
    let mut labels = BTreeMap::new();
    if let Some(r) = rest.strip_prefix('{') {
        let (l, after) = label_set(r)?;
        labels = l;
        rest = after;
    }
    let value = rest.split_whitespace().next()?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        v => v.parse().ok()?,
    };
    Some(Sample {
        name: name.to_string(),
        labels,
        value,
    })
}

/// `a="x",b="y"}` → the labels and what follows the `}`.
fn label_set(mut r: &str) -> Option<(BTreeMap<String, String>, &str)> {
    let mut labels = BTreeMap::new();
    loop {
        r = r.trim_start_matches([' ', ',']);
        if let Some(after) = r.strip_prefix('}') {
            return Some((labels, after));
        }
        let eq = r.find('=')?;
        let key = r[..eq].trim().to_string();
        let (value, after) = quoted(r[eq + 1..].trim_start())?;
        labels.insert(key, value);
        r = after;
    }
}

/// A double-quoted label value with `\\`, `\"` and `\n` escapes.
fn quoted(r: &str) -> Option<(String, &str)> {
    let mut chars = r.strip_prefix('"')?.char_indices();
    let mut out = String::new();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((out, &r[i + 2..])),
            '\\' => match chars.next()?.1 {
                'n' => out.push('\n'),
                other => out.push(other),
            },
            c => out.push(c),
        }
    }
    None
}

/// How a selector compares one label.
#[derive(Debug, Clone)]
enum Match {
    Eq(String),
    Ne(String),
    Re(regex::Regex),
    NotRe(regex::Regex),
}

/// `name{label="v", code=~"5.."}`: which series to sum.
#[derive(Debug, Clone)]
pub(crate) struct Selector {
    name: String,
    labels: Vec<(String, Match)>,
}

impl Selector {
    pub(crate) fn parse(text: &str) -> Result<Selector, String> {
        let t = text.trim();
        let (name, rest) = match t.find('{') {
            Some(i) => (&t[..i], Some(&t[i + 1..])),
            None => (t, None),
        };
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_:".contains(c))
        {
            return Err(format!("`{text}`: a selector starts with a metric name"));
        }
        let mut labels = Vec::new();
        if let Some(mut r) = rest {
            loop {
                r = r.trim_start_matches([' ', ',']);
                if r.starts_with('}') {
                    break;
                }
                let op_at = r
                    .find(['=', '!'])
                    .ok_or_else(|| format!("`{text}`: expected label=\"value\""))?;
                let key = r[..op_at].trim().to_string();
                let (op, after) = ["=~", "!~", "!=", "="]
                    .iter()
                    .find_map(|op| r[op_at..].strip_prefix(op).map(|a| (*op, a)))
                    .ok_or_else(|| format!("`{text}`: expected =, !=, =~ or !~"))?;
                let (value, after) = quoted(after.trim_start())
                    .ok_or_else(|| format!("`{text}`: label values are double-quoted"))?;
                let anchored = || {
                    regex::Regex::new(&format!("^(?:{value})$"))
                        .map_err(|e| format!("`{text}`: {e}"))
                };
                labels.push((
                    key,
                    match op {
                        "=" => Match::Eq(value),
                        "!=" => Match::Ne(value),
                        "=~" => Match::Re(anchored()?),
                        _ => Match::NotRe(anchored()?),
                    },
                ));
                r = after;
            }
        }
        Ok(Selector {
            name: name.to_string(),
            labels,
        })
    }

    fn matches_labels(&self, s: &Sample) -> bool {
        self.labels.iter().all(|(k, m)| {
            let v = s.labels.get(k).map_or("", String::as_str);
            match m {
                Match::Eq(x) => v == x,
                Match::Ne(x) => v != x,
                Match::Re(r) => r.is_match(v),
                Match::NotRe(r) => !r.is_match(v),
            }
        })
    }

    /// The sum of the matching series, or None when none matches.
    pub(crate) fn sum(&self, samples: &[Sample]) -> Option<f64> {
        let mut found = None;
        for s in samples
            .iter()
            .filter(|s| s.name == self.name && self.matches_labels(s))
        {
            *found.get_or_insert(0.0) += s.value;
        }
        found
    }

    /// The histogram's buckets (`NAME_bucket`), summed per `le`, sorted.
    fn buckets(&self, samples: &[Sample]) -> Vec<(f64, f64)> {
        let bucket = format!("{}_bucket", self.name);
        let mut by_le: Vec<(f64, f64)> = Vec::new();
        for s in samples
            .iter()
            .filter(|s| s.name == bucket && self.matches_labels(s))
        {
            let Some(le) = s.labels.get("le").and_then(|l| match l.as_str() {
                "+Inf" => Some(f64::INFINITY),
                l => l.parse().ok(),
            }) else {
                continue;
            };
            match by_le.iter_mut().find(|(b, _)| *b == le) {
                Some((_, c)) => *c += s.value,
                None => by_le.push((le, s.value)),
            }
        }
        by_le.sort_by(|a, b| a.0.total_cmp(&b.0));
        by_le
    }
}

/// An increase of a counter between two readings; a reset counts from zero.
fn increase(before: f64, after: f64) -> f64 {
    if after >= before {
        after - before
    } else {
        after
    }
}

/// The `q` quantile of cumulative buckets `(le, count)`, linear within the
/// bucket it falls in; the lowest bucket starts at 0; a quantile in the
/// `+Inf` bucket is the highest finite bound.
pub(crate) fn quantile(q: f64, buckets: &[(f64, f64)]) -> Option<f64> {
    let total = buckets.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let mut prev = (0.0, 0.0);
    for &(le, count) in buckets {
        if count >= rank {
            if le.is_infinite() {
                return Some(prev.0);
            }
            if count == prev.1 {
                return Some(le);
            }
            return Some(prev.0 + (le - prev.0) * (rank - prev.1) / (count - prev.1));
        }
        prev = (le, count);
    }
    Some(prev.0)
}

fn round(v: f64) -> f64 {
    (v * 1e6).round() / 1e6
}

impl Metrics {
    async fn scrape(&self) -> Result<(Vec<Sample>, Duration), ProbeError> {
        let t = Instant::now();
        let obs = self.fetch.observe().await?;
        let status = obs["status"].as_u64().unwrap_or(0);
        if status != 200 {
            return Err(ProbeError::Protocol(format!(
                "{} answered {status}, not 200",
                self.url
            )));
        }
        let body = obs["body"].as_str().unwrap_or("");
        let samples =
            parse(body).map_err(|e| ProbeError::Protocol(format!("{}: {e}", self.url)))?;
        Ok((samples, t.elapsed()))
    }
}

impl Probe for Metrics {
    fn target(&self) -> String {
        self.url.clone()
    }

    fn observe(&self) -> BoxFuture<'_, Result<Observation, ProbeError>> {
        Box::pin(async move {
            let started = Instant::now();
            let (first, scrape_t) = self.scrape().await?;
            tokio::time::sleep(self.interval.saturating_sub(started.elapsed())).await;
            let (second, _) = self.scrape().await?;
            let secs = started.elapsed().as_secs_f64().max(1e-9);
            let delta = |s: &Selector| -> Option<f64> {
                Some(increase(s.sum(&first).unwrap_or(0.0), s.sum(&second)?))
            };
            let mut obs = json!({
                "interval_s": round(secs),
                "series": second.len(),
                "scrape_ms": millis(scrape_t),
            });
            let total = self.total.as_ref().and_then(delta);
            if let Some(t) = total {
                obs["request_rate"] = json!(round(t / secs));
            }
            // no series of errors yet (a labelled counter appears at its
            // first increment) is no error, where requests were counted
            let errors = self
                .errors
                .as_ref()
                .and_then(|e| delta(e).or(total.map(|_| 0.0)));
            if let Some(e) = errors {
                obs["errors_per_s"] = json!(round(e / secs));
                obs["error_rate"] = json!(match total {
                    Some(t) if t > 0.0 => round(e / t),
                    _ => 0.0,
                });
            }
            if let Some(h) = &self.histogram {
                let before = h.buckets(&first);
                let between: Vec<(f64, f64)> = h
                    .buckets(&second)
                    .into_iter()
                    .map(|(le, c)| {
                        let b = before.iter().find(|(l, _)| *l == le).map_or(0.0, |x| x.1);
                        (le, increase(b, c))
                    })
                    .collect();
                let mut qs = Map::new();
                for (key, q) in [("p50", 0.5), ("p90", 0.9), ("p95", 0.95), ("p99", 0.99)] {
                    qs.insert(key.into(), json!(quantile(q, &between).map(round)));
                }
                obs["count"] = json!(between.last().map_or(0.0, |b| b.1));
                if h.name.ends_with("_seconds") {
                    obs["latency_ms"] = qs
                        .iter()
                        .map(|(k, v)| (k.clone(), json!(v.as_f64().map(|s| round(s * 1e3)))))
                        .collect::<Map<_, _>>()
                        .into();
                }
                obs["quantiles"] = qs.into();
            }
            if !self.select.is_empty() {
                let mut values = Map::new();
                let mut rates = Map::new();
                for (alias, s) in &self.select {
                    values.insert(alias.clone(), json!(s.sum(&second)));
                    rates.insert(alias.clone(), json!(delta(s).map(|d| round(d / secs))));
                }
                obs["values"] = values.into();
                obs["rates"] = rates.into();
            }
            Ok(obs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"# HELP http_requests_total Requests.
# TYPE http_requests_total counter
http_requests_total{code="200",path="/"} 90
http_requests_total{code="500",path="/"} 10 1700000000000
http_requests_total{code="404",path="/x \"y\""} 3
up 1
# TYPE d_seconds histogram
d_seconds_bucket{le="0.1"} 50
d_seconds_bucket{le="0.5"} 90
d_seconds_bucket{le="+Inf"} 100
d_seconds_sum 20.5
d_seconds_count 100
"#;

    #[test]
    fn the_text_format_parses() {
        let s = parse(TEXT).expect("parses");
        assert_eq!(s.len(), 9);
        assert_eq!(s[1].labels["code"], "500");
        assert_eq!(s[1].value, 10.0);
        assert_eq!(s[2].labels["path"], "/x \"y\"");
        assert_eq!(s[3].name, "up");
        assert!(
            parse("ok 1\nbroken line here\n")
                .unwrap_err()
                .contains("line 2")
        );
    }

    #[test]
    fn selectors_sum_matching_series() {
        let s = parse(TEXT).expect("parses");
        let sum = |sel: &str| Selector::parse(sel).expect("selector").sum(&s);
        assert_eq!(sum("http_requests_total"), Some(103.0));
        assert_eq!(sum(r#"http_requests_total{code=~"5.."}"#), Some(10.0));
        assert_eq!(sum(r#"http_requests_total{code!="200"}"#), Some(13.0));
        assert_eq!(
            sum(r#"http_requests_total{code!~"2..|4..", path="/"}"#),
            Some(10.0)
        );
        assert_eq!(sum("nope"), None);
        assert!(Selector::parse("{code=\"1\"}").is_err());
        assert!(Selector::parse("x{code=1}").is_err());
        assert!(Selector::parse("x{code=~\"(\"}").is_err());
    }

    #[test]
    fn quantiles_interpolate_within_buckets() {
        let b = [(0.1, 50.0), (0.5, 90.0), (f64::INFINITY, 100.0)];
        assert_eq!(quantile(0.5, &b), Some(0.1));
        assert_eq!(quantile(0.25, &b).map(round), Some(0.05));
        assert_eq!(quantile(0.7, &b).map(round), Some(0.3));
        // in the +Inf bucket: the highest finite bound
        assert_eq!(quantile(0.99, &b), Some(0.5));
        assert_eq!(quantile(0.5, &[(1.0, 0.0), (f64::INFINITY, 0.0)]), None);
        assert_eq!(increase(10.0, 4.0), 4.0, "a reset counts from zero");
    }

    /// A live endpoint whose counters move by a known amount per scrape:
    /// 10 requests, 1 of them failed, 8 under 100 ms and 2 under 500 ms.
    #[tokio::test]
    async fn two_scrapes_give_rates_error_rate_and_latency_quantiles() {
        use std::sync::atomic::{AtomicU64, Ordering};
        let scrapes = std::sync::Arc::new(AtomicU64::new(0));
        let server = golive_testkit::http(std::sync::Arc::new(move |_req| {
            let n = scrapes.fetch_add(1, Ordering::Relaxed) as f64 + 1.0;
            http::Response::new(golive_testkit::full(format!(
                "# TYPE requests_total counter\nrequests_total{{code=\"200\"}} {}\nrequests_total{{code=\"503\"}} {}\nq_seconds_bucket{{le=\"0.1\"}} {}\nq_seconds_bucket{{le=\"0.5\"}} {}\nq_seconds_bucket{{le=\"+Inf\"}} {}\nup 1\n",
                9.0 * n,
                n,
                8.0 * n,
                10.0 * n,
                10.0 * n
            )))
        }))
        .await;
        let mut t: toml::Table = toml::from_str(
            r#"interval = "200ms"
total = "requests_total"
errors = 'requests_total{code=~"5.."}'
histogram = "q_seconds"
select = { up = "up", ok = 'requests_total{code="200"}' }"#,
        )
        .expect("options");
        t.insert(
            "target".into(),
            toml::Value::String(format!("http://127.0.0.1:{}/metrics", server.addr.port())),
        );
        let obs = KIND
            .probe(&t)
            .expect("spec")
            .observe()
            .await
            .expect("observed");
        assert_eq!(obs["error_rate"], 0.1);
        assert_eq!(obs["series"], 6);
        assert_eq!(obs["count"], 10.0);
        // p50: rank 5 of 10 in the first bucket: 0.1 * 5/8
        assert_eq!(obs["latency_ms"]["p50"], 62.5);
        // p95: rank 9.5, in (0.1, 0.5] holding ranks 8..10
        assert_eq!(obs["latency_ms"]["p95"], 400.0);
        assert_eq!(obs["values"]["up"], 1.0);
        assert_eq!(obs["values"]["ok"], 18.0);
        let secs = obs["interval_s"].as_f64().expect("interval");
        assert!(secs >= 0.2, "{obs}");
        // per second over the measured interval (shown rounded to 1 µs)
        let per_interval = |v: &serde_json::Value| v.as_f64().expect("rate") * secs;
        assert!(
            (per_interval(&obs["request_rate"]) - 10.0).abs() < 1e-3,
            "{obs}"
        );
        assert!(
            (per_interval(&obs["rates"]["ok"]) - 9.0).abs() < 1e-3,
            "{obs}"
        );
    }
}
