//! Load shedding: at most `limits.max_in_flight` requests are handled at once. One more is
//! answered 503 `overloaded` with `Retry-After` before its body is read or any work is queued,
//! so a write shed this way is certainly not stored, and a burst (or a stalled store) cannot
//! pile up tasks, memory and store connections behind it. The health checks are never shed: a
//! balancer must still see a busy server as alive.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::Semaphore;

use crate::app_state::AppState;
use crate::error::ApiError;

/// The permits and what they counted, for `/metrics`.
#[derive(Debug)]
pub struct InFlight {
    permits: Arc<Semaphore>,
    max: usize,
    /// Requests answered 503 because `max` were in flight (since start).
    pub shed: AtomicU64,
}

impl InFlight {
    pub fn new(max: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(max)),
            max,
            shed: AtomicU64::new(0),
        }
    }

    /// Requests being handled now.
    pub fn now(&self) -> usize {
        self.max - self.permits.available_permits()
    }
}

/// The middleware: a permit per request, or 503 at once.
pub async fn shed_load(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    if req.uri().path().starts_with("/health/") {
        return next.run(req).await;
    }
    let in_flight = &state.in_flight;
    match Arc::clone(&in_flight.permits).try_acquire_owned() {
        Ok(permit) => {
            let response = next.run(req).await;
            drop(permit);
            response
        }
        Err(_) => {
            in_flight.shed.fetch_add(1, Ordering::Relaxed);
            ApiError::overloaded(format!(
                "{} requests are in flight (limits.max_in_flight); nothing was done: retry soon",
                in_flight.max
            ))
            .into_response()
        }
    }
}
