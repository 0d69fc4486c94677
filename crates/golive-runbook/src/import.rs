//! Second pass: blocks become stages, groups, items, fields, blanks, commands
//! and annotations, every one with its span.

use crate::blocks::{Block, ListItem, MAX_NESTING, Row, parse_blocks};
use crate::diagnostic::{Diagnostic, Severity};
use crate::loc::{LineIndex, Loc};
use crate::model::*;
use crate::text::{
    choices, parse_declared, plain, scan_blanks, scan_fields, scan_placeholders, slugify,
    strip_line_prefix, strip_trailing_parens,
};
use std::collections::{HashMap, HashSet};
use std::ops::Range;

/// Read a Markdown checklist. Never fails: whatever the text, a model comes
/// back, and what is wrong with it is found by [`crate::lint`].
pub fn parse_runbook(path: &str, source: &str) -> Runbook {
    let parsed = parse_blocks(source);
    let mut imp = Importer {
        src: source,
        lines: LineIndex::new(source),
        rb: Runbook {
            path: path.to_string(),
            source: source.to_string(),
            lines: LineIndex::new(""),
            front_matter: None,
            title: None,
            headings: Vec::new(),
            header: Loose::default(),
            stages: Vec::new(),
            items: Vec::new(),
            placeholders: Vec::new(),
            fences: Vec::new(),
            limits: Vec::new(),
        },
        group: None,
        section: None,
        step: None,
        context: None,
        markers: Vec::new(),
        code: Vec::new(),
        tables: Vec::new(),
        shell: Vec::new(),
        golive: Vec::new(),
        item_extra: HashMap::new(),
        row_items: HashMap::new(),
        subcheck_ids: Ids::default(),
        loose_ids: Ids::default(),
        section_optional: None,
        lead: None,
        choice: None,
        facts: std::cell::RefCell::new(None),
    };
    if let Some(at) = parsed.too_deep {
        imp.rb.limits.push(too_deep(&imp.lines, source, at));
    }
    // each block is dropped once read: the tree never lives beside the model
    for block in parsed.blocks {
        imp.top(&block);
    }
    imp.finish()
}

/// The finding for a list item or quote opened past [`MAX_NESTING`] at `at`.
fn too_deep(lines: &LineIndex, src: &str, at: usize) -> Diagnostic {
    let end = src[at..].chars().next().map_or(at, |c| at + c.len_utf8());
    Diagnostic {
        severity: Severity::Error,
        code: "nesting-too-deep",
        message: format!(
            "lists and block quotes nest more than {MAX_NESTING} levels deep here; \
             golive does not read what lies deeper"
        ),
        loc: lines.loc(src, at, end),
        label: Some(format!("level {} opens here", MAX_NESTING + 1)),
        help: Some(
            "flatten the structure: an item, its sub-checks and their details need three \
             or four levels"
                .into(),
        ),
    }
}

struct Importer<'a> {
    src: &'a str,
    lines: LineIndex,
    rb: Runbook,
    group: Option<usize>,
    section: Option<String>,
    /// The step item that owns what follows, until the next step or heading.
    step: Option<usize>,
    /// The label of the loose field paragraph just seen (for the code after it).
    context: Option<String>,
    /// Checkbox spans: never placeholders.
    markers: Vec<Range<usize>>,
    /// Every code block (no fields are read inside).
    code: Vec<Range<usize>>,
    /// Tables, scanned cell by cell rather than line by line.
    tables: Vec<TableInfo>,
    /// Shell block body ranges (placeholders there are in commands).
    shell: Vec<Range<usize>>,
    /// `golive` block ranges (no blanks or fields inside).
    golive: Vec<Range<usize>>,
    /// Extra ranges owned by an item beyond its own (a step's blocks).
    item_extra: HashMap<usize, usize>,
    /// Row items: (table, row) they were made from.
    row_items: HashMap<usize, (usize, usize)>,
    /// Sub-check ids of the item being read.
    subcheck_ids: Ids<usize>,
    /// Blank ids of the stage, group or header being read.
    loose_ids: Ids<LooseOwner>,
    /// The optional marker of the `####` heading or label the items sit under.
    section_optional: Option<String>,
    /// A one-line paragraph ending in `:` just read (`Rollback if:`): what
    /// the list after it is.
    lead: Option<String>,
    /// The option of a "choose one" group being read.
    choice: Option<usize>,
    /// Every item id handed out, the next suffix to try per base id, and the
    /// first item of each base id (for repeated titles).
    /// The facts of the place being read, with the place they are of.
    facts: std::cell::RefCell<Option<FactsKey>>,
}

/// Stage count and group, section and lead line of cached [`Facts`].
type FactsKey = (
    (usize, Option<usize>),
    Option<String>,
    Option<String>,
    Facts,
);

/// What the headings above a list say about it.
#[derive(Clone, Copy)]
struct Facts {
    people: bool,
    rollback: bool,
    criteria: bool,
    rollback_criteria: bool,
    steps: bool,
    not_steps: bool,
}

/// A table seen so far: (range, header cells, rows).
type TableInfo = (Range<usize>, Vec<Range<usize>>, Vec<Row>);

/// Which structure owns loose content right now.
enum Owner {
    Header,
    Stage(usize),
    Group(usize, usize),
}

const STEP_FIELDS: &[&str] = &[
    "time",
    "completed by",
    "verified by",
    "result",
    "sign-off",
    "duration",
    "responsible",
    "verification",
    "notes",
    "owner",
    "expected",
    "evidence",
    "status",
];

impl<'a> Importer<'a> {
    fn loc(&self, r: &Range<usize>) -> Loc {
        self.lines.loc(self.src, r.start, r.end)
    }

    fn owner(&self) -> Owner {
        match (self.rb.stages.len(), self.group) {
            (0, _) => Owner::Header,
            (n, Some(g)) => Owner::Group(n - 1, g),
            (n, None) => Owner::Stage(n - 1),
        }
    }

    fn loose_mut(&mut self) -> &mut Loose {
        match self.owner() {
            Owner::Header => &mut self.rb.header,
            Owner::Stage(s) => &mut self.rb.stages[s].loose,
            Owner::Group(s, g) => &mut self.rb.stages[s].groups[g].loose,
        }
    }

    fn close_step(&mut self) {
        self.step = None;
    }

    fn top(&mut self, block: &Block) {
        match block {
            Block::Heading { level, range, text } => self.heading(*level, range, text),
            Block::Rule => {
                self.close_step();
                self.section = None;
                self.context = None;
            }
            Block::Meta { range } => {
                let loc = self.loc(range);
                self.rb.front_matter = Some(FrontMatter {
                    loc,
                    text: self.src[range.clone()].to_string(),
                });
            }
            Block::Paragraph { range } => self.paragraph(range),
            Block::Code {
                range,
                info,
                fenced,
                text,
            } => {
                let target = self.step;
                self.code(range, info, *fenced, text, target);
                if let Some(s) = self.step {
                    self.extend_step(s, range.end);
                }
            }
            Block::List { items } => {
                if let Some(s) = self.step {
                    for li in items {
                        self.step_list_item(s, li, 1);
                        self.extend_step(s, li.range.end);
                    }
                } else {
                    if let Some(role) = self.section.clone()
                        && self.is_signature_list(items)
                    {
                        self.sign_off_role(role);
                    }
                    for li in items {
                        self.top_list_item(li, None);
                    }
                }
                self.context = None;
                self.lead = None;
            }
            Block::Table { range, head, rows } => self.table(range, head, rows),
            Block::Quote { children } => {
                for c in children {
                    self.top(c);
                }
            }
            Block::Other => {}
        }
    }

    fn heading(&mut self, level: u8, range: &Range<usize>, text: &str) {
        self.close_step();
        self.context = None;
        self.lead = None;
        self.section_optional = None;
        if level <= 3 {
            self.choice = None;
        }
        let loc = self.loc(range);
        let line = self.lines.line_text(self.src, loc.line as usize - 1);
        let (mut declared, count) = parse_declared(line);
        let line_start = self.lines.line_start(loc.line as usize - 1);
        if let Some((n, s, e)) = count {
            declared.items = Some((n, self.lines.loc(self.src, line_start + s, line_start + e)));
        }
        let heading = Heading {
            level,
            text: text.trim().to_string(),
            loc,
            declared,
        };
        self.rb.headings.push(heading.clone());
        match level {
            1 if self.rb.title.is_none() && self.rb.stages.is_empty() => {
                self.rb.title = Some(heading);
            }
            1 | 2 => {
                self.new_stage(heading);
                self.section = None;
            }
            3 => {
                self.ensure_stage();
                let s = self.rb.stages.len() - 1;
                let stage = &mut self.rb.stages[s];
                let slug = slug_or(&heading.text, "group");
                let address = format!("{}.{}", stage.address, stage.groups.len() + 1);
                stage.groups.push(Group {
                    id: format!("{}/{}", stage.id, slug),
                    address,
                    heading,
                    items: Vec::new(),
                    loose: Loose::default(),
                    criteria: Vec::new(),
                    choose_one: Vec::new(),
                });
                self.group = Some(stage.groups.len() - 1);
                self.section = None;
            }
            _ => {
                self.ensure_stage();
                self.section = Some(strip_trailing_parens(&heading.text).to_string());
                self.section_optional = heading.declared.condition.clone();
                let s = self.rb.stages.len() - 1;
                if let Some(g) = self.group
                    && says_choose_one(self.rb.stages[s].groups[g].title())
                {
                    let options = &mut self.rb.stages[s].groups[g].choose_one;
                    options.push(Choice {
                        title: heading.text.clone(),
                        loc: heading.loc,
                        items: Vec::new(),
                    });
                    self.choice = Some(options.len() - 1);
                }
            }
        }
    }

    fn new_stage(&mut self, heading: Heading) {
        let kind = stage_kind(&heading.text);
        let id = slug_or(&heading.text, "stage");
        self.rb.stages.push(Stage {
            id,
            address: (self.rb.stages.len() + 1).to_string(),
            heading,
            kind,
            items: Vec::new(),
            groups: Vec::new(),
            loose: Loose::default(),
            criteria: Vec::new(),
            signers: Vec::new(),
        });
        self.group = None;
    }

    /// Items before any `##` heading go into a stage named after the document.
    fn ensure_stage(&mut self) {
        if self.rb.stages.is_empty() {
            let heading = self.rb.title.clone().unwrap_or(Heading {
                level: 2,
                text: "Checklist".to_string(),
                loc: self.lines.loc(self.src, 0, 0),
                declared: Declared::default(),
            });
            self.new_stage(heading);
        }
    }

    fn paragraph(&mut self, range: &Range<usize>) {
        let raw = &self.src[range.clone()];
        let first = raw.lines().next().unwrap_or("").trim();
        if let Some(title) = step_title(first) {
            self.close_step();
            self.context = None;
            let (declared, _) = parse_declared(&title);
            let idx = self.new_item(ItemKind::Step, title, None, range.clone(), None, declared);
            self.step = Some(idx);
            return;
        }
        if raw.trim().lines().count() == 1
            && let Some(label) = label_only(raw.trim())
        {
            self.close_step();
            self.context = None;
            self.section_optional = parse_declared(&label).0.condition;
            self.section = Some(label);
            self.lead = None;
            return;
        }
        self.lead = (raw.trim().lines().count() == 1 && raw.trim().ends_with(':'))
            .then(|| plain(raw.trim()));
        let fields: Vec<String> = raw.lines().flat_map(scan_fields).map(|f| f.label).collect();
        if let Some(s) = self.step {
            let step_field = |l: &String| STEP_FIELDS.contains(&l.to_lowercase().as_str());
            if fields.iter().all(step_field) {
                self.extend_step(s, range.end);
                return;
            }
            self.close_step();
        }
        self.context = fields.last().cloned();
        self.loose_scan(range.clone());
    }

    fn extend_step(&mut self, step: usize, end: usize) {
        let e = self.item_extra.entry(step).or_insert(end);
        *e = (*e).max(end);
    }

    fn code(
        &mut self,
        range: &Range<usize>,
        info: &str,
        fenced: bool,
        text: &str,
        item: Option<usize>,
    ) {
        let loc = self.loc(range);
        let lang = info.split_whitespace().next().unwrap_or("").to_lowercase();
        let closed = fence_closed(self.src, range);
        if fenced {
            self.rb.fences.push(Fence {
                loc,
                info: info.to_string(),
                closed,
            });
        }
        let body = fence_body(self.src, range, fenced, closed);
        self.code.push(range.clone());
        if lang == "golive" {
            self.golive.push(range.clone());
            let ann = self.annotation(loc, body, text);
            match item {
                Some(i) => self.rb.items[i].annotations.push(ann),
                None => self.loose_mut().annotations.push(ann),
            }
            return;
        }
        if matches!(lang.as_str(), "bash" | "sh" | "shell" | "zsh" | "console") {
            self.shell.push(body.clone());
            let first_line = self.lines.line_of(body.start);
            let commands = split_commands(
                text,
                lang == "console",
                |k| self.lines.line_start(first_line + k),
                self,
            );
            let block = CommandBlock {
                loc,
                info: info.to_string(),
                code: text.to_string(),
                commands,
                context: if item.is_none() {
                    self.context.clone()
                } else {
                    None
                },
            };
            match item {
                Some(i) => self.rb.items[i].commands.push(block),
                None => self.loose_mut().commands.push(block),
            }
        }
        if item.is_none() {
            self.loose_scan(range.clone());
        }
    }

    fn annotation(&self, loc: Loc, body: Range<usize>, text: &str) -> Annotation {
        let body_loc = self.loc(&body);
        let raw = &self.src[body.clone()];
        match toml::from_str::<toml::Table>(raw) {
            Ok(table) => Annotation {
                loc,
                body: body_loc,
                table: Some(table),
                error: None,
            },
            Err(e) => {
                // a block inside a quote has prefixes the TOML parser cannot
                // read; the de-indented text may still parse
                if let Ok(table) = toml::from_str::<toml::Table>(text) {
                    return Annotation {
                        loc,
                        body: body_loc,
                        table: Some(table),
                        error: None,
                    };
                }
                let span = e.span().unwrap_or(0..0);
                let start = (body.start + span.start).min(body.end);
                let end = (body.start + span.end).clamp(start, body.end);
                let message = e.message().trim().to_string();
                Annotation {
                    loc,
                    body: body_loc,
                    table: None,
                    error: Some((message, self.lines.loc(self.src, start, end))),
                }
            }
        }
    }

    /// A list item at stage/group level, outside any step.
    fn top_list_item(&mut self, li: &ListItem, section: Option<String>) {
        if let Some((marker, checked)) = &li.task {
            let saved = self.section.clone();
            if section.is_some() {
                self.section = section;
            }
            let (title, text) = task_title(&self.src[marker.end..li.range.end]);
            let (declared, _) = parse_declared(&title);
            let marker = Marker {
                loc: self.loc(marker),
                checked: *checked,
            };
            self.markers.push(marker.loc.range());
            let idx = self.new_item(
                ItemKind::Task,
                title,
                text,
                li.range.clone(),
                Some(marker),
                declared,
            );
            for child in &li.children {
                self.item_child(idx, child, 1);
            }
            if self.list_context(&self.rb.items[idx].title, true) == ListContext::Criteria {
                let text = self.rb.items[idx].title.clone();
                let loc = self.rb.items[idx].loc;
                self.criteria_mut().push(Criterion {
                    text,
                    loc,
                    item: Some(idx),
                });
            }
            self.section = saved;
            return;
        }
        if has_task_descendant(&li.children) {
            let first = self.src[li.range.clone()].lines().next().unwrap_or("");
            let label = plain(strip_line_prefix(first))
                .trim_end_matches(':')
                .trim()
                .to_string();
            let label = strip_trailing_parens(&label).to_string();
            let label = if label.is_empty() { None } else { Some(label) };
            for child in &li.children {
                match child {
                    Block::List { items } => {
                        for sub in items {
                            self.top_list_item(sub, label.clone().or(section.clone()));
                        }
                    }
                    other => self.top(other),
                }
            }
            return;
        }
        let first = self.src[li.range.clone()].lines().next().unwrap_or("");
        let (title, _) = task_title(strip_line_prefix(first));
        match self.list_context(&title, false) {
            ListContext::Steps if !title.is_empty() => {
                let (declared, _) = parse_declared(&title);
                let idx = self.new_item(
                    ItemKind::Step,
                    title,
                    None,
                    li.range.clone(),
                    None,
                    declared,
                );
                for child in &li.children {
                    self.item_child(idx, child, 1);
                }
                return;
            }
            ListContext::Criteria if !title.is_empty() => {
                let loc = self.loc(&li.range);
                let line = plain(strip_line_prefix(first));
                let text = line
                    .trim_start_matches(['⚠', '\u{fe0f}', '🚨', '❗', ' '])
                    .to_string();
                self.criteria_mut().push(Criterion {
                    text,
                    loc,
                    item: None,
                });
            }
            _ => {}
        }
        // plain list item: its fields and blanks belong to the container
        let code_ranges: Vec<Range<usize>> = li
            .children
            .iter()
            .filter_map(|c| match c {
                Block::Code { range, .. } => Some(range.clone()),
                _ => None,
            })
            .collect();
        for child in &li.children {
            if let Block::Code {
                range,
                info,
                fenced,
                text,
            } = child
            {
                self.code(range, info, *fenced, text, None);
            }
        }
        self.loose_scan_except(li.range.clone(), &code_ranges);
    }

    /// Content nested inside item `idx`.
    fn item_child(&mut self, idx: usize, block: &Block, depth: u8) {
        match block {
            Block::List { items } => {
                for li in items {
                    if let Some((marker, checked)) = &li.task {
                        self.subcheck(idx, li, marker, *checked, depth);
                        for c in &li.children {
                            self.item_child(idx, c, depth + 1);
                        }
                    } else {
                        for c in &li.children {
                            self.item_child(idx, c, depth);
                        }
                    }
                }
            }
            Block::Code {
                range,
                info,
                fenced,
                text,
            } => self.code(range, info, *fenced, text, Some(idx)),
            Block::Table { range, head, rows } => {
                self.tables.push((range.clone(), head.clone(), Vec::new()));
                let t = self.tables.len() - 1;
                for row in rows {
                    if let Some((cell, checked)) = checkbox_cell(self.src, row) {
                        let title = row_title(self.src, row, &cell);
                        self.push_subcheck(idx, title, row.range.clone(), cell, checked, depth);
                    }
                }
                self.tables[t].2 = clone_rows(rows);
            }
            Block::Quote { children } => {
                for c in children {
                    self.item_child(idx, c, depth);
                }
            }
            _ => {}
        }
    }

    fn subcheck(
        &mut self,
        idx: usize,
        li: &ListItem,
        marker: &Range<usize>,
        checked: bool,
        depth: u8,
    ) {
        let first = self.src[marker.end..li.range.end]
            .lines()
            .next()
            .unwrap_or("");
        let text = plain(first);
        self.push_subcheck(idx, text, li.range.clone(), marker.clone(), checked, depth);
    }

    fn push_subcheck(
        &mut self,
        idx: usize,
        text: String,
        range: Range<usize>,
        marker: Range<usize>,
        checked: bool,
        depth: u8,
    ) {
        let marker = Marker {
            loc: self.loc(&marker),
            checked,
        };
        self.markers.push(marker.loc.range());
        let item = &self.rb.items[idx];
        let base = slug_or(strip_trailing_parens(&text), "check");
        let id = self.subcheck_ids.take(
            idx,
            item.subchecks.iter().map(|s| s.id.as_str()),
            format!("{}/{}", item.id, base),
        );
        let loc = self.loc(&range);
        self.rb.items[idx].subchecks.push(SubCheck {
            id,
            text,
            loc,
            marker,
            depth,
        });
    }

    /// A list item after a step paragraph: task items are the step's sub-checks.
    fn step_list_item(&mut self, step: usize, li: &ListItem, depth: u8) {
        if let Some((marker, checked)) = &li.task {
            self.subcheck(step, li, marker, *checked, depth);
        }
        for c in &li.children {
            match c {
                Block::List { items } => {
                    for sub in items {
                        self.step_list_item(step, sub, depth + 1);
                    }
                }
                other => self.item_child(step, other, depth),
            }
        }
    }

    fn table(&mut self, range: &Range<usize>, head: &[Range<usize>], rows: &[Row]) {
        self.tables
            .push((range.clone(), head.to_vec(), clone_rows(rows)));
        let t = self.tables.len() - 1;
        let mut owned = Vec::new();
        if let Some(col) = role_column(self.src, head) {
            for row in rows {
                if let Some(cell) = row.cells.get(col) {
                    let role = plain(self.src[cell.clone()].trim_matches(['|', ' ', '\t']));
                    if !role.is_empty() && bold_only_row(self.src, row).is_none() {
                        self.sign_off_role(role);
                    }
                }
            }
        }
        let saved = (self.section.clone(), self.section_optional.clone());
        for (r, row) in rows.iter().enumerate() {
            let Some((cell, checked)) = checkbox_cell(self.src, row) else {
                if let Some(label) = bold_only_row(self.src, row) {
                    self.section_optional = parse_declared(&label).0.condition;
                    self.section = Some(strip_trailing_parens(&label).to_string());
                }
                continue;
            };
            let title = row_title(self.src, row, &cell);
            if let Some(s) = self.step {
                self.push_subcheck(s, title, row.range.clone(), cell, checked, 1);
                self.extend_step(s, row.range.end);
            } else {
                let marker = Marker {
                    loc: self.loc(&cell),
                    checked,
                };
                self.markers.push(cell.clone());
                let (declared, _) = parse_declared(&title);
                let idx = self.new_item(
                    ItemKind::Row,
                    title,
                    None,
                    row.range.clone(),
                    Some(marker),
                    declared,
                );
                self.row_items.insert(idx, (t, r));
                owned.push(row.range.start);
            }
        }
        (self.section, self.section_optional) = saved;
        // rows that are no item: their blanks belong to the container
        let loose_rows: Vec<&Row> = rows
            .iter()
            .filter(|r| !owned.contains(&r.range.start))
            .collect();
        if self.step.is_none() {
            let blanks: Vec<Blank> = loose_rows
                .iter()
                .flat_map(|r| self.row_blanks(t, r))
                .collect();
            self.push_loose_blanks(blanks);
        }
    }

    fn row_blanks(&self, table: usize, row: &Row) -> Vec<Blank> {
        let head = &self.tables[table].1;
        let mut out = Vec::new();
        for (c, cell) in row.cells.iter().enumerate() {
            let text = &self.src[cell.clone()];
            for hit in scan_blanks(text) {
                let label = if hit.label.is_empty() {
                    head.get(c)
                        .map(|h| plain(self.src[h.clone()].trim_matches(['|', ' '])))
                        .unwrap_or_default()
                } else {
                    hit.label
                };
                out.push(Blank {
                    id: String::new(),
                    label,
                    loc: self
                        .lines
                        .loc(self.src, cell.start + hit.start, cell.start + hit.end),
                    in_table: true,
                });
            }
        }
        out
    }

    /// A row item's fields (column header → cell) and blanks.
    fn row_content(&self, t: usize, r: usize, item: &Item) -> (Vec<Field>, Vec<Blank>) {
        let (_, head, rows) = &self.tables[t];
        let row = &rows[r];
        let mut fields = Vec::new();
        let marker = item.marker.as_ref().map(|m| m.loc.start);
        let mut title_seen = false;
        for (c, cell) in row.cells.iter().enumerate() {
            if marker.is_some_and(|m| cell.start <= m && m < cell.end) {
                continue;
            }
            let value = plain(self.src[cell.clone()].trim_matches(['|', ' ', '\t']));
            if value.is_empty() {
                continue;
            }
            if !title_seen && value == item.title {
                title_seen = true;
                continue;
            }
            let label = head
                .get(c)
                .map(|h| plain(self.src[h.clone()].trim_matches(['|', ' ', '\t'])))
                .unwrap_or_default();
            if !label.is_empty() {
                fields.push(Field {
                    label,
                    choices: choices(&value),
                    value,
                    loc: self.loc(cell),
                });
            }
        }
        (fields, self.row_blanks(t, row))
    }

    /// What a list read here is, from the headings and the label above it:
    /// rollback criteria, the steps of a procedure or rollback, or neither.
    fn list_context(&self, first_line: &str, task: bool) -> ListContext {
        let Some(stage) = self.rb.stages.last() else {
            return ListContext::Plain;
        };
        // a task after `Rollback if:` is still a task: only headings make
        // tasks criteria
        let lead = if task { None } else { self.lead.as_deref() };
        let f = self.heading_facts(stage, lead);
        if f.people {
            return ListContext::Plain;
        }
        let warned = first_line.starts_with(['⚠', '🚨']);
        if (f.rollback && (f.criteria || warned)) || f.rollback_criteria {
            return ListContext::Criteria;
        }
        if f.steps && !f.not_steps {
            return ListContext::Steps;
        }
        ListContext::Plain
    }

    /// What the headings, section and lead line above say, read once per
    /// place rather than once per list item.
    fn heading_facts(&self, stage: &Stage, lead: Option<&str>) -> Facts {
        let key = (self.rb.stages.len(), self.group);
        let mut cache = self.facts.borrow_mut();
        if let Some((k, section, l, f)) = cache.as_ref()
            && *k == key
            && section.as_deref() == self.section.as_deref()
            && l.as_deref() == lead
        {
            return *f;
        }
        let texts: Vec<String> = [
            Some(stage.title()),
            self.group.map(|g| stage.groups[g].title()),
            self.section.as_deref(),
            lead,
        ]
        .into_iter()
        .flatten()
        .map(str::to_lowercase)
        .collect();
        let says = |words: &[&str]| texts.iter().any(|t| words.iter().any(|w| t.contains(w)));
        let f = Facts {
            // who decides, who to call: people, not criteria or steps
            people: says(&["authority", "contact", "escalation", "who "]),
            rollback: stage.kind == StageKind::Rollback || says(&["rollback", "roll back"]),
            criteria: says(&["criteria", "trigger", "rollback if", "rollback when"]),
            rollback_criteria: says(&[
                "rollback if",
                "roll back if",
                "rollback when",
                "rollback criteria",
                "rollback triggers",
            ]),
            steps: matches!(stage.kind, StageKind::Procedure | StageKind::Rollback)
                || says(&["procedure", "steps"]),
            not_steps: says(&["prerequisite", "contact", "notes", "reference", "link"]),
        };
        *cache = Some((key, self.section.clone(), lead.map(str::to_string), f));
        f
    }

    /// Where a criterion read now goes: the group's, or the stage's.
    fn criteria_mut(&mut self) -> &mut Vec<Criterion> {
        self.ensure_stage();
        let s = self.rb.stages.len() - 1;
        match self.group {
            Some(g) => &mut self.rb.stages[s].groups[g].criteria,
            None => &mut self.rb.stages[s].criteria,
        }
    }

    /// A list of Name / Signature / Date lines: the block of a role that
    /// signs.
    fn is_signature_list(&self, items: &[ListItem]) -> bool {
        items.iter().any(|li| {
            let first = self.src[li.range.clone()].lines().next().unwrap_or("");
            let t = plain(strip_line_prefix(first)).to_lowercase();
            t.starts_with("signature") || t.starts_with("signed")
        })
    }

    /// A role that signs the current stage, once.
    fn sign_off_role(&mut self, role: String) {
        let role = role.trim().trim_end_matches(':').trim().to_string();
        if role.is_empty() {
            return;
        }
        self.ensure_stage();
        let s = self.rb.stages.len() - 1;
        let signers = &mut self.rb.stages[s].signers;
        if !signers.contains(&role) {
            signers.push(role);
        }
    }

    fn owner_id(&self) -> String {
        match self.owner() {
            Owner::Header => "header".to_string(),
            Owner::Stage(s) => self.rb.stages[s].id.clone(),
            Owner::Group(s, g) => self.rb.stages[s].groups[g].id.clone(),
        }
    }

    fn new_item(
        &mut self,
        kind: ItemKind,
        title: String,
        text: Option<String>,
        range: Range<usize>,
        marker: Option<Marker>,
        declared: Declared,
    ) -> usize {
        self.ensure_stage();
        let s = self.rb.stages.len() - 1;
        let stage = &self.rb.stages[s];
        let (prefix, address) = match self.group {
            Some(g) => {
                let grp = &stage.groups[g];
                (
                    grp.id.clone(),
                    format!("{}.{}", grp.address, grp.items.len() + 1),
                )
            }
            None => (
                stage.id.clone(),
                format!("{}.{}", stage.address, stage.items.len() + 1),
            ),
        };
        let mut id = prefix;
        if let Some(sec) = &self.section {
            id.push('/');
            id.push_str(&slug_or(sec, "section"));
        }
        id.push('/');
        let n = self.rb.items.len() + 1;
        id.push_str(&slug_or(
            strip_trailing_parens(&title),
            &format!("item-{n}"),
        ));
        let idx = self.rb.items.len();
        let optional = self.optional_of(&title, &declared);
        if let (Some(g), Some(c)) = (self.group, self.choice)
            && let Some(choice) = self.rb.stages[s].groups[g].choose_one.get_mut(c)
        {
            choice.items.push(idx);
        }
        let loc = self.loc(&range);
        self.rb.items.push(Item {
            id,
            address,
            kind,
            title,
            text,
            section: self.section.clone(),
            stage: s,
            group: self.group,
            loc,
            marker,
            declared,
            optional,
            repeats: None,
            subchecks: Vec::new(),
            fields: Vec::new(),
            blanks: Vec::new(),
            commands: Vec::new(),
            annotations: Vec::new(),
        });
        match self.group {
            Some(g) => self.rb.stages[s].groups[g].items.push(idx),
            None => self.rb.stages[s].items.push(idx),
        }
        idx
    }

    /// Why an item may be skipped: its own marker, the word "optional" in
    /// its title, or the marker of the section, group or stage it sits in.
    fn optional_of(&self, title: &str, declared: &Declared) -> Option<String> {
        if let Some(c) = &declared.condition {
            return Some(c.clone());
        }
        if contains_ignoring_case(title, "optional") {
            return Some("optional".to_string());
        }
        if let Some(c) = &self.section_optional {
            return Some(c.clone());
        }
        let stage = self.rb.stages.last()?;
        self.group
            .and_then(|g| stage.groups[g].heading.declared.condition.clone())
            .or_else(|| stage.heading.declared.condition.clone())
    }

    /// Fields and blanks of a range that belongs to no item.
    fn loose_scan(&mut self, range: Range<usize>) {
        self.loose_scan_except(range, &[]);
    }

    fn loose_scan_except(&mut self, range: Range<usize>, skip: &[Range<usize>]) {
        let (fields, blanks) = self.scan(range, skip, None);
        self.loose_mut().fields.extend(fields);
        self.push_loose_blanks(blanks);
    }

    /// Blanks that belong to no item, each given its id under the current
    /// stage, group or the header.
    fn push_loose_blanks(&mut self, blanks: Vec<Blank>) {
        if blanks.is_empty() {
            return;
        }
        let owner_id = self.owner_id();
        let key = match self.owner() {
            Owner::Header => LooseOwner::Header,
            Owner::Stage(s) => LooseOwner::Stage(s),
            Owner::Group(s, g) => LooseOwner::Group(s, g),
        };
        let mut ids = std::mem::take(&mut self.loose_ids);
        let loose = self.loose_mut();
        for mut b in blanks {
            b.id = ids.take(
                key,
                loose.blanks.iter().map(|x| x.id.as_str()),
                format!("{owner_id}#{}", slug_or(&b.label, "blank")),
            );
            loose.blanks.push(b);
        }
        self.loose_ids = ids;
    }

    /// Line-by-line scan of `range` for fields and blanks. Fields are not read
    /// inside code; blanks are not read inside `golive` blocks or tables (those
    /// are read per cell). `title_at` skips the item's own `**Title:**`.
    fn scan(
        &self,
        range: Range<usize>,
        skip: &[Range<usize>],
        title_at: Option<usize>,
    ) -> (Vec<Field>, Vec<Blank>) {
        let mut fields = Vec::new();
        let mut blanks = Vec::new();
        if range.start >= range.end {
            return (fields, blanks);
        }
        let first = self.lines.line_of(range.start);
        let last = self
            .lines
            .line_of(range.end.saturating_sub(1).max(range.start));
        for line in first..=last {
            let ls = self.lines.line_start(line);
            let text = self.lines.line_text(self.src, line);
            let s = range.start.max(ls);
            let e = range.end.min(ls + text.len());
            if s >= e {
                continue;
            }
            let inside = |r: &Range<usize>| r.start <= s && s < r.end;
            if skip.iter().any(inside) || in_sorted(&self.golive, s, |r| r) {
                continue;
            }
            let in_table = in_sorted(&self.tables, s, |t| &t.0);
            let in_code = in_sorted(&self.code, s, |r| r);
            let seg = &self.src[s..e];
            if !in_code && !in_table {
                for f in scan_fields(seg) {
                    if title_at == Some(s + f.start) {
                        continue;
                    }
                    fields.push(Field {
                        label: f.label,
                        choices: choices(&f.value),
                        value: f.value,
                        loc: self.lines.loc(self.src, s + f.start, s + f.end),
                    });
                }
            }
            if !in_table {
                for b in scan_blanks(seg) {
                    blanks.push(Blank {
                        id: String::new(),
                        label: b.label,
                        loc: self.lines.loc(self.src, s + b.start, s + b.end),
                        in_table: false,
                    });
                }
            }
        }
        // table cells inside the range
        let first = self.tables.partition_point(|t| t.0.start < range.start);
        for (t, table) in self.tables.iter().enumerate().skip(first) {
            if table.0.start >= range.end {
                break;
            }
            if table.0.end <= range.end {
                for row in &table.2 {
                    blanks.extend(self.row_blanks(t, row));
                }
            }
        }
        blanks.sort_by_key(|b| b.loc.start);
        (fields, blanks)
    }

    /// Items whose id an item before has get `id-2`, `id-3` … in document
    /// order, their sub-checks' ids with them, and the first item of that id
    /// as what they repeat. Done once all items are read, with one look-up
    /// per item.
    fn distinct_ids(&mut self) {
        let items = &self.rb.items;
        let mut seen: HashMap<&str, usize> = HashMap::with_capacity(items.len());
        let mut repeated = Vec::new();
        for (i, it) in items.iter().enumerate() {
            match seen.entry(it.id.as_str()) {
                std::collections::hash_map::Entry::Occupied(first) => {
                    repeated.push((i, *first.get()))
                }
                std::collections::hash_map::Entry::Vacant(v) => {
                    v.insert(i);
                }
            }
        }
        if repeated.is_empty() {
            return;
        }
        let mut next: HashMap<&str, usize> = HashMap::new();
        let mut given: HashSet<String> = HashSet::new();
        let mut renames = Vec::with_capacity(repeated.len());
        for (i, first) in repeated {
            let base = items[i].id.as_str();
            let n = next.entry(base).or_insert(2);
            let id = loop {
                let candidate = format!("{base}-{n}");
                *n += 1;
                if !seen.contains_key(candidate.as_str()) && !given.contains(&candidate) {
                    break candidate;
                }
            };
            given.insert(id.clone());
            renames.push((i, first, id));
        }
        for (i, first, id) in renames {
            let it = &mut self.rb.items[i];
            for sub in &mut it.subchecks {
                if let Some(rest) = sub.id.strip_prefix(it.id.as_str()) {
                    sub.id = format!("{id}{rest}");
                }
            }
            it.id = id;
            it.repeats = Some(first);
        }
    }

    fn finish(mut self) -> Runbook {
        self.distinct_ids();
        // fields and blanks of each item, from its whole range
        for idx in 0..self.rb.items.len() {
            let item = &self.rb.items[idx];
            let mut range = item.loc.range();
            if let Some(end) = self.item_extra.get(&idx) {
                range.end = range.end.max(*end);
            }
            let title_at = match item.kind {
                ItemKind::Task => item.marker.as_ref().and_then(|m| {
                    let after = &self.src[m.loc.end..];
                    let lead = after.len() - after.trim_start().len();
                    after
                        .trim_start()
                        .starts_with("**")
                        .then_some(m.loc.end + lead)
                }),
                _ => None,
            };
            let (fields, blanks) = match self.row_items.get(&idx) {
                Some(&(t, r)) => self.row_content(t, r, item),
                None => self.scan(range.clone(), &[], title_at),
            };
            let loc = self.loc(&range);
            let id = self.rb.items[idx].id.clone();
            let item = &mut self.rb.items[idx];
            item.loc = loc;
            item.fields = fields;
            let mut ids = Ids::default();
            for mut b in blanks {
                b.id = ids.take(
                    idx,
                    item.blanks.iter().map(|x| x.id.as_str()),
                    format!("{id}#{}", slug_or(&b.label, "blank")),
                );
                item.blanks.push(b);
            }
        }
        // placeholders anywhere but in checkboxes
        let mut markers = std::mem::take(&mut self.markers);
        markers.sort_by_key(|m| m.start);
        for (s, e, name) in scan_placeholders(self.src) {
            if in_sorted(&markers, s, |r| r) {
                continue;
            }
            let in_command = in_sorted(&self.shell, s, |r| r);
            let in_annotation = in_sorted(&self.golive, s, |r| r);
            self.rb.placeholders.push(Placeholder {
                name,
                loc: self.lines.loc(self.src, s, e),
                in_command,
                in_annotation,
            });
        }
        self.rb.lines = self.lines;
        self.rb
    }
}

fn clone_rows(rows: &[Row]) -> Vec<Row> {
    rows.iter()
        .map(|r| Row {
            range: r.range.clone(),
            cells: r.cells.clone(),
        })
        .collect()
}

fn slug_or(text: &str, fallback: &str) -> String {
    let s = slugify(strip_trailing_parens(text));
    if s.is_empty() {
        let s = slugify(text);
        if s.is_empty() {
            fallback.to_string()
        } else {
            s
        }
    } else {
        s
    }
}

/// The ids handed out under one owner (an item's sub-checks, or the blanks of
/// an item or of a stage, group or the header): each new id is `base`, or
/// `base-2`, `base-3` … whichever is not taken yet. While the owner has few
/// ids and none clashes, a new one is compared with them directly; after
/// that, the taken ids and the suffix to try next per base are kept in maps,
/// so a line of 4,000 blanks with the same label costs 4,000 look-ups, not
/// 4,000 × 4,000 comparisons.
struct Ids<K> {
    owner: Option<K>,
    /// Whether `taken` holds every id of the owner (after its first clash,
    /// or once it has more than [`FEW_IDS`]).
    kept: bool,
    taken: HashSet<String>,
    next: HashMap<String, usize>,
}

/// Up to this many ids under one owner, a new one is compared with each.
const FEW_IDS: usize = 16;

impl<K> Default for Ids<K> {
    fn default() -> Self {
        Ids {
            owner: None,
            kept: false,
            taken: HashSet::new(),
            next: HashMap::new(),
        }
    }
}

impl<K: PartialEq> Ids<K> {
    /// A free id for `base` under `owner`, whose ids so far are `existing`.
    fn take<'s>(
        &mut self,
        owner: K,
        existing: impl Iterator<Item = &'s str> + Clone,
        base: String,
    ) -> String {
        if self.owner.as_ref() != Some(&owner) {
            self.owner = Some(owner);
            self.kept = false;
            self.taken.clear();
            self.next.clear();
        }
        if !self.kept {
            let mut seen = 0;
            let mut clash = false;
            for id in existing.clone() {
                seen += 1;
                clash |= id == base;
                if clash || seen > FEW_IDS {
                    break;
                }
            }
            if !clash && seen <= FEW_IDS {
                return base;
            }
            self.taken = existing.map(str::to_string).collect();
            self.kept = true;
        }
        if !self.taken.contains(&base) {
            self.taken.insert(base.clone());
            return base;
        }
        let n = self.next.entry(base.clone()).or_insert(2);
        loop {
            let candidate = format!("{base}-{n}");
            *n += 1;
            if !self.taken.contains(&candidate) {
                self.taken.insert(candidate.clone());
                return candidate;
            }
        }
    }
}

/// Whose loose blanks an id is for.
#[derive(PartialEq, Clone, Copy)]
enum LooseOwner {
    Header,
    Stage(usize),
    Group(usize, usize),
}

/// `**Step 1.2: Final Checks**` → `Step 1.2: Final Checks`.
fn step_title(line: &str) -> Option<String> {
    let inner = line
        .strip_prefix("**")
        .and_then(|l| l.strip_suffix("**"))
        .or_else(|| line.strip_prefix("__").and_then(|l| l.strip_suffix("__")))?;
    if inner.contains("**") {
        return None;
    }
    let mut words = inner.split_whitespace();
    let first = words.next()?;
    if !first.eq_ignore_ascii_case("step") {
        return None;
    }
    let id = words.next()?;
    id.chars()
        .next()
        .filter(char::is_ascii_alphanumeric)
        .map(|_| plain(inner))
}

/// A paragraph that is only `**Label:**`.
fn label_only(text: &str) -> Option<String> {
    let inner = text.strip_prefix("**")?;
    let label = inner
        .strip_suffix(":**")
        .or_else(|| inner.strip_suffix("**:"))?;
    (!label.contains("**") && !label.trim().is_empty()).then(|| plain(label))
}

/// Title and text of a task item, from the text after its checkbox.
fn task_title(after_marker: &str) -> (String, Option<String>) {
    let first = after_marker.lines().next().unwrap_or("").trim();
    if let Some(rest) = first.strip_prefix("**")
        && let Some(close) = rest.find("**")
    {
        let bold = &rest[..close];
        let after = rest[close + 2..].trim();
        if let Some(title) = bold.strip_suffix(':') {
            let text = plain(after);
            return (plain(title), (!text.is_empty()).then_some(text));
        }
        if let Some(after) = after.strip_prefix(':') {
            let text = plain(after);
            return (plain(bold), (!text.is_empty()).then_some(text));
        }
        let text = plain(after);
        let text = text.trim_start_matches(['-', '—', '–', ' ']).to_string();
        return (plain(bold), (!text.is_empty()).then_some(text));
    }
    (plain(first), None)
}

fn has_task_descendant(children: &[Block]) -> bool {
    children.iter().any(|c| match c {
        Block::List { items } => items
            .iter()
            .any(|li| li.task.is_some() || has_task_descendant(&li.children)),
        Block::Quote { children } => has_task_descendant(children),
        _ => false,
    })
}

/// The first cell of a row that is only a checkbox, and whether it is ticked.
fn checkbox_cell(src: &str, row: &Row) -> Option<(Range<usize>, bool)> {
    for cell in &row.cells {
        let raw = &src[cell.clone()];
        let lead = raw.len() - raw.trim_start_matches(['|', ' ', '\t']).len();
        let text = raw.trim_matches(['|', ' ', '\t']);
        let checked = if crate::text::OPEN_BOXES.contains(&text) {
            false
        } else if crate::text::TICKED_BOXES.contains(&text) {
            true
        } else {
            continue;
        };
        let start = cell.start + lead;
        return Some((start..start + text.len(), checked));
    }
    None
}

/// The first non-empty cell of a row other than its checkbox.
fn row_title(src: &str, row: &Row, checkbox: &Range<usize>) -> String {
    row.cells
        .iter()
        .filter(|c| !(c.start <= checkbox.start && checkbox.start < c.end))
        .map(|c| plain(src[c.clone()].trim_matches(['|', ' ', '\t'])))
        .find(|t| !t.is_empty())
        .unwrap_or_default()
}

/// Whether `hay` holds `needle` (ASCII lower-case), in any case.
fn contains_ignoring_case(hay: &str, needle: &str) -> bool {
    hay.as_bytes()
        .windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
}

/// What a list under the current headings is.
#[derive(PartialEq)]
enum ListContext {
    Criteria,
    Steps,
    Plain,
}

/// "Choose one", "pick one", "select one": a group of options of which one
/// is done.
fn says_choose_one(title: &str) -> bool {
    let t = title.to_lowercase();
    [
        "choose one",
        "choose 1",
        "pick one",
        "select one",
        "one of the following",
    ]
    .iter()
    .any(|w| t.contains(w))
}

/// A row whose only text is one bold cell (`| **Staging Deployment** | | |`):
/// it names the rows after it.
fn bold_only_row(src: &str, row: &Row) -> Option<String> {
    let mut texts = row
        .cells
        .iter()
        .map(|c| src[c.clone()].trim_matches(['|', ' ', '\t']))
        .filter(|t| !t.is_empty());
    let only = texts.next()?;
    if texts.next().is_some() {
        return None;
    }
    let inner = only
        .strip_prefix("**")
        .and_then(|t| t.strip_suffix("**"))
        .or_else(|| only.strip_prefix("__").and_then(|t| t.strip_suffix("__")))?;
    (!inner.contains("**") && !inner.trim().is_empty()).then(|| plain(inner))
}

/// The column naming the roles of a sign-off table: a `Role` (or
/// `Approver`) header beside a `Signature` (or `Sign-off`, `Approval`) one.
fn role_column(src: &str, head: &[Range<usize>]) -> Option<usize> {
    let names: Vec<String> = head
        .iter()
        .map(|h| plain(src[h.clone()].trim_matches(['|', ' ', '\t'])).to_lowercase())
        .collect();
    let signs = names.iter().any(|n| {
        n.contains("signature")
            || n.contains("sign-off")
            || n.contains("signoff")
            || n == "approval"
    });
    if !signs {
        return None;
    }
    names
        .iter()
        .position(|n| n == "role" || n == "roles" || n.starts_with("role "))
        .or_else(|| names.iter().position(|n| n == "approver"))
}

fn stage_kind(title: &str) -> StageKind {
    let t = title.to_lowercase();
    let has = |w: &str| t.contains(w);
    // "Phase 3: …": one stage of a document written as one long procedure
    let phase = t
        .strip_prefix("phase")
        .map(str::trim_start)
        .is_some_and(|r| r.starts_with(|c: char| c.is_ascii_digit()));
    if phase {
        return if has("rollback") || has("roll back") {
            StageKind::Rollback
        } else if has("go/no-go") || has("no-go") {
            StageKind::Decision
        } else if has("smoke") {
            StageKind::Smoke
        } else if has("verification") || has("verify") || has("validation") {
            StageKind::Verification
        } else if has("monitor") || has("hypercare") {
            StageKind::Hypercare
        } else if has("sign-off") || has("signoff") || has("sign off") {
            StageKind::SignOff
        } else {
            StageKind::Procedure
        };
    }
    if has("go/no-go") || has("no-go") || (has("decision") && !has("rollback")) {
        StageKind::Decision
    } else if has("rollback") || has("roll back") {
        StageKind::Rollback
    } else if has("smoke") {
        StageKind::Smoke
    } else if has("post-deployment") || has("verification") {
        StageKind::Verification
    } else if has("pre-deployment") || has("readiness") || has("pre-flight") || has("preflight") {
        StageKind::PreDeployment
    } else if has("procedure") || has("step-by-step") || has("deployment steps") {
        StageKind::Procedure
    } else if has("communication") {
        StageKind::Communication
    } else if has("sign-off") || has("signoff") || has("sign off") {
        StageKind::SignOff
    } else if has("hypercare") {
        StageKind::Hypercare
    } else if has("appendi") {
        StageKind::Appendix
    } else {
        StageKind::Other
    }
}

/// Whether a fenced block's last line is a closing fence.
fn fence_closed(src: &str, range: &Range<usize>) -> bool {
    let text = &src[range.clone()];
    let open_line = text.lines().next().unwrap_or("");
    let open = open_line
        .trim_start_matches([' ', '>', '-', '*', '+'])
        .trim_start();
    let ch = match open.chars().next() {
        Some(c @ ('`' | '~')) => c,
        _ => return true,
    };
    let n = open.chars().take_while(|&c| c == ch).count();
    let trimmed = text.trim_end_matches(['\n', '\r']);
    if trimmed.lines().count() < 2 {
        return false;
    }
    let last = trimmed.lines().last().unwrap_or("");
    let last = last.trim_start_matches([' ', '>', '\t']);
    let run = last.chars().take_while(|&c| c == ch).count();
    run >= n && last[run * ch.len_utf8()..].trim().is_empty()
}

/// The body of a code block: between the fences (or all of an indented block).
fn fence_body(src: &str, range: &Range<usize>, fenced: bool, closed: bool) -> Range<usize> {
    if !fenced {
        return range.clone();
    }
    let text = &src[range.clone()];
    let start = text.find('\n').map_or(range.end, |i| range.start + i + 1);
    let end = if closed {
        let trimmed = text.trim_end_matches(['\n', '\r']);
        trimmed
            .rfind('\n')
            .map_or(range.end, |i| range.start + i + 1)
    } else {
        range.end
    };
    start..end.max(start)
}

/// Split a shell block into commands: runs of consecutive non-comment lines,
/// each followed by its `# Expected: …` comment, if any.
fn split_commands(
    code: &str,
    console: bool,
    line_start: impl Fn(usize) -> usize,
    imp: &Importer<'_>,
) -> Vec<Command> {
    let mut out: Vec<Command> = Vec::new();
    let mut cur: Option<(String, usize, usize)> = None; // text, first line, last line
    let mut expecting_more = false;
    let finish = |cur: &mut Option<(String, usize, usize)>, out: &mut Vec<Command>| {
        if let Some((text, first, last)) = cur.take() {
            let s = line_start(first);
            let e = line_start(last + 1).max(s);
            let e = imp.lines.line_start(imp.lines.line_of(e.saturating_sub(1)))
                + imp
                    .lines
                    .line_text(imp.src, imp.lines.line_of(e.saturating_sub(1)))
                    .len();
            out.push(Command {
                text,
                loc: imp.lines.loc(imp.src, s, e.max(s)),
                expected: None,
            });
        }
    };
    for (k, line) in code.lines().enumerate() {
        let t = line.trim();
        if console {
            if let Some(cmd) = t.strip_prefix("$ ") {
                finish(&mut cur, &mut out);
                cur = Some((cmd.to_string(), k, k));
            } else if !t.is_empty() {
                finish(&mut cur, &mut out);
                push_expected(&mut out, t);
            }
            continue;
        }
        if t.is_empty() {
            finish(&mut cur, &mut out);
            expecting_more = false;
            continue;
        }
        if let Some(comment) = t.strip_prefix('#') {
            let comment = comment.trim();
            let continues = cur.as_ref().is_some_and(|c| c.0.ends_with('\\'));
            if continues {
                continue;
            }
            finish(&mut cur, &mut out);
            let rest = comment
                .get(..8)
                .filter(|w| w.eq_ignore_ascii_case("expected"))
                .map(|_| &comment[8..]);
            if let Some(rest) = rest {
                let value = rest.find(':').map_or("", |c| rest[c + 1..].trim());
                if value.is_empty() {
                    expecting_more = !out.is_empty();
                } else {
                    push_expected(&mut out, value);
                }
            } else if expecting_more {
                push_expected(&mut out, comment);
            }
            continue;
        }
        expecting_more = false;
        match &mut cur {
            Some((text, _, last)) => {
                text.push('\n');
                text.push_str(line);
                *last = k;
            }
            None => cur = Some((line.to_string(), k, k)),
        }
    }
    finish(&mut cur, &mut out);
    out
}

/// Append a line to the expected output of the last command.
fn push_expected(out: &mut [Command], line: &str) {
    if let Some(last) = out.last_mut() {
        let e = last.expected.get_or_insert_with(String::new);
        if !e.is_empty() {
            e.push('\n');
        }
        e.push_str(line);
    }
}

/// Whether `offset` lies in one of `ranges`: sorted by start, not overlapping
/// (blocks are pushed in document order).
fn in_sorted<T>(ranges: &[T], offset: usize, key: impl Fn(&T) -> &Range<usize>) -> bool {
    let i = ranges.partition_point(|r| key(r).start <= offset);
    i > 0 && offset < key(&ranges[i - 1]).end
}
