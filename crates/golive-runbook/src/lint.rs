//! Lint: what is wrong with a document, each finding pointing at its span.

use crate::diagnostic::{Diagnostic, Severity};
use crate::loc::Loc;
use crate::model::{Annotation, Runbook};
use crate::text::{edit_distance, strip_trailing_parens};
use std::collections::{BTreeMap, HashMap};

/// The value an annotation key takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    String,
    Integer,
    Bool,
    /// A table of strings (`fill = { "Label" = "expr" }`, `headers`, `env`).
    StringTable,
    /// A string or an array of strings.
    Strings,
    Any,
}

/// Every key a `golive` block may hold, with its type. The reference for each
/// is docs/format.md.
pub const ANNOTATION_KEYS: &[(&str, KeyType)] = &[
    ("check", KeyType::String),
    ("suggested", KeyType::String),
    ("target", KeyType::String),
    ("expect", KeyType::String),
    ("fill", KeyType::StringTable),
    ("timeout", KeyType::String),
    ("retries", KeyType::Integer),
    ("backoff", KeyType::String),
    ("gate", KeyType::String),
    ("on_fail", KeyType::String),
    ("watch", KeyType::String),
    ("for", KeyType::String),
    ("every", KeyType::String),
    ("auto_sign", KeyType::Bool),
    ("vars", KeyType::StringTable),
    ("notify", KeyType::Strings),
    // approval rules (golive-deploy's approval module)
    ("self_approval", KeyType::Bool),
    ("stale_signoffs", KeyType::Bool),
    ("remind_after", KeyType::String),
    ("expire_after", KeyType::String),
    ("approvals", KeyType::Integer),
    // where a check runs (golive-deploy's agents module)
    ("locations", KeyType::Strings),
    // probe options
    ("method", KeyType::String),
    ("headers", KeyType::StringTable),
    ("body", KeyType::String),
    ("follow_redirects", KeyType::Bool),
    ("max_redirects", KeyType::Integer),
    ("max_body", KeyType::Integer),
    ("legacy", KeyType::Bool),
    ("ca_file", KeyType::String),
    ("insecure", KeyType::Bool),
    ("sni", KeyType::String),
    ("record", KeyType::String),
    ("nameserver", KeyType::String),
    ("port", KeyType::Integer),
    ("path", KeyType::String),
    ("shell", KeyType::String),
    ("env", KeyType::StringTable),
    ("cwd", KeyType::String),
    ("args", KeyType::Strings),
    ("query", KeyType::String),
    ("command", KeyType::Any),
    // load, ratelimit
    ("requests", KeyType::Integer),
    ("duration", KeyType::String),
    ("concurrency", KeyType::Integer),
    ("threads", KeyType::Integer),
    ("rate", KeyType::Any),
    ("http2", KeyType::Bool),
    ("request_timeout", KeyType::String),
    ("burst", KeyType::Integer),
    // metrics, prometheus, postgres
    ("interval", KeyType::String),
    ("total", KeyType::String),
    ("errors", KeyType::String),
    ("histogram", KeyType::String),
    ("select", KeyType::StringTable),
    ("range", KeyType::String),
    ("step", KeyType::String),
    ("version_query", KeyType::String),
    // webhook
    ("format", KeyType::String),
    ("routing_key", KeyType::String),
    ("summary", KeyType::String),
];

/// What to lint against.
#[derive(Debug, Clone, Default)]
pub struct LintOptions {
    /// The variables of the run. When given, every placeholder used in a
    /// command block must be bound.
    pub vars: Option<BTreeMap<String, String>>,
}

/// Every finding about `rb`, in document order.
pub fn lint(rb: &Runbook, opts: &LintOptions) -> Vec<Diagnostic> {
    let mut out = blocking(rb);
    counts(rb, &mut out);
    repeated_titles(rb, &mut out);
    unreviewed_suggestions(rb, &mut out);
    if let Some(vars) = &opts.vars {
        unbound(rb, vars, &mut out);
    }
    for f in rb.fences.iter().filter(|f| !f.closed) {
        let first_line_end = rb.source[f.loc.start..f.loc.end]
            .find(['\r', '\n'])
            .map_or(f.loc.end, |i| f.loc.start + i);
        out.push(Diagnostic {
            severity: Severity::Error,
            code: "unclosed-fence",
            message: "code block is never closed".into(),
            loc: span(rb, f.loc.start, first_line_end),
            label: Some("opened here".into()),
            help: Some(
                "close it with a fence line (``` or ~~~) as long as the opening one; \
                 everything after it is read as code"
                    .into(),
            ),
        });
    }
    heading_skips(rb, &mut out);
    out.sort_by(|a, b| a.loc.start.cmp(&b.loc.start).then(a.code.cmp(b.code)));
    out
}

/// The findings that keep a document from running, in document order: parts
/// golive did not read ([`Runbook::limits`]), and `golive` blocks that do not
/// parse, use a key golive does not know, or give a key a value of the wrong
/// type. Such a block would otherwise run as something other than what is
/// written (or not at all), so planning refuses the document; [`lint()`]
/// reports them with the rest.
pub fn blocking(rb: &Runbook) -> Vec<Diagnostic> {
    let mut out = rb.limits.clone();
    for a in rb.all_annotations() {
        annotation(rb, a, &mut out);
    }
    out.sort_by(|a, b| a.loc.start.cmp(&b.loc.start).then(a.code.cmp(b.code)));
    out
}

fn span(rb: &Runbook, start: usize, end: usize) -> Loc {
    rb.lines.loc(&rb.source, start, end)
}

fn counts(rb: &Runbook, out: &mut Vec<Diagnostic>) {
    let mut check = |heading: &crate::model::Heading, found: usize| {
        if let Some((n, loc)) = heading.declared.items
            && n != found
        {
            let title = strip_trailing_parens(&heading.text);
            out.push(Diagnostic {
                severity: Severity::Error,
                code: "count-mismatch",
                message: format!(
                    "{title} declares {n} item{}, has {found}",
                    if n == 1 { "" } else { "s" }
                ),
                loc,
                label: Some("declared here".into()),
                help: Some(format!(
                    "add or remove items, or change the heading to ({found} item{})",
                    if found == 1 { "" } else { "s" }
                )),
            });
        }
    };
    for stage in &rb.stages {
        check(&stage.heading, stage.all_items().count());
        for g in &stage.groups {
            check(&g.heading, g.items.len());
        }
    }
}

fn first_line(rb: &Runbook, loc: &Loc) -> Loc {
    let text = &rb.source[loc.start..loc.end];
    let end = text.find(['\r', '\n']).map_or(loc.end, |i| loc.start + i);
    span(rb, loc.start, end)
}

/// Blocks `golive suggest` proposed that nobody has reviewed yet: they do
/// not run until their `suggested` line is removed.
fn unreviewed_suggestions(rb: &Runbook, out: &mut Vec<Diagnostic>) {
    for a in rb.all_annotations() {
        let Some(t) = &a.table else { continue };
        if !t.contains_key("suggested") {
            continue;
        }
        let loc = key_span(rb, a, "suggested").unwrap_or(a.loc);
        out.push(Diagnostic {
            severity: Severity::Warning,
            code: "unreviewed-suggestion",
            message: "a suggested check nobody has reviewed yet: it does not run".into(),
            loc,
            label: Some("proposed by golive suggest".into()),
            help: Some(
                "read the block, put in the values only the team knows, then delete this line"
                    .into(),
            ),
        });
    }
}

/// The span of the line of `key` in an annotation's body.
fn key_span(rb: &Runbook, a: &Annotation, key: &str) -> Option<Loc> {
    let body = &rb.source[a.body.start..a.body.end];
    let mut at = a.body.start;
    for line in body.split_inclusive('\n') {
        let t = line.trim_start_matches([' ', '\t', '>']);
        if t.strip_prefix(key)
            .is_some_and(|r| r.trim_start().starts_with('='))
        {
            let start = at + (line.len() - t.len());
            let end = at + line.trim_end_matches(['\n', '\r']).len();
            return Some(span(rb, start, end.max(start)));
        }
        at += line.len();
    }
    None
}

fn repeated_titles(rb: &Runbook, out: &mut Vec<Diagnostic>) {
    for item in &rb.items {
        let Some(first) = item.repeats else { continue };
        let other = &rb.items[first];
        out.push(Diagnostic {
            severity: Severity::Warning,
            code: "repeated-title",
            message: format!(
                "the title \"{}\" is used again here: this item's id is `{}`",
                item.title, item.id
            ),
            loc: first_line(rb, &item.loc),
            label: Some(format!("first used on line {}", other.loc.line)),
            help: Some(
                "the ids follow the order of the items: a change of title or order changes \
                 them, so name items by address or give them different titles if that matters"
                    .into(),
            ),
        });
    }
}

fn annotation(rb: &Runbook, a: &Annotation, out: &mut Vec<Diagnostic>) {
    if let Some((msg, loc)) = &a.error {
        out.push(Diagnostic {
            severity: Severity::Error,
            code: "annotation-syntax",
            message: format!("annotation is not valid TOML: {msg}"),
            loc: *loc,
            label: None,
            help: Some(
                "a golive block holds TOML: one `key = value` per line, strings in \
                 double quotes"
                    .into(),
            ),
        });
    }
    let Some(table) = &a.table else { return };
    let spans = key_spans(rb, a, table);
    for (key, value) in table {
        let loc = spans.get(key.as_str()).copied().unwrap_or(a.loc);
        match ANNOTATION_KEYS.iter().find(|(k, _)| k == key) {
            None => {
                let best = ANNOTATION_KEYS
                    .iter()
                    .map(|(k, _)| (edit_distance(key, k), *k))
                    .min();
                let help = match best {
                    Some((d, k)) if d <= 2.max(key.len() / 3) => format!("did you mean `{k}`?"),
                    _ => format!(
                        "known keys: {}",
                        ANNOTATION_KEYS
                            .iter()
                            .map(|(k, _)| *k)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                };
                out.push(Diagnostic {
                    severity: Severity::Error,
                    code: "unknown-key",
                    message: format!("unknown annotation key `{key}`"),
                    loc,
                    label: None,
                    help: Some(help),
                });
            }
            Some((_, ty)) if !type_ok(*ty, value) => {
                out.push(Diagnostic {
                    severity: Severity::Error,
                    code: "annotation-type",
                    message: format!("`{key}` must be {}", type_name(*ty)),
                    loc,
                    label: Some(format!("found {}", value.type_str())),
                    help: None,
                });
            }
            Some(_) => {}
        }
    }
}

fn type_ok(ty: KeyType, v: &toml::Value) -> bool {
    match ty {
        KeyType::String => v.is_str(),
        KeyType::Integer => v.is_integer(),
        KeyType::Bool => v.is_bool(),
        KeyType::StringTable => v
            .as_table()
            .is_some_and(|t| t.values().all(toml::Value::is_str)),
        KeyType::Strings => {
            v.is_str()
                || v.as_array()
                    .is_some_and(|a| a.iter().all(toml::Value::is_str))
        }
        KeyType::Any => true,
    }
}

fn type_name(ty: KeyType) -> &'static str {
    match ty {
        KeyType::String => "a string",
        KeyType::Integer => "an integer",
        KeyType::Bool => "true or false",
        KeyType::StringTable => "a table of strings, e.g. { \"Label\" = \"expr\" }",
        KeyType::Strings => "a string or an array of strings",
        KeyType::Any => "any value",
    }
}

/// Where each key of an annotation is first written (`key = …`, `key.sub =
/// …` or `"key" = …`): the span of the key in the body, found in one pass
/// over its lines however many keys it has.
fn key_spans<'t>(rb: &Runbook, a: &Annotation, table: &'t toml::Table) -> HashMap<&'t str, Loc> {
    let body = &rb.source[a.body.start..a.body.end];
    let mut out = HashMap::new();
    let mut off = 0;
    for line in body.split_inclusive('\n') {
        #[cfg(test)]
        tests::LINES.with(|n| n.set(n.get() + 1));
        let t = line.trim_start();
        let lead = line.len() - t.len();
        let (name, len, rest) = match t.strip_prefix('"') {
            Some(q) => {
                let close = q.find('"').unwrap_or(q.len());
                (&q[..close], close + 2, q.get(close + 1..).unwrap_or(""))
            }
            None => {
                let n = t
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
                    .unwrap_or(t.len());
                (&t[..n], n, &t[n..])
            }
        };
        if rest.trim_start().starts_with(['=', '.'])
            && let Some((key, _)) = table.get_key_value(name)
        {
            let s = a.body.start + off + lead;
            out.entry(key.as_str())
                .or_insert_with(|| span(rb, s, s + len));
        }
        off += line.len();
    }
    out
}

fn unbound(rb: &Runbook, vars: &BTreeMap<String, String>, out: &mut Vec<Diagnostic>) {
    let mut by_name: BTreeMap<&str, Vec<&crate::model::Placeholder>> = BTreeMap::new();
    for p in rb.placeholders.iter().filter(|p| p.in_command) {
        if !vars.contains_key(&p.name) {
            by_name.entry(&p.name).or_default().push(p);
        }
    }
    for (name, uses) in by_name {
        let more = uses.len() - 1;
        out.push(Diagnostic {
            severity: Severity::Error,
            code: "unbound-placeholder",
            message: format!("placeholder [{name}] is used in a command but not bound"),
            loc: uses[0].loc,
            label: (more > 0).then(|| {
                format!(
                    "and {more} more use{} in commands",
                    if more == 1 { "" } else { "s" }
                )
            }),
            help: Some(format!("bind it with --var '{name}=…'")),
        });
    }
}

fn heading_skips(rb: &Runbook, out: &mut Vec<Diagnostic>) {
    let mut prev = 1u8;
    for h in &rb.headings {
        if h.level > prev + 1 {
            let hashes = |n: u8| "#".repeat(n as usize);
            out.push(Diagnostic {
                severity: Severity::Error,
                code: "heading-skip",
                message: format!(
                    "heading level jumps from {} to {}",
                    hashes(prev),
                    hashes(h.level)
                ),
                loc: first_line(rb, &h.loc),
                label: None,
                help: Some(format!(
                    "use {} here, or add the missing {} heading above it: stages are ##, \
                     groups ###",
                    hashes(prev + 1),
                    hashes(prev + 1)
                )),
            });
        }
        prev = h.level;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    thread_local! {
        /// Annotation lines read to find where keys are written.
        pub(super) static LINES: Cell<usize> = const { Cell::new(0) };
    }

    /// A `golive` block of 20,000 unknown keys took 6.5 s to lint, 40,000
    /// took 23 s: each key's line was searched for from the top of the block.
    #[test]
    fn an_annotation_of_many_unknown_keys_is_read_once() {
        let keys = 2_000;
        let body: String = (0..keys).map(|i| format!("  k{i} = 1\n")).collect();
        let text = format!("# T\n\n## S\n\n- [ ] **x**\n  ```golive\n{body}  ```\n");
        let rb = crate::parse_runbook("keys.md", &text);
        LINES.with(|n| n.set(0));
        let found = lint(&rb, &LintOptions::default());
        assert_eq!(
            found.iter().filter(|d| d.code == "unknown-key").count(),
            keys
        );
        // each finding points at its own key
        let last = found
            .iter()
            .rfind(|d| d.code == "unknown-key")
            .map(|d| d.loc);
        assert_eq!(last.map(|l| (l.line, l.col)), Some((keys as u32 + 6, 3)));
        let lines = LINES.with(Cell::get);
        assert!(lines <= 2 * keys, "{lines} lines read for {keys} keys");
    }
}
