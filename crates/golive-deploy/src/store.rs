//! Opening a store and a deployment of it, for the lifecycle: with the
//! projection that keeps each deployment's state.

use crate::{Error, Result};
use golive_store::{Binding, Deployment, Store};
use std::sync::Arc;

/// Open the store at `location`, which must hold golive's record already,
/// keeping each deployment's state as events are appended.
pub async fn open_store(location: &str) -> Result<Store> {
    Ok(Store::open_existing(location)
        .await?
        .with_projection(Arc::new(crate::Fold)))
}

/// Open (or create) the store at `location`, keeping each deployment's state.
pub async fn create_store(location: &str) -> Result<Store> {
    Ok(Store::open(location)
        .await?
        .with_projection(Arc::new(crate::Fold)))
}

/// The deployment `id` of `store` (the newest when None), whose runbook the
/// caller then reads from its `runbook_path`.
pub async fn find(store: &Store, id: Option<&str>) -> Result<golive_store::Deployment> {
    let d = store
        .deployment(id)
        .await
        .map_err(|e| Error::Failed(format!("{e} ({})", store.location)))?;
    intact(&d).map_err(Error::Failed)?;
    Ok(d)
}

/// A deployment whose own row no longer matches its record (edited after it
/// was recorded) is used by no command: its variables and runbook hash are
/// not what was recorded.
pub fn intact(d: &Deployment) -> Result<(), String> {
    if d.binding == Binding::Broken {
        return Err(format!(
            "deployment {}'s row no longer matches its record: its runbook path or hash, variables, starter or start time were edited after it was recorded (golive audit verify {} says so); it is not used",
            d.id, d.id
        ));
    }
    Ok(())
}

/// The deployment `id` of `store` (the newest when None) with the runbook
/// text the store holds for it (registered by the run that created it, or
/// with `golive runbooks add`): how a server opens a deployment, whatever
/// machine started it.
pub async fn open_stored(store: &Store, id: Option<&str>) -> Result<crate::Deployment> {
    let row = find(store, id).await?;
    let rb = store.runbook(&row.runbook_sha256).await?.ok_or_else(|| {
        Error::Failed(format!(
            "the store holds no text for deployment {}'s runbook {} (sha256 {}): register it with `golive runbooks add {}`",
            row.id,
            row.runbook_path,
            &row.runbook_sha256[..12.min(row.runbook_sha256.len())],
            row.runbook_path
        ))
    })?;
    crate::Deployment::new(
        store.clone(),
        row,
        &crate::Source::new(rb.path.clone(), rb.text),
    )
}

/// Start a deployment of the runbook registered under `sha256`, by `by`,
/// with `vars` bound: its id. Refused, recording nothing, when no runbook
/// is registered under that hash.
pub async fn start_stored(
    store: &Store,
    sha256: &str,
    vars: serde_json::Value,
    by: &str,
) -> Result<String> {
    let rb = store.runbook(sha256).await?.ok_or_else(|| {
        Error::refused(
            crate::RefusalKind::Unknown,
            format!(
                "no runbook registered under sha256 {sha256}: register it first (`golive runbooks add FILE` or POST /api/v1/runbooks)"
            ),
        )
    })?;
    let id = store
        .create_deployment(&golive_store::NewDeployment {
            runbook_path: rb.path.clone(),
            runbook_sha256: rb.sha256.clone(),
            started_by: by.to_string(),
            vars,
        })
        .await?;
    store
        .append(
            &id,
            &[golive_store::NewEvent::new(
                "deployment.created",
                serde_json::json!({ "runbook": rb.path, "sha256": rb.sha256 }),
            )
            .actor(by)],
        )
        .await?;
    Ok(id)
}
