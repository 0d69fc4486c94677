//! golive's own service contract, the one the reference asks of the
//! services it deploys: `/health`, `/ready` (the store answers), `/live`,
//! `/version` and `/metrics`.

use crate::App;
use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use serde_json::json;
use std::sync::Arc;

pub fn routes() -> axum::Router<Arc<App>> {
    axum::Router::new()
        .route("/live", get(live))
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/version", get(version))
        .route("/metrics", get(metrics))
}

/// The process answers.
async fn live() -> impl IntoResponse {
    ([(header::CACHE_CONTROL, "no-store")], "ok\n")
}

async fn store_answers(app: &App) -> Result<(), String> {
    app.store.ping().await.map_err(|e| e.to_string())
}

/// The process and what it needs: the store.
async fn health(State(app): State<Arc<App>>) -> impl IntoResponse {
    let store = store_answers(&app).await;
    let ok = store.is_ok();
    (
        if ok {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        },
        Json(json!({
            "status": if ok { "ok" } else { "failing" },
            "checks": { "store": if ok { "ok" } else { "unreachable" } },
            "version": env!("CARGO_PKG_VERSION"),
        })),
    )
}

/// Ready to serve: the store is reachable.
async fn ready(State(app): State<Arc<App>>) -> impl IntoResponse {
    match store_answers(&app).await {
        Ok(()) => (StatusCode::OK, "ready\n"),
        Err(e) => {
            tracing::warn!(error = %e, "not ready: the store does not answer");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "not ready: the store does not answer\n",
            )
        }
    }
}

async fn version() -> impl IntoResponse {
    Json(json!({ "name": "golive", "version": env!("CARGO_PKG_VERSION") }))
}

async fn metrics(State(app): State<Arc<App>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        app.metrics.render(),
    )
}
