//! The ranking-layer configuration (`kindred eval --rank CONFIG`): which re-rankers run over a
//! model's top-scored candidates and how strongly. Read from TOML with unknown keys rejected, so
//! a misspelt knob is an error instead of a silently ignored setting; every error names the file,
//! the line, the column and the dotted key path (`diversity.mmr_lambda`).

use std::path::Path;

use kindred_core::{ConfigLocation, Error, Result};
use serde::{Deserialize, Serialize};

pub use crate::date_unit::DateUnit;
use crate::exploration::ExplorationConfig;
use crate::freshness::FreshnessConfig;
pub use kindred_models::ranking::fm::{
    FmFeature, FmLoss, FmParams, NegativeSampling, DEFAULT_HOUR_BUCKETS,
};

/// Everything the ranking layer does between a model's scores and the final list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RankConfig {
    /// How many of the model's top-scored items are re-ranked (the pool the final list is
    /// drawn from). Larger pools allow more diversity at the price of relevance and time.
    #[serde(default = "default_candidates")]
    pub candidates: usize,
    /// The categorical item feature whose values are an item's categories (MovieLens:
    /// `genres`). Unset: every categorical item column, concatenated, as `diversity@k` uses.
    #[serde(default)]
    pub category_column: Option<String>,
    #[serde(default)]
    pub diversity: DiversityConfig,
    #[serde(default)]
    pub calibration: CalibrationConfig,
    #[serde(default)]
    pub popularity: PopularityConfig,
    /// What the relevance term blends: the model's score, item columns (margin, year), novelty.
    #[serde(default)]
    pub objectives: ObjectivesConfig,
    /// A learned second stage (factorisation machine) that re-scores the candidate pool with
    /// user, item and context features before re-ranking. Absent: the model's scores are used.
    #[serde(default)]
    pub second_stage: Option<SecondStageConfig>,
    #[serde(default)]
    pub freshness: FreshnessConfig,
    /// Which items may be shown at all (hard) and which are preferred (soft); see `filters.rs`.
    #[serde(default)]
    pub filters: FiltersConfig,
    /// Items placed at fixed positions (`[[pin]]` tables), see `pipeline.rs`.
    #[serde(default, rename = "pin", skip_serializing_if = "Vec::is_empty")]
    pub pins: Vec<PinConfig>,
    /// The fallback chain that fills lists the model cannot fill, see `fallback.rs`.
    #[serde(default)]
    pub fallback: FallbackConfig,
    /// Which positions an exploration policy may change and how (see `exploration/config.rs`).
    #[serde(default)]
    pub exploration: ExplorationConfig,
}

fn default_candidates() -> usize {
    200
}

impl Default for RankConfig {
    fn default() -> Self {
        Self {
            candidates: default_candidates(),
            category_column: None,
            diversity: DiversityConfig::default(),
            calibration: CalibrationConfig::default(),
            popularity: PopularityConfig::default(),
            objectives: ObjectivesConfig::default(),
            second_stage: None,
            freshness: FreshnessConfig::default(),
            filters: FiltersConfig::default(),
            pins: Vec::new(),
            fallback: FallbackConfig::default(),
            exploration: ExplorationConfig::default(),
        }
    }
}

/// Maximal marginal relevance and per-category caps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiversityConfig {
    /// MMR trade-off in [0, 1]: 0 keeps the model's order, 1 only avoids similar items.
    #[serde(default)]
    pub mmr_lambda: f64,
    /// How similar two items are, from their category sets.
    #[serde(default)]
    pub similarity: Similarity,
    /// At most this many items of one category in a list (None: no cap). When no remaining
    /// candidate fits the caps the list is filled from the rest, so it never comes out short.
    #[serde(default)]
    pub max_per_category: Option<usize>,
}

impl Default for DiversityConfig {
    fn default() -> Self {
        Self {
            mmr_lambda: 0.0,
            similarity: Similarity::Cosine,
            max_per_category: None,
        }
    }
}

/// Similarity of two items' category sets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Similarity {
    /// |A ∩ B| / sqrt(|A| |B|): the measure `diversity@k` is one minus, so MMR optimises what
    /// the metric reports.
    #[default]
    Cosine,
    /// |A ∩ B| / |A ∪ B|.
    Jaccard,
}

/// Calibrated recommendations (Steck 2018): the list's category mix follows the user's history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CalibrationConfig {
    /// Steck's lambda in [0, 1]: weight of the KL miscalibration against relevance.
    #[serde(default)]
    pub weight: f64,
    /// Steck's alpha in (0, 1]: the list distribution is smoothed as (1-α)q + αp so that the KL
    /// divergence stays finite when the list misses a category of the history.
    #[serde(default = "default_smoothing")]
    pub smoothing: f64,
}

fn default_smoothing() -> f64 {
    0.01
}

impl Default for CalibrationConfig {
    fn default() -> Self {
        Self {
            weight: 0.0,
            smoothing: default_smoothing(),
        }
    }
}

/// A long-tail boost: relevance is lowered in proportion to an item's popularity.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PopularityConfig {
    /// Subtracted from the min-max normalised relevance, times the item's log-popularity
    /// scaled to [0, 1] (ln(1 + users) / ln(1 + users of the most popular item)). 0: off.
    #[serde(default)]
    pub penalty: f64,
}

/// `[filters]`: hard constraints (never violated) and soft preferences (relaxed, in a documented
/// order, only when they would leave the list short). See the `filters` module.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FiltersConfig {
    /// Hard: never recommend what the user already has (training items and request history).
    #[serde(default = "default_true")]
    pub exclude_seen: bool,
    /// The categorical item column `include_categories` / `exclude_categories` and per-request
    /// categories refer to (unset: the top-level `category_column`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category_column: Option<String>,
    /// Soft: prefer items having at least one of these categories.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include_categories: Vec<String>,
    /// Soft (relaxed last): avoid items having any of these categories.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude_categories: Vec<String>,
    /// Hard: a numeric item column; a non-zero value hides the item.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hide_column: Option<String>,
    /// Hard: numeric item column, Unix seconds from which the item may be shown (missing: always).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub available_from_column: Option<String>,
    /// Hard: numeric item column, Unix seconds until which the item may be shown (missing: always).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub available_until_column: Option<String>,
    /// Soft (relaxed first): numeric item date column of the date window (MovieLens: `year`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date_column: Option<String>,
    /// Unit of `date_column` and of `date_after` / `date_before`.
    #[serde(default)]
    pub date_unit: DateUnit,
    /// Only items dated at or after this (in `date_unit`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date_after: Option<f64>,
    /// Only items dated at or before this (in `date_unit`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date_before: Option<f64>,
    /// Only items dated at most this many days before the request time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age_days: Option<f64>,
}

fn default_true() -> bool {
    true
}

impl Default for FiltersConfig {
    fn default() -> Self {
        Self {
            exclude_seen: true,
            category_column: None,
            include_categories: Vec::new(),
            exclude_categories: Vec::new(),
            hide_column: None,
            available_from_column: None,
            available_until_column: None,
            date_column: None,
            date_unit: DateUnit::default(),
            date_after: None,
            date_before: None,
            max_age_days: None,
        }
    }
}

impl FiltersConfig {
    /// True when a date window is configured.
    pub fn has_date_window(&self) -> bool {
        self.date_after.is_some() || self.date_before.is_some() || self.max_age_days.is_some()
    }
}

/// One `[[pin]]`: an item (by external id) or the best item flagged by a column, placed at a
/// fixed 1-based position whenever it passes the hard filters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PinConfig {
    /// External id of the pinned item.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item: Option<String>,
    /// Numeric item column; the best-scored item with a non-zero value is pinned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
    /// 1-based position in the list.
    pub position: usize,
}

/// `[fallback]`: how the chain after the model is built.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FallbackConfig {
    /// Categorical user feature whose value defines a user's segment (ML-1M: `occupation`,
    /// `gender`, `age_group`). Unset: no segment popularity stage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment_column: Option<String>,
    /// Half-life in days of the time decay behind `trending`.
    #[serde(default = "default_half_life_days")]
    pub trending_half_life_days: f64,
    /// Numeric item date column ordering `latest` (unset: each item's first interaction).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest_column: Option<String>,
    /// Unit of `latest_column`.
    #[serde(default)]
    pub latest_unit: DateUnit,
}

fn default_half_life_days() -> f64 {
    7.0
}

impl Default for FallbackConfig {
    fn default() -> Self {
        Self {
            segment_column: None,
            trending_half_life_days: default_half_life_days(),
            latest_column: None,
            latest_unit: DateUnit::default(),
        }
    }
}

/// Multi-objective scoring: the re-ranker's relevance term is
/// `relevance * norm(score) + Σ boost.weight * norm(column) + novelty * novelty_u(i)
///  - popularity.penalty * pop(i)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectivesConfig {
    /// Weight of the model's min-max normalised score (1: today's behaviour).
    #[serde(default = "default_relevance")]
    pub relevance: f64,
    /// Personal novelty: 1 - cosine(item's categories, the category distribution of the
    /// user's history), i.e. how unlike what this user consumed an item is (Vargas & Castells
    /// 2011, distance-based novelty). Distinct from `popularity.penalty`, which is the global,
    /// popularity-based novelty and the only knob for it. Needs item categories.
    #[serde(default)]
    pub novelty: f64,
    /// Business value and freshness: numeric item columns added with a weight.
    #[serde(default)]
    pub boost: Vec<BoostConfig>,
}

fn default_relevance() -> f64 {
    1.0
}

impl Default for ObjectivesConfig {
    fn default() -> Self {
        Self {
            relevance: default_relevance(),
            novelty: 0.0,
            boost: Vec::new(),
        }
    }
}

/// One numeric item column (margin, year, stock) added to relevance. Values are min-max
/// normalised over the catalog to [0, 1]; items without a value get 0. A negative weight demotes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BoostConfig {
    pub column: String,
    pub weight: f64,
}

/// The learned second stage: a factorisation machine trained per training set on its positives
/// and sampled negatives, then blended with the first-stage score over the candidate pool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecondStageConfig {
    /// Latent dimension of the pairwise interactions.
    #[serde(default = "default_factors")]
    pub factors: usize,
    #[serde(default = "default_epochs")]
    pub epochs: usize,
    /// Adagrad base step size.
    #[serde(default = "default_learning_rate")]
    pub learning_rate: f64,
    /// L2 penalty on the weights and factors touched by each step.
    #[serde(default = "default_regularisation")]
    pub regularisation: f64,
    /// Sampled negatives per positive.
    #[serde(default = "default_negatives")]
    pub negatives: usize,
    #[serde(default)]
    pub sampling: NegativeSampling,
    #[serde(default)]
    pub loss: FmLoss,
    /// Final score = (1 - weight) * norm(first stage) + weight * norm(FM), both min-max
    /// normalised over the pool. 1: the FM alone orders the pool.
    #[serde(default = "default_blend")]
    pub weight: f64,
    /// Which feature groups the FM sees.
    #[serde(default = "default_features")]
    pub features: Vec<FmFeature>,
    /// Hour-of-day buckets (24 / buckets hours each, UTC); 24 = one per hour.
    #[serde(default = "default_hour_buckets")]
    pub hour_buckets: usize,
}

fn default_factors() -> usize {
    FmParams::default().factors
}
fn default_epochs() -> usize {
    FmParams::default().epochs
}
fn default_learning_rate() -> f64 {
    FmParams::default().learning_rate
}
fn default_regularisation() -> f64 {
    FmParams::default().regularisation
}
fn default_negatives() -> usize {
    FmParams::default().negatives
}
fn default_blend() -> f64 {
    0.5
}
fn default_hour_buckets() -> usize {
    DEFAULT_HOUR_BUCKETS
}
fn default_features() -> Vec<FmFeature> {
    FmFeature::ALL.to_vec()
}

impl From<&SecondStageConfig> for FmParams {
    fn from(c: &SecondStageConfig) -> Self {
        Self {
            factors: c.factors,
            epochs: c.epochs,
            learning_rate: c.learning_rate,
            regularisation: c.regularisation,
            negatives: c.negatives,
            sampling: c.sampling,
            loss: c.loss,
            ..FmParams::default()
        }
    }
}

impl Default for SecondStageConfig {
    fn default() -> Self {
        Self {
            factors: default_factors(),
            epochs: default_epochs(),
            learning_rate: default_learning_rate(),
            regularisation: default_regularisation(),
            negatives: default_negatives(),
            sampling: NegativeSampling::default(),
            loss: FmLoss::default(),
            weight: default_blend(),
            features: default_features(),
            hour_buckets: default_hour_buckets(),
        }
    }
}

impl RankConfig {
    /// Parses TOML text; `origin` names where it came from in errors.
    pub fn from_toml_str(text: &str, origin: &Path) -> Result<Self> {
        let config: Self = toml::from_str(text).map_err(|e| {
            ConfigLocation::at_offset(text, e.span().map(|s| s.start))
                .error(origin.display(), e.message())
        })?;
        config.validate().map_err(|(key, message)| {
            ConfigLocation::of_key(text, key).error(origin.display(), message)
        })?;
        Ok(config)
    }

    /// Reads and parses a TOML rank config file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::from_toml_str(&text, path)
    }
    /// True when some stage re-orders the model's candidate pool (diversity, calibration,
    /// popularity penalty, objectives, freshness, second stage). Otherwise the list is the
    /// model's best items in order, and the pipeline selects only as many as the list needs
    /// instead of `candidates` (on ML-1M serving, a third of a request's CPU).
    pub fn reorders_pool(&self) -> bool {
        let plain = RankConfig::default();
        self.diversity != plain.diversity
            || self.calibration != plain.calibration
            || self.popularity != plain.popularity
            || self.objectives != plain.objectives
            || self.freshness.is_active()
            || self.second_stage.is_some()
    }

    /// True when a re-ranker needs item categories.
    pub fn needs_categories(&self) -> bool {
        self.diversity.mmr_lambda > 0.0
            || self.diversity.max_per_category.is_some()
            || self.calibration.weight > 0.0
            || self.objectives.novelty > 0.0
    }

    /// Range checks; on failure the dotted key path and what is wrong.
    fn validate(&self) -> std::result::Result<(), (&'static str, String)> {
        let unit = |key: &'static str, v: f64| {
            if (0.0..=1.0).contains(&v) {
                Ok(())
            } else {
                Err((key, format!("must be in [0, 1], got {v}")))
            }
        };
        if self.candidates == 0 {
            return Err(("candidates", "must be at least 1".to_owned()));
        }
        unit("diversity.mmr_lambda", self.diversity.mmr_lambda)?;
        if self.diversity.max_per_category == Some(0) {
            return Err((
                "diversity.max_per_category",
                "must be at least 1".to_owned(),
            ));
        }
        unit("calibration.weight", self.calibration.weight)?;
        let alpha = self.calibration.smoothing;
        if !(alpha > 0.0 && alpha <= 1.0) {
            return Err((
                "calibration.smoothing",
                format!("must be in (0, 1], got {alpha}"),
            ));
        }
        let penalty = self.popularity.penalty;
        if !(penalty.is_finite() && penalty >= 0.0) {
            return Err((
                "popularity.penalty",
                format!("must be finite and >= 0, got {penalty}"),
            ));
        }
        if self.category_column.as_deref() == Some("") {
            return Err(("category_column", "must not be empty".to_owned()));
        }
        self.freshness.validate()?;
        self.exploration.validate()?;
        let objectives = &self.objectives;
        let non_negative = |key: &'static str, v: f64| {
            if v.is_finite() && v >= 0.0 {
                Ok(())
            } else {
                Err((key, format!("must be finite and >= 0, got {v}")))
            }
        };
        non_negative("objectives.relevance", objectives.relevance)?;
        non_negative("objectives.novelty", objectives.novelty)?;
        for boost in &objectives.boost {
            if boost.column.is_empty() {
                return Err(("objectives.boost", "column must not be empty".to_owned()));
            }
            if !boost.weight.is_finite() {
                return Err((
                    "objectives.boost",
                    format!(
                        "weight of `{}` must be finite, got {}",
                        boost.column, boost.weight
                    ),
                ));
            }
        }
        if let Some(stage) = &self.second_stage {
            let positive = |key: &'static str, v: usize| {
                if v >= 1 {
                    Ok(())
                } else {
                    Err((key, "must be at least 1".to_owned()))
                }
            };
            positive("second_stage.factors", stage.factors)?;
            positive("second_stage.negatives", stage.negatives)?;
            if !(stage.learning_rate.is_finite() && stage.learning_rate > 0.0) {
                return Err((
                    "second_stage.learning_rate",
                    format!("must be finite and > 0, got {}", stage.learning_rate),
                ));
            }
            non_negative("second_stage.regularisation", stage.regularisation)?;
            unit("second_stage.weight", stage.weight)?;
            if !(1..=24).contains(&stage.hour_buckets) || 24 % stage.hour_buckets != 0 {
                return Err((
                    "second_stage.hour_buckets",
                    format!(
                        "must divide 24 (1, 2, 3, 4, 6, 8, 12, 24), got {}",
                        stage.hour_buckets
                    ),
                ));
            }
            if stage.features.is_empty() {
                return Err((
                    "second_stage.features",
                    "must name at least one feature group".to_owned(),
                ));
            }
        }
        self.validate_rules()
    }

    /// True when the relevance term needs the user's history category profile (the same
    /// distribution calibration targets).
    pub fn needs_profile(&self) -> bool {
        self.calibration.weight > 0.0 || self.objectives.novelty > 0.0
    }

    /// Range checks of `[filters]`, `[[pin]]` and `[fallback]`.
    fn validate_rules(&self) -> std::result::Result<(), (&'static str, String)> {
        let f = &self.filters;
        let columns = [
            ("filters.category_column", &f.category_column),
            ("filters.hide_column", &f.hide_column),
            ("filters.available_from_column", &f.available_from_column),
            ("filters.available_until_column", &f.available_until_column),
            ("filters.date_column", &f.date_column),
            ("fallback.segment_column", &self.fallback.segment_column),
            ("fallback.latest_column", &self.fallback.latest_column),
        ];
        for (key, column) in columns {
            if column.as_deref() == Some("") {
                return Err((key, "must not be empty".to_owned()));
            }
        }
        for (key, value) in [
            ("filters.date_after", f.date_after),
            ("filters.date_before", f.date_before),
        ] {
            if value.is_some_and(|v| !v.is_finite()) {
                return Err((key, "must be finite".to_owned()));
            }
        }
        if let (Some(after), Some(before)) = (f.date_after, f.date_before) {
            if after > before {
                return Err((
                    "filters.date_before",
                    format!("must not be before filters.date_after ({after}), got {before}"),
                ));
            }
        }
        if f.max_age_days.is_some_and(|d| !(d.is_finite() && d >= 0.0)) {
            return Err(("filters.max_age_days", "must be finite and >= 0".to_owned()));
        }
        if f.has_date_window() && f.date_column.is_none() {
            return Err((
                "filters.date_column",
                "a date window (date_after, date_before, max_age_days) needs filters.date_column"
                    .to_owned(),
            ));
        }
        let hl = self.fallback.trending_half_life_days;
        if !(hl.is_finite() && hl > 0.0) {
            return Err((
                "fallback.trending_half_life_days",
                format!("must be finite and > 0, got {hl}"),
            ));
        }
        let mut positions = std::collections::BTreeSet::new();
        for pin in &self.pins {
            if pin.item.is_some() == pin.column.is_some() {
                return Err(("pin", "set exactly one of `item` and `column`".to_owned()));
            }
            if pin.position == 0 {
                return Err(("pin", "position is 1-based, got 0".to_owned()));
            }
            if !positions.insert(pin.position) {
                return Err(("pin", format!("two pins share position {}", pin.position)));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<RankConfig> {
        RankConfig::from_toml_str(text, Path::new("rank.toml"))
    }

    #[test]
    fn full_config_parses() {
        let c = parse(
            "candidates = 100\ncategory_column = \"genres\"\n[diversity]\nmmr_lambda = 0.3\nsimilarity = \"jaccard\"\nmax_per_category = 3\n[calibration]\nweight = 0.5\nsmoothing = 0.05\n[popularity]\npenalty = 0.2\n",
        )
        .unwrap();
        assert_eq!(c.candidates, 100);
        assert_eq!(c.category_column.as_deref(), Some("genres"));
        assert_eq!(c.diversity.mmr_lambda, 0.3);
        assert_eq!(c.diversity.similarity, Similarity::Jaccard);
        assert_eq!(c.diversity.max_per_category, Some(3));
        assert_eq!(c.calibration.weight, 0.5);
        assert_eq!(c.calibration.smoothing, 0.05);
        assert_eq!(c.popularity.penalty, 0.2);
        assert!(c.needs_categories());
    }

    #[test]
    fn empty_config_is_the_identity() {
        let c = parse("").unwrap();
        assert_eq!(c, RankConfig::default());
        assert!(!c.needs_categories());
    }

    #[test]
    fn unknown_key_names_file_line_and_path() {
        let err = parse("candidates = 50\n[diversity]\nmmr_lamda = 0.3\n")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("rank.toml:3:"), "{err}");
        assert!(err.contains("diversity.mmr_lamda"), "{err}");
        assert!(err.contains("unknown field"), "{err}");
    }

    #[test]
    fn wrong_type_names_the_key() {
        let err = parse("[calibration]\nweight = \"high\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("rank.toml:2:"), "{err}");
        assert!(err.contains("calibration.weight"), "{err}");
    }

    #[test]
    fn out_of_range_values_name_the_key() {
        let err = parse("[diversity]\nmmr_lambda = 1.5\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("rank.toml:2:"), "{err}");
        assert!(err.contains("diversity.mmr_lambda"), "{err}");
        assert!(err.contains("[0, 1]"), "{err}");
        let err = parse("candidates = 0\n").unwrap_err().to_string();
        assert!(err.contains("rank.toml:1:1: key `candidates`"), "{err}");
        let err = parse("[calibration]\nsmoothing = 0\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("calibration.smoothing"), "{err}");
        let err = parse("[popularity]\npenalty = -1\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("popularity.penalty"), "{err}");
    }

    #[test]
    fn rules_sections_parse() {
        let c = parse(
            "[filters]\nexclude_seen = false\ncategory_column = \"genres\"\ninclude_categories = [\"Drama\"]\nexclude_categories = [\"Horror\", \"War\"]\nhide_column = \"hidden\"\navailable_from_column = \"from\"\navailable_until_column = \"until\"\ndate_column = \"year\"\ndate_unit = \"year\"\ndate_after = 1990\ndate_before = 2000\nmax_age_days = 3650\n[fallback]\nsegment_column = \"occupation\"\ntrending_half_life_days = 3.5\nlatest_column = \"year\"\nlatest_unit = \"year\"\n[[pin]]\nitem = \"2858\"\nposition = 1\n[[pin]]\ncolumn = \"promoted\"\nposition = 4\n",
        )
        .unwrap();
        let f = &c.filters;
        assert!(!f.exclude_seen);
        assert_eq!(f.exclude_categories, vec!["Horror", "War"]);
        assert_eq!(f.date_unit, DateUnit::Year);
        assert_eq!((f.date_after, f.date_before), (Some(1990.0), Some(2000.0)));
        assert_eq!(f.max_age_days, Some(3650.0));
        assert_eq!(c.fallback.segment_column.as_deref(), Some("occupation"));
        assert_eq!(c.fallback.trending_half_life_days, 3.5);
        assert_eq!(c.pins.len(), 2);
        assert_eq!(c.pins[1].column.as_deref(), Some("promoted"));
        assert_eq!(c.pins[1].position, 4);
        // Defaults: seen items excluded, a one-week trending half-life, no pins.
        let d = parse("").unwrap();
        assert!(d.filters.exclude_seen && d.pins.is_empty());
        assert_eq!(d.fallback.trending_half_life_days, 7.0);
        // A config survives the JSON round trip results record it with.
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(serde_json::from_str::<RankConfig>(&json).unwrap(), c);
    }

    #[test]
    fn exploration_parses_and_bad_values_name_file_line_and_key() {
        let config = parse(
            "[exploration]\npolicy = \"epsilon-greedy\"\nepsilon = 0.2\nslots = [2, 8]\n\
             max_explored = 1\npool = 20\nseed = 3\n",
        )
        .unwrap();
        assert!(config.exploration.explores());
        assert_eq!(config.exploration.slots, Some([2, 8]));
        assert!(!parse("").unwrap().exploration.explores());
        for (text, at) in [
            (
                "[exploration]\npolicy = \"epsilon-greedy\"\nepsilon = -0.1\n",
                "rank.toml:3:1: key `exploration.epsilon`",
            ),
            (
                "[exploration]\nslots = [5, 2]\n",
                "rank.toml:2:1: key `exploration.slots`",
            ),
            (
                "[exploration]\nslots = [0, 2]\n",
                "rank.toml:2:1: key `exploration.slots`",
            ),
            (
                "[exploration]\nmax_explored = 0\n",
                "rank.toml:2:1: key `exploration.max_explored`",
            ),
            (
                "[exploration]\nlog_share = 0\n",
                "rank.toml:2:1: key `exploration.log_share`",
            ),
            ("[exploration]\npolicy = \"sometimes\"\n", "rank.toml:2:"),
            (
                "[exploration]\npolicy = \"linucb\"\nfeatures = [\"bias\", \"colour\"]\n",
                "rank.toml:3:1: key `exploration.features`",
            ),
            (
                "[exploration]\npolicy = \"linear-thompson\"\nalpha = -1\n",
                "rank.toml:3:1: key `exploration.alpha`",
            ),
            (
                "[exploration]\npolicy = \"thompson\"\nfeatures = [\"score\"]\n",
                "rank.toml:3:1: key `exploration.features`",
            ),
            ("[exploration]\nepsilom = 0.1\n", "rank.toml:2:"),
        ] {
            let err = parse(text).unwrap_err().to_string();
            assert!(err.contains(at), "{text}: {err}");
        }
    }

    #[test]
    fn bad_rules_name_file_line_and_key() {
        let err = parse("[filters]\ndate_after = 1990\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("filters.date_column"), "{err}");
        let err = parse("[filters]\nexclude_categorys = [\"x\"]\n")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("rank.toml:2:"), "{err}");
        assert!(err.contains("filters.exclude_categorys"), "{err}");
        let err =
            parse("[filters]\ndate_column = \"year\"\ndate_after = 2000\ndate_before = 1990\n")
                .unwrap_err()
                .to_string();
        assert!(
            err.contains("rank.toml:4:1: key `filters.date_before`"),
            "{err}"
        );
        let err = parse("[fallback]\ntrending_half_life_days = 0\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("rank.toml:2:1: key `fallback.trending_half_life_days`"),
            "{err}"
        );
        let err = parse("[[pin]]\nitem = \"a\"\ncolumn = \"b\"\nposition = 1\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("rank.toml:1:1: key `pin`") && err.contains("exactly one"),
            "{err}"
        );
        let err = parse("[[pin]]\nitem = \"a\"\nposition = 0\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("1-based"), "{err}");
        let err =
            parse("[[pin]]\nitem = \"a\"\nposition = 2\n[[pin]]\nitem = \"b\"\nposition = 2\n")
                .unwrap_err()
                .to_string();
        assert!(err.contains("share position 2"), "{err}");
        let err = parse("[[pin]]\nitem = \"a\"\n").unwrap_err().to_string();
        assert!(err.contains("position"), "{err}");
        let err = parse("[filters]\ndate_unit = \"days\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("filters.date_unit"), "{err}");
    }

    #[test]
    fn objectives_and_second_stage_parse() {
        let c = parse(
            "[objectives]\nrelevance = 0.8\nnovelty = 0.1\n[[objectives.boost]]\ncolumn = \"margin\"\nweight = 0.2\n[[objectives.boost]]\ncolumn = \"year\"\nweight = -0.1\n[second_stage]\nfactors = 8\nepochs = 3\nnegatives = 2\nsampling = \"popularity\"\nloss = \"bpr\"\nweight = 0.7\nfeatures = [\"user\", \"item\", \"hour\"]\nhour_buckets = 4\n",
        )
        .unwrap();
        assert_eq!(c.objectives.relevance, 0.8);
        assert_eq!(c.objectives.novelty, 0.1);
        assert_eq!(
            c.objectives.boost,
            vec![
                BoostConfig {
                    column: "margin".into(),
                    weight: 0.2
                },
                BoostConfig {
                    column: "year".into(),
                    weight: -0.1
                },
            ]
        );
        assert!(c.needs_categories() && c.needs_profile());
        let stage = c.second_stage.unwrap();
        assert_eq!(stage.factors, 8);
        assert_eq!(stage.epochs, 3);
        assert_eq!(stage.negatives, 2);
        assert_eq!(stage.sampling, NegativeSampling::Popularity);
        assert_eq!(stage.loss, FmLoss::Bpr);
        assert_eq!(stage.weight, 0.7);
        assert_eq!(
            stage.features,
            vec![FmFeature::User, FmFeature::Item, FmFeature::Hour]
        );
        assert_eq!(stage.hour_buckets, 4);
        // An empty section is the defaults.
        let c = parse("[second_stage]\n").unwrap();
        assert_eq!(c.second_stage, Some(SecondStageConfig::default()));
    }

    #[test]
    fn bad_objectives_and_second_stage_name_the_key() {
        let err = parse("[second_stage]\nweight = 2\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("rank.toml:2:") && err.contains("second_stage.weight"),
            "{err}"
        );
        let err = parse("[second_stage]\nhour_buckets = 5\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("second_stage.hour_buckets"), "{err}");
        let err = parse("[second_stage]\nfeatures = [\"weather\"]\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("rank.toml:2:") && err.contains("second_stage.features"),
            "{err}"
        );
        let err = parse("[objectives]\nnovelty = -1\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("objectives.novelty"), "{err}");
        let err = parse("[[objectives.boost]]\ncolumn = \"margin\"\nweigth = 1\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("rank.toml:3:") && err.contains("unknown field"),
            "{err}"
        );
    }

    #[test]
    fn missing_file_is_an_io_error_naming_it() {
        let err = RankConfig::from_file("/nonexistent/rank.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("/nonexistent/rank.toml"), "{err}");
    }
}
