//! `GET /v1/similar-items/{item}` and `GET /v1/similar-users/{user}`.

use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use kindred_serving::lists::ScoredList;

use crate::app_state::AppState;
use crate::error::ApiError;
use crate::extract::{ApiPath, QueryParams};

pub async fn similar_items(
    State(state): State<Arc<AppState>>,
    ApiPath(item): ApiPath<String>,
    mut q: QueryParams,
) -> Result<Json<ScoredList<f32>>, ApiError> {
    kindred_store::check_id("item id", &item)?;
    let n = q.number("n", 10, 1, state.serving.config().max_n)?;
    q.finish()?;
    Ok(Json(state.serving.lists.similar_items(&item, n)?))
}

pub async fn similar_users(
    State(state): State<Arc<AppState>>,
    ApiPath(user): ApiPath<String>,
    mut q: QueryParams,
) -> Result<Json<ScoredList<f32>>, ApiError> {
    kindred_store::check_id("user id", &user)?;
    let n = q.number("n", 10, 1, state.serving.config().max_n)?;
    q.finish()?;
    Ok(Json(state.serving.lists.similar_users(&user, n)?))
}
