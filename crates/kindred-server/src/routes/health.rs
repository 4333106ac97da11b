//! `/health/live` (the process answers), `/health/ready` (the store answers and a model version
//! is live, unless `ready_without_model` is set), `/metrics` (Prometheus) and `/openapi.json`.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use kindred_serving::write_limits::FeatureOwner;
use serde_json::{json, Value};

use crate::app_state::AppState;
use crate::auth::Scope;

pub async fn live() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

pub async fn ready(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let (status, body) = readiness(&state).await;
    // Without a key that may read, only whether it is ready: the details (version, catalog
    // size, store backend) are for operators.
    if state.keys.check(&headers, Scope::Read).is_err() {
        return (status, Json(json!({ "status": body["status"] }))).into_response();
    }
    (status, Json(body)).into_response()
}

/// The readiness answer with every detail.
async fn readiness(state: &AppState) -> (StatusCode, Value) {
    let snapshot = state.serving.snapshot();
    let store = state.serving.store();
    match store.live_model().await {
        Ok(None) if !state.serving.config().ready_without_model => (
            StatusCode::SERVICE_UNAVAILABLE,
            json!({
                "status": "no_model",
                "store": store.backend(),
                "error": "no model version is live: lists would come from fallbacks only; \
                          publish one (`kindred train --store STORE --model auto --publish` or \
                          POST /v1/models), or set ready_without_model",
            }),
        ),
        Ok(_) => (
            StatusCode::OK,
            json!({
                "status": "ready",
                "store": store.backend(),
                "model_version": snapshot.version(),
                "items": snapshot.items.len(),
                "users": snapshot.users.len(),
                "mode": if snapshot.is_batch() { "batch" } else { "realtime" },
            }),
        ),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            json!({ "status": "unavailable", "error": e.to_string() }),
        ),
    }
}

pub async fn metrics(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    let serving = &state.serving;
    let snapshot = serving.snapshot();
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
            serving.state.cache.len() as f64,
        ),
        (
            "kindred_cache_bytes",
            "Bytes the cached lists hold (bounded by cache.max_bytes).",
            String::new(),
            serving.state.cache.bytes() as f64,
        ),
        (
            "kindred_cache_evictions",
            "Cached lists dropped to stay within the cache's bounds (since start).",
            String::new(),
            serving.state.cache.evictions.load(Ordering::Relaxed) as f64,
        ),
        (
            "kindred_cache_oversized",
            "Lists not cached because one alone exceeds a shard's share of cache.max_bytes.",
            String::new(),
            serving.state.cache.oversized.load(Ordering::Relaxed) as f64,
        ),
        (
            "kindred_overlay_users",
            "Users with real-time feedback held (bounded by limits.overlay_users).",
            String::new(),
            serving.state.overlay.users() as f64,
        ),
        (
            "kindred_overlay_evictions",
            "Users dropped from the real-time overlay to stay within its bound (since start).",
            String::new(),
            serving.state.overlay.evictions.load(Ordering::Relaxed) as f64,
        ),
        (
            "kindred_feature_names",
            "Distinct feature names known (bounded by limits.max_feature_names each).",
            "{owner=\"user\"}".to_owned(),
            serving.state.write_limits.feature_names(FeatureOwner::User) as f64,
        ),
        (
            "kindred_feature_names",
            "Distinct feature names known (bounded by limits.max_feature_names each).",
            "{owner=\"item\"}".to_owned(),
            serving.state.write_limits.feature_names(FeatureOwner::Item) as f64,
        ),
        (
            "kindred_writes_refused_by_limits",
            "Writes refused by a [limits] value (since start).",
            String::new(),
            serving.state.write_limits.refused.load(Ordering::Relaxed) as f64,
        ),
        (
            "kindred_http_requests_in_flight",
            "Requests being handled now (bounded by limits.max_in_flight).",
            String::new(),
            state.in_flight.now() as f64,
        ),
        (
            "kindred_http_requests_shed",
            "Requests answered 503 overloaded because max_in_flight were handled (since start).",
            String::new(),
            state.in_flight.shed.load(Ordering::Relaxed) as f64,
        ),
        (
            "kindred_http_connections_open",
            "Connections open now.",
            String::new(),
            state.connections.open.load(Ordering::Relaxed) as f64,
        ),
        (
            "kindred_http_connections_refused",
            "Connections answered 503 because max_connections were open (since start).",
            String::new(),
            state.connections.refused.load(Ordering::Relaxed) as f64,
        ),
        (
            "kindred_training_in_progress",
            "1 while a model trains.",
            String::new(),
            f64::from(u8::from(serving.lifecycle.is_training())),
        ),
    ];
    let mut text = state.metrics.render(
        &gauges,
        &serving.state.counters,
        serving.state.cache.hits.load(Ordering::Relaxed),
        serving.state.cache.misses.load(Ordering::Relaxed),
    );
    text.push_str(&kindred_serving::monitor::prometheus::render(
        &serving.monitor,
        snapshot.items.len(),
    ));
    text.push_str(
        &serving
            .state
            .exposure_log
            .counters
            .prometheus(serving.state.experiments.running().len()),
    );
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text)
}

pub async fn openapi() -> Json<Value> {
    Json(crate::openapi::document())
}
