//! Kindred's serving core, without HTTP: what a recommendation server does between a request and
//! its answer, and the work that keeps it current.
//!
//! [`state::ServingState`] holds the store, the live [`snapshot::Snapshot`] (model + catalog +
//! rank pipelines, swapped atomically through [`live_snapshot::LiveSnapshot`]), the real-time
//! [`overlay`], the [`cache`], the [`write_limits`] and the [`counters`]. The services over it: [`lists::ListService`]
//! (every list and prediction), [`feedback::FeedbackService`], [`entities::EntityService`],
//! [`lifecycle::Lifecycle`] (train, evaluate, publish, activate; its [`lifecycle::training`]
//! functions are the CLI's way too; its [`lifecycle::retention`] deletes versions),
//! [`experiments::ExperimentService`] and [`monitor::Monitor`]; [`erasure`] forgets a user or an
//! item in the store and in every structure of the process.
//! [`services::Serving`] opens them together and runs the [`background`] loop; [`config`] is the
//! server config (TOML + env).

pub mod background;
pub mod cache;
pub mod clock;
pub mod config;
pub mod counters;
pub mod entities;
pub mod erasure;
pub mod error;
pub mod experiments;
pub mod exploration;
pub mod exposition;
pub mod feedback;
pub mod item_text;
pub mod lifecycle;
pub mod lists;
pub mod live_snapshot;
pub mod monitor;
pub mod overlay;
pub mod served_item;
pub mod services;
pub mod snapshot;
pub mod state;
pub mod sync;
pub mod write_limits;

pub use clock::unix_now;
pub use config::{ServeMode, ServerConfig};
pub use error::{Error, Result};
/// The per-request filters (categories, exclusions) a [`ListService`] call takes: the ranking
/// pipeline's own type, so a filter means the same offline and online.
pub use kindred_rank::RequestFilters;
pub use lifecycle::offline::{offline_alerts, offline_control_charts};
pub use lifecycle::training::{
    fit_version, prepare, register_external, save_version, train_and_publish,
    train_and_publish_with, train_and_register, train_and_register_with, DataSnapshot,
    FittedVersion, TrainSpec,
};
pub use lifecycle::Lifecycle;
pub use lifecycle::OfflineEval;
pub use lists::ListService;
pub use services::Serving;
pub use state::ServingState;
