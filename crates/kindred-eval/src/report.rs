//! The evaluation result format written by `kindred eval --json`: stable field
//! names that scripts, benchmarks and reports depend on.

use std::collections::BTreeMap;
use std::path::PathBuf;

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
    /// Paired comparisons of each later model against the first one (the baseline), on the
    /// same users / test pairs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub comparisons: Vec<Comparison>,
    /// `kindred tune` only: every trial of the search, in the order they ran.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trials: Vec<TrialRecord>,
    /// `kindred tune` only: what was searched and how.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tuning: Option<TuningSummary>,
    /// `kindred eval --rank`: the ranking-layer config every list was re-ranked with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rank: Option<serde_json::Value>,
    /// Versions of the software that produced the numbers.
    pub versions: BTreeMap<String, String>,
}

/// A paired comparison of `model` against `baseline` on one metric: the difference of the means
/// (model - baseline) with a paired bootstrap confidence interval and a paired test.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Comparison {
    /// Label of the baseline result (its spec).
    pub baseline: String,
    /// Label of the compared result (its spec).
    pub model: String,
    pub metric: String,
    /// True when lower values are better (rmse, mae).
    pub lower_is_better: bool,
    /// Metric of `model` minus metric of `baseline`.
    pub difference: f64,
    /// Confidence interval of the difference (paired bootstrap, percentile).
    pub ci: [f64; 2],
    /// Confidence level of `ci`, e.g. 0.95.
    pub level: f64,
    /// Two-sided p-value of the paired test named in `test`.
    pub p_value: f64,
    pub test: String,
    /// Paired units (users or test pairs) the comparison rests on.
    pub n: usize,
    /// `better`, `worse` or `no significant difference` (for `model` against `baseline`).
    pub verdict: String,
}

/// One trial of a hyperparameter search.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TrialRecord {
    /// Outer fold whose training data the trial was validated on.
    pub fold: usize,
    /// Trial number within that fold's search, from 0.
    pub trial: usize,
    /// The full model spec that was fitted.
    pub spec: String,
    pub params: serde_json::Value,
    /// Successive halving rung (0 for methods without rungs).
    #[serde(default)]
    pub rung: usize,
    /// Validation value of the tuned metric (None when the trial failed).
    pub score: Option<f64>,
    pub seconds: f64,
    /// `complete`, `pruned` (stopped by successive halving) or `failed`.
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// How a `kindred tune` run searched.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TuningSummary {
    pub family: String,
    /// `random`, `tpe` or `halving`.
    pub method: String,
    /// The metric validated on, and whether lower is better.
    pub metric: String,
    pub lower_is_better: bool,
    /// How the validation split was carved from each outer training set (a protocol spec).
    pub validation_protocol: String,
    /// Trial budget per outer fold, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_trials: Option<usize>,
    /// Time budget in seconds for the whole search, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_seconds: Option<f64>,
    /// The configuration chosen on each outer fold (validation data only).
    pub chosen_per_fold: Vec<String>,
    /// The configuration written for `kindred train --model` (fold 1's choice).
    pub chosen: String,
    pub seconds: f64,
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
    /// The preset name when the model was asked for by preset (`movielens-rating`, `movielens-ranking`).
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
    /// 95% bootstrap confidence intervals of the metrics (resampling users for ranking
    /// protocols, test pairs for rating protocols), pooled over folds.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metrics_ci: BTreeMap<String, [f64; 2]>,
    /// Ranking protocols: metric name (`ndcg`, `precision`, `recall`, `map`, `mrr`, `hit`) ->
    /// its value at K = 1, 2, ..., up to the curve length (50 by default).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub curves: BTreeMap<String, Vec<f64>>,
    /// Ranking protocols: how popular the recommended items are against the test items.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub popularity_bias: Option<PopularityBias>,
    /// `kindred eval --rank`: share of the top-k items of all evaluated lists each source
    /// supplied (`model:<name>`, `fold-in:<name>`, `segment:<column>=<value>`, `trending`,
    /// `popular`, `latest`, `pinned`, `relaxed:<constraint>:<source>`); shares sum to 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rank_sources: Option<BTreeMap<String, f64>>,
    /// Iterative models: the per-epoch training loss (and validation metric when the model
    /// measures one), as reported through the progress callback.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub learning_curve: Vec<EpochPoint>,
    /// `--export-recs`: the file this model's top-K lists were written to (one per model when
    /// several are evaluated, named after the given path).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recs_file: Option<PathBuf>,
    /// Per-unit values kept in memory for paired comparisons; never written.
    #[serde(skip)]
    pub per_unit: Option<PerUnit>,
}

/// Distribution of item popularity among recommendations versus among test interactions and
/// training interactions. Items are bucketed by training popularity rank into equal-width
/// buckets of the popularity-sorted catalog (bucket 0 holds the most popular items).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PopularityBias {
    /// Human label of each bucket (e.g. `top 10%`).
    pub buckets: Vec<String>,
    /// Share of recommended slots falling in each bucket (sums to 1).
    pub recommended: Vec<f64>,
    /// Share of relevant test interactions falling in each bucket.
    pub test: Vec<f64>,
    /// Share of training interactions falling in each bucket.
    pub train: Vec<f64>,
}

/// One epoch of one fit.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EpochPoint {
    pub fold: usize,
    pub epoch: usize,
    pub loss: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation: Option<f64>,
}

/// The per-unit values behind a result, aligned across models evaluated under the same
/// protocol: unit j is the same (fold, user) or (fold, test pair) for every model.
#[derive(Debug, Clone, Default)]
pub struct PerUnit {
    /// Metric name -> one value per unit. For rating protocols the vectors hold squared errors
    /// (`rmse`, aggregated as the root of the mean) and absolute errors (`mae`).
    pub values: BTreeMap<String, Vec<f64>>,
    /// Identity of each unit: (fold, user or test-row index), for alignment checks.
    pub keys: Vec<(u32, u32)>,
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
    /// The spec fitted on this fold when it differs by fold (`kindred tune`'s nested choices,
    /// `auto`'s choice on this fold's training rows).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<String>,
    /// How `auto` chose on this fold's training rows (see `kindred_eval::auto::Selection`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selection: Option<serde_json::Value>,
}
