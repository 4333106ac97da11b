//! Non-personal lists: `GET /v1/popular`, `GET /v1/trending` and `GET /v1/latest`.

use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use kindred_serving::lists::ScoredList;
use kindred_serving::snapshot::FallbackList;
use kindred_serving::RequestFilters;

use super::page;
use crate::app_state::AppState;
use crate::error::ApiError;
use crate::extract::QueryParams;

async fn non_personal(
    state: Arc<AppState>,
    mut q: QueryParams,
    which: FallbackList,
) -> Result<Json<ScoredList<u32>>, ApiError> {
    let (n, offset) = page(&state, &mut q)?;
    let filters = RequestFilters {
        categories: q.list("category"),
        exclude: q.list("exclude"),
    };
    q.finish()?;
    let list = state
        .serving
        .lists
        .non_personal(which, &filters, offset, n)?;
    // Serialised straight into the body: no intermediate JSON tree on the hot path.
    Ok(Json(list))
}

pub async fn popular(
    State(state): State<Arc<AppState>>,
    q: QueryParams,
) -> Result<Json<ScoredList<u32>>, ApiError> {
    non_personal(state, q, FallbackList::Popular).await
}

pub async fn trending(
    State(state): State<Arc<AppState>>,
    q: QueryParams,
) -> Result<Json<ScoredList<u32>>, ApiError> {
    non_personal(state, q, FallbackList::Trending).await
}

pub async fn latest(
    State(state): State<Arc<AppState>>,
    q: QueryParams,
) -> Result<Json<ScoredList<u32>>, ApiError> {
    non_personal(state, q, FallbackList::Latest).await
}
