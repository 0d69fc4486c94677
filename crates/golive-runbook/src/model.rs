//! The runbook model: what a Markdown checklist says, with the span of every part.

use crate::loc::{LineIndex, Loc};

/// A Markdown checklist document, imported.
///
/// Items are stored flat in document order; stages and groups hold indices
/// into [`Runbook::items`].
#[derive(Debug, Clone)]
pub struct Runbook {
    /// The name the document was read from (for diagnostics).
    pub path: String,
    /// The original text, unchanged.
    pub source: String,
    pub lines: LineIndex,
    /// YAML front matter, kept as raw text.
    pub front_matter: Option<FrontMatter>,
    /// The first `#` heading.
    pub title: Option<Heading>,
    /// Every heading of the document in order (for lint).
    pub headings: Vec<Heading>,
    /// Fields, blanks, commands and annotations before the first stage.
    pub header: Loose,
    pub stages: Vec<Stage>,
    pub items: Vec<Item>,
    /// Every use of every placeholder, in document order.
    pub placeholders: Vec<Placeholder>,
    /// Every fenced code block (for lint: unclosed fences).
    pub fences: Vec<Fence>,
    /// Where the document goes past what golive reads (lists and quotes
    /// nested deeper than [`crate::MAX_NESTING`]), each a finding: what lies
    /// beyond is not in the model, so nothing may run from it.
    pub limits: Vec<crate::Diagnostic>,
}

/// Raw YAML front matter.
#[derive(Debug, Clone)]
pub struct FrontMatter {
    pub loc: Loc,
    pub text: String,
}

/// A heading line.
#[derive(Debug, Clone)]
pub struct Heading {
    pub level: u8,
    /// The heading text, inline markup removed.
    pub text: String,
    pub loc: Loc,
    /// What the heading declares about its section: `(8 items)`, `(15 minutes)`.
    pub declared: Declared,
}

/// What a heading or step title promises about itself.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Declared {
    /// `(N items)`, with the span of the number.
    pub items: Option<(usize, Loc)>,
    /// `(15 minutes)`, `(Target: <5 Minutes)`.
    pub budget: Option<Budget>,
    /// `(if applicable)` and other `(if …)` conditions, `(optional)`.
    pub optional: bool,
    /// The optional marker as written, without its parentheses.
    pub condition: Option<String>,
}

/// A time budget: the section must finish within `seconds`.
#[derive(Debug, Clone, PartialEq)]
pub struct Budget {
    pub seconds: u64,
    /// The budget as written, e.g. `Target: <5 Minutes`.
    pub text: String,
    /// `<` rather than "within": the target is strictly less than `seconds`.
    pub strict: bool,
}

/// What kind of stage a `##` section is, from its title.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StageKind {
    PreDeployment,
    Decision,
    Procedure,
    Smoke,
    Verification,
    Rollback,
    Communication,
    SignOff,
    Hypercare,
    Appendix,
    Other,
}

impl StageKind {
    /// A stable lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            StageKind::PreDeployment => "pre-deployment",
            StageKind::Decision => "decision",
            StageKind::Procedure => "procedure",
            StageKind::Smoke => "smoke",
            StageKind::Verification => "verification",
            StageKind::Rollback => "rollback",
            StageKind::Communication => "communication",
            StageKind::SignOff => "sign-off",
            StageKind::Hypercare => "hypercare",
            StageKind::Appendix => "appendix",
            StageKind::Other => "other",
        }
    }
}

/// A `##` section.
#[derive(Debug, Clone)]
pub struct Stage {
    /// Slug of the title (parenthesised remarks dropped).
    pub id: String,
    /// 1-based position among the stages, as text (`"3"`).
    pub address: String,
    pub heading: Heading,
    pub kind: StageKind,
    /// Items directly under the stage, before any group.
    pub items: Vec<usize>,
    pub groups: Vec<Group>,
    pub loose: Loose,
    /// Rollback criteria written in the stage, outside any group.
    pub criteria: Vec<Criterion>,
    /// The roles that sign the stage, in document order: the rows of a
    /// sign-off table (`| Role | Name | Signature | Date |`) and the
    /// `**Role:**` blocks followed by Name / Signature lines.
    pub signers: Vec<String>,
}

impl Stage {
    /// Every item of the stage, its own and its groups', in order.
    pub fn all_items(&self) -> impl Iterator<Item = usize> + '_ {
        self.items
            .iter()
            .copied()
            .chain(self.groups.iter().flat_map(|g| g.items.iter().copied()))
    }

    /// The stage's title.
    pub fn title(&self) -> &str {
        &self.heading.text
    }
}

/// A `###` section inside a stage.
#[derive(Debug, Clone)]
pub struct Group {
    /// `stage-id/group-slug`.
    pub id: String,
    /// `stage.group`, e.g. `1.2`.
    pub address: String,
    pub heading: Heading,
    pub items: Vec<usize>,
    pub loose: Loose,
    /// Rollback criteria written in the group.
    pub criteria: Vec<Criterion>,
    /// The options when the group says to choose one of them ("Deployment
    /// Pattern: Choose One" over `#### Option A: …`); empty otherwise.
    pub choose_one: Vec<Choice>,
}

/// One rollback criterion as the document writes it: a task item of a
/// criteria group (`item`), or a plain bullet (`- ⚠️ **Error rate >2x
/// baseline**`, the bullets after `Rollback if:`), which is no item.
#[derive(Debug, Clone)]
pub struct Criterion {
    /// The criterion's text, markup removed.
    pub text: String,
    pub loc: Loc,
    /// The item it is, when written as a task.
    pub item: Option<usize>,
}

/// One option of a "choose one" group.
#[derive(Debug, Clone)]
pub struct Choice {
    /// The option's heading, as written (`Option A: Blue-Green`).
    pub title: String,
    pub loc: Loc,
    /// The option's items, in order.
    pub items: Vec<usize>,
}

impl Group {
    /// The group's title.
    pub fn title(&self) -> &str {
        &self.heading.text
    }
}

/// Content of a document, stage or group that belongs to no item.
#[derive(Debug, Clone, Default)]
pub struct Loose {
    pub fields: Vec<Field>,
    pub blanks: Vec<Blank>,
    pub commands: Vec<CommandBlock>,
    pub annotations: Vec<Annotation>,
}

/// How an item is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemKind {
    /// A task list item: `- [ ] …`.
    Task,
    /// A procedure step: a bold paragraph `**Step 1.2: …**`.
    Step,
    /// A table row with a checkbox cell (☐, ☑, ✅, `[ ]`).
    Row,
}

impl ItemKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ItemKind::Task => "task",
            ItemKind::Step => "step",
            ItemKind::Row => "row",
        }
    }
}

/// A unit that is passed or failed.
#[derive(Debug, Clone)]
pub struct Item {
    /// Slug path: `stage/group/[section/]item`.
    pub id: String,
    /// Short address: `stage.group.n` (or `stage.n` for items outside groups).
    pub address: String,
    pub kind: ItemKind,
    /// The title: bold text of the item, or its first line.
    pub title: String,
    /// Text after a `**Title:**`, if any.
    pub text: Option<String>,
    /// The bold label (`**Critical Failures:**`) or `####` heading it sits under.
    pub section: Option<String>,
    pub stage: usize,
    pub group: Option<usize>,
    /// The whole item, nested content included.
    pub loc: Loc,
    /// The checkbox (`[ ]`, `☐` …); steps have none.
    pub marker: Option<Marker>,
    pub declared: Declared,
    /// Why the item may be skipped, when the document marks it optional:
    /// `(if needed)`, `(If Using Feature Flags)`, `(optional)`, on the item
    /// or on the heading it sits under.
    pub optional: Option<String>,
    /// The item with the same title before it in the same place, when the
    /// title repeats ("Monitor for 1 hour" after each rollout step): this
    /// item's id then ends in `-2`, `-3` ….
    pub repeats: Option<usize>,
    pub subchecks: Vec<SubCheck>,
    pub fields: Vec<Field>,
    pub blanks: Vec<Blank>,
    pub commands: Vec<CommandBlock>,
    pub annotations: Vec<Annotation>,
}

impl Item {
    /// Whether the item's box is ticked in the document.
    pub fn checked(&self) -> bool {
        self.marker.as_ref().is_some_and(|m| m.checked)
    }

    /// The value of the first field with this label (case-insensitive).
    pub fn field(&self, label: &str) -> Option<&Field> {
        self.fields
            .iter()
            .find(|f| f.label.eq_ignore_ascii_case(label))
    }
}

/// A checkbox and its span.
#[derive(Debug, Clone)]
pub struct Marker {
    pub loc: Loc,
    pub checked: bool,
}

/// A nested task item.
#[derive(Debug, Clone)]
pub struct SubCheck {
    /// `item-id/slug`.
    pub id: String,
    pub text: String,
    pub loc: Loc,
    pub marker: Marker,
    /// 1 for a direct child of the item, 2 below that …
    pub depth: u8,
}

/// A `**Label:** value` pair.
#[derive(Debug, Clone)]
pub struct Field {
    pub label: String,
    /// The text after the label up to the next field or the end of the line.
    pub value: String,
    pub loc: Loc,
    /// The choices the value offers, when it is a choice line (`☐ Success
    /// ☐ Rolled Back`, `SUCCESS / ROLLBACK / PARTIAL`); empty otherwise.
    pub choices: Vec<String>,
}

/// A run of four or more underscores to be filled in.
#[derive(Debug, Clone)]
pub struct Blank {
    /// `owner-id#label-slug` (with `-2`, `-3` … for repeats).
    pub id: String,
    /// The text before the blank on its line, markup removed.
    pub label: String,
    pub loc: Loc,
    /// The blank sits in a table cell (fills must not contain `|`).
    pub in_table: bool,
}

/// A fenced code block as written.
#[derive(Debug, Clone)]
pub struct Fence {
    pub loc: Loc,
    pub info: String,
    /// The closing fence is present.
    pub closed: bool,
}

/// A fenced shell block (`bash`, `sh`, `shell`, `zsh`, `console`).
#[derive(Debug, Clone)]
pub struct CommandBlock {
    pub loc: Loc,
    pub info: String,
    /// The block's content, indentation removed.
    pub code: String,
    pub commands: Vec<Command>,
    /// The label of the field the block follows (`Rollback Trigger`), if loose.
    pub context: Option<String>,
}

/// One command of a block: a run of consecutive non-comment lines.
#[derive(Debug, Clone)]
pub struct Command {
    pub text: String,
    pub loc: Loc,
    /// The `# Expected: …` text that follows it, if any.
    pub expected: Option<String>,
}

/// A ```` ```golive ```` block: TOML that automates the element it sits in.
#[derive(Debug, Clone)]
pub struct Annotation {
    pub loc: Loc,
    /// Span of the TOML body inside the fence.
    pub body: Loc,
    /// The parsed table, or `None` when the TOML does not parse.
    pub table: Option<toml::Table>,
    /// Why the TOML does not parse, with the span of the fault.
    pub error: Option<(String, Loc)>,
}

/// One use of an upper-case bracketed name such as `[DOMAIN]`.
#[derive(Debug, Clone)]
pub struct Placeholder {
    pub name: String,
    /// The span of `[NAME]`, brackets included.
    pub loc: Loc,
    /// The use sits inside a shell command block.
    pub in_command: bool,
    /// The use sits inside a `golive` annotation (not the document's text).
    pub in_annotation: bool,
}

impl Runbook {
    /// Every group of every stage, with its stage index.
    pub fn groups(&self) -> impl Iterator<Item = (usize, &Group)> {
        self.stages
            .iter()
            .enumerate()
            .flat_map(|(s, st)| st.groups.iter().map(move |g| (s, g)))
    }

    /// Every blank of the document: header, stages, groups and items.
    pub fn all_blanks(&self) -> impl Iterator<Item = &Blank> {
        self.header
            .blanks
            .iter()
            .chain(self.stages.iter().flat_map(|s| {
                s.loose
                    .blanks
                    .iter()
                    .chain(s.groups.iter().flat_map(|g| g.loose.blanks.iter()))
            }))
            .chain(self.items.iter().flat_map(|i| i.blanks.iter()))
    }

    /// Every command block of the document.
    pub fn all_command_blocks(&self) -> impl Iterator<Item = &CommandBlock> {
        self.header
            .commands
            .iter()
            .chain(self.stages.iter().flat_map(|s| {
                s.loose
                    .commands
                    .iter()
                    .chain(s.groups.iter().flat_map(|g| g.loose.commands.iter()))
            }))
            .chain(self.items.iter().flat_map(|i| i.commands.iter()))
    }

    /// Every annotation of the document.
    pub fn all_annotations(&self) -> impl Iterator<Item = &Annotation> {
        self.header
            .annotations
            .iter()
            .chain(self.stages.iter().flat_map(|s| {
                s.loose
                    .annotations
                    .iter()
                    .chain(s.groups.iter().flat_map(|g| g.loose.annotations.iter()))
            }))
            .chain(self.items.iter().flat_map(|i| i.annotations.iter()))
    }
}
