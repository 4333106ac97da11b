//! Personal lists: `GET /v1/recommend/{user}` (a known user) and `POST /v1/recommend` (someone the
//! request describes: anonymous or session users), each a call to
//! [`kindred_serving::ListService`].
//!
//! Every list answer carries a `request_id` (later clicks name it so they can be attributed),
//! the `model_version` that produced it, and per item its score and source.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::State;
use axum::{Extension, Json};
use kindred_serving::lists::{DescribedUserRequest, ServedList, UserListRequest};
use kindred_serving::RequestFilters;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::{check_batch, page, MAX_DEPTH_FACTOR};
use crate::app_state::AppState;
use crate::auth::{Granted, Scope};
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath, QueryParams};

pub async fn get_recommend(
    State(state): State<Arc<AppState>>,
    ApiPath(user): ApiPath<String>,
    Extension(granted): Extension<Granted>,
    mut q: QueryParams,
) -> Result<Json<ServedList>, ApiError> {
    let started = Instant::now();
    kindred_store::check_id("user id", &user)?;
    let (n, offset) = page(&state, &mut q)?;
    let filters = RequestFilters {
        categories: q.list("category"),
        exclude: q.list("exclude"),
    };
    let rank = q.single("rank")?;
    let by_default = state.serving.config().write_impressions;
    let write_impressions = q.flag("write_impressions", by_default)?;
    // Writing rows the server would not write is a write: a read key may not ask for it.
    if write_impressions && !by_default {
        granted.require(Scope::Write)?;
    }
    q.finish()?;
    let list = state.serving.lists.recommend(
        UserListRequest {
            user,
            n,
            offset,
            filters,
            rank,
            write_impressions,
        },
        started,
    )?;
    // Serialised straight into the body: no intermediate JSON tree on the hot path.
    Ok(Json(list))
}

/// `POST /v1/recommend`: a list for someone described by the request.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecommendBody {
    /// A known user to start from (optional); the interactions add to their history.
    #[serde(default)]
    pub user: Option<String>,
    /// Item ids the user interacted with, oldest first.
    #[serde(default)]
    pub interactions: Vec<String>,
    /// User features (the segment fallback reads its column here).
    #[serde(default)]
    pub features: Map<String, Value>,
    #[serde(default = "default_n")]
    pub n: usize,
    #[serde(default)]
    pub offset: usize,
    #[serde(default)]
    pub category: Vec<String>,
    #[serde(default)]
    pub exclude: Vec<String>,
    #[serde(default)]
    pub rank: Option<String>,
}

fn default_n() -> usize {
    10
}

pub async fn post_recommend(
    State(state): State<Arc<AppState>>,
    ApiJson(body): ApiJson<RecommendBody>,
) -> Result<Json<Value>, ApiError> {
    let started = Instant::now();
    let max_n = state.serving.config().max_n;
    if body.n == 0 || body.n > max_n {
        return Err(ApiError::bad_request(
            "invalid_parameter",
            format!("`n`: {} is outside [1, {max_n}]", body.n),
        ));
    }
    // Saturating: an offset near usize::MAX must be refused, not wrap around.
    if body.offset.saturating_add(body.n) > max_n * MAX_DEPTH_FACTOR {
        return Err(ApiError::bad_request(
            "invalid_parameter",
            format!("`offset` + `n` may not exceed {}", max_n * MAX_DEPTH_FACTOR),
        ));
    }
    check_batch(&state, body.interactions.len())?;
    if let Some(user) = &body.user {
        kindred_store::check_id("user id", user)?;
    }
    for (i, item) in body.interactions.iter().enumerate() {
        kindred_store::check_id(&format!("interactions[{i}]"), item)?;
    }
    let described = state.serving.lists.recommend_described(
        DescribedUserRequest {
            user: body.user,
            interactions: body.interactions,
            features: body.features,
            n: body.n,
            offset: body.offset,
            filters: RequestFilters {
                categories: body.category,
                exclude: body.exclude,
            },
            rank: body.rank,
        },
        started,
    )?;
    let mut answer = json!(described.list);
    answer["ignored_interactions"] = json!(described.ignored_interactions);
    Ok(Json(answer))
}
