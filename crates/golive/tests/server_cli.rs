//! `golive serve` as a process, and the lifecycle commands given against it
//! with `--server` and a token: the same lines and exit codes as against a
//! local store, no `--as`, the token naming who acts.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};

struct Served {
    child: Child,
    url: String,
    dir: PathBuf,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn golive(dir: &PathBuf, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_golive"));
    c.args(args)
        .current_dir(dir)
        .env(
            "GOLIVE_STORE",
            format!("sqlite://{}", dir.join("golive.db").display()),
        )
        .env_remove("GOLIVE_SERVER")
        .env_remove("GOLIVE_TOKEN");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("golive runs")
}

fn out(o: &Output) -> (Option<i32>, String, String) {
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// The last line of what `golive users add` printed: the token.
fn user(dir: &PathBuf, name: &str, role: &str) -> String {
    let o = golive(dir, &["users", "add", name, "--role", role], &[]);
    let (code, stdout, stderr) = out(&o);
    assert_eq!(code, Some(0), "{stderr}");
    let token = stdout.lines().last().unwrap().to_string();
    assert!(token.starts_with("glv_") && token.len() == 68, "{stdout}");
    token
}

fn serve(dir: PathBuf) -> Served {
    let mut child = Command::new(env!("CARGO_BIN_EXE_golive"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .current_dir(&dir)
        .env(
            "GOLIVE_STORE",
            format!("sqlite://{}", dir.join("golive.db").display()),
        )
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("golive serve");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let url = loop {
        let l = lines.next().expect("serve says where it listens").unwrap();
        if let Some(rest) = l.strip_prefix("golive: serving ") {
            break rest
                .split_whitespace()
                .next()
                .unwrap()
                .trim_end_matches('/')
                .to_string();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    Served { child, url, dir }
}

#[test]
fn the_lifecycle_commands_through_a_server_say_what_they_say_locally() {
    let dir = std::env::temp_dir().join(format!("golive-server-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("mini.md"),
        include_str!("../../golive-server/tests/fixtures/mini.md"),
    )
    .unwrap();
    let rm = user(&dir, "Rene Release", "Release Manager");
    let qa = user(&dir, "Quinn Tester", "QA Engineer");
    // the tokens are kept hashed, and listed by id only
    let list = out(&golive(&dir, &["users", "list"], &[])).1;
    assert!(
        list.contains("Rene Release: Release Manager") && !list.contains(&rm),
        "{list}"
    );
    // a roster file's people, imported: a token for each one new, roles
    // changed for one known
    std::fs::write(
        dir.join("roster.toml"),
        "[[person]]\nname = \"Rene Release\"\nroles = [\"Release Manager\", \"QA Engineer\"]\n\n[[person]]\nname = \"Ola Oncall\"\nroles = [\"DevOps Engineer\"]\ncontact = \"ola@example.test\"\n",
    )
    .unwrap();
    let (code, imported, stderr) = out(&golive(&dir, &["users", "import", "roster.toml"], &[]));
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        imported.contains("Rene Release: roles now Release Manager, QA Engineer"),
        "{imported}"
    );
    assert!(
        imported.contains("Ola Oncall: added with DevOps Engineer; token glv_"),
        "{imported}"
    );
    let list = out(&golive(&dir, &["users", "list"], &[])).1;
    assert!(list.contains("Ola Oncall: DevOps Engineer"), "{list}");
    // a run on this machine records the deployment and registers its runbook
    let (code, _, stderr) = out(&golive(&dir, &["run", "mini.md"], &[]));
    assert_eq!(code, Some(0), "{stderr}");
    let runbooks = out(&golive(&dir, &["runbooks", "list"], &[])).1;
    assert!(runbooks.contains(" mini.md (added "), "{runbooks}");
    let s = serve(dir.clone());
    let remote = |token: &str| {
        vec![
            ("GOLIVE_SERVER", s.url.clone()),
            ("GOLIVE_TOKEN", token.to_string()),
        ]
    };
    let env = |v: &Vec<(&'static str, String)>| {
        v.iter().map(|(k, v)| (*k, v.clone())).collect::<Vec<_>>()
    };
    let run = |args: &[&str], token: &str| {
        let e = env(&remote(token));
        let e: Vec<(&str, &str)> = e.iter().map(|(k, v)| (*k, v.as_str())).collect();
        out(&golive(&s.dir, args, &e))
    };

    // signed through the server, no --as: the token says who
    let (code, stdout, stderr) = run(&["sign", "1.1.1"], &rm);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stdout.starts_with(
            "1.1.1 Release tagged signed by Rene Release as Release Manager in deployment d-"
        ),
        "{stdout}"
    );
    // a refusal: exit 1, the lifecycle's words, as locally
    let (code, _, stderr) = run(&["sign", "1.1.2", "--role", "Release Manager"], &qa);
    assert_eq!(code, Some(1));
    assert_eq!(
        stderr.trim(),
        "golive: refused: Quinn Tester does not hold the role Release Manager (holds: QA Engineer); nothing was recorded"
    );
    let (code, _, stderr) = run(&["sign", "1.1.1", "--role", "QA Engineer"], &qa);
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("is for the Release Manager to sign, not the QA Engineer"),
        "{stderr}"
    );
    // a bad token: exit 2
    let (code, _, stderr) = run(&["status"], "glv_nope");
    assert_eq!(code, Some(2));
    assert!(
        stderr.contains("401") && stderr.contains("not valid"),
        "{stderr}"
    );

    // status and report, the same text as from the local store
    let (code, through, _) = run(&["status"], &rm);
    assert_eq!(code, Some(0));
    let local = out(&golive(&s.dir, &["status"], &[])).1;
    let strip = |t: &str| {
        t.lines()
            .filter(|l| !l.contains(" ago") && !l.contains("UTC"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(strip(&through), strip(&local));
    assert!(through.contains("1/2"), "{through}");
    let (code, md, _) = run(&["report", "--format", "md"], &rm);
    assert_eq!(code, Some(0));
    assert!(
        md.contains("Rene Release"),
        "the filled document names the signer"
    );
    let (code, json_status, _) = run(&["status", "--format", "json"], &rm);
    assert_eq!(code, Some(0));
    let v: serde_json::Value = serde_json::from_str(&json_status).unwrap();
    assert_eq!(v["state"], "PRE-DEPLOYMENT");
}

#[test]
fn sign_offs_signed_with_ssh_keys_through_a_server() {
    let dir = std::env::temp_dir().join(format!("golive-server-cli-ssh-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("mini.md"),
        include_str!("../../golive-server/tests/fixtures/mini.md"),
    )
    .unwrap();
    for name in ["rene", "mallory"] {
        let o = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"])
            .arg(dir.join(name))
            .output()
            .expect("ssh-keygen (openssh-client)");
        assert!(o.status.success());
    }
    // the key, given as its .pub file
    let pubfile = dir.join("rene.pub").display().to_string();
    let (code, stdout, stderr) = out(&golive(
        &dir,
        &[
            "users",
            "add",
            "Rene Release",
            "--role",
            "Release Manager",
            "--ssh-key",
            &pubfile,
        ],
        &[],
    ));
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stdout.contains("Rene Release signs with SHA256:"),
        "{stdout}"
    );
    let rm = stdout.lines().last().unwrap().to_string();
    // a key that is not one
    let (code, _, stderr) = out(&golive(
        &dir,
        &[
            "users",
            "add",
            "Bad Key",
            "--role",
            "QA Engineer",
            "--ssh-key",
            "ssh-ed25519 nonsense",
        ],
        &[],
    ));
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("not an SSH public key"), "{stderr}");
    let (code, _, stderr) = out(&golive(&dir, &["run", "mini.md"], &[]));
    assert_eq!(code, Some(0), "{stderr}");
    let s = serve(dir.clone());
    let env = [
        ("GOLIVE_SERVER", s.url.as_str()),
        ("GOLIVE_TOKEN", rm.as_str()),
    ];
    let key = |n: &str| dir.join(n).display().to_string();
    // signed with another key: refused, nothing recorded
    let (code, _, stderr) = out(&golive(
        &dir,
        &["sign", "1.1.1", "--ssh-key", &key("mallory")],
        &env,
    ));
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("not one of the person's keys"), "{stderr}");
    // with the person's key, fetched, signed here, taken there
    let (code, stdout, stderr) = out(&golive(
        &dir,
        &["sign", "1.1.1", "--ssh-key", &key("rene")],
        &env,
    ));
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stdout.contains("signed by Rene Release as Release Manager"),
        "{stdout}"
    );
    // the record verifies with the roster's key for the person
    let roster = dir.join("roster.toml");
    std::fs::write(
        &roster,
        format!(
            "[[person]]\nname = \"Rene Release\"\nroles = [\"Release Manager\"]\nssh_keys = [\"{}\"]\n",
            std::fs::read_to_string(dir.join("rene.pub")).unwrap().trim()
        ),
    )
    .unwrap();
    let (code, stdout, stderr) = out(&golive(&dir, &["audit", "verify"], &[]));
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("1 signed sign-off(s)"), "{stdout}");
    drop(s);
}
