//! First pass: pulldown-cmark events folded into a tree of the blocks golive
//! cares about, each with its byte range in the source.

use pulldown_cmark::{CodeBlockKind, Event, Options, Parser, Tag, TagEnd};
use std::ops::Range;

#[derive(Debug)]
pub(crate) enum Block {
    Heading {
        level: u8,
        range: Range<usize>,
        text: String,
    },
    Paragraph {
        range: Range<usize>,
    },
    Code {
        range: Range<usize>,
        info: String,
        fenced: bool,
        text: String,
    },
    List {
        items: Vec<ListItem>,
    },
    Table {
        range: Range<usize>,
        head: Vec<Range<usize>>,
        rows: Vec<Row>,
    },
    Rule,
    Meta {
        range: Range<usize>,
    },
    Quote {
        children: Vec<Block>,
    },
    Other,
}

#[derive(Debug)]
pub(crate) struct ListItem {
    pub range: Range<usize>,
    pub task: Option<(Range<usize>, bool)>,
    pub children: Vec<Block>,
}

#[derive(Debug)]
pub(crate) struct Row {
    pub range: Range<usize>,
    pub cells: Vec<Range<usize>>,
}

/// A task list marker's span and whether it is ticked.
type TaskMarker = (Range<usize>, bool);

enum Frame {
    Container {
        children: Vec<Block>,
        item: Option<(Range<usize>, Option<TaskMarker>)>,
        quote: bool,
    },
    List {
        items: Vec<ListItem>,
    },
    Table {
        range: Range<usize>,
        head: Vec<Range<usize>>,
        rows: Vec<Row>,
    },
    Row {
        range: Range<usize>,
        cells: Vec<Range<usize>>,
        head: bool,
    },
    Cell,
    Leaf(Block),
}

/// How deep list items and block quotes may nest, together: past this, the
/// importer (which walks the tree recursively) reads no further, and the
/// document gets a `nesting-too-deep` finding. A checklist needs three or
/// four levels (item, sub-check, detail); 64 is far above any, and keeps the
/// stack and the tree small whatever the input.
pub const MAX_NESTING: usize = 64;

/// The blocks of a document, and where the first container past
/// [`MAX_NESTING`] opens (its content is left out of the tree).
pub(crate) struct Blocks {
    pub blocks: Vec<Block>,
    pub too_deep: Option<usize>,
}

/// Parse `src` into top-level blocks.
pub(crate) fn parse_blocks(src: &str) -> Blocks {
    let opts = Options::ENABLE_TABLES
        | Options::ENABLE_TASKLISTS
        | Options::ENABLE_YAML_STYLE_METADATA_BLOCKS
        | Options::ENABLE_STRIKETHROUGH;
    let mut stack: Vec<Frame> = vec![Frame::Container {
        children: Vec::new(),
        item: None,
        quote: false,
    }];
    // open list items and quotes; while `skip` > 0, the events of a container
    // past the limit are passed over (every Start has its End)
    let mut depth = 0usize;
    let mut skip = 0usize;
    let mut too_deep = None;
    for (event, range) in Parser::new_ext(src, opts).into_offset_iter() {
        if skip > 0 {
            match event {
                Event::Start(_) => skip += 1,
                Event::End(_) => skip -= 1,
                _ => {}
            }
            continue;
        }
        match event {
            Event::Start(tag) => {
                if matches!(
                    tag,
                    Tag::BlockQuote(_) | Tag::FootnoteDefinition(_) | Tag::Item
                ) {
                    if depth == MAX_NESTING {
                        too_deep.get_or_insert(range.start);
                        skip = 1;
                        continue;
                    }
                    depth += 1;
                }
                let frame = match tag {
                    Tag::Paragraph => Frame::Leaf(Block::Paragraph { range }),
                    Tag::Heading { level, .. } => Frame::Leaf(Block::Heading {
                        level: level as u8,
                        range,
                        text: String::new(),
                    }),
                    Tag::CodeBlock(kind) => {
                        let (info, fenced) = match kind {
                            CodeBlockKind::Fenced(info) => (info.to_string(), true),
                            CodeBlockKind::Indented => (String::new(), false),
                        };
                        Frame::Leaf(Block::Code {
                            range,
                            info,
                            fenced,
                            text: String::new(),
                        })
                    }
                    Tag::MetadataBlock(_) => Frame::Leaf(Block::Meta { range }),
                    Tag::HtmlBlock => Frame::Leaf(Block::Other),
                    Tag::BlockQuote(_) | Tag::FootnoteDefinition(_) => Frame::Container {
                        children: Vec::new(),
                        item: None,
                        quote: true,
                    },
                    Tag::List(_) => Frame::List { items: Vec::new() },
                    Tag::Item => Frame::Container {
                        children: Vec::new(),
                        item: Some((range, None)),
                        quote: false,
                    },
                    Tag::Table(_) => Frame::Table {
                        range,
                        head: Vec::new(),
                        rows: Vec::new(),
                    },
                    Tag::TableHead => Frame::Row {
                        range,
                        cells: Vec::new(),
                        head: true,
                    },
                    Tag::TableRow => Frame::Row {
                        range,
                        cells: Vec::new(),
                        head: false,
                    },
                    Tag::TableCell => {
                        if let Some(Frame::Row { cells, .. }) = stack.last_mut() {
                            cells.push(range);
                        }
                        Frame::Cell
                    }
                    Tag::DefinitionList
                    | Tag::DefinitionListTitle
                    | Tag::DefinitionListDefinition => Frame::Leaf(Block::Other),
                    // inline tags do not change the block structure
                    _ => continue,
                };
                stack.push(frame);
            }
            Event::End(end) => {
                if !is_block_end(&end) || stack.len() < 2 {
                    continue;
                }
                let Some(frame) = stack.pop() else { continue };
                if matches!(frame, Frame::Container { .. }) {
                    depth = depth.saturating_sub(1);
                }
                close(frame, &mut stack);
            }
            Event::Text(t) | Event::Code(t) => {
                if let Some(Frame::Leaf(Block::Heading { text, .. } | Block::Code { text, .. })) =
                    stack.last_mut()
                {
                    text.push_str(&t);
                }
            }
            Event::SoftBreak | Event::HardBreak => {
                if let Some(Frame::Leaf(Block::Heading { text, .. })) = stack.last_mut() {
                    text.push(' ');
                }
            }
            Event::TaskListMarker(checked) => {
                for f in stack.iter_mut().rev() {
                    if let Frame::Container {
                        item: Some((_, task)),
                        ..
                    } = f
                    {
                        if task.is_none() {
                            *task = Some((range.clone(), checked));
                        }
                        break;
                    }
                }
            }
            Event::Rule => push_block(&mut stack, Block::Rule),
            _ => {}
        }
    }
    while stack.len() > 1 {
        if let Some(frame) = stack.pop() {
            close(frame, &mut stack);
        }
    }
    let blocks = match stack.pop() {
        Some(Frame::Container { children, .. }) => children,
        _ => Vec::new(),
    };
    Blocks { blocks, too_deep }
}

fn is_block_end(end: &TagEnd) -> bool {
    matches!(
        end,
        TagEnd::Paragraph
            | TagEnd::Heading(_)
            | TagEnd::BlockQuote(_)
            | TagEnd::CodeBlock
            | TagEnd::HtmlBlock
            | TagEnd::List(_)
            | TagEnd::Item
            | TagEnd::FootnoteDefinition
            | TagEnd::Table
            | TagEnd::TableHead
            | TagEnd::TableRow
            | TagEnd::TableCell
            | TagEnd::MetadataBlock(_)
            | TagEnd::DefinitionList
            | TagEnd::DefinitionListTitle
            | TagEnd::DefinitionListDefinition
    )
}

fn push_block(stack: &mut [Frame], block: Block) {
    if let Some(Frame::Container { children, .. }) = stack.last_mut() {
        children.push(block);
    }
}

fn close(frame: Frame, stack: &mut [Frame]) {
    match frame {
        Frame::Leaf(b) => push_block(stack, b),
        Frame::Container {
            children,
            item: Some((range, task)),
            ..
        } => {
            if let Some(Frame::List { items }) = stack.last_mut() {
                items.push(ListItem {
                    range,
                    task,
                    children,
                });
            }
        }
        Frame::Container {
            children, quote, ..
        } => {
            if quote {
                push_block(stack, Block::Quote { children });
            }
        }
        Frame::List { items } => push_block(stack, Block::List { items }),
        Frame::Table { range, head, rows } => push_block(stack, Block::Table { range, head, rows }),
        Frame::Row { range, cells, head } => {
            if let Some(Frame::Table { head: h, rows, .. }) = stack.last_mut() {
                if head {
                    *h = cells;
                } else {
                    rows.push(Row { range, cells });
                }
            }
        }
        Frame::Cell => {}
    }
}
