//! The monitoring part of `/metrics`: online metrics per `model_version`/`variant` (variant
//! `none` outside experiments), PSI per distribution and quality counters of the latest pass,
//! alerts by kind, webhook deliveries and passes.

use std::fmt::Write;
use std::sync::atomic::Ordering;

use super::online::SCORE_BUCKETS;
use super::Monitor;
use crate::exposition::{label, LATENCY_BUCKETS};

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn histogram(out: &mut String, name: &str, labels: &str, bounds: &[f64], counts: &[u64], sum: f64) {
    let mut cumulative = 0;
    for (le, n) in bounds.iter().zip(counts) {
        cumulative += n;
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{le}\"}} {cumulative}");
    }
    let total: u64 = counts.iter().sum();
    let _ = writeln!(
        out,
        "{name}_bucket{{{labels},le=\"+Inf\"}} {total}\n{name}_sum{{{labels}}} {sum}\n{name}_count{{{labels}}} {total}"
    );
}

/// The exposition text of the monitoring metrics.
pub fn render(monitor: &Monitor, catalog_items: usize) -> String {
    let mut out = String::with_capacity(4 << 10);
    let online = monitor.online.report(catalog_items);
    let keyed: Vec<(String, &super::online::OnlineReport)> = online
        .iter()
        .map(|r| {
            let labels = format!(
                "model_version=\"{}\",variant=\"{}\"",
                label(&r.key.model_version),
                label(r.key.variant.as_deref().unwrap_or("none"))
            );
            (labels, r)
        })
        .collect();
    type Field = fn(&super::online::OnlineReport) -> Option<f64>;
    let series: [(&str, &str, &str, Field); 9] = [
        (
            "kindred_online_lists_total",
            "counter",
            "Lists served.",
            |r| Some(r.lists as f64),
        ),
        (
            "kindred_online_items_total",
            "counter",
            "Items served in lists.",
            |r| Some(r.items as f64),
        ),
        (
            "kindred_online_clicks_total",
            "counter",
            "Click events attributed to a served list.",
            |r| Some(r.clicks as f64),
        ),
        (
            "kindred_online_conversions_total",
            "counter",
            "Lists with an attributed conversion.",
            |r| Some(r.conversions as f64),
        ),
        (
            "kindred_online_fallback_share",
            "gauge",
            "Share of served items placed by fallbacks.",
            |r| r.fallback_share,
        ),
        (
            "kindred_online_coverage",
            "gauge",
            "Distinct items shown / catalog size.",
            |r| r.coverage,
        ),
        (
            "kindred_online_diversity",
            "gauge",
            "Mean intra-list diversity (1 - same-category pair share).",
            |r| r.diversity,
        ),
        (
            "kindred_online_ctr",
            "gauge",
            "Attributed clicks / items served.",
            |r| r.ctr,
        ),
        (
            "kindred_online_conversion_rate",
            "gauge",
            "Lists with an attributed conversion / lists served.",
            |r| r.conversion_rate,
        ),
    ];
    for (name, kind, help, field) in series {
        header(&mut out, name, kind, help);
        for (labels, r) in &keyed {
            if let Some(v) = field(r) {
                let _ = writeln!(out, "{name}{{{labels}}} {v}");
            }
        }
    }
    header(
        &mut out,
        "kindred_online_list_latency_seconds",
        "histogram",
        "Time to produce a list, by model version and variant.",
    );
    for (labels, r) in &keyed {
        histogram(
            &mut out,
            "kindred_online_list_latency_seconds",
            labels,
            &LATENCY_BUCKETS,
            &r.latency_counts,
            r.latency_sum_seconds,
        );
    }
    header(
        &mut out,
        "kindred_online_score",
        "histogram",
        "Model scores of served items.",
    );
    for (labels, r) in &keyed {
        let sum = r.score_mean.unwrap_or(0.0) * r.score_counts.iter().sum::<u64>() as f64;
        histogram(
            &mut out,
            "kindred_online_score",
            labels,
            &SCORE_BUCKETS,
            &r.score_counts,
            sum,
        );
    }
    if let Some(report) = monitor.latest().and_then(|p| p.report.clone()) {
        header(
            &mut out,
            "kindred_drift_psi",
            "gauge",
            "PSI between the reference and current windows, by distribution.",
        );
        for d in &report.drift.distributions {
            if let Some(psi) = d.psi {
                let _ = writeln!(
                    out,
                    "kindred_drift_psi{{distribution=\"{}\"}} {psi}",
                    label(&d.name)
                );
            }
        }
        type Counter = fn(&kindred_stats::monitoring::QualityCounters) -> f64;
        let quality: [(&str, &str, Counter); 5] = [
            ("kindred_quality_events", "Events in the window.", |q| {
                q.events as f64
            }),
            (
                "kindred_quality_events_per_day",
                "Events per day in the window.",
                |q| q.events_per_day,
            ),
            (
                "kindred_quality_duplicate_rate",
                "Share of duplicate events.",
                |q| q.duplicate_rate,
            ),
            (
                "kindred_quality_bot_users",
                "Users flagged as bot-like.",
                |q| q.bot_users as f64,
            ),
            (
                "kindred_quality_bot_event_share",
                "Share of events from bot-like users.",
                |q| q.bot_event_share,
            ),
        ];
        for (name, help, value) in quality {
            header(&mut out, name, "gauge", help);
            for (window, q) in [
                ("reference", &report.reference_quality),
                ("current", &report.current_quality),
            ] {
                let _ = writeln!(out, "{name}{{window=\"{window}\"}} {}", value(q));
            }
        }
    }
    header(
        &mut out,
        "kindred_alerts_total",
        "counter",
        "New alerts raised, by kind (repeats within the cooldown excluded).",
    );
    for (kind, n) in monitor.alerts.totals() {
        let _ = writeln!(out, "kindred_alerts_total{{kind=\"{kind}\"}} {n}");
    }
    let counters = &monitor.alerts.webhook_counters;
    let plain = [
        (
            "kindred_alert_webhooks_sent_total",
            "Alert webhook deliveries answered 2xx.",
            counters.sent.load(Ordering::Relaxed),
        ),
        (
            "kindred_alert_webhook_failures_total",
            "Alert webhook deliveries that failed (connect, timeout, non-2xx).",
            counters.failures.load(Ordering::Relaxed),
        ),
        (
            "kindred_monitoring_passes_total",
            "Drift/quality passes completed.",
            monitor.passes.load(Ordering::Relaxed),
        ),
        (
            "kindred_monitoring_pass_failures_total",
            "Drift/quality passes that failed.",
            monitor.pass_failures.load(Ordering::Relaxed),
        ),
    ];
    for (name, help, value) in plain {
        header(&mut out, name, "counter", help);
        let _ = writeln!(out, "{name} {value}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::MonitoringConfig;
    use crate::monitor::online::OnlineList;
    use crate::served_item::ServedItem;
    use kindred_stats::monitoring::{Alert, AlertKind};
    use std::time::Duration;

    #[test]
    fn renders_online_series_alerts_and_counters() {
        let monitor = Monitor::new(&MonitoringConfig::default());
        let items = [
            ServedItem {
                item: "a".into(),
                score: Some(0.3),
                source: "model:als".into(),
                propensity: None,
                explored: false,
            },
            ServedItem {
                item: "b".into(),
                score: None,
                source: "popular".into(),
                propensity: None,
                explored: false,
            },
        ];
        monitor.online.record_list_at(
            OnlineList {
                user: Some("u"),
                model_version: Some("v\"1"),
                variant: Some("exp/b"),
                items: &items,
                latency: Duration::from_millis(2),
                item_features: None,
            },
            0,
        );
        monitor.alerts.raise(
            vec![Alert {
                kind: AlertKind::Drift,
                subject: "item_popularity".into(),
                value: 0.4,
                limit: 0.25,
                window: None,
                message: String::new(),
            }],
            0,
        );
        let text = render(&monitor, 4);
        let labels = "model_version=\"v\\\"1\",variant=\"exp/b\"";
        assert!(
            text.contains(&format!("kindred_online_lists_total{{{labels}}} 1\n")),
            "{text}"
        );
        assert!(text.contains(&format!("kindred_online_fallback_share{{{labels}}} 0.5\n")));
        assert!(text.contains(&format!("kindred_online_coverage{{{labels}}} 0.5\n")));
        assert!(text.contains(&format!("kindred_online_ctr{{{labels}}} 0\n")));
        assert!(text.contains(&format!(
            "kindred_online_list_latency_seconds_bucket{{{labels},le=\"0.0025\"}} 1\n"
        )));
        assert!(text.contains(&format!(
            "kindred_online_score_bucket{{{labels},le=\"0.5\"}} 1\n"
        )));
        assert!(text.contains("kindred_alerts_total{kind=\"drift\"} 1\n"));
        assert!(text.contains("kindred_alert_webhook_failures_total 0\n"));
        // No pass yet: no PSI series.
        assert!(!text.contains("kindred_drift_psi"));
    }
}
