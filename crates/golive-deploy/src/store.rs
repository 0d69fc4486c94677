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
