//! The server crate's errors: [`Error`] for starting up and serving, [`ApiError`] for what a
//! client sees (`{"error": {"code", "message"}}` with a status that says whose fault it is: 4xx
//! for anything the caller got wrong, 5xx only for the server's own failures).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Failures of starting up and serving.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The listen address could not be bound (the OS error is in the message, not a `source()`,
    /// so that chain printers say it once).
    #[error("cannot listen on {addr}: {error}")]
    Bind {
        addr: std::net::SocketAddr,
        error: std::io::Error,
    },
    /// Setting up the serving state or its background work failed.
    #[error(transparent)]
    Serving(#[from] kindred_serving::Error),
}

/// An error answer to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    /// Stable machine-readable code (`not_found`, `invalid_parameter`, ...).
    pub code: &'static str,
    pub message: String,
    /// Further fields of the error object (`event_ids` of a write that may be stored, ...).
    pub details: serde_json::Map<String, serde_json::Value>,
    /// Seconds a client should wait before retrying (`Retry-After`).
    pub retry_after: Option<u32>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            details: serde_json::Map::new(),
            retry_after: None,
        }
    }

    /// The same error with one more field in its error object.
    pub fn with_detail(mut self, key: &str, value: serde_json::Value) -> Self {
        self.details.insert(key.to_owned(), value);
        self
    }

    /// The same error with a `Retry-After` header.
    pub fn with_retry_after(mut self, seconds: u32) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    /// 503 before any work was done: the server is at its limit of requests in flight.
    pub fn overloaded(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "overloaded", message).with_retry_after(1)
    }

    /// 400: a request the server understood but cannot accept.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 404 naming what was not found.
    pub fn not_found(what: &str, id: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what} `{id}` not found"),
        )
    }

    /// 503: the server cannot answer yet (no model, store down).
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }

    /// 500 for the server's own failures; the message is logged, the client gets it too (it
    /// holds no secrets: store and model errors name operations, not credentials).
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }
}

impl From<kindred_core::Error> for ApiError {
    fn from(e: kindred_core::Error) -> Self {
        use kindred_core::Error as E;
        match e {
            E::InvalidInput(_)
            | E::Spec { .. }
            | E::Parse { .. }
            | E::Config { .. }
            | E::BadFile { .. } => ApiError::bad_request("invalid_input", e.to_string()),
            E::Store { .. } => ApiError::unavailable(e.to_string()),
            E::Cancelled => ApiError::unavailable("the server is shutting down"),
            E::Io { .. } | E::Model { .. } => ApiError::internal(e.to_string()),
        }
    }
}

impl From<kindred_serving::Error> for ApiError {
    fn from(e: kindred_serving::Error) -> Self {
        use kindred_serving::Error as E;
        match e {
            E::Core(core) => core.into(),
            E::Invalid { code, message } => ApiError::bad_request(code, message),
            E::NotFound(message) => ApiError::new(StatusCode::NOT_FOUND, "not_found", message),
            E::Conflict { code, message } => ApiError::new(StatusCode::CONFLICT, code, message),
            other @ (E::Config { .. } | E::Task(_)) => ApiError::internal(other.to_string()),
        }
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        match e {
            Error::Serving(serving) => serving.into(),
            other => ApiError::internal(other.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::error!(code = self.code, message = %self.message, "request failed");
        }
        let mut error = self.details;
        error.insert("code".into(), json!(self.code));
        error.insert("message".into(), json!(self.message));
        let body = json!({ "error": error });
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, seconds.into());
        }
        response
    }
}
