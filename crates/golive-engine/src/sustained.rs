//! Sustained rules: a condition that must hold at every evaluation for a
//! whole window before it counts (`for = "5m"`), with Prometheus's
//! alerting-rule semantics.
//!
//! ```text
//!            holds            held for `for`         no longer holds
//! inactive ────────▶ pending ───────────────▶ firing ───────────────▶ inactive (resolved)
//!                      │ no longer holds
//!                      ▼
//!                   inactive (cleared)
//! ```
//!
//! A window with `for = 0` fires at the first evaluation that holds. A
//! pending window whose evaluations stopped for longer than two intervals
//! and five seconds (a restart, a stalled machine) starts again, and says
//! so: the condition was not seen to hold in between.

use jiff::{SignedDuration, Timestamp};
use std::time::Duration;

/// Where a window is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Inactive,
    /// Holding since `since`, not yet for the whole window.
    Pending {
        since: Timestamp,
    },
    /// Held for the whole window; firing since `since`.
    Firing {
        since: Timestamp,
    },
}

impl State {
    pub fn name(&self) -> &'static str {
        match self {
            State::Inactive => "inactive",
            State::Pending { .. } => "pending",
            State::Firing { .. } => "firing",
        }
    }
}

/// A change worth recording (and, for `Firing` and `Resolved`, alerting).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Began to hold.
    Pending,
    /// Held at every evaluation for the whole window.
    Firing,
    /// Stopped holding while pending: nothing fired.
    Cleared,
    /// Stopped holding after it fired.
    Resolved,
}

impl Change {
    pub fn name(&self) -> &'static str {
        match self {
            Change::Pending => "pending",
            Change::Firing => "firing",
            Change::Cleared => "cleared",
            Change::Resolved => "resolved",
        }
    }
}

/// One sustained rule's window.
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    /// How long the condition must hold (`for`).
    pub hold: Duration,
    /// How often it is evaluated.
    pub interval: Duration,
    pub state: State,
    /// The last evaluation.
    pub last: Option<Timestamp>,
}

fn span(d: Duration) -> SignedDuration {
    SignedDuration::try_from(d).unwrap_or(SignedDuration::MAX)
}

/// The longest gap between two evaluations a pending window survives.
fn max_gap(interval: Duration) -> SignedDuration {
    span(interval * 2 + Duration::from_secs(5))
}

impl Window {
    pub fn new(hold: Duration, interval: Duration) -> Window {
        Window {
            hold,
            interval,
            state: State::Inactive,
            last: None,
        }
    }

    /// A window as recorded (state and last evaluation), continued at `now`.
    /// Returns why it starts again, when it does: evaluations stopped for
    /// longer than two intervals and five seconds, so "held at every
    /// evaluation" cannot be claimed across the gap.
    pub fn restore(
        hold: Duration,
        interval: Duration,
        state: State,
        last: Option<Timestamp>,
        now: Timestamp,
    ) -> (Window, Option<String>) {
        let mut w = Window {
            hold,
            interval,
            state,
            last,
        };
        if let (Some(last), State::Pending { .. }) = (last, state) {
            let gap = now.duration_since(last);
            if gap > max_gap(interval) {
                w.state = State::Inactive;
                return (
                    w,
                    Some(format!(
                        "no evaluation for {gap:#}: the pending window starts again"
                    )),
                );
            }
        }
        (w, None)
    }

    /// Evaluate at `at`: whether the condition holds now. Returns the change,
    /// if any.
    pub fn evaluate(&mut self, at: Timestamp, holds: bool) -> Option<Change> {
        // a gap in the evaluations breaks a pending window
        if let (Some(last), State::Pending { .. }) = (self.last, self.state)
            && at.duration_since(last) > max_gap(self.interval)
        {
            self.state = State::Inactive;
        }
        self.last = Some(at);
        match (self.state, holds) {
            (State::Inactive, true) => {
                if self.hold.is_zero() {
                    self.state = State::Firing { since: at };
                    Some(Change::Firing)
                } else {
                    self.state = State::Pending { since: at };
                    Some(Change::Pending)
                }
            }
            (State::Pending { since }, true) => {
                if at.duration_since(since) >= span(self.hold) {
                    self.state = State::Firing { since: at };
                    Some(Change::Firing)
                } else {
                    None
                }
            }
            (State::Pending { .. }, false) => {
                self.state = State::Inactive;
                Some(Change::Cleared)
            }
            (State::Firing { .. }, false) => {
                self.state = State::Inactive;
                Some(Change::Resolved)
            }
            (State::Firing { .. }, true) | (State::Inactive, false) => None,
        }
    }
}

/// Evaluate `holds` every `interval` (tokio's clock: paused in tests) until
/// `evaluations` have run, reporting each change with its time. Times are
/// `origin` plus the tokio clock's elapsed time, so paused time gives exact
/// window edges.
pub async fn evaluate_every<F, Fut>(
    window: &mut Window,
    origin: Timestamp,
    evaluations: usize,
    mut holds: F,
    mut changed: impl FnMut(Timestamp, Change),
) where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = tokio::time::Instant::now();
    let mut ticker = tokio::time::interval(window.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for _ in 0..evaluations {
        ticker.tick().await;
        let now = origin.checked_add(span(start.elapsed())).unwrap_or(origin);
        let h = holds().await;
        if let Some(c) = window.evaluate(now, h) {
            changed(now, c);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    fn t0() -> Timestamp {
        "2026-11-27T12:00:00Z".parse().expect("time")
    }

    /// Evaluate a 5-minute window every 30 s, `n` times, on tokio's paused
    /// clock, the check failing at the evaluations `fails` says (1-based);
    /// the changes, at seconds after the first evaluation.
    async fn changes(n: usize, fails: fn(usize) -> bool) -> Vec<(u64, Change)> {
        let mut w = Window::new(Duration::from_secs(300), Duration::from_secs(30));
        let count = Arc::new(Mutex::new(0usize));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        evaluate_every(
            &mut w,
            t0(),
            n,
            move || {
                let count = count.clone();
                async move {
                    let mut c = count.lock().unwrap_or_else(|e| e.into_inner());
                    *c += 1;
                    fails(*c)
                }
            },
            move |at, c| {
                log.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push((at.duration_since(t0()).as_secs().unsigned_abs(), c))
            },
        )
        .await;
        seen.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The exact edges: the window fires at the evaluation exactly 5 minutes
    /// after the first that held, not one before; it resolves at the first
    /// that does not.
    #[tokio::test(start_paused = true)]
    async fn pending_then_firing_at_the_window_edge_then_resolved() {
        // holds from the 3rd evaluation (t = 60 s) to the 16th (t = 450 s)
        assert_eq!(
            changes(20, |n| (3..=16).contains(&n)).await,
            [
                (60, Change::Pending),
                // 60 + 300: the first evaluation with the whole window behind it
                (360, Change::Firing),
                (480, Change::Resolved)
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_dip_inside_the_window_clears_it() {
        // holds at every evaluation but the 8th (t = 210 s): the window
        // restarts at 240 s and cannot complete by 450 s
        assert_eq!(
            changes(16, |n| n != 8).await,
            [
                (0, Change::Pending),
                (210, Change::Cleared),
                (240, Change::Pending)
            ]
        );
    }

    #[test]
    fn a_zero_window_fires_at_once() {
        let mut w = Window::new(Duration::ZERO, Duration::from_secs(10));
        assert_eq!(w.evaluate(t0(), true), Some(Change::Firing));
        assert_eq!(w.evaluate(t0(), true), None);
    }

    #[test]
    fn a_restart_after_a_gap_says_the_window_starts_again() {
        let hold = Duration::from_secs(300);
        let every = Duration::from_secs(30);
        let pending = State::Pending { since: t0() };
        let last = Some(t0() + SignedDuration::from_secs(120));
        // back within two intervals: the window goes on
        let (w, note) = Window::restore(
            hold,
            every,
            pending,
            last,
            t0() + SignedDuration::from_secs(170),
        );
        assert_eq!((w.state, note), (pending, None));
        // back after ten minutes: it starts again, and says why
        let (w, note) = Window::restore(
            hold,
            every,
            pending,
            last,
            t0() + SignedDuration::from_secs(720),
        );
        assert_eq!(w.state, State::Inactive);
        assert!(note.expect("note").contains("starts again"));
        // firing stays firing: it resolves only when seen not to hold
        let firing = State::Firing { since: t0() };
        let (w, _) = Window::restore(
            hold,
            every,
            firing,
            last,
            t0() + SignedDuration::from_secs(720),
        );
        assert_eq!(w.state, firing);
    }
}
