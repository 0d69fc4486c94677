//! golive-store: deployments and their tamper-evident event log.
//!
//! One [`Store`] over SQLite (a file, WAL, no server) or PostgreSQL (for a
//! team). Every change to a deployment is an [`Event`] appended with the
//! SHA-256 of its predecessor, the first one with the hash of the deployment's
//! own row; [`Store::verify`] walks the chain and names the first row that was
//! edited, deleted, inserted or moved, and [`Store::verify_to`] proves that it
//! still reaches a [`Head`] kept elsewhere.
//!
//! ```no_run
//! # async fn f() -> Result<(), golive_store::StoreError> {
//! let store = golive_store::Store::open("sqlite://.golive/golive.db").await?;
//! let id = store.create_deployment(&golive_store::NewDeployment {
//!     runbook_path: "runbook.md".into(), runbook_sha256: "…".into(),
//!     started_by: "ci".into(), vars: serde_json::json!({}),
//! }).await?;
//! store.append(&id, &[golive_store::NewEvent::new("check", serde_json::json!({"passed": true}))]).await?;
//! assert!(store.verify(&id).await?.is_ok());
//! # Ok(()) }
//! ```

mod chain;
mod store;

pub use chain::{Head, Violation, ViolationKind, event_hash, legacy_genesis, row_genesis};
pub use store::{
    AgentRow, Binding, Deployment, Event, JobRow, KeptRow, NewDeployment, NewEvent, PersonRow,
    Projection, RunbookRow, Store, StoreError, TokenRow, WriteLock,
};
