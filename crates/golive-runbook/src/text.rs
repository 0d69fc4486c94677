//! Scanners over source lines: blanks, fields, placeholders, declared counts,
//! slugs. Pure functions over `&str` that report byte offsets.

use crate::model::{Budget, Declared};

/// The longest slug, in bytes. Ids are paths of slugs and every blank's and
/// sub-check's id starts with its item's: without a bound, a title of a
/// 20 KB line would be repeated in each of the line's thousand blanks.
pub const MAX_SLUG: usize = 100;

/// A lower-case slug: letters and digits kept, runs of anything else become
/// `-`; cut to [`MAX_SLUG`] bytes at the end of the last whole word (or
/// within a single word longer than that).
pub fn slugify(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(MAX_SLUG + 4));
    let mut dash = false;
    for c in text.chars() {
        if c.is_alphanumeric() {
            if dash && !out.is_empty() {
                if out.len() >= MAX_SLUG {
                    break;
                }
                out.push('-');
            }
            dash = false;
            if c.is_ascii() {
                out.push(c.to_ascii_lowercase());
            } else {
                out.extend(c.to_lowercase());
            }
            if out.len() > MAX_SLUG {
                let cut = match out.rfind('-') {
                    Some(i) => i,
                    None => crate::loc::floor_char(&out, MAX_SLUG),
                };
                out.truncate(cut);
                break;
            }
        } else {
            dash = true;
        }
    }
    out
}

/// The title without trailing parenthesised remarks: `CDN configured (if applicable)`
/// becomes `CDN configured`.
pub fn strip_trailing_parens(text: &str) -> &str {
    let mut t = text.trim_end();
    while t.ends_with(')') {
        match matching_open(t) {
            Some(open) if open > 0 => t = t[..open].trim_end(),
            _ => break,
        }
    }
    t
}

/// Byte index of the `(` matching the final `)` of `t`.
fn matching_open(t: &str) -> Option<usize> {
    let mut depth = 0usize;
    for (i, c) in t.char_indices().rev() {
        match c {
            ')' => depth += 1,
            '(' => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

/// Inline markup removed (`**`, `__`, backticks, escapes) and white space
/// collapsed to single spaces.
pub fn plain(text: &str) -> String {
    // most titles and values are plain ASCII already: one scan, one copy
    let b = text.as_bytes();
    let mut previous = b' ';
    let already = b.last() != Some(&b' ')
        && b.iter().all(|&c| {
            let ok = c.is_ascii()
                && !matches!(c, b'*' | b'`' | b'_' | b'\\')
                && (c != b' ' || previous != b' ')
                && (c == b' ' || !c.is_ascii_whitespace());
            previous = c;
            ok
        });
    if already {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len());
    // a space is written only before the next character that is not one
    let mut space = false;
    let put = |out: &mut String, space: &mut bool, piece: &str| {
        if *space && !out.is_empty() {
            out.push(' ');
        }
        *space = false;
        out.push_str(piece);
    };
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'*' | b'`' => i += 1,
            b'_' => {
                // keep runs of 4+ underscores (blanks) and single ones, but
                // drop `__` emphasis
                let n = b[i..].iter().take_while(|&&c| c == b'_').count();
                if n >= 4 || n == 1 {
                    put(&mut out, &mut space, &text[i..i + n]);
                }
                i += n;
            }
            b'\\' => match b.get(i + 1) {
                Some(n) if n.is_ascii_punctuation() => {
                    put(&mut out, &mut space, &text[i + 1..i + 2]);
                    i += 2;
                }
                // a backslash before anything else is itself
                _ => {
                    put(&mut out, &mut space, "\\");
                    i += 1;
                }
            },
            c if c.is_ascii_whitespace() => {
                space = true;
                i += 1;
            }
            c if c.is_ascii() => {
                let n = b[i..]
                    .iter()
                    .take_while(|&&c| {
                        c.is_ascii()
                            && !c.is_ascii_whitespace()
                            && !matches!(c, b'*' | b'`' | b'_' | b'\\')
                    })
                    .count();
                put(&mut out, &mut space, &text[i..i + n]);
                i += n;
            }
            _ => {
                let ch = text[i..].chars().next().unwrap_or(' ');
                let n = ch.len_utf8();
                if ch.is_whitespace() {
                    space = true;
                } else {
                    put(&mut out, &mut space, &text[i..i + n]);
                }
                i += n;
            }
        }
    }
    out
}

/// Byte index of the next `**` at or after `from`.
fn find_stars(line: &str, from: usize) -> Option<usize> {
    let b = line.as_bytes();
    (from..b.len().saturating_sub(1)).find(|&i| b[i] == b'*' && b[i + 1] == b'*')
}

/// Strip a list marker and a task marker from the start of a line.
pub fn strip_line_prefix(line: &str) -> &str {
    let mut t = line.trim_start();
    while let Some(rest) = t.strip_prefix('>') {
        t = rest.trim_start();
    }
    if let Some(rest) = t
        .strip_prefix("- ")
        .or_else(|| t.strip_prefix("* "))
        .or_else(|| t.strip_prefix("+ "))
    {
        t = rest.trim_start();
    } else {
        let digits = t.bytes().take_while(u8::is_ascii_digit).count();
        if digits > 0 && digits < 10 {
            let rest = &t[digits..];
            if let Some(r) = rest.strip_prefix(". ").or_else(|| rest.strip_prefix(") ")) {
                t = r.trim_start();
            }
        }
    }
    for m in ["[ ] ", "[x] ", "[X] "] {
        if let Some(rest) = t.strip_prefix(m) {
            return rest.trim_start();
        }
    }
    t
}

/// A blank found on a line: byte range relative to the line, and its label.
#[derive(Debug, Clone, PartialEq)]
pub struct BlankHit {
    pub start: usize,
    pub end: usize,
    pub label: String,
}

/// Every run of four or more underscores in `line`, labelled by the text
/// before it (back to the previous blank or a table cell border).
pub fn scan_blanks(line: &str) -> Vec<BlankHit> {
    let bytes = line.as_bytes();
    if !line.contains("____") {
        return Vec::new();
    }
    let mut hits: Vec<BlankHit> = Vec::new();
    let mut i = 0;
    let mut seg_start = 0;
    while i < bytes.len() {
        if bytes[i] == b'_' {
            let start = i;
            while i < bytes.len() && bytes[i] == b'_' {
                i += 1;
            }
            if i - start >= 4 {
                let mut label = blank_label(&line[seg_start..start]);
                if label.is_empty()
                    && let Some(prev) = hits.last()
                {
                    label = prev.label.clone();
                }
                hits.push(BlankHit {
                    start,
                    end: i,
                    label,
                });
                seg_start = i;
            }
        } else {
            i += 1;
        }
    }
    hits
}

const LABEL_TRIM: &[char] = &[
    ':', ',', ';', '#', '>', '<', '=', '%', '(', ')', '/', '-', '*', '_', '|', '.', '≥', '≤', '$',
    '[', ']', '`', '"', '\'',
];

fn blank_label(segment: &str) -> String {
    let seg = segment.rsplit('|').next().unwrap_or(segment);
    let seg = strip_line_prefix(seg.trim_start_matches(['#', ' ']));
    let seg = plain(seg);
    let opens = seg.matches('(').count();
    let closes = seg.matches(')').count();
    if opens > closes {
        let idx = seg.rfind('(').unwrap_or(0);
        let after = clean_label(&seg[idx + 1..]);
        if after.is_empty() {
            clean_label(&seg[..idx])
        } else {
            after
        }
    } else {
        clean_label(&seg)
    }
}

fn clean_label(s: &str) -> String {
    s.trim_matches(|c: char| c.is_whitespace() || LABEL_TRIM.contains(&c))
        .to_string()
}

/// A `**Label:** value` found on a line (offsets relative to the line).
#[derive(Debug, Clone, PartialEq)]
pub struct FieldHit {
    pub start: usize,
    pub end: usize,
    pub label: String,
    pub value: String,
}

/// Every `**Label:**` (or `**Label**:`) on a line, with the text up to the
/// next field or the end of the line as its value.
pub fn scan_fields(line: &str) -> Vec<FieldHit> {
    let mut heads: Vec<(usize, usize, String)> = Vec::new();
    let mut pos = 0;
    while let Some(open) = find_stars(line, pos) {
        let inner_start = open + 2;
        let Some(close) = find_stars(line, inner_start) else {
            break;
        };
        let inner = &line[inner_start..close];
        let after = close + 2;
        let (label, end) = if let Some(l) = inner.strip_suffix(':') {
            (l, after)
        } else if line[after..].starts_with(':') {
            (inner, after + 1)
        } else {
            pos = after;
            continue;
        };
        let label = label.trim();
        if !label.is_empty()
            && label.chars().count() <= 60
            && !inner.starts_with(' ')
            && !label.contains("**")
        {
            heads.push((open, end, plain(label)));
        }
        pos = after;
    }
    let ends: Vec<usize> = heads.iter().skip(1).map(|h| h.0).collect();
    let mut out = Vec::with_capacity(heads.len());
    for (k, (start, end, label)) in heads.into_iter().enumerate() {
        let value_end = ends.get(k).copied().unwrap_or(line.len());
        let mut value = plain(&line[end..value_end]);
        value.truncate(value.trim_end_matches(['(', ' ']).len());
        let lead = value.len() - value.trim_start_matches([')', ' ']).len();
        value.drain(..lead);
        out.push(FieldHit {
            start,
            end: value_end.max(end),
            label,
            value,
        });
    }
    out
}

/// Checkboxes as documents write them: open, and ticked (a longer form
/// before the shorter one it starts with).
pub const OPEN_BOXES: &[&str] = &["☐", "[ ]", "⬜"];
pub const TICKED_BOXES: &[&str] = &["☑", "☒", "✅", "✔️", "✔", "[x]", "[X]"];

/// The box golive writes for `current` ticked (`on`) or not, in the same
/// notation; `None` when it already is.
pub fn box_ticked(current: &str, on: bool) -> Option<&'static str> {
    match (current, on) {
        ("[ ]", true) => Some("[x]"),
        ("[x]" | "[X]", false) => Some("[ ]"),
        (c, true) if OPEN_BOXES.contains(&c) => Some("☑"),
        (c, false) if TICKED_BOXES.contains(&c) => Some("☐"),
        _ => None,
    }
}

/// Whether `value` holds a box of [`OPEN_BOXES`] or [`TICKED_BOXES`]. The
/// ASCII ones all start with `[`, the others are not ASCII: most values have
/// neither, and are passed with one scan.
fn has_box(value: &str) -> bool {
    let ascii = value.is_ascii();
    let bracket = value.contains('[');
    if ascii && !bracket {
        return false;
    }
    OPEN_BOXES.iter().chain(TICKED_BOXES).any(|b| {
        if b.is_ascii() {
            bracket && value.contains(b)
        } else {
            !ascii && value.contains(b)
        }
    })
}

/// The choices a field's value offers: `☐ Success ☐ Success with Issues
/// ☐ Rolled Back` (two or more boxes), or `SUCCESS / ROLLBACK / PARTIAL`
/// (two or more short words or phrases between slashes, spaced or in
/// capitals). Anything else offers none: `N/A`, a path, a sentence.
pub fn choices(value: &str) -> Vec<String> {
    let boxed = has_box(value);
    if !boxed && (!value.contains('/') || value.contains("://")) {
        return Vec::new();
    }
    let mut rest = value.to_string();
    if boxed {
        for b in OPEN_BOXES.iter().chain(TICKED_BOXES) {
            rest = rest.replace(b, "\u{1}");
        }
    }
    if rest.matches('\u{1}').count() >= 2 {
        let parts: Vec<String> = rest
            .split('\u{1}')
            .map(|p| p.trim().trim_end_matches([',', ';']).trim().to_string())
            .filter(|p| !p.is_empty())
            .collect();
        return if parts.len() >= 2 { parts } else { Vec::new() };
    }
    let value = value.trim();
    if !value.contains('/') || value.contains("://") {
        return Vec::new();
    }
    let spaced = value.contains(" / ");
    let parts: Vec<&str> = value.split('/').map(str::trim).collect();
    let word_like = |p: &&str| {
        !p.is_empty()
            && p.split_whitespace().count() <= 4
            && p.chars().next().is_some_and(char::is_alphabetic)
            && p.chars()
                .all(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '\''))
    };
    let capitals = parts
        .iter()
        .all(|p| p.chars().any(char::is_alphabetic) && !p.chars().any(char::is_lowercase));
    if parts.len() >= 2
        && parts.iter().all(word_like)
        && (spaced || (capitals && parts.iter().all(|p| p.len() > 1)))
    {
        parts.into_iter().map(str::to_string).collect()
    } else {
        Vec::new()
    }
}

/// Every `[UPPER_CASE NAME]` in `text` that is not a link: (start, end, name).
pub fn scan_placeholders(text: &str) -> Vec<(usize, usize, String)> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'[' {
            i += 1;
            continue;
        }
        let start = i;
        let mut j = i + 1;
        while j < bytes.len() && j - start <= 64 && is_name_byte(bytes[j]) {
            j += 1;
        }
        if j < bytes.len() && bytes[j] == b']' && valid_name(&text[start + 1..j]) {
            let next = bytes.get(j + 1).copied();
            let prev = start.checked_sub(1).map(|p| bytes[p]);
            let at_line_start = start == 0 || bytes[start - 1] == b'\n';
            let is_link = matches!(next, Some(b'(') | Some(b'['))
                || prev == Some(b']')
                || (at_line_start
                    && next == Some(b':')
                    && matches!(bytes.get(j + 2), None | Some(b' ' | b'\t' | b'\n' | b'\r')));
            if !is_link {
                out.push((start, j + 1, text[start + 1..j].to_string()));
            }
            i = j + 1;
        } else {
            i += 1;
        }
    }
    out
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_uppercase() || b.is_ascii_digit() || matches!(b, b'_' | b' ' | b'/' | b'.' | b'-')
}

fn valid_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_uppercase()
        && b[b.len() - 1] != b' '
        && !name.contains("  ")
        && b.iter().all(|&c| is_name_byte(c))
}

/// What parenthesised remarks in a heading or step title declare, with the
/// byte range (relative to `text`) of the item count if there is one.
pub fn parse_declared(text: &str) -> (Declared, Option<(usize, usize, usize)>) {
    let mut declared = Declared::default();
    let mut count = None;
    let mut pos = 0;
    while let Some(open) = text[pos..].find('(').map(|i| i + pos) {
        let Some(close) = text[open..].find(')').map(|i| i + open) else {
            break;
        };
        let inner = &text[open + 1..close];
        let mut part_start = open + 1;
        for part in inner.split(',') {
            let trimmed = part.trim();
            let lead = part.len() - part.trim_start().len();
            if let Some(n) = parse_items(trimmed) {
                let s = part_start + lead;
                count = Some((n, s, s + trimmed.len()));
            } else if let Some(b) = parse_budget(trimmed) {
                declared.budget = Some(b);
            } else if is_optional_marker(trimmed) {
                declared.optional = true;
                declared
                    .condition
                    .get_or_insert_with(|| trimmed.to_string());
            }
            part_start += part.len() + 1;
        }
        pos = close + 1;
    }
    (declared, count)
}

/// `if applicable`, `If Using Feature Flags`, `optional`, `as needed`,
/// `when …`: the part of a `( … )` remark that makes its owner optional.
fn is_optional_marker(part: &str) -> bool {
    let starts = |p: &str| {
        part.get(..p.len())
            .is_some_and(|h| h.eq_ignore_ascii_case(p))
    };
    starts("if ")
        || starts("when ")
        || starts("only if ")
        || ["optional", "as needed"]
            .iter()
            .any(|w| part.eq_ignore_ascii_case(w))
}

fn parse_items(s: &str) -> Option<usize> {
    let (n, rest) = split_number(s)?;
    let rest = rest.trim().to_lowercase();
    matches!(
        rest.as_str(),
        "items" | "item" | "checks" | "check" | "tests" | "test" | "steps" | "step"
    )
    .then_some(n as usize)
}

fn split_number(s: &str) -> Option<(u64, &str)> {
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 || digits > 9 {
        return None;
    }
    Some((s[..digits].parse().ok()?, &s[digits..]))
}

/// `15 minutes`, `Target: <5 Minutes`, `2 min`, `< 30s`, `1 hour`.
pub fn parse_budget(s: &str) -> Option<Budget> {
    let lower = s.to_lowercase();
    let mut t = lower.trim();
    for p in ["target:", "budget:", "max:", "within", "under"] {
        if let Some(rest) = t.strip_prefix(p) {
            t = rest.trim_start();
        }
    }
    let mut strict = false;
    for p in ["<=", "≤", "<"] {
        if let Some(rest) = t.strip_prefix(p) {
            strict = p == "<";
            t = rest.trim_start();
            break;
        }
    }
    let (n, unit) = split_number(t)?;
    let unit = unit.trim();
    let mult = match unit {
        "s" | "sec" | "secs" | "second" | "seconds" => 1,
        "m" | "min" | "mins" | "minute" | "minutes" => 60,
        "h" | "hr" | "hrs" | "hour" | "hours" => 3600,
        _ => return None,
    };
    Some(Budget {
        seconds: n * mult,
        text: s.trim().to_string(),
        strict,
    })
}

/// Levenshtein distance, for did-you-mean suggestions.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_drops_markup_and_collapses_white_space() {
        let cases = [
            ("**Check** `x`  y", "Check x y"),
            ("  lead\ttab\n", "lead tab"),
            ("a__b__c", "abc"),
            ("name: ____ and ___", "name: ____ and"),
            ("snake_case", "snake_case"),
            ("\\*not bold\\*", "*not bold*"),
            ("C:\\path\\", "C:\\path\\"),
            ("é\u{a0}ü  ✅", "é ü ✅"),
            ("already plain", "already plain"),
            ("", ""),
            ("*** ", ""),
        ];
        for (text, want) in cases {
            assert_eq!(plain(text), want, "{text:?}");
        }
    }

    #[test]
    fn slugs_drop_punctuation_and_emoji() {
        assert_eq!(
            slugify("All PR gate criteria met"),
            "all-pr-gate-criteria-met"
        );
        assert_eq!(slugify("🚀 Launch: Phase 1.2"), "launch-phase-1-2");
        assert_eq!(
            slugify(strip_trailing_parens("CDN configured (if applicable)")),
            "cdn-configured"
        );
    }

    #[test]
    fn slugs_are_cut_at_a_word_end() {
        let long = "word ".repeat(100);
        let slug = slugify(&long);
        assert!(slug.len() <= MAX_SLUG && slug.ends_with("word"), "{slug}");
        assert_eq!(slug.len(), 99);
        let one = "x".repeat(500);
        assert_eq!(slugify(&one).len(), MAX_SLUG);
        let wide = "é".repeat(500);
        assert!(slugify(&wide).len() <= MAX_SLUG);
    }

    #[test]
    fn blank_labels_come_from_the_text_before() {
        let hits = scan_blanks("  - [ ] Certificate expiry date: ________________ (>30 days)");
        assert_eq!(hits.len(), 1);
        assert_eq!(hits[0].label, "Certificate expiry date");
        let hits = scan_blanks("  **Result:** ________ **Time:** ________");
        let labels: Vec<_> = hits.iter().map(|h| h.label.as_str()).collect();
        assert_eq!(labels, ["Result", "Time"]);
        let hits = scan_blanks("  - [ ] Test pass rate ≥98% (verified: ____/2019 tests passing)");
        assert_eq!(hits[0].label, "verified");
        let hits = scan_blanks("- [ ] Target group healthy (____/____ targets)");
        assert_eq!(hits[0].label, "Target group healthy");
        assert_eq!(hits[1].label, "Target group healthy");
        assert!(scan_blanks("a ___ b __init__").is_empty());
    }

    #[test]
    fn fields_split_on_the_next_label() {
        let f = scan_fields("  - **Time:** ________ **Completed by:** ________");
        assert_eq!(f.len(), 2);
        assert_eq!(f[0].label, "Time");
        assert_eq!(f[1].label, "Completed by");
        let f = scan_fields("**Verification:** `git tag -l v[VERSION]` returns tag");
        assert_eq!(f[0].value, "git tag -l v[VERSION] returns tag");
        assert!(scan_fields("**Step 1.1: Activate War Room**").is_empty());
    }

    #[test]
    fn placeholders_skip_links_and_lower_case() {
        let names: Vec<_> = scan_placeholders(
            "[DOMAIN]:443 [VERSION NUMBER] [domain] [URL](http://x) [URL or path] [ ] [A_B]",
        )
        .into_iter()
        .map(|p| p.2)
        .collect();
        assert_eq!(names, ["DOMAIN", "VERSION NUMBER", "A_B"]);
    }

    #[test]
    fn declared_counts_and_budgets() {
        let (d, c) = parse_declared("Smoke Testing Checklist (20 items, 15 minutes)");
        assert_eq!(c.map(|c| c.0), Some(20));
        assert_eq!(d.budget.map(|b| b.seconds), Some(900));
        let (d, c) = parse_declared("Rollback Steps (Target: <5 Minutes)");
        assert!(c.is_none());
        let b = d.budget.expect("budget");
        assert_eq!((b.seconds, b.strict), (300, true));
        let (d, _) = parse_declared("Phase 2: Database Migration (10 minutes, if applicable)");
        assert!(d.optional);
        let (d, c) = parse_declared("Pre-Deployment Checklist (T-24 Hours)");
        assert!(d.budget.is_none() && c.is_none());
    }

    #[test]
    fn did_you_mean_distance() {
        assert_eq!(edit_distance("expct", "expect"), 1);
        assert_eq!(edit_distance("timout", "timeout"), 1);
    }
}
