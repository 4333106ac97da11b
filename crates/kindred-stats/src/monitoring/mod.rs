//! Monitoring of a live recommender's data (issue 8): drift between a reference window and the
//! current one measured by the population stability index, data-quality counters, control
//! charts over offline metrics across retrains, and alert rules that turn all of them into
//! serialisable alerts. Pure functions over events the caller hands in; no I/O.
//!
//! [`monitor`] runs the whole window report: windows, drift, quality, default or given rules.

pub mod alerts;
pub mod control;
pub mod psi;
pub mod quality;
pub mod window;

use std::collections::BTreeMap;

use kindred_core::Result;
use serde::{Deserialize, Serialize};

pub use alerts::{
    control_alerts, default_rules, evaluate, Alert, AlertKind, AlertRule, QualityCounter,
};
pub use control::{ControlChart, ControlRule, ControlViolation};
pub use psi::{psi, Binned, PsiLevel};
pub use quality::{quality_counters, QualityConfig, QualityCounters};
pub use window::{
    drift_report, events_from_interactions, DriftReport, FeedbackEvent, TimeSpan, WindowConfig,
    Windows,
};

/// Drift, quality of both windows and the alerts they raise.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MonitorReport {
    pub drift: DriftReport,
    pub reference_quality: QualityCounters,
    pub current_quality: QualityCounters,
    pub alerts: Vec<Alert>,
}

/// The monitoring report of the windows ending at `end` (default: after the latest event);
/// `None` without events.
pub fn monitor(
    events: &[FeedbackEvent],
    windows: &WindowConfig,
    quality: &QualityConfig,
    rules: &[AlertRule],
    end: Option<i64>,
) -> Result<Option<MonitorReport>> {
    let Some(spans) = Windows::ending_at(events, windows, end)? else {
        return Ok(None);
    };
    let drift = drift_report(events, spans, windows)?;
    let counters = |span| quality_counters(events, span, quality, BTreeMap::new(), BTreeMap::new());
    let reference_quality = counters(spans.reference);
    let current_quality = counters(spans.current);
    let alerts = evaluate(rules, &drift, &current_quality, &reference_quality);
    Ok(Some(MonitorReport {
        drift,
        reference_quality,
        current_quality,
        alerts,
    }))
}
