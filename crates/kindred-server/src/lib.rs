//! Kindred's recommendation server: the HTTP API of BLUEPRINT §5 over a [`kindred_store::Store`]
//! (SQLite embedded by default, PostgreSQL for production).
//!
//! Layers: [`state::AppState`] holds the store, the live [`snapshot::Snapshot`] (model +
//! catalog + rank pipelines, swapped atomically), the real-time overlay, the cache and the
//! metrics; [`routes`] are thin handlers over it; [`app`] adds auth, limits, timeouts and
//! metrics and serves with graceful shutdown; [`training`] is the one way versions are trained
//! and published (CLI, API, scheduler).

pub mod app;
pub mod auth;
pub mod cache;
pub mod config;
pub mod dashboard;
pub mod error;
pub mod evaluation;
pub mod experiments;
pub mod extract;
pub mod metrics;
pub mod monitor;
pub mod offline;
pub mod openapi;
pub mod routes;
pub mod snapshot;
pub mod state;
pub mod training;

pub use app::{bind, router, serve, shutdown_signal};
pub use config::{ServeMode, ServerConfig};
pub use error::{ApiError, Error, Result};
pub use evaluation::OfflineEval;
pub use offline::{offline_alerts, offline_control_charts};
pub use state::AppState;
pub use training::{
    register_external, train_and_publish, train_and_publish_with, train_and_register,
    train_and_register_with, TrainSpec,
};
