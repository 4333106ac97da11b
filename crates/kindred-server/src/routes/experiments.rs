//! Experiments over HTTP ([`kindred_serving::experiments::ExperimentService`]): create (as a
//! draft), list, read, start, stop, results, and the canary shortcut
//! `POST /v1/models/{version}/canary`. Starting or stopping reloads the running set and the
//! snapshot (so the variants' model versions are loaded) before answering.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use kindred_serving::experiments::ExperimentDefinition;
use kindred_store::ExperimentStatus;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::app_state::AppState;
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath};

/// `POST /v1/experiments`: a new draft.
pub async fn create_experiment(
    State(state): State<Arc<AppState>>,
    ApiJson(definition): ApiJson<ExperimentDefinition>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let record = state.serving.experiments.create(definition).await?;
    Ok((StatusCode::CREATED, Json(json!(record))))
}

pub async fn list_experiments(State(state): State<Arc<AppState>>) -> Result<Json<Value>, ApiError> {
    let experiments = state.serving.experiments.list().await?;
    Ok(Json(json!({ "experiments": experiments })))
}

pub async fn get_experiment(
    State(state): State<Arc<AppState>>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!(state.serving.experiments.get(&name).await?)))
}

pub async fn start_experiment(
    State(state): State<Arc<AppState>>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    let experiments = &state.serving.experiments;
    Ok(Json(json!(
        experiments
            .set_status(&name, ExperimentStatus::Running)
            .await?
    )))
}

pub async fn stop_experiment(
    State(state): State<Arc<AppState>>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    let experiments = &state.serving.experiments;
    Ok(Json(json!(
        experiments
            .set_status(&name, ExperimentStatus::Stopped)
            .await?
    )))
}

pub async fn experiment_results_route(
    State(state): State<Arc<AppState>>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(state.serving.experiments.results(&name).await?))
}

/// `POST /v1/models/{version}/canary`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CanaryBody {
    /// Share of users (0-100, exclusive) served by the new version.
    pub percent: f64,
    /// Success metric (default `click_any`).
    #[serde(default)]
    pub success_metric: Option<String>,
}

/// Creates and starts `canary-<version>` (see
/// [`kindred_serving::experiments::ExperimentService::canary`]).
pub async fn canary(
    State(state): State<Arc<AppState>>,
    ApiPath(version): ApiPath<String>,
    ApiJson(body): ApiJson<CanaryBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let record = state
        .serving
        .experiments
        .canary(&version, body.percent, body.success_metric)
        .await?;
    Ok((StatusCode::CREATED, Json(json!(record))))
}
