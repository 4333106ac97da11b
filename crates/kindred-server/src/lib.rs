//! Kindred's recommendation server: the HTTP API and the dashboard over
//! [`kindred_serving`], which does the serving work (snapshots, lists, lifecycle, experiments,
//! monitoring).
//!
//! Layers: [`app_state::AppState`] wraps the serving services with what only HTTP needs (API
//! keys, request metrics); [`routes`] are thin handlers, each translating a request into one
//! service call; [`app`] adds auth, limits, timeouts and metrics and serves with graceful
//! shutdown, the serving background work beside it; [`dashboard`] renders the pages.

pub mod app;
pub mod app_state;
pub mod auth;
pub mod connections;
pub mod dashboard;
pub mod error;
pub mod extract;
pub mod login_limit;
pub mod metrics;
pub mod openapi;
pub mod origin;
pub mod routes;
pub mod shedding;

pub use app::{bind, router, serve, shutdown_signal};
pub use app_state::AppState;
pub use error::{ApiError, Error, Result};
