//! Alerts: what changed, sent to Slack-compatible and PagerDuty Events v2
//! webhooks, with the delivery time measured (the seed's "alert received in
//! < 5 s").
//!
//! `--webhook slack=URL` posts `{text, attachments}` (Slack's incoming
//! webhooks, and Mattermost's and Rocket.Chat's, which read the same);
//! `--webhook pagerduty=URL` posts an Events v2 `trigger` or `resolve` with a
//! stable `dedup_key`, its routing key read from `GOLIVE_PAGERDUTY_ROUTING_KEY`
//! (a secret: it is sent, never printed or stored). Webhook URLs carry
//! tokens too: only their host is ever shown.

use serde_json::Value;
#[cfg(test)]
use serde_json::json;

/// Where alerts go.
#[derive(Debug, Clone)]
pub enum Hook {
    Slack { url: String },
    PagerDuty { url: String, routing_key: String },
}

pub use golive_probe::Alert;

/// A delivery: the receiver's status and how long it took to accept it.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub status: u16,
    pub ms: f64,
}

pub const ROUTING_KEY_ENV: &str = "GOLIVE_PAGERDUTY_ROUTING_KEY";

impl Hook {
    /// `slack=URL` or `pagerduty=URL`; a PagerDuty hook sends with
    /// `routing_key` (the CLI reads it from [`ROUTING_KEY_ENV`]).
    pub fn parse(spec: &str, routing_key: Option<&str>) -> Result<Hook, String> {
        let (kind, url) = spec.split_once('=').ok_or_else(|| {
            format!("--webhook `{spec}`: write KIND=URL, KIND being slack or pagerduty")
        })?;
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(format!(
                "--webhook {kind}=…: the URL must start with http:// or https://"
            ));
        }
        match kind {
            "slack" => Ok(Hook::Slack { url: url.into() }),
            "pagerduty" => {
                let routing_key = routing_key
                    .filter(|k| !k.is_empty())
                    .map(str::to_string)
                    .ok_or_else(|| {
                        format!("--webhook pagerduty=…: set {ROUTING_KEY_ENV} to the integration's routing key")
                    })?;
                Ok(Hook::PagerDuty {
                    url: url.into(),
                    routing_key,
                })
            }
            other => Err(format!(
                "--webhook `{other}=…`: the kinds are slack and pagerduty"
            )),
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Hook::Slack { .. } => "slack",
            Hook::PagerDuty { .. } => "pagerduty",
        }
    }

    fn url(&self) -> &str {
        match self {
            Hook::Slack { url } | Hook::PagerDuty { url, .. } => url,
        }
    }

    /// The receiver, fit to show: its host only.
    pub fn shown(&self) -> String {
        golive_probe::webhook_shown(self.kind(), self.url())
    }

    /// The body this hook's receiver expects.
    pub fn payload(&self, a: &Alert) -> Value {
        match self {
            Hook::Slack { .. } => golive_probe::slack_payload(a),
            Hook::PagerDuty { routing_key, .. } => golive_probe::pagerduty_payload(a, routing_key),
        }
    }

    /// POST the alert; its delivery, or why it failed (never with the URL).
    pub async fn send(&self, a: &Alert) -> Result<Delivery, String> {
        let (status, took) =
            crate::channel::post(self.url(), &self.shown(), self.payload(a).to_string(), &[])
                .await?;
        Ok(Delivery {
            status,
            ms: (took.as_secs_f64() * 1e6).round() / 1e3,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(state: &str) -> Alert {
        Alert {
            deployment: "d-1".into(),
            runbook: "Production Deployment".into(),
            rule: "Error rate >1% sustained for >5 minutes".into(),
            state: state.into(),
            severity: "critical".into(),
            summary: "error_rate 0.042 for 5m".into(),
            details: json!({ "error_rate": 0.042 }),
            dedup_key: "d-1/error-rate".into(),
        }
    }

    #[test]
    fn payloads_have_the_receivers_shapes() {
        let slack = Hook::Slack {
            url: "https://hooks.example.test/services/T0/B0/secret".into(),
        };
        let p = slack.payload(&alert("firing"));
        assert!(
            p["text"]
                .as_str()
                .is_some_and(|t| t.starts_with("[FIRING] Error rate"))
        );
        assert_eq!(p["attachments"][0]["fields"][0]["value"], "d-1");
        assert_eq!(slack.shown(), "slack webhook at hooks.example.test");
        let pd = Hook::PagerDuty {
            url: "https://events.example.test/v2/enqueue".into(),
            routing_key: "R0UT1NG".into(),
        };
        let p = pd.payload(&alert("firing"));
        assert_eq!(p["event_action"], "trigger");
        assert_eq!(p["routing_key"], "R0UT1NG");
        assert_eq!(p["payload"]["severity"], "critical");
        assert_eq!(p["payload"]["source"], "golive");
        assert_eq!(pd.payload(&alert("resolved"))["event_action"], "resolve");
        assert!(!pd.shown().contains("R0UT1NG"));
    }

    #[test]
    fn bad_specs_are_refused_with_the_fix() {
        assert!(
            Hook::parse("https://x", None)
                .unwrap_err()
                .contains("KIND=URL")
        );
        assert!(
            Hook::parse("teams=https://x", None)
                .unwrap_err()
                .contains("slack and pagerduty")
        );
        assert!(
            Hook::parse("slack=ftp://x", None)
                .unwrap_err()
                .contains("http://")
        );
    }
}
