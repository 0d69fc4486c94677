//! golive-engine: conditions, plans and the scheduler that runs checks.
//!
//! [`plan`] turns a runbook's `golive` annotations into [`Check`]s (a probe,
//! a compiled [`Condition`], fills, timeout, retries); [`run_plan`] runs them
//! on a bounded pool and returns a [`CheckResult`] each, keeping "could not
//! observe" ([`Outcome::Error`]) apart from "observed, and false"
//! ([`Outcome::Failed`]).

pub mod condition;
pub mod lint;
pub mod plan;
pub mod roster;
pub mod rules;
pub mod run;
pub mod suggest;
pub mod sustained;

pub use condition::{Condition, ConditionError};
pub use plan::{Check, Plan, Problem, plan, select};
pub use run::{Baselines, CheckResult, Outcome, RunOptions, fill_text, run_plan};
