//! The evaluation result format written by `kindred eval --json` (BLUEPRINT §3): stable field
//! names that scripts, benchmarks and reports depend on.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::segments::Segments;

/// Everything one `kindred eval` run measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EvalReport {
    pub dataset: DatasetSummary,
    pub protocol: String,
    /// Cut-off of the ranking metrics.
    pub k: usize,
    pub results: Vec<ModelResult>,
    /// Versions of the software that produced the numbers.
    pub versions: BTreeMap<String, String>,
}

/// Counts of the evaluated data.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DatasetSummary {
    pub name: String,
    pub interactions: usize,
    pub users: usize,
    /// Catalog size: items with at least one interaction before any protocol filtering.
    pub items: usize,
    /// Interactions the protocol kept (e.g. positives only).
    pub protocol_interactions: usize,
}

/// One model's results: means over folds in `metrics`, each fold in `per_fold`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelResult {
    /// Algorithm name.
    pub model: String,
    /// The spec that ran (presets resolved to their concrete spec).
    pub spec: String,
    /// The preset name when the model was asked for by preset (`rating-best`, `ranking-best`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preset: Option<String>,
    pub params: serde_json::Value,
    pub metrics: BTreeMap<String, f64>,
    /// Standard deviation over folds (multi-fold protocols only).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metrics_std: BTreeMap<String, f64>,
    /// Wall seconds of one fit (mean over folds).
    pub fit_seconds: f64,
    /// Wall seconds to predict or rank the test set (mean over folds).
    pub predict_seconds: f64,
    /// Rating protocols: test pairs whose user or item had no training data (mean over folds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub impossible_predictions: Option<f64>,
    pub per_fold: Vec<FoldResult>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segments: Option<Segments>,
}

/// One fold's results.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FoldResult {
    pub fold: usize,
    pub train: usize,
    pub test: usize,
    /// Users evaluated (ranking) or test pairs predicted (rating).
    pub evaluated: usize,
    pub metrics: BTreeMap<String, f64>,
    pub fit_seconds: f64,
    pub predict_seconds: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub impossible_predictions: Option<u64>,
}
