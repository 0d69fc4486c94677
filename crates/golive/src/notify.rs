//! The communication plan from the command line: which channels a command
//! sends on (`--notify`, else `GOLIVE_NOTIFY`, and the document's top
//! `golive` block's `notify = [...]`), the sending after each command that
//! changes a deployment, and `golive notify --preview | --send`.

use crate::deploy::Cli;
use golive_deploy::channel::Channel;
use golive_deploy::notify::{self, Sender};
use golive_runbook::Runbook;
use std::process::ExitCode;
use std::time::Duration;

/// The environment variable naming channels for every command.
pub const NOTIFY_ENV: &str = "GOLIVE_NOTIFY";

/// How long a command waits for failed deliveries' retries before it
/// leaves them to the next command, `golive notify --send` or a server.
const SETTLE: Duration = Duration::from_secs(4);

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
    let mut specs: Vec<String> = given.to_vec();
    if specs.is_empty()
        && let Some(v) = env(NOTIFY_ENV)
    {
        specs.extend(
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string),
        );
    }
    specs.extend(document_specs(rb));
    Channel::parse_all(&specs, &env)
}

/// The channels of `golive serve`: `given`, else `GOLIVE_NOTIFY` (a
/// server serves many documents: their own `notify` lines are not read).
pub fn server_channels(given: &[String]) -> Result<Vec<Channel>, String> {
    let mut specs: Vec<String> = given.to_vec();
    if specs.is_empty()
        && let Some(v) = env(NOTIFY_ENV)
    {
        specs.extend(
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string),
        );
    }
    Channel::parse_all(&specs, &env)
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
pub async fn after(d: &golive_deploy::Deployment) {
    let channels = match channels(&d.rb, &[]) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("golive: nothing sent: {e}");
            return;
        }
    };
    settle(d, &channels).await;
}

/// Queue and send on `channels`, retrying for a while.
pub async fn settle(d: &golive_deploy::Deployment, channels: &[Channel]) {
    if channels.is_empty() {
        return;
    }
    if let Err(e) = notify::settle(d, &sender(channels), SETTLE, &Cli).await {
        eprintln!("golive: messages not sent: {e}");
    }
}

/// `golive notify [DEPLOYMENT] --preview | --send`.
pub async fn command(
    store: &str,
    deployment: Option<&str>,
    preview: bool,
    given: &[String],
) -> Result<ExitCode, String> {
    crate::deploy::exit(
        async {
            let d = crate::deploy::open(store, deployment).await?;
            let channels = channels(&d.rb, given).map_err(golive_deploy::Error::Failed)?;
            let (k, _) = golive_deploy::Kept::read(&d.store, d.id()).await?;
            if preview {
                let roster = d.roster(None).ok();
                for m in notify::preview(&d.rb, &d.row, &k, jiff::Timestamp::now()) {
                    let on: Vec<String> = channels
                        .iter()
                        .filter(|c| m.goes_to(c))
                        .map(|c| c.shown())
                        .collect();
                    println!("== {} ({})", m.key, if k.notices.contains_key(&m.key) { "queued" } else { "not queued" });
                    println!("Subject: {}", m.subject);
                    if !m.to.is_empty() {
                        let to: Vec<String> = m
                            .to
                            .iter()
                            .map(|n| match roster.as_ref().and_then(|r| r.addresses(n)) {
                                Some(a) => format!("{n} <{}>", a.join(", ")),
                                None => format!("{n} (no address)"),
                            })
                            .collect();
                        println!("To: {}", to.join("; "));
                    }
                    println!(
                        "Channels: {}",
                        if on.is_empty() { "none configured".to_string() } else { on.join(", ") }
                    );
                    if m.attach_report {
                        println!("Attached: the HTML report");
                    }
                    println!();
                    print!("{}", m.body);
                    if !m.body.ends_with('\n') {
                        println!();
                    }
                    println!();
                }
                return Ok(ExitCode::SUCCESS);
            }
            if channels.is_empty() {
                return Err(golive_deploy::Error::Failed(format!(
                    "notify --send: no channel: give --notify KIND=TARGET, set {NOTIFY_ENV}, or write notify = [...] in the document's top golive block"
                )));
            }
            let done = notify::settle(&d, &sender(&channels), SETTLE, &Cli).await?;
            let (k, _) = golive_deploy::Kept::read(&d.store, d.id()).await?;
            let open: Vec<String> = notify::deliveries(&k)
                .into_iter()
                .filter(|(_, ch, state, _)| state != "sent" && channels.iter().any(|c| &c.name == ch))
                .map(|(key, ch, state, detail)| format!("{key} on {ch}: {state} {detail}"))
                .collect();
            println!(
                "deployment {}: {} sent now, {} not delivered",
                d.id(),
                done.sent.len(),
                open.len()
            );
            for o in &open {
                println!("  {o}");
            }
            Ok(if open.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) })
        }
        .await,
    )
}

/// After `golive run`: the scheduled start recorded when one was given,
/// then what became due sent on `channels`.
pub async fn after_run(
    store: &str,
    id: &str,
    at: Option<jiff::Timestamp>,
    channels: &[Channel],
) -> Result<(), String> {
    if at.is_none() && channels.is_empty() {
        return Ok(());
    }
    let d = crate::deploy::open(store, Some(id))
        .await
        .map_err(|e| e.to_string())?;
    if let Some(at) = at {
        match d.schedule(at, &Cli).await {
            Ok(()) => {}
            Err(golive_deploy::Error::Refused(r)) => eprintln!("golive: --at: {}", r.message),
            Err(e) => return Err(e.to_string()),
        }
    }
    settle(&d, channels).await;
    Ok(())
}
