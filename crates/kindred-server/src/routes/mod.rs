//! The HTTP routes (one file per resource), grouped by the scope they need.

pub mod entities;
pub mod experiments;
pub mod feedback;
pub mod health;
pub mod models;
pub mod monitoring;
pub mod offpolicy;
pub mod popular;
pub mod predict;
pub mod recommend;
pub mod similar;

use std::sync::Arc;

use axum::http::StatusCode;
use axum::routing::{delete, get, post, put};
use axum::Router;

use crate::app_state::AppState;
use crate::auth::Scope;
use crate::error::ApiError;
use crate::extract::QueryParams;

/// Deepest page: `offset + n` may not exceed this many times `max_n`.
pub(crate) const MAX_DEPTH_FACTOR: usize = 10;

/// `n` and `offset` of a list within the configured limits.
pub(crate) fn page(state: &AppState, q: &mut QueryParams) -> Result<(usize, usize), ApiError> {
    let max_n = state.serving.config().max_n;
    let n = q.number("n", 10, 1, max_n)?;
    let offset = q.number("offset", 0, 0, max_n * MAX_DEPTH_FACTOR - n)?;
    Ok((n, offset))
}

/// Rejects batches larger than `max_batch`.
pub(crate) fn check_batch(state: &AppState, len: usize) -> Result<(), ApiError> {
    let max = state.serving.config().max_batch;
    if len > max {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "batch_too_large",
            format!("{len} records in one request; the limit is {max} (max_batch)"),
        ));
    }
    Ok(())
}

/// The routes of one scope, each returning a router without state.
pub(crate) fn routes(scope: Scope) -> Router<Arc<AppState>> {
    match scope {
        Scope::Read => Router::new()
            .route("/metrics", get(health::metrics))
            .route("/v1/users/{id}", get(entities::get_user))
            .route("/v1/items/{id}", get(entities::get_item))
            .route("/v1/recommend/{user}", get(recommend::get_recommend))
            .route("/v1/recommend", post(recommend::post_recommend))
            .route("/v1/similar-items/{item}", get(similar::similar_items))
            .route("/v1/similar-users/{user}", get(similar::similar_users))
            .route("/v1/popular", get(popular::popular))
            .route("/v1/trending", get(popular::trending))
            .route("/v1/latest", get(popular::latest))
            .route("/v1/predict", post(predict::predict))
            .route("/v1/models", get(models::list_models))
            .route("/v1/models/{version}", get(models::get_model))
            .route("/v1/monitoring", get(monitoring::get_monitoring))
            .route("/v1/alerts", get(monitoring::get_alerts))
            .route("/v1/experiments", get(experiments::list_experiments))
            .route("/v1/experiments/{name}", get(experiments::get_experiment))
            .route(
                "/v1/experiments/{name}/results",
                get(experiments::experiment_results_route),
            ),
        Scope::Write => Router::new()
            .route(
                "/v1/users/{id}",
                put(entities::put_user).delete(entities::delete_user),
            )
            .route("/v1/users", post(entities::post_users))
            .route(
                "/v1/items/{id}",
                put(entities::put_item).delete(entities::delete_item),
            )
            .route("/v1/items", post(entities::post_items))
            .route("/v1/feedback", post(feedback::post_feedback)),
        Scope::Admin => Router::new()
            .route("/v1/models", post(models::publish))
            .route("/v1/models/{version}", delete(models::delete_model))
            .route("/v1/models/{version}/activate", post(models::activate))
            .route("/v1/models/rollback", post(models::rollback))
            .route("/v1/monitoring/run", post(monitoring::run_now))
            .route("/v1/offpolicy", post(offpolicy::offpolicy))
            .route("/v1/models/{version}/canary", post(experiments::canary))
            .route("/v1/experiments", post(experiments::create_experiment))
            .route(
                "/v1/experiments/{name}/start",
                post(experiments::start_experiment),
            )
            .route(
                "/v1/experiments/{name}/stop",
                post(experiments::stop_experiment),
            ),
    }
}

/// Routes anyone may call.
pub(crate) fn open_routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/health/live", get(health::live))
        .route("/health/ready", get(health::ready))
        .route("/openapi.json", get(health::openapi))
}
