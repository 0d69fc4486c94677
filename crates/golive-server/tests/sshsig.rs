//! Signatures made with the person's own SSH key, through the API: the
//! payload is fetched (`GET …/payload`), signed by `ssh-keygen -Y sign -n
//! golive` on the person's machine, and posted with the act. A key not the
//! person's, a payload from before the chain moved on, and a payload
//! changed after signing are each refused, recording nothing.

mod common;

use common::{Rig, folder, sqlite, unique};
use serde_json::{Value, json};
use std::path::Path;
use std::process::Command;

fn keygen(dir: &Path, name: &str) -> String {
    let o = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"])
        .arg(dir.join(name))
        .output()
        .expect("ssh-keygen runs (openssh-client)");
    assert!(o.status.success());
    std::fs::read_to_string(dir.join(format!("{name}.pub")))
        .unwrap()
        .trim()
        .to_string()
}

/// `payload` signed by `key` as the person would, with ssh-keygen.
fn ssh_sign(dir: &Path, key: &str, payload: &str) -> String {
    let file = dir.join(format!("payload-{}", golive_server::auth::random_hex(4)));
    std::fs::write(&file, payload).unwrap();
    let o = Command::new("ssh-keygen")
        .args(["-q", "-Y", "sign", "-n", "golive", "-f"])
        .arg(dir.join(key))
        .arg(&file)
        .output()
        .expect("ssh-keygen");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    std::fs::read_to_string(file.with_extension("sig"))
        .or_else(|_| std::fs::read_to_string(format!("{}.sig", file.display())))
        .unwrap()
}

async fn payload(rig: &Rig, token: &str, id: &str, act: &str) -> String {
    let r = rig
        .get(
            &format!("/api/v1/deployments/{id}/payload?act={act}"),
            Some(token),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["namespace"], "golive");
    r.json()["payload"].as_str().unwrap().to_string()
}

async fn events(rig: &Rig, token: &str, id: &str) -> Vec<Value> {
    rig.get(&format!("/api/v1/deployments/{id}/events"), Some(token))
        .await
        .json()["events"]
        .as_array()
        .unwrap()
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signatures_made_with_the_persons_key_are_taken_through_the_api() {
    let mut rig = Rig::start(&sqlite("api-ssh")).await;
    let dir = folder("api-ssh-keys");
    let rene_pub = keygen(&dir, "rene");
    keygen(&dir, "mallory");
    let rene = unique("Rene Release");
    let t_rm = rig.person(&rene, &["Release Manager"]).await;
    assert!(rig.store.set_ssh_keys(&rene, &[rene_pub]).await.unwrap());
    let lead = unique("Dana Lead");
    let t_lead = rig.person(&lead, &["Deployment Lead"]).await;
    let id = rig.deployment(&t_lead).await;
    let path = format!("/api/v1/deployments/{id}/signoffs");

    // fetched, signed by the person's key, posted: recorded with it
    let p = payload(&rig, &t_rm, &id, "1.1.1").await;
    let v: Value = serde_json::from_str(&p).unwrap();
    assert_eq!(v["person"], rene.as_str());
    assert_eq!(v["role"], "Release Manager");
    let sig = ssh_sign(&dir, "rene", &p);
    let r = rig
        .json(
            "POST",
            &path,
            Some(&t_rm),
            &json!({ "item": "1.1.1", "ssh": { "payload": p, "signature": sig } }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let signed: Vec<Value> = events(&rig, &t_rm, &id)
        .await
        .into_iter()
        .filter(|e| e["data"].get("ssh").is_some())
        .collect();
    assert_eq!(signed.len(), 1);
    assert_eq!(signed[0]["data"]["ssh"]["payload"], p.as_str());
    assert!(
        signed[0]["data"]["ssh"]["key"]
            .as_str()
            .unwrap()
            .starts_with("SHA256:")
    );

    // a key that is not Rene's
    let count = events(&rig, &t_rm, &id).await.len();
    let p = payload(&rig, &t_rm, &id, "1.1.2").await;
    let r = rig
        .json(
            "POST",
            &path,
            Some(&t_rm),
            &json!({ "item": "1.1.2", "role": "Release Manager", "ssh": { "payload": p, "signature": ssh_sign(&dir, "mallory", &p) } }),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(
        r.body.contains("not one of the person's keys"),
        "{}",
        r.body
    );

    // a payload changed after it was signed (another role)
    let sig = ssh_sign(&dir, "rene", &p);
    let changed = p.replace("Release Manager", "Deployment Lead");
    let r = rig
        .json(
            "POST",
            &path,
            Some(&t_rm),
            &json!({ "item": "1.1.2", "role": "Release Manager", "ssh": { "payload": changed, "signature": sig } }),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.body.contains("role"), "{}", r.body);

    // the chain moved on after the payload was made: fetch it again
    let r = rig
        .json("POST", &path, Some(&t_lead), &json!({ "item": "1.1.2" }))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let moved = count + 1;
    let r = rig
        .json(
            "POST",
            &path,
            Some(&t_rm),
            &json!({ "item": "1.1.2", "role": "Release Manager", "ssh": { "payload": p, "signature": sig } }),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.body.contains("get the payload again"), "{}", r.body);
    assert_eq!(
        events(&rig, &t_rm, &id).await.len(),
        moved,
        "nothing recorded"
    );

    // a payload fetched now is taken, and every signature on the record
    // verifies with the people's keys on the server
    let p = payload(&rig, &t_rm, &id, "1.1.2").await;
    let sig = ssh_sign(&dir, "rene", &p);
    let r = rig
        .json(
            "POST",
            &path,
            Some(&t_rm),
            &json!({ "item": "1.1.2", "role": "Release Manager", "ssh": { "payload": p, "signature": sig } }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let row = rig.store.deployment(Some(&id)).await.unwrap();
    let all = rig.store.events(&id).await.unwrap();
    let roster = golive_server::auth::roster(&rig.store).await.unwrap();
    let judged = golive_deploy::sshsig::judge(&row, &all, &roster);
    assert_eq!(judged.len(), 2);
    assert!(judged.iter().all(|j| j.verdict.is_ok()), "{judged:?}");
    rig.stop().await;
}
