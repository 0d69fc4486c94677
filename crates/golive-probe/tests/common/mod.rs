//! Helpers shared by the probe tests.
#![allow(dead_code)]

use golive_probe::{Observation, Probe, ProbeError};
use std::time::{Duration, Instant};

/// A probe of `kind` from `key = value` pairs.
pub fn probe(kind: &str, pairs: &[(&str, toml::Value)]) -> Box<dyn Probe> {
    let mut t = toml::Table::new();
    for (k, v) in pairs {
        t.insert((*k).to_string(), v.clone());
    }
    golive_probe::kind(kind)
        .expect("kind")
        .probe(&t)
        .expect("valid spec")
}

pub fn s(v: &str) -> toml::Value {
    toml::Value::String(v.to_string())
}

/// Observe under a deadline, as the engine does; returns the result and the
/// time it took.
pub async fn observe(
    p: &dyn Probe,
    timeout: Duration,
) -> (Result<Observation, ProbeError>, Duration) {
    let t = Instant::now();
    let r = match tokio::time::timeout(timeout, p.observe()).await {
        Ok(r) => r,
        Err(_) => Err(ProbeError::Timeout(timeout)),
    };
    (r, t.elapsed())
}

/// Run a command line and return its stdout (for comparisons with the tools
/// people use: curl, dig, openssl).
pub fn tool(cmd: &str, args: &[&str]) -> String {
    let out = std::process::Command::new(cmd)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{cmd} is installed (.ci/run installs it): {e}"));
    String::from_utf8_lossy(&out.stdout).into_owned()
}
