//! The communication plan as the document writes it: the notifications of
//! its Communication Plan stage (a bold section such as `**Success
//! Notification:**` with `To:`, `Subject:`, `Content:` and `Sent by:`
//! items), its Status Update Template (the fenced block after the line
//! naming it), the interval it states ("During Deployment (Every 15
//! Minutes)"), the `T+N:` updates it requires, the rollback announcement
//! (`"ROLLBACK INITIATED - [REASON] - ETA 5 minutes"`) and the rollback's
//! stakeholder communication.
//!
//! ```
//! let md = "## Communication Plan\n\n**Success Notification:**\n- [ ] **To:** All stakeholders\n- [ ] **Subject:** \"Deployed v[VERSION]\"\n- [ ] **Sent by:** ________ **Time:** ____\n";
//! let rb = golive_runbook::parse_runbook("x.md", md);
//! let plan = golive_runbook::comms::plan(&rb);
//! assert_eq!(plan.notices[0].kind, golive_runbook::comms::NoticeKind::Success);
//! assert_eq!(plan.notices[0].to, ["All stakeholders"]);
//! assert_eq!(plan.notices[0].subject.as_deref(), Some("Deployed v[VERSION]"));
//! ```

use crate::{Loc, Runbook, StageKind, text};

/// What the document says its communication is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    /// The body of the Status Update Template, and where it is.
    pub status_template: Option<(String, Loc)>,
    /// How often a status update goes during the deployment, in seconds,
    /// as the document states it (`Every 15 Minutes`), or `None`.
    pub interval: Option<u64>,
    /// The notifications with a recipient or a subject, in document order.
    pub notices: Vec<Notice>,
    /// The `T+N:` updates the document requires, in order.
    pub updates: Vec<Update>,
    /// The rollback announcement's words and the item (the step declaring
    /// the rollback) whose sub-checks it fulfils.
    pub rollback_announcement: Option<(String, usize)>,
    /// The post-rollback item that tells stakeholders (`Stakeholder
    /// Communication`).
    pub rollback_communication: Option<usize>,
    /// Where the updates go (`**Distribution:**` bullets), as written.
    pub distribution: Vec<String>,
}

/// Which moment of the deployment a notification belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoticeKind {
    /// Before the deployment: the stakeholders told of the window.
    Announcement,
    /// Before the deployment: the support team alerted.
    SupportAlert,
    /// The deployment succeeded.
    Success,
    /// The internal report with the whole record.
    Report,
    /// The rollback finished.
    RollbackComplete,
}

impl NoticeKind {
    /// A stable name (the message key's first part).
    pub fn as_str(self) -> &'static str {
        match self {
            NoticeKind::Announcement => "announcement",
            NoticeKind::SupportAlert => "support-alert",
            NoticeKind::Success => "success",
            NoticeKind::Report => "report",
            NoticeKind::RollbackComplete => "rollback-complete",
        }
    }
}

/// One notification the document asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct Notice {
    pub kind: NoticeKind,
    /// The section's label (`Success Notification`).
    pub title: String,
    /// The recipients as named (`Executive team`, `All stakeholders`).
    pub to: Vec<String>,
    /// Where the recipients are named.
    pub to_loc: Option<Loc>,
    /// The subject line, quotes removed, placeholders kept.
    pub subject: Option<String>,
    /// The content bullets, markup removed, blanks and placeholders kept.
    pub content: Vec<String>,
    /// The items sending it fulfils (recipients, subject, content, the
    /// "notified" line and the `Sent by` line).
    pub items: Vec<usize>,
    /// The item whose `Sent by` / `Completed by` blank names the sender.
    pub sender_item: Option<usize>,
}

/// A `T+N:` update the document requires.
#[derive(Debug, Clone, PartialEq)]
pub struct Update {
    pub item: usize,
    /// Minutes after the start.
    pub minutes: u64,
    /// The update is the deployment's end ("complete / SUCCESS or
    /// ROLLBACK"): the success or the rollback notice fulfils it.
    pub end: bool,
}

/// The communication plan of `rb` (empty when it has none).
pub fn plan(rb: &Runbook) -> Plan {
    let mut out = Plan {
        status_template: status_template(rb),
        ..Plan::default()
    };
    for (si, st) in rb.stages.iter().enumerate() {
        match st.kind {
            StageKind::Communication => communication(rb, si, &mut out),
            StageKind::Rollback => rollback(rb, si, &mut out),
            _ => {}
        }
    }
    out
}

/// The body of the document's Status Update Template: the first fenced
/// block after a line naming it.
fn status_template(rb: &Runbook) -> Option<(String, Loc)> {
    let at = rb.source.find("Status Update Template")?;
    let fence = rb.fences.iter().find(|f| f.loc.start > at && f.closed)?;
    let block = &rb.source[fence.loc.range()];
    let body_start = block.find('\n')? + 1;
    let body_end = block.rfind("```").filter(|&e| e >= body_start)?;
    // the body's lines without the fence's own indentation
    let indent = fence.loc.col.saturating_sub(1) as usize;
    let body: String = block[body_start..body_end]
        .lines()
        .map(|l| {
            let cut = l.len() - l.trim_start_matches(' ').len();
            &l[cut.min(indent)..]
        })
        .collect::<Vec<_>>()
        .join("\n");
    Some((body, fence.loc))
}

/// `every 15 minutes` in `s`, as seconds.
fn every(s: &str) -> Option<u64> {
    let lower = s.to_lowercase();
    let at = lower.find("every ")?;
    let rest = &lower[at + 6..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    let n: u64 = digits.parse().ok().filter(|&n| n > 0)?;
    let unit = rest[digits.len()..].trim_start();
    if unit.starts_with("sec") {
        Some(n)
    } else if unit.starts_with("min") {
        Some(n * 60)
    } else if unit.starts_with("hour") {
        Some(n * 3600)
    } else {
        None
    }
}

/// The item's lines after its first, list markers and markup removed.
fn nested_lines(rb: &Runbook, i: usize) -> Vec<String> {
    let it = &rb.items[i];
    rb.source[it.loc.range()]
        .lines()
        .skip(1)
        .map(|l| text::plain(text::strip_line_prefix(l)))
        .filter(|l| !l.is_empty())
        .collect()
}

fn names(list: &str) -> Vec<String> {
    list.split([',', ';'])
        .flat_map(|s| s.split(" and "))
        .map(|s| s.trim().trim_matches('"').trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

fn communication(rb: &Runbook, si: usize, out: &mut Plan) {
    let st = &rb.stages[si];
    for g in &st.groups {
        if out.interval.is_none() {
            out.interval = every(&g.heading.text);
        }
    }
    if out.interval.is_none() {
        out.interval = every(&st.heading.text);
    }
    // the Distribution bullets: lines after `**Distribution:**`
    if let Some(at) = rb.source[st.heading.loc.start..].find("**Distribution:**") {
        let from = st.heading.loc.start + at;
        for line in rb.source[from..].lines().skip(1) {
            let t = line.trim();
            if !(t.starts_with("- ") || t.starts_with("* ")) || t.contains("[ ]") {
                break;
            }
            out.distribution
                .push(text::plain(text::strip_line_prefix(t)));
        }
    }
    // the sections: items of one group under one bold label
    let mut sections: Vec<(Option<usize>, String, Vec<usize>)> = Vec::new();
    for i in st.all_items() {
        let it = &rb.items[i];
        if let Some(m) = update_minutes(&it.title) {
            let lower = it.title.to_lowercase();
            out.updates.push(Update {
                item: i,
                minutes: m,
                end: lower.contains("complete")
                    && (lower.contains("success") || lower.contains("rollback")),
            });
            continue;
        }
        let Some(section) = it.section.clone() else {
            continue;
        };
        match sections.last_mut() {
            Some((g, s, items)) if *g == it.group && *s == section => items.push(i),
            _ => sections.push((it.group, section, vec![i])),
        }
    }
    for (g, title, items) in sections {
        let group = g.map_or("", |g| st.groups[g].heading.text.as_str());
        if let Some(n) = notice(rb, group, &title, &items) {
            out.notices.push(n);
        }
    }
}

/// `T+15: Phase 1-2 complete` → 15.
fn update_minutes(title: &str) -> Option<u64> {
    let rest = title.trim().strip_prefix("T+")?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    let after = rest[digits.len()..].trim_start();
    (after.starts_with(':') || after.starts_with(' ') || after.is_empty())
        .then(|| digits.parse().ok())
        .flatten()
}

fn notice(rb: &Runbook, group: &str, title: &str, items: &[usize]) -> Option<Notice> {
    let lower = title.to_lowercase();
    let before = {
        let g = group.to_lowercase();
        g.contains("before") || g.contains("t-")
    };
    let kind = if lower.contains("support") {
        NoticeKind::SupportAlert
    } else if lower.contains("rollback") {
        NoticeKind::RollbackComplete
    } else if lower.contains("report") {
        NoticeKind::Report
    } else if lower.contains("success") || lower.contains("complete") {
        NoticeKind::Success
    } else if before && (lower.contains("notification") || lower.contains("announcement")) {
        NoticeKind::Announcement
    } else {
        return None;
    };
    let mut n = Notice {
        kind,
        title: title.to_string(),
        to: Vec::new(),
        to_loc: None,
        subject: None,
        content: Vec::new(),
        items: Vec::new(),
        sender_item: None,
    };
    for &i in items {
        let it = &rb.items[i];
        let t = it.title.to_lowercase();
        let value = it.text.clone().unwrap_or_default();
        if t == "to" || t == "recipients" {
            n.to = names(&value);
            n.to_loc = Some(it.loc);
        } else if t == "subject" {
            n.subject = Some(value.trim().trim_matches('"').to_string());
        } else if t == "content" {
            n.content = nested_lines(rb, i);
        } else if t == "sent by" || t == "completed by" {
            n.sender_item = Some(i);
        } else if t.ends_with(" notified") {
            // `Support team notified: [DATE/TIME]`: the recipients are the
            // words before "notified"
            if n.to.is_empty() {
                n.to = vec![
                    it.title[..it.title.len() - " notified".len()]
                        .trim()
                        .to_string(),
                ];
                n.to_loc = Some(it.loc);
            }
        } else {
            // a line a person answers (expected volume, escalation path)
            continue;
        }
        n.items.push(i);
    }
    // a section with lines golive cannot answer keeps its `Completed by` for
    // a person
    let others = items.iter().any(|i| !n.items.contains(i));
    if others && let Some(s) = n.sender_item.take() {
        n.items.retain(|&i| i != s);
    }
    (!n.to.is_empty() || n.subject.is_some()).then_some(n)
}

fn rollback(rb: &Runbook, si: usize, out: &mut Plan) {
    let st = &rb.stages[si];
    for i in st.all_items() {
        let it = &rb.items[i];
        if out.rollback_announcement.is_none() {
            let body = &rb.source[it.loc.range()];
            if let Some(at) = body.find("ROLLBACK INITIATED") {
                let line = body[at..].lines().next().unwrap_or("");
                let words = line.split('"').next().unwrap_or(line).trim();
                out.rollback_announcement = Some((words.to_string(), i));
            }
        }
        if out.rollback_communication.is_none() {
            let t = it.title.to_lowercase();
            if t.contains("stakeholder") && (t.contains("communication") || t.contains("notif")) {
                out.rollback_communication = Some(i);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reference_plan_reads_as_written() {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../examples/aiwg-production.md"
        ))
        .expect("reference");
        let rb = crate::parse_runbook("ref.md", &text);
        let p = plan(&rb);
        assert_eq!(p.interval, Some(900));
        let (t, _) = p.status_template.clone().expect("template");
        assert!(
            t.starts_with("DEPLOYMENT STATUS UPDATE - [TIMESTAMP]\n"),
            "{t}"
        );
        assert!(t.contains("Progress: [X]/[Y] steps complete"));
        let kinds: Vec<NoticeKind> = p.notices.iter().map(|n| n.kind).collect();
        assert_eq!(
            kinds,
            [
                NoticeKind::Announcement,
                NoticeKind::SupportAlert,
                NoticeKind::Success,
                NoticeKind::Report
            ]
        );
        let a = &p.notices[0];
        assert_eq!(a.to, ["Executive team", "Product team", "Customer success"]);
        assert_eq!(
            a.subject.as_deref(),
            Some("Production Deployment Scheduled: [DATE] [TIME]")
        );
        assert_eq!(a.content[0], "Deployment window: [START] - [END]");
        assert_eq!(a.items.len(), 4);
        assert!(a.sender_item.is_some());
        // the support alert's volume and escalation path are a person's
        let s = &p.notices[1];
        assert_eq!(s.to, ["Support team"]);
        assert_eq!(s.items.len(), 1);
        assert!(s.sender_item.is_none());
        let success = &p.notices[2];
        assert_eq!(success.to, ["All stakeholders"]);
        assert!(
            success
                .content
                .iter()
                .any(|l| l == "Smoke test results: ____/20 passed")
        );
        assert_eq!(p.notices[3].to, ["Engineering team", "DevOps"]);
        let minutes: Vec<u64> = p.updates.iter().map(|u| u.minutes).collect();
        assert_eq!(minutes, [0, 15, 30, 45, 60]);
        assert!(p.updates[4].end && !p.updates[3].end);
        let (words, item) = p.rollback_announcement.clone().expect("announcement");
        assert_eq!(words, "ROLLBACK INITIATED - [REASON] - ETA 5 minutes");
        assert!(rb.items[item].title.starts_with("Step R1"));
        let rc = p.rollback_communication.expect("rollback communication");
        assert_eq!(rb.items[rc].title, "Stakeholder Communication");
        assert_eq!(
            p.distribution,
            [
                "War room chat channel",
                "Stakeholder email (for major milestones only)"
            ]
        );
    }

    #[test]
    fn a_document_without_a_plan_has_none() {
        let rb = crate::parse_runbook("x.md", "## Go\n\n- [ ] **Ship it**\n");
        assert_eq!(plan(&rb), Plan::default());
    }
}
