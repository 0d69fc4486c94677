//! golive-report: what golive shows of runs and deployments, as pure
//! functions. Each takes the runbook, the deployment's state or events and,
//! where time shows, a `now` passed in, and returns text or JSON; nothing
//! here reads a store, a clock or a file, or prints.
//!
//! - [`run`]: `golive plan`, `golive run` and `golive probe` output;
//! - [`deployment`]: `golive report` (the document filled in, HTML, JUnit,
//!   JSON) and the status-update message;
//! - [`status`]: `golive status`, as text and JSON;
//! - [`hypercare`]: a watch's daily health-check report;
//! - [`show`]: `golive show`, the runbook as golive reads it;
//! - [`loadview`]: a load probe's summary;
//! - [`said`]: what the lifecycle's commands print when they succeed.

pub mod deployment;
pub mod hypercare;
pub mod loadview;
pub mod run;
pub mod said;
pub mod show;
pub mod status;

pub use deployment::{
    head, kept_head, render_html, render_junit, render_markdown, render_message, report_json,
};
