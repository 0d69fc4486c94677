//! Write outcomes back into the document by patching spans of the original
//! text: `[ ]` → `[x]`, `☐` → `☑`, `____` → the value. Nothing else changes,
//! so an export with no outcomes is the input byte for byte.

use crate::model::{Marker, Runbook};
use crate::resolve::{LookupError, Target};
use thiserror::Error;

/// What to write into the document.
#[derive(Debug, Clone, Default)]
pub struct Outcomes {
    /// Item or sub-check name (id, address, `ITEM/N`) → ticked or not.
    pub ticks: Vec<(String, bool)>,
    /// Blank id (`item-id#label`) → value.
    pub fills: Vec<(String, String)>,
}

#[derive(Debug, Clone, Error, PartialEq)]
pub enum ExportError {
    #[error(transparent)]
    Lookup(#[from] LookupError),
    #[error("no blank is named `{0}`")]
    UnknownBlank(String),
    #[error("`{0}` is a procedure step and has no checkbox")]
    NoCheckbox(String),
    #[error("two outcomes write the same place (line {0})")]
    Overlap(u32),
}

/// A replacement of `start..end` in the source.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Patch {
    pub start: usize,
    pub end: usize,
    pub text: String,
    pub line: u32,
}

/// The document with `outcomes` written in.
pub fn export(rb: &Runbook, outcomes: &Outcomes) -> Result<String, ExportError> {
    let patches = patches(rb, outcomes)?;
    apply(&rb.source, patches)
}

/// The patches `outcomes` make to the document.
pub fn patches(rb: &Runbook, outcomes: &Outcomes) -> Result<Vec<Patch>, ExportError> {
    let mut out = Vec::new();
    for (name, on) in &outcomes.ticks {
        let marker = match rb.resolve(name)? {
            Target::Item(i) => rb.items[i]
                .marker
                .as_ref()
                .ok_or_else(|| ExportError::NoCheckbox(name.clone()))?,
            Target::SubCheck(i, k) => &rb.items[i].subchecks[k].marker,
        };
        if let Some(p) = tick(&rb.source, marker, *on) {
            out.push(p);
        }
    }
    for (id, value) in &outcomes.fills {
        let blank = rb
            .all_blanks()
            .find(|b| &b.id == id)
            .ok_or_else(|| ExportError::UnknownBlank(id.clone()))?;
        out.push(Patch {
            start: blank.loc.start,
            end: blank.loc.end,
            text: inline_value(value, blank.in_table),
            line: blank.loc.line,
        });
    }
    Ok(out)
}

/// A value that cannot change the document's structure: one line, no table
/// cell border inside a table.
fn inline_value(value: &str, in_table: bool) -> String {
    let one_line = value
        .split(['\r', '\n'])
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    let one_line = if one_line.trim().is_empty() {
        "—".to_string()
    } else {
        one_line
    };
    if in_table {
        one_line.replace('|', "\\|")
    } else {
        one_line
    }
}

fn tick(source: &str, marker: &Marker, on: bool) -> Option<Patch> {
    let text = crate::text::box_ticked(&source[marker.loc.range()], on)?;
    Some(Patch {
        start: marker.loc.start,
        end: marker.loc.end,
        text: text.to_string(),
        line: marker.loc.line,
    })
}

/// Apply non-overlapping patches to `source`.
pub fn apply(source: &str, mut patches: Vec<Patch>) -> Result<String, ExportError> {
    patches.sort();
    patches.dedup();
    let mut out = String::with_capacity(source.len() + 64);
    let mut pos = 0;
    for p in &patches {
        if p.start < pos {
            return Err(ExportError::Overlap(p.line));
        }
        out.push_str(&source[pos..p.start]);
        out.push_str(&p.text);
        pos = p.end;
    }
    out.push_str(&source[pos..]);
    Ok(out)
}
