//! `POST /v1/predict`: the model's score of (user, item) pairs.

use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::check_batch;
use crate::app_state::AppState;
use crate::error::ApiError;
use crate::extract::ApiJson;

/// `POST /v1/predict`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PredictBody {
    /// `[[user, item], ...]`.
    pub pairs: Vec<(String, String)>,
}

pub async fn predict(
    State(state): State<Arc<AppState>>,
    ApiJson(body): ApiJson<PredictBody>,
) -> Result<Json<Value>, ApiError> {
    check_batch(&state, body.pairs.len())?;
    Ok(Json(json!(state.serving.lists.predict(&body.pairs)?)))
}
