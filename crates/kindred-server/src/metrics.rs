//! The HTTP metrics, kept in small maps and rendered in the text exposition format at
//! `/metrics`: request counts by route and status and latency histograms by route, around the
//! serving counters ([`ServingCounters`]: cache hits, list items by source, feedback ingested,
//! snapshot swaps, training runs) and the gauges the caller knows (the live model version, ...).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

use kindred_serving::counters::ServingCounters;
use kindred_serving::exposition::{label, LATENCY_BUCKETS};
use kindred_serving::sync::lock;

#[derive(Default)]
struct Histogram {
    counts: [u64; LATENCY_BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// The HTTP request metrics.
#[derive(Default)]
pub struct Metrics {
    /// (route, method, status) -> count.
    requests: Mutex<BTreeMap<(String, String, u16), u64>>,
    latency: Mutex<BTreeMap<String, Histogram>>,
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

    /// The exposition text: the request metrics, then `counters`, then `gauges`, extra values
    /// known only to the caller (cache size, live version, ...): (name, help, labels, value).
    pub fn render(
        &self,
        gauges: &[(&str, &str, String, f64)],
        counters: &ServingCounters,
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
        counters.render_into(&mut out, cache_hits, cache_misses);
        let mut previous = "";
        for (name, help, labels, value) in gauges {
            // One HELP and TYPE per metric: gauges of one name with several labels are adjacent.
            if *name != previous {
                let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
                previous = name;
            }
            let _ = writeln!(out, "{name}{labels} {value}");
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
        let counters = ServingCounters::default();
        counters.observe_sources([
            "model:als",
            "popular",
            "relaxed:date_window:popular",
            "model:als",
        ]);
        let text = m.render(
            &[("kindred_up", "Up.", String::new(), 1.0)],
            &counters,
            3,
            1,
        );
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
