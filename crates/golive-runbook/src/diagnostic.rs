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

use crate::loc::{LineIndex, Loc, floor_char};
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
    /// A stable kebab-case name: `count-mismatch`, `repeated-title` …
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
    let line_start = lines.line_start(line_no.saturating_sub(1));
    let at = d.loc.start.saturating_sub(line_start).min(text.len());
    let span_end = d.loc.end.min(line_start + text.len()).max(d.loc.start);
    let (from, to) = window(text, at, span_end - line_start);
    let mut shown: String = text[from..to]
        .chars()
        .map(|c| if c == '\t' { ' ' } else { c })
        .collect();
    let mut lead = text[from..at].chars().count();
    if from > 0 {
        shown.insert(0, '…');
        lead += 1;
    }
    if to < text.len() {
        shown.push('…');
    }
    let _ = writeln!(out, "{line_no} | {shown}");
    let carets = source
        .get(d.loc.start..span_end.min(line_start + to))
        .map_or(1, |s| s.chars().count())
        .max(1);
    let lead = " ".repeat(lead);
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

/// Lines longer than this are shown cut around the span.
const LONG_LINE: usize = 240;
/// Characters shown on each side of the span of a long line.
const CONTEXT: usize = 80;

/// The byte range of `line` to show for a span from `at` to `end`: all of a
/// line up to [`LONG_LINE`] bytes, else [`CONTEXT`] characters each side, so a
/// finding on a line of megabytes prints a line of a screen's width.
fn window(line: &str, at: usize, end: usize) -> (usize, usize) {
    if line.len() <= LONG_LINE {
        return (0, line.len());
    }
    let end = floor_char(line, end.clamp(at, line.len()).min(at + LONG_LINE));
    let from = line[..at]
        .char_indices()
        .rev()
        .nth(CONTEXT - 1)
        .map_or(0, |(i, _)| i);
    let to = line[end..]
        .char_indices()
        .nth(CONTEXT)
        .map_or(line.len(), |(i, _)| end + i);
    (from, to)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_finding_on_a_long_line_shows_the_line_cut_around_it() {
        let line = format!("{}[HERE]{}", "é ".repeat(5_000), "x ".repeat(5_000));
        let at = line.find('[').unwrap_or(0);
        let lines = LineIndex::new(&line);
        let d = Diagnostic {
            severity: Severity::Error,
            code: "test",
            message: "here".into(),
            loc: lines.loc(&line, at, at + 6),
            label: None,
            help: None,
        };
        let out = render_text("x.md", &line, &[d]);
        let shown: Vec<&str> = out.lines().collect();
        assert!(
            shown[3].starts_with("1 | …é") && shown[3].ends_with('…'),
            "{out}"
        );
        assert!(shown[3].chars().count() < 2 * CONTEXT + 20, "{out}");
        // the carets sit under the span
        let caret = shown[4].find('^').unwrap_or(0);
        let bracket = shown[3].char_indices().position(|(_, c)| c == '[');
        assert_eq!(Some(shown[4][..caret].chars().count()), bracket, "{out}");
        assert!(shown[4].ends_with("^^^^^^"), "{out}");
    }
}
