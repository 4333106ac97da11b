//! `POST /v1/offpolicy` (admin): the click rate a configured rank config would have had on the
//! lists this server's exploring policies logged, as `kindred offpolicy` estimates it
//! ([`kindred_serving::exploration::replay`]). A replay reads the store's whole data, so one
//! runs at a time (409 while another runs), and it stops when the client goes away.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use kindred_serving::exploration::replay::{replay, try_begin, CancelOnDrop, ReplayOptions};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::app_state::AppState;
use crate::error::ApiError;
use crate::extract::ApiJson;

/// The body of `POST /v1/offpolicy`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OffPolicyBody {
    /// Window of logged lists, Unix seconds: `since <= timestamp < until` (default until: now).
    pub since: i64,
    #[serde(default)]
    pub until: Option<i64>,
    /// A configured rank config (`rank` or `rank_named`; default: `default`).
    #[serde(default)]
    pub rank: Option<String>,
    /// The model version the candidate ranks with (default: the live version).
    #[serde(default)]
    pub model: Option<String>,
    /// Event types that count as a click (default `["click"]`).
    #[serde(default)]
    pub reward_events: Option<Vec<String>>,
    #[serde(default)]
    pub attribution_window_seconds: Option<i64>,
    #[serde(default)]
    pub level: Option<f64>,
}

pub async fn offpolicy(
    State(state): State<Arc<AppState>>,
    ApiJson(body): ApiJson<OffPolicyBody>,
) -> Result<Json<Value>, ApiError> {
    let Some(_permit) = try_begin() else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "replay_running",
            "another off-policy replay is running; try again when it has finished",
        ));
    };
    let serving = &state.serving;
    let snapshot = serving.snapshot();
    let name = body.rank.as_deref().unwrap_or("default");
    let Some(pipeline) = snapshot.pipeline(Some(name)) else {
        return Err(ApiError::bad_request(
            "unknown_rank_config",
            format!(
                "unknown rank config `{name}`; configured: {}",
                snapshot.rank_names().collect::<Vec<_>>().join(", ")
            ),
        ));
    };
    let until = body
        .until
        .unwrap_or_else(|| kindred_serving::clock::unix_now().saturating_add(1));
    let mut options = ReplayOptions::new(body.since, until, pipeline.config().clone(), name);
    options.model = body.model;
    if let Some(events) = body.reward_events {
        options.reward_events = events;
    }
    if let Some(window) = body.attribution_window_seconds {
        options.attribution_window_seconds = window;
    }
    if let Some(level) = body.level {
        options.level = level;
    }
    drop(snapshot);
    let cancel = Arc::new(AtomicBool::new(false));
    let _guard = CancelOnDrop(Arc::clone(&cancel));
    let report = replay(serving.store(), &options, Arc::new(|_, _| {}), cancel).await?;
    Ok(Json(json!(report)))
}
