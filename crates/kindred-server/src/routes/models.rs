//! The model registry over HTTP: list versions, train and publish one, activate any version,
//! roll back. Activation swaps the new version in before answering, so the next request is
//! served by it; requests in flight finish on the previous one.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath};
use crate::state::AppState;
use crate::training::TrainSpec;

pub async fn list_models(State(state): State<Arc<AppState>>) -> Result<Json<Value>, ApiError> {
    let models = state.store.list_models().await?;
    let snapshot = state.snapshot();
    Ok(Json(json!({
        "serving": snapshot.version(),
        "training": state.is_training(),
        "models": models,
    })))
}

pub async fn get_model(
    State(state): State<Arc<AppState>>,
    ApiPath(version): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    kindred_store::check_id("model version", &version)?;
    match state.store.get_model(&version).await? {
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
    let defaults = &state.config.training;
    let spec = TrainSpec {
        model: body.model.unwrap_or_else(|| defaults.model.clone()),
        positive: body.positive.or(defaults.positive),
        seed: body.seed.unwrap_or(defaults.seed),
    };
    // Reject a bad spec now rather than in a background job nobody watches.
    kindred_models::build_algorithm(&spec.model)?;
    if let Some(threshold) = spec.positive.filter(|p| !p.is_finite()) {
        return Err(ApiError::bad_request(
            "invalid_input",
            format!("`positive`: {threshold} is not a finite number"),
        ));
    }
    if state.is_training() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "training_in_progress",
            "a model is being trained; try again when it is done",
        ));
    }
    if body.wait {
        return match state.train(&spec, body.activate).await? {
            Some(record) => Ok((StatusCode::CREATED, Json(json!(record)))),
            None => Err(ApiError::new(
                StatusCode::CONFLICT,
                "training_in_progress",
                "a model is being trained; try again when it is done",
            )),
        };
    }
    let job_state = Arc::clone(&state);
    let job_spec = spec.clone();
    tokio::spawn(async move {
        match job_state.train(&job_spec, body.activate).await {
            Ok(Some(record)) => {
                tracing::info!(version = %record.model.version, "trained on request")
            }
            Ok(None) => tracing::info!("training request skipped: a run is in progress"),
            Err(e) => tracing::error!(error = %e, "training on request failed"),
        }
    });
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "training": spec, "activate": body.activate })),
    ))
}

pub async fn activate(
    State(state): State<Arc<AppState>>,
    ApiPath(version): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    kindred_store::check_id("model version", &version)?;
    if state.store.get_model(&version).await?.is_none() {
        return Err(ApiError::not_found("model version", &version));
    }
    let record = state.store.activate_model(&version).await?;
    state.rebuild().await?;
    Ok(Json(json!(record)))
}

pub async fn rollback(State(state): State<Arc<AppState>>) -> Result<Json<Value>, ApiError> {
    let record = state.store.rollback_model().await.map_err(|e| match e {
        kindred_core::Error::InvalidInput(m) => {
            ApiError::new(StatusCode::CONFLICT, "no_previous_version", m)
        }
        other => other.into(),
    })?;
    state.rebuild().await?;
    Ok(Json(json!(record)))
}
