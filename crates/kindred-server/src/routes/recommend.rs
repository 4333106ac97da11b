//! Lists: `GET /v1/recommend/{user}`, `POST /v1/recommend` (anonymous or session users),
//! `GET /v1/popular|trending|latest`, similar items and users, and `POST /v1/predict`.
//!
//! Every list answer carries a `request_id` (later clicks name it so they can be attributed),
//! the `model_version` that produced it, and per item its score and source.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::State;
use axum::Json;
use kindred_rank::{RankedItem, RequestFilters};
use kindred_store::Impression;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::check_batch;
use crate::error::ApiError;
use crate::experiments::Assignment;
use crate::extract::{ApiJson, ApiPath, QueryParams};
use crate::monitor::online::OnlineList;
use crate::snapshot::{FallbackList, ListRequest, Snapshot};
use crate::state::{AppState, ServedItem};
use crate::training::unix_now;

/// Deepest page: `offset + n` may not exceed this many times `max_n`.
const MAX_DEPTH_FACTOR: usize = 10;

fn served(snapshot: &Snapshot, list: &[RankedItem]) -> Vec<ServedItem> {
    list.iter()
        .map(|r| ServedItem {
            item: snapshot.items.external(r.item).to_owned(),
            score: Some(r.score).filter(|s| s.is_finite()),
            source: r.source.to_string(),
        })
        .collect()
}

/// The impressions log rows of one served list (policy = the version that produced it).
fn impression_rows(
    snapshot: &Snapshot,
    request_id: &str,
    user: &str,
    items: &[ServedItem],
    now: i64,
) -> Vec<Impression> {
    let policy = snapshot.version().unwrap_or("fallback");
    items
        .iter()
        .enumerate()
        .map(|(slot, i)| Impression {
            request_id: request_id.to_owned(),
            user: user.to_owned(),
            item: i.item.clone(),
            slot: slot as u32,
            propensity: None,
            policy: policy.to_owned(),
            timestamp: now,
        })
        .collect()
}

/// Answers a list and, when asked, writes it to the impressions log in the background. A list
/// served in an experiment always logs its exposure and impressions (through the batched
/// exposure writer) and says which experiment and variant it came from.
fn list_response(
    state: &Arc<AppState>,
    snapshot: &Snapshot,
    user: Option<&str>,
    items: &[ServedItem],
    write_impressions: bool,
    experiment: Option<&Assignment>,
    started: Instant,
) -> Json<Value> {
    let request_id = state.request_id();
    state
        .metrics
        .observe_sources(items.iter().map(|i| i.source.as_str()));
    let variant_label = experiment.map(|a| format!("{}/{}", a.experiment, a.variant));
    state.monitor.online.record_list(OnlineList {
        user,
        model_version: snapshot.version(),
        variant: variant_label.as_deref(),
        items,
        latency: started.elapsed(),
        item_features: snapshot.data.item_features.as_deref(),
    });
    if let (Some(assignment), Some(user)) = (experiment, user) {
        let now = unix_now();
        let rows = impression_rows(snapshot, &request_id, user, items, now);
        let exposure = kindred_store::Exposure {
            experiment: assignment.experiment.clone(),
            variant: assignment.variant.clone(),
            user: user.to_owned(),
            request_id: request_id.clone(),
            timestamp: now,
        };
        state.exposure_log.log(exposure, rows);
    } else if let (true, Some(user)) = (write_impressions && !items.is_empty(), user) {
        let now = unix_now();
        let rows = impression_rows(snapshot, &request_id, user, items, now);
        let state = Arc::clone(state);
        tokio::spawn(async move {
            match state.store.insert_impressions(&rows).await {
                Ok(n) => {
                    state
                        .metrics
                        .impressions_written
                        .fetch_add(n as u64, Ordering::Relaxed);
                }
                Err(e) => tracing::warn!(error = %e, "writing impressions failed"),
            }
        });
    }
    let mut answer = json!({
        "request_id": request_id,
        "model_version": snapshot.version(),
        "user": user,
        "items": items,
    });
    if let Some(a) = experiment {
        answer["experiment"] = json!({"name": a.experiment, "variant": a.variant});
    }
    Json(answer)
}

/// The experiment arm `user` is in and the snapshot that serves it; the live snapshot and no
/// arm when the user is in no experiment (or, briefly after a start, its version is not loaded
/// yet: then nothing is logged either, so the analysis never counts a list the arm did not make).
fn arm<'s>(
    state: &AppState,
    snapshot: &'s Snapshot,
    user: Option<&str>,
) -> (Option<Assignment>, &'s Snapshot) {
    let Some(assignment) = user.and_then(|u| state.assign(u)) else {
        return (None, snapshot);
    };
    match snapshot.for_version(assignment.model_version.as_deref()) {
        Some(serving) => (Some(assignment), serving),
        None => (None, snapshot),
    }
}

/// `n` and `offset` within the configured limits.
fn page(state: &AppState, q: &mut QueryParams) -> Result<(usize, usize), ApiError> {
    let max_n = state.config.max_n;
    let n = q.number("n", 10, 1, max_n)?;
    let offset = q.number("offset", 0, 0, max_n * MAX_DEPTH_FACTOR - n)?;
    Ok((n, offset))
}

fn check_rank(snapshot: &Snapshot, rank: Option<&str>) -> Result<(), ApiError> {
    match rank {
        Some(name) if !snapshot.has_rank(name) => Err(ApiError::bad_request(
            "unknown_rank_config",
            format!(
                "unknown rank config `{name}`; configured: {}",
                snapshot.rank_names().collect::<Vec<_>>().join(", ")
            ),
        )),
        _ => Ok(()),
    }
}

pub async fn get_recommend(
    State(state): State<Arc<AppState>>,
    ApiPath(user): ApiPath<String>,
    mut q: QueryParams,
) -> Result<Json<Value>, ApiError> {
    let started = Instant::now();
    kindred_store::check_id("user id", &user)?;
    let (n, offset) = page(&state, &mut q)?;
    let filters = RequestFilters {
        categories: q.list("category"),
        exclude: q.list("exclude"),
    };
    let rank = q.single("rank")?;
    let write = q.flag("write_impressions", state.config.write_impressions)?;
    q.finish()?;
    let live_snapshot = state.snapshot();
    let (experiment, snapshot) = arm(&state, &live_snapshot, Some(&user));
    let rank = experiment.as_ref().and_then(|a| a.rank.clone()).or(rank);
    check_rank(snapshot, rank.as_deref())?;
    let cache_key = format!(
        "{}|{n}|{offset}|{}|{}|{}",
        experiment
            .as_ref()
            .map_or(String::new(), |a| format!("{}/{}", a.experiment, a.variant)),
        rank.as_deref().unwrap_or(""),
        filters.categories.join(","),
        filters.exclude.join(",")
    );
    if let Some(items) = state.cache.get(&user, &cache_key, live_snapshot.id) {
        return Ok(list_response(
            &state,
            snapshot,
            Some(&user),
            &items,
            write,
            experiment.as_ref(),
            started,
        ));
    }
    let request = ListRequest {
        user: Some(&user),
        history: state.overlay_items(&user, snapshot),
        segment: None,
        filters,
        rank: rank.as_deref(),
        now: unix_now(),
        offset,
        n,
    };
    let items = match snapshot.precomputed(&request) {
        Some(list) => served(snapshot, list),
        None => served(snapshot, &snapshot.rank_now(&request)?),
    };
    let items = Arc::new(items);
    state
        .cache
        .put(&user, &cache_key, live_snapshot.id, Arc::clone(&items));
    Ok(list_response(
        &state,
        snapshot,
        Some(&user),
        &items,
        write,
        experiment.as_ref(),
        started,
    ))
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
    let max_n = state.config.max_n;
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
    let live_snapshot = state.snapshot();
    let (experiment, snapshot) = arm(&state, &live_snapshot, body.user.as_deref());
    let rank = experiment
        .as_ref()
        .and_then(|a| a.rank.clone())
        .or(body.rank);
    check_rank(snapshot, rank.as_deref())?;
    let mut history = match &body.user {
        Some(user) => state.overlay_items(user, snapshot),
        None => Vec::new(),
    };
    let mut ignored = Vec::new();
    for item in &body.interactions {
        match snapshot.items.get(item) {
            Some(i) => history.push(i),
            None => ignored.push(item.clone()),
        }
    }
    let segment = snapshot
        .segment_column(rank.as_deref())
        .and_then(|c| body.features.get(c))
        .and_then(Value::as_str)
        .map(str::to_owned);
    let request = ListRequest {
        user: body.user.as_deref(),
        history,
        segment,
        filters: RequestFilters {
            categories: body.category,
            exclude: body.exclude,
        },
        rank: rank.as_deref(),
        now: unix_now(),
        offset: body.offset,
        n: body.n,
    };
    let items = served(snapshot, &snapshot.rank_now(&request)?);
    let Json(mut answer) = list_response(
        &state,
        snapshot,
        body.user.as_deref(),
        &items,
        false,
        experiment.as_ref(),
        started,
    );
    answer["ignored_interactions"] = json!(ignored);
    Ok(Json(answer))
}

async fn non_personal(
    state: Arc<AppState>,
    mut q: QueryParams,
    which: FallbackList,
) -> Result<Json<Value>, ApiError> {
    let (n, offset) = page(&state, &mut q)?;
    let filters = RequestFilters {
        categories: q.list("category"),
        exclude: q.list("exclude"),
    };
    q.finish()?;
    let snapshot = state.snapshot();
    let source = match which {
        FallbackList::Popular => "popular",
        FallbackList::Trending => "trending",
        FallbackList::Latest => "latest",
    };
    let list = snapshot.non_personal(which, &filters, unix_now(), offset, n)?;
    let items: Vec<Value> = list
        .iter()
        .map(|&i| {
            json!({
                "item": snapshot.items.external(i),
                "score": snapshot.item_users(i),
                "source": source,
            })
        })
        .collect();
    Ok(Json(json!({
        "request_id": state.request_id(),
        "model_version": snapshot.version(),
        "items": items,
    })))
}

pub async fn popular(
    State(state): State<Arc<AppState>>,
    q: QueryParams,
) -> Result<Json<Value>, ApiError> {
    non_personal(state, q, FallbackList::Popular).await
}

pub async fn trending(
    State(state): State<Arc<AppState>>,
    q: QueryParams,
) -> Result<Json<Value>, ApiError> {
    non_personal(state, q, FallbackList::Trending).await
}

pub async fn latest(
    State(state): State<Arc<AppState>>,
    q: QueryParams,
) -> Result<Json<Value>, ApiError> {
    non_personal(state, q, FallbackList::Latest).await
}

pub async fn similar_items(
    State(state): State<Arc<AppState>>,
    ApiPath(item): ApiPath<String>,
    mut q: QueryParams,
) -> Result<Json<Value>, ApiError> {
    kindred_store::check_id("item id", &item)?;
    let n = q.number("n", 10, 1, state.config.max_n)?;
    q.finish()?;
    let snapshot = state.snapshot();
    let Some(index) = snapshot.items.get(&item) else {
        return Err(ApiError::not_found("item", &item));
    };
    let (found, source) = snapshot.similar_items(index, n)?;
    let items: Vec<Value> = found
        .iter()
        .map(|s| json!({ "item": snapshot.items.external(s.item), "score": s.score, "source": source }))
        .collect();
    Ok(Json(json!({
        "request_id": state.request_id(),
        "model_version": snapshot.version(),
        "item": item,
        "items": items,
    })))
}

pub async fn similar_users(
    State(state): State<Arc<AppState>>,
    ApiPath(user): ApiPath<String>,
    mut q: QueryParams,
) -> Result<Json<Value>, ApiError> {
    kindred_store::check_id("user id", &user)?;
    let n = q.number("n", 10, 1, state.config.max_n)?;
    q.finish()?;
    let snapshot = state.snapshot();
    let Some((found, source)) = snapshot.similar_users(&user, n)? else {
        return Err(ApiError::not_found("user", &user));
    };
    let users: Vec<Value> = found
        .iter()
        .map(|(u, s)| json!({ "user": u, "score": s, "source": source }))
        .collect();
    Ok(Json(json!({
        "request_id": state.request_id(),
        "model_version": snapshot.version(),
        "user": user,
        "users": users,
    })))
}

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
    let snapshot = state.snapshot();
    let mut out = Vec::with_capacity(body.pairs.len());
    for (i, (user, item)) in body.pairs.iter().enumerate() {
        kindred_store::check_id(&format!("pairs[{i}][0] (user id)"), user)?;
        kindred_store::check_id(&format!("pairs[{i}][1] (item id)"), item)?;
        if snapshot.items.get(item).is_none() {
            return Err(ApiError::new(
                axum::http::StatusCode::NOT_FOUND,
                "not_found",
                format!("pairs[{i}]: item `{item}` not found"),
            ));
        }
        out.push(json!({
            "user": user,
            "item": item,
            "score": snapshot.predict(user, item, &state.overlay_items(user, &snapshot)),
        }));
    }
    Ok(Json(json!({
        "model_version": snapshot.version(),
        "predictions": out,
    })))
}
