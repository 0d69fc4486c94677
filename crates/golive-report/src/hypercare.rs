//! The day's health-check report of a watch (the seed's "daily health check
//! report"), from the day's events and the windows as they stand.

use golive_engine::sustained::Window;
use golive_runbook::Runbook;
use golive_store::Event;
use std::collections::BTreeMap;

/// The seed's "daily health check report", from the day's watch events.
pub fn daily_report(
    rb: &Runbook,
    deployment: &str,
    events: &[Event],
    day: &str,
    windows: &BTreeMap<String, Window>,
) -> String {
    let today: Vec<&Event> = events.iter().filter(|e| e.at.starts_with(day)).collect();
    let ticks: Vec<&&Event> = today.iter().filter(|e| e.kind == "watch.tick").collect();
    let time = |e: &Event| e.at.get(11..19).unwrap_or("").to_string();
    let mut out = format!(
        "# Hypercare health check: {day}\n\n**Deployment:** {deployment}  \n**Runbook:** {} ({})  \n**Evaluations:** {}",
        rb.title.as_ref().map_or("", |h| h.text.as_str()),
        rb.path,
        ticks.len()
    );
    if let (Some(first), Some(last)) = (ticks.first(), ticks.last()) {
        out.push_str(&format!(", {} to {} UTC", time(first), time(last)));
    }
    out.push_str("\n\n| Check | Evaluations | Passed | Failed | Now |\n|---|---:|---:|---:|---|\n");
    let mut per: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for e in today.iter().filter(|e| e.kind == "check") {
        let c = per.entry(e.item.as_deref().unwrap_or("")).or_default();
        if e.data["outcome"] == "passed" {
            c.0 += 1;
        } else {
            c.1 += 1;
        }
    }
    for (k, w) in windows {
        let id = k.split('#').next().unwrap_or("");
        let Some(it) = rb.items.iter().find(|i| i.id == id) else {
            continue;
        };
        let (p, f) = per.get(id).copied().unwrap_or_default();
        out.push_str(&format!(
            "| {} {} | {} | {p} | {f} | {} |\n",
            it.address,
            it.title,
            p + f,
            w.state.name()
        ));
    }
    let changes: Vec<&&Event> = today.iter().filter(|e| e.kind == "watch.state").collect();
    out.push_str("\n## State changes\n\n");
    if changes.is_empty() {
        out.push_str("None.\n");
    } else {
        out.push_str("| Time (UTC) | Check | Change | Observed |\n|---|---|---|---|\n");
        for e in changes {
            let title = e
                .item
                .as_deref()
                .and_then(|id| rb.items.iter().find(|i| i.id == id))
                .map(|i| format!("{} {}", i.address, i.title))
                .unwrap_or_default();
            out.push_str(&format!(
                "| {} | {title} | {} | {} |\n",
                time(e),
                e.data["change"].as_str().unwrap_or(""),
                e.data["observed"]
                    .as_str()
                    .unwrap_or("")
                    .replace('|', "\\|")
            ));
        }
    }
    let alerts: Vec<&&Event> = today
        .iter()
        .filter(|e| e.kind == "alert.sent" || e.kind == "alert.failed")
        .collect();
    out.push_str("\n## Alerts\n\n");
    if alerts.is_empty() {
        out.push_str("None.\n");
    } else {
        out.push_str("| Time (UTC) | To | State | Delivered in |\n|---|---|---|---|\n");
        for e in alerts {
            out.push_str(&format!(
                "| {} | {} | {} | {} |\n",
                time(e),
                e.data["to"].as_str().unwrap_or(""),
                e.data["state"].as_str().unwrap_or(""),
                match e.data["delivery_ms"].as_f64() {
                    Some(ms) => format!("{ms:.1} ms"),
                    None => format!("not delivered: {}", e.data["error"].as_str().unwrap_or("")),
                }
            ));
        }
    }
    let resets: Vec<&&Event> = today.iter().filter(|e| e.kind == "watch.reset").collect();
    if !resets.is_empty() {
        out.push_str("\n## Windows restarted\n\n");
        for e in resets {
            out.push_str(&format!(
                "- {} {}\n",
                time(e),
                e.data["why"].as_str().unwrap_or("")
            ));
        }
    }
    out
}
