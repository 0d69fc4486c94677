//! `golive status`: the Checklist Summary from the deployment's state, as
//! text or JSON.

use golive_deploy::time::minutes_text;
use golive_deploy::{Status, lifecycle};
use golive_runbook::Runbook;
use golive_store::Deployment;
use serde_json::{Value, json};
use std::fmt::Write;

fn title(t: &str) -> &str {
    golive_runbook::text::strip_trailing_parens(t)
}

/// Each open item as `status` lists it.
fn pending(rb: &Runbook, s: &Status) -> Vec<Value> {
    s.pending
        .iter()
        .map(|o| {
            let it = &rb.items[o.item];
            json!({ "item": it.id, "address": it.address, "title": it.title, "role": o.role })
        })
        .collect()
}

/// `golive status --format json`.
pub fn status_json(rb: &Runbook, d: &Deployment, s: &Status) -> Value {
    let head = crate::kept_head(d, &s.kept);
    let stages: Vec<Value> = s
        .stages
        .iter()
        .map(|st| {
            let stage = &rb.stages[st.stage];
            let groups: Vec<Value> = st
                .groups
                .iter()
                .map(|&(g, complete, total)| {
                    json!({ "title": title(stage.groups[g].title()), "complete": complete, "total": total })
                })
                .collect();
            json!({
                "title": title(stage.title()),
                "kind": stage.kind.as_str(),
                "complete": st.complete,
                "total": st.total,
                "groups": groups,
            })
        })
        .collect();
    json!({
        "deployment": d.id, "head": format!("{}:{}", head.seq, head.hash),
        "runbook": d.runbook_path, "started_at": d.created_at, "started_by": d.started_by,
        "events": s.kept.events(), "stages": stages, "pending_signoffs": pending(rb, s), "checks": s.checks,
        "signed_items": s.signed_items,
        "decision": s.kept.decision.as_ref().map(|e| e.data.clone()),
        "baselines": s.kept.baselines,
        "roles": roles_json(s),
        "state": s.state,
        "stage_signoffs": golive_deploy::lifecycle::stage_signoffs(rb, &s.kept)
            .into_iter()
            .map(|so| json!({
                "stage": rb.stages[so.stage].id,
                "signed": so.signed.iter().map(|(role, e)| json!({
                    "role": role, "name": e.actor, "at": e.at,
                })).collect::<Vec<_>>(),
                "waiting": so.waiting,
            }))
            .collect::<Vec<_>>(),
        "stale": stale_signoffs(rb, &s.kept)
            .into_iter()
            .map(|(i, by)| json!({ "item": rb.items[i].id, "address": rb.items[i].address, "by": by }))
            .collect::<Vec<_>>(),
        "pending_approvals": golive_deploy::approval::pending(
            rb,
            &s.kept,
            &golive_deploy::lifecycle::decision_signers(rb),
        )
        .into_iter()
        .map(|p| json!({ "what": p.what, "label": p.label, "signed": p.signed, "waiting": p.waiting, "since": p.since }))
        .collect::<Vec<_>>(),
        "overrides": golive_deploy::lifecycle::overrides(rb, &s.kept)
            .into_iter()
            .map(|(i, e)| json!({
                "item": rb.items[i].id, "address": rb.items[i].address,
                "by": e.actor, "role": e.data["role"], "comment": e.data["comment"], "at": e.at,
            }))
            .collect::<Vec<_>>(),
        "set_aside": golive_deploy::lifecycle::set_aside(rb, &s.kept)
            .into_iter()
            .map(|(i, why)| json!({
                "item": rb.items[i].id, "address": rb.items[i].address, "reason": why,
            }))
            .collect::<Vec<_>>(),
    })
}

/// Each phase of the procedure at `now`: steps done, time taken against its
/// budget, its steps over their own budget.
pub fn phase_lines(rb: &Runbook, s: &Status, now: jiff::Timestamp) -> Vec<String> {
    if s.kept.go().is_none() {
        return Vec::new();
    }
    let mut waiting = false;
    lifecycle::phase_timings(rb, &s.kept, now)
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

/// The roles a deployment uses, and the defaults among them.
fn roles_json(s: &Status) -> serde_json::Value {
    let r = &s.roles;
    json!({
        "decision": r.decision, "manual_rollback": r.manual_rollback,
        "automatic_rollback": r.automatic_rollback, "defaults": r.defaults,
    })
}

/// `golive status` as text, at `now`.
pub fn status_text(rb: &Runbook, d: &Deployment, s: &Status, now: jiff::Timestamp) -> String {
    let mut out = String::new();
    let k = &s.kept;
    let head = crate::kept_head(d, k);
    let _ = writeln!(
        out,
        "Deployment {} ({}), started {} by {}, {} events",
        d.id,
        d.runbook_path,
        d.created_at,
        d.started_by,
        k.events()
    );
    let _ = writeln!(
        out,
        "Head: {head} (keep it: golive audit verify {} --head {head} proves later that the record still reaches it)",
        d.id
    );
    for st in &s.stages {
        let stage = &rb.stages[st.stage];
        let _ = writeln!(out, "\n{}", title(stage.title()));
        for &(g, complete, total) in &st.groups {
            let _ = writeln!(
                out,
                "- {}: {complete}/{total} items complete",
                title(stage.groups[g].title())
            );
        }
        let target = if stage.kind == golive_runbook::StageKind::PreDeployment {
            format!(" (Target: {0}/{0} = 100%)", st.total)
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "TOTAL: {}/{} items complete{target}",
            st.complete, st.total
        );
    }
    let _ = writeln!(out, "State: {}", s.state);
    for g in &k.gates {
        let _ = writeln!(
            out,
            "Gate {}: {}/{} passed (target {}): {}",
            g.data["stage"].as_str().unwrap_or("?"),
            g.data["passed"],
            g.data["total"],
            g.data["target"],
            g.data["result"].as_str().unwrap_or("?").to_uppercase()
        );
    }
    let line = |o: &lifecycle::OpenItem| {
        let it = &rb.items[o.item];
        (it.address.as_str(), it.title.as_str())
    };
    if let Some(e) = &k.ended {
        match e.data["outcome"].as_str() {
            Some("ROLLED BACK") => {
                let _ = writeln!(
                    out,
                    "Rolled back in {}{}",
                    minutes_text(e.data["rollback_seconds"].as_f64().unwrap_or(0.0)),
                    e.data["target_seconds"]
                        .as_u64()
                        .map(|t| format!(" (target < {})", minutes_text(t as f64)))
                        .unwrap_or_default()
                );
                // the open items of a rolled-back deployment are its
                // post-rollback actions (see lifecycle::due_stages)
                let open: Vec<String> = s
                    .pending
                    .iter()
                    .map(|p| {
                        let (a, t) = line(p);
                        format!("  {a:<8} {t}")
                    })
                    .collect();
                if !open.is_empty() {
                    let _ = writeln!(out, "Open post-rollback actions:\n{}", open.join("\n"));
                }
            }
            _ => {
                let _ = writeln!(
                    out,
                    "Took {} (target < {}), production {}",
                    minutes_text(e.data["duration_seconds"].as_f64().unwrap_or(0.0)),
                    minutes_text(e.data["target_seconds"].as_f64().unwrap_or(3600.0)),
                    e.data["health"].as_str().unwrap_or("?")
                );
            }
        }
    }
    let rules = golive_engine::rules::rollback_rules(rb);
    if !rules.is_empty() {
        let _ = writeln!(out, "Rollback criteria:");
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
                golive_engine::rules::RuleKind::Baseline {
                    what,
                    factor,
                    window_s,
                } => {
                    format!(
                        "{what} above {factor}× its baseline for {} (to be watched: not evaluated yet)",
                        minutes_text(*window_s as f64)
                    )
                }
                golive_engine::rules::RuleKind::Judgement => "a person's judgement".into(),
            };
            let _ = writeln!(
                out,
                "  {:<8} {} — {how}{}",
                rb.items[r.item].address,
                rb.items[r.item].title,
                if r.automatic { " [automatic]" } else { "" }
            );
        }
    }
    let phases = phase_lines(rb, s, now);
    if !phases.is_empty() {
        let _ = writeln!(out, "\nProcedure");
        for p in &phases {
            let _ = writeln!(out, "{p}");
        }
    }
    match &k.decision {
        Some(e) => {
            let _ = writeln!(
                out,
                "\nDecision: {} at {}",
                e.data["verdict"].as_str().unwrap_or("?"),
                e.at
            );
        }
        None => {
            let sigs: Vec<String> = k
                .decision_signatures
                .iter()
                .map(|e| {
                    format!(
                        "{} by {} ({})",
                        e.data["verdict"].as_str().unwrap_or("?"),
                        e.actor.as_deref().unwrap_or("?"),
                        e.data["role"].as_str().unwrap_or("?")
                    )
                })
                .collect();
            let _ = writeln!(
                out,
                "\nDecision: pending ({} to sign{})",
                s.roles.decision.join(", "),
                if sigs.is_empty() {
                    String::new()
                } else {
                    format!("; signed: {}", sigs.join(", "))
                }
            );
        }
    }
    let roles = &s.roles;
    if !roles.defaults.is_empty() {
        let _ = writeln!(out, "\nRoles the document does not state (defaults):");
        for d in &roles.defaults {
            let _ = writeln!(out, "- {d}");
        }
    }
    let counts: Vec<String> = s.checks.iter().map(|(k, v)| format!("{v} {k}")).collect();
    let _ = writeln!(
        out,
        "Checks of the last run: {}",
        if counts.is_empty() {
            "none".into()
        } else {
            counts.join(", ")
        }
    );
    if s.state == "ROLLED BACK" {
        // listed above as the open post-rollback actions
        return out;
    }
    let _ = writeln!(out, "Pending sign-offs ({}):", s.pending.len());
    for p in s.pending.iter().take(20) {
        let (a, t) = line(p);
        let _ = writeln!(
            out,
            "  {a:<8} {t} — {}",
            p.role.as_deref().unwrap_or("anyone on the roster")
        );
    }
    if s.pending.len() > 20 {
        let _ = writeln!(
            out,
            "  … and {} more (--format json lists all)",
            s.pending.len() - 20
        );
    }
    for so in golive_deploy::lifecycle::stage_signoffs(rb, &s.kept) {
        if s.kept.ended.is_none() && so.signed.is_empty() {
            continue;
        }
        let stage = &rb.stages[so.stage];
        let _ = writeln!(
            out,
            "{}: {}/{} roles signed{}",
            stage.title(),
            so.signed.len(),
            so.signed.len() + so.waiting.len(),
            if so.waiting.is_empty() {
                String::new()
            } else {
                format!("; waiting for {}", so.waiting.join(", "))
            }
        );
    }
    let overrides = golive_deploy::lifecycle::overrides(rb, &s.kept);
    if !overrides.is_empty() {
        let _ = writeln!(
            out,
            "Overrides ({}): signed done over failed checks:",
            overrides.len()
        );
        for (i, e) in overrides {
            let _ = writeln!(
                out,
                "  {}",
                golive_deploy::lifecycle::override_line(rb, i, e)
            );
        }
    }
    let stale = stale_signoffs(rb, &s.kept);
    if !stale.is_empty() {
        let _ = writeln!(
            out,
            "Stale ({}): signed over check results that have since failed; to be signed again:",
            stale.len()
        );
        for (i, by) in &stale {
            let _ = writeln!(
                out,
                "  {} {} — {}",
                rb.items[*i].address,
                rb.items[*i].title,
                by.join(", ")
            );
        }
    }
    let roles = golive_deploy::lifecycle::decision_signers(rb);
    let pending = golive_deploy::approval::pending(rb, &s.kept, &roles);
    if !pending.is_empty() {
        let _ = writeln!(out, "Pending approvals ({}):", pending.len());
        for p in &pending {
            let _ = writeln!(
                out,
                "  {}: signed by {} since {}; waiting for {}",
                p.label,
                p.signed.join(", "),
                p.since.get(..16).unwrap_or(&p.since).replace('T', " "),
                p.waiting.join(", ")
            );
        }
    }
    let aside = golive_deploy::lifecycle::set_aside(rb, &s.kept);
    if !aside.is_empty() {
        let _ = writeln!(out, "Set aside ({}), counted complete:", aside.len());
        for (&i, why) in aside.iter().take(20) {
            let it = &rb.items[i];
            let _ = writeln!(out, "  {:<8} {} — {why}", it.address, it.title);
        }
        if aside.len() > 20 {
            let _ = writeln!(
                out,
                "  … and {} more (--format json lists all)",
                aside.len() - 20
            );
        }
    }
    messages(&s.kept, &mut out);
    out
}

/// The communication plan's deliveries: how many went, and each that did
/// not yet, with why.
fn messages(k: &golive_deploy::Kept, out: &mut String) {
    let all = golive_deploy::notify::deliveries(k);
    if all.is_empty() {
        return;
    }
    let sent = all
        .iter()
        .filter(|(_, _, state, _)| state == "sent")
        .count();
    let _ = writeln!(
        out,
        "Messages: {} queued; {sent} of {} deliveries sent",
        k.notices.len(),
        all.len()
    );
    for (key, ch, state, detail) in all.iter().filter(|(_, _, state, _)| state != "sent") {
        let _ = writeln!(
            out,
            "  {key} on {ch}: {state}{}",
            if detail.is_empty() {
                String::new()
            } else {
                format!(" ({detail})")
            }
        );
    }
}

/// The items whose sign-offs went stale, with who gave them.
fn stale_signoffs(
    rb: &golive_runbook::Runbook,
    k: &golive_deploy::Kept,
) -> Vec<(usize, Vec<String>)> {
    let st = golive_deploy::lifecycle::states(rb, k);
    rb.items
        .iter()
        .enumerate()
        .filter_map(|(i, it)| {
            let s = st.get(&it.id)?;
            (!s.stale_by.is_empty()).then(|| (i, s.stale_by.clone()))
        })
        .collect()
}
