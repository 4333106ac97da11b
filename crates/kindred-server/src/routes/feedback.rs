//! `POST /v1/feedback`: a batch of events, stored durably in one transaction before the answer
//! (a 200 means every event survives a crash), idempotent by `event_id`, then applied to the
//! users' real-time state ([`kindred_serving::feedback::FeedbackService`]).

use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use kindred_serving::unix_now;
use kindred_store::Feedback;
use serde::Deserialize;
use serde_json::{json, Value};

use super::check_batch;
use crate::app_state::AppState;
use crate::error::ApiError;
use crate::extract::ApiJson;

/// One event as the API takes it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedbackBody {
    pub user: String,
    pub item: String,
    /// `rating`, `view`, `click`, `purchase`, ... or a custom name.
    #[serde(rename = "type")]
    pub event_type: String,
    #[serde(default)]
    pub value: Option<f32>,
    /// Unix seconds; the server's clock when absent.
    #[serde(default)]
    pub timestamp: Option<i64>,
    #[serde(default)]
    pub event_id: Option<String>,
}

pub async fn post_feedback(
    State(state): State<Arc<AppState>>,
    ApiJson(body): ApiJson<Vec<FeedbackBody>>,
) -> Result<Json<Value>, ApiError> {
    check_batch(&state, body.len())?;
    let now = unix_now();
    let events: Vec<Feedback> = body
        .into_iter()
        .map(|b| Feedback {
            user: b.user,
            item: b.item,
            event_type: b.event_type,
            value: b.value,
            timestamp: b.timestamp.unwrap_or(now),
            event_id: b.event_id,
        })
        .collect();
    let report = state.serving.feedback.ingest(&events).await?;
    Ok(Json(json!({
        "inserted": report.inserted,
        "duplicates": report.duplicates,
    })))
}
