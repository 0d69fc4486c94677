//! Sign-offs signed with SSH keys made by `ssh-keygen` (ed25519, ecdsa,
//! rsa with rsa-sha2-512): golive's signatures verify with `ssh-keygen -Y
//! verify` from what `golive audit signatures` writes, a signature
//! `ssh-keygen -Y sign` made over golive's payload verifies in golive, and
//! `golive audit verify` names a rewritten event, a chain re-hashed before
//! a signature, a key swapped on the roster and a signature of another
//! namespace, even when the hash chain itself was made to hold.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

struct Env {
    dir: PathBuf,
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Env {
    fn golive(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_golive"))
            .args(args)
            .current_dir(&self.dir)
            .env("GOLIVE_STORE", format!("sqlite://{}", self.db().display()))
            .env_remove("GOLIVE_NOTIFY")
            .env_remove("GOLIVE_SERVER")
            .env_remove("GOLIVE_TOKEN")
            .output()
            .expect("golive runs")
    }

    fn db(&self) -> PathBuf {
        self.dir.join("golive.db")
    }

    fn key(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn public(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.join(format!("{name}.pub")))
            .expect("public key")
            .trim()
            .to_string()
    }
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn keygen(dir: &Path, name: &str, kind: &[&str]) {
    let o = Command::new("ssh-keygen")
        .args(kind)
        .args(["-q", "-N", "", "-C", name, "-f"])
        .arg(dir.join(name))
        .output()
        .expect("ssh-keygen runs (openssh-client)");
    assert!(o.status.success(), "{}", text(&o));
}

fn roster(env: &Env, rene_key: &str) {
    std::fs::write(
        env.dir.join("roster.toml"),
        format!(
            "[[person]]\nname = \"Rene Release\"\nroles = [\"Release Manager\"]\nssh_keys = [\"{rene_key}\"]\n\n\
             [[person]]\nname = \"Dana Lead\"\nroles = [\"Deployment Lead\"]\nssh_keys = [\"{}\"]\n\n\
             [[person]]\nname = \"Emil Manager\"\nroles = [\"Engineering Manager\"]\nssh_keys = [\"{}\"]\n",
            env.public("dana"),
            env.public("emil")
        ),
    )
    .expect("roster");
}

/// A deployment of the mini runbook with three signed sign-offs, Rene's
/// (ed25519), Dana's (ecdsa), Emil's (rsa), and GO signed by Dana and Emil.
fn signed(tag: &str) -> Env {
    let dir = std::env::temp_dir().join(format!("golive-sshsig-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(
        dir.join("mini.md"),
        include_str!("../../golive-server/tests/fixtures/mini.md"),
    )
    .expect("runbook");
    keygen(&dir, "rene", &["-t", "ed25519"]);
    keygen(&dir, "dana", &["-t", "ecdsa", "-b", "256"]);
    keygen(&dir, "emil", &["-t", "rsa", "-b", "2048"]);
    keygen(&dir, "mallory", &["-t", "ed25519"]);
    let env = Env { dir };
    roster(&env, &env.public("rene"));
    let ok = |args: &[&str]| {
        let o = env.golive(args);
        assert_eq!(o.status.code(), Some(0), "{args:?}: {}", text(&o));
    };
    ok(&["run", "mini.md"]);
    let key = |n: &str| env.key(n).display().to_string();
    ok(&[
        "sign",
        "1.1.1",
        "--as",
        "Rene Release",
        "--role",
        "Release Manager",
        "--ssh-key",
        &key("rene"),
    ]);
    ok(&[
        "sign",
        "1.1.2",
        "--as",
        "Dana Lead",
        "--role",
        "Deployment Lead",
        "--ssh-key",
        &key("dana"),
    ]);
    ok(&[
        "sign",
        "1.1.2",
        "--as",
        "Emil Manager",
        "--role",
        "Engineering Manager",
        "--ssh-key",
        &key("emil"),
    ]);
    // the GO decision, signed by both its signers
    ok(&[
        "decide",
        "go",
        "--as",
        "Dana Lead",
        "--role",
        "Deployment Lead",
        "--ssh-key",
        &key("dana"),
    ]);
    ok(&[
        "decide",
        "go",
        "--as",
        "Emil Manager",
        "--role",
        "Engineering Manager",
        "--ssh-key",
        &key("emil"),
    ]);
    env
}

/// An event row: deployment, seq, at, kind, item, actor, data.
type Row = (
    String,
    i64,
    String,
    String,
    Option<String>,
    Option<String>,
    String,
);

/// The events of the store, as rows.
fn rows(db: &Path) -> Vec<Row> {
    let c = rusqlite::Connection::open(db).expect("db");
    let mut st = c
        .prepare("SELECT deployment_id, seq, at, kind, item, actor, data FROM events ORDER BY seq")
        .expect("select");
    st.query_map([], |r| {
        Ok((
            r.get(0)?,
            r.get(1)?,
            r.get(2)?,
            r.get(3)?,
            r.get(4)?,
            r.get(5)?,
            r.get(6)?,
        ))
    })
    .expect("rows")
    .map(|r| r.expect("row"))
    .collect()
}

/// Rewrite event `seq`'s data with `edit`, then hash the whole chain again
/// from the deployment's own row, set its head and drop the kept state: the
/// hash chain holds again, as for someone with write access to the store.
fn rewrite(db: &Path, seq: i64, edit: &dyn Fn(&mut serde_json::Value)) {
    let c = rusqlite::Connection::open(db).expect("db");
    let events = rows(db);
    let genesis: String = {
        // the first event's link is the row's genesis
        c.query_row("SELECT prev_hash FROM events WHERE seq = 1", [], |r| {
            r.get(0)
        })
        .expect("genesis")
    };
    let mut prev = genesis;
    for (id, s, at, kind, item, actor, data) in events {
        let data = if s == seq {
            let mut v: serde_json::Value = serde_json::from_str(&data).expect("json");
            edit(&mut v);
            v.to_string()
        } else {
            data
        };
        let hash = golive_store::event_hash(
            &prev,
            &id,
            s,
            &at,
            &kind,
            item.as_deref(),
            actor.as_deref(),
            &data,
        );
        c.execute(
            "UPDATE events SET data = ?1, prev_hash = ?2, hash = ?3 WHERE deployment_id = ?4 AND seq = ?5",
            rusqlite::params![data, prev, hash, id, s],
        )
        .expect("update");
        c.execute(
            "UPDATE deployments SET head_seq = ?1, head_hash = ?2 WHERE id = ?3",
            rusqlite::params![s, hash, id],
        )
        .expect("head");
        prev = hash;
    }
    c.execute("DELETE FROM deployment_state", [])
        .expect("state");
}

fn signoff_seq(db: &Path, person: &str) -> i64 {
    rows(db)
        .into_iter()
        .find(|r| r.3 == "signoff" && r.5.as_deref() == Some(person))
        .map(|r| r.1)
        .expect("a sign-off")
}

#[test]
fn signed_sign_offs_verify_with_ssh_keygen_and_in_golive() {
    let env = signed("verify");
    let o = env.golive(&["audit", "verify"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        text(&o)
            .contains("5 signed sign-off(s), each verified with its signer's key on the roster"),
        "{}",
        text(&o)
    );
    // a key that is not the person's is refused when signing
    let o = env.golive(&[
        "sign",
        "1.1.2",
        "--as",
        "Rene Release",
        "--role",
        "Release Manager",
        "--ssh-key",
        &env.key("mallory").display().to_string(),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("which is not one of the person's keys on the roster"),
        "{}",
        text(&o)
    );
    assert!(text(&o).contains("nothing was recorded"));

    // what an auditor takes away, checked by ssh-keygen alone
    let out = env.dir.join("audit");
    let o = env.golive(&["audit", "signatures", "--out", &out.display().to_string()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let commands = std::fs::read_to_string(out.join("VERIFY.txt")).expect("VERIFY.txt");
    let lines: Vec<&str> = commands
        .lines()
        .filter(|l| l.starts_with("ssh-keygen"))
        .collect();
    assert_eq!(lines.len(), 5, "{commands}");
    for line in &lines {
        let o = Command::new("sh")
            .arg("-c")
            .arg(line)
            .current_dir(&out)
            .output()
            .expect("sh");
        assert!(o.status.success(), "{line}: {}", text(&o));
        assert!(
            text(&o).contains("Good \"golive\" signature"),
            "{}",
            text(&o)
        );
    }
    // a signature ssh-keygen makes over golive's payload verifies in golive
    let payload = std::fs::read_dir(&out)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "payload"))
        .expect("a payload");
    let bytes = std::fs::read(&payload).unwrap();
    let sign = |namespace: &str| {
        let file = env.dir.join(format!("by-hand-{namespace}"));
        std::fs::write(&file, &bytes).unwrap();
        let o = Command::new("ssh-keygen")
            .args(["-q", "-Y", "sign", "-n", namespace, "-f"])
            .arg(env.key("emil"))
            .arg(&file)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", text(&o));
        std::fs::read_to_string(env.dir.join(format!("by-hand-{namespace}.sig"))).unwrap()
    };
    let sig = sign("golive");
    let key = golive_deploy::sshsig::verify(&bytes, &sig, &[env.public("emil")]).expect("verifies");
    assert!(key.starts_with("SHA256:"), "{key}");
    // and not in another namespace, nor with another key
    let other = sign("other");
    assert!(
        golive_deploy::sshsig::verify(&bytes, &other, &[env.public("emil")])
            .unwrap_err()
            .contains("namespace `other`")
    );
    assert!(
        golive_deploy::sshsig::verify(&bytes, &sig, &[env.public("dana")])
            .unwrap_err()
            .contains("not one of the person's keys")
    );
}

#[test]
fn a_rewritten_event_is_caught_though_the_chain_was_hashed_again() {
    let env = signed("rewritten");
    let seq = signoff_seq(&env.db(), "Dana Lead");
    rewrite(&env.db(), seq, &|v| v["role"] = "Release Manager".into());
    let o = env.golive(&["audit", "verify"]);
    let t = text(&o);
    assert!(
        t.contains("chain intact"),
        "the hash chain was made to hold: {t}"
    );
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(
        t.contains(&format!("SIGNATURE DOES NOT HOLD at event {seq}")) && t.contains("the event was rewritten: it says role `Release Manager`, the signed payload `Deployment Lead`"),
        "{t}"
    );
}

#[test]
fn a_rewritten_decision_is_caught() {
    let env = signed("decision");
    let seq = rows(&env.db())
        .into_iter()
        .find(|r| r.3 == "decision.signature" && r.5.as_deref() == Some("Emil Manager"))
        .map(|r| r.1)
        .expect("Emil's GO");
    rewrite(&env.db(), seq, &|v| v["verdict"] = "NO-GO".into());
    let t = text(&env.golive(&["audit", "verify"]));
    assert!(
        t.contains("the event was rewritten: it says result `NO-GO`, the signed payload `GO`"),
        "{t}"
    );
}

#[test]
fn a_chain_hashed_again_before_a_signature_is_caught() {
    let env = signed("rehashed");
    // an event before every signature changed, every hash after it redone
    rewrite(&env.db(), 1, &|v| v["note"] = "inserted later".into());
    let o = env.golive(&["audit", "verify"]);
    let t = text(&o);
    assert!(t.contains("chain intact"), "{t}");
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert_eq!(
        t.matches("the chain was rewritten before it").count(),
        5,
        "{t}"
    );
}

#[test]
fn a_key_swapped_on_the_roster_is_caught() {
    let env = signed("swapped");
    roster(&env, &env.public("mallory"));
    let o = env.golive(&["audit", "verify"]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    let seq = signoff_seq(&env.db(), "Rene Release");
    assert!(
        t.contains(&format!("SIGNATURE DOES NOT HOLD at event {seq}"))
            && t.contains("which is not one of the person's keys on the roster"),
        "{t}"
    );
}

#[test]
fn a_signature_of_another_namespace_is_caught() {
    let env = signed("namespace");
    let seq = signoff_seq(&env.db(), "Emil Manager");
    // Emil's own key, over the very payload, for another namespace
    let payload = rows(&env.db())
        .into_iter()
        .find(|r| r.1 == seq)
        .map(|r| {
            serde_json::from_str::<serde_json::Value>(&r.6).unwrap()["ssh"]["payload"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .unwrap();
    let file = env.dir.join("p");
    std::fs::write(&file, &payload).unwrap();
    let o = Command::new("ssh-keygen")
        .args(["-q", "-Y", "sign", "-n", "git", "-f"])
        .arg(env.key("emil"))
        .arg(&file)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let sig = std::fs::read_to_string(env.dir.join("p.sig")).unwrap();
    rewrite(&env.db(), seq, &|v| {
        v["ssh"]["signature"] = sig.trim().into()
    });
    let o = env.golive(&["audit", "verify"]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(
        t.contains("signed for the namespace `git`, not golive's (`golive`)"),
        "{t}"
    );
}

/// `args` run in `env`, which must succeed: what golive said.
fn ok(env: &Env, args: &[&str]) -> String {
    let o = env.golive(args);
    assert_eq!(o.status.code(), Some(0), "{args:?}: {}", text(&o));
    text(&o)
}

/// Every `ssh-keygen -Y verify` line `audit signatures` writes, run: how
/// many, each of which must hold.
fn verified_by_ssh_keygen(env: &Env, must_name: &str) -> usize {
    let out = env.dir.join("audit");
    ok(
        env,
        &["audit", "signatures", "--out", &out.display().to_string()],
    );
    let commands = std::fs::read_to_string(out.join("VERIFY.txt")).expect("VERIFY.txt");
    let lines: Vec<&str> = commands
        .lines()
        .filter(|l| l.starts_with("ssh-keygen"))
        .collect();
    assert!(lines.iter().any(|l| l.contains(must_name)), "{commands}");
    for line in &lines {
        let o = Command::new("sh")
            .arg("-c")
            .arg(line)
            .current_dir(&out)
            .output()
            .expect("sh");
        assert!(o.status.success(), "{line}: {}", text(&o));
    }
    lines.len()
}

#[test]
fn a_rollback_signed_with_ssh_keys_verifies_and_a_wrong_key_is_refused() {
    let env = signed("rollback");
    let key = |n: &str| env.key(n).display().to_string();
    // the manual authority, each signing with their own key
    ok(
        &env,
        &[
            "rollback",
            "--as",
            "Dana Lead",
            "--role",
            "Deployment Lead",
            "--reason",
            "errors up",
            "--ssh-key",
            &key("dana"),
        ],
    );
    // a key that is not Emil's is refused, nothing recorded
    let before = rows(&env.db()).len();
    let o = env.golive(&[
        "rollback",
        "--as",
        "Emil Manager",
        "--role",
        "Engineering Manager",
        "--reason",
        "errors up",
        "--ssh-key",
        &key("mallory"),
    ]);
    assert_ne!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        text(&o).contains("not one of the person's keys"),
        "{}",
        text(&o)
    );
    assert_eq!(rows(&env.db()).len(), before);
    ok(
        &env,
        &[
            "rollback",
            "--as",
            "Emil Manager",
            "--role",
            "Engineering Manager",
            "--reason",
            "errors up",
            "--ssh-key",
            &key("emil"),
        ],
    );
    let o = env.golive(&["audit", "verify"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        text(&o).contains("7 signed sign-off(s)"),
        "5 before and the 2 rollback signatures: {}",
        text(&o)
    );
    assert_eq!(verified_by_ssh_keygen(&env, "-rollback.payload"), 7);
    // Emil's signature rewritten as a decision to continue: named
    let seq = rows(&env.db())
        .into_iter()
        .rfind(|r| r.3 == "rollback.signature")
        .map(|r| r.1)
        .expect("a rollback signature");
    rewrite(&env.db(), seq, &|v| {
        v["role"] = serde_json::json!("Deployment Lead")
    });
    let o = env.golive(&["audit", "verify"]);
    assert_ne!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        text(&o).contains("the event was rewritten: it says role `Deployment Lead`"),
        "{}",
        text(&o)
    );
}

#[test]
fn the_end_signed_with_an_ssh_key_verifies_and_a_rewritten_outcome_is_caught() {
    let env = signed("finish");
    for step in ["3.1.1", "3.1.2", "3.2.1"] {
        ok(&env, &["done", step, "--as", "Dana Lead"]);
    }
    ok(
        &env,
        &[
            "sign",
            "4.1",
            "4.2",
            "--as",
            "Dana Lead",
            "--role",
            "Deployment Lead",
        ],
    );
    ok(&env, &["gate", "smoke", "--as", "Dana Lead"]);
    ok(
        &env,
        &[
            "sign",
            "6.1",
            "--as",
            "Dana Lead",
            "--role",
            "Deployment Lead",
        ],
    );
    ok(&env, &["gate", "verification", "--as", "Dana Lead"]);
    let key = env.key("dana").display().to_string();
    let said = ok(&env, &["finish", "--as", "Dana Lead", "--ssh-key", &key]);
    assert!(said.contains("SUCCESS"), "{said}");
    let o = env.golive(&["audit", "verify"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("6 signed sign-off(s)"), "{}", text(&o));
    assert_eq!(verified_by_ssh_keygen(&env, "-finish.payload"), 6);
    // the end rewritten as rolled back, the chain hashed again: named
    let end = rows(&env.db())
        .into_iter()
        .find(|r| r.3 == "deployment.ended")
        .map(|r| r.1)
        .expect("the end");
    rewrite(&env.db(), end, &|v| {
        v["outcome"] = serde_json::json!("ROLLED BACK")
    });
    let o = env.golive(&["audit", "verify"]);
    assert_ne!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        text(&o).contains("the event was rewritten: it says result `ROLLED BACK`"),
        "{}",
        text(&o)
    );
}
