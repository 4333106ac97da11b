//! Per-segment breakdowns: the same metrics for users bucketed by activity, for test items
//! bucketed by popularity (cold / tail / head), and for every categorical user feature (gender,
//! age group, ...), with the gap between the best and worst group so that a group the model
//! serves badly is visible rather than averaged away.

use std::collections::BTreeMap;

use kindred_core::features::ColumnData;
use kindred_core::FeatureTable;
use serde::{Deserialize, Serialize};

use crate::metrics::{self, UserRanking};

/// One segment's size and metrics.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SegmentRow {
    pub segment: String,
    /// Users (ranking) or test pairs (rating) in the segment.
    pub count: usize,
    pub metrics: BTreeMap<String, f64>,
}

/// All breakdowns of one model's results.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Segments {
    pub user_activity: Vec<SegmentRow>,
    pub item_popularity: Vec<SegmentRow>,
    /// Per categorical user feature, one row per value.
    pub user_features: BTreeMap<String, Vec<SegmentRow>>,
    /// `dimension:metric` -> best minus worst segment value of the headline metric.
    pub gaps: BTreeMap<String, f64>,
}

/// Features with more distinct values than this are not broken down (ids, zip codes).
const MAX_FEATURE_VALUES: usize = 30;
const ACTIVITY_EDGES: [u32; 8] = [0, 1, 10, 20, 50, 100, 200, 500];

/// Label of the activity bucket of a user with `n` training interactions.
pub fn activity_bucket(n: u32) -> String {
    let pos = ACTIVITY_EDGES.iter().rposition(|&e| n >= e).unwrap_or(0);
    match (ACTIVITY_EDGES[pos], ACTIVITY_EDGES.get(pos + 1)) {
        (0, _) => "0".to_owned(),
        (lo, Some(hi)) => format!("{lo}-{}", hi - 1),
        (lo, None) => format!("{lo}+"),
    }
}

/// Popularity bucket of each item from its training user counts: `cold` (none), `head` (the
/// most popular 20% of items with interactions), `tail` (the rest).
pub fn popularity_buckets(item_users: &[u32]) -> Vec<&'static str> {
    let mut counts: Vec<u32> = item_users.iter().copied().filter(|&c| c > 0).collect();
    counts.sort_unstable_by(|a, b| b.cmp(a));
    let head_size = (counts.len() as f64 * 0.2).ceil() as usize;
    let threshold = counts
        .get(head_size.saturating_sub(1))
        .copied()
        .unwrap_or(u32::MAX)
        .max(1);
    item_users
        .iter()
        .map(|&c| match c {
            0 => "cold",
            c if c >= threshold => "head",
            _ => "tail",
        })
        .collect()
}

/// For each user index, its value per categorical user-feature column (only columns with a
/// small number of values).
fn user_groups(
    features: Option<&FeatureTable>,
    user_ids: &kindred_core::IdMap,
) -> Vec<(String, Vec<Option<String>>)> {
    let Some(features) = features else {
        return Vec::new();
    };
    let rows = features.align(user_ids);
    let mut out = Vec::new();
    for col in features.columns() {
        if let ColumnData::Categorical { vocab, values } = &col.data {
            if vocab.len() > MAX_FEATURE_VALUES || vocab.len() < 2 {
                continue;
            }
            let groups = rows
                .iter()
                .map(|r| {
                    r.and_then(|r| values[r as usize].first())
                        .map(|&v| vocab.external(v).to_owned())
                })
                .collect();
            out.push((col.name.clone(), groups));
        }
    }
    out
}

/// What the ranking breakdown needs about one evaluated user.
#[derive(Debug, Clone)]
pub struct RankedUser {
    pub user: u32,
    pub train_count: u32,
    pub metrics: UserRanking,
    pub recommended: Vec<u32>,
    pub relevant: Vec<u32>,
}

fn mean_ranking(users: &[&RankedUser], k: usize) -> BTreeMap<String, f64> {
    let n = users.len().max(1) as f64;
    let sum = |f: fn(&UserRanking) -> f64| users.iter().map(|u| f(&u.metrics)).sum::<f64>() / n;
    BTreeMap::from([
        (format!("precision@{k}"), sum(|m| m.precision)),
        (format!("recall@{k}"), sum(|m| m.recall)),
        (format!("ndcg@{k}"), sum(|m| m.ndcg)),
        (format!("hit@{k}"), sum(|m| m.hit)),
    ])
}

fn grouped<T>(items: &[T], key: impl Fn(&T) -> Option<String>) -> BTreeMap<String, Vec<&T>> {
    let mut groups: BTreeMap<String, Vec<&T>> = BTreeMap::new();
    for item in items {
        if let Some(k) = key(item) {
            groups.entry(k).or_default().push(item);
        }
    }
    groups
}

fn gap(rows: &[SegmentRow], metric: &str) -> Option<f64> {
    let values: Vec<f64> = rows
        .iter()
        .filter_map(|r| r.metrics.get(metric).copied())
        .collect();
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    (values.len() >= 2).then_some(max - min)
}

/// Breakdown of ranking results.
pub fn ranking_segments(
    users: &[RankedUser],
    item_users: &[u32],
    user_features: Option<&FeatureTable>,
    user_ids: &kindred_core::IdMap,
    k: usize,
) -> Segments {
    let headline = format!("ndcg@{k}");
    let mut seg = Segments::default();
    let mut by_activity: Vec<(u32, String, Vec<&RankedUser>)> = Vec::new();
    for (label, group) in grouped(users, |u| Some(activity_bucket(u.train_count))) {
        let lo = group.iter().map(|u| u.train_count).min().unwrap_or(0);
        by_activity.push((lo, label, group));
    }
    by_activity.sort_by_key(|g| g.0);
    seg.user_activity = by_activity
        .into_iter()
        .map(|(_, label, group)| SegmentRow {
            segment: label,
            count: group.len(),
            metrics: mean_ranking(&group, k),
        })
        .collect();
    if let Some(g) = gap(&seg.user_activity, &headline) {
        seg.gaps.insert(format!("user_activity:{headline}"), g);
    }

    // Items: recall restricted to the test items of each bucket, and the share of all
    // recommendations that land in the bucket.
    let buckets = popularity_buckets(item_users);
    let total_recs: usize = users.iter().map(|u| u.recommended.len()).sum();
    for name in ["cold", "tail", "head"] {
        let in_bucket = |i: &u32| buckets.get(*i as usize) == Some(&name);
        let mut recall_sum = 0.0;
        let mut n_users = 0usize;
        let mut recs_in = 0usize;
        for u in users {
            recs_in += u.recommended.iter().filter(|i| in_bucket(i)).count();
            let relevant: Vec<u32> = u
                .relevant
                .iter()
                .copied()
                .filter(|i| in_bucket(i))
                .collect();
            if relevant.is_empty() {
                continue;
            }
            let hits = u
                .recommended
                .iter()
                .filter(|i| relevant.binary_search(i).is_ok())
                .count();
            recall_sum += hits as f64 / relevant.len() as f64;
            n_users += 1;
        }
        if n_users == 0 && recs_in == 0 {
            continue;
        }
        seg.item_popularity.push(SegmentRow {
            segment: name.to_owned(),
            count: n_users,
            metrics: BTreeMap::from([
                (
                    format!("recall@{k}"),
                    if n_users > 0 {
                        recall_sum / n_users as f64
                    } else {
                        0.0
                    },
                ),
                (
                    "share_of_recommendations".to_owned(),
                    recs_in as f64 / total_recs.max(1) as f64,
                ),
            ]),
        });
    }

    for (column, groups) in user_groups(user_features, user_ids) {
        let rows: Vec<SegmentRow> =
            grouped(users, |u| groups.get(u.user as usize).cloned().flatten())
                .into_iter()
                .map(|(value, group)| SegmentRow {
                    segment: value,
                    count: group.len(),
                    metrics: mean_ranking(&group, k),
                })
                .collect();
        if let Some(g) = gap(&rows, &headline) {
            seg.gaps.insert(format!("{column}:{headline}"), g);
        }
        seg.user_features.insert(column, rows);
    }
    seg
}

/// One predicted test pair, for the rating breakdown.
#[derive(Debug, Clone, Copy)]
pub struct PredictedPair {
    pub user: u32,
    pub item: u32,
    pub user_train_count: u32,
    pub prediction: f64,
    pub truth: f64,
}

fn rating_row(segment: String, pairs: &[&PredictedPair]) -> SegmentRow {
    let pts: Vec<(f64, f64)> = pairs.iter().map(|p| (p.prediction, p.truth)).collect();
    SegmentRow {
        segment,
        count: pairs.len(),
        metrics: BTreeMap::from([
            ("rmse".to_owned(), metrics::rmse(&pts)),
            ("mae".to_owned(), metrics::mae(&pts)),
        ]),
    }
}

/// Breakdown of rating-prediction results.
pub fn rating_segments(
    pairs: &[PredictedPair],
    item_users: &[u32],
    user_features: Option<&FeatureTable>,
    user_ids: &kindred_core::IdMap,
) -> Segments {
    let mut seg = Segments::default();
    let mut by_activity: Vec<(u32, SegmentRow)> =
        grouped(pairs, |p| Some(activity_bucket(p.user_train_count)))
            .into_iter()
            .map(|(label, group)| {
                let lo = group.iter().map(|p| p.user_train_count).min().unwrap_or(0);
                (lo, rating_row(label, &group))
            })
            .collect();
    by_activity.sort_by_key(|r| r.0);
    seg.user_activity = by_activity.into_iter().map(|r| r.1).collect();
    if let Some(g) = gap(&seg.user_activity, "rmse") {
        seg.gaps.insert("user_activity:rmse".to_owned(), g);
    }
    let buckets = popularity_buckets(item_users);
    let by_item = grouped(pairs, |p| {
        buckets.get(p.item as usize).map(|b| b.to_string())
    });
    for name in ["cold", "tail", "head"] {
        if let Some(group) = by_item.get(name) {
            seg.item_popularity.push(rating_row(name.to_owned(), group));
        }
    }
    for (column, groups) in user_groups(user_features, user_ids) {
        let rows: Vec<SegmentRow> =
            grouped(pairs, |p| groups.get(p.user as usize).cloned().flatten())
                .into_iter()
                .map(|(value, group)| rating_row(value, &group))
                .collect();
        if let Some(g) = gap(&rows, "rmse") {
            seg.gaps.insert(format!("{column}:rmse"), g);
        }
        seg.user_features.insert(column, rows);
    }
    seg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets() {
        assert_eq!(activity_bucket(0), "0");
        assert_eq!(activity_bucket(5), "1-9");
        assert_eq!(activity_bucket(20), "20-49");
        assert_eq!(activity_bucket(900), "500+");
        // 10 items with interactions: head = the top 2 by count.
        let counts = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
        let b = popularity_buckets(&counts);
        assert_eq!(b[0], "cold");
        assert_eq!(b[10], "head");
        assert_eq!(b[9], "head");
        assert_eq!(b[8], "tail");
    }

    #[test]
    fn feature_gaps_show_unequal_groups() {
        let mut features = FeatureTable::new();
        features
            .set(
                "a",
                "gender",
                kindred_core::FeatureValue::Categories(vec!["F".into()]),
            )
            .unwrap();
        features
            .set(
                "b",
                "gender",
                kindred_core::FeatureValue::Categories(vec!["M".into()]),
            )
            .unwrap();
        let ids = kindred_core::IdMap::from(vec!["a".to_string(), "b".to_string()]);
        let pairs = [
            PredictedPair {
                user: 0,
                item: 0,
                user_train_count: 3,
                prediction: 4.0,
                truth: 4.0,
            },
            PredictedPair {
                user: 1,
                item: 0,
                user_train_count: 30,
                prediction: 2.0,
                truth: 4.0,
            },
        ];
        let seg = rating_segments(&pairs, &[5], Some(&features), &ids);
        assert_eq!(seg.user_features["gender"].len(), 2);
        assert!((seg.gaps["gender:rmse"] - 2.0).abs() < 1e-12);
        assert_eq!(seg.user_activity[0].segment, "1-9");
        assert_eq!(seg.item_popularity[0].segment, "head");
    }
}
