//! Online experiment (A/B test) statistics: deterministic assignment, tests and intervals for
//! rates, means and ratio metrics, CUPED variance reduction, the sample-ratio check, an
//! always-valid sequential test, power and sample size, per-segment results with a
//! multiple-testing correction, and [`analyze`], which puts them together into one report.

pub mod analyze;
pub mod assignment;
pub mod comparison;
pub mod cuped;
pub mod input;
pub mod means;
pub mod power;
pub mod proportions;
pub mod ratio;
pub mod segments;
pub mod sequential;
pub mod srm;

pub use analyze::{
    analyze, resolve_metrics, AnalysisOptions, CupedSummary, ExperimentReport, MetricComparison,
    MetricKind, MetricSpec, MetricValue, Observation, VariantSummary,
};
pub use assignment::Allocation;
pub use comparison::{ArmEstimate, Comparison};
pub use input::read_observations;
