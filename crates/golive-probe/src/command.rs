//! `command`: run a shell command and observe its exit code and output.
//!
//! The script is the annotation's `command`, or else the item's own shell
//! block. Placeholders become references to `GOLIVE_VAR_…` environment
//! variables (see `shell`), so a value never runs as code and the script's
//! text never holds a value, secret or not. The process runs in its own process group, which is
//! killed whole on timeout or cancellation. Output is capped at 64 KiB per
//! stream (the rest is drained, not kept).
//!
//! Observes `exit_code`, `stdout`, `stderr`, `duration_ms`, `json` (stdout
//! parsed, when it is JSON), `expected` (the `# Expected:` line, or null) and
//! `expected_match` (trimmed stdout equals it; when both parse as JSON, the
//! expected value must be a subset of the actual one; true with no line).

use crate::shell::bind_shell;
use crate::{BoxFuture, Kind, Observation, Probe, ProbeError, Spec, SpecError, millis};
use serde_json::{Value, json};
use std::process::Stdio;
use std::time::Instant;
use tokio::io::{AsyncRead, AsyncReadExt};

pub(crate) static KIND: Kind = Kind {
    name: "command",
    summary: "run a shell command: exit code, stdout, stderr, expected output",
    options: &["command", "shell", "env", "cwd"],
    default_expect: "exit_code == 0 && expected_match",
    default_timeout: crate::DEFAULT_TIMEOUT,
    observes: &[
        ("exit_code", &[]),
        ("signal", &[]),
        ("stdout", &[]),
        ("stderr", &[]),
        ("stdout_truncated", &[]),
        ("stderr_truncated", &[]),
        ("duration_ms", &[]),
        ("json", &[]),
        ("expected", &[]),
        ("expected_match", &[]),
    ],
    causes: &[("exit_code", "stderr")],
    build,
};

const CAP: usize = 64 * 1024;

#[derive(Debug)]
struct CommandProbe {
    script: String,
    /// The placeholders' values, for the command's environment.
    bound: Vec<(String, String)>,
    expected: Option<String>,
    shell: String,
    env: Vec<(String, String)>,
    cwd: Option<String>,
}

fn build(spec: &Spec) -> Result<Box<dyn Probe>, SpecError> {
    let (raw, expected) = match spec.table.get("command") {
        Some(toml::Value::String(s)) => (s.clone(), None),
        Some(_) => {
            return Err(SpecError::Invalid(
                "command".into(),
                "expected a string".into(),
            ));
        }
        None => {
            if spec.commands.is_empty() {
                return Err(SpecError::Missing("command", "command"));
            }
            let script = spec
                .commands
                .iter()
                .map(|(c, _)| c.as_str())
                .collect::<Vec<_>>()
                .join("\n");
            // the last command's expected line is the block's result
            let expected = spec.commands.last().and_then(|(_, e)| e.clone());
            (script, expected)
        }
    };
    let bound = bind_shell(&raw, spec.vars)?;
    let expected = expected.map(|e| spec.vars.substitute(&e)).transpose()?;
    Ok(Box::new(CommandProbe {
        script: bound.script,
        bound: bound.env,
        expected,
        shell: spec.text("shell")?.unwrap_or_else(|| "/bin/sh".into()),
        env: spec.string_table("env")?,
        cwd: spec.text("cwd")?,
    }))
}

/// Kills the process group on drop unless the child was reaped.
struct GroupGuard(Option<i32>);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(pgid) = self.0 {
            kill_group(pgid);
        }
    }
}

#[allow(unsafe_code)]
fn kill_group(pgid: i32) {
    // SAFETY: killpg only sends a signal; a stale group id fails with ESRCH.
    unsafe {
        libc::killpg(pgid, libc::SIGKILL);
    }
}

async fn read_capped(mut r: impl AsyncRead + Unpin) -> (Vec<u8>, bool) {
    let mut kept = Vec::new();
    let mut buf = [0u8; 8192];
    let mut truncated = false;
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let room = CAP.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
                truncated |= n > room;
            }
        }
    }
    (kept, truncated)
}

impl Probe for CommandProbe {
    fn target(&self) -> String {
        self.script.clone()
    }

    fn side_effects(&self) -> bool {
        true
    }

    fn observe(&self) -> BoxFuture<'_, Result<Observation, ProbeError>> {
        Box::pin(async move {
            let t = Instant::now();
            let mut cmd = tokio::process::Command::new(&self.shell);
            cmd.arg("-c")
                .arg(&self.script)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .process_group(0)
                .kill_on_drop(true);
            for (k, v) in self.bound.iter().chain(&self.env) {
                cmd.env(k, v);
            }
            if let Some(dir) = &self.cwd {
                cmd.current_dir(dir);
            }
            let mut child = cmd.spawn().map_err(|e| {
                ProbeError::Io(format!(
                    "cannot start {}: {}",
                    self.shell,
                    crate::net::io_reason(&e)
                ))
            })?;
            let mut guard = GroupGuard(child.id().and_then(|p| i32::try_from(p).ok()));
            let out = child.stdout.take().map(read_capped);
            let err = child.stderr.take().map(read_capped);
            let (status, (stdout, out_cut), (stderr, err_cut)) = tokio::join!(
                child.wait(),
                async {
                    match out {
                        Some(f) => f.await,
                        None => (Vec::new(), false),
                    }
                },
                async {
                    match err {
                        Some(f) => f.await,
                        None => (Vec::new(), false),
                    }
                }
            );
            let status = status.map_err(|e| ProbeError::Io(e.to_string()))?;
            // reaped: nothing left of the group's leader; kill stragglers anyway
            if let Some(pgid) = guard.0.take() {
                kill_group(pgid);
            }
            let stdout = String::from_utf8_lossy(&stdout).into_owned();
            let stderr = String::from_utf8_lossy(&stderr).into_owned();
            let mut obs = json!({
                "exit_code": status.code().map_or(Value::Null, |c| json!(c)),
                "signal": std::os::unix::process::ExitStatusExt::signal(&status),
                "stdout": stdout,
                "stderr": stderr,
                "stdout_truncated": out_cut,
                "stderr_truncated": err_cut,
                "duration_ms": millis(t.elapsed()),
                "json": serde_json::from_str::<Value>(stdout.trim()).ok(),
            });
            // with no `# Expected:` line there is nothing to contradict
            obs["expected"] = json!(self.expected);
            obs["expected_match"] = json!(
                self.expected
                    .as_ref()
                    .is_none_or(|e| expected_matches(e, &stdout))
            );
            Ok(obs)
        })
    }
}

/// Trimmed stdout equals the expected text; when both parse as JSON, the
/// expected value must be contained in the actual one.
pub(crate) fn expected_matches(expected: &str, stdout: &str) -> bool {
    let (e, a) = (expected.trim(), stdout.trim());
    if let (Ok(ev), Ok(av)) = (
        serde_json::from_str::<Value>(e),
        serde_json::from_str::<Value>(a),
    ) {
        return subset(&ev, &av);
    }
    let norm = |s: &str| s.lines().map(str::trim_end).collect::<Vec<_>>().join("\n");
    norm(e) == norm(a)
}

fn subset(expected: &Value, actual: &Value) -> bool {
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => e
            .iter()
            .all(|(k, v)| a.get(k).is_some_and(|av| subset(v, av))),
        (Value::Array(e), Value::Array(a)) => {
            e.len() == a.len() && e.iter().zip(a).all(|(x, y)| subset(x, y))
        }
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => expected == actual,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Vars;
    use std::time::Duration;

    fn probe(script: &str, expected: Option<&str>, vars: &Vars) -> Box<dyn Probe> {
        let t = toml::Table::new();
        let spec = Spec {
            kind: "command",
            table: &t,
            vars,
            commands: vec![(script.to_string(), expected.map(str::to_string))],
            timeout: crate::DEFAULT_TIMEOUT,
        };
        build(&spec).expect("spec")
    }

    #[tokio::test]
    async fn exit_code_output_and_expected_line() {
        let vars = Vars::new();
        let obs = probe(
            "echo '{\"status\":\"healthy\",\"version\":\"v1\"}'; echo oops >&2; exit 3",
            Some("{\"status\":\"healthy\"}"),
            &vars,
        )
        .observe()
        .await
        .expect("ran");
        assert_eq!(obs["exit_code"], 3);
        assert_eq!(obs["stderr"], "oops\n");
        assert_eq!(obs["json"]["version"], "v1");
        assert_eq!(obs["expected_match"], true, "expected JSON is a subset");
        let obs = probe("echo 200", Some("404"), &vars)
            .observe()
            .await
            .expect("ran");
        assert_eq!(obs["expected_match"], false);
    }

    #[tokio::test]
    async fn placeholders_are_values_not_code() {
        let mut vars = Vars::new();
        vars.set("NAME", "x; echo INJECTED");
        let obs = probe("echo [NAME]", None, &vars)
            .observe()
            .await
            .expect("ran");
        assert_eq!(obs["stdout"], "x; echo INJECTED\n");
    }

    #[tokio::test]
    async fn output_is_capped() {
        let vars = Vars::new();
        let obs = probe("head -c 1000000 /dev/zero | tr '\\0' a", None, &vars)
            .observe()
            .await
            .expect("ran");
        assert_eq!(obs["stdout"].as_str().map(str::len), Some(CAP));
        assert_eq!(obs["stdout_truncated"], true);
    }

    #[tokio::test]
    async fn cancelling_kills_the_whole_process_group() {
        let dir = std::env::temp_dir().join(format!("golive-pg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let marker = dir.join("survivor");
        let vars = Vars::new();
        // a grandchild that would write the marker after 2 s
        let script = format!("(sleep 2; touch {}) & sleep 30", marker.display());
        let p = probe(&script, None, &vars);
        let r = tokio::time::timeout(Duration::from_millis(300), p.observe()).await;
        assert!(r.is_err(), "the command was still running");
        tokio::time::sleep(Duration::from_millis(2500)).await;
        assert!(
            !marker.exists(),
            "a process of the group survived the timeout"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn expected_comparison() {
        assert!(expected_matches("hi", "hi\n"));
        assert!(expected_matches("{\"a\":1}", "{\"a\":1.0,\"b\":2}"));
        assert!(!expected_matches("{\"a\":1,\"c\":3}", "{\"a\":1}"));
        assert!(!expected_matches("200", "404"));
    }
}
