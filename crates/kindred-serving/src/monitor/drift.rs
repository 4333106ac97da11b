//! One monitoring pass: read the feedback of the reference + current windows from the store,
//! run `kindred_stats::monitoring::monitor` (PSI drift, data-quality counters, rules) on it,
//! judge the online metrics against their thresholds, and hand every alert to the sink.
//!
//! Feature drift: for each categorical or numeric user (item) feature column, the values of the
//! distinct users (items) active in the reference window against those active in the current
//! window (`user_feature:<column>`, `item_feature:<column>`), judged by `psi_max` like the
//! event distributions. A shift in who is active shows here even when event counts look normal.

use kindred_core::features::ColumnData;
use kindred_core::{Dataset, FeatureTable, InteractionsBuilder};
use kindred_stats::monitoring::psi::{quantile_bins, top_k_bins};
use kindred_stats::monitoring::window::DistributionDrift;
use kindred_stats::monitoring::{
    evaluate, monitor, Alert, AlertKind, AlertRule, DriftReport, FeedbackEvent, MonitorReport,
    PsiLevel, QualityConfig, QualityCounter, TimeSpan, WindowConfig, Windows,
};
use kindred_store::{Feedback, StoredFeedback};
use serde::Serialize;

use super::online::OnlineReport;
use crate::config::{MonitoringConfig, WindowEnd};

/// Lists a key must have served before its latency is judged.
pub const MIN_LISTS_FOR_LATENCY: u64 = 100;

/// What one pass found.
#[derive(Debug, Clone, Serialize)]
pub struct PassReport {
    /// Server clock when the pass ran (Unix seconds).
    pub at: i64,
    pub window_end: WindowEnd,
    /// Events read from the store for both windows.
    pub events_read: usize,
    /// True when the windows held more than `max_events` events (only the newest were read).
    pub truncated: bool,
    /// Drift, quality and rule alerts of the windows (None without events).
    pub report: Option<MonitorReport>,
    /// Alerts of the online-metric thresholds.
    pub online_alerts: Vec<Alert>,
    /// Alerts of features whose serving distribution differs from the live version's training
    /// distribution ([`super::skew`]).
    pub skew_alerts: Vec<Alert>,
    /// Ids of the alerts this pass raised that were not already firing.
    pub new_alert_ids: Vec<u64>,
    pub millis: u64,
}

/// The window and quality settings and the rules the config asks for.
pub fn settings(config: &MonitoringConfig) -> (WindowConfig, QualityConfig, Vec<AlertRule>) {
    let windows = WindowConfig {
        reference_seconds: config.reference_seconds,
        current_seconds: config.current_seconds,
        min_observations: config.min_observations,
        ..WindowConfig::default()
    };
    let quality = QualityConfig {
        min_bot_events: config.bot_min_events,
        ..QualityConfig::default()
    };
    let mut psi: Vec<(String, f64)> = ["item_popularity", "user_activity", "event_type"]
        .iter()
        .map(|d| ((*d).to_owned(), config.psi_max))
        .collect();
    for (name, max) in &config.psi_limits {
        match psi.iter_mut().find(|(d, _)| d == name) {
            Some(entry) => entry.1 = *max,
            None => psi.push((name.clone(), *max)),
        }
    }
    let mut rules: Vec<AlertRule> = psi
        .into_iter()
        .map(|(distribution, max)| AlertRule::Psi { distribution, max })
        .collect();
    rules.extend([
        AlertRule::Quality {
            counter: QualityCounter::BotEventShare,
            min: None,
            max: Some(config.bot_event_share_max),
        },
        AlertRule::Quality {
            counter: QualityCounter::DuplicateRate,
            min: None,
            max: Some(config.duplicate_rate_max),
        },
        AlertRule::Quality {
            counter: QualityCounter::VolumeRatio,
            min: Some(config.volume_ratio_min),
            max: Some(config.volume_ratio_max),
        },
    ]);
    (windows, quality, rules)
}

fn hash_str(s: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    s.hash(&mut h);
    h.finish()
}

/// Stored feedback as monitoring events (dense ids local to this pass; event ids hashed).
pub fn to_events(stored: &[StoredFeedback]) -> Vec<FeedbackEvent> {
    let mut ids = InteractionsBuilder::new();
    stored
        .iter()
        .map(|s| {
            let f = &s.feedback;
            FeedbackEvent {
                user: ids.intern_user(&f.user),
                item: ids.intern_item(&f.item),
                event: ids.event_type(&f.event_type),
                value: f.value.filter(|v| v.is_finite()),
                timestamp: f.timestamp,
                event_id: f.event_id.as_deref().map(hash_str),
            }
        })
        .collect()
}

/// The drift/quality report of `events` for windows ending at `end`.
pub fn window_report(
    events: &[FeedbackEvent],
    config: &MonitoringConfig,
    end: i64,
) -> kindred_core::Result<Option<MonitorReport>> {
    let (windows, quality, rules) = settings(config);
    monitor(events, &windows, &quality, &rules, Some(end))
}

/// Alerts of the online thresholds: fallback share above its maximum and CTR below its floor
/// once a key served `min_items` items, p99 latency above its maximum once it served
/// [`MIN_LISTS_FOR_LATENCY`] lists.
pub fn online_alerts(online: &[OnlineReport], config: &MonitoringConfig) -> Vec<Alert> {
    let mut alerts = Vec::new();
    for r in online {
        let key = format!(
            "{{model_version={},variant={}}}",
            r.key.model_version,
            r.key.variant.as_deref().unwrap_or("none")
        );
        let mut push = |metric: &str, value: f64, limit: f64, sign: &str| {
            alerts.push(Alert {
                kind: AlertKind::Online,
                subject: format!("{metric}{key}"),
                value,
                limit,
                window: None,
                message: format!("{metric} of {key} is {value:.4} {sign} {limit}"),
            });
        };
        if r.items >= config.min_items {
            if let Some(share) = r.fallback_share.filter(|s| *s > config.fallback_share_max) {
                push("fallback_share", share, config.fallback_share_max, ">");
            }
            if let (Some(ctr), Some(min)) = (r.ctr, config.ctr_min) {
                if ctr < min {
                    push("ctr", ctr, min, "<");
                }
            }
        }
        if r.lists >= MIN_LISTS_FOR_LATENCY {
            // Past the last histogram bound the p99 is unknown but certainly above any limit a
            // bucket can express: report it as infinite.
            let p99 = r.latency_p99_ms.unwrap_or(f64::INFINITY);
            if p99 > config.latency_p99_ms_max {
                push("latency_p99_ms", p99, config.latency_p99_ms_max, ">");
            }
        }
    }
    alerts
}

/// Where the windows end: the server clock, or one second after the latest event known.
pub fn window_end(config: &MonitoringConfig, now: i64, latest_event: Option<i64>) -> Option<i64> {
    match config.window_end {
        WindowEnd::Now => Some(now + 1),
        WindowEnd::LatestEvent => latest_event.map(|t| t + 1),
    }
}

/// PSI of each categorical or numeric column of `table` between the entities (`entity` picks
/// the user or the item of an event) active in the reference and in the current window.
pub fn feature_drift(
    stored: &[StoredFeedback],
    windows: Windows,
    table: &FeatureTable,
    entity: fn(&Feedback) -> &str,
    prefix: &str,
    config: &WindowConfig,
) -> kindred_core::Result<Vec<DistributionDrift>> {
    let active = |span: TimeSpan| {
        let mut rows: Vec<u32> = stored
            .iter()
            .filter(|s| span.contains(s.feedback.timestamp))
            .filter_map(|s| table.ids().get(entity(&s.feedback)))
            .collect();
        rows.sort_unstable();
        rows.dedup();
        rows
    };
    let (reference, current) = (active(windows.reference), active(windows.current));
    let mut out = Vec::new();
    for column in table.columns() {
        let bins = match &column.data {
            ColumnData::Categorical { vocab, values } => {
                let names = |rows: &[u32]| -> Vec<String> {
                    rows.iter()
                        .flat_map(|r| values[*r as usize].iter())
                        .map(|v| vocab.external(*v).to_owned())
                        .collect()
                };
                top_k_bins(&names(&reference), &names(&current), config.top_items)
            }
            ColumnData::Numeric(values) => {
                let numbers = |rows: &[u32]| -> Vec<f64> {
                    rows.iter()
                        .map(|r| f64::from(values[*r as usize]))
                        .filter(|v| v.is_finite())
                        .collect()
                };
                quantile_bins(&numbers(&reference), &numbers(&current), config.value_bins)
            }
            ColumnData::Text(_) | ColumnData::Dense { .. } => continue,
        };
        let (reference_observations, current_observations) = bins.totals();
        let enough =
            reference_observations.min(current_observations) >= config.min_observations as f64;
        let psi = if enough {
            Some(bins.psi(config.epsilon)?)
        } else {
            None
        };
        out.push(DistributionDrift {
            name: format!("{prefix}:{}", column.name),
            psi,
            level: psi.map(PsiLevel::of),
            reference_observations,
            current_observations,
            bins,
        });
    }
    Ok(out)
}

/// Adds the user and item feature drift of `dataset`'s tables to `report` and the alerts of
/// PSI above `psi_max` on them.
pub fn add_feature_drift(
    report: &mut MonitorReport,
    stored: &[StoredFeedback],
    dataset: &Dataset,
    config: &MonitoringConfig,
) -> kindred_core::Result<()> {
    let (windows, _, _) = settings(config);
    let spans = report.drift.windows;
    let mut found = Vec::new();
    if let Some(users) = dataset.user_features.as_deref() {
        found.extend(feature_drift(
            stored,
            spans,
            users,
            |f| &f.user,
            "user_feature",
            &windows,
        )?);
    }
    if let Some(items) = dataset.item_features.as_deref() {
        found.extend(feature_drift(
            stored,
            spans,
            items,
            |f| &f.item,
            "item_feature",
            &windows,
        )?);
    }
    let rules: Vec<AlertRule> = found
        .iter()
        .map(|d| AlertRule::Psi {
            distribution: d.name.clone(),
            max: config
                .psi_limits
                .get(&d.name)
                .copied()
                .unwrap_or(config.psi_max),
        })
        .collect();
    let features = DriftReport {
        distributions: found,
        ..report.drift.clone()
    };
    report.alerts.extend(evaluate(
        &rules,
        &features,
        &report.current_quality,
        &report.reference_quality,
    ));
    report.drift.distributions.extend(features.distributions);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitor::online::OnlineKey;
    use kindred_store::Feedback;

    fn online(items: u64, lists: u64, fallback: f64, ctr: f64, p99: Option<f64>) -> OnlineReport {
        OnlineReport {
            key: OnlineKey {
                model_version: "v1".into(),
                variant: None,
            },
            lists,
            items,
            fallback_share: Some(fallback),
            distinct_items: 0,
            coverage: None,
            diversity: None,
            diversity_lists: 0,
            clicks: 0,
            conversions: 0,
            ctr: Some(ctr),
            conversion_rate: None,
            score_mean: None,
            score_counts: vec![],
            latency_counts: vec![],
            latency_sum_seconds: 0.0,
            latency_p50_ms: None,
            latency_p99_ms: p99,
        }
    }

    #[test]
    fn online_thresholds_need_enough_traffic() {
        let config = MonitoringConfig {
            ctr_min: Some(0.01),
            min_items: 1_000,
            ..MonitoringConfig::default()
        };
        // Too few items and lists: nothing is judged.
        assert!(online_alerts(&[online(999, 99, 0.9, 0.0, None)], &config).is_empty());
        // Healthy.
        assert!(online_alerts(&[online(1_000, 100, 0.5, 0.01, Some(500.0))], &config).is_empty());
        let alerts = online_alerts(&[online(1_000, 100, 0.6, 0.005, Some(1_000.0))], &config);
        let subjects: Vec<&str> = alerts.iter().map(|a| a.subject.as_str()).collect();
        assert_eq!(
            subjects,
            [
                "fallback_share{model_version=v1,variant=none}",
                "ctr{model_version=v1,variant=none}",
                "latency_p99_ms{model_version=v1,variant=none}"
            ]
        );
        assert!(alerts.iter().all(|a| a.kind == AlertKind::Online));
        // Beyond the last bucket: infinite, alerts.
        let slow = online_alerts(&[online(0, 100, 0.0, 0.0, None)], &config);
        assert_eq!(slow.len(), 1);
    }

    #[test]
    fn config_limits_become_rules() {
        let mut config = MonitoringConfig::default();
        config.psi_limits.insert("value".into(), 0.5);
        config.psi_limits.insert("item_popularity".into(), 0.1);
        let (_, _, rules) = settings(&config);
        assert!(rules.contains(&AlertRule::Psi {
            distribution: "item_popularity".into(),
            max: 0.1
        }));
        assert!(rules.contains(&AlertRule::Psi {
            distribution: "value".into(),
            max: 0.5
        }));
        assert!(rules.contains(&AlertRule::Psi {
            distribution: "user_activity".into(),
            max: 0.25
        }));
        assert_eq!(rules.len(), 7);
    }

    #[test]
    fn stored_feedback_converts_with_local_ids() {
        let stored: Vec<StoredFeedback> =
            [("a", "x", "click"), ("b", "x", "buy"), ("a", "y", "like")]
                .iter()
                .enumerate()
                .map(|(i, (u, it, t))| StoredFeedback {
                    seq: i as i64,
                    feedback: Feedback {
                        user: (*u).into(),
                        item: (*it).into(),
                        event_type: (*t).into(),
                        value: Some(f32::NAN),
                        timestamp: 10 + i as i64,
                        event_id: Some("e".into()),
                    },
                })
                .collect();
        let events = to_events(&stored);
        assert_eq!(
            events.iter().map(|e| (e.user, e.item)).collect::<Vec<_>>(),
            [(0, 0), (1, 0), (0, 1)]
        );
        assert_eq!(events[1].event, kindred_core::EventType::Purchase);
        assert_eq!(events[2].event, kindred_core::EventType::Custom(0));
        assert!(events.iter().all(|e| e.value.is_none()));
        assert_eq!(events[0].event_id, events[1].event_id);
        assert_eq!(window_end(&config_latest(), 100, Some(50)), Some(51));
        assert_eq!(window_end(&config_latest(), 100, None), None);
        assert_eq!(
            window_end(&MonitoringConfig::default(), 100, None),
            Some(101)
        );
    }

    #[test]
    fn feature_drift_compares_the_entities_active_in_each_window() {
        use kindred_core::features::FeatureValue;
        let mut users = FeatureTable::new();
        for (u, group, age) in [("a", "x", 20.0), ("b", "x", 30.0), ("c", "y", 40.0)] {
            users
                .set(u, "group", FeatureValue::Categories(vec![group.into()]))
                .unwrap();
            users.set(u, "age", FeatureValue::Number(age)).unwrap();
            users.set(u, "bio", FeatureValue::Text("t".into())).unwrap();
        }
        // Reference [0, 10): a twice, b once; current [10, 20): c, and d (no features).
        let stored: Vec<StoredFeedback> = [("a", 1), ("a", 2), ("b", 3), ("c", 11), ("d", 12)]
            .iter()
            .enumerate()
            .map(|(i, (u, t))| StoredFeedback {
                seq: i as i64,
                feedback: Feedback {
                    user: (*u).into(),
                    item: "i".into(),
                    event_type: "click".into(),
                    value: None,
                    timestamp: *t,
                    event_id: None,
                },
            })
            .collect();
        let windows = Windows {
            reference: TimeSpan { start: 0, end: 10 },
            current: TimeSpan { start: 10, end: 20 },
        };
        let config = WindowConfig {
            min_observations: 1,
            value_bins: 2,
            ..WindowConfig::default()
        };
        let drift = feature_drift(
            &stored,
            windows,
            &users,
            |f| &f.user,
            "user_feature",
            &config,
        )
        .unwrap();
        let names: Vec<&str> = drift.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["user_feature:group", "user_feature:age"]);
        // Distinct active users: reference {a, b} -> group x twice; current {c} -> y once
        // (binned as "other": only reference values get bins of their own).
        let group = &drift[0];
        assert_eq!(group.bins.labels, ["x", "other"]);
        assert_eq!(group.bins.reference, [2.0, 0.0]);
        assert_eq!(group.bins.current, [0.0, 1.0]);
        assert!(group.psi.unwrap() > 0.25);
        assert_eq!(
            (
                drift[1].reference_observations,
                drift[1].current_observations
            ),
            (2.0, 1.0)
        );
        let strict = WindowConfig {
            min_observations: 2,
            ..config
        };
        let drift = feature_drift(
            &stored,
            windows,
            &users,
            |f| &f.user,
            "user_feature",
            &strict,
        )
        .unwrap();
        assert!(drift.iter().all(|d| d.psi.is_none()));
    }

    fn config_latest() -> MonitoringConfig {
        MonitoringConfig {
            window_end: WindowEnd::LatestEvent,
            ..MonitoringConfig::default()
        }
    }
}
