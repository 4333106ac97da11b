//! What an experiment is, as its creator writes it: variants (each a model version and/or a
//! named rank config, with a traffic weight), the share of users in the experiment, the salt
//! of the assignment hash, and the metrics decided up front (success first, then guardrails),
//! the attribution window, the CUPED pre-period and the planned size for the sequential test.
//!
//! Validation here covers what the definition alone can tell (names, weights, metric syntax);
//! whether the named model versions and rank configs exist is checked against the registry and
//! the server's configuration when the experiment is created (see `experiments::validate_refs`).

use std::collections::BTreeSet;

use kindred_core::{Error, Result};
use kindred_stats::experiment::Allocation;
use serde::{Deserialize, Serialize};

/// Default attribution window: a day.
pub const DEFAULT_ATTRIBUTION_WINDOW_SECONDS: i64 = 86_400;

/// One arm of an experiment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VariantDefinition {
    pub name: String,
    /// The model version that scores this arm's lists (None: the live version).
    #[serde(default)]
    pub model_version: Option<String>,
    /// The named rank config of this arm's lists (None: the request's, else the default).
    #[serde(default)]
    pub rank: Option<String>,
    /// Relative share of the experiment's users (positive; need not sum to 1).
    pub weight: f64,
}

/// An experiment definition (the body of `POST /v1/experiments`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExperimentDefinition {
    pub name: String,
    /// The first variant is the control.
    pub variants: Vec<VariantDefinition>,
    /// Salt of the assignment hash (default: the name), so experiments assign independently.
    #[serde(default)]
    pub salt: Option<String>,
    /// Share of all users in the experiment, in (0, 1]; the others get the default lists.
    #[serde(default = "full_traffic")]
    pub traffic: f64,
    /// The metric the verdict is about: a column (`click_any`, `purchase`, `exposures`) or a
    /// ratio `name=numerator/denominator` (`ctr=click/impressions`).
    pub success_metric: String,
    /// Metrics that must not get worse, in the same form.
    #[serde(default)]
    pub guardrail_metrics: Vec<String>,
    /// Feedback on an item counts for the list that showed it at most this long before.
    #[serde(default = "default_window")]
    pub attribution_window_seconds: i64,
    /// Length of the pre-period before the start whose feedback gives CUPED covariates.
    #[serde(default)]
    pub pre_period_seconds: Option<i64>,
    /// Users per variant the experiment is planned to reach (tunes the sequential test).
    #[serde(default)]
    pub planned_users_per_variant: Option<u64>,
    /// Two-sided significance level.
    #[serde(default = "default_alpha")]
    pub alpha: f64,
}

/// A definition error naming the field and the value.
fn bad(field: &str, value: impl std::fmt::Display, message: impl std::fmt::Display) -> Error {
    Error::InvalidInput(format!("{field} = {value}: {message}"))
}

fn full_traffic() -> f64 {
    1.0
}

fn default_window() -> i64 {
    DEFAULT_ATTRIBUTION_WINDOW_SECONDS
}

fn default_alpha() -> f64 {
    0.05
}

/// Columns an analysis builds per user besides the per-event-type ones.
pub const EXPOSURES: &str = "exposures";
pub const IMPRESSIONS: &str = "impressions";

/// A column named by a metric, as the attribution computes it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Column {
    Exposures,
    Impressions,
    /// Attributed events of this type per user.
    Count(String),
    /// 1 when the user has at least one attributed event of this type.
    Any(String),
}

impl Column {
    fn parse(name: &str) -> Result<Column> {
        kindred_store::check_id("metric column", name)?;
        if name.starts_with("pre_") {
            return Err(bad(
                "metric",
                name.to_owned(),
                "pre_ columns are CUPED covariates, filled in from the pre-period",
            ));
        }
        Ok(match name {
            EXPOSURES => Column::Exposures,
            IMPRESSIONS => Column::Impressions,
            _ => match name.strip_suffix("_any") {
                Some(event) if !event.is_empty() => Column::Any(event.to_owned()),
                _ => Column::Count(name.to_owned()),
            },
        })
    }

    /// The event type this column counts, if any.
    pub fn event_type(&self) -> Option<&str> {
        match self {
            Column::Count(t) | Column::Any(t) => Some(t),
            _ => None,
        }
    }

    /// The column's name in observations.
    pub fn name(&self) -> String {
        match self {
            Column::Exposures => EXPOSURES.to_owned(),
            Column::Impressions => IMPRESSIONS.to_owned(),
            Column::Count(t) => t.clone(),
            Column::Any(t) => format!("{t}_any"),
        }
    }
}

/// The columns a metric request reads (`click_any`, or `ctr=click/impressions`).
pub fn metric_columns(request: &str) -> Result<Vec<Column>> {
    match request.split_once('=') {
        Some((name, ratio)) => {
            kindred_store::check_id("metric name", name)?;
            let (num, den) = ratio.split_once('/').ok_or_else(|| {
                bad(
                    "metric",
                    request.to_owned(),
                    "a ratio metric is name=numerator/denominator",
                )
            })?;
            Ok(vec![Column::parse(num)?, Column::parse(den)?])
        }
        None => Ok(vec![Column::parse(request)?]),
    }
}

impl ExperimentDefinition {
    /// The salt of the assignment hash.
    pub fn salt(&self) -> &str {
        self.salt.as_deref().unwrap_or(&self.name)
    }

    /// Success metric first, then guardrails.
    pub fn metrics(&self) -> Vec<String> {
        std::iter::once(self.success_metric.clone())
            .chain(self.guardrail_metrics.iter().cloned())
            .collect()
    }

    /// Every column the metrics read, without repeats.
    pub fn columns(&self) -> Result<BTreeSet<Column>> {
        let mut out = BTreeSet::new();
        for metric in self.metrics() {
            out.extend(metric_columns(&metric)?);
        }
        Ok(out)
    }

    /// The designed weights, in variant order.
    pub fn weights(&self) -> Vec<(String, f64)> {
        self.variants
            .iter()
            .map(|v| (v.name.clone(), v.weight))
            .collect()
    }

    /// The assignment of users to variants.
    pub fn allocation(&self) -> Result<Allocation> {
        Allocation::new(&self.weights())
    }

    /// The variant named `name`.
    pub fn variant(&self, name: &str) -> Option<&VariantDefinition> {
        self.variants.iter().find(|v| v.name == name)
    }

    /// Checks everything the definition alone can tell; errors name the field.
    pub fn validate(&self) -> Result<()> {
        kindred_store::check_id("experiment name", &self.name)?;
        if let Some(salt) = &self.salt {
            kindred_store::check_id("salt", salt)?;
        }
        if self.variants.len() < 2 {
            return Err(bad(
                "variants",
                self.variants.len().to_string(),
                "an experiment needs at least two variants (the first is the control)",
            ));
        }
        let mut names = BTreeSet::new();
        for (i, v) in self.variants.iter().enumerate() {
            kindred_store::check_id(&format!("variants[{i}].name"), &v.name)?;
            if !names.insert(v.name.as_str()) {
                return Err(bad(
                    &format!("variants[{i}].name"),
                    v.name.clone(),
                    "is used by two variants",
                ));
            }
            if !(v.weight.is_finite() && v.weight > 0.0) {
                return Err(bad(
                    &format!("variants[{i}].weight"),
                    v.weight.to_string(),
                    "must be a positive number",
                ));
            }
            if let Some(version) = &v.model_version {
                kindred_store::check_id(&format!("variants[{i}].model_version"), version)?;
            }
            if let Some(rank) = &v.rank {
                kindred_store::check_id(&format!("variants[{i}].rank"), rank)?;
            }
        }
        if !(self.traffic > 0.0 && self.traffic <= 1.0) {
            return Err(bad(
                "traffic",
                self.traffic.to_string(),
                "must be in (0, 1]",
            ));
        }
        if self.attribution_window_seconds < 0 {
            return Err(bad(
                "attribution_window_seconds",
                self.attribution_window_seconds.to_string(),
                "must not be negative",
            ));
        }
        if let Some(pre) = self.pre_period_seconds {
            if pre <= 0 {
                return Err(bad(
                    "pre_period_seconds",
                    pre.to_string(),
                    "must be positive",
                ));
            }
        }
        if self.planned_users_per_variant == Some(0) {
            return Err(bad(
                "planned_users_per_variant",
                "0".to_owned(),
                "must be positive",
            ));
        }
        if !(self.alpha > 0.0 && self.alpha < 0.5) {
            return Err(bad("alpha", self.alpha.to_string(), "must be in (0, 0.5)"));
        }
        let mut metric_names = BTreeSet::new();
        for metric in self.metrics() {
            metric_columns(&metric).map_err(|e| bad("metrics", metric.clone(), e.to_string()))?;
            let name = metric.split_once('=').map_or(metric.as_str(), |(n, _)| n);
            // A ratio's name becomes a column of the report; it must not shadow a real one.
            if !metric_names.insert(name.to_owned()) {
                return Err(bad(
                    "metrics",
                    metric.clone(),
                    "is named twice (success and guardrail metrics must differ)",
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn two_arms() -> ExperimentDefinition {
        serde_json::from_value(serde_json::json!({
            "name": "e",
            "variants": [
                {"name": "control", "weight": 1},
                {"name": "treatment", "model_version": "v2", "weight": 1}
            ],
            "success_metric": "ctr=click/impressions",
            "guardrail_metrics": ["purchase"]
        }))
        .unwrap()
    }

    #[test]
    fn defaults_and_columns() {
        let d = two_arms();
        d.validate().unwrap();
        assert_eq!(d.salt(), "e");
        assert_eq!(d.traffic, 1.0);
        assert_eq!(
            d.attribution_window_seconds,
            DEFAULT_ATTRIBUTION_WINDOW_SECONDS
        );
        let columns: Vec<String> = d.columns().unwrap().iter().map(Column::name).collect();
        assert_eq!(columns, ["impressions", "click", "purchase"]);
        assert_eq!(
            metric_columns("click_any").unwrap(),
            [Column::Any("click".into())]
        );
    }

    #[test]
    fn bad_definitions_name_the_field() {
        let check = |edit: &dyn Fn(&mut ExperimentDefinition), needle: &str| {
            let mut d = two_arms();
            edit(&mut d);
            let err = d.validate().unwrap_err().to_string();
            assert!(err.contains(needle), "{err} lacks {needle}");
        };
        check(
            &|d| d.variants[1].name = "control".into(),
            "variants[1].name",
        );
        check(&|d| d.variants[0].weight = 0.0, "variants[0].weight");
        check(&|d| d.variants.truncate(1), "at least two variants");
        check(&|d| d.traffic = 1.5, "traffic");
        check(
            &|d| d.success_metric = "ctr=click".into(),
            "numerator/denominator",
        );
        check(
            &|d| d.guardrail_metrics = vec!["ctr=a/b".into()],
            "named twice",
        );
        check(&|d| d.success_metric = "pre_click".into(), "covariates");
        check(&|d| d.alpha = 0.7, "alpha");
        check(&|d| d.name = String::new(), "experiment name is empty");
    }
}
