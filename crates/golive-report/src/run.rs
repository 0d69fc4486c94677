//! `golive plan`, `golive run` and `golive probe`: printing what the engine
//! plans and finds. Every line leaves through [`Redactor::clean`].

pub use golive_deploy::counts::{Counts, item_outcomes, outcome_text, totals};
use golive_deploy::counts::{GroupKey, group_title, show_value};
use golive_deploy::vars::Redactor;
use golive_engine::{CheckResult, Outcome, Plan};
use golive_runbook::{Diagnostic, Runbook, render_text};
use serde_json::{Value, json};
use std::fmt::Write;

/// Planning problems as diagnostics pointing at the annotations.
pub fn problem_diagnostics(plan: &Plan) -> Vec<Diagnostic> {
    plan.problems.iter().map(|p| p.diagnostic.clone()).collect()
}

pub fn render_problems(rb: &Runbook, plan: &Plan, r: &Redactor) -> String {
    r.clean(&render_text(
        &rb.path,
        &rb.source,
        &problem_diagnostics(plan),
    ))
}

/// `golive plan` as text.
pub fn plan_text(rb: &Runbook, plan: &Plan, r: &Redactor) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}: {} checks, {} items manual",
        rb.path,
        plan.checks.len(),
        plan.manual.len()
    );
    let mut last_group = None;
    for c in &plan.checks {
        let item = &rb.items[c.item];
        let group = (item.stage, item.group);
        if last_group != Some(group) {
            let _ = writeln!(out, "\n{}", group_title(rb, item.stage, item.group));
            last_group = Some(group);
        }
        let side = if c.probe.side_effects() {
            "  [runs a command: needs --allow-commands]"
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "  {:<8} {}  ({}:{})",
            item.address, item.title, rb.path, c.loc.line
        );
        let _ = writeln!(
            out,
            "           {} {}{side}",
            c.kind,
            one_line(&c.probe.target())
        );
        let _ = writeln!(
            out,
            "           expect {}   timeout {}",
            c.expect.source,
            golive_probe::show_duration(c.timeout)
        );
        for (label, f) in &c.fills {
            let _ = writeln!(out, "           fill \"{label}\" ← {}", f.source);
        }
    }
    let _ = writeln!(out, "\nManual ({}): wait for a person", plan.manual.len());
    for &i in &plan.manual {
        let _ = writeln!(out, "  {:<8} {}", rb.items[i].address, rb.items[i].title);
    }
    r.clean(&out)
}

pub fn plan_json(rb: &Runbook, plan: &Plan, r: &Redactor) -> Value {
    let checks: Vec<Value> = plan
        .checks
        .iter()
        .map(|c| {
            let item = &rb.items[c.item];
            json!({
                "item": item.id, "address": item.address, "title": item.title,
                "line": c.loc.line, "kind": c.kind, "target": r.clean(&c.probe.target()),
                "expect": c.expect.source, "timeout_ms": c.timeout.as_millis() as u64,
                "retries": c.retries, "side_effects": c.probe.side_effects(),
                "fills": c.fills.iter().map(|(l, f)| (l.clone(), json!(f.source))).collect::<serde_json::Map<_, _>>(),
            })
        })
        .collect();
    json!({
        "file": rb.path,
        "checks": checks,
        "manual": manual_json(rb, &plan.manual),
        "problems": plan.problems.iter().map(|p| json!({
            "item": p.item.map(|i| &rb.items[i].id), "line": p.diagnostic.loc.line,
            "code": p.diagnostic.code, "message": r.clean(&p.diagnostic.message),
        })).collect::<Vec<_>>(),
    })
}

fn manual_json(rb: &Runbook, manual: &[usize]) -> Vec<Value> {
    manual
        .iter()
        .map(|&i| json!({ "item": rb.items[i].id, "address": rb.items[i].address, "title": rb.items[i].title, "line": rb.items[i].loc.line }))
        .collect()
}

fn one_line(s: &str) -> String {
    let first = s.lines().next().unwrap_or("");
    if s.lines().count() > 1 {
        format!("{first} …")
    } else {
        first.to_string()
    }
}

/// One progress line for a finished check (plain output, CI logs).
pub fn progress_line(rb: &Runbook, res: &CheckResult, r: &Redactor) -> String {
    let item = &rb.items[res.check.item];
    let mark = match res.outcome {
        Outcome::Passed => "pass ",
        Outcome::Failed => "FAIL ",
        Outcome::Error(_) => "ERROR",
        Outcome::Skipped(_) => "skip ",
    };
    r.clean(&format!(
        "{mark} {:<8} {}  ({} {}, {} ms)",
        item.address,
        item.title,
        res.check.kind,
        one_line(&res.check.probe.target()),
        res.duration.as_millis()
    ))
}

fn counts_text(c: &Counts) -> String {
    format!(
        "{} passed, {} failed, {} could not observe, {} manual{}",
        c.passed,
        c.failed,
        c.error,
        c.manual,
        if c.skipped > 0 {
            format!(", {} skipped", c.skipped)
        } else {
            String::new()
        }
    )
}

/// The text report of a run: failures and errors in detail, then counts per
/// group and in total.
pub fn run_text(rb: &Runbook, results: &[CheckResult], manual: &[usize], r: &Redactor) -> String {
    let mut out = String::new();
    for res in results {
        let item = &rb.items[res.check.item];
        let (mark, what) = match &res.outcome {
            Outcome::Failed => ("✗", "failed".to_string()),
            Outcome::Error(e) => ("!", format!("could not observe: {e}")),
            _ => continue,
        };
        let _ = writeln!(out, "{mark} {} {} — {}", item.address, item.title, what);
        let _ = writeln!(
            out,
            "  --> {}:{} (check at line {})",
            rb.path, item.loc.line, res.check.loc.line
        );
        let _ = writeln!(
            out,
            "  {} {}",
            res.check.kind,
            one_line(&res.check.probe.target())
        );
        if matches!(res.outcome, Outcome::Failed) || !res.actual.is_empty() {
            let _ = writeln!(out, "  expected: {}", res.check.expect.source);
            if !res.actual.is_empty() {
                let actual: Vec<String> = res
                    .actual
                    .iter()
                    .map(|(k, v)| format!("{k} = {}", show_value(v)))
                    .collect();
                let _ = writeln!(out, "  actual:   {}", actual.join(", "));
            }
        }
        if res.attempts > 1 {
            let _ = writeln!(out, "  after {} attempts", res.attempts);
        }
        out.push('\n');
    }
    let (total, groups) = totals(rb, results, manual);
    for (name, c) in &groups {
        let _ = writeln!(out, "{name}: {}", counts_text(c));
    }
    let _ = writeln!(out, "\nTOTAL: {}", counts_text(&total));
    r.clean(&out)
}

pub fn run_json(rb: &Runbook, results: &[CheckResult], manual: &[usize], r: &Redactor) -> Value {
    let (total, groups) = totals(rb, results, manual);
    let counts = |c: &Counts| json!({ "passed": c.passed, "failed": c.failed, "error": c.error, "skipped": c.skipped, "manual": c.manual });
    let checks: Vec<Value> = results
        .iter()
        .map(|res| {
            let item = &rb.items[res.check.item];
            json!({
                "item": item.id, "address": item.address, "title": item.title,
                "line": item.loc.line, "check_line": res.check.loc.line,
                "kind": res.check.kind, "target": res.check.probe.target(),
                "outcome": res.outcome.as_str(),
                "message": match &res.outcome { Outcome::Error(e) | Outcome::Skipped(e) => Some(e.clone()), _ => None },
                "expect": res.check.expect.source,
                "actual": res.actual.iter().cloned().collect::<serde_json::Map<_, _>>(),
                "fills": res.fills.iter().map(|(k, v)| (k.clone(), json!(v))).collect::<serde_json::Map<_, _>>(),
                "attempts": res.attempts, "duration_ms": res.duration.as_secs_f64() * 1e3,
                "observation": res.observation,
            })
        })
        .collect();
    let v = json!({
        "file": rb.path,
        "summary": counts(&total),
        "groups": groups.iter().map(|(n, c)| json!({ "title": n, "counts": counts(c) })).collect::<Vec<_>>(),
        "checks": checks,
        "manual": manual_json(rb, manual),
    });
    // redact inside every string, observation included
    r.clean_json(v)
}

/// JUnit XML: one suite per group, one case per automated check; a failed
/// condition is `<failure>`, a check that could not observe `<error>`.
pub fn run_junit(rb: &Runbook, results: &[CheckResult], r: &Redactor) -> String {
    use quick_xml::escape::escape;
    let mut suites: Vec<(GroupKey, Vec<&CheckResult>)> = Vec::new();
    for res in results {
        let it = &rb.items[res.check.item];
        let key = (it.stage, it.group);
        match suites.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => v.push(res),
            None => suites.push((key, vec![res])),
        }
    }
    let count = |v: &[&CheckResult], o: &str| v.iter().filter(|r| r.outcome.as_str() == o).count();
    let all: Vec<&CheckResult> = results.iter().collect();
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<testsuites name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"{}\">",
        escape(rb.path.as_str()),
        all.len(),
        count(&all, "failed"),
        count(&all, "error"),
        count(&all, "skipped")
    );
    for ((s, g), cases) in &suites {
        let time: f64 = cases.iter().map(|c| c.duration.as_secs_f64()).sum();
        let _ = writeln!(
            out,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"{}\" time=\"{time:.3}\">",
            escape(group_title(rb, *s, *g).as_str()),
            cases.len(),
            count(cases, "failed"),
            count(cases, "error"),
            count(cases, "skipped")
        );
        for res in cases {
            let it = &rb.items[res.check.item];
            let _ = write!(
                out,
                "    <testcase name=\"{} {} — {} {}\" classname=\"{}\" file=\"{}\" line=\"{}\" time=\"{:.3}\"",
                escape(it.address.as_str()),
                escape(it.title.as_str()),
                res.check.kind,
                escape(one_line(&res.check.probe.target()).as_str()),
                escape(it.id.as_str()),
                escape(rb.path.as_str()),
                it.loc.line,
                res.duration.as_secs_f64()
            );
            match &res.outcome {
                Outcome::Passed => out.push_str("/>\n"),
                Outcome::Failed => {
                    let actual: Vec<String> = res
                        .actual
                        .iter()
                        .map(|(k, v)| format!("{k} = {}", show_value(v)))
                        .collect();
                    let _ = writeln!(
                        out,
                        ">\n      <failure message=\"expected {}\" type=\"condition\">actual: {}</failure>\n    </testcase>",
                        escape(res.check.expect.source.as_str()),
                        escape(actual.join(", ").as_str())
                    );
                }
                Outcome::Error(e) => {
                    let _ = writeln!(
                        out,
                        ">\n      <error message=\"{}\" type=\"could-not-observe\"/>\n    </testcase>",
                        escape(e.as_str())
                    );
                }
                Outcome::Skipped(why) => {
                    let _ = writeln!(
                        out,
                        ">\n      <skipped message=\"{}\"/>\n    </testcase>",
                        escape(why.as_str())
                    );
                }
            }
        }
        out.push_str("  </testsuite>\n");
    }
    out.push_str("</testsuites>\n");
    r.clean(&out)
}
