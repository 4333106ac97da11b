//! The record of one `auto` selection: what was tried on which validation data, what each
//! family scored and cost, why some were never tried, and what won. It is written into the
//! model's manifest, the eval JSON (per fold) and the server's version record, and read back by
//! the report and the dashboard.

use serde::{Deserialize, Serialize};

use kindred_models::Estimate;

/// One selection, start to finish.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Selection {
    /// `ranking` or `rating`.
    pub task: String,
    /// The validation metric and its direction.
    pub metric: String,
    pub lower_is_better: bool,
    pub budget_seconds: f64,
    /// The protocol that carved the validation rows out of the training rows.
    pub validation: String,
    /// The training rows' shape the costs were predicted for.
    pub users: usize,
    pub items: usize,
    pub interactions: usize,
    /// The winning spec, its family and its validation score.
    pub chosen: String,
    pub chosen_family: String,
    pub chosen_score: f64,
    /// Wall time of screening and tuning (what the budget bounds).
    pub search_seconds: f64,
    /// Wall time of the winner's refit on all training rows (outside the budget).
    pub refit_seconds: f64,
    /// Every family considered, tried or not.
    pub families: Vec<FamilyTrace>,
    /// Every fit on the validation split, in the order they ran.
    pub trials: Vec<AutoTrial>,
}

/// One family's part in a selection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FamilyTrace {
    pub family: String,
    /// `skipped` (never fitted; see `reason`), `screened` (fitted at its defaults), `tuned`
    /// (searched beyond its defaults) or `failed` (no trial produced a score).
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The descriptor's prediction for a fit at the defaults (in the cheaper form, when
    /// `reason` names one).
    pub predicted_seconds: f64,
    pub predicted_bytes: f64,
    pub trials: usize,
    /// Wall time of this family's trials.
    pub seconds: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub best_spec: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub best_score: Option<f64>,
}

impl FamilyTrace {
    /// A family that was never fitted.
    pub fn skipped(family: &str, estimate: Estimate, reason: String) -> Self {
        Self {
            family: family.to_owned(),
            status: "skipped".to_owned(),
            reason: Some(reason),
            predicted_seconds: estimate.seconds,
            predicted_bytes: estimate.bytes,
            trials: 0,
            seconds: 0.0,
            best_spec: None,
            best_score: None,
        }
    }
}

/// One fit on the validation split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AutoTrial {
    pub family: String,
    /// `screen` (the family's defaults) or `tune` (a configuration its search proposed).
    pub phase: String,
    pub spec: String,
    /// Validation value of the metric (None when the fit failed).
    pub score: Option<f64>,
    pub seconds: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Selection {
    /// The selection a stored trace describes (a manifest's, a fold's or a version record's
    /// `selection`); None for JSON of another shape.
    pub fn from_json(trace: &serde_json::Value) -> Option<Self> {
        Self::deserialize(trace).ok()
    }

    /// One line: what won, on what, after how much search.
    pub fn summary(&self) -> String {
        let tried = self.families.iter().filter(|f| f.trials > 0).count();
        let skipped = self
            .families
            .iter()
            .filter(|f| f.status == "skipped")
            .count();
        format!(
            "auto chose {} ({} {:.4} on validation {}); {} trials of {tried} families in {:.0} s of a {:.0} s budget, families skipped: {skipped}; refit {:.1} s",
            self.chosen,
            self.metric,
            self.chosen_score,
            self.validation,
            self.trials.len(),
            self.search_seconds,
            self.budget_seconds,
            self.refit_seconds
        )
    }
}
