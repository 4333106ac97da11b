//! What a run saw: totals, and per model version and per experiment variant the lists, items,
//! clicks, the measured CTR and the oracle's expected CTR of the items shown.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Counts of one group of lists (a model version, or an experiment variant).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GroupStats {
    pub lists: u64,
    pub items: u64,
    pub clicks: u64,
    pub purchases: u64,
    /// The world's click probabilities summed over the items shown.
    pub expected_clicks: f64,
    /// `clicks / items` (0 without items).
    pub ctr: f64,
    /// `expected_clicks / items`: the oracle's CTR of what was shown, free of click noise.
    pub expected_ctr: f64,
}

impl GroupStats {
    pub(crate) fn add(&mut self, other: &GroupStats) {
        self.lists += other.lists;
        self.items += other.items;
        self.clicks += other.clicks;
        self.purchases += other.purchases;
        self.expected_clicks += other.expected_clicks;
    }

    fn finish(&mut self) {
        let items = self.items.max(1) as f64;
        self.ctr = self.clicks as f64 / items;
        self.expected_ctr = self.expected_clicks / items;
    }
}

/// Where an event came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// A click or purchase on a recommended item.
    Recommended,
    /// A user finding an item on their own.
    Organic,
    /// A bot of the bot-wave scenario.
    Bot,
}

/// One event sent to `POST /v1/feedback` (kept when `keep_events` is set).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SentEvent {
    pub step: u64,
    pub origin: Origin,
    pub user: String,
    pub item: String,
    #[serde(rename = "type")]
    pub event_type: String,
    /// None when the server's clock stamps it.
    pub timestamp: Option<i64>,
}

/// The result of a run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SimSummary {
    pub steps: u64,
    pub recommend_requests: u64,
    pub feedback_requests: u64,
    pub items_shown: u64,
    pub clicks: u64,
    pub purchases: u64,
    pub organic_events: u64,
    pub bot_events: u64,
    /// Late items added to the catalog by the item-arrival scenario.
    #[serde(default)]
    pub items_arrived: u64,
    /// Impressions and clicks of late items (after they arrived).
    #[serde(default)]
    pub late_items_shown: u64,
    #[serde(default)]
    pub late_item_clicks: u64,
    /// Answers with a status outside 200..300 (recommendations and feedback).
    pub non_2xx: u64,
    /// Events the server reported as duplicates of stored ones (same event id).
    pub duplicates: u64,
    /// Exchanges that failed below HTTP (the connection is reopened).
    pub transport_errors: u64,
    pub elapsed_seconds: f64,
    /// All lists together.
    pub overall: GroupStats,
    /// Keyed by the answers' `model_version` (`none` when the server had no model).
    pub by_model_version: BTreeMap<String, GroupStats>,
    /// Keyed `experiment/variant`, from the answers' `experiment` field when present.
    pub by_variant: BTreeMap<String, GroupStats>,
    /// Every event sent, in step order, when `keep_events` was set.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<SentEvent>,
}

impl SimSummary {
    /// Adds a worker's partial summary.
    pub(crate) fn merge(&mut self, other: SimSummary) {
        self.steps += other.steps;
        self.recommend_requests += other.recommend_requests;
        self.feedback_requests += other.feedback_requests;
        self.items_shown += other.items_shown;
        self.clicks += other.clicks;
        self.purchases += other.purchases;
        self.organic_events += other.organic_events;
        self.items_arrived += other.items_arrived;
        self.late_items_shown += other.late_items_shown;
        self.late_item_clicks += other.late_item_clicks;
        self.bot_events += other.bot_events;
        self.non_2xx += other.non_2xx;
        self.duplicates += other.duplicates;
        self.transport_errors += other.transport_errors;
        self.overall.add(&other.overall);
        for (k, v) in &other.by_model_version {
            self.by_model_version.entry(k.clone()).or_default().add(v);
        }
        for (k, v) in &other.by_variant {
            self.by_variant.entry(k.clone()).or_default().add(v);
        }
        self.events.extend(other.events);
    }

    /// Computes the rates and orders the events.
    pub(crate) fn finish(&mut self) {
        self.overall.finish();
        self.by_model_version
            .values_mut()
            .chain(self.by_variant.values_mut())
            .for_each(GroupStats::finish);
        self.events.sort_by_key(|e| e.step);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_and_rates() {
        let group = |items, clicks, expected| GroupStats {
            lists: 1,
            items,
            clicks,
            expected_clicks: expected,
            ..GroupStats::default()
        };
        let mut a = SimSummary {
            steps: 2,
            overall: group(10, 2, 1.5),
            ..SimSummary::default()
        };
        a.by_model_version.insert("v1".into(), group(10, 2, 1.5));
        let mut b = SimSummary {
            steps: 3,
            overall: group(30, 3, 2.5),
            ..SimSummary::default()
        };
        b.by_model_version.insert("v1".into(), group(10, 1, 0.5));
        b.by_model_version.insert("v2".into(), group(20, 2, 2.0));
        a.merge(b);
        a.finish();
        assert_eq!(a.steps, 5);
        assert_eq!(a.overall.items, 40);
        assert!((a.overall.ctr - 5.0 / 40.0).abs() < 1e-12);
        assert!((a.overall.expected_ctr - 4.0 / 40.0).abs() < 1e-12);
        let v1 = &a.by_model_version["v1"];
        assert_eq!((v1.lists, v1.items, v1.clicks), (2, 20, 3));
        assert!((v1.ctr - 0.15).abs() < 1e-12 && (v1.expected_ctr - 0.1).abs() < 1e-12);
        assert_eq!(a.by_model_version["v2"].ctr, 0.1);
        let empty = {
            let mut s = SimSummary::default();
            s.finish();
            s
        };
        assert_eq!(empty.overall.ctr, 0.0);
    }
}
