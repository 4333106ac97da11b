//! `POST /v1/feedback`: a batch of events, stored durably in one transaction before the answer
//! (a 200 means every event survives a crash), idempotent by `event_id`, then applied to the
//! users' real-time state ([`kindred_serving::feedback::FeedbackService`]). A 503 says whether
//! the batch may be stored ([`post_feedback`]); a client key's event ids are its own
//! ([`scoped_event_id`]).

use std::sync::Arc;

use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use kindred_serving::unix_now;
use kindred_store::Feedback;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::app::RequestStarted;
use crate::app_state::AppState;
use crate::auth::Granted;
use crate::error::ApiError;
use crate::extract::ApiBatch;

/// One event as the API takes it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedbackBody {
    pub user: String,
    pub item: String,
    /// `rating`, `view`, `click`, `purchase`, ... or a custom name.
    #[serde(rename = "type")]
    pub event_type: String,
    #[serde(default)]
    pub value: Option<f32>,
    /// Unix seconds; the server's clock when absent.
    #[serde(default)]
    pub timestamp: Option<i64>,
    #[serde(default)]
    pub event_id: Option<String>,
}

/// The stored form of an event id: a `[keys.clients]` client's ids live in its own namespace
/// (`@client/id`), so one client cannot claim another's ids and have their events dropped as
/// duplicates; other writers' ids are stored as sent and may not start with `@`.
pub fn scoped_event_id(
    client: Option<&str>,
    event_id: Option<String>,
    index: usize,
) -> Result<Option<String>, ApiError> {
    match (client, event_id) {
        (Some(client), Some(id)) => Ok(Some(format!("@{client}/{id}"))),
        (None, Some(id)) if id.starts_with('@') => Err(ApiError::bad_request(
            "reserved_event_id",
            format!(
                "record {index}: event ids starting with `@` are the namespaces of client keys \
                 ([keys.clients]); send the id without it"
            ),
        )),
        (_, id) => Ok(id),
    }
}

/// What is left of the request's time for the store, keeping a margin for the answer; None
/// when nothing is (the batch is then refused before it is stored).
fn store_budget(state: &AppState, started: Option<Instant>) -> Option<Duration> {
    let timeout = Duration::from_millis(state.serving.config().request_timeout_ms);
    let margin = (timeout / 10).min(Duration::from_millis(200));
    let spent = started.map_or(Duration::ZERO, |s| s.elapsed());
    timeout.checked_sub(spent + margin)
}

/// Stores the batch within the request's time. The store write runs as a task of its own, so a
/// client that gives up never leaves a transaction half-applied: it completes or rolls back
/// whole. What the client hears is exact: 200 stored; 503 `unavailable` (the store refused the
/// transaction) or `overloaded` / a deadline before the write began: not stored; 503
/// `possibly_stored`: the write was still running when time ran out, so it may be stored, and
/// the answer lists the batch's event ids so that a retry stores each event at most once.
pub async fn post_feedback(
    State(state): State<Arc<AppState>>,
    started: Option<Extension<RequestStarted>>,
    Extension(granted): Extension<Granted>,
    ApiBatch(body): ApiBatch<FeedbackBody>,
) -> Result<Json<Value>, ApiError> {
    let now = unix_now();
    // The ids as the client sent them, for a `possibly_stored` answer.
    let event_ids: Vec<String> = body.iter().filter_map(|b| b.event_id.clone()).collect();
    let without_id = body.len() - event_ids.len();
    let events = body
        .into_iter()
        .enumerate()
        .map(|(i, b)| {
            Ok(Feedback {
                event_id: scoped_event_id(granted.client.as_deref(), b.event_id, i)?,
                user: b.user,
                item: b.item,
                event_type: b.event_type,
                value: b.value,
                timestamp: b.timestamp.unwrap_or(now),
            })
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    let Some(budget) = store_budget(&state, started.map(|Extension(RequestStarted(s))| s)) else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "timeout",
            "the request's time ran out before the batch was stored; nothing was stored",
        )
        .with_detail("possibly_stored", json!(false))
        .with_retry_after(1));
    };
    let feedback = state.serving.feedback.clone();
    let write = tokio::spawn(async move { feedback.ingest(&events).await });
    let report = match tokio::time::timeout(budget, write).await {
        Ok(Ok(result)) => result?,
        Ok(Err(join)) => {
            return Err(ApiError::internal(format!(
                "storing feedback failed: {join}"
            )))
        }
        Err(_) => {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "possibly_stored",
                format!(
                    "the store did not confirm the batch in time; it may still be stored. Retry \
                     with the same event ids (duplicates are ignored){}",
                    if without_id > 0 {
                        format!(
                            "; {without_id} event(s) have no event_id and may be stored twice \
                             on retry"
                        )
                    } else {
                        String::new()
                    }
                ),
            )
            .with_detail("possibly_stored", json!(true))
            .with_detail("event_ids", json!(event_ids))
            .with_detail("events_without_id", json!(without_id))
            .with_retry_after(1));
        }
    };
    Ok(Json(json!({
        "inserted": report.inserted,
        "duplicates": report.duplicates,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_ids_get_their_namespace_and_others_may_not_forge_one() {
        let id = |s: &str| Some(s.to_owned());
        assert_eq!(
            scoped_event_id(Some("web"), id("e1"), 0).unwrap(),
            id("@web/e1")
        );
        // Another client's id, sent by a client, lands in the sender's namespace.
        assert_eq!(
            scoped_event_id(Some("mobile"), id("@web/e1"), 0).unwrap(),
            id("@mobile/@web/e1")
        );
        assert_eq!(scoped_event_id(None, id("e1"), 0).unwrap(), id("e1"));
        assert_eq!(scoped_event_id(Some("web"), None, 0).unwrap(), None);
        let err = scoped_event_id(None, id("@web/e1"), 3).unwrap_err();
        assert_eq!((err.status.as_u16(), err.code), (400, "reserved_event_id"));
        assert!(err.message.starts_with("record 3:"));
    }
}
