//! Byte spans and their line/column positions in the original text.

use serde::Serialize;

/// Where an element sits in the source: a byte span plus the 1-based line and
/// column (in characters) of its first byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Loc {
    pub start: usize,
    pub end: usize,
    pub line: u32,
    pub col: u32,
}

impl Loc {
    /// The byte range of this element.
    pub fn range(&self) -> std::ops::Range<usize> {
        self.start..self.end
    }
}

/// Maps byte offsets to line/column positions.
#[derive(Debug, Clone)]
pub struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    /// Index the line starts of `text`. Lines end at `\n`; a `\r` before it
    /// belongs to the line it ends.
    pub fn new(text: &str) -> Self {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        LineIndex { starts }
    }

    /// The 0-based line holding byte `offset`.
    pub fn line_of(&self, offset: usize) -> usize {
        match self.starts.binary_search(&offset) {
            Ok(i) => i,
            Err(i) => i - 1,
        }
    }

    /// Byte offset where 0-based `line` starts.
    pub fn line_start(&self, line: usize) -> usize {
        self.starts[line.min(self.starts.len() - 1)]
    }

    /// The text of 0-based `line`, without its line ending.
    pub fn line_text<'a>(&self, text: &'a str, line: usize) -> &'a str {
        let start = self.line_start(line);
        let end = self.starts.get(line + 1).copied().unwrap_or(text.len());
        text[start..end].trim_end_matches(['\n', '\r'])
    }

    /// Number of lines.
    pub fn len(&self) -> usize {
        self.starts.len()
    }

    /// Whether the text had no lines at all (never: an empty text has one).
    pub fn is_empty(&self) -> bool {
        self.starts.is_empty()
    }

    /// Build a [`Loc`] for `start..end` of `text`.
    pub fn loc(&self, text: &str, start: usize, end: usize) -> Loc {
        let start = floor_char(text, start.min(text.len()));
        let end = floor_char(text, end.clamp(start, text.len()));
        let line = self.line_of(start);
        let col = text[self.line_start(line)..start].chars().count() + 1;
        Loc {
            start,
            end,
            line: (line + 1) as u32,
            col: col as u32,
        }
    }
}

/// The nearest char boundary at or before `i`.
pub(crate) fn floor_char(text: &str, mut i: usize) -> usize {
    while i > 0 && !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}
