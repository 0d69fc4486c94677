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
    /// On lines longer than [`STRIDE`]: every `STRIDE` bytes, the offset
    /// (a char boundary) and its column, so finding a column reads at most
    /// `STRIDE` bytes however long the line.
    marks: Vec<(usize, usize)>,
    /// For each [`BUCKET`] bytes of text, the line holding its first byte:
    /// finding a line searches only the few lines of one bucket.
    buckets: Vec<u32>,
}

/// The width in bytes of one bucket of [`LineIndex::buckets`].
const BUCKET_SHIFT: u32 = 8;

/// The distance between column marks on a long line.
const STRIDE: usize = 4096;

impl LineIndex {
    /// Index the line starts of `text`. Lines end at `\n`; a `\r` before it
    /// belongs to the line it ends.
    pub fn new(text: &str) -> Self {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        let mut marks = Vec::new();
        for (k, &start) in starts.iter().enumerate() {
            let end = starts.get(k + 1).copied().unwrap_or(text.len());
            let (mut at, mut col) = (start, 0);
            while end - at > STRIDE {
                let next = floor_char(text, at + STRIDE).max(at + 1);
                let next = ceil_char(text, next);
                col += text[at..next].chars().count();
                at = next;
                marks.push((at, col));
            }
        }
        let mut buckets = Vec::with_capacity((text.len() >> BUCKET_SHIFT) + 1);
        let mut line = 0usize;
        for b in 0..=(text.len() >> BUCKET_SHIFT) {
            let at = b << BUCKET_SHIFT;
            while line + 1 < starts.len() && starts[line + 1] <= at {
                line += 1;
            }
            buckets.push(line as u32);
        }
        LineIndex {
            starts,
            marks,
            buckets,
        }
    }

    /// The 0-based line holding byte `offset`.
    pub fn line_of(&self, offset: usize) -> usize {
        let b = offset >> BUCKET_SHIFT;
        let (lo, hi) = match self.buckets.get(b) {
            Some(&lo) => {
                let hi = self
                    .buckets
                    .get(b + 1)
                    .map_or(self.starts.len(), |&h| h as usize + 1);
                (lo as usize, hi)
            }
            None => (
                self.buckets.last().map_or(0, |&l| l as usize),
                self.starts.len(),
            ),
        };
        match self.starts[lo..hi].binary_search(&offset) {
            Ok(i) => lo + i,
            Err(i) => lo + i - 1,
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
        let line_start = self.line_start(line);
        // the nearest mark on this line at or before `start`
        let i = self.marks.partition_point(|m| m.0 <= start);
        let (from, before) = match i.checked_sub(1).map(|i| self.marks[i]) {
            Some((at, col)) if at > line_start => (at, col),
            _ => (line_start, 0),
        };
        let counted = &text[from..start];
        #[cfg(test)]
        tests::SCANNED.with(|n| n.set(n.get() + counted.len()));
        let col = before + counted.chars().count() + 1;
        Loc {
            start,
            end,
            line: (line + 1) as u32,
            col: col as u32,
        }
    }
}

/// The nearest char boundary at or after `i`.
fn ceil_char(text: &str, mut i: usize) -> usize {
    while i < text.len() && !text.is_char_boundary(i) {
        i += 1;
    }
    i
}

/// The nearest char boundary at or before `i`.
pub(crate) fn floor_char(text: &str, mut i: usize) -> usize {
    while i > 0 && !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    thread_local! {
        /// Bytes read to find columns, on this thread.
        pub(super) static SCANNED: Cell<usize> = const { Cell::new(0) };
    }

    /// Columns on a line of megabytes used to be counted from the line's
    /// start for every span: a line of n blanks cost n² character reads.
    #[test]
    fn columns_on_a_long_line_cost_bounded_work() {
        let text = format!("# x\n{}\n", "é ____ ".repeat(100_000));
        let lines = LineIndex::new(&text);
        let starts: Vec<usize> = text.match_indices("____").map(|(i, _)| i).collect();
        SCANNED.with(|n| n.set(0));
        let mut last = 0;
        for &s in &starts {
            let loc = lines.loc(&text, s, s + 4);
            assert_eq!(loc.line, 2);
            assert!(loc.col > last);
            last = loc.col;
        }
        // each blank is 7 characters on from the one before
        assert_eq!(last as usize, 3 + 7 * (starts.len() - 1));
        let per_span = SCANNED.with(Cell::get) / starts.len();
        assert!(per_span <= 4096, "{per_span} bytes read per column");
    }

    /// The bucketed search gives the line a plain search over every line
    /// start gives, for each offset of texts with short, long, empty and
    /// CRLF lines, multi-byte text, and offsets past the end.
    #[test]
    fn bucketed_lines_agree_with_a_search_over_every_line() {
        let long = "x".repeat(700);
        let texts = [
            String::new(),
            "\n".to_string(),
            "a".to_string(),
            format!("# t\n\n\n{long}\nshort\r\n\r\né ü 😀\n{long}{long}\n"),
            "ab\n".repeat(400),
            format!("{}\nend", "é".repeat(300)),
        ];
        for text in &texts {
            let lines = LineIndex::new(text);
            let mut starts = vec![0];
            starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
            for offset in 0..text.len() + 600 {
                let want = match starts.binary_search(&offset) {
                    Ok(i) => i,
                    Err(i) => i - 1,
                };
                assert_eq!(lines.line_of(offset), want, "offset {offset} of {text:?}");
            }
        }
    }
}
