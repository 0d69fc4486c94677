//! Crash safety: `golive run` killed with SIGKILL at random instants. After
//! each kill, everything recorded before it is still there, unchanged and
//! once; the next run continues the same deployment; a command the killed run
//! had started is not run again unless asked; the chain verifies, and the
//! state kept by each append is the replay of the chain (for runs, and for a
//! watch appending evaluations). `GOLIVE_CRASH_TRIALS=200` makes the longer
//! run.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

struct Lcg(u64);
impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

fn runbook(dir: &Path) -> PathBuf {
    let mut text =
        String::from("# Crash drill\n\n## Checks (6 items)\n\n### Commands (6 items)\n\n");
    for n in 1..=6 {
        text.push_str(&format!(
            "- [ ] **Slow check {n}**\n  ```golive\n  check   = \"command\"\n  command = \"sleep 0.05; echo {n} >> {}\"\n  ```\n\n",
            dir.join("ran.log").display()
        ));
    }
    let path = dir.join("drill.md");
    std::fs::write(&path, text).expect("runbook");
    path
}

fn events(store: &str, runbook: &Path) -> Vec<Value> {
    let out = Command::new(env!("CARGO_BIN_EXE_golive"))
        .args(["report", "--format", "json"])
        .current_dir(runbook.parent().expect("dir"))
        .env("GOLIVE_STORE", store)
        .output()
        .expect("report");
    if !out.status.success() {
        return Vec::new(); // killed before the deployment existed
    }
    let v: Value = serde_json::from_slice(&out.stdout).expect("json");
    v["events"].as_array().cloned().unwrap_or_default()
}

/// `golive audit verify`: the chain holds and the kept state is its replay.
fn kept_is_the_replay(dir: &Path, store: &str, trial: u64) {
    let out = Command::new(env!("CARGO_BIN_EXE_golive"))
        .args(["audit", "verify"])
        .current_dir(dir)
        .env("GOLIVE_STORE", store)
        .output()
        .expect("verify");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "trial {trial}: {text}");
    assert!(
        text.contains("kept state equal to its replay"),
        "trial {trial}: {text}"
    );
}

#[test]
fn killed_runs_lose_nothing_recorded_and_the_next_run_completes() {
    let trials: u64 = std::env::var("GOLIVE_CRASH_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let dir = std::env::temp_dir().join(format!("golive-crash-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let rb = runbook(&dir);
    let store = format!("sqlite://{}", dir.join("golive.db").display());
    let run = |extra: &[&str]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_golive"));
        cmd.args(["run", "drill.md", "--allow-commands", "--concurrency", "1"])
            .args(extra)
            .current_dir(&dir)
            .env("GOLIVE_STORE", &store)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        cmd
    };
    let mut rng = Lcg(0xC0FFEE);
    let mut before: Vec<Value> = Vec::new();
    for trial in 0..trials {
        let mut child = run(&[]).spawn().expect("spawn");
        std::thread::sleep(Duration::from_millis(rng.below(400)));
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        let now = events(&store, &rb);
        assert!(now.len() >= before.len(), "trial {trial}: events were lost");
        assert_eq!(
            &now[..before.len()],
            &before[..],
            "trial {trial}: an earlier event changed"
        );
        let seqs: Vec<i64> = now.iter().map(|e| e["seq"].as_i64().unwrap_or(0)).collect();
        assert_eq!(
            seqs,
            (1..=now.len() as i64).collect::<Vec<_>>(),
            "trial {trial}: each event once, in order"
        );
        if !now.is_empty() {
            kept_is_the_replay(&dir, &store, trial);
        }
        before = now;
    }
    // one deployment throughout: every run continued it
    let first = before.first().cloned();
    // the next run completes it; interrupted commands run again only when asked
    let out = run(&["--confirm-rerun"])
        .stdout(Stdio::piped())
        .output()
        .expect("final run");
    assert_eq!(out.status.code(), Some(0));
    let after = events(&store, &rb);
    assert_eq!(&after[..before.len()], &before[..]);
    assert_eq!(
        after.last().map(|e| e["kind"].clone()),
        Some(Value::from("run.finished"))
    );
    let finals: Vec<&Value> = after[before.len()..]
        .iter()
        .filter(|e| e["kind"] == "check")
        .collect();
    assert_eq!(finals.len(), 6);
    assert!(
        finals.iter().all(|e| e["data"]["outcome"] == "passed"),
        "{finals:?}"
    );
    if let Some(f) = first {
        assert_eq!(f["kind"], "run.started");
    }
    let verify = Command::new(env!("CARGO_BIN_EXE_golive"))
        .args(["audit", "verify"])
        .current_dir(&dir)
        .env("GOLIVE_STORE", &store)
        .output()
        .expect("verify");
    assert_eq!(
        verify.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A command the killed run had started is reported, not run again, until
/// `--confirm-rerun`.
#[test]
fn an_interrupted_command_is_not_rerun_without_confirmation() {
    let dir = std::env::temp_dir().join(format!("golive-rerun-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let text = format!(
        "## Deploy (1 items)\n\n- [ ] **Apply the change**\n  ```golive\n  check   = \"command\"\n  command = \"echo once >> {}; sleep 5\"\n  ```\n",
        dir.join("applied.log").display()
    );
    std::fs::write(dir.join("apply.md"), text).expect("runbook");
    let store = format!("sqlite://{}", dir.join("golive.db").display());
    let golive = |extra: &[&str]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_golive"));
        cmd.args(["run", "apply.md", "--allow-commands"])
            .args(extra)
            .current_dir(&dir)
            .env("GOLIVE_STORE", &store);
        cmd
    };
    let mut child = golive(&[])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    // wait until the command has started, then kill golive
    for _ in 0..100 {
        if dir.join("applied.log").exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    let out = golive(&[]).output().expect("second run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "an earlier run started this command and was interrupted: pass --confirm-rerun"
        ),
        "{err}"
    );
    let ran = std::fs::read_to_string(dir.join("applied.log")).expect("log");
    assert_eq!(ran.lines().count(), 1, "not run again without confirmation");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A watch appends an evaluation (each check's result, the tick, window
/// changes) every few milliseconds, each append updating the kept state in
/// its transaction: killed at any instant, the state kept is the replay of
/// the chain, and the next watch goes on from it.
#[test]
fn a_watch_killed_while_appending_leaves_the_kept_state_equal_to_the_replay() {
    let trials: u64 = std::env::var("GOLIVE_CRASH_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let dir = std::env::temp_dir().join(format!("golive-crash-watch-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(dir.join("up"), "ok\n").expect("file");
    let mut text =
        String::from("# Watch drill\n\n## Post-Deployment Verification Checklist (4 items)\n\n");
    for n in 1..=4 {
        text.push_str(&format!(
            "- [ ] **Check {n}**\n  ```golive\n  check  = \"file\"\n  target = \"{}\"\n  expect = \"exists\"\n  for    = \"30ms\"\n  ```\n\n",
            dir.join(if n % 2 == 0 { "up" } else { "gone" }).display()
        ));
    }
    std::fs::write(dir.join("watch.md"), text).expect("runbook");
    let store = format!("sqlite://{}", dir.join("golive.db").display());
    let mut rng = Lcg(0xBADC0DE);
    let mut before = 0;
    for trial in 0..trials {
        let mut child = Command::new(env!("CARGO_BIN_EXE_golive"))
            .args(["watch", "watch.md", "--interval", "5ms"])
            .current_dir(&dir)
            .env("GOLIVE_STORE", &store)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        std::thread::sleep(Duration::from_millis(30 + rng.below(300)));
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        let now = events(&store, &dir.join("watch.md"));
        assert!(now.len() >= before, "trial {trial}: events were lost");
        if !now.is_empty() {
            kept_is_the_replay(&dir, &store, trial);
        }
        before = now.len();
    }
    assert!(before > 0, "the watches recorded nothing");
    let _ = std::fs::remove_dir_all(&dir);
}
