//! The serving counters (list items by source, feedback stored, snapshot swaps, training runs,
//! impressions written, exploring lists) and their part of `/metrics`.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use crate::exposition::label;
use crate::sync::lock;

/// Counters of the serving work, whoever triggered it (a request, the background loop).
#[derive(Default)]
pub struct ServingCounters {
    /// Source kind (`model`, `fold-in`, `popular`, ...) -> items served.
    sources: Mutex<BTreeMap<String, u64>>,
    pub feedback_events: AtomicU64,
    pub feedback_duplicates: AtomicU64,
    pub snapshot_swaps: AtomicU64,
    pub training_runs: AtomicU64,
    pub training_failures: AtomicU64,
    pub impressions_written: AtomicU64,
    /// Lists an `[exploration]` section filled, their items, and the items it placed.
    pub exploring_lists: AtomicU64,
    pub exploring_list_items: AtomicU64,
    pub explored_items: AtomicU64,
}

impl ServingCounters {
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

    /// Counts one list an `[exploration]` section filled.
    pub fn observe_exploring_list(&self, items: &[crate::served_item::ServedItem]) {
        self.exploring_lists.fetch_add(1, Ordering::Relaxed);
        self.exploring_list_items
            .fetch_add(items.len() as u64, Ordering::Relaxed);
        let explored = items.iter().filter(|i| i.explored).count() as u64;
        self.explored_items.fetch_add(explored, Ordering::Relaxed);
    }

    /// List items served by source kind.
    pub fn source_counts(&self) -> Vec<(String, u64)> {
        lock(&self.sources)
            .iter()
            .map(|(k, n)| (k.clone(), *n))
            .collect()
    }

    /// Appends the list items by source, the counters (cache lookups among them) and the cache
    /// hit ratio to the exposition text `out`.
    pub fn render_into(&self, out: &mut String, cache_hits: u64, cache_misses: u64) {
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
            (
                "kindred_exploring_lists_total",
                "Lists an [exploration] section filled.",
                self.exploring_lists.load(Ordering::Relaxed),
            ),
            (
                "kindred_exploring_list_items_total",
                "Items of the lists an [exploration] section filled.",
                self.exploring_list_items.load(Ordering::Relaxed),
            ),
            (
                "kindred_explored_items_total",
                "Items exploration placed where the ranking had another.",
                self.explored_items.load(Ordering::Relaxed),
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
    }
}
