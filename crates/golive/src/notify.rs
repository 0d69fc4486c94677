//! The communication plan from the command line: which channels a command
//! sends on (`--notify`, else `GOLIVE_NOTIFY`, and the document's top
//! `golive` block's `notify = [...]`), the sending after each command that
//! changes a deployment, and `golive notify --preview | --send`.

use golive_deploy::Listener;
use golive_deploy::channel::Channel;
use golive_deploy::notify::{self, Sender};
use golive_runbook::Runbook;
use std::time::Duration;

/// The environment variable naming channels for every command.
pub const NOTIFY_ENV: &str = "GOLIVE_NOTIFY";

/// How long a command waits for failed deliveries' retries before it
/// leaves them to the next command, `golive notify --send` or a server.
pub const SETTLE: Duration = Duration::from_secs(4);

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// The channel specs of the document's top `golive` block.
fn document_specs(rb: &Runbook) -> Vec<String> {
    let mut out = Vec::new();
    for a in &rb.header.annotations {
        match a.table.as_ref().and_then(|t| t.get("notify")) {
            Some(toml::Value::String(s)) => out.push(s.clone()),
            Some(toml::Value::Array(list)) => {
                out.extend(list.iter().filter_map(|v| v.as_str().map(str::to_string)))
            }
            _ => {}
        }
    }
    out
}

/// The channels a command sends on: `given` (`--notify`), else those of
/// `GOLIVE_NOTIFY` (comma-separated), then the document's.
pub fn channels(rb: &Runbook, given: &[String]) -> Result<Vec<Channel>, String> {
    let mut specs = given_specs(given);
    specs.extend(document_specs(rb));
    Channel::parse_all(&specs, &env)
}

/// `given` (`--notify`), else those of `GOLIVE_NOTIFY` (comma-separated).
fn given_specs(given: &[String]) -> Vec<String> {
    if !given.is_empty() {
        return given.to_vec();
    }
    env(NOTIFY_ENV)
        .map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// The channels of `golive serve`: `given`, else `GOLIVE_NOTIFY` (a
/// server serves many documents: their own `notify` lines are not read).
pub fn server_channels(given: &[String]) -> Result<Vec<Channel>, String> {
    Channel::parse_all(&given_specs(given), &env)
}

fn report(rb: &Runbook, row: &golive_store::Deployment, events: &[golive_store::Event]) -> String {
    golive_report::render_html(rb, row, events, jiff::Timestamp::now())
}

/// The sender of a command with these channels.
pub fn sender(channels: &[Channel]) -> Sender<'_> {
    Sender {
        channels,
        interval: None,
        report: &report,
        backoff: Duration::from_secs(1),
    }
}

/// After a command changed deployment `d`: queue what became due and send
/// it. A channel that cannot be used, or a delivery that fails, is said on
/// stderr and changes nothing of the command's outcome.
pub async fn after(d: &golive_deploy::Deployment, l: &dyn Listener) {
    let channels = match channels(&d.rb, &[]) {
        Ok(c) => c,
        Err(e) => {
            l.note(&format!("nothing sent: {e}"));
            return;
        }
    };
    settle(d, &channels, l).await;
}

/// Queue and send on `channels`, retrying for a while.
pub async fn settle(d: &golive_deploy::Deployment, channels: &[Channel], l: &dyn Listener) {
    if channels.is_empty() {
        return;
    }
    if let Err(e) = notify::settle(d, &sender(channels), SETTLE, l).await {
        l.note(&format!("messages not sent: {e}"));
    }
}
