//! `auto`: the model spec that picks and tunes a model on the user's own data, because no
//! fixed configuration transfers from one dataset to another. Fitting `auto` carves validation
//! rows from its training rows, rules out families that cannot apply or cannot afford the data
//! ([`candidates`]), screens the rest at their defaults and searches the most promising ones
//! within a time budget ([`select`]), and refits the winner on all training rows
//! ([`algorithm`]); the whole choice is recorded ([`trace`]).
//!
//! It lives beside the evaluation runner because choosing is evaluating. Every place that
//! fits a spec builds it through [`build_algorithm`] so that `auto` means the same in `eval`,
//! `train`, `tune` and the server.

pub mod algorithm;
pub mod candidates;
pub mod nested;
pub mod select;
pub mod spec;
pub mod trace;

use kindred_core::{Protocol, Result};
use kindred_models::Algorithm;

pub use algorithm::{AutoAlgorithm, SelectedModel};
pub use nested::tune_auto;
pub use spec::{is_auto, AutoSpec, AutoTask, DEFAULT_BUDGET_SECONDS};
pub use trace::{AutoTrial, FamilyTrace, Selection};

/// The algorithm a spec, preset or `auto` spec names (for fitting outside an evaluation:
/// `auto` validates on a holdout of the training rows).
pub fn build_algorithm(spec: &str) -> Result<Box<dyn Algorithm>> {
    if is_auto(spec) {
        Ok(Box::new(AutoAlgorithm::new(spec)?))
    } else {
        kindred_models::build_algorithm(spec)
    }
}

/// The algorithm a spec names when it is evaluated under `protocol` (`auto` carves its
/// validation rows the way the protocol carves test rows, and follows its task).
pub fn build_algorithm_for(spec: &str, protocol: &Protocol) -> Result<Box<dyn Algorithm>> {
    if is_auto(spec) {
        Ok(Box::new(AutoAlgorithm::for_protocol(spec, protocol)?))
    } else {
        kindred_models::build_algorithm(spec)
    }
}
