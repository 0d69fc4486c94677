//! A run's results counted: per item (an item passes when all its checks
//! pass) and per group, as the run's summary and its recorded end give them.

use golive_engine::{CheckResult, Outcome};
use golive_runbook::Runbook;
use serde_json::Value;
use std::collections::BTreeMap;

/// (stage, group) of an item.
pub type GroupKey = (usize, Option<usize>);

/// Per-group counts of a run, as the summary prints them.
#[derive(Default, Clone, Copy)]
pub struct Counts {
    pub passed: usize,
    pub failed: usize,
    pub error: usize,
    pub skipped: usize,
    pub manual: usize,
}

/// Counts per item: an item passes when all its checks pass.
pub fn item_outcomes(results: &[CheckResult]) -> BTreeMap<usize, &'static str> {
    let mut out: BTreeMap<usize, &'static str> = BTreeMap::new();
    for res in results {
        let rank = |s: &str| match s {
            "failed" => 3,
            "error" => 2,
            "skipped" => 1,
            _ => 0,
        };
        let now = res.outcome.as_str();
        let e = out.entry(res.check.item).or_insert(now);
        if rank(now) > rank(e) {
            *e = now;
        }
    }
    out
}

/// The run's counts in total and per group (title, counts), in document
/// order.
pub fn totals(
    rb: &Runbook,
    results: &[CheckResult],
    manual: &[usize],
) -> (Counts, Vec<(String, Counts)>) {
    let items = item_outcomes(results);
    let mut groups: Vec<(GroupKey, Counts)> = Vec::new();
    let mut total = Counts::default();
    let mut add = |key: GroupKey, f: &dyn Fn(&mut Counts)| {
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, c)) => f(c),
            None => {
                let mut c = Counts::default();
                f(&mut c);
                groups.push((key, c));
            }
        }
        f(&mut total);
    };
    for (&i, &o) in &items {
        let it = &rb.items[i];
        add((it.stage, it.group), &|c: &mut Counts| match o {
            "passed" => c.passed += 1,
            "failed" => c.failed += 1,
            "error" => c.error += 1,
            _ => c.skipped += 1,
        });
    }
    for &i in manual {
        let it = &rb.items[i];
        add((it.stage, it.group), &|c: &mut Counts| c.manual += 1);
    }
    groups.sort_by_key(|(k, _)| *k);
    let named = groups
        .into_iter()
        .map(|((s, g), c)| (group_title(rb, s, g), c))
        .collect();
    (total, named)
}

/// A group's title as the summary shows it: `Stage › Group`.
pub fn group_title(rb: &Runbook, stage: usize, group: Option<usize>) -> String {
    let s = &rb.stages[stage];
    match group {
        Some(g) => format!("{} › {}", strip(s.title()), strip(s.groups[g].title())),
        None => strip(s.title()),
    }
}

fn strip(t: &str) -> String {
    golive_runbook::text::strip_trailing_parens(t).to_string()
}

/// A check's outcome in one line: `passed`, `failed: error_rate = 0.042
/// (expected error_rate <= 0.01)`, `could not observe: timed out after 10s`.
pub fn outcome_text(res: &CheckResult) -> String {
    let actual: Vec<String> = res
        .actual
        .iter()
        .map(|(k, v)| format!("{k} = {}", show_value(v)))
        .collect();
    match &res.outcome {
        Outcome::Passed if res.baseline.is_some() => {
            format!("baseline recorded: {}", actual.join(", "))
        }
        Outcome::Passed if actual.is_empty() => "passed".into(),
        Outcome::Passed => format!("passed: {}", actual.join(", ")),
        Outcome::Failed => format!(
            "failed: {} (expected {})",
            if actual.is_empty() {
                "false".to_string()
            } else {
                actual.join(", ")
            },
            res.check.expect.source
        ),
        Outcome::Error(e) => format!("could not observe: {e}"),
        Outcome::Skipped(why) => format!("skipped: {why}"),
    }
}

/// A value as a summary shows it: strings quoted, at most 120 characters.
pub fn show_value(v: &Value) -> String {
    let s = match v {
        Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    };
    if s.chars().count() > 120 {
        format!("{}…", s.chars().take(120).collect::<String>())
    } else {
        s
    }
}
