//! Kindred's evaluation: exact metric definitions, the runner that fits models on protocol
//! splits and scores them, per-segment breakdowns, and the JSON result format.

pub mod auto;
pub mod export;
pub mod holdout;
pub mod metrics;
pub mod offpolicy;
pub mod report;
pub mod runner;
pub mod segments;
pub mod stats;
pub mod tune;

pub use auto::{build_algorithm, build_algorithm_for};
pub use offpolicy::{
    estimate_click_rate, LoggedSlot, OffPolicyEstimate, OffPolicyOptions, SlotEstimate,
};
pub use report::{Comparison, EvalReport, FoldResult, ModelResult, TrialRecord, TuningSummary};
pub use runner::{compare_results, evaluate, evaluate_plans, EvalOptions, ModelPlan};
pub use tune::{tune, TuneOptions};
