//! Prometheus metrics, kept in plain atomics and small maps and rendered in the text exposition
//! format at `/metrics`: request counts by route and status, latency histograms by route, cache
//! hits, list items by source (how often fallbacks fill lists), feedback ingested, the live
//! model version, snapshot swaps and training runs.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Latency bucket upper bounds, seconds.
pub const LATENCY_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

#[derive(Default)]
struct Histogram {
    counts: [u64; LATENCY_BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// All server metrics.
#[derive(Default)]
pub struct Metrics {
    /// (route, method, status) -> count.
    requests: Mutex<BTreeMap<(String, String, u16), u64>>,
    latency: Mutex<BTreeMap<String, Histogram>>,
    /// Source kind (`model`, `fold-in`, `popular`, ...) -> items served.
    sources: Mutex<BTreeMap<String, u64>>,
    pub feedback_events: AtomicU64,
    pub feedback_duplicates: AtomicU64,
    pub snapshot_swaps: AtomicU64,
    pub training_runs: AtomicU64,
    pub training_failures: AtomicU64,
    pub impressions_written: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Counters stay meaningful after a panic elsewhere: keep using the data.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Escapes a label value for the exposition format.
pub(crate) fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl Metrics {
    /// Records one finished request.
    pub fn observe_request(&self, route: &str, method: &str, status: u16, elapsed: Duration) {
        *lock(&self.requests)
            .entry((route.to_owned(), method.to_owned(), status))
            .or_default() += 1;
        let seconds = elapsed.as_secs_f64();
        let mut latency = lock(&self.latency);
        let h = latency.entry(route.to_owned()).or_default();
        if let Some(b) = LATENCY_BUCKETS.iter().position(|&le| seconds <= le) {
            h.counts[b] += 1;
        }
        h.count += 1;
        h.sum += seconds;
    }

    /// Records the sources of one served list (`model:als` counts as `model`).
    pub fn observe_sources<'a>(&self, sources: impl IntoIterator<Item = &'a str>) {
        let mut map = lock(&self.sources);
        for source in sources {
            let kind = source
                .strip_prefix("relaxed:")
                .map_or(source, |_| "relaxed")
                .split(':')
                .next()
                .unwrap_or(source);
            *map.entry(kind.to_owned()).or_default() += 1;
        }
    }

    /// Requests so far: (route, method, status) -> count (for the dashboard).
    pub fn request_counts(&self) -> Vec<((String, String, u16), u64)> {
        lock(&self.requests)
            .iter()
            .map(|(k, n)| (k.clone(), *n))
            .collect()
    }

    /// Latency per route: (route, requests, total seconds, count per bucket of [`LATENCY_BUCKETS`]).
    pub fn latency_by_route(&self) -> Vec<(String, u64, f64, Vec<u64>)> {
        lock(&self.latency)
            .iter()
            .map(|(route, h)| (route.clone(), h.count, h.sum, h.counts.to_vec()))
            .collect()
    }

    /// List items served by source kind.
    pub fn source_counts(&self) -> Vec<(String, u64)> {
        lock(&self.sources)
            .iter()
            .map(|(k, n)| (k.clone(), *n))
            .collect()
    }

    /// The exposition text. `gauges` are extra values known only to the caller (cache size,
    /// live version, ...): (name, help, labels, value).
    pub fn render(
        &self,
        gauges: &[(&str, &str, String, f64)],
        cache_hits: u64,
        cache_misses: u64,
    ) -> String {
        let mut out = String::with_capacity(8 << 10);
        out.push_str("# HELP kindred_http_requests_total Requests by route, method and status.\n");
        out.push_str("# TYPE kindred_http_requests_total counter\n");
        for ((route, method, status), n) in lock(&self.requests).iter() {
            let _ = writeln!(
                out,
                "kindred_http_requests_total{{route=\"{}\",method=\"{method}\",status=\"{status}\"}} {n}",
                label(route)
            );
        }
        out.push_str("# HELP kindred_http_request_duration_seconds Request latency by route.\n");
        out.push_str("# TYPE kindred_http_request_duration_seconds histogram\n");
        for (route, h) in lock(&self.latency).iter() {
            let route = label(route);
            let mut cumulative = 0;
            for (le, n) in LATENCY_BUCKETS.iter().zip(h.counts) {
                cumulative += n;
                let _ = writeln!(
                    out,
                    "kindred_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"{le}\"}} {cumulative}"
                );
            }
            let _ = writeln!(
                out,
                "kindred_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {}\n\
                 kindred_http_request_duration_seconds_sum{{route=\"{route}\"}} {}\n\
                 kindred_http_request_duration_seconds_count{{route=\"{route}\"}} {}",
                h.count, h.sum, h.count
            );
        }
        out.push_str("# HELP kindred_list_items_total Items served in lists, by source kind.\n");
        out.push_str("# TYPE kindred_list_items_total counter\n");
        for (kind, n) in lock(&self.sources).iter() {
            let _ = writeln!(
                out,
                "kindred_list_items_total{{source=\"{}\"}} {n}",
                label(kind)
            );
        }
        let counters = [
            ("kindred_cache_hits_total", "List cache hits.", cache_hits),
            (
                "kindred_cache_misses_total",
                "List cache misses.",
                cache_misses,
            ),
            (
                "kindred_feedback_events_total",
                "Feedback events stored.",
                self.feedback_events.load(Ordering::Relaxed),
            ),
            (
                "kindred_feedback_duplicates_total",
                "Feedback events skipped as duplicates (event id seen before).",
                self.feedback_duplicates.load(Ordering::Relaxed),
            ),
            (
                "kindred_snapshot_swaps_total",
                "Catalog/model snapshots swapped in.",
                self.snapshot_swaps.load(Ordering::Relaxed),
            ),
            (
                "kindred_training_runs_total",
                "Model versions trained by this server.",
                self.training_runs.load(Ordering::Relaxed),
            ),
            (
                "kindred_training_failures_total",
                "Training runs that failed.",
                self.training_failures.load(Ordering::Relaxed),
            ),
            (
                "kindred_impressions_written_total",
                "Impressions written to the store.",
                self.impressions_written.load(Ordering::Relaxed),
            ),
        ];
        for (name, help, value) in counters {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
            );
        }
        let ratio = if cache_hits + cache_misses == 0 {
            0.0
        } else {
            cache_hits as f64 / (cache_hits + cache_misses) as f64
        };
        let _ = writeln!(
            out,
            "# HELP kindred_cache_hit_ratio Share of list lookups answered from the cache.\n\
             # TYPE kindred_cache_hit_ratio gauge\nkindred_cache_hit_ratio {ratio}"
        );
        for (name, help, labels, value) in gauges {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name}{labels} {value}"
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counts_cumulative_buckets_and_source_kinds() {
        let m = Metrics::default();
        m.observe_request(
            "/v1/recommend/{user}",
            "GET",
            200,
            Duration::from_micros(700),
        );
        m.observe_request("/v1/recommend/{user}", "GET", 200, Duration::from_millis(3));
        m.observe_request(
            "/v1/recommend/{user}",
            "GET",
            404,
            Duration::from_millis(30),
        );
        m.observe_sources([
            "model:als",
            "popular",
            "relaxed:date_window:popular",
            "model:als",
        ]);
        let text = m.render(&[("kindred_up", "Up.", String::new(), 1.0)], 3, 1);
        assert!(text.contains(
            "kindred_http_requests_total{route=\"/v1/recommend/{user}\",method=\"GET\",status=\"200\"} 2"
        ));
        assert!(text.contains("le=\"0.001\"} 1\n"), "{text}");
        assert!(text.contains("le=\"0.005\"} 2\n"));
        assert!(text.contains("le=\"+Inf\"} 3\n"));
        assert!(text.contains("kindred_list_items_total{source=\"model\"} 2"));
        assert!(text.contains("kindred_list_items_total{source=\"relaxed\"} 1"));
        assert!(text.contains("kindred_cache_hit_ratio 0.75"));
        assert!(text.contains("kindred_up 1"));
    }
}
