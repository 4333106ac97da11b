//! The model registry over HTTP ([`kindred_serving::Lifecycle`]): list versions, train and
//! publish one, activate any version, roll back, delete one. Activation swaps the new version in
//! before answering, so the next request is served by it; requests in flight finish on the
//! previous one. Deleting refuses the live version and versions a draft or running experiment
//! serves (409), since both are loaded and serving.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::app_state::AppState;
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath};

pub async fn list_models(State(state): State<Arc<AppState>>) -> Result<Json<Value>, ApiError> {
    let models = state.serving.store().list_models().await?;
    let snapshot = state.serving.snapshot();
    Ok(Json(json!({
        "serving": snapshot.version(),
        "training": state.serving.lifecycle.is_training(),
        "models": models,
    })))
}

pub async fn get_model(
    State(state): State<Arc<AppState>>,
    ApiPath(version): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    kindred_store::check_id("model version", &version)?;
    match state.serving.store().get_model(&version).await? {
        Some(record) => Ok(Json(json!(record))),
        None => Err(ApiError::not_found("model version", &version)),
    }
}

/// `POST /v1/models`: train a version on the store's current data.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublishBody {
    /// Model spec; the server's `training.model` when absent.
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub positive: Option<f32>,
    #[serde(default)]
    pub seed: Option<u64>,
    /// Retrain exactly as this registered version was trained (its model, threshold, seed and
    /// cleaning pipeline); excludes `model`, `positive` and `seed`.
    #[serde(default)]
    pub like: Option<String>,
    /// Make the version live once trained (default true).
    #[serde(default = "yes")]
    pub activate: bool,
    /// Wait for training to finish and answer with the version (default false: 202 at once).
    #[serde(default)]
    pub wait: bool,
}

fn yes() -> bool {
    true
}

pub async fn publish(
    State(state): State<Arc<AppState>>,
    ApiJson(body): ApiJson<PublishBody>,
) -> Result<impl IntoResponse, ApiError> {
    let lifecycle = &state.serving.lifecycle;
    let spec = match body.like {
        Some(version) => {
            if body.model.is_some() || body.positive.is_some() || body.seed.is_some() {
                return Err(ApiError::bad_request(
                    "invalid_input",
                    "`like` retrains a version exactly; leave out `model`, `positive` and `seed`",
                ));
            }
            lifecycle.spec_of(&version).await?
        }
        None => lifecycle.spec(body.model, body.positive, body.seed)?,
    };
    if body.wait {
        let record = lifecycle.train_now(&spec, body.activate).await?;
        return Ok((StatusCode::CREATED, Json(json!(record))));
    }
    lifecycle.train_in_background(spec.clone(), body.activate)?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "training": spec, "activate": body.activate })),
    ))
}

pub async fn activate(
    State(state): State<Arc<AppState>>,
    ApiPath(version): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!(
        state.serving.lifecycle.activate(&version).await?
    )))
}

pub async fn rollback(State(state): State<Arc<AppState>>) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!(state.serving.lifecycle.rollback().await?)))
}

/// `DELETE /v1/models/{version}`: 204 once the registry row and the artifact directory are gone
/// (the artifact is left in place, and logged, when its recorded path is not a model directory);
/// 404 for an unknown version; 409 `version_live` / `version_in_experiment`.
pub async fn delete_model(
    State(state): State<Arc<AppState>>,
    ApiPath(version): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    state.serving.lifecycle.delete_version(&version).await?;
    Ok(StatusCode::NO_CONTENT)
}
