//! Control charts over the offline metrics of retrained versions: is the version just trained as
//! good as the ones before it? Pure functions over registry records (`Store::list_models`); the
//! dashboard draws them and [`offline_alerts`] turns the newest version's violations into
//! monitoring alerts.
//!
//! One chart per (algorithm, metric) of `metrics.offline` (different algorithms sit at different
//! levels, so mixing them would flag every switch). Versions are taken oldest first.
//!
//! The baseline (phase I) is built from earlier versions only, never the newest: the first
//! [`MIN_BASELINE`] versions, then each following one (up to [`BASELINE_MAX`] in all) that lies
//! within 3 sigma of the chart of the baseline so far; a version outside is left out, so a bad
//! retrain does not widen the limits it is judged by. The baseline's mean and sample standard
//! deviation ([`kindred_stats::monitoring::ControlChart::from_baseline`], sigma floored at
//! [`MIN_SIGMA`]) give the centre and the 3-sigma limits, and every version from the
//! [`MIN_BASELINE`]-th on is checked against them with the Western Electric rules as that module
//! implements them. A series needs at least [`MIN_BASELINE`] + 1 versions to be charted.

use kindred_stats::monitoring::{control_alerts, Alert, ControlChart, ControlViolation};
use kindred_store::ModelRecord;
use serde::Serialize;

use super::OFFLINE_METRICS;

/// Fewest baseline versions a chart is built from.
pub const MIN_BASELINE: usize = 2;
/// Most baseline versions: later versions are monitored against the first ones, not against a
/// baseline that drifts along with them.
pub const BASELINE_MAX: usize = 10;

/// Smallest sigma a chart uses. Retrains on unchanged data reproduce their metrics exactly, and a
/// zero sigma would flag any later change at all; a ranking metric averaged over a few hundred
/// users moves by about 0.01 from sampling alone, so limits narrower than +-0.003 mean nothing.
pub const MIN_SIGMA: f64 = 1e-3;

/// One version's value on a chart.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChartPoint {
    pub version: String,
    pub created_at: i64,
    pub value: f64,
}

/// A control chart of one offline metric of one algorithm across its versions.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OfflineChart {
    pub algorithm: String,
    pub metric: String,
    /// Oldest first.
    pub points: Vec<ChartPoint>,
    /// Indices into `points` of the versions the limits were computed from.
    pub baseline: Vec<usize>,
    pub chart: ControlChart,
    /// Indices into `points`.
    pub violations: Vec<ControlViolation>,
}

impl OfflineChart {
    /// Stable name of the chart, used as the alert subject: `offline <metric> (<algorithm>)`.
    pub fn name(&self) -> String {
        format!("offline {} ({})", self.metric, self.algorithm)
    }
}

fn offline_value(record: &ModelRecord, metric: &str) -> Option<f64> {
    let v = record.model.metrics.get("offline")?.get(metric)?.as_f64()?;
    v.is_finite().then_some(v)
}

/// The chart of `values[..n]` with sigma floored at [`MIN_SIGMA`].
fn chart_of(values: &[f64], indices: &[usize]) -> Option<ControlChart> {
    let picked: Vec<f64> = indices.iter().map(|&i| values[i]).collect();
    let chart = ControlChart::from_baseline(&picked).ok()?;
    let sigma = chart.sigma.max(MIN_SIGMA);
    Some(ControlChart {
        sigma,
        lower_limit: chart.centre - 3.0 * sigma,
        upper_limit: chart.centre + 3.0 * sigma,
        ..chart
    })
}

/// The baseline (indices) and its chart, as the module doc describes; `None` for a series too
/// short to chart.
fn baseline_chart(values: &[f64]) -> Option<(Vec<usize>, ControlChart)> {
    if values.len() <= MIN_BASELINE {
        return None;
    }
    let mut baseline: Vec<usize> = (0..MIN_BASELINE).collect();
    let mut chart = chart_of(values, &baseline)?;
    for (i, &v) in values
        .iter()
        .enumerate()
        .take(values.len() - 1)
        .skip(MIN_BASELINE)
    {
        if baseline.len() == BASELINE_MAX {
            break;
        }
        if v >= chart.lower_limit && v <= chart.upper_limit {
            baseline.push(i);
            chart = chart_of(values, &baseline)?;
        }
    }
    Some((baseline, chart))
}

/// Control charts of every (algorithm, metric) series with enough versions, in first-seen
/// algorithm order and [`OFFLINE_METRICS`] order. `records` may come in any order.
pub fn offline_control_charts(records: &[ModelRecord]) -> Vec<OfflineChart> {
    let mut sorted: Vec<&ModelRecord> = records.iter().collect();
    sorted.sort_by(|a, b| {
        (a.model.created_at, &a.model.version).cmp(&(b.model.created_at, &b.model.version))
    });
    let mut algorithms: Vec<&str> = Vec::new();
    for r in &sorted {
        if !algorithms.contains(&r.model.algorithm.as_str()) {
            algorithms.push(&r.model.algorithm);
        }
    }
    let mut charts = Vec::new();
    for algorithm in algorithms {
        for metric in OFFLINE_METRICS {
            let points: Vec<ChartPoint> = sorted
                .iter()
                .filter(|r| r.model.algorithm == algorithm)
                .filter_map(|r| {
                    Some(ChartPoint {
                        version: r.model.version.clone(),
                        created_at: r.model.created_at,
                        value: offline_value(r, metric)?,
                    })
                })
                .collect();
            let values: Vec<f64> = points.iter().map(|p| p.value).collect();
            let Some((baseline, chart)) = baseline_chart(&values) else {
                continue;
            };
            let violations = chart.violations(&values, MIN_BASELINE, true);
            charts.push(OfflineChart {
                algorithm: algorithm.to_owned(),
                metric: metric.to_owned(),
                points,
                baseline,
                chart,
                violations,
            });
        }
    }
    charts
}

/// The most recently created version (ties broken by name), the one a training run just made.
pub fn newest_version(records: &[ModelRecord]) -> Option<String> {
    records
        .iter()
        .max_by(|a, b| {
            (a.model.created_at, &a.model.version).cmp(&(b.model.created_at, &b.model.version))
        })
        .map(|r| r.model.version.clone())
}

/// Alerts for the newest version in `records` (the one just trained): every chart rule it
/// violates on any offline metric, as [`kindred_stats::monitoring::control_alerts`] words them,
/// with the version named in the message. Older versions' violations are not repeated, so
/// calling this after each training run raises each problem once. Empty when the newest version
/// has no offline metrics or its series is too short to chart.
pub fn offline_alerts(records: &[ModelRecord]) -> Vec<Alert> {
    let Some(newest) = newest_version(records) else {
        return Vec::new();
    };
    let mut alerts = Vec::new();
    for chart in offline_control_charts(records) {
        let Some(last) = chart.points.len().checked_sub(1) else {
            continue;
        };
        if chart.points[last].version != newest {
            continue;
        }
        let mine: Vec<ControlViolation> = chart
            .violations
            .iter()
            .filter(|v| v.index == last)
            .copied()
            .collect();
        for mut alert in control_alerts(&chart.name(), &chart.chart, &mine) {
            alert.message = format!("{} (version {newest})", alert.message);
            alerts.push(alert);
        }
    }
    alerts
}

#[cfg(test)]
mod tests {
    use super::*;
    use kindred_stats::monitoring::{AlertKind, ControlRule};
    use kindred_store::NewModel;
    use serde_json::json;

    fn record(version: &str, algorithm: &str, created_at: i64, ndcg: Option<f64>) -> ModelRecord {
        let metrics = match ndcg {
            Some(v) => json!({"fit_seconds": 1.0, "offline": {"ndcg@10": v, "recall@10": 0.2}}),
            None => json!({"fit_seconds": 1.0}),
        };
        ModelRecord {
            model: NewModel {
                version: version.into(),
                algorithm: algorithm.into(),
                params: json!({}),
                metrics,
                artifact: "/tmp/a".into(),
                created_at,
            },
            live: false,
        }
    }

    /// Five normal retrains (NDCG 0.30..0.38 step 0.02: centre 0.34, sigma 0.0316228, limits
    /// 0.2451..0.4349 by hand), then `last`.
    fn series(last: f64) -> Vec<ModelRecord> {
        let mut records: Vec<ModelRecord> = [0.30, 0.32, 0.34, 0.36, 0.38]
            .iter()
            .enumerate()
            .map(|(i, &v)| record(&format!("als-{i}"), "als", 100 + i as i64, Some(v)))
            .collect();
        records.push(record("als-new", "als", 200, Some(last)));
        // A version without offline metrics and another algorithm's versions stay out of the
        // ALS chart.
        records.push(record("als-noeval", "als", 150, None));
        records.push(record("pop-1", "popularity", 160, Some(0.05)));
        records.push(record("pop-2", "popularity", 170, Some(0.05)));
        records
    }

    #[test]
    fn a_retrain_far_below_the_baseline_is_flagged() {
        let records = series(0.20);
        let charts = offline_control_charts(&records);
        let ndcg = charts
            .iter()
            .find(|c| c.algorithm == "als" && c.metric == "ndcg@10")
            .unwrap();
        assert_eq!(ndcg.points.len(), 6);
        assert_eq!(ndcg.baseline, [0, 1, 2, 3, 4]);
        assert!((ndcg.chart.centre - 0.34).abs() < 1e-12);
        assert!((ndcg.chart.lower_limit - 0.245_131_7).abs() < 1e-7);
        assert_eq!(ndcg.violations.len(), 1);
        assert_eq!(ndcg.violations[0].index, 5);
        assert_eq!(ndcg.violations[0].rule, ControlRule::BeyondThreeSigma);
        // recall@10 is flat at 0.2 on all six ALS versions: charted, nothing violated.
        let recall = charts
            .iter()
            .find(|c| c.algorithm == "als" && c.metric == "recall@10")
            .unwrap();
        assert!(recall.violations.is_empty());
        // Two popularity versions: one baseline point is too few, so no chart.
        assert!(charts.iter().all(|c| c.algorithm == "als"));

        let alerts = offline_alerts(&records);
        assert_eq!(alerts.len(), 1, "{alerts:?}");
        assert_eq!(alerts[0].kind, AlertKind::ControlChart);
        assert_eq!(alerts[0].subject, "offline ndcg@10 (als)");
        assert_eq!(alerts[0].value, 0.20);
        assert!((alerts[0].limit - 0.245_131_7).abs() < 1e-7);
        assert!(alerts[0].message.contains("below the lower 3-sigma limit"));
        assert!(alerts[0].message.ends_with("(version als-new)"));
    }

    #[test]
    fn a_normal_retrain_is_not_flagged() {
        let records = series(0.35);
        assert!(offline_control_charts(&records)
            .iter()
            .all(|c| c.violations.is_empty()));
        assert!(offline_alerts(&records).is_empty());
    }

    #[test]
    fn only_the_newest_version_alerts() {
        // The bad version is followed by a newer, normal one: the chart still marks it, the
        // alerts (for the newest version) do not repeat it.
        let mut records = series(0.20);
        records.push(record("als-newer", "als", 300, Some(0.34)));
        let charts = offline_control_charts(&records);
        let ndcg = charts.iter().find(|c| c.metric == "ndcg@10").unwrap();
        // Hand check: against the chart of 0.30, 0.32, 0.34, 0.36, 0.38 the 0.20 is out, so it
        // stays out of the baseline and the limits are those of the five normal versions.
        assert_eq!(ndcg.baseline, [0, 1, 2, 3, 4]);
        assert!((ndcg.chart.centre - 0.34).abs() < 1e-12);
        assert_eq!(ndcg.violations.len(), 1);
        assert_eq!(ndcg.points[ndcg.violations[0].index].version, "als-new");
        assert!(offline_alerts(&records).is_empty());
        assert!(offline_alerts(&[]).is_empty());
    }

    #[test]
    fn identical_retrains_do_not_make_a_zero_width_chart() {
        let records: Vec<ModelRecord> = [0.3, 0.3, 0.3, 0.302]
            .iter()
            .enumerate()
            .map(|(i, &v)| record(&format!("v{i}"), "als", i as i64, Some(v)))
            .collect();
        let charts = offline_control_charts(&records);
        let ndcg = charts.iter().find(|c| c.metric == "ndcg@10").unwrap();
        assert_eq!(ndcg.chart.sigma, MIN_SIGMA);
        assert!(ndcg.violations.is_empty(), "0.002 is within 3 * 0.001");
        let mut bad = records.clone();
        bad.push(record("v4", "als", 9, Some(0.296)));
        assert_eq!(
            offline_alerts(&bad).len(),
            1,
            "0.004 below is beyond 3 * 0.001"
        );
    }

    #[test]
    fn short_series_get_no_chart() {
        let records = [
            record("a", "als", 1, Some(0.3)),
            record("b", "als", 2, Some(0.1)),
        ];
        assert!(offline_control_charts(&records).is_empty());
        assert!(offline_alerts(&records).is_empty());
    }
}
