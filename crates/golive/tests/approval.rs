//! The approval rules as `golive status` shows them: a sign-off gone stale
//! after a failing run, and an approval pending for a second person.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn golive(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_golive"))
        .args(args)
        .current_dir(dir)
        .env(
            "GOLIVE_STORE",
            format!("sqlite://{}", dir.join("golive.db").display()),
        )
        .env_remove("GOLIVE_NOTIFY")
        .env_remove("GOLIVE_SERVER")
        .env_remove("GOLIVE_TOKEN")
        .output()
        .expect("golive runs")
}

fn ok(dir: &Path, args: &[&str]) -> String {
    let o = golive(dir, args);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(o.status.code(), Some(0), "{args:?}: {text}");
    text
}

struct Dir(PathBuf);

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn status_shows_stale_sign_offs_and_pending_approvals() {
    let dir = Dir(std::env::temp_dir().join(format!("golive-cli-rules-{}", std::process::id())));
    let _ = std::fs::remove_dir_all(&dir.0);
    std::fs::create_dir_all(&dir.0).unwrap();
    let d = &dir.0;
    std::fs::write(d.join("artifact"), "v2\n").unwrap();
    std::fs::write(
        d.join("rules.md"),
        format!(
            "# Rules\n\n## Pre-Deployment Checklist\n\n### Readiness (2 items)\n\n\
- [ ] **Artifact present**\n  - **Responsible:** Release Manager\n  ```golive\n  check = \"file\"\n  path = \"{}/artifact\"\n  ```\n\n\
- [ ] **Security review**\n  - **Responsible:** 2 of Security Engineer\n\n\
## Pre-Deployment Go/No-Go Decision\n\n**Sign-offs:**\n- Deployment Lead: ________\n\n\
## Appendices\n\n### A. Contact Information\n\n\
- Deployment Lead: Dana Lead (lead@rules.example.test)\n\
- Release Manager: Rene Release (rm@rules.example.test)\n\
- Security Engineer: Sam Secure (sam@rules.example.test)\n\
- Security Engineer: Sasha Shield (sasha@rules.example.test)\n",
            d.display()
        ),
    )
    .unwrap();
    ok(d, &["run", "rules.md"]);
    ok(
        d,
        &[
            "sign",
            "1.1.1",
            "--as",
            "Rene Release",
            "--role",
            "Release Manager",
        ],
    );
    ok(
        d,
        &[
            "sign",
            "1.1.2",
            "--as",
            "Sam Secure",
            "--role",
            "Security Engineer",
        ],
    );
    let st = ok(d, &["status"]);
    assert!(st.contains("Pending approvals (1):"), "{st}");
    assert!(
        st.contains("1.1.2 Security review: signed by Sam Secure since"),
        "{st}"
    );
    assert!(st.contains("waiting for Security Engineer"), "{st}");
    assert!(!st.contains("Stale ("), "{st}");
    // the artifact goes: the next run fails its check, Rene's sign-off is stale
    std::fs::remove_file(d.join("artifact")).unwrap();
    let o = golive(d, &["run", "rules.md"]);
    assert_eq!(o.status.code(), Some(1), "a failing check");
    let st = ok(d, &["status"]);
    assert!(st.contains("Stale (1):"), "{st}");
    assert!(st.contains("1.1.1 Artifact present — Rene Release"), "{st}");
    let json: serde_json::Value =
        serde_json::from_str(&ok(d, &["status", "--format", "json"])).unwrap();
    assert_eq!(json["stale"][0]["address"], "1.1.1");
    assert_eq!(
        json["pending_approvals"][0]["waiting"],
        serde_json::json!(["Security Engineer"])
    );
}
