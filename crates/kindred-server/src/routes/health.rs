//! `/health/live` (the process answers), `/health/ready` (the store answers and a snapshot is
//! loaded), `/metrics` (Prometheus) and `/openapi.json`.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde_json::{json, Value};

use crate::state::AppState;

pub async fn live() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

pub async fn ready(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    let snapshot = state.snapshot();
    match state.store.live_model().await {
        Ok(_) => (
            StatusCode::OK,
            Json(json!({
                "status": "ready",
                "store": state.store.backend(),
                "model_version": snapshot.version(),
                "items": snapshot.items.len(),
                "users": snapshot.users.len(),
                "mode": if snapshot.is_batch() { "batch" } else { "realtime" },
            })),
        ),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "unavailable", "error": e.to_string() })),
        ),
    }
}

pub async fn metrics(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    let snapshot = state.snapshot();
    let version = snapshot.version().unwrap_or("none");
    let gauges = [
        (
            "kindred_model_info",
            "The version being served (value 1).",
            format!("{{version=\"{}\"}}", version.replace('"', "")),
            1.0,
        ),
        (
            "kindred_catalog_items",
            "Items in the catalog.",
            String::new(),
            snapshot.items.len() as f64,
        ),
        (
            "kindred_catalog_users",
            "Users in the catalog.",
            String::new(),
            snapshot.users.len() as f64,
        ),
        (
            "kindred_cache_entries",
            "Lists held in the cache.",
            String::new(),
            state.cache.len() as f64,
        ),
        (
            "kindred_training_in_progress",
            "1 while a model trains.",
            String::new(),
            f64::from(u8::from(state.is_training())),
        ),
    ];
    let mut text = state.metrics.render(
        &gauges,
        state.cache.hits.load(Ordering::Relaxed),
        state.cache.misses.load(Ordering::Relaxed),
    );
    text.push_str(&crate::monitor::prometheus::render(
        &state.monitor,
        snapshot.items.len(),
    ));
    text.push_str(
        &state
            .exposure_log
            .counters
            .prometheus(state.experiments.running().len()),
    );
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text)
}

pub async fn openapi() -> Json<Value> {
    Json(crate::openapi::document())
}
