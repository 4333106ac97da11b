//! The server's experiment engine: definitions ([`definition`]), the running set and who is in
//! which variant ([`registry`]), the background writer of exposures ([`exposure_log`]), and from logged rows to the analysis ([`attribution`],
//! [`results`]); [`service`] is what the API and the dashboard call.

pub mod attribution;
pub mod definition;
pub mod exposure_log;
pub mod registry;
pub mod results;
pub mod service;

pub use attribution::{observations, AttributionCounts, ExperimentRows};
pub use definition::{ExperimentDefinition, VariantDefinition};
pub use exposure_log::{ExposureCounters, ExposureLog};
pub use registry::{Assignment, Experiments, RunningExperiment};
pub use results::experiment_results;
pub use service::ExperimentService;
