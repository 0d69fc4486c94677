//! golive-probe: the checks golive can run against real systems.
//!
//! A probe observes; it does not judge. [`Probe::observe`] returns an
//! [`Observation`] (a JSON object whose fields each kind documents) or a
//! [`ProbeError`] when it could not observe at all (timeout, refused, unknown
//! host). Whether the observation passes is decided by the engine, from the
//! annotation's `expect` condition.
//!
//! Each kind is one file that owns its options, its parsing, its run and its
//! tests, and one line in [`KINDS`].
//!
//! ```
//! let kind = golive_probe::kind("tcp").expect("tcp is a kind");
//! assert_eq!(kind.name, "tcp");
//! ```

mod addr;
mod command;
mod dns;
mod file;
mod http;
mod load;
mod metrics;
mod net;
mod postgres;
mod prometheus;
mod ratelimit;
mod redis;
mod shell;
mod spec;
mod tcp;
mod tls;
mod webhook;

pub use http::{exchange, post_json, post_json_with, request};
pub use shell::{BoundScript, ENV_PREFIX, bind_shell, env_name};
pub use spec::{Spec, SpecError, Vars, parse_duration};
pub use webhook::{
    Alert, host as webhook_host, pagerduty_payload, shown as webhook_shown, slack_payload,
};

use serde_json::Value;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// What a probe saw: a JSON object, documented per kind in docs/checks.md.
pub type Observation = Value;

/// A boxed, sendable future (probes are trait objects).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The probe could not observe: the check neither passed nor failed.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum ProbeError {
    #[error("timed out after {}", show_duration(*.0))]
    Timeout(Duration),
    #[error("connection refused by {0}")]
    Refused(String),
    #[error("cannot resolve {0}")]
    Resolve(String),
    #[error("tls handshake with {0} failed: {1}")]
    Tls(String, String),
    #[error("{0}")]
    Protocol(String),
    #[error("{0}")]
    Io(String),
}

/// `1.5s`, `250ms`, `2m`.
pub fn show_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms.is_multiple_of(60_000) {
        format!("{}m", ms / 60_000)
    } else if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

/// A configured check, ready to run.
pub trait Probe: Send + Sync + std::fmt::Debug {
    /// The resolved target, for plans and reports.
    fn target(&self) -> String;
    /// Whether running it changes anything (commands do): such probes run
    /// only when the user allows it.
    fn side_effects(&self) -> bool {
        false
    }
    /// Observe the target. Dropping the future cancels cleanly (sockets
    /// closed, child processes killed).
    fn observe(&self) -> BoxFuture<'_, Result<Observation, ProbeError>>;
    /// How long observing takes by design, when it does (a load test's
    /// `duration`, plus one `request_timeout` for its last requests): the
    /// check's timeout must leave room for it.
    fn least_time(&self) -> Option<Duration> {
        None
    }
}

/// The timeout of a check of `probe`: `given` (an annotation's `timeout`,
/// `--timeout`) when it leaves room for the probe's [`Probe::least_time`],
/// else why not; without one, the kind's `default`, lengthened to the
/// probe's least time and ten seconds more (a 15-minute soak test is not cut
/// at the default of ten).
///
/// `setting` names where `given` was written, for the message
/// (`` `timeout` `` in an annotation, `--timeout` on the command line).
pub fn timeout_for(
    probe: &dyn Probe,
    given: Option<Duration>,
    default: Duration,
    setting: &str,
) -> Result<Duration, String> {
    let least = probe.least_time();
    match (given, least) {
        (Some(t), Some(l)) if t <= l => Err(format!(
            "{setting} {} leaves no room for a run of {} (its duration and one request_timeout): give a longer one, or none",
            show_duration(t),
            show_duration(l)
        )),
        (Some(t), _) => Ok(t),
        (None, Some(l)) => Ok(default.max(l + Duration::from_secs(10))),
        (None, None) => Ok(default),
    }
}

/// A kind of probe: its name, options, default condition and constructor.
pub struct Kind {
    pub name: &'static str,
    pub summary: &'static str,
    /// Option keys this kind reads besides the common ones.
    pub options: &'static [&'static str],
    /// The condition used when an annotation has no `expect`.
    pub default_expect: &'static str,
    /// How long a check of this kind may take when its annotation sets no
    /// `timeout` (a load test runs for longer than one request).
    pub default_timeout: Duration,
    /// The top-level fields of what it observes, each with the fields of
    /// it when they are fixed (`cert` → `days_left` …; none listed: a value,
    /// or keys that depend on the target, as `headers` or `json`). Some are
    /// present only with an option (`metrics`' `error_rate` with `errors`).
    pub observes: &'static [(&'static str, &'static [&'static str])],
    /// What explains a failure: when a false condition reads the first
    /// field, the second is shown beside it (a load check's `error_rate`
    /// with its `errors` by cause, a TLS check's `cert.chain_valid` with its
    /// `cert.chain_error`).
    pub causes: &'static [(&'static str, &'static str)],
    /// Build a probe from an annotation (placeholders resolved by `spec`).
    pub build: fn(&Spec) -> Result<Box<dyn Probe>, SpecError>,
}

impl std::fmt::Debug for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kind").field("name", &self.name).finish()
    }
}

impl Kind {
    /// A probe from `key = value` options alone (no placeholders, default
    /// timeout): for `golive probe` and tests.
    pub fn probe(&self, table: &toml::Table) -> Result<Box<dyn Probe>, SpecError> {
        let vars = Vars::new();
        (self.build)(&Spec {
            kind: self.name,
            table,
            vars: &vars,
            commands: Vec::new(),
            timeout: self.default_timeout,
        })
    }
}

/// Every kind golive knows. Adding a kind is a file and a line here.
pub static KINDS: &[&Kind] = &[
    &http::KIND,
    &tls::KIND,
    &dns::KIND,
    &tcp::KIND,
    &command::KIND,
    &file::KIND,
    &load::KIND,
    &ratelimit::KIND,
    &metrics::KIND,
    &prometheus::KIND,
    &postgres::KIND,
    &redis::KIND,
    &webhook::KIND,
];

/// The kind named `name`.
pub fn kind(name: &str) -> Option<&'static Kind> {
    KINDS.iter().copied().find(|k| k.name == name)
}

/// Keys every check annotation may hold, whatever its kind.
pub const COMMON_KEYS: &[&str] = &[
    "check",
    "target",
    "expect",
    "fill",
    "timeout",
    "retries",
    "backoff",
    "auto_sign",
];

/// The default time a check may take.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Milliseconds as a float with microsecond precision, for observations.
pub(crate) fn millis(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}
