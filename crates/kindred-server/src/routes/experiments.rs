//! Experiments over HTTP: create (as a draft), list, read, start, stop, results, and the canary
//! shortcut `POST /v1/models/{version}/canary`. Starting or stopping reloads the running set
//! and the snapshot (so the variants' model versions are loaded) before answering.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use kindred_store::{ExperimentRecord, ExperimentStatus};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::experiments::{experiment_results, ExperimentDefinition, VariantDefinition};
use crate::extract::{ApiJson, ApiPath};
use crate::state::AppState;
use crate::training::unix_now;

/// Checks that the variants' model versions are registered and their rank configs configured.
async fn check_references(
    state: &AppState,
    definition: &ExperimentDefinition,
) -> Result<(), ApiError> {
    let snapshot = state.snapshot();
    for (i, v) in definition.variants.iter().enumerate() {
        if let Some(version) = &v.model_version {
            if state.store.get_model(version).await?.is_none() {
                return Err(ApiError::bad_request(
                    "unknown_model_version",
                    format!(
                        "variants[{i}].model_version: no model version `{version}` is registered"
                    ),
                ));
            }
        }
        if let Some(rank) = &v.rank {
            if !snapshot.has_rank(rank) {
                return Err(ApiError::bad_request(
                    "unknown_rank_config",
                    format!(
                        "variants[{i}].rank: unknown rank config `{rank}`; configured: {}",
                        snapshot.rank_names().collect::<Vec<_>>().join(", ")
                    ),
                ));
            }
        }
    }
    Ok(())
}

async fn create(
    state: &AppState,
    definition: ExperimentDefinition,
) -> Result<ExperimentRecord, ApiError> {
    definition.validate()?;
    check_references(state, &definition).await?;
    if state
        .store
        .get_experiment(&definition.name)
        .await?
        .is_some()
    {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "experiment_exists",
            format!("experiment `{}` already exists", definition.name),
        ));
    }
    let value = serde_json::to_value(&definition).map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(state
        .store
        .create_experiment(&definition.name, &value, unix_now())
        .await?)
}

/// `POST /v1/experiments`: a new draft.
pub async fn create_experiment(
    State(state): State<Arc<AppState>>,
    ApiJson(definition): ApiJson<ExperimentDefinition>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let record = create(&state, definition).await?;
    Ok((StatusCode::CREATED, Json(json!(record))))
}

pub async fn list_experiments(State(state): State<Arc<AppState>>) -> Result<Json<Value>, ApiError> {
    let experiments = state.store.list_experiments().await?;
    Ok(Json(json!({ "experiments": experiments })))
}

async fn existing(state: &AppState, name: &str) -> Result<ExperimentRecord, ApiError> {
    kindred_store::check_id("experiment name", name)?;
    state
        .store
        .get_experiment(name)
        .await?
        .ok_or_else(|| ApiError::not_found("experiment", name))
}

pub async fn get_experiment(
    State(state): State<Arc<AppState>>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!(existing(&state, &name).await?)))
}

/// Starts or stops an experiment and reloads the running set (the dashboard's forms too).
pub(crate) async fn set_status(
    state: &AppState,
    name: &str,
    status: ExperimentStatus,
) -> Result<ExperimentRecord, ApiError> {
    let record = existing(state, name).await?;
    if status == ExperimentStatus::Running {
        // A version named at creation may have been deleted since, in principle.
        let definition = crate::experiments::registry::parse(&record)?;
        check_references(state, &definition).await?;
    }
    let record = state
        .store
        .set_experiment_status(name, status, unix_now())
        .await
        .map_err(|e| match e {
            kindred_core::Error::InvalidInput(m) => {
                ApiError::new(StatusCode::CONFLICT, "invalid_transition", m)
            }
            other => other.into(),
        })?;
    state.reload_experiments().await?;
    Ok(record)
}

pub async fn start_experiment(
    State(state): State<Arc<AppState>>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!(
        set_status(&state, &name, ExperimentStatus::Running).await?
    )))
}

pub async fn stop_experiment(
    State(state): State<Arc<AppState>>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!(
        set_status(&state, &name, ExperimentStatus::Stopped).await?
    )))
}

pub async fn experiment_results_route(
    State(state): State<Arc<AppState>>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    let record = existing(&state, &name).await?;
    // Exposures still in the writer's queue belong in the answer.
    state.flush_exposures().await;
    Ok(Json(
        experiment_results(&state.store, &record, unix_now()).await?,
    ))
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

/// Creates and starts `canary-<version>`: `percent` % of users get the new version and as many
/// (up to the rest) the live one as a control, so both arms are the same size; everyone else
/// keeps the default lists.
pub async fn canary(
    State(state): State<Arc<AppState>>,
    ApiPath(version): ApiPath<String>,
    ApiJson(body): ApiJson<CanaryBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    kindred_store::check_id("model version", &version)?;
    if state.store.get_model(&version).await?.is_none() {
        return Err(ApiError::not_found("model version", &version));
    }
    let percent = body.percent;
    // 100 % would leave no control group: activating the version is the way to do that.
    if !(percent > 0.0 && percent < 100.0) {
        return Err(ApiError::bad_request(
            "invalid_parameter",
            format!("`percent`: {percent} is outside (0, 100)"),
        ));
    }
    let Some(live) = state.store.live_model().await? else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "no_live_version",
            "a canary compares a version with the live one, and no version is live",
        ));
    };
    if live.model.version == version {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "already_live",
            format!("model version `{version}` is already live"),
        ));
    }
    let control = percent.min(100.0 - percent);
    let variants = vec![
        VariantDefinition {
            name: "control".into(),
            model_version: Some(live.model.version.clone()),
            rank: None,
            weight: control,
        },
        VariantDefinition {
            name: "canary".into(),
            model_version: Some(version.clone()),
            rank: None,
            weight: percent,
        },
    ];
    let definition = ExperimentDefinition {
        name: format!("canary-{version}"),
        variants,
        salt: None,
        traffic: ((control + percent) / 100.0).min(1.0),
        success_metric: body.success_metric.unwrap_or_else(|| "click_any".into()),
        guardrail_metrics: Vec::new(),
        attribution_window_seconds:
            crate::experiments::definition::DEFAULT_ATTRIBUTION_WINDOW_SECONDS,
        pre_period_seconds: None,
        planned_users_per_variant: None,
        alpha: 0.05,
    };
    let record = create(&state, definition).await?;
    let record = set_status(&state, &record.name, ExperimentStatus::Running).await?;
    Ok((StatusCode::CREATED, Json(json!(record))))
}
