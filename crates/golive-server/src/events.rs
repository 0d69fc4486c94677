//! Live updates: each deployment watched by a stream has one reader of its
//! event log, woken by this server's own writes, by every other process's
//! as it commits (PostgreSQL's LISTEN/NOTIFY), and every poll interval
//! (SQLite's only way, PostgreSQL's safety net), and fanned out to every
//! stream of it. A stream resumes from `Last-Event-ID`, the sequence
//! number of the last event it saw, so a dropped connection misses nothing.

use golive_store::{Event, Store};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, broadcast};

struct Topic {
    tx: broadcast::Sender<Arc<Event>>,
    wake: Arc<Notify>,
}

/// The readers of the deployments being watched.
pub struct Hub {
    store: Store,
    topics: Arc<Mutex<HashMap<String, Topic>>>,
    /// How often a reader looks for other processes' writes.
    poll: Duration,
}

impl Hub {
    pub fn new(store: Store, poll: Duration) -> Hub {
        Hub {
            store,
            topics: Arc::new(Mutex::new(HashMap::new())),
            poll,
        }
    }

    /// Follow `deployment` from after event `from`: every event after it,
    /// as it is appended.
    pub fn subscribe(&self, deployment: &str, from: i64) -> broadcast::Receiver<Arc<Event>> {
        let mut topics = self.topics.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(t) = topics.get(deployment) {
            return t.tx.subscribe();
        }
        let (tx, rx) = broadcast::channel(1024);
        let wake = Arc::new(Notify::new());
        topics.insert(
            deployment.to_string(),
            Topic {
                tx: tx.clone(),
                wake: wake.clone(),
            },
        );
        let (store, id, poll, all) = (
            self.store.clone(),
            deployment.to_string(),
            self.poll,
            self.topics.clone(),
        );
        tokio::spawn(async move {
            let mut last = from;
            loop {
                tokio::select! {
                    _ = wake.notified() => {}
                    _ = tokio::time::sleep(poll) => {}
                }
                if tx.receiver_count() == 0 {
                    let mut topics = all.lock().unwrap_or_else(|p| p.into_inner());
                    if tx.receiver_count() == 0 {
                        topics.remove(&id);
                        return;
                    }
                }
                if let Ok(events) = store.events_after(&id, last).await {
                    for e in events {
                        last = e.seq;
                        let _ = tx.send(Arc::new(e));
                    }
                }
            }
        });
        rx
    }

    /// Some process may have appended to any deployment (the store's
    /// follower reconnected): every reader looks.
    pub fn poke_all(&self) {
        let topics = self.topics.lock().unwrap_or_else(|p| p.into_inner());
        for t in topics.values() {
            t.wake.notify_one();
        }
    }

    /// Follow the store's appends, by every process (PostgreSQL's
    /// LISTEN/NOTIFY): the streams of a deployment hear another server's
    /// write as soon as it commits, not at the next poll.
    pub fn follow(self: &Arc<Self>, mut appends: tokio::sync::mpsc::Receiver<(String, i64)>) {
        let hub = self.clone();
        tokio::spawn(async move {
            while let Some((deployment, _)) = appends.recv().await {
                if deployment.is_empty() {
                    hub.poke_all();
                } else {
                    hub.poke(&deployment);
                }
            }
        });
    }

    /// This server appended to `deployment`: its streams hear it now.
    pub fn poke(&self, deployment: &str) {
        let topics = self.topics.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(t) = topics.get(deployment) {
            t.wake.notify_one();
        }
    }
}
