//! Kindred's evaluation: exact metric definitions, the runner that fits models on protocol
//! splits and scores them, per-segment breakdowns, and the JSON result format (BLUEPRINT §3-4).

pub mod export;
pub mod metrics;
pub mod report;
pub mod runner;
pub mod segments;

pub use report::{EvalReport, FoldResult, ModelResult};
pub use runner::{evaluate, EvalOptions};
