//! The quality gate: a retrain the server trains to make live (on request or on schedule)
//! becomes live only when it is not worse than the live version, on the live version's own
//! holdout, by more than a tolerance. Otherwise it stays registered and inactive, an alert
//! names the metric and both values, and the version's `metrics.gate` keeps the reason for the
//! dashboard.
//!
//! "The same holdout": every version trained with offline evaluation saves the events it held
//! out (`holdout.json` beside its manifest). A candidate is fitted once more on its own data
//! minus those events and ranked for those users ([`metrics_on_holdout`]); the live version's
//! value is the one it recorded on the same events when it was trained. Because the events are
//! the live version's, a candidate trained on corrupted data (shuffled items, a broken
//! importer) is judged against what users really did, not against its own corrupted holdout.

use std::path::Path;

use kindred_core::{Error, Result};
use kindred_eval::holdout::{Holdout, OFFLINE_METRICS};
use kindred_store::ModelRecord;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The file of a version's artifact directory holding its held-out events.
pub const HOLDOUT_FILE: &str = "holdout.json";

/// `[training.gate]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GateConfig {
    /// Gate retrains the server makes live (default true). Needs `[training] evaluate`.
    pub enabled: bool,
    /// One of the offline metrics (`ndcg@10`, `recall@10`, `precision@10`, `map@10`,
    /// `coverage@10`); higher is better.
    pub metric: String,
    /// The largest relative drop accepted: 0.05 lets a candidate scoring 95% of the live
    /// version's value go live.
    pub tolerance: f64,
}

impl Default for GateConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            metric: "ndcg@10".into(),
            tolerance: 0.05,
        }
    }
}

impl GateConfig {
    /// Names the key that is wrong.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if !OFFLINE_METRICS.contains(&self.metric.as_str()) {
            return Err(format!(
                "training.gate.metric: `{}` is not one of {}",
                self.metric,
                OFFLINE_METRICS.join(", ")
            ));
        }
        if !(0.0..=1.0).contains(&self.tolerance) {
            return Err(format!(
                "training.gate.tolerance: {} is not a fraction in [0, 1]",
                self.tolerance
            ));
        }
        Ok(())
    }
}

/// What a candidate is judged against: the live version, its holdout and its value there.
#[derive(Debug, Clone)]
pub struct Reference {
    pub version: String,
    pub holdout: Holdout,
    pub value: f64,
}

impl Reference {
    /// The live version as a reference for `metric`, or why it cannot be one (trained without
    /// offline evaluation, before holdouts were saved, or its evaluation failed).
    pub fn of(live: &ModelRecord, metric: &str) -> std::result::Result<Self, String> {
        let version = &live.model.version;
        let value = live
            .model
            .metrics
            .get("offline")
            .and_then(|o| o.get(metric))
            .and_then(Value::as_f64)
            .ok_or_else(|| format!("the live version {version} recorded no offline {metric}"))?;
        let holdout = read_holdout(Path::new(&live.model.artifact))
            .map_err(|e| format!("the live version {version} has no readable holdout: {e}"))?;
        Ok(Self {
            version: version.clone(),
            holdout,
            value,
        })
    }
}

/// Writes `holdout` into a version's artifact directory.
pub fn save_holdout(dir: &Path, holdout: &Holdout) -> Result<()> {
    let path = dir.join(HOLDOUT_FILE);
    let json = serde_json::to_vec(holdout)
        .map_err(|e| Error::InvalidInput(format!("cannot encode the holdout: {e}")))?;
    std::fs::write(&path, json).map_err(|e| Error::io(&path, e))
}

/// Reads a version's held-out events.
pub fn read_holdout(dir: &Path) -> Result<Holdout> {
    let path = dir.join(HOLDOUT_FILE);
    let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
    serde_json::from_slice(&bytes).map_err(|e| Error::Model {
        path,
        message: format!("invalid holdout: {e}"),
    })
}

/// The gate's decision, kept as the candidate's `metrics.gate`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    pub passed: bool,
    pub metric: String,
    /// The version compared with, and its value on its holdout.
    pub live_version: String,
    pub live: f64,
    /// The candidate's value on the same holdout (absent when it could not be measured).
    pub candidate: Option<f64>,
    pub tolerance: f64,
    /// One sentence for the log, the alert and the dashboard.
    pub reason: String,
}

/// Judges a candidate whose metrics on the reference's holdout are `measured` (an error when
/// they could not be measured: the gate then keeps it inactive, saying why).
pub fn judge(
    config: &GateConfig,
    reference: &Reference,
    measured: std::result::Result<&Value, String>,
) -> Verdict {
    let metric = &config.metric;
    let floor = reference.value * (1.0 - config.tolerance);
    let candidate = measured
        .as_ref()
        .ok()
        .and_then(|m| m.get(metric.as_str()))
        .and_then(Value::as_f64);
    let (passed, reason) = match (candidate, &measured) {
        (Some(c), _) if c >= floor => (
            true,
            format!(
                "{metric} {c:.4} on the holdout of {} is within {:.0}% of its {:.4}",
                reference.version,
                config.tolerance * 100.0,
                reference.value
            ),
        ),
        (Some(c), _) => (
            false,
            format!(
                "{metric} {c:.4} on the holdout of {} is more than {:.0}% below its {:.4} \
                 (the least accepted is {floor:.4}); kept inactive",
                reference.version,
                config.tolerance * 100.0,
                reference.value
            ),
        ),
        (None, Err(e)) => (
            false,
            format!(
                "could not be measured on the holdout of {} ({e}); kept inactive",
                reference.version
            ),
        ),
        (None, Ok(_)) => (
            false,
            format!("the measurement has no {metric}; kept inactive"),
        ),
    };
    Verdict {
        passed,
        metric: metric.clone(),
        live_version: reference.version.clone(),
        live: reference.value,
        candidate,
        tolerance: config.tolerance,
        reason,
    }
}

/// The gate's verdict a version recorded, if it was gated.
pub fn recorded_verdict(record: &ModelRecord) -> Option<Verdict> {
    serde_json::from_value(record.model.metrics.get("gate")?.clone()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn reference(value: f64) -> Reference {
        Reference {
            version: "als-1".into(),
            holdout: Holdout::default(),
            value,
        }
    }

    #[test]
    fn a_candidate_within_the_tolerance_passes_and_one_below_does_not() {
        let config = GateConfig::default();
        let ok = judge(&config, &reference(0.2), Ok(&json!({"ndcg@10": 0.191})));
        assert!(ok.passed, "{}", ok.reason);
        let bad = judge(&config, &reference(0.2), Ok(&json!({"ndcg@10": 0.189})));
        assert!(!bad.passed);
        assert!(
            bad.reason.contains("ndcg@10 0.1890") && bad.reason.contains("0.2000"),
            "the reason names the metric and both values: {}",
            bad.reason
        );
        assert_eq!((bad.live, bad.candidate), (0.2, Some(0.189)));
    }

    #[test]
    fn a_candidate_that_cannot_be_measured_is_kept_inactive() {
        let v = judge(
            &GateConfig::default(),
            &reference(0.2),
            Err("no user left".into()),
        );
        assert!(!v.passed && v.reason.contains("no user left") && v.candidate.is_none());
    }

    #[test]
    fn the_config_names_a_bad_key() {
        let bad_metric = GateConfig {
            metric: "rmse".into(),
            ..GateConfig::default()
        };
        assert!(bad_metric
            .validate()
            .unwrap_err()
            .contains("training.gate.metric"));
        let bad_tolerance = GateConfig {
            tolerance: 2.0,
            ..GateConfig::default()
        };
        assert!(bad_tolerance
            .validate()
            .unwrap_err()
            .contains("training.gate.tolerance"));
    }
}
