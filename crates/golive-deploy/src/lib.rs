//! golive-deploy: the deployment lifecycle as a library.
//!
//! Everything a deployment goes through after its runbook is imported:
//! runs recorded in the store ([`record`]), sign-offs, the go/no-go
//! decision, the procedure and the Rollback Steps, the gates, the rollback
//! and the end ([`commands`]), a watch's evaluations ([`watch`]), and the
//! state they all decide from ([`Kept`], kept by every append).
//!
//! The CLI and the server drive the same functions: each takes what it
//! needs as values (the runbook as text with its path, the person acting,
//! the time where it matters), returns a typed outcome, or an [`Error`]:
//! a [`Refusal`] (a rule of the runbook says no; its kind, the words users
//! see, and the place in the document) kept apart from a failure (the
//! store, a file). Progress goes to a [`Listener`]. Nothing here prints,
//! exits, or reads the environment.
//!
//! ```no_run
//! # async fn f() -> golive_deploy::Result<()> {
//! use golive_deploy::{Deployment, Error, Quiet, RefusalKind, Sign, Source};
//! let store = golive_deploy::open_store("sqlite://.golive/golive.db").await?;
//! let row = golive_deploy::find(&store, None).await?; // the newest deployment
//! let text = std::fs::read_to_string(&row.runbook_path).map_err(|e| Error::Failed(e.to_string()))?;
//! let d = Deployment::new(store, row.clone(), &Source::new(row.runbook_path.clone(), text))?;
//! let sign = Sign {
//!     item: "1.1.1", name: "Dana Lead", role: "Release Manager",
//!     result: golive_deploy::lifecycle::SignResult::Done,
//!     comment: None, evidence: &[], roster: None, signer: None,
//! };
//! let said = match d.sign(&sign, &Quiet).await {
//!     Ok(s) => format!("{} signed", d.rb.items[s.item].address),
//!     // the kind to decide on, the words to show, the place in the document
//!     Err(Error::Refused(r)) if r.kind == RefusalKind::RoleNotHeld => {
//!         format!("{} (at {:?})", r.message, r.at)
//!     }
//!     Err(e) => return Err(e),
//! };
//! let status = d.status(&Quiet).await?; // from the kept state: no replay
//! let summary = format!("{said}; {}: {} open items", status.state, status.pending.len());
//! # drop(summary);
//! # Ok(()) }
//! ```

pub mod agents;
pub mod alert;
pub mod approval;
pub mod channel;
pub mod commands;
pub mod counts;
mod kept;
pub mod lifecycle;
pub mod notify;
pub mod procedure;
pub mod record;
pub mod sshsig;
pub mod store;
pub mod time;
pub mod vars;
pub mod watch;

pub use commands::*;
pub use kept::{Checked, DeliveryRecord, Fold, Kept, NoticeRecord, StepProgress};
pub use store::{create_store, find, open_store, open_stored, start_stored};

use golive_runbook::Runbook;
use sha2::{Digest, Sha256};
use std::fmt;

/// A place in the runbook: the item or rule a refusal is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct At {
    pub path: String,
    pub line: u32,
    pub col: u32,
    /// The item's address (`1.2.3`) or the stage's, when there is one.
    pub address: Option<String>,
}

impl At {
    /// Where item `i` of `rb` starts.
    pub fn item(rb: &Runbook, i: usize) -> At {
        let it = &rb.items[i];
        At {
            path: rb.path.clone(),
            line: it.loc.line,
            col: it.loc.col,
            address: Some(it.address.clone()),
        }
    }

    /// Where group `g` of stage `s` of `rb` starts.
    pub fn group(rb: &Runbook, s: usize, g: usize) -> At {
        let grp = &rb.stages[s].groups[g];
        At {
            path: rb.path.clone(),
            line: grp.heading.loc.line,
            col: grp.heading.loc.col,
            address: Some(grp.address.clone()),
        }
    }

    /// Where stage `s` of `rb` starts.
    pub fn stage(rb: &Runbook, s: usize) -> At {
        let st = &rb.stages[s];
        At {
            path: rb.path.clone(),
            line: st.heading.loc.line,
            col: st.heading.loc.col,
            address: Some(st.address.clone()),
        }
    }
}

impl fmt::Display for At {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.path, self.line, self.col)
    }
}

/// Which rule said no.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalKind {
    /// The item, step or deployment named is not there.
    Unknown,
    /// A sub-check was named where its item is meant.
    SubCheck,
    /// The item is not signed this way (a step, a decision item).
    NotSignable,
    /// The item is not a procedure step.
    NotAStep,
    /// The person is not on the deployment's roster.
    NotOnRoster,
    /// The person does not hold the role named.
    RoleNotHeld,
    /// The item, decision or rollback is for another role.
    WrongRole,
    /// Signed already, by this person or in this role.
    SignedAlready,
    /// The signers of a decision disagree.
    SignersDisagree,
    /// Something a command needs is missing (a NO-GO's reason).
    Incomplete,
    /// The go/no-go decision, or the option of a "choose one" group, was
    /// taken already.
    Decided,
    /// GO needs every pre-deployment item complete.
    PreDeploymentOpen,
    /// Not before the GO decision (the procedure, a gate, the end).
    BeforeGo,
    /// The decision was NO-GO.
    NoGo,
    /// The step is done already.
    Done,
    /// Steps run in document order.
    OutOfOrder,
    /// The step is not optional, so it cannot be skipped.
    NotOptional,
    /// A rollback step before a rollback started, or a procedure step during one.
    WrongSequence,
    /// Another process is running the step now.
    Running,
    /// The step's commands were not run (not allowed, none, a rerun not
    /// confirmed) or failed.
    Commands,
    /// A gate with nothing to count.
    NothingToCount,
    /// A gate whose items do not all have a result yet.
    NotTried,
    /// A rollback decision is raised and not resolved: roll back, or
    /// decide to continue.
    RollbackOpen,
    /// No rollback decision is raised.
    NothingRaised,
    /// The rollback has started already.
    RollingBack,
    /// The deployment has ended.
    Ended,
    /// A procedure step is still open.
    StepsOpen,
    /// A gate the end needs failed or was not evaluated.
    GateNotPassed,
    /// The runbook changed since the deployment started.
    RunbookChanged,
    /// A name that is none of the choices (a gate other than smoke or
    /// verification).
    NoSuchChoice,
    /// The deployment moved on since the state version the write was
    /// asked at (another person acted first).
    MovedOn,
    /// A signed sign-off whose signature does not verify with a key of the
    /// person on the roster (or who has none there).
    BadSignature,
    /// The person who started the deployment signs its GO, and the
    /// document says they may not ([`approval`]).
    SelfApproval,
}

/// A rule of the runbook says no; nothing was recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    pub kind: RefusalKind,
    /// What the user is told.
    pub message: String,
    /// The item or rule of the document involved, when there is one.
    pub at: Option<At>,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// Why a command did not do what it was asked.
#[derive(Debug, Clone, PartialEq)]
pub enum Error {
    /// A rule said no; nothing was recorded.
    Refused(Refusal),
    /// The request cannot be carried out as given (a runbook changed since
    /// the deployment started, a gate that is not one); nothing was recorded.
    Invalid(Refusal),
    /// The store, a file or a process failed.
    Failed(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Refused(r) | Error::Invalid(r) => r.fmt(f),
            Error::Failed(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for Error {}

impl From<golive_store::StoreError> for Error {
    fn from(e: golive_store::StoreError) -> Self {
        Error::Failed(e.to_string())
    }
}

impl Error {
    /// A refusal of `kind`, about nothing in particular of the document.
    pub fn refused(kind: RefusalKind, message: impl Into<String>) -> Error {
        Error::Refused(Refusal {
            kind,
            message: message.into(),
            at: None,
        })
    }

    /// A refusal of `kind` about the place `at`.
    pub fn refused_at(kind: RefusalKind, message: impl Into<String>, at: At) -> Error {
        Error::Refused(Refusal {
            kind,
            message: message.into(),
            at: Some(at),
        })
    }

    /// The refusal, when it is one.
    pub fn refusal(&self) -> Option<&Refusal> {
        match self {
            Error::Refused(r) | Error::Invalid(r) => Some(r),
            Error::Failed(_) => None,
        }
    }
}

/// The result of a lifecycle command.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What a command reports as it goes, besides its outcome: the CLI prints
/// it, a server streams it. Every method has a default that ignores it.
pub trait Listener: Send + Sync {
    /// A check's result, as soon as it is known.
    fn check(&self, _rb: &Runbook, _result: &golive_engine::CheckResult) {}
    /// A check not run, and why (a side-effecting check an interrupted run
    /// started, held until a rerun is confirmed).
    fn held(&self, _rb: &Runbook, _result: &golive_engine::CheckResult) {}
    /// A line of progress (a step done, where the procedure stopped).
    fn line(&self, _text: &str) {}
    /// Something the user should know that is not the outcome: a warning,
    /// a state read from the chain because the kept one was not current.
    fn note(&self, _text: &str) {}
}

/// A listener that ignores everything.
pub struct Quiet;

impl Listener for Quiet {}

/// A runbook as the lifecycle receives it: its text, the path it was read
/// from, and the SHA-256 of the text (what a deployment records).
#[derive(Debug, Clone)]
pub struct Source {
    pub path: String,
    pub text: String,
    pub sha256: String,
}

impl Source {
    pub fn new(path: impl Into<String>, text: impl Into<String>) -> Source {
        let text = text.into();
        Source {
            path: path.into(),
            sha256: hex::encode(Sha256::digest(text.as_bytes())),
            text,
        }
    }

    /// The runbook imported from it.
    pub fn runbook(&self) -> Runbook {
        golive_runbook::parse_runbook(&self.path, &self.text)
    }
}

/// The SHA-256 of a runbook's text, as deployments record it.
pub fn runbook_sha256(rb: &Runbook) -> String {
    hex::encode(Sha256::digest(rb.source.as_bytes()))
}
