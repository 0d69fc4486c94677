//! Lint of what the runbook crate cannot judge alone: check kinds, the
//! options each kind takes, and CEL expressions (compiled here, with the
//! fault's position mapped into the Markdown file).

use crate::condition::Condition;
use golive_runbook::{Annotation, Diagnostic, Loc, Runbook, Severity};

/// Keys the engine reads on any annotation: gates, rollback and watching.
const ENGINE_KEYS: &[&str] = &[
    "gate",
    "on_fail",
    "watch",
    "for",
    "every",
    "vars",
    "notify",
    "suggested",
    "self_approval",
    "stale_signoffs",
    "remind_after",
    "expire_after",
    "approvals",
    "locations",
];

/// Findings about the `golive` check annotations of `rb`. `vars` are the
/// names a run binds (`--var`), when known: a condition reading `vars.NAME`
/// that neither they nor the document's `vars` defaults bind is then an
/// error. Without them, a name the document neither declares nor uses as a
/// placeholder (`[NAME]`) is a warning.
pub fn lint_checks(rb: &Runbook, vars: Option<&[String]>) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let mut declared: Vec<String> = rb
        .all_annotations()
        .filter_map(|a| a.table.as_ref()?.get("vars")?.as_table())
        .flat_map(|t| t.keys().cloned())
        .collect();
    match vars {
        Some(given) => declared.extend(given.iter().cloned()),
        // without the run's variables, a name the document uses as a
        // placeholder (`[VERSION]`) is one a run binds: it cannot run
        // without it
        None => declared.extend(
            golive_runbook::text::scan_placeholders(&rb.source)
                .into_iter()
                .map(|(_, _, name)| name),
        ),
    }
    let scope = Scope {
        vars: &declared,
        known: vars.is_some(),
    };
    for a in rb.all_annotations() {
        let Some(table) = &a.table else { continue };
        let kind = table
            .get("check")
            .and_then(|v| v.as_str())
            .and_then(golive_probe::kind);
        if let Some(v) = table.get("check") {
            let name = v.as_str().unwrap_or("");
            match golive_probe::kind(name) {
                None => {
                    let known: Vec<&str> = golive_probe::KINDS.iter().map(|k| k.name).collect();
                    out.push(Diagnostic {
                        severity: Severity::Error,
                        code: "unknown-check",
                        message: format!("unknown check kind `{name}`"),
                        loc: value_loc(rb, a, "check").unwrap_or(a.loc),
                        label: None,
                        help: Some(format!("known kinds: {}", known.join(", "))),
                    });
                }
                Some(kind) => {
                    for key in table.keys() {
                        let common = golive_probe::COMMON_KEYS.contains(&key.as_str())
                            || ENGINE_KEYS.contains(&key.as_str());
                        let known_anywhere = golive_runbook::lint::ANNOTATION_KEYS
                            .iter()
                            .any(|(k, _)| k == key);
                        if !common && known_anywhere && !kind.options.contains(&key.as_str()) {
                            out.push(Diagnostic {
                                severity: Severity::Error,
                                code: "unknown-option",
                                message: format!("a {} check has no option `{key}`", kind.name),
                                loc: key_loc(rb, a, key).unwrap_or(a.loc),
                                label: None,
                                help: Some(format!(
                                    "{} options: {}",
                                    kind.name,
                                    if kind.options.is_empty() {
                                        "none".to_string()
                                    } else {
                                        kind.options.join(", ")
                                    }
                                )),
                            });
                        }
                    }
                }
            }
        }
        for key in ["expect", "gate"] {
            if let Some(toml::Value::String(src)) = table.get(key) {
                condition(rb, a, key, src, kind, &scope, &mut out);
            }
        }
        if let Some(toml::Value::Table(fills)) = table.get("fill") {
            for v in fills.values() {
                if let toml::Value::String(src) = v {
                    condition(rb, a, "fill", src, kind, &scope, &mut out);
                }
            }
        }
    }
    out
}

/// What a condition may read besides its kind's observation.
struct Scope<'a> {
    /// Variable names bound: the document's `vars` defaults, and those the
    /// run gives when `known`.
    vars: &'a [String],
    known: bool,
}

/// The closest of `names` to `name`, when close enough to be a slip.
fn did_you_mean<'a>(name: &str, names: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    names
        .map(|n| (golive_runbook::text::edit_distance(name, n), n))
        .filter(|(d, _)| *d <= 2.max(name.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, n)| n)
}

/// A path a condition reads that the check will not have: a field the
/// kind does not observe, or a variable nothing binds.
fn unknown_read(
    path: &str,
    kind: &golive_probe::Kind,
    scope: &Scope,
) -> Option<(Severity, &'static str, String, String)> {
    let mut parts = path.split('.');
    let root = parts.next().unwrap_or("");
    let (root, rest, via) = match root {
        "vars" => {
            let name = parts.next()?;
            if scope.vars.iter().any(|v| v == name) {
                return None;
            }
            let hint = did_you_mean(name, scope.vars.iter().map(String::as_str))
                .map(|n| format!("did you mean `vars.{n}`? "))
                .unwrap_or_default();
            return Some(if scope.known {
                (
                    Severity::Error,
                    "unbound-var",
                    "neither the run nor the document binds it".to_string(),
                    format!(
                        "{hint}pass --var {name}=… or declare it: `vars = {{ {name} = \"…\" }}` in a `golive` block before the first stage"
                    ),
                )
            } else {
                (
                    Severity::Warning,
                    "unbound-var",
                    format!("the document does not declare it, so a run needs --var {name}=…"),
                    format!(
                        "{hint}declare a default: `vars = {{ {name} = \"…\" }}` in a `golive` block before the first stage"
                    ),
                )
            });
        }
        "baseline" => (parts.next()?, parts.next(), "baseline."),
        other => (other, parts.next(), ""),
    };
    let fields = || {
        kind.observes
            .iter()
            .map(|(k, _)| *k)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let Some((_, nested)) = kind.observes.iter().find(|(k, _)| *k == root) else {
        let hint = did_you_mean(root, kind.observes.iter().map(|(k, _)| *k))
            .map(|n| format!("did you mean `{via}{n}`? "))
            .unwrap_or_default();
        return Some((
            Severity::Error,
            "unknown-field",
            format!("this {} check observes no `{via}{root}`", kind.name),
            format!("{hint}{} observes: {}", kind.name, fields()),
        ));
    };
    let sub = rest?;
    if nested.is_empty() || nested.contains(&sub) {
        return None;
    }
    let hint = did_you_mean(sub, nested.iter().copied())
        .map(|n| format!("did you mean `{via}{root}.{n}`? "))
        .unwrap_or_default();
    Some((
        Severity::Error,
        "unknown-field",
        format!("this {} check's `{root}` has no `{sub}`", kind.name),
        format!("{hint}`{root}` has: {}", nested.join(", ")),
    ))
}

fn condition(
    rb: &Runbook,
    a: &Annotation,
    key: &str,
    src: &str,
    kind: Option<&golive_probe::Kind>,
    scope: &Scope,
    out: &mut Vec<Diagnostic>,
) {
    match Condition::compile(src) {
        Ok(c) => {
            for path in c.reads() {
                let Some(kind) = kind else { continue };
                let Some((severity, code, message, help)) = unknown_read(path, kind, scope) else {
                    continue;
                };
                let loc = string_loc(rb, a, src)
                    .and_then(|start| {
                        let at = src.find(path.as_str())?;
                        let s = start + at;
                        Some(rb.lines.loc(&rb.source, s, s + path.len()))
                    })
                    .or_else(|| value_loc(rb, a, key))
                    .unwrap_or(a.loc);
                out.push(Diagnostic {
                    severity,
                    code,
                    message: format!("`{key}` reads `{path}`: {message}"),
                    loc,
                    label: None,
                    help: Some(help),
                });
            }
        }
        Err(e) => condition_syntax(rb, a, key, src, e, out),
    }
}

fn condition_syntax(
    rb: &Runbook,
    a: &Annotation,
    key: &str,
    src: &str,
    e: crate::ConditionError,
    out: &mut Vec<Diagnostic>,
) {
    {
        // point at the fault inside the string when the string is written
        // plainly on one line, else at the value
        let loc = string_loc(rb, a, src)
            .and_then(|start| {
                if e.line != 1 {
                    return None;
                }
                let off: usize = src
                    .chars()
                    .take(e.column.saturating_sub(1))
                    .map(char::len_utf8)
                    .sum();
                let s = start + off.min(src.len());
                Some(
                    rb.lines
                        .loc(&rb.source, s, (s + 1).min(start + src.len()).max(s)),
                )
            })
            .or_else(|| value_loc(rb, a, key))
            .unwrap_or(a.loc);
        out.push(Diagnostic {
            severity: Severity::Error,
            code: "condition-syntax",
            message: format!("`{key}` is not a valid CEL expression: {}", e.message),
            loc,
            label: None,
            help: Some(
                "conditions are CEL over the probe's observation, e.g. \
                 `status == 200 && json.status == 'healthy'`; docs/checks.md lists the fields"
                    .into(),
            ),
        });
    }
}

/// Byte offset in the file where the literal text `src` starts inside the
/// annotation's body (within its quotes).
fn string_loc(rb: &Runbook, a: &Annotation, src: &str) -> Option<usize> {
    let body = &rb.source[a.body.start..a.body.end];
    for q in ['"', '\''] {
        let needle = format!("{q}{src}{q}");
        if let Some(i) = body.find(&needle) {
            return Some(a.body.start + i + 1);
        }
    }
    None
}

fn key_line(rb: &Runbook, a: &Annotation, key: &str) -> Option<(usize, usize)> {
    let body = &rb.source[a.body.start..a.body.end];
    let mut off = 0;
    for line in body.split_inclusive('\n') {
        let t = line.trim_start();
        if let Some(rest) = t.strip_prefix(key)
            && rest.trim_start().starts_with('=')
        {
            let start = a.body.start + off + (line.len() - t.len());
            return Some((start, a.body.start + off + line.trim_end().len()));
        }
        off += line.len();
    }
    None
}

fn key_loc(rb: &Runbook, a: &Annotation, key: &str) -> Option<Loc> {
    key_line(rb, a, key).map(|(s, _)| rb.lines.loc(&rb.source, s, s + key.len()))
}

fn value_loc(rb: &Runbook, a: &Annotation, key: &str) -> Option<Loc> {
    let (s, e) = key_line(rb, a, key)?;
    let line = &rb.source[s..e];
    let eq = line.find('=')?;
    let vs = s + eq + 1 + (line[eq + 1..].len() - line[eq + 1..].trim_start().len());
    Some(rb.lines.loc(&rb.source, vs, e.max(vs)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use golive_runbook::lint::ANNOTATION_KEYS;

    /// plan refuses a key lint does not know, so every key a probe kind or
    /// the engine reads must be in the runbook's list of annotation keys:
    /// else a valid option would refuse the document.
    #[test]
    fn every_key_a_kind_or_the_engine_reads_is_a_known_annotation_key() {
        let known = |k: &str| ANNOTATION_KEYS.iter().any(|(n, _)| *n == k);
        let mut missing: Vec<String> = Vec::new();
        for kind in golive_probe::KINDS {
            for k in kind.options {
                if !known(k) {
                    missing.push(format!("{}: {k}", kind.name));
                }
            }
        }
        for k in golive_probe::COMMON_KEYS.iter().chain(ENGINE_KEYS) {
            if !known(k) {
                missing.push(format!("common: {k}"));
            }
        }
        assert!(missing.is_empty(), "not in ANNOTATION_KEYS: {missing:?}");
    }
}
