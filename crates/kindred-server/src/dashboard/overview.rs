//! `GET /dashboard`: store contents, the live version and catalog, request metrics (counts,
//! latency percentiles, cache hits, list items by source), feedback volume per day, and the
//! number of running experiments and kept alerts (with links to their pages).

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use kindred_chart::{BarChart, BarSeries};
use kindred_core::interactions::NO_TIMESTAMP;
use kindred_serving::exposition::LATENCY_BUCKETS;

use super::page::{self, cell, escape, num, table, Nav};
use super::Dashboard;
use crate::auth::Scope;

/// Days shown in the feedback-volume chart, ending at the day of the latest event.
const CHART_DAYS: i64 = 30;

/// The upper bound of the latency bucket holding quantile `q` of a histogram (None when it
/// is empty or the quantile lies above the last bucket).
pub fn bucket_quantile(counts: &[u64], q: f64) -> Option<f64> {
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return None;
    }
    // The rank of the quantile observation, 1-based: ceil(q * total), at least 1.
    let rank = ((q * total as f64).ceil() as u64).max(1);
    let mut seen = 0;
    for (&n, &upper) in counts.iter().zip(LATENCY_BUCKETS.iter()) {
        seen += n;
        if seen >= rank {
            return Some(upper);
        }
    }
    None
}

/// Events per day (day number since 1970-01-01) from event timestamps; rows without one are
/// left out.
pub fn events_per_day(timestamps: &[i64]) -> BTreeMap<i64, u64> {
    let mut days = BTreeMap::new();
    for &t in timestamps.iter().filter(|&&t| t != NO_TIMESTAMP) {
        *days.entry(t.div_euclid(86_400)).or_default() += 1;
    }
    days
}

fn ms(seconds: Option<f64>, overflow: &str) -> String {
    seconds.map_or_else(|| overflow.to_owned(), |s| format!("≤ {} ms", s * 1000.0))
}

fn feedback_chart(per_day: &BTreeMap<i64, u64>) -> String {
    let Some((&last, _)) = per_day.iter().next_back() else {
        return "<p class=\"note\">No timestamped events in the live data.</p>".into();
    };
    let first = last - CHART_DAYS + 1;
    let days: Vec<i64> = (first..=last).collect();
    let chart = BarChart {
        title: format!("Feedback events per day (last {CHART_DAYS} days to the latest event)"),
        x_label: "day (UTC)".into(),
        y_label: "events".into(),
        categories: days
            .iter()
            .map(|&d| page::date(d)[5..].to_owned())
            .collect(),
        series: vec![BarSeries {
            name: "events".into(),
            values: days
                .iter()
                .map(|d| Some(per_day.get(d).copied().unwrap_or(0) as f64))
                .collect(),
            intervals: vec![None; days.len()],
            color: 0,
        }],
    };
    let older: u64 = per_day.range(..first).map(|(_, n)| n).sum();
    let svg = chart.render().map(|c| c.svg).unwrap_or_default();
    format!(
        "<figure id=\"feedback-per-day\">{svg}<figcaption class=\"note\">{} to {}; {older} older events not shown.</figcaption></figure>",
        page::date(first),
        page::date(last)
    )
}

pub async fn page(State(dash): State<Dashboard>, headers: HeaderMap) -> Response {
    if let Err(denied) = dash.authorize(&headers, Scope::Read) {
        return denied;
    }
    let app = &dash.app;
    let counts = match app.serving.store().counts().await {
        Ok(c) => c,
        Err(e) => return page::error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    };
    let snapshot = app.serving.snapshot();
    let backend = match app.serving.store().backend() {
        "sqlite" => "SQLite",
        _ => "PostgreSQL",
    };
    let card = |label: &str, value: String| {
        format!(
            "<div class=\"card\">{}<b>{}</b></div>",
            escape(label),
            escape(&value)
        )
    };
    let live = snapshot.live.as_ref().map_or_else(
        || "none".to_owned(),
        |l| format!("{} ({})", l.version, l.algorithm),
    );
    let mut body = format!(
        "<section id=\"store\"><h2>Store ({backend})</h2><div class=\"cards\">{}{}{}{}{}</div></section>",
        card("users", counts.users.to_string()),
        card("items", counts.items.to_string()),
        card("feedback events", counts.feedback.to_string()),
        card("impressions", counts.impressions.to_string()),
        card("model versions", counts.models.to_string()),
    );
    body.push_str(&format!(
        "<section id=\"serving\"><h2>Serving</h2><div class=\"cards\">{}{}{}{}{}</div></section>",
        card("live version", live),
        card("catalog items", snapshot.items.len().to_string()),
        card(
            "items the model scores",
            snapshot.n_model_items().to_string()
        ),
        card("events in the live data", snapshot.events.to_string()),
        card(
            "mode",
            if snapshot.is_batch() {
                "batch"
            } else {
                "real time"
            }
            .to_owned()
        ),
    ));

    let running = app.serving.state.experiments.running().len();
    let alerts = app.serving.monitor.alerts.recent(usize::MAX).len();
    body.push_str(&format!(
        "<section id=\"experiments-alerts\"><h2>Experiments and alerts</h2><div class=\"cards\">\
         <div class=\"card\" id=\"running-experiments\"><a href=\"/dashboard/experiments\">running \
         experiments</a><b>{running}</b></div><div class=\"card\" id=\"recent-alerts\">\
         <a href=\"/dashboard/monitoring#alerts\">recent alerts</a><b>{alerts}</b></div></div></section>"
    ));

    let per_day = events_per_day(snapshot.data.interactions.timestamps());
    body.push_str(&format!(
        "<section><h2>Feedback volume</h2>{}</section>",
        feedback_chart(&per_day)
    ));

    let requests: Vec<Vec<String>> = app
        .metrics
        .request_counts()
        .into_iter()
        .map(|((route, method, status), n)| vec![cell(&route), cell(&method), num(status), num(n)])
        .collect();
    body.push_str(&format!(
        "<section id=\"requests\"><h2>Requests since start</h2>{}</section>",
        table(&["route", "method", "status", "requests"], &requests)
    ));
    let latency: Vec<Vec<String>> = app
        .metrics
        .latency_by_route()
        .into_iter()
        .map(|(route, count, sum, buckets)| {
            let over = format!(
                "> {} ms",
                LATENCY_BUCKETS[LATENCY_BUCKETS.len() - 1] * 1000.0
            );
            vec![
                cell(&route),
                num(count),
                num(format!("{:.2} ms", sum * 1000.0 / count.max(1) as f64)),
                num(ms(bucket_quantile(&buckets, 0.5), &over)),
                num(ms(bucket_quantile(&buckets, 0.95), &over)),
                num(ms(bucket_quantile(&buckets, 0.99), &over)),
            ]
        })
        .collect();
    body.push_str(&format!(
        "<section id=\"latency\"><h2>Latency by route</h2>{}<p class=\"note\">Percentiles are histogram bucket bounds.</p></section>",
        table(&["route", "requests", "mean", "p50", "p95", "p99"], &latency)
    ));
    let cache = &app.serving.state.cache;
    let hits = cache.hits.load(Ordering::Relaxed);
    let misses = cache.misses.load(Ordering::Relaxed);
    let cache = if !cache.enabled() {
        "off (cache.ttl_seconds = 0)".to_owned()
    } else if hits + misses == 0 {
        "no lookups yet".to_owned()
    } else {
        format!(
            "{hits} hits / {misses} misses ({:.1} % hits)",
            100.0 * hits as f64 / (hits + misses) as f64
        )
    };
    let sources: Vec<Vec<String>> = app
        .serving
        .state
        .counters
        .source_counts()
        .into_iter()
        .map(|(kind, n)| vec![cell(&kind), num(n)])
        .collect();
    body.push_str(&format!(
        "<section id=\"lists\"><h2>Lists</h2><p>List cache: {}</p>{}</section>",
        escape(&cache),
        table(&["source of list items", "items served"], &sources)
    ));
    page::respond(StatusCode::OK, "Overview", Nav::Overview, &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_the_bounds_of_the_bucket_holding_them() {
        let mut counts = vec![0u64; LATENCY_BUCKETS.len()];
        // 10 requests: 6 in the first bucket (<= 0.5 ms), 3 in the third (<= 2.5 ms), 1 above all.
        counts[0] = 6;
        counts[2] = 3;
        // the 10th observation lies above the last bound: it is not in `counts`' buckets,
        // so the histogram here holds 9 and the median is the 5th (first bucket).
        assert_eq!(bucket_quantile(&counts, 0.5), Some(0.0005));
        // 0.95 * 9 = 8.55 -> the 9th observation, in the third bucket.
        assert_eq!(bucket_quantile(&counts, 0.95), Some(0.0025));
        assert_eq!(bucket_quantile(&counts, 0.6), Some(0.0005)); // 5.4 -> 6th
        assert_eq!(bucket_quantile(&counts, 0.67), Some(0.0025)); // 6.03 -> 7th
        assert_eq!(bucket_quantile(&vec![0; LATENCY_BUCKETS.len()], 0.5), None);
    }

    #[test]
    fn events_are_counted_per_utc_day() {
        let per_day = events_per_day(&[0, 86_399, 86_400, -1, NO_TIMESTAMP, 3 * 86_400]);
        assert_eq!(
            per_day.into_iter().collect::<Vec<_>>(),
            vec![(-1, 1), (0, 2), (1, 1), (3, 1)]
        );
    }

    #[test]
    fn the_chart_covers_the_last_days_and_counts_older_events() {
        let per_day: BTreeMap<i64, u64> = [(0, 5), (100, 2), (129, 7)].into();
        let html = feedback_chart(&per_day);
        assert!(html.contains("<svg"), "{html}");
        assert!(
            html.contains("1970-04-11 to 1970-05-10; 5 older events not shown."),
            "{html}"
        );
        assert!(feedback_chart(&BTreeMap::new()).contains("No timestamped events"));
    }
}
