//! Users and items: `PUT/GET/DELETE /v1/{users,items}/{id}` and batch upserts `POST /v1/users`,
//! `POST /v1/items`, over [`kindred_serving::entities::EntityService`]; the feature schema of a
//! body is checked here against the snapshot's columns. `DELETE ...?erase=true` erases the id
//! (every row naming it, a tombstone; admin scope) instead of deleting its record.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use kindred_serving::snapshot::FeatureKind;
use kindred_store::{Item, User};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::app_state::AppState;
use crate::auth::{Granted, Scope};
use crate::error::ApiError;
use crate::extract::{ApiBatch, ApiJson, ApiPath, QueryParams};

/// A user as sent to the API.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserBody {
    /// Optional in `PUT /v1/users/{id}` (must match the path), required in batches.
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub features: Map<String, Value>,
}

/// An item as sent to the API.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ItemBody {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub features: Map<String, Value>,
    #[serde(default)]
    pub categories: Vec<String>,
    /// Unix seconds.
    #[serde(default)]
    pub timestamp: Option<i64>,
    #[serde(default)]
    pub hidden: bool,
}

fn body_id(
    path: Option<&str>,
    body: Option<String>,
    index: Option<usize>,
) -> Result<String, ApiError> {
    let at = || index.map_or(String::new(), |i| format!("record {i}: "));
    match (path, body) {
        (Some(p), Some(b)) if p != b => Err(ApiError::bad_request(
            "id_mismatch",
            format!("the body's id `{b}` differs from the path's `{p}`"),
        )),
        (Some(p), _) => Ok(p.to_owned()),
        (None, Some(b)) => Ok(b),
        (None, None) => Err(ApiError::bad_request(
            "missing_field",
            format!("{}field `id` is required", at()),
        )),
    }
}

/// Item fields the store keeps as feature columns of their own: a feature of the same name
/// would clash with them when the catalog is built.
const ITEM_FIELDS: [&str; 3] = ["categories", "hidden", "timestamp"];

/// The feature column kinds one request's records must agree with: those of the stored data
/// (from the live snapshot) and those the request's own earlier records introduce.
struct FeatureSchema<'a> {
    stored: &'a BTreeMap<String, FeatureKind>,
    added: BTreeMap<String, FeatureKind>,
    reserved: &'a [&'a str],
}

impl<'a> FeatureSchema<'a> {
    fn new(stored: &'a BTreeMap<String, FeatureKind>, reserved: &'a [&'a str]) -> Self {
        Self {
            stored,
            added: BTreeMap::new(),
            reserved,
        }
    }

    /// Rejects features the store would accept but could not turn into feature columns (nested
    /// objects, mixed lists, a kind other than the column's, item features named like item
    /// fields): stored, one such record makes every later catalog build and training run fail,
    /// and a restarted server refuse to start.
    fn check(
        &mut self,
        kind: &str,
        id: &str,
        features: &Map<String, Value>,
    ) -> Result<(), ApiError> {
        for (name, value) in features {
            let bad = |why: String| {
                ApiError::bad_request(
                    "invalid_input",
                    format!("{kind} `{id}`, feature `{name}`: {why}"),
                )
            };
            if self.reserved.contains(&name.as_str()) {
                return Err(bad(format!(
                    "`{name}` is an item field: send it as `{name}`, not as a feature"
                )));
            }
            let Some(got) = FeatureKind::of_value(value).map_err(|why| bad(why.to_owned()))? else {
                continue;
            };
            match self.stored.get(name).or_else(|| self.added.get(name)) {
                Some(&expected) if expected != got => {
                    return Err(bad(format!(
                        "expected {} (as stored for other {kind}s), got {}",
                        expected.describe(),
                        got.describe()
                    )))
                }
                Some(_) => {}
                None => {
                    self.added.insert(name.clone(), got);
                }
            }
        }
        Ok(())
    }
}

fn user_of(
    body: UserBody,
    path: Option<&str>,
    index: Option<usize>,
    schema: &mut FeatureSchema<'_>,
) -> Result<User, ApiError> {
    let id = body_id(path, body.id, index)?;
    schema.check("user", &id, &body.features)?;
    Ok(User {
        id,
        features: body.features,
    })
}

fn item_of(
    body: ItemBody,
    path: Option<&str>,
    index: Option<usize>,
    schema: &mut FeatureSchema<'_>,
) -> Result<Item, ApiError> {
    let id = body_id(path, body.id, index)?;
    schema.check("item", &id, &body.features)?;
    Ok(Item {
        id,
        features: body.features,
        categories: body.categories,
        timestamp: body.timestamp,
        hidden: body.hidden,
    })
}

/// The users of a `POST /v1/users` body as the handler checks them before the store sees them:
/// ids present, feature kinds agreeing with `stored` and with each other. Public for the fuzz
/// targets in `fuzz/`.
#[doc(hidden)]
pub fn users_of_batch(
    body: Vec<UserBody>,
    stored: &BTreeMap<String, FeatureKind>,
) -> Result<Vec<User>, ApiError> {
    let mut schema = FeatureSchema::new(stored, &[]);
    body.into_iter()
        .enumerate()
        .map(|(i, b)| user_of(b, None, Some(i), &mut schema))
        .collect()
}

/// The items of a `POST /v1/items` body as the handler checks them (see [`users_of_batch`]).
#[doc(hidden)]
pub fn items_of_batch(
    body: Vec<ItemBody>,
    stored: &BTreeMap<String, FeatureKind>,
) -> Result<Vec<Item>, ApiError> {
    let mut schema = FeatureSchema::new(stored, &ITEM_FIELDS);
    body.into_iter()
        .enumerate()
        .map(|(i, b)| item_of(b, None, Some(i), &mut schema))
        .collect()
}

pub async fn put_user(
    State(state): State<Arc<AppState>>,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<UserBody>,
) -> Result<impl IntoResponse, ApiError> {
    let snapshot = state.serving.snapshot();
    let mut schema = FeatureSchema::new(&snapshot.user_feature_kinds, &[]);
    let user = user_of(body, Some(&id), None, &mut schema)?;
    state
        .serving
        .entities
        .upsert_users(std::slice::from_ref(&user))
        .await?;
    Ok(Json(json!({ "id": user.id, "written": 1 })))
}

pub async fn get_user(
    State(state): State<Arc<AppState>>,
    ApiPath(id): ApiPath<String>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(json!(state.serving.entities.user(&id).await?)))
}

/// Whether a `DELETE` asks for erasure (`?erase=true`), which needs the admin scope: it removes
/// feedback and experiment history that a plain delete keeps.
fn wants_erasure(granted: &Granted, mut q: QueryParams) -> Result<bool, ApiError> {
    let erase = q.flag("erase", false)?;
    q.finish()?;
    if erase {
        granted.require(Scope::Admin)?;
    }
    Ok(erase)
}

/// The answer to an erasure: the id and the rows removed per table.
fn erased(kind: &str, id: &str, removed: kindred_store::ErasureReport) -> Response {
    let mut body = Map::new();
    body.insert(kind.to_owned(), json!(id));
    body.insert("erased".into(), json!(true));
    body.insert("removed".into(), json!(removed));
    Json(Value::Object(body)).into_response()
}

pub async fn delete_user(
    State(state): State<Arc<AppState>>,
    ApiPath(id): ApiPath<String>,
    Extension(granted): Extension<Granted>,
    q: QueryParams,
) -> Result<Response, ApiError> {
    if wants_erasure(&granted, q)? {
        let removed = state.serving.entities.erase_user(&id).await?;
        return Ok(erased("user", &id, removed));
    }
    state.serving.entities.delete_user(&id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub async fn post_users(
    State(state): State<Arc<AppState>>,
    ApiBatch(body): ApiBatch<UserBody>,
) -> Result<impl IntoResponse, ApiError> {
    let users = users_of_batch(body, &state.serving.snapshot().user_feature_kinds)?;
    state.serving.entities.upsert_users(&users).await?;
    Ok(Json(json!({ "written": users.len() })))
}

pub async fn put_item(
    State(state): State<Arc<AppState>>,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<ItemBody>,
) -> Result<impl IntoResponse, ApiError> {
    let snapshot = state.serving.snapshot();
    let mut schema = FeatureSchema::new(&snapshot.item_feature_kinds, &ITEM_FIELDS);
    let item = item_of(body, Some(&id), None, &mut schema)?;
    state
        .serving
        .entities
        .upsert_items(std::slice::from_ref(&item))
        .await?;
    Ok(Json(json!({ "id": item.id, "written": 1 })))
}

pub async fn get_item(
    State(state): State<Arc<AppState>>,
    ApiPath(id): ApiPath<String>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(json!(state.serving.entities.item(&id).await?)))
}

pub async fn delete_item(
    State(state): State<Arc<AppState>>,
    ApiPath(id): ApiPath<String>,
    Extension(granted): Extension<Granted>,
    q: QueryParams,
) -> Result<Response, ApiError> {
    if wants_erasure(&granted, q)? {
        let removed = state.serving.entities.erase_item(&id).await?;
        return Ok(erased("item", &id, removed));
    }
    state.serving.entities.delete_item(&id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub async fn post_items(
    State(state): State<Arc<AppState>>,
    ApiBatch(body): ApiBatch<ItemBody>,
) -> Result<impl IntoResponse, ApiError> {
    let items = items_of_batch(body, &state.serving.snapshot().item_feature_kinds)?;
    state.serving.entities.upsert_items(&items).await?;
    Ok(Json(json!({ "written": items.len() })))
}
