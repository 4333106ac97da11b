//! `GET /v1/monitoring` (the latest drift/quality pass, online metrics per model version and
//! variant, the monitoring config), `GET /v1/alerts` (recent alerts, newest first) and
//! `POST /v1/monitoring/run` (admin: run a pass now and answer its report).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

use crate::app_state::AppState;
use crate::error::ApiError;
use crate::extract::QueryParams;

/// The config as shown: webhook URLs may carry tokens, so only their number is.
fn config_view(state: &AppState) -> Value {
    let monitoring = &state.serving.config().monitoring;
    let mut config = json!(monitoring);
    config["webhooks"] = json!(monitoring.webhooks.len());
    config
}

pub async fn get_monitoring(
    State(state): State<Arc<AppState>>,
    q: QueryParams,
) -> Result<Json<Value>, ApiError> {
    q.finish()?;
    let snapshot = state.serving.snapshot();
    let m = &state.serving.monitor;
    Ok(Json(json!({
        "enabled": state.serving.config().monitoring.enabled,
        "latest": m.latest().as_deref(),
        "passes": m.passes.load(Ordering::Relaxed),
        "pass_failures": m.pass_failures.load(Ordering::Relaxed),
        "catalog_items": snapshot.items.len(),
        "online": m.online.report(snapshot.items.len()),
        "config": config_view(&state),
    })))
}

pub async fn get_alerts(
    State(state): State<Arc<AppState>>,
    mut q: QueryParams,
) -> Result<Json<Value>, ApiError> {
    let capacity = state.serving.config().monitoring.alert_history.max(1);
    let limit = q.number("limit", 100.min(capacity), 1, capacity)?;
    q.finish()?;
    let sink = &state.serving.monitor.alerts;
    let counters = &sink.webhook_counters;
    Ok(Json(json!({
        "alerts": sink.recent(limit),
        "totals": sink.totals(),
        "webhooks_sent": counters.sent.load(Ordering::Relaxed),
        "webhook_failures": counters.failures.load(Ordering::Relaxed),
    })))
}

pub async fn run_now(
    State(state): State<Arc<AppState>>,
    q: QueryParams,
) -> Result<Json<Value>, ApiError> {
    q.finish()?;
    let report = state.serving.run_monitoring_pass().await?;
    Ok(Json(json!(report.as_ref())))
}
