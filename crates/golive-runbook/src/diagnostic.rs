//! Findings about a document, and their rendering in the rustc/Hurl style:
//!
//! ```text
//! error[count-mismatch]: Code Readiness declares 8 items, has 7
//!   --> checklist.md:14:21
//!    |
//! 14 | ### Code Readiness (8 items)
//!    |                     ^^^^^^^ declared here
//!    |
//!    = help: add the missing item, or change the heading to (7 items)
//! ```

use crate::loc::{LineIndex, Loc};
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// One finding, pointing at a span of the document.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Diagnostic {
    pub severity: Severity,
    /// A stable kebab-case name: `count-mismatch`, `duplicate-id` …
    pub code: &'static str,
    pub message: String,
    pub loc: Loc,
    /// Text under the caret.
    pub label: Option<String>,
    pub help: Option<String>,
}

/// Render diagnostics as text, each with its source line and a caret under
/// the span.
pub fn render_text(path: &str, source: &str, diags: &[Diagnostic]) -> String {
    let lines = LineIndex::new(source);
    let mut out = String::new();
    for d in diags {
        render_one(&mut out, path, source, &lines, d);
    }
    out
}

fn render_one(out: &mut String, path: &str, source: &str, lines: &LineIndex, d: &Diagnostic) {
    use std::fmt::Write;
    let sev = match d.severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
    };
    let line_no = d.loc.line as usize;
    let width = line_no.to_string().len();
    let pad = " ".repeat(width);
    let _ = writeln!(out, "{sev}[{}]: {}", d.code, d.message);
    let _ = writeln!(out, "{pad}--> {path}:{}:{}", d.loc.line, d.loc.col);
    let _ = writeln!(out, "{pad} |");
    let text = lines.line_text(source, line_no.saturating_sub(1));
    let shown: String = text
        .chars()
        .map(|c| if c == '\t' { ' ' } else { c })
        .collect();
    let _ = writeln!(out, "{line_no} | {shown}");
    let line_start = lines.line_start(line_no.saturating_sub(1));
    let span_end = d.loc.end.min(line_start + text.len()).max(d.loc.start);
    let carets = source
        .get(d.loc.start..span_end)
        .map_or(1, |s| s.chars().count())
        .max(1);
    let lead = " ".repeat(d.loc.col.saturating_sub(1) as usize);
    let label = d
        .label
        .as_deref()
        .map(|l| format!(" {l}"))
        .unwrap_or_default();
    let _ = writeln!(out, "{pad} | {lead}{}{label}", "^".repeat(carets));
    if let Some(help) = &d.help {
        let _ = writeln!(out, "{pad} |");
        let _ = writeln!(out, "{pad} = help: {help}");
    }
    out.push('\n');
}
