//! Alert rules and their evaluation into serialisable [`Alert`] records. No I/O: the caller
//! (the server, `kindred monitor`) logs them, posts them to a webhook or shows them.
//!
//! Default rules ([`default_rules`]): PSI above 0.25 (the "major shift" reading) on item
//! popularity, user activity and the event-type mix; bot-like users' share of events above 5%;
//! duplicate rate above 1%; current volume per day below half or above twice the reference's.
//! The value distribution is not watched by default: ratings of MovieLens-style data drift with
//! the catalogue and a default alert on them would mostly be noise.

use serde::{Deserialize, Serialize};

use super::control::{ControlChart, ControlRule, ControlViolation};
use super::psi::PSI_MAJOR;
use super::quality::QualityCounters;
use super::window::{DriftReport, TimeSpan};

/// A quality counter a rule can watch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QualityCounter {
    DuplicateRate,
    BotEventShare,
    BotUsers,
    /// Current events per day / reference events per day.
    VolumeRatio,
    /// The sum of the caller's missing-field counts over the window's events.
    MissingFieldRate,
    /// The sum of the caller's invalid-field counts over the window's events.
    InvalidFieldRate,
}

/// One alert rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AlertRule {
    /// PSI of the named distribution above `max`.
    Psi { distribution: String, max: f64 },
    /// A quality counter below `min` or above `max`.
    Quality {
        counter: QualityCounter,
        min: Option<f64>,
        max: Option<f64>,
    },
}

/// What tripped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    Drift,
    Quality,
    ControlChart,
    /// A threshold on the server's online metrics (fallback share, latency, CTR).
    Online,
    /// A retrain kept inactive because it scored worse than the live version on the live
    /// version's holdout.
    QualityGate,
    /// A feature's distribution at serving differs from the one the live version was trained
    /// with.
    FeatureSkew,
}

/// One tripped rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    pub kind: AlertKind,
    /// What was measured: a distribution, a counter, a chart's name.
    pub subject: String,
    pub value: f64,
    /// The limit it crossed.
    pub limit: f64,
    /// The window measured (for a control chart, none).
    pub window: Option<TimeSpan>,
    pub message: String,
}

/// The rules described in the module doc.
pub fn default_rules() -> Vec<AlertRule> {
    let psi = |name: &str| AlertRule::Psi {
        distribution: name.to_owned(),
        max: PSI_MAJOR,
    };
    vec![
        psi("item_popularity"),
        psi("user_activity"),
        psi("event_type"),
        AlertRule::Quality {
            counter: QualityCounter::BotEventShare,
            min: None,
            max: Some(0.05),
        },
        AlertRule::Quality {
            counter: QualityCounter::DuplicateRate,
            min: None,
            max: Some(0.01),
        },
        AlertRule::Quality {
            counter: QualityCounter::VolumeRatio,
            min: Some(0.5),
            max: Some(2.0),
        },
    ]
}

fn counter_value(
    counter: QualityCounter,
    current: &QualityCounters,
    reference: &QualityCounters,
) -> Option<f64> {
    let per_event = |sum: u64| (current.events > 0).then(|| sum as f64 / current.events as f64);
    match counter {
        QualityCounter::DuplicateRate => Some(current.duplicate_rate),
        QualityCounter::BotEventShare => Some(current.bot_event_share),
        QualityCounter::BotUsers => Some(current.bot_users as f64),
        QualityCounter::VolumeRatio => (reference.events_per_day > 0.0)
            .then(|| current.events_per_day / reference.events_per_day),
        QualityCounter::MissingFieldRate => per_event(current.missing_fields.values().sum()),
        QualityCounter::InvalidFieldRate => per_event(current.invalid_fields.values().sum()),
    }
}

fn counter_name(counter: QualityCounter) -> &'static str {
    match counter {
        QualityCounter::DuplicateRate => "duplicate_rate",
        QualityCounter::BotEventShare => "bot_event_share",
        QualityCounter::BotUsers => "bot_users",
        QualityCounter::VolumeRatio => "volume_ratio",
        QualityCounter::MissingFieldRate => "missing_field_rate",
        QualityCounter::InvalidFieldRate => "invalid_field_rate",
    }
}

/// The alerts `rules` raise on a drift report and the quality counters of its two windows. A
/// PSI rule on a distribution without a PSI (too few observations, or absent) raises nothing.
pub fn evaluate(
    rules: &[AlertRule],
    drift: &DriftReport,
    current: &QualityCounters,
    reference: &QualityCounters,
) -> Vec<Alert> {
    let mut alerts = Vec::new();
    for rule in rules {
        match rule {
            AlertRule::Psi { distribution, max } => {
                let Some(psi) = drift.get(distribution).and_then(|d| d.psi) else {
                    continue;
                };
                if psi > *max {
                    alerts.push(Alert {
                        kind: AlertKind::Drift,
                        subject: distribution.clone(),
                        value: psi,
                        limit: *max,
                        window: Some(drift.windows.current),
                        message: format!(
                            "{distribution} drifted: PSI {psi:.3} > {max} against the reference window"
                        ),
                    });
                }
            }
            AlertRule::Quality { counter, min, max } => {
                let Some(value) = counter_value(*counter, current, reference) else {
                    continue;
                };
                let name = counter_name(*counter);
                let crossed = match (min, max) {
                    (Some(lo), _) if value < *lo => Some((*lo, "<")),
                    (_, Some(hi)) if value > *hi => Some((*hi, ">")),
                    _ => None,
                };
                if let Some((limit, sign)) = crossed {
                    alerts.push(Alert {
                        kind: AlertKind::Quality,
                        subject: name.to_owned(),
                        value,
                        limit,
                        window: Some(current.window),
                        message: format!("{name} {value:.4} {sign} {limit}"),
                    });
                }
            }
        }
    }
    alerts
}

/// One alert per violation of a control chart named `chart_name`.
pub fn control_alerts(
    chart_name: &str,
    chart: &ControlChart,
    violations: &[ControlViolation],
) -> Vec<Alert> {
    violations
        .iter()
        .map(|v| {
            let (limit, what) = match v.rule {
                ControlRule::BeyondThreeSigma if v.value < chart.centre => {
                    (chart.lower_limit, "below the lower 3-sigma limit")
                }
                ControlRule::BeyondThreeSigma => {
                    (chart.upper_limit, "above the upper 3-sigma limit")
                }
                ControlRule::TwoOfThreeBeyondTwoSigma => {
                    (chart.centre, "2 of 3 points beyond 2 sigma")
                }
                ControlRule::FourOfFiveBeyondOneSigma => {
                    (chart.centre, "4 of 5 points beyond 1 sigma")
                }
                ControlRule::EightOnOneSide => (chart.centre, "8 points on one side of the centre"),
            };
            Alert {
                kind: AlertKind::ControlChart,
                subject: chart_name.to_owned(),
                value: v.value,
                limit,
                window: None,
                message: format!(
                    "{chart_name} point {} = {:.4}: {what} (centre {:.4}, sigma {:.4})",
                    v.index, v.value, chart.centre, chart.sigma
                ),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitoring::psi::Binned;
    use crate::monitoring::window::{DistributionDrift, Windows};
    use std::collections::BTreeMap;

    fn counters(
        events: usize,
        per_day: f64,
        duplicate_rate: f64,
        bot_share: f64,
    ) -> QualityCounters {
        QualityCounters {
            window: TimeSpan {
                start: 0,
                end: 86_400,
            },
            events,
            users: 10,
            items: 10,
            events_per_day: per_day,
            events_per_hour: vec![],
            duplicate_events: 0,
            duplicate_rate,
            bot_threshold: 50.0,
            bot_users: 0,
            bot_event_share: bot_share,
            missing_fields: BTreeMap::new(),
            invalid_fields: BTreeMap::new(),
        }
    }

    fn drift(psi: Option<f64>) -> DriftReport {
        let span = TimeSpan { start: 0, end: 1 };
        DriftReport {
            windows: Windows {
                reference: span,
                current: span,
            },
            reference_events: 0,
            current_events: 0,
            distributions: vec![DistributionDrift {
                name: "item_popularity".to_owned(),
                psi,
                level: None,
                reference_observations: 0.0,
                current_observations: 0.0,
                bins: Binned {
                    labels: vec![],
                    reference: vec![],
                    current: vec![],
                },
            }],
        }
    }

    #[test]
    fn rules_trip_above_their_limits_only() {
        let rules = default_rules();
        let reference = counters(7000, 1000.0, 0.0, 0.0);
        let quiet = evaluate(
            &rules,
            &drift(Some(0.2)),
            &counters(1000, 1000.0, 0.01, 0.05),
            &reference,
        );
        assert!(quiet.is_empty(), "{quiet:?}");
        assert!(evaluate(
            &rules,
            &drift(None),
            &counters(1000, 1000.0, 0.0, 0.0),
            &reference
        )
        .is_empty());
        let loud = evaluate(
            &rules,
            &drift(Some(0.3)),
            &counters(1000, 400.0, 0.02, 0.2),
            &reference,
        );
        let subjects: Vec<&str> = loud.iter().map(|a| a.subject.as_str()).collect();
        assert_eq!(
            subjects,
            [
                "item_popularity",
                "bot_event_share",
                "duplicate_rate",
                "volume_ratio"
            ]
        );
        assert_eq!(loud[3].limit, 0.5);
        assert!((loud[3].value - 0.4).abs() < 1e-12);
        assert_eq!(loud[0].kind, AlertKind::Drift);
        let json = serde_json::to_string(&loud[0]).unwrap();
        assert!(json.contains("\"kind\":\"drift\""), "{json}");
        let rules_json = serde_json::to_string(&rules).unwrap();
        let back: Vec<AlertRule> = serde_json::from_str(&rules_json).unwrap();
        assert_eq!(back, rules);
    }

    #[test]
    fn control_violations_become_alerts() {
        let chart = ControlChart::from_baseline(&[0.30, 0.32, 0.34, 0.36, 0.38]).unwrap();
        let series = [0.30, 0.32, 0.34, 0.36, 0.38, 0.24];
        let alerts = control_alerts("ndcg@10", &chart, &chart.violations(&series, 5, false));
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].limit, chart.lower_limit);
        assert!(
            alerts[0].message.contains("below the lower"),
            "{}",
            alerts[0].message
        );
    }
}
