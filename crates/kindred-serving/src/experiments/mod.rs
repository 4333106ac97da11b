//! The server's experiment engine: definitions ([`definition`]), the running set and who is in
//! which variant ([`running`]), the background writer of exposures ([`exposure_log`]), and from
//! logged rows to the analysis ([`attribution`], [`results`]); [`service`] is what the API and
//! the dashboard call.

pub mod attribution;
pub mod definition;
pub mod exposure_log;
pub mod results;
pub mod running;
pub mod service;

pub use attribution::{observations, AttributionCounts, ExperimentRows};
pub use definition::{ExperimentDefinition, VariantDefinition};
pub use exposure_log::{ExposureCounters, ExposureLog};
pub use results::experiment_results;
pub use running::{Assignment, Experiments, RunningExperiment};
pub use service::ExperimentService;
