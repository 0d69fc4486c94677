//! golive-runbook: a Markdown deployment checklist as a model.
//!
//! [`parse_runbook`] reads any checklist into a [`Runbook`]: stages (`##`),
//! groups (`###`), items (task items, procedure steps, checkbox table rows)
//! with their sub-checks, fields, blanks, command blocks and `golive`
//! annotations, each with its byte span and line/column. [`lint()`] finds what
//! is wrong with a document; [`export()`] writes outcomes back by patching the
//! original text, so an unfilled export is the input byte for byte.
//!
//! ```
//! let rb = golive_runbook::parse_runbook("x.md", "## Go\n\n- [ ] **Ship it**\n");
//! assert_eq!(rb.items[0].id, "go/ship-it");
//! assert_eq!(golive_runbook::export(&rb, &Default::default()).unwrap(), rb.source);
//! ```
//!
//! No I/O and no async here: callers read files and print.

mod blocks;
pub mod comms;
pub mod diagnostic;
pub mod export;
mod import;
pub mod lint;
pub mod loc;
pub mod model;
pub mod resolve;
pub mod text;
pub mod url;

pub use blocks::MAX_NESTING;
pub use diagnostic::{Diagnostic, Severity, render_text};
pub use export::{ExportError, Outcomes, export};
pub use import::parse_runbook;
pub use lint::{LintOptions, lint};
pub use loc::{LineIndex, Loc};
pub use model::*;
pub use resolve::{LookupError, Target};
