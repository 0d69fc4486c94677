//! Deployments after a run: `golive sign` records a person's sign-off on an
//! item, `golive status` shows the Checklist Summary from the record.

use crate::lifecycle::{complete, states};
use golive_engine::roster::Roster;
use golive_runbook::{ItemKind, Runbook, StageKind, Target};
use golive_store::{Deployment, NewEvent, Store, WriteLock};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// A refusal: a rule of the runbook says no. Nothing is recorded.
pub struct Refused(pub String);

/// The deployment, its store and its runbook, checked unchanged.
async fn open(location: &str, id: Option<&str>) -> Result<(Store, Deployment, Runbook), String> {
    let store = Store::open_existing(location)
        .await
        .map_err(|e| e.to_string())?;
    let d = store
        .deployment(id)
        .await
        .map_err(|e| format!("{e} ({})", store.location))?;
    crate::record::intact(&d)?;
    let rb = crate::load(Path::new(&d.runbook_path))?;
    let sha = hex::encode(Sha256::digest(rb.source.as_bytes()));
    if sha != d.runbook_sha256 {
        return Err(format!(
            "{} changed since deployment {} started (sha256 {} then, {} now): sign-offs and status refer to the document as it was",
            d.runbook_path,
            d.id,
            &d.runbook_sha256[..12.min(d.runbook_sha256.len())],
            &sha[..12]
        ));
    }
    Ok((store, d, rb))
}

/// As [`open`], for a command that decides from the record and then
/// appends: the deployment's write lock is held until it is dropped, so that
/// what was decided still holds when it is appended.
async fn open_to_write(
    location: &str,
    id: Option<&str>,
) -> Result<(Store, Deployment, Runbook, WriteLock), String> {
    let (store, d, rb) = open(location, id).await?;
    let lock = store.lock(&d.id).await.map_err(|e| e.to_string())?;
    Ok((store, d, rb, lock))
}

fn roster_for(rb: &Runbook, given: Option<&Path>) -> Result<Roster, String> {
    let beside = Roster::default_file(&rb.path);
    let file: Option<PathBuf> = given
        .map(Path::to_path_buf)
        .or_else(|| beside.exists().then_some(beside));
    match file {
        Some(f) => {
            let text = std::fs::read_to_string(&f)
                .map_err(|e| format!("cannot read {}: {e}", f.display()))?;
            Roster::from_toml(&text, &f.display().to_string())
        }
        None => Ok(Roster::from_document(rb)),
    }
}

/// Print a refusal: a rule of the runbook says no, and nothing is recorded.
fn refuse(why: String) -> Result<ExitCode, String> {
    eprintln!("golive: refused: {why}; nothing was recorded");
    Ok(ExitCode::from(1))
}

/// The person named `name` on the deployment's roster, or why not and how
/// to add them (in `role`, when the command names one).
fn on_roster(
    rb: &Runbook,
    roster_file: Option<&Path>,
    name: &str,
    role: Option<&str>,
) -> Result<Result<golive_engine::roster::Person, String>, String> {
    let roster = roster_for(rb, roster_file)?;
    Ok(roster
        .person(name)
        .cloned()
        .ok_or_else(|| format!("{}\nor pass --roster FILE", roster.absent(name, role))))
}

/// What a deciding command works on: the store, the deployment, its
/// runbook, the person acting, and the deployment's write lock.
type Acting = (
    Store,
    Deployment,
    Runbook,
    golive_engine::roster::Person,
    WriteLock,
);

/// The deployment, its store and runbook (write-locked, as
/// [`open_to_write`]), and the person named `name` on its roster (or why
/// that person is not).
async fn open_as(
    location: &str,
    id: Option<&str>,
    roster_file: Option<&Path>,
    name: &str,
    role: Option<&str>,
) -> Result<Result<Acting, String>, String> {
    let (store, d, rb, lock) = open_to_write(location, id).await?;
    Ok(on_roster(&rb, roster_file, name, role)?.map(|p| (store, d, rb, p, lock)))
}

/// Arguments of `golive sign`.
pub struct Sign<'a> {
    pub store: &'a str,
    pub deployment: Option<&'a str>,
    pub item: &'a str,
    pub name: &'a str,
    pub role: &'a str,
    pub comment: Option<&'a str>,
    pub evidence: &'a [PathBuf],
    pub roster: Option<&'a Path>,
}

pub async fn sign(a: Sign<'_>) -> Result<ExitCode, String> {
    let (store, d, rb, _lock) = open_to_write(a.store, a.deployment).await?;
    match check_sign(&a, &rb, &store, &d).await? {
        Err(Refused(why)) => {
            eprintln!("golive: refused: {why}; nothing was recorded");
            Ok(ExitCode::from(1))
        }
        Ok((item, evidence)) => {
            let it = &rb.items[item];
            let event = NewEvent::new(
                "signoff",
                json!({
                    "role": a.role, "comment": a.comment, "evidence": evidence,
                    "address": it.address, "title": it.title,
                }),
            )
            .item(&it.id)
            .actor(a.name);
            store
                .append(&d.id, &[event])
                .await
                .map_err(|e| e.to_string())?;
            println!(
                "{} {} signed by {} as {} in deployment {}",
                it.address, it.title, a.name, a.role, d.id
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

type Signed = (usize, Vec<Value>);

async fn check_sign(
    a: &Sign<'_>,
    rb: &Runbook,
    store: &Store,
    d: &Deployment,
) -> Result<Result<Signed, Refused>, String> {
    let item = match rb.resolve(a.item) {
        Ok(Target::Item(i)) => i,
        Ok(Target::SubCheck(i, _)) => {
            return Ok(Err(Refused(format!(
                "`{}` is a sub-check of {}; sign the item",
                a.item, rb.items[i].address
            ))));
        }
        Err(e) => return Ok(Err(Refused(e.to_string()))),
    };
    let it = &rb.items[item];
    if let Err(why) = crate::lifecycle::signable(rb, item) {
        return Ok(Err(Refused(why)));
    }
    let person = match on_roster(rb, a.roster, a.name, Some(a.role))? {
        Ok(p) => p,
        Err(why) => return Ok(Err(Refused(why))),
    };
    if !person.holds(a.role) {
        return Ok(Err(Refused(format!(
            "{} does not hold the role {} (holds: {})",
            person.name,
            a.role,
            person.roles.join(", ")
        ))));
    }
    if let Some(resp) = it.field("Responsible")
        && !resp.value.trim().eq_ignore_ascii_case(a.role.trim())
    {
        return Ok(Err(Refused(format!(
            "{} {} is for the {} to sign, not the {}",
            it.address, it.title, resp.value, a.role
        ))));
    }
    let events = store.events(&d.id).await.map_err(|e| e.to_string())?;
    if let Some(prev) = events.iter().find(|e| {
        e.kind == "signoff"
            && e.item.as_deref() == Some(it.id.as_str())
            && e.actor
                .as_deref()
                .is_some_and(|x| x.eq_ignore_ascii_case(&person.name))
    }) {
        return Ok(Err(Refused(format!(
            "{} already signed {} at {}",
            person.name, it.address, prev.at
        ))));
    }
    let mut evidence = Vec::new();
    for f in a.evidence {
        let bytes = std::fs::read(f).map_err(|e| format!("evidence {}: {e}", f.display()))?;
        evidence.push(json!({
            "file": f.display().to_string(),
            "sha256": hex::encode(Sha256::digest(&bytes)),
            "bytes": bytes.len(),
        }));
    }
    Ok(Ok((item, evidence)))
}

pub async fn status(
    location: &str,
    id: Option<&str>,
    json_out: bool,
    message: bool,
) -> Result<ExitCode, String> {
    let (store, d, rb) = open(location, id).await?;
    let events = store.events(&d.id).await.map_err(|e| e.to_string())?;
    if message {
        let text = crate::report::render_message(&rb, &d, &events)
            .ok_or_else(|| format!("{} has no Status Update Template", rb.path))?;
        print!("{text}");
        return Ok(ExitCode::SUCCESS);
    }
    let head = crate::report::head(&d, &events);
    let st = states(&rb, &events);
    let mut stages = Vec::new();
    for s in &rb.stages {
        let items: Vec<usize> = s
            .all_items()
            .filter(|&i| rb.items[i].kind != ItemKind::Step)
            .collect();
        if items.is_empty() {
            continue;
        }
        let done = |list: &[usize]| {
            list.iter()
                .filter(|&&i| complete(&rb, i, st.get(&rb.items[i].id)))
                .count()
        };
        let groups: Vec<Value> = s
            .groups
            .iter()
            .filter(|g| !g.items.is_empty())
            .map(|g| {
                let list: Vec<usize> = g.items.iter().copied().filter(|&i| rb.items[i].kind != ItemKind::Step).collect();
                json!({ "title": golive_runbook::text::strip_trailing_parens(g.title()), "complete": done(&list), "total": list.len() })
            })
            .collect();
        stages.push(json!({
            "title": golive_runbook::text::strip_trailing_parens(s.title()),
            "kind": s.kind.as_str(),
            "complete": done(&items),
            "total": items.len(),
            "groups": groups,
        }));
    }
    let pending: Vec<Value> = crate::lifecycle::open_items(&rb, &events)
        .into_iter()
        .map(|o| {
            let it = &rb.items[o.item];
            json!({ "item": it.id, "address": it.address, "title": it.title, "role": o.role })
        })
        .collect();
    let mut checks: BTreeMap<&str, usize> = BTreeMap::new();
    for s in st.values() {
        for c in &s.checks {
            *checks.entry(c.as_str()).or_default() += 1;
        }
    }
    let signed: BTreeSet<&str> = st
        .iter()
        .filter(|(_, s)| !s.signed_by.is_empty())
        .map(|(k, _)| k.as_str())
        .collect();
    if json_out {
        let v = json!({
            "deployment": d.id, "head": format!("{}:{}", head.seq, head.hash),
            "runbook": d.runbook_path, "started_at": d.created_at, "started_by": d.started_by,
            "events": events.len(), "stages": stages, "pending_signoffs": pending, "checks": checks,
            "signed_items": signed.len(),
            "decision": events.iter().find(|e| e.kind == "decision").map(|e| e.data.clone()),
        });
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "Deployment {} ({}), started {} by {}, {} events",
        d.id,
        d.runbook_path,
        d.created_at,
        d.started_by,
        events.len()
    );
    println!(
        "Head: {head} (keep it: golive audit verify {} --head {head} proves later that the record still reaches it)",
        d.id
    );
    for s in &stages {
        println!("\n{}", s["title"].as_str().unwrap_or(""));
        for g in s["groups"].as_array().into_iter().flatten() {
            println!(
                "- {}: {}/{} items complete",
                g["title"].as_str().unwrap_or(""),
                g["complete"],
                g["total"]
            );
        }
        let target = if s["kind"] == "pre-deployment" {
            format!(" (Target: {0}/{0} = 100%)", s["total"])
        } else {
            String::new()
        };
        println!(
            "TOTAL: {}/{} items complete{target}",
            s["complete"], s["total"]
        );
    }
    println!("State: {}", crate::lifecycle::state(&events));
    for g in events.iter().filter(|e| e.kind == "gate") {
        println!(
            "Gate {}: {}/{} passed (target {}): {}",
            g.data["stage"].as_str().unwrap_or("?"),
            g.data["passed"],
            g.data["total"],
            g.data["target"],
            g.data["result"].as_str().unwrap_or("?").to_uppercase()
        );
    }
    if let Some(e) = events.iter().rev().find(|e| e.kind == "deployment.ended") {
        match e.data["outcome"].as_str() {
            Some("ROLLED BACK") => {
                println!(
                    "Rolled back in {}{}",
                    minutes_text(e.data["rollback_seconds"].as_f64().unwrap_or(0.0)),
                    e.data["target_seconds"]
                        .as_u64()
                        .map(|t| format!(" (target < {})", minutes_text(t as f64)))
                        .unwrap_or_default()
                );
                // the open items of a rolled-back deployment are its
                // post-rollback actions (see lifecycle::due_stages)
                let open: Vec<String> = pending
                    .iter()
                    .map(|p| {
                        format!(
                            "  {:<8} {}",
                            p["address"].as_str().unwrap_or(""),
                            p["title"].as_str().unwrap_or("")
                        )
                    })
                    .collect();
                if !open.is_empty() {
                    println!("Open post-rollback actions:\n{}", open.join("\n"));
                }
            }
            _ => println!(
                "Took {} (target < {}), production {}",
                minutes_text(e.data["duration_seconds"].as_f64().unwrap_or(0.0)),
                minutes_text(e.data["target_seconds"].as_f64().unwrap_or(3600.0)),
                e.data["health"].as_str().unwrap_or("?")
            ),
        }
    }
    let rules = golive_engine::rules::rollback_rules(&rb);
    if !rules.is_empty() {
        println!("Rollback criteria:");
        for r in &rules {
            let how = match &r.kind {
                golive_engine::rules::RuleKind::SmokeBelow { min, of } => {
                    format!("smoke gate below {min}/{of}")
                }
                golive_engine::rules::RuleKind::HealthChecksFailing => {
                    "a health check fails in a run after GO".into()
                }
                golive_engine::rules::RuleKind::Sustained {
                    what,
                    limit,
                    window_s,
                } => {
                    format!(
                        "{what} {limit} for {} (to be watched: not evaluated yet)",
                        minutes_text(*window_s as f64)
                    )
                }
                golive_engine::rules::RuleKind::Judgement => "a person's judgement".into(),
            };
            println!(
                "  {:<8} {} — {how}{}",
                rb.items[r.item].address,
                rb.items[r.item].title,
                if r.automatic { " [automatic]" } else { "" }
            );
        }
    }
    let phases = phase_lines(&rb, &events);
    if !phases.is_empty() {
        println!("\nProcedure");
        for p in &phases {
            println!("{p}");
        }
    }
    match events.iter().find(|e| e.kind == "decision") {
        Some(e) => println!(
            "\nDecision: {} at {}",
            e.data["verdict"].as_str().unwrap_or("?"),
            e.at
        ),
        None => {
            let sigs: Vec<String> = events
                .iter()
                .filter(|e| e.kind == "decision.signature")
                .map(|e| {
                    format!(
                        "{} by {} ({})",
                        e.data["verdict"].as_str().unwrap_or("?"),
                        e.actor.as_deref().unwrap_or("?"),
                        e.data["role"].as_str().unwrap_or("?")
                    )
                })
                .collect();
            println!(
                "\nDecision: pending ({} to sign{})",
                decision_signers(&rb).join(", "),
                if sigs.is_empty() {
                    String::new()
                } else {
                    format!("; signed: {}", sigs.join(", "))
                }
            );
        }
    }
    let counts: Vec<String> = checks.iter().map(|(k, v)| format!("{v} {k}")).collect();
    println!(
        "Checks of the last run: {}",
        if counts.is_empty() {
            "none".into()
        } else {
            counts.join(", ")
        }
    );
    if crate::lifecycle::state(&events) == "ROLLED BACK" {
        // listed above as the open post-rollback actions
        return Ok(ExitCode::SUCCESS);
    }
    println!("Pending sign-offs ({}):", pending.len());
    for p in pending.iter().take(20) {
        println!(
            "  {:<8} {} — {}",
            p["address"].as_str().unwrap_or(""),
            p["title"].as_str().unwrap_or(""),
            p["role"].as_str().unwrap_or("anyone on the roster")
        );
    }
    if pending.len() > 20 {
        println!(
            "  … and {} more (--format json lists all)",
            pending.len() - 20
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The roles whose distinct holders must sign the go/no-go decision: the
/// `- Role: ____` lines under the decision stage's `**Sign-offs:**` label
/// (Deployment Lead, Engineering Manager, Product Manager in the reference).
pub fn decision_signers(rb: &Runbook) -> Vec<String> {
    let Some(stage) = rb.stages.iter().find(|s| s.kind == StageKind::Decision) else {
        return vec!["Deployment Lead".into()];
    };
    let start = stage.heading.loc.start;
    let end = rb
        .stages
        .iter()
        .map(|s| s.heading.loc.start)
        .find(|&x| x > start)
        .unwrap_or(rb.source.len());
    let text = &rb.source[start..end];
    let mut roles = Vec::new();
    let mut inside = false;
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with("**") {
            inside = t.to_lowercase().starts_with("**sign-off");
            continue;
        }
        if inside
            && let Some(rest) = t.strip_prefix("- ").or_else(|| t.strip_prefix("* "))
            && let Some((role, _)) = rest.split_once(':')
        {
            roles.push(golive_runbook::text::plain(role));
        }
    }
    if roles.is_empty() {
        roles.push("Deployment Lead".into());
    }
    roles
}

/// Arguments of `golive decide`.
pub struct Decide<'a> {
    pub store: &'a str,
    pub deployment: Option<&'a str>,
    pub go: bool,
    pub name: &'a str,
    pub role: &'a str,
    pub reason: Option<&'a str>,
    pub roster: Option<&'a Path>,
}

/// Record one signature of the go/no-go decision. GO needs every
/// pre-deployment item complete; the decision needs the distinct people the
/// document names, each signing the same verdict; it takes effect with the
/// last of them.
pub async fn decide(a: Decide<'_>) -> Result<ExitCode, String> {
    let (store, d, rb, _lock) = open_to_write(a.store, a.deployment).await?;
    let verdict = if a.go { "GO" } else { "NO-GO" };
    let required = decision_signers(&rb);
    if !required.iter().any(|r| r.eq_ignore_ascii_case(a.role)) {
        return refuse(format!(
            "the decision is signed by the {}; not by the {}",
            required.join(", "),
            a.role
        ));
    }
    let person = match on_roster(&rb, a.roster, a.name, Some(a.role))? {
        Ok(p) => p,
        Err(why) => return refuse(why),
    };
    if !person.holds(a.role) {
        return refuse(format!(
            "{} does not hold the role {} (holds: {})",
            person.name,
            a.role,
            person.roles.join(", ")
        ));
    }
    if !a.go && a.reason.is_none_or(|r| r.trim().is_empty()) {
        return refuse("a NO-GO needs its reason (--reason)".into());
    }
    let events = store.events(&d.id).await.map_err(|e| e.to_string())?;
    if let Some(done) = events.iter().find(|e| e.kind == "decision") {
        return refuse(format!(
            "the decision was taken already: {} at {}",
            done.data["verdict"].as_str().unwrap_or("?"),
            done.at
        ));
    }
    if a.go {
        let st = states(&rb, &events);
        let pre: Vec<usize> = rb
            .stages
            .iter()
            .filter(|s| s.kind == StageKind::PreDeployment)
            .flat_map(|s| s.all_items())
            .collect();
        let open_items: Vec<&str> = pre
            .iter()
            .filter(|&&i| !complete(&rb, i, st.get(&rb.items[i].id)))
            .map(|&i| rb.items[i].address.as_str())
            .collect();
        if !open_items.is_empty() {
            let shown: Vec<&str> = open_items.iter().take(8).copied().collect();
            return refuse(format!(
                "GO needs {n}/{n} pre-deployment items complete, {} are: still open {}{}",
                pre.len() - open_items.len(),
                shown.join(", "),
                if open_items.len() > 8 { " …" } else { "" },
                n = pre.len()
            ));
        }
    }
    // signatures of this decision so far
    let sigs: Vec<&golive_store::Event> = events
        .iter()
        .filter(|e| e.kind == "decision.signature")
        .collect();
    for sig in &sigs {
        let role = sig.data["role"].as_str().unwrap_or("");
        let who = sig.actor.as_deref().unwrap_or("");
        if who.eq_ignore_ascii_case(&person.name) {
            return refuse(format!(
                "the decision needs distinct people: {} signed already as {}",
                person.name, role
            ));
        }
        if role.eq_ignore_ascii_case(a.role) {
            return refuse(format!("the {} signed already ({})", role, who));
        }
        if sig.data["verdict"].as_str() != Some(verdict) {
            return refuse(format!(
                "{} signed {} as {}: the signers must agree",
                who,
                sig.data["verdict"].as_str().unwrap_or("?"),
                role
            ));
        }
    }
    let mut new = vec![
        NewEvent::new(
            "decision.signature",
            json!({ "verdict": verdict, "role": a.role, "reason": a.reason }),
        )
        .actor(&person.name),
    ];
    let signed_roles: BTreeSet<String> = sigs
        .iter()
        .filter_map(|e| e.data["role"].as_str().map(str::to_lowercase))
        .chain(std::iter::once(a.role.to_lowercase()))
        .collect();
    let complete_now = required
        .iter()
        .all(|r| signed_roles.contains(&r.to_lowercase()));
    if complete_now {
        let signers: Vec<Value> = sigs
            .iter()
            .map(|e| json!({ "name": e.actor, "role": e.data["role"] }))
            .chain(std::iter::once(
                json!({ "name": person.name, "role": a.role }),
            ))
            .collect();
        new.push(NewEvent::new(
            "decision",
            json!({ "verdict": verdict, "signers": signers, "reason": a.reason }),
        ));
    }
    store.append(&d.id, &new).await.map_err(|e| e.to_string())?;
    if complete_now {
        println!(
            "{verdict}: decided by {} in deployment {}",
            required.join(", "),
            d.id
        );
    } else {
        let missing: Vec<&String> = required
            .iter()
            .filter(|r| !signed_roles.contains(&r.to_lowercase()))
            .collect();
        println!(
            "{verdict} signed by {} as {}; waiting for: {}",
            person.name,
            a.role,
            missing
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Items complete per group of `stage` (title without remarks, count), as
/// the record says.
pub fn group_completion(
    rb: &Runbook,
    events: &[golive_store::Event],
    stage: &golive_runbook::Stage,
) -> Vec<(String, usize)> {
    let st = states(rb, events);
    stage
        .groups
        .iter()
        .map(|g| {
            let done = g
                .items
                .iter()
                .filter(|&&i| complete(rb, i, st.get(&rb.items[i].id)))
                .count();
            (
                golive_runbook::text::strip_trailing_parens(g.title()).to_string(),
                done,
            )
        })
        .collect()
}

/// `golive report`.
pub async fn report(location: &str, id: Option<&str>, format: &str) -> Result<ExitCode, String> {
    let (store, d, rb) = open(location, id).await?;
    let events = store.events(&d.id).await.map_err(|e| e.to_string())?;
    match format {
        "md" => print!("{}", crate::report::render_markdown(&rb, &d, &events)?),
        "junit" => print!("{}", crate::report::render_junit(&rb, &d, &events)),
        "html" => print!("{}", crate::report::render_html(&rb, &d, &events)),
        "json" => {
            let head = crate::report::head(&d, &events);
            let v = json!({
                "deployment": d.id, "head": format!("{}:{}", head.seq, head.hash),
                "runbook": d.runbook_path, "runbook_sha256": d.runbook_sha256,
                "started_at": d.created_at, "started_by": d.started_by, "vars": d.vars,
                "events": events.iter().map(|e| json!({
                    "seq": e.seq, "at": e.at, "kind": e.kind, "item": e.item, "actor": e.actor,
                    "data": e.data, "hash": e.hash,
                })).collect::<Vec<_>>(),
            });
            println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        }
        other => {
            return Err(format!(
                "report: format `{other}` is not available yet (md, json)"
            ));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Arguments of `golive done`.
pub struct Done<'a> {
    pub store: &'a str,
    pub deployment: Option<&'a str>,
    pub step: &'a str,
    pub name: &'a str,
    pub skipped: bool,
    pub comment: Option<&'a str>,
    pub roster: Option<&'a Path>,
    /// Run the step's command blocks first (needs `allow_commands`).
    pub run: bool,
    pub allow_commands: bool,
    pub confirm_rerun: bool,
    /// Variables for the commands, over those recorded with the deployment.
    pub vars: &'a golive_probe::Vars,
}

/// Mark a procedure step done (or skipped, when it or its phase is optional).
/// Steps follow the GO decision and each other, in document order.
pub async fn done(a: Done<'_>) -> Result<ExitCode, String> {
    let (store, d, rb, lock) = open_to_write(a.store, a.deployment).await?;
    let step = match rb.resolve(a.step) {
        Ok(Target::Item(i)) => i,
        Ok(Target::SubCheck(i, _)) => {
            return refuse(format!(
                "`{}` is a sub-check of {}",
                a.step, rb.items[i].address
            ));
        }
        Err(e) => return refuse(e.to_string()),
    };
    let it = &rb.items[step];
    if it.kind != ItemKind::Step {
        return refuse(format!(
            "{} {} is not a procedure step: sign it instead",
            it.address, it.title
        ));
    }
    let person = match on_roster(&rb, a.roster, a.name, None)? {
        Ok(p) => p,
        Err(why) => return refuse(why),
    };
    let mut events = store.events(&d.id).await.map_err(|e| e.to_string())?;
    match events.iter().find(|e| e.kind == "decision") {
        Some(e) if e.data["verdict"] == "GO" => {}
        Some(_) => return refuse("the decision was NO-GO: the procedure does not run".into()),
        None => return refuse("the procedure starts after the GO decision".into()),
    }
    let done: BTreeSet<&str> = events
        .iter()
        .filter(|e| e.kind == "step.done")
        .filter_map(|e| e.item.as_deref())
        .collect();
    if done.contains(it.id.as_str()) {
        return refuse(format!("{} is done already", it.address));
    }
    let (rollback, _) = crate::lifecycle::rollback_steps(&rb);
    let rolling_back = events.iter().any(|e| e.kind == "rollback.started");
    if rollback.contains(&step) && !rolling_back {
        return refuse(format!(
            "{} is a rollback step: a rollback has not been started (golive rollback)",
            it.address
        ));
    }
    if !rollback.contains(&step) && rolling_back {
        return refuse("the deployment is rolling back: only the Rollback Steps run now".into());
    }
    let steps = if rollback.contains(&step) {
        rollback.clone()
    } else {
        crate::procedure::procedure_steps(&rb)
    };
    if let Some(prev) = steps
        .iter()
        .take_while(|&&i| i != step)
        .find(|&&i| !done.contains(rb.items[i].id.as_str()))
    {
        let p = &rb.items[*prev];
        return refuse(format!(
            "steps run in document order: {} {} is not done yet",
            p.address, p.title
        ));
    }
    if a.skipped {
        let phase_optional = it
            .group
            .is_some_and(|g| rb.stages[it.stage].groups[g].heading.declared.optional);
        if !(it.declared.optional || phase_optional || it.title.to_lowercase().contains("optional"))
        {
            return refuse(format!(
                "{} is not optional: it cannot be skipped",
                it.address
            ));
        }
    }
    let mut ran = Value::Null;
    let _relock;
    let mut _running = None;
    if a.run {
        let runner = crate::procedure::Runner {
            actor: &person.name,
            allow_commands: a.allow_commands,
            confirm_rerun: a.confirm_rerun,
            vars: a.vars,
        };
        // the lock is released while the commands run (see run_step), then
        // taken again to record the step from the record as it is now; the
        // step's running lock is held until then
        match crate::procedure::run_step(&store, &d, &rb, step, &events, &runner, Some(lock))
            .await?
        {
            crate::procedure::StepRun::Succeeded(v, running) => {
                ran = v;
                _running = Some(running);
            }
            crate::procedure::StepRun::Running(why) | crate::procedure::StepRun::Refused(why) => {
                return refuse(why);
            }
        }
        _relock = Some(store.lock(&d.id).await.map_err(|e| e.to_string())?);
        events = store.events(&d.id).await.map_err(|e| e.to_string())?;
        if crate::procedure::done_steps(&events).contains(it.id.as_str()) {
            eprintln!(
                "golive: {} was recorded done by another command while its commands ran; their run is recorded, not a second step.done",
                it.address
            );
            return Ok(ExitCode::from(1));
        }
    } else {
        // marked done by hand: not while a process is running its commands
        if let Some(why) = crate::procedure::running_now(&store, &d, &rb, &events, step).await? {
            return refuse(why);
        }
        _relock = Some(lock);
    }
    let (new, lines) = crate::procedure::done_events(
        &rb,
        &events,
        step,
        &person.name,
        json!({ "skipped": a.skipped, "comment": a.comment, "ran": ran }),
    );
    store.append(&d.id, &new).await.map_err(|e| e.to_string())?;
    println!(
        "{} {} {} by {}",
        it.address,
        it.title,
        if a.skipped { "skipped" } else { "done" },
        person.name
    );
    for l in lines {
        println!("{l}");
    }
    Ok(ExitCode::SUCCESS)
}

/// `golive gate [DEPLOYMENT] smoke|verification --as NAME`: evaluate a gate
/// from the record. A failed smoke gate raises the rollback decision with
/// automatic authority; a failed verification gate raises it for the named
/// people to decide.
pub async fn gate(
    location: &str,
    id: Option<&str>,
    which: &str,
    name: &str,
    roster_file: Option<&Path>,
) -> Result<ExitCode, String> {
    let (store, d, rb, person, _lock) = match open_as(location, id, roster_file, name, None).await?
    {
        Ok(x) => x,
        Err(why) => return refuse(why),
    };
    let events = store.events(&d.id).await.map_err(|e| e.to_string())?;
    if crate::lifecycle::go_decision(&events).is_none() {
        eprintln!("golive: refused: gates follow the GO decision; nothing was recorded");
        return Ok(ExitCode::from(1));
    }
    let Some(gate) = crate::lifecycle::Gate::named(which) else {
        return Err(format!("gate: `{which}` is neither smoke nor verification"));
    };
    let tally = match gate.tally(&rb, &events) {
        Ok(t) => t,
        Err(why) => return refuse(why),
    };
    let crate::lifecycle::Tally {
        passed,
        total,
        target,
    } = tally;
    let label = gate.label();
    let mut new = vec![
        NewEvent::new(
            "gate",
            crate::lifecycle::gate_event(which, passed, total, target),
        )
        .actor(&person.name),
    ];
    let ok = tally.passes();
    // a rollback already raised (or under way) is not raised twice
    let raised = events
        .iter()
        .any(|e| matches!(e.kind.as_str(), "rollback.raised" | "rollback.started"));
    if !ok && !raised {
        let (auto, manual) = crate::lifecycle::rollback_authority(&rb);
        let automatic = gate == crate::lifecycle::Gate::Smoke;
        let reason = format!("{label} {passed}/{total}, below the target of {target}/{total}");
        new.push(NewEvent::new(
            "rollback.raised",
            json!({
                "reason": reason,
                "authority": if automatic { "automatic" } else { "manual" },
                "by": if automatic { vec![auto] } else { manual },
            }),
        ));
        if automatic {
            new.push(crate::lifecycle::automatic_start(&rb, &reason));
        }
    }
    store.append(&d.id, &new).await.map_err(|e| e.to_string())?;
    println!(
        "{} gate: {passed}/{total} passed (target {target}/{total}): {}",
        which,
        if ok {
            "PASS"
        } else if raised {
            "FAIL (the rollback is raised already)"
        } else if gate == crate::lifecycle::Gate::Smoke {
            "FAIL: ROLLBACK INITIATED with automatic authority; the Rollback Steps run now"
        } else {
            "FAIL: the rollback decision is raised"
        }
    );
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// `golive rollback [DEPLOYMENT] --as NAME --role ROLE --reason TEXT`: start
/// the Rollback Steps with the authority the document names: the automatic
/// role alone when a gate raised the decision automatically, otherwise every
/// manual role, signed by distinct people.
pub async fn rollback(
    location: &str,
    id: Option<&str>,
    name: &str,
    role: &str,
    reason: &str,
    roster_file: Option<&Path>,
) -> Result<ExitCode, String> {
    let (store, d, rb, person, _lock) =
        match open_as(location, id, roster_file, name, Some(role)).await? {
            Ok(x) => x,
            Err(why) => return refuse(why),
        };
    if !person.holds(role) {
        return refuse(format!(
            "{} does not hold the role {role} (holds: {})",
            person.name,
            person.roles.join(", ")
        ));
    }
    let events = store.events(&d.id).await.map_err(|e| e.to_string())?;
    if events.iter().any(|e| e.kind == "rollback.started") {
        return refuse("the rollback has started already".into());
    }
    if events.iter().any(|e| e.kind == "deployment.ended") {
        return refuse("the deployment has ended".into());
    }
    let (auto, manual) = crate::lifecycle::rollback_authority(&rb);
    let raised = events.iter().rev().find(|e| e.kind == "rollback.raised");
    let automatic = raised.is_some_and(|e| e.data["authority"] == "automatic");
    let start = |signers: Vec<serde_json::Value>| {
        NewEvent::new(
            "rollback.started",
            json!({ "reason": reason, "authority": if automatic { "automatic" } else { "manual" }, "signers": signers }),
        )
    };
    if automatic && role.eq_ignore_ascii_case(&auto) {
        store
            .append(
                &d.id,
                &[start(vec![json!({ "name": person.name, "role": role })]).actor(&person.name)],
            )
            .await
            .map_err(|e| e.to_string())?;
        println!(
            "ROLLBACK INITIATED by {} ({role}, automatic authority): run the Rollback Steps with golive done",
            person.name
        );
        return Ok(ExitCode::SUCCESS);
    }
    if !manual.iter().any(|r| r.eq_ignore_ascii_case(role)) {
        return refuse(format!(
            "a rollback is decided by {}{}",
            manual.join(" + "),
            if automatic {
                format!(", or by the {auto} alone")
            } else {
                format!(" (the {auto} alone only when a gate raised it)")
            }
        ));
    }
    let sigs: Vec<&golive_store::Event> = events
        .iter()
        .filter(|e| e.kind == "rollback.signature")
        .collect();
    for sig in &sigs {
        if sig
            .actor
            .as_deref()
            .is_some_and(|a| a.eq_ignore_ascii_case(&person.name))
        {
            return refuse(format!(
                "a rollback needs distinct people: {} signed already as {}",
                person.name,
                sig.data["role"].as_str().unwrap_or("?")
            ));
        }
        if sig.data["role"]
            .as_str()
            .is_some_and(|r| r.eq_ignore_ascii_case(role))
        {
            return refuse(format!("the {role} signed already"));
        }
    }
    let mut new = vec![
        NewEvent::new(
            "rollback.signature",
            json!({ "role": role, "reason": reason }),
        )
        .actor(&person.name),
    ];
    let roles: BTreeSet<String> = sigs
        .iter()
        .filter_map(|e| e.data["role"].as_str().map(str::to_lowercase))
        .chain(std::iter::once(role.to_lowercase()))
        .collect();
    let complete = manual.iter().all(|r| roles.contains(&r.to_lowercase()));
    if complete {
        let signers = sigs
            .iter()
            .map(|e| json!({ "name": e.actor, "role": e.data["role"] }))
            .chain(std::iter::once(
                json!({ "name": person.name, "role": role }),
            ))
            .collect();
        new.push(start(signers));
    }
    store.append(&d.id, &new).await.map_err(|e| e.to_string())?;
    if complete {
        println!(
            "ROLLBACK INITIATED by {}: run the Rollback Steps with golive done",
            manual.join(" + ")
        );
    } else {
        println!(
            "rollback signed by {} as {role}; waiting for the rest of: {}",
            person.name,
            manual.join(" + ")
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `golive finish [DEPLOYMENT] --as NAME`: end a deployment as SUCCESS once
/// every procedure step is done or skipped and both gates passed; records
/// its duration (from the GO decision) against the document's target and the
/// production health of the last run.
pub async fn finish(
    location: &str,
    id: Option<&str>,
    name: &str,
    roster_file: Option<&Path>,
) -> Result<ExitCode, String> {
    let (store, d, rb, person, _lock) = match open_as(location, id, roster_file, name, None).await?
    {
        Ok(x) => x,
        Err(why) => return refuse(why),
    };
    let events = store.events(&d.id).await.map_err(|e| e.to_string())?;
    let Some(go) = crate::lifecycle::go_decision(&events) else {
        return refuse("no GO decision".into());
    };
    if events
        .iter()
        .any(|e| e.kind == "deployment.ended" || e.kind == "rollback.started")
    {
        return refuse("the deployment has ended or is rolling back".into());
    }
    let done: BTreeSet<&str> = events
        .iter()
        .filter(|e| e.kind == "step.done")
        .filter_map(|e| e.item.as_deref())
        .collect();
    if let Some(&open_step) = crate::procedure::procedure_steps(&rb)
        .iter()
        .find(|&&i| !done.contains(rb.items[i].id.as_str()))
    {
        return refuse(format!(
            "procedure step {} is not done",
            rb.items[open_step].address
        ));
    }
    for which in crate::lifecycle::required_gates(&rb)
        .into_iter()
        .map(crate::lifecycle::Gate::name)
    {
        let last = events
            .iter()
            .rev()
            .find(|e| e.kind == "gate" && e.data["stage"] == which);
        match last {
            Some(g) if g.data["result"] == "pass" => {}
            Some(g) => {
                return refuse(format!(
                    "the {which} gate failed ({}/{})",
                    g.data["passed"], g.data["total"]
                ));
            }
            None => {
                return refuse(format!(
                    "the {which} gate has not been evaluated (golive gate {which})"
                ));
            }
        }
    }
    let took = seconds_between(&go.at, &jiff::Timestamp::now().to_string()).unwrap_or(0.0);
    let target =
        rb.stages
            .iter()
            .filter(|s| s.kind == StageKind::SignOff)
            .flat_map(|s| s.loose.fields.iter())
            .find(|f| f.label.eq_ignore_ascii_case("Deployment Duration"))
            .and_then(|f| {
                f.value.split("Target:").nth(1).and_then(|t| {
                    golive_runbook::text::parse_budget(t.trim_end_matches(')').trim())
                })
            })
            .map_or(3600, |b| b.seconds);
    let st = states(&rb, &events);
    let health = if st
        .values()
        .flat_map(|s| s.checks.iter())
        .all(|c| c == "passed")
    {
        "HEALTHY"
    } else {
        "DEGRADED"
    };
    let end = NewEvent::new(
        "deployment.ended",
        json!({ "outcome": "SUCCESS", "duration_seconds": took, "target_seconds": target, "within_target": took < target as f64, "health": health }),
    )
    .actor(&person.name);
    store
        .append(&d.id, &[end])
        .await
        .map_err(|e| e.to_string())?;
    println!(
        "SUCCESS: deployment {} took {} (target < {}), production {health}",
        d.id,
        minutes_text(took),
        minutes_text(target as f64)
    );
    Ok(ExitCode::SUCCESS)
}

use crate::procedure::{minutes_text, seconds_between};

/// Each phase of the procedure: steps done, time taken against its budget.
/// A phase starts when the one before it ends (the first at the GO decision)
/// and ends with its last step; an unfinished phase is timed until now.
pub fn phase_lines(rb: &Runbook, events: &[golive_store::Event]) -> Vec<String> {
    if crate::lifecycle::go_decision(events).is_none() {
        return Vec::new();
    }
    let mut waiting = false;
    phase_timings(rb, events)
        .into_iter()
        .map(|p| {
            if waiting {
                // steps run in order: this phase has not started
                return format!("- {}: 0/{} steps", p.title, p.total);
            }
            let complete = p.done == p.total;
            waiting = !complete;
            let over = p.budget.is_some_and(|b| p.seconds > b as f64);
            let mut line = format!(
                "- {}: {}/{} steps{}, {}{}{}",
                p.title,
                p.done,
                p.total,
                if complete { " complete" } else { "" },
                minutes_text(p.seconds),
                p.budget
                    .map(|b| format!(" of {}", minutes_text(b as f64)))
                    .unwrap_or_default(),
                if over { " OVER BUDGET" } else { "" }
            );
            for o in &p.overruns {
                line.push_str("\n    ");
                line.push_str(o);
            }
            line
        })
        .collect()
}

/// A phase of the procedure as the record shows it.
pub struct PhaseTiming {
    pub title: String,
    pub done: usize,
    pub total: usize,
    pub seconds: f64,
    pub budget: Option<u64>,
    /// Its steps that took longer than their own budget.
    pub overruns: Vec<String>,
}

/// Each phase's steps done and time taken (the same rule as `status`).
pub fn phase_timings(rb: &Runbook, events: &[golive_store::Event]) -> Vec<PhaseTiming> {
    let go = crate::lifecycle::go_decision(events);
    let now = jiff::Timestamp::now().to_string();
    let done: BTreeMap<&str, &str> = events
        .iter()
        .filter(|e| e.kind == "step.done")
        .filter_map(|e| Some((e.item.as_deref()?, e.at.as_str())))
        .collect();
    let mut start = go.map(|g| g.at.clone());
    let mut out = Vec::new();
    for s in rb.stages.iter().filter(|s| s.kind == StageKind::Procedure) {
        for g in &s.groups {
            let steps: Vec<&golive_runbook::Item> = g
                .items
                .iter()
                .map(|&i| &rb.items[i])
                .filter(|i| i.kind == ItemKind::Step)
                .collect();
            if steps.is_empty() {
                continue;
            }
            let finished = steps
                .iter()
                .filter(|i| done.contains_key(i.id.as_str()))
                .count();
            let end = steps
                .iter()
                .filter_map(|i| done.get(i.id.as_str()))
                .max()
                .map(|s| s.to_string());
            let seconds = match &start {
                Some(st) => {
                    let until = if finished == steps.len() {
                        end.clone().unwrap_or_else(|| now.clone())
                    } else {
                        now.clone()
                    };
                    let secs = seconds_between(st, &until).unwrap_or(0.0).max(0.0);
                    start = (finished == steps.len()).then_some(until);
                    secs
                }
                None => 0.0,
            };
            let overruns = steps
                .iter()
                .filter_map(|i| {
                    let e = events.iter().find(|e| {
                        e.kind == "step.done" && e.item.as_deref() == Some(i.id.as_str())
                    })?;
                    let t = &e.data["timing"];
                    (t["overrun"] == true).then(|| {
                        format!(
                            "{} {}: {} of {} OVER BUDGET",
                            i.address,
                            golive_runbook::text::strip_trailing_parens(&i.title),
                            minutes_text(t["seconds"].as_f64().unwrap_or(0.0)),
                            minutes_text(t["budget_seconds"].as_f64().unwrap_or(0.0))
                        )
                    })
                })
                .collect();
            out.push(PhaseTiming {
                overruns,
                title: golive_runbook::text::strip_trailing_parens(g.title()).to_string(),
                done: finished,
                total: steps.len(),
                seconds,
                budget: g.heading.declared.budget.as_ref().map(|b| b.seconds),
            });
        }
    }
    out
}
