//! From a runbook and its variables to the checks that would run.

use crate::condition::{Condition, ConditionError};
use golive_probe::{Probe, Spec, SpecError, Vars, kind, parse_duration};
use golive_runbook::{Annotation, Diagnostic, ItemKind, Loc, Runbook, Severity, Target};
use std::sync::Arc;
use std::time::Duration;

/// One automated check, ready to run.
#[derive(Debug)]
pub struct Check {
    /// Index of the item in `Runbook::items`.
    pub item: usize,
    pub kind: &'static str,
    pub probe: Box<dyn Probe>,
    pub expect: Condition,
    /// Blank label → expression whose value fills it.
    pub fills: Vec<(String, Condition)>,
    pub timeout: Duration,
    /// `for`: how long a failure must last, at every evaluation, before a
    /// watch counts it (zero: at once).
    pub hold: Duration,
    /// `on_fail`: `rollback` raises the rollback decision when it counts.
    pub on_fail: Option<String>,
    pub retries: u32,
    pub backoff: Duration,
    /// Where the annotation is (failures point here and at the item).
    pub loc: Loc,
    /// The run's plain variables, readable in conditions as `vars.NAME`
    /// (secrets are never put here).
    pub vars: serde_json::Value,
}

impl Check {
    /// The fields of its own observation that its condition or fills
    /// compare with a baseline (`baseline.error_rate` → `error_rate`), in
    /// the order first read.
    pub fn baseline_fields(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        let all = std::iter::once(&self.expect).chain(self.fills.iter().map(|(_, c)| c));
        for c in all {
            for p in c.paths() {
                if let Some(f) = p.strip_prefix("baseline.")
                    && !out.contains(&f)
                {
                    out.push(f);
                }
            }
        }
        out
    }
}

/// Why the document, or one of its annotations, cannot run as written: a
/// finding pointing at the annotation.
#[derive(Debug, Clone)]
pub struct Problem {
    /// The item the annotation belongs to, if it belongs to one.
    pub item: Option<usize>,
    pub diagnostic: Diagnostic,
}

/// What `golive run` would do.
#[derive(Debug, Default)]
pub struct Plan {
    pub checks: Vec<Arc<Check>>,
    /// Items with no check: they wait for a person.
    pub manual: Vec<usize>,
    /// What keeps the plan from running: when there is any, nothing runs.
    pub problems: Vec<Problem>,
}

/// The findings that refuse a whole document, whatever `--only` selects:
/// what [`golive_runbook::lint::blocking`] finds (annotations that do not
/// parse, unknown keys, wrong types, nesting past the limit) and what
/// [`crate::lint::lint_checks`] finds (unknown kinds, options the kind does
/// not take, conditions that do not compile). A broken annotation must never
/// leave its item to a person unnoticed, nor run with the key it misspells
/// ignored.
pub fn refusals(rb: &Runbook) -> Vec<Problem> {
    let mut diags = golive_runbook::lint::blocking(rb);
    // variables are the run's, and only the checks selected must have theirs
    // (see `check`)
    diags.extend(
        crate::lint::lint_checks(rb, None)
            .into_iter()
            .filter(|d| d.severity == Severity::Error),
    );
    diags.sort_by(|a, b| a.loc.start.cmp(&b.loc.start).then(a.code.cmp(b.code)));
    diags
        .into_iter()
        .map(|diagnostic| Problem {
            item: None,
            diagnostic,
        })
        .collect()
}

/// Plan every check of `rb`, or only those under the names in `only`
/// (item, group or stage ids or addresses). `defaults` are options given for
/// the whole run (`ca_file`, `nameserver`): each check of a kind that takes
/// one gets it unless its annotation says otherwise. Variables the document
/// declares with a default (`vars = { NAME = "value" }` in a `golive` block
/// before the first stage) are bound when the caller did not bind them.
pub fn plan(
    rb: &Runbook,
    vars: &Vars,
    only: &[String],
    defaults: &toml::Table,
) -> Result<Plan, String> {
    let selected = select(rb, only)?;
    let problems = refusals(rb);
    if !problems.is_empty() {
        return Ok(Plan {
            problems,
            ..Plan::default()
        });
    }
    let vars = &with_document_defaults(rb, vars)?;
    let plain: serde_json::Map<String, serde_json::Value> = vars
        .plain()
        .map(|(k, v)| (k.to_string(), serde_json::Value::String(v.to_string())))
        .collect();
    let plain = serde_json::Value::Object(plain);
    let mut out = Plan::default();
    for (i, item) in rb.items.iter().enumerate() {
        if !is_selected(&selected, i) {
            continue;
        }
        let mut any = false;
        for a in item.annotations.iter().filter(|a| is_check(a)) {
            any = true;
            let commands = item
                .commands
                .iter()
                .flat_map(|b| b.commands.iter())
                .map(|c| (c.text.clone(), c.expected.clone()))
                .collect();
            match check(i, a, vars, commands, defaults) {
                Ok(mut c) => {
                    c.vars = plain.clone();
                    out.checks.push(Arc::new(c))
                }
                Err((loc, message)) => out.problems.push(Problem {
                    item: Some(i),
                    diagnostic: Diagnostic {
                        severity: Severity::Error,
                        code: "check-invalid",
                        message,
                        loc,
                        label: Some("this check cannot run".into()),
                        help: None,
                    },
                }),
            }
        }
        if !any && item.kind != ItemKind::Step {
            out.manual.push(i);
        }
    }
    Ok(out)
}

/// Whether item `i` is in the selection: one look-up, however many items.
fn is_selected(selected: &[bool], i: usize) -> bool {
    #[cfg(test)]
    tests::EXAMINED.with(|n| n.set(n.get() + 1));
    selected.get(i).copied().unwrap_or(false)
}

/// An annotation that declares a check (`check = …`).
/// A check a person put there or reviewed: a block `golive suggest`
/// proposed (`suggested = "…"`) runs only once that line is removed.
pub fn is_check(a: &Annotation) -> bool {
    a.table
        .as_ref()
        .is_some_and(|t| t.contains_key("check") && !t.contains_key("suggested"))
}

/// Which items `only` names (stages, groups or items, by id or address;
/// none: every item), as one flag per item.
pub fn select(rb: &Runbook, only: &[String]) -> Result<Vec<bool>, String> {
    if only.is_empty() {
        return Ok(vec![true; rb.items.len()]);
    }
    let mut out = Vec::new();
    for name in only {
        let n = name.trim().trim_matches('/');
        let stage = rb.stages.iter().position(|s| s.id == n || s.address == n);
        let group = rb.groups().find(|(_, g)| g.id == n || g.address == n);
        if let Some(s) = stage {
            out.extend(rb.stages[s].all_items());
        } else if let Some((_, g)) = group {
            out.extend(g.items.iter().copied());
        } else {
            match rb.resolve(n) {
                Ok(Target::Item(i)) | Ok(Target::SubCheck(i, _)) => out.push(i),
                Err(e) => return Err(format!("--only {name}: {e}")),
            }
        }
    }
    let mut selected = vec![false; rb.items.len()];
    for i in out {
        selected[i] = true;
    }
    Ok(selected)
}

fn condition_error(a: &Annotation, key: &str, e: ConditionError) -> (Loc, String) {
    (a.loc, format!("`{key}`: {e}"))
}

/// The caller's variables plus the document's declared defaults.
fn with_document_defaults(rb: &Runbook, vars: &Vars) -> Result<Vars, String> {
    let mut out = vars.clone();
    for a in &rb.header.annotations {
        let Some(toml::Value::Table(t)) = a.table.as_ref().and_then(|t| t.get("vars")) else {
            continue;
        };
        for (k, v) in t {
            if out.is_bound(k) {
                continue;
            }
            let raw = v.as_str().map_or_else(|| v.to_string(), str::to_string);
            // a default may use other variables: `http://[DOMAIN]/`
            match out.substitute(&raw) {
                Ok(value) => out.set(k, &value),
                Err(_) => continue,
            }
        }
    }
    Ok(out)
}

fn check(
    item: usize,
    a: &Annotation,
    vars: &Vars,
    commands: Vec<(String, Option<String>)>,
    defaults: &toml::Table,
) -> Result<Check, (Loc, String)> {
    let written = a
        .table
        .as_ref()
        .ok_or((a.loc, "the annotation does not parse".to_string()))?;
    let name = written.get("check").and_then(|v| v.as_str()).unwrap_or("");
    let k = kind(name).ok_or_else(|| {
        let known: Vec<&str> = golive_probe::KINDS.iter().map(|k| k.name).collect();
        (
            a.loc,
            format!("unknown check kind `{name}` (known: {})", known.join(", ")),
        )
    })?;
    let mut merged = written.clone();
    for (key, value) in defaults {
        if k.options.contains(&key.as_str()) && !merged.contains_key(key) {
            merged.insert(key.clone(), value.clone());
        }
    }
    let table = &merged;
    let duration = |key: &str, default: Duration| -> Result<Duration, (Loc, String)> {
        match table.get(key) {
            None => Ok(default),
            Some(toml::Value::String(s)) => {
                parse_duration(s).map_err(|e| (a.loc, format!("`{key}`: {e}")))
            }
            Some(_) => Err((a.loc, format!("`{key}` must be a duration such as \"5s\""))),
        }
    };
    let timeout = duration("timeout", k.default_timeout)?;
    let backoff = duration("backoff", Duration::from_millis(500))?;
    let hold = duration("for", Duration::ZERO)?;
    let on_fail = match table.get("on_fail") {
        None => None,
        Some(toml::Value::String(s)) if ["rollback", "stop", "alert"].contains(&s.as_str()) => {
            Some(s.clone())
        }
        Some(_) => {
            return Err((
                a.loc,
                "`on_fail` is \"rollback\", \"stop\" or \"alert\"".into(),
            ));
        }
    };
    let retries = match table.get("retries") {
        None => 0,
        Some(toml::Value::Integer(n)) if (0..=20).contains(n) => *n as u32,
        Some(_) => {
            return Err((
                a.loc,
                "`retries` must be a whole number from 0 to 20".into(),
            ));
        }
    };
    let spec = Spec {
        kind: k.name,
        table,
        vars,
        commands,
        timeout,
    };
    let probe = (k.build)(&spec).map_err(|e: SpecError| (a.loc, e.to_string()))?;
    let timeout = golive_probe::timeout_for(
        &*probe,
        table.contains_key("timeout").then_some(timeout),
        k.default_timeout,
        "`timeout`",
    )
    .map_err(|e| (a.loc, e))?;
    let expect_src = table
        .get("expect")
        .and_then(|v| v.as_str())
        .unwrap_or(k.default_expect);
    let expect = Condition::compile(expect_src).map_err(|e| condition_error(a, "expect", e))?;
    let mut fills = Vec::new();
    if let Some(toml::Value::Table(f)) = table.get("fill") {
        for (label, v) in f {
            let src = v
                .as_str()
                .ok_or((a.loc, format!("fill `{label}` must be a string")))?;
            let c = Condition::compile(src).map_err(|e| condition_error(a, "fill", e))?;
            fills.push((label.clone(), c));
        }
    }
    // a variable read that the run does not bind would fail at every
    // evaluation: refused now, with what to pass (secrets are not readable)
    for (key, c) in
        std::iter::once(("expect", &expect)).chain(fills.iter().map(|(_, c)| ("fill", c)))
    {
        for path in c.reads() {
            if let Some(name) = path
                .strip_prefix("vars.")
                .map(|n| n.split('.').next().unwrap_or(n))
                && !vars.plain().any(|(k, _)| k == name)
            {
                return Err((
                    a.loc,
                    format!(
                        "`{key}` reads `vars.{name}`, which this run does not bind: pass --var {name}=… (a secret is never readable by a condition)"
                    ),
                ));
            }
        }
    }
    Ok(Check {
        item,
        kind: k.name,
        probe,
        expect,
        fills,
        timeout,
        hold,
        on_fail,
        retries,
        backoff,
        loc: a.loc,
        vars: serde_json::Value::Null,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    thread_local! {
        /// Entries of the selection looked at to decide which items to plan.
        pub(super) static EXAMINED: Cell<usize> = const { Cell::new(0) };
    }

    /// `plan` took 1 s on 5 MB, 10 s on 20 MB and over a minute on 50 MB:
    /// whether an item was selected was looked up in a list of every
    /// selected item, once per item.
    #[test]
    fn planning_a_big_document_looks_at_each_item_once() {
        let items = 20_000;
        let mut text = String::from("# Big\n\n## Checks\n\n");
        for i in 0..items {
            text.push_str(&format!("- [ ] **Item {i}**\n"));
        }
        let rb = golive_runbook::parse_runbook("big.md", &text);
        EXAMINED.with(|n| n.set(0));
        let p = plan(&rb, &Vars::new(), &[], &toml::Table::new()).expect("plan");
        assert_eq!(p.manual.len(), items);
        let examined = EXAMINED.with(Cell::get);
        assert!(
            examined <= 2 * items,
            "{examined} look-ups for {items} items"
        );
    }
}
