//! The deployment record and the lifecycle's rules, against the real binary:
//! the deployment's own row inside the chain, a truncated tail found with a
//! kept head, decisions set by `decide` only, a step never run twice, and
//! edits of the runbook that do not orphan the open deployment. On SQLite
//! (edited with `sqlite3`) and PostgreSQL (edited with `psql`).

mod common;

use common::standin::database_url;
use serde_json::Value;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

/// A drill runbook in a folder of its own, and the store its deployments
/// are recorded in.
struct Env {
    dir: PathBuf,
    store: String,
}

const DRILL: &str = "# Record drill\n\n**Status:** PENDING\n\n## Pre-Deployment Checklist\n\n- [ ] **Workspace present**\n  ```golive\n  check     = \"file\"\n  path      = \"[WORK]\"\n  expect    = \"exists\"\n  auto_sign = true\n  ```\n\n## Go/No-Go Decision\n\n- [ ] **GO** - Proceed\n- [ ] **NO-GO** - Abort\n\n**Sign-offs:**\n- Deployment Lead: ________________ Date: ________\n\n## Deployment Procedure\n\n### Phase 1: Ship (5 minutes)\n\n";

/// The drill's Status Update Template.
const TEMPLATE: &str = "\n## Communication\n\n**Status Update Template:**\n```\nSTATUS - [TIMESTAMP]\nPhase: [CURRENT_PHASE]\nProgress: [X]/[Y] steps complete\n```\n";

/// The drill's one step: it writes the deployment's target into a file.
const POINT: &str = "**Step 1.1: Point at the target**\n```bash\necho [TARGET] >> [WORK]/targets.log\n```\n- [ ] Pointed\n";

/// A step that counts its runs, then waits until the test lets it end.
const WAIT: &str = "**Step 1.1: Count and wait**\n```bash\necho ran >> [WORK]/count.log\nfor i in $(seq 600); do [ -e [WORK]/release ] && break; sleep 0.1; done\n```\n- [ ] Counted\n";

impl Env {
    fn new(tag: &str, postgres: bool) -> Env {
        let dir = std::env::temp_dir().join(format!(
            "golive-record-{tag}-{}-{}",
            std::process::id(),
            if postgres { "pg" } else { "sqlite" }
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        let store = if postgres {
            database_url()
        } else {
            format!("sqlite://{}", dir.join("golive.db").display())
        };
        let env = Env { dir, store };
        env.write_drill(POINT);
        std::fs::write(
            env.dir.join("roster.toml"),
            "[[person]]\nname = \"Lead Signer\"\nroles = [\"Deployment Lead\"]\n",
        )
        .expect("roster");
        env
    }

    fn runbook(&self) -> String {
        self.dir.join("drill.md").display().to_string()
    }

    fn write_drill(&self, procedure: &str) {
        std::fs::write(self.runbook(), format!("{DRILL}{procedure}{TEMPLATE}")).expect("runbook");
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_golive"));
        c.args(args)
            .current_dir(&self.dir)
            .env("GOLIVE_STORE", &self.store);
        c
    }

    fn golive(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("golive runs")
    }

    /// `golive run` of the drill, with its variables.
    fn run_args(&self, extra: &[&str]) -> Vec<String> {
        let mut args: Vec<String> = vec![
            "run".into(),
            self.runbook(),
            "--var".into(),
            format!("WORK={}", self.dir.display()),
            "--var".into(),
            "TARGET=staging".into(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    }

    fn run(&self, extra: &[&str]) -> Output {
        let args = self.run_args(extra);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.golive(&args)
    }

    /// A new deployment of the drill, taken to GO; its id.
    fn deployment_at_go(&self) -> String {
        let out = self.run(&["--new"]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let id = deployment_id(&stderr(&out));
        let out = self.golive(&[
            "decide",
            &id,
            "go",
            "--as",
            "Lead Signer",
            "--role",
            "Deployment Lead",
        ]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        id
    }

    /// SQL with the database's own tool, as an insider would run it.
    fn sql(&self, sql: &str) {
        let out = match self.store.strip_prefix("sqlite://") {
            Some(path) => Command::new("sqlite3").arg(path).arg(sql).output(),
            None => Command::new("psql")
                .args([
                    self.store.as_str(),
                    "-v",
                    "ON_ERROR_STOP=1",
                    "-q",
                    "-c",
                    sql,
                ])
                .output(),
        }
        .expect("sqlite3 and psql are installed (.ci/run installs them)");
        assert!(out.status.success(), "{sql}: {}", stderr(&out));
    }

    fn events(&self, id: &str) -> Vec<Value> {
        let out = self.golive(&["report", id, "--format", "json"]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let v: Value = serde_json::from_slice(&out.stdout).expect("json");
        v["events"].as_array().cloned().unwrap_or_default()
    }
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The deployment a run recorded in, from what it says.
fn deployment_id(text: &str) -> String {
    regex::Regex::new(r"d-\d{8}T\d{6}-[0-9a-f]{8}")
        .expect("pattern")
        .find(text)
        .unwrap_or_else(|| panic!("no deployment id in: {text}"))
        .as_str()
        .to_string()
}

/// Defect: editing `deployments.vars` or `runbook_sha256` passed `audit
/// verify`, and the next run used the edited variables. Both edits are now
/// found, naming the deployment row, and `golive run` refuses the
/// deployment; nothing of it runs.
#[test]
fn the_deployment_row_is_outside_the_hash_chain() {
    for postgres in [false, true] {
        let env = Env::new("row", postgres);
        for (column, value) in [
            (
                "vars",
                format!(
                    r#"{{"TARGET":"production","WORK":"{}"}}"#,
                    env.dir.display()
                ),
            ),
            ("runbook_sha256", "ab".repeat(32)),
        ] {
            let id = env.deployment_at_go();
            let out = env.golive(&["audit", "verify", &id]);
            assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
            env.sql(&format!(
                "UPDATE deployments SET {column} = '{value}' WHERE id = '{id}'"
            ));
            let out = env.golive(&["audit", "verify", &id]);
            assert_eq!(out.status.code(), Some(1), "{column}: {}", stdout(&out));
            assert!(
                stdout(&out).contains("TAMPERED: the deployment row was edited"),
                "{column}: {}",
                stdout(&out)
            );
            let out = env.run(&["--allow-commands"]);
            let err = stderr(&out);
            assert_eq!(out.status.code(), Some(2), "{column}: {err}");
            assert!(
                err.contains(&format!(
                    "deployment {id}'s row no longer matches its record"
                )) && err.contains("golive audit verify"),
                "{column}: {err}"
            );
            assert!(
                !env.dir.join("targets.log").exists(),
                "{column}: the step ran with the edited row"
            );
        }
    }
}

/// The head, `SEQ:HASH`, as `golive status` prints it.
fn printed_head(text: &str) -> String {
    regex::Regex::new(r"Head: (\d+:[0-9a-f]{16})\b")
        .expect("pattern")
        .captures(text)
        .unwrap_or_else(|| panic!("no head in: {text}"))[1]
        .to_string()
}

/// Defect: rows deleted at the end, with the head set to the new last row,
/// passed `audit verify`. It still does (nothing in the store can tell), but
/// every report and status message carries the head, and `audit verify
/// --head` with a head printed earlier says the chain no longer reaches it.
#[test]
fn a_truncated_tail_goes_unseen() {
    let env = Env::new("tail", false);
    let id = env.deployment_at_go();
    let out = env.run(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let status = stdout(&env.golive(&["status", &id]));
    let kept = printed_head(&status);
    let events = env.events(&id);
    let last = events.last().expect("events");
    assert_eq!(
        kept,
        format!(
            "{}:{}",
            last["seq"],
            &last["hash"].as_str().expect("hash")[..16]
        )
    );
    // the head in the status message and every report format
    for args in [&["--message"][..], &["--format", "json"]] {
        let mut all = vec!["status", id.as_str()];
        all.extend_from_slice(args);
        let out = env.golive(&all);
        assert!(stdout(&out).contains(&kept), "{args:?}: {}", stdout(&out));
    }
    for format in ["md", "json", "junit", "html"] {
        let out = env.golive(&["report", &id, "--format", format]);
        assert!(stdout(&out).contains(&kept), "{format}: {}", stdout(&out));
    }
    let out = env.golive(&["audit", "verify", &id, "--head", &kept]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));

    // the tail cut, and the head set back to the new last row
    let n = events.len();
    let new_last = &events[n - 3];
    env.sql(&format!(
        "DELETE FROM events WHERE deployment_id = '{id}' AND seq > {}; UPDATE deployments SET head_seq = {}, head_hash = '{}' WHERE id = '{id}'",
        new_last["seq"],
        new_last["seq"],
        new_last["hash"].as_str().expect("hash")
    ));
    // the kept state, left as it was, is now ahead of the chain: verify
    // says so
    let out = env.golive(&["audit", "verify", &id]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("KEPT STATE AHEAD OF THE CHAIN"),
        "{}",
        stdout(&out)
    );
    // rebuilt from the cut chain as well, the chain alone cannot know
    let out = env.golive(&["audit", "rebuild", &id]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("rebuilt from the chain's"),
        "{}",
        stdout(&out)
    );
    let out = env.golive(&["audit", "verify", &id]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "alone it cannot know: {}",
        stdout(&out)
    );
    let out = env.golive(&["audit", "verify", &id, "--head", &kept]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("no longer reaches the kept head"),
        "{}",
        stdout(&out)
    );
    // a head that is not one is bad input, named
    let out = env.golive(&["audit", "verify", &id, "--head", "12:abc"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--head"), "{}", stderr(&out));
}

/// Defect: `golive sign 2.1` on the decision stage's GO and NO-GO items was
/// accepted, and the filled report then showed both boxes ticked while no
/// decision was taken. They are set by `golive decide` only.
#[test]
fn anyone_on_the_roster_can_tick_go_or_no_go() {
    let env = Env::new("tick", false);
    let out = env.run(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let id = deployment_id(&stderr(&out));
    let before = env.events(&id).len();
    for item in ["2.1", "2.2"] {
        let out = env.golive(&[
            "sign",
            item,
            "--as",
            "Lead Signer",
            "--role",
            "Deployment Lead",
        ]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{item}: {err}");
        assert!(
            err.contains("golive decide") && err.contains("nothing was recorded"),
            "{item}: {err}"
        );
    }
    assert_eq!(env.events(&id).len(), before, "refusals record nothing");
    let report = stdout(&env.golive(&["report", &id]));
    assert!(
        report.contains("- [ ] **GO** - Proceed") && report.contains("- [ ] **NO-GO** - Abort"),
        "{report}"
    );
}

/// Defect: while one `golive run --allow-commands` was inside a step, a
/// second with `--confirm-rerun` started the same commands again, and
/// without the flag it said the first "did not finish". The second run now
/// says the step is running, and by which process, and never runs it.
#[test]
fn a_step_runs_twice() {
    let env = Env::new("twice", false);
    env.write_drill(WAIT);
    env.deployment_at_go();
    let args = env.run_args(&["--allow-commands"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let first = env
        .command(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("first run");
    let count = env.dir.join("count.log");
    let runs = || {
        std::fs::read_to_string(&count)
            .unwrap_or_default()
            .lines()
            .count()
    };
    // the first run is inside the step once it has counted
    while runs() == 0 {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    for extra in [&[][..], &["--confirm-rerun"][..]] {
        let mut args = env.run_args(&["--allow-commands"]);
        args.extend(extra.iter().map(|s| s.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut second = env
            .command(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("second run");
        // it ends by itself, or it is running the step a second time
        let status = loop {
            if let Some(status) = second.try_wait().expect("wait") {
                break Some(status);
            }
            if runs() > 1 {
                break None;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        let Some(status) = status else {
            std::fs::write(env.dir.join("release"), "").expect("release");
            let _ = second.wait();
            panic!("{extra:?}: the step's commands ran a second time");
        };
        let out = second.wait_with_output().expect("output");
        let err = stderr(&out);
        assert!(status.success(), "{extra:?}: {err}");
        assert!(
            err.contains("3.1.1 is running now")
                && err.contains(&format!("pid {}", first.id()))
                && !err.contains("did not finish"),
            "{extra:?}: {err}"
        );
    }
    // nor is it marked done by hand meanwhile
    let out = env.golive(&["done", "3.1.1", "--as", "Lead Signer"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("3.1.1 is running now"), "{err}");
    std::fs::write(env.dir.join("release"), "").expect("release");
    let out = first.wait_with_output().expect("first run ends");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("3.1.1 Step 1.1: Count and wait done by golive"),
        "{}",
        stderr(&out)
    );
    assert_eq!(runs(), 1, "the step's commands ran exactly once");
}

/// Defect: after the runbook changed, `golive run` started a new deployment
/// silently, and reverting the file then started a third instead of going
/// on with the one past GO. A run now refuses to leave a deployment past GO
/// behind: it says what changed and how to continue it (restore the
/// runbook) or start another (`--new`); restoring continues it.
#[test]
fn edits_orphan_the_open_deployment() {
    let env = Env::new("edit", false);
    let id = env.deployment_at_go();
    let original = std::fs::read_to_string(env.runbook()).expect("runbook");
    std::fs::write(env.runbook(), format!("{original}\nA late edit.\n")).expect("edit");
    let out = env.run(&[]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!("changed since deployment {id} was started"))
            && err.contains("restore")
            && err.contains("--new"),
        "{err}"
    );
    let db = env.dir.join("golive.db");
    let out = Command::new("sqlite3")
        .arg(&db)
        .arg("SELECT id FROM deployments")
        .output()
        .expect("sqlite3");
    assert_eq!(stdout(&out).trim(), id, "no deployment was started");
    // restored, the run goes on with the deployment past GO
    std::fs::write(env.runbook(), &original).expect("restore");
    let out = env.run(&[]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains(&format!("recorded in the open deployment {id}")),
        "{err}"
    );
    // edited again, --new starts another on purpose
    std::fs::write(env.runbook(), format!("{original}\nA late edit.\n")).expect("edit");
    let out = env.run(&["--new"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert_ne!(deployment_id(&err), id);
}

/// Before GO, a changed runbook starts a new deployment, and says so and how
/// to go back to the one before; restoring the runbook goes back to it.
#[test]
fn a_changed_runbook_before_go_starts_a_new_deployment_and_says_so() {
    let env = Env::new("edit-pre", false);
    let out = env.run(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let first = deployment_id(&stderr(&out));
    let original = std::fs::read_to_string(env.runbook()).expect("runbook");
    std::fs::write(env.runbook(), format!("{original}\nA late edit.\n")).expect("edit");
    let out = env.run(&[]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains(&format!("changed since deployment {first} was started")),
        "{err}"
    );
    let second = regex::Regex::new(r"recorded as deployment (d-\S+)")
        .expect("pattern")
        .captures(&err)
        .unwrap_or_else(|| panic!("{err}"))[1]
        .to_string();
    assert_ne!(second, first);
    std::fs::write(env.runbook(), &original).expect("restore");
    let out = env.run(&[]);
    let err = stderr(&out);
    assert!(
        err.contains(&format!("recorded in the open deployment {first}")),
        "{err}"
    );
}
