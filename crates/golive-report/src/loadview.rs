//! `golive probe load` in text: a summary a person reads at a glance, the
//! way oha and wrk print theirs (the JSON format keeps every field).

use serde_json::Value;
use std::fmt::Write;

/// The load probe's observation as a summary, latency table, histogram,
/// status codes and errors.
pub fn summary(target: &str, obs: &Value) -> String {
    let mut out = String::new();
    let f = |k: &str| obs[k].as_f64().unwrap_or(0.0);
    let n = |k: &str| obs[k].as_u64().unwrap_or(0);
    let _ = writeln!(out, "load {target}");
    let _ = writeln!(out, "Summary:");
    let _ = writeln!(out, "  Success rate:  {:.2} %", f("success_rate") * 100.0);
    let _ = writeln!(out, "  Duration:      {:.3} s", f("duration_s"));
    let _ = writeln!(
        out,
        "  Requests:      {} ({} answered 2xx/3xx)",
        n("requests"),
        n("succeeded")
    );
    let _ = writeln!(out, "  Requests/s:    {:.1}", f("rps"));
    let rate = match obs["rate"].as_f64() {
        Some(r) => format!(", fixed rate {r}/s (latency from when each was due)"),
        None => String::new(),
    };
    let version = match obs["http_version"].as_str() {
        Some(v) => format!(", HTTP/{v}"),
        None => String::new(),
    };
    let threads = match n("threads") {
        // an observation recorded before threads were reported
        0 => String::new(),
        1 => " on 1 thread".to_string(),
        t => format!(" on {t} threads"),
    };
    let _ = writeln!(
        out,
        "  Connections:   {} opened for {} workers{threads}{version}{rate}",
        n("connections"),
        n("concurrency"),
    );
    let _ = writeln!(out, "  Received:      {} bytes of body", n("bytes"));
    let l = &obs["latency_ms"];
    if l.is_object() {
        let v = |k: &str| l[k].as_f64().unwrap_or(0.0);
        let _ = writeln!(out, "\nLatency (ms):");
        let _ = writeln!(
            out,
            "  min {:.3}   mean {:.3}   stdev {:.3}   max {:.3}",
            v("min"),
            v("mean"),
            v("stdev"),
            v("max")
        );
        let _ = writeln!(
            out,
            "  p50 {:.3}   p90 {:.3}   p95 {:.3}   p99 {:.3}   p99.9 {:.3}",
            v("p50"),
            v("p90"),
            v("p95"),
            v("p99"),
            v("p99_9")
        );
    }
    if let Some(bars) = obs["latency_histogram"]
        .as_array()
        .filter(|b| !b.is_empty())
    {
        let most = bars
            .iter()
            .filter_map(|b| b["count"].as_u64())
            .max()
            .unwrap_or(0)
            .max(1);
        let _ = writeln!(out, "\nHistogram (ms, up to):");
        for b in bars {
            let count = b["count"].as_u64().unwrap_or(0);
            // at least one mark for a bar that holds anything
            let len = (count * 40).div_ceil(most) as usize;
            let line = format!(
                "  {:>10.3} [{count:>8}] {}",
                b["up_to_ms"].as_f64().unwrap_or(0.0),
                "■".repeat(len)
            );
            let _ = writeln!(out, "{}", line.trim_end());
        }
    }
    if let Some(statuses) = obs["statuses"].as_object().filter(|s| !s.is_empty()) {
        let _ = writeln!(out, "\nStatus codes:");
        for (code, count) in statuses {
            let _ = writeln!(out, "  [{code}] {count} responses");
        }
    }
    if let Some(errors) = obs["errors"].as_object().filter(|e| !e.is_empty()) {
        let _ = writeln!(out, "\nErrors:");
        for (cause, count) in errors {
            let _ = writeln!(out, "  [{count}] {cause}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_figure_is_shown_with_its_unit() {
        let obs = json!({
            "requests": 1000, "succeeded": 998, "success_rate": 0.998,
            "duration_s": 0.384, "rps": 2604.7, "connections": 10,
            "concurrency": 10, "http_version": "1.1", "rate": null, "bytes": 3000,
            "latency_ms": { "min": 2.21, "mean": 3.648, "stdev": 2.53, "max": 21.807,
                "p50": 3.399, "p90": 3.605, "p95": 3.693, "p99": 21.071, "p99_9": 21.711 },
            "latency_histogram": [ { "up_to_ms": 4.17, "count": 980 },
                { "up_to_ms": 21.807, "count": 18 } ],
            "statuses": { "200": 998 },
            "errors": { "connection refused by 127.0.0.1:1": 2 },
        });
        let text = summary("http://127.0.0.1:8080/", &obs);
        for line in [
            "load http://127.0.0.1:8080/",
            "  Success rate:  99.80 %",
            "  Requests:      1000 (998 answered 2xx/3xx)",
            "  Requests/s:    2604.7",
            "  Connections:   10 opened for 10 workers, HTTP/1.1",
            "  p50 3.399   p90 3.605   p95 3.693   p99 21.071   p99.9 21.711",
            "       4.170 [     980] ■■■■■■■■■■■■■■■■■■■■■■■■■■■■■■■■■■■■■■■■",
            "      21.807 [      18] ■",
            "  [200] 998 responses",
            "  [2] connection refused by 127.0.0.1:1",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "no line {line:?} in:\n{text}"
            );
        }
    }

    #[test]
    fn a_run_without_answers_has_no_latency_section() {
        let obs = json!({ "requests": 3, "succeeded": 0, "success_rate": 0.0,
            "latency_ms": null, "latency_histogram": [], "statuses": {},
            "errors": { "timed out after 1s": 3 } });
        let text = summary("http://x/", &obs);
        assert!(
            !text.contains("Latency") && !text.contains("Histogram"),
            "{text}"
        );
        assert!(text.contains("  [3] timed out after 1s"), "{text}");
        assert!(text.lines().all(|l| l == l.trim_end()), "{text}");
    }
}
