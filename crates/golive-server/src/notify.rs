//! The communication plan, sent by the server (`golive serve --notify`):
//! one worker that, after every write through the API or the page and on
//! a timer (the status updates every interval, the retries), queues what
//! the lifecycle says is due and delivers it. The rules are the
//! lifecycle's (`golive_deploy::notify`); this only decides when to ask.

use crate::App;
use golive_deploy::channel::Channel;
use golive_deploy::notify::{self, Sender};
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The channels and the deployments written to since the worker last ran.
pub struct Notifier {
    pub channels: Vec<Channel>,
    /// How often every open deployment is looked at (status updates due by
    /// time, retries whose time came).
    pub tick: Duration,
    written: Mutex<BTreeSet<String>>,
    wake: tokio::sync::Notify,
}

impl Notifier {
    pub fn new(channels: Vec<Channel>, tick: Duration) -> Notifier {
        Notifier {
            channels,
            tick,
            written: Mutex::new(BTreeSet::new()),
            wake: tokio::sync::Notify::new(),
        }
    }

    /// Deployment `id` was written to: look at it now.
    pub fn poke(&self, id: &str) {
        self.written
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.to_string());
        self.wake.notify_one();
    }
}

fn report(
    rb: &golive_runbook::Runbook,
    row: &golive_store::Deployment,
    events: &[golive_store::Event],
) -> String {
    golive_report::render_html(rb, row, events, jiff::Timestamp::now())
}

/// Says nothing: outcomes go to the log.
struct Log;

impl golive_deploy::Listener for Log {
    fn note(&self, text: &str) {
        tracing::info!(target: "golive::notify", "{text}");
    }
}

fn ended_long_ago(at: &str) -> bool {
    at.parse::<jiff::Timestamp>().is_ok_and(|t| {
        jiff::Timestamp::now().duration_since(t) > jiff::SignedDuration::from_hours(1)
    })
}

/// The worker: runs until the server closes.
pub async fn work(app: Arc<App>, n: Arc<Notifier>) {
    let mut closing = app.closing.clone();
    let sender = Sender {
        channels: &n.channels,
        interval: None,
        report: &report,
        backoff: Duration::from_secs(1),
    };
    let mut every = tokio::time::interval(n.tick);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let all = tokio::select! {
            _ = n.wake.notified() => false,
            _ = every.tick() => true,
            _ = closing.changed() => return,
        };
        let mut ids: BTreeSet<String> =
            std::mem::take(&mut *n.written.lock().unwrap_or_else(|e| e.into_inner()));
        if all {
            match app.store.deployments().await {
                Ok(rows) => {
                    for r in rows {
                        // a deployment that ended over an hour ago, every
                        // delivery through, has nothing more to send
                        if let Ok((k, _)) = golive_deploy::Kept::read(&app.store, &r.id).await
                            && k.ended.as_ref().is_some_and(|e| ended_long_ago(&e.at))
                            && notify::deliveries(&k)
                                .iter()
                                .all(|(_, _, state, _)| state == "sent" || state == "given up")
                        {
                            continue;
                        }
                        ids.insert(r.id);
                    }
                }
                Err(e) => tracing::warn!(error = %e, "notify: cannot list the deployments"),
            }
        }
        for id in ids {
            let d = match crate::api::open(&app, &id).await {
                Ok(d) => d,
                Err(e) => {
                    tracing::warn!(deployment = %id, error = ?e, "notify: cannot open");
                    continue;
                }
            };
            let pass = async {
                // pending approvals past the document's expire_after end
                // here too, not only at the next write
                if golive_deploy::approval::rules(&d.rb).expire_after.is_some() {
                    d.expire_approvals(&Log).await?;
                }
                notify::queue(&d, &sender, jiff::Timestamp::now(), &Log).await?;
                notify::deliver(&d, &sender, &Log).await
            };
            match pass.await {
                Ok(done) if !done.sent.is_empty() || !done.failed.is_empty() => {
                    app.hub.poke(&id);
                    tracing::info!(deployment = %id, sent = done.sent.len(), failed = done.failed.len(), "notify");
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(deployment = %id, error = %e, "notify"),
            }
        }
    }
}
