//! `webhook`: deliver a test alert to a Slack-compatible or PagerDuty Events
//! v2 endpoint and measure the round trip (the seed's Test 15, "alert
//! received in < 5 s"). The payloads are the ones `golive watch` sends.
//!
//! Options: `format` (`slack`, the default, or `pagerduty`), `routing_key`
//! (PagerDuty's; bind it from a secret: `routing_key = "[PAGERDUTY_KEY]"`),
//! `summary`, `ca_file` (a private CA for https). A PagerDuty test alert is resolved right after it was
//! accepted, so it does not page anyone for long. Observes `status`,
//! `accepted` (2xx), `delivery_ms`, and `resolved` (PagerDuty: the resolve was
//! accepted; null otherwise). Default condition: `accepted && delivery_ms <
//! 5000`.

use crate::{BoxFuture, Kind, Observation, Probe, ProbeError, Spec, SpecError, millis};
use serde_json::{Value, json};
use std::time::Duration;

pub(crate) static KIND: Kind = Kind {
    name: "webhook",
    summary: "deliver a test alert (Slack or PagerDuty Events v2) and time it",
    options: &["format", "routing_key", "summary", "ca_file"],
    default_expect: "accepted && delivery_ms < 5000",
    default_timeout: crate::DEFAULT_TIMEOUT,
    observes: &[
        ("status", &[]),
        ("accepted", &[]),
        ("delivery_ms", &[]),
        ("resolved", &[]),
    ],
    causes: &[],
    build,
};

/// What an alert says, whoever receives it.
#[derive(Debug, Clone)]
pub struct Alert {
    pub deployment: String,
    pub runbook: String,
    /// The rule or check, as the document titles it.
    pub rule: String,
    /// `firing`, `resolved`, `reminder` or `test`.
    pub state: String,
    /// `critical`, `error`, `warning` or `info`.
    pub severity: String,
    pub summary: String,
    pub details: Value,
    /// The same for every alert about one rule of one deployment, so a
    /// resolve closes the trigger it follows.
    pub dedup_key: String,
}

/// Slack's incoming-webhook body (Mattermost and Rocket.Chat read it too).
pub fn slack_payload(a: &Alert) -> Value {
    let (mark, color) = match a.state.as_str() {
        "firing" | "reminder" => ("FIRING", "#d63031"),
        "resolved" => ("RESOLVED", "#2e9e5b"),
        _ => ("TEST", "#3867d6"),
    };
    let mut fields = vec![
        json!({ "title": "Deployment", "value": a.deployment, "short": true }),
        json!({ "title": "Runbook", "value": a.runbook, "short": true }),
        json!({ "title": "State", "value": a.state, "short": true }),
        json!({ "title": "Severity", "value": a.severity, "short": true }),
    ];
    // the record's head (SEQ:HASH) when the alert is about a recorded deployment
    if let Some(head) = a.details["head"].as_str() {
        fields.push(json!({ "title": "Record head", "value": head, "short": true }));
    }
    json!({
        "text": format!("[{mark}] {}: {} ({})", a.rule, a.summary, a.deployment),
        "attachments": [{
            "color": color,
            "title": a.rule,
            "text": a.summary,
            "fields": fields,
            "ts": jiff::Timestamp::now().as_second(),
        }],
    })
}

/// A PagerDuty Events v2 event: `resolve` for a resolved alert, else
/// `trigger`; the summary cut to PagerDuty's 1024 characters.
pub fn pagerduty_payload(a: &Alert, routing_key: &str) -> Value {
    let mut summary = format!("{}: {}", a.rule, a.summary);
    if summary.len() > 1024 {
        let mut cut = 1021;
        while !summary.is_char_boundary(cut) {
            cut -= 1;
        }
        summary.truncate(cut);
        summary.push_str("...");
    }
    json!({
        "routing_key": routing_key,
        "event_action": if a.state == "resolved" { "resolve" } else { "trigger" },
        "dedup_key": a.dedup_key,
        "payload": {
            "summary": summary,
            "source": "golive",
            "severity": a.severity,
            "timestamp": jiff::Timestamp::now().to_string(),
            "component": a.runbook,
            "group": a.deployment,
            "class": a.rule,
            "custom_details": a.details,
        },
        "client": "golive",
    })
}

/// A webhook fit to show: `KIND webhook at HOST`. Webhook URLs carry
/// tokens (in the path, the query or the user part): only the host is shown.
pub fn shown(kind: &str, url: &str) -> String {
    format!("{kind} webhook at {}", host(url))
}

/// A URL's host (and port): all of it that may be shown.
pub fn host(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    host.rsplit_once('@').map_or(host, |(_, h)| h)
}

#[derive(Debug)]
struct Webhook {
    url: String,
    ca_file: Option<String>,
    pagerduty: Option<String>,
    summary: String,
}

fn build(spec: &Spec) -> Result<Box<dyn Probe>, SpecError> {
    let url = spec.required("target")?;
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(SpecError::Invalid(
            "target".into(),
            "a webhook is an http:// or https:// URL".into(),
        ));
    }
    let pagerduty = match spec.text("format")?.as_deref().unwrap_or("slack") {
        "slack" => None,
        "pagerduty" => Some(spec.required("routing_key")?),
        other => {
            return Err(SpecError::Invalid(
                "format".into(),
                format!("`{other}`: the formats are slack and pagerduty"),
            ));
        }
    };
    Ok(Box::new(Webhook {
        url,
        ca_file: spec.text("ca_file")?,
        pagerduty,
        summary: spec
            .text("summary")?
            .unwrap_or_else(|| "test alert from golive: nothing is wrong".into()),
    }))
}

impl Probe for Webhook {
    fn target(&self) -> String {
        let kind = if self.pagerduty.is_some() {
            "pagerduty"
        } else {
            "slack"
        };
        shown(kind, &self.url)
    }

    fn observe(&self) -> BoxFuture<'_, Result<Observation, ProbeError>> {
        Box::pin(async move {
            let mut alert = Alert {
                deployment: "test".into(),
                runbook: "golive webhook check".into(),
                rule: "Test alert".into(),
                state: "test".into(),
                severity: "info".into(),
                summary: self.summary.clone(),
                details: json!({ "test": true }),
                dedup_key: format!("golive-test-{}", jiff::Timestamp::now().as_millisecond()),
            };
            let body = match &self.pagerduty {
                Some(key) => pagerduty_payload(&alert, key),
                None => slack_payload(&alert),
            };
            let (status, took) =
                crate::http::post_json(&self.url, body.to_string(), self.ca_file.as_deref())
                    .await?;
            let accepted = (200..300).contains(&status);
            let mut resolved = Value::Null;
            if let (Some(key), true) = (&self.pagerduty, accepted) {
                alert.state = "resolved".into();
                let r = tokio::time::timeout(
                    Duration::from_secs(5),
                    crate::http::post_json(
                        &self.url,
                        pagerduty_payload(&alert, key).to_string(),
                        self.ca_file.as_deref(),
                    ),
                )
                .await;
                resolved = json!(matches!(r, Ok(Ok((s, _))) if (200..300).contains(&s)));
            }
            Ok(json!({
                "status": status,
                "accepted": accepted,
                "delivery_ms": millis(took),
                "resolved": resolved,
            }))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(url: &str, extra: &str) -> Box<dyn Probe> {
        let mut t: toml::Table = toml::from_str(extra).expect("options");
        t.insert("target".into(), toml::Value::String(url.into()));
        KIND.probe(&t).expect("spec")
    }

    #[tokio::test]
    async fn a_test_alert_is_delivered_and_timed() {
        let (server, got) = golive_testkit::receiver(202).await;
        let url = format!(
            "http://127.0.0.1:{}/services/T0/B0/token",
            server.addr.port()
        );
        let obs = probe(&url, "").observe().await.expect("observed");
        assert_eq!(obs["accepted"], true);
        assert!(obs["delivery_ms"].as_f64().is_some_and(|ms| ms > 0.0));
        assert!(obs["resolved"].is_null());
        let p = probe(&url, "format = 'pagerduty'\nrouting_key = 'K3Y'");
        assert!(!p.target().contains("token") && !p.target().contains("K3Y"));
        let obs = p.observe().await.expect("observed");
        assert_eq!(obs["resolved"], true);
        let got = got.lock().unwrap_or_else(|e| e.into_inner()).clone();
        assert_eq!(got.len(), 3);
        let body = |i: usize| -> Value { serde_json::from_str(&got[i].body).expect("json") };
        assert!(
            body(0)["text"]
                .as_str()
                .is_some_and(|t| t.starts_with("[TEST] Test alert"))
        );
        assert_eq!(body(1)["event_action"], "trigger");
        assert_eq!(body(1)["routing_key"], "K3Y");
        assert_eq!(body(2)["event_action"], "resolve");
        assert_eq!(body(1)["dedup_key"], body(2)["dedup_key"]);
    }

    #[tokio::test]
    async fn a_refusing_receiver_is_not_accepted() {
        let (server, _) = golive_testkit::receiver(500).await;
        let obs = probe(&format!("http://127.0.0.1:{}/hook", server.addr.port()), "")
            .observe()
            .await
            .expect("observed");
        assert_eq!(obs["status"], 500);
        assert_eq!(obs["accepted"], false);
        let mut t = toml::Table::new();
        t.insert("target".into(), toml::Value::String("http://x/".into()));
        t.insert("format".into(), toml::Value::String("pagerduty".into()));
        assert!(KIND.probe(&t).is_err(), "pagerduty needs a routing key");
    }
}
