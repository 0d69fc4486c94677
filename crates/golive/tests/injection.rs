//! A placeholder's value never runs as code, in a command check or in a
//! procedure step, whatever the author wrote around the placeholder.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const HOSTILE: &str = "DOMAIN=x; touch pwned";

fn workdir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("golive-inject-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    dir
}

fn golive(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_golive"))
        .args(args)
        .current_dir(dir)
        .env(
            "GOLIVE_STORE",
            format!("sqlite://{}", dir.join("golive.db").display()),
        )
        .output()
        .expect("golive runs")
}

fn text(out: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The reproduction: `echo "$(echo [DOMAIN])"` with `DOMAIN=x; touch pwned`
/// created the file.
#[test]
fn shell_injection_through_a_placeholder_in_a_command_check() {
    let dir = workdir("check");
    std::fs::write(
        dir.join("drill.md"),
        "# Drill\n\n## Checks (1 item)\n\n### Echo (1 item)\n\n\
- [ ] **Echo the domain**\n  ```golive\n  check   = \"command\"\n  \
command = 'echo \"$(echo [DOMAIN])\" && sh -c \"echo [DOMAIN]\" && eval echo [DOMAIN]'\n  \
expect  = 'stdout == \"x; touch pwned\\nx; touch pwned\\nx; touch pwned\\n\"'\n  ```\n",
    )
    .expect("runbook");
    let plan = golive(&dir, &["plan", "drill.md", "--var", HOSTILE]);
    assert_eq!(plan.status.code(), Some(0), "{}", text(&plan));
    let plan = text(&plan);
    assert!(
        plan.contains("echo \"$(echo \"${GOLIVE_VAR_DOMAIN}\")\"") && !plan.contains("echo x;"),
        "the value is spliced into the script: {plan}"
    );
    let out = golive(
        &dir,
        &["run", "drill.md", "--allow-commands", "--var", HOSTILE],
    );
    assert!(!dir.join("pwned").exists(), "the value ran: {}", text(&out));
    assert_eq!(
        out.status.code(),
        Some(0),
        "the value reached the command intact: {}",
        text(&out)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The same line as a procedure step's command block, run after GO.
#[test]
fn shell_injection_through_a_placeholder_in_a_procedure_step() {
    let dir = workdir("step");
    std::fs::write(
        dir.join("drill.md"),
        "# Drill\n\n## Go/No-Go Decision\n\n- [ ] **GO** - Proceed\n- [ ] **NO-GO** - Abort\n\n\
**Sign-offs:**\n- Deployment Lead: ________________ Date: ________\n\n## Deployment Procedure\n\n\
### Phase 1: Echo (5 minutes)\n\n**Step 1.1: Echo the domain**\n```bash\necho \"$(echo [DOMAIN])\"\n\
# Expected: x; touch pwned\n```\n- [ ] Domain printed\n",
    )
    .expect("runbook");
    std::fs::write(
        dir.join("roster.toml"),
        "[[person]]\nname = \"Lead Signer\"\nroles = [\"Deployment Lead\"]\n",
    )
    .expect("roster");
    let out = golive(&dir, &["run", "drill.md", "--var", HOSTILE]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = golive(
        &dir,
        &[
            "decide",
            "go",
            "--as",
            "Lead Signer",
            "--role",
            "Deployment Lead",
            "--roster",
            "roster.toml",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = golive(
        &dir,
        &["run", "drill.md", "--allow-commands", "--var", HOSTILE],
    );
    assert!(!dir.join("pwned").exists(), "the value ran: {}", text(&out));
    assert!(
        text(&out).contains("2.1.1 Step 1.1: Echo the domain done by golive"),
        "{}",
        text(&out)
    );
    let report = golive(&dir, &["report", "--format", "json"]);
    let report: serde_json::Value = serde_json::from_slice(&report.stdout).expect("json report");
    let done = report["events"]
        .as_array()
        .expect("events")
        .iter()
        .any(|e| e["kind"] == "step.done");
    assert!(done, "the step ran to its expected output: {report}");
    let _ = std::fs::remove_dir_all(&dir);
}
