//! The fallback chain that fills a list when the personal model cannot (unknown user, no
//! history, everything scored already seen or filtered out), and the source every item of a
//! final list carries.
//!
//! The chain, in order: the personal model (`model:<name>`), fold-in or content scores the
//! caller supplies (`fold-in:<name>`), popularity within the user's segment
//! (`segment:<column>=<value>`, distinct training users of the item sharing the user's value of a
//! categorical user feature), trending (`trending`, interactions weighted by
//! 2^(-age / half-life)), global popularity (`popular`, distinct training users) and the newest
//! items (`latest`, by an item date column or the item's first interaction). `latest` orders the
//! whole catalog (undated items last), so the chain can always fill a list from whatever passes
//! the hard filters.
//!
//! [`FallbackCatalog`] holds each stage's item order, computed once per training set. Trending is
//! ranked relative to the newest training interaction: scaling every weight by the same
//! 2^(-(now - newest) / half-life) does not change the order, so the order is the one of any
//! request time `now` at or after the training data (requests dated before it would need the log
//! cut at `now`, which a serving catalog does not keep).

use std::fmt;
use std::sync::Arc;

use kindred_core::features::ColumnData;
use kindred_core::interactions::NO_TIMESTAMP;
use kindred_core::{Error, FeatureTable, IdMap, Result};

use crate::config::FallbackConfig;
use crate::date_unit::DateUnit;
use crate::filters::{aligned_numeric, Relaxation};

/// Where an item of a final list came from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Source {
    /// The personal model's scores, by model name (shared: every item of a list carries it).
    Model(Arc<str>),
    /// Fold-in or content scores the caller supplied, by name.
    FoldIn(Arc<str>),
    /// Popularity among training users sharing the user's value of `column`.
    Segment {
        column: String,
        value: String,
    },
    Trending,
    Popular,
    Latest,
    /// A `[[pin]]` of the config.
    Pinned,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let named = |f: &mut fmt::Formatter<'_>, kind: &str, name: &str| {
            if name.is_empty() {
                f.write_str(kind)
            } else {
                write!(f, "{kind}:{name}")
            }
        };
        match self {
            Source::Model(name) => named(f, "model", name),
            Source::FoldIn(name) => named(f, "fold-in", name),
            Source::Segment { column, value } => write!(f, "segment:{column}={value}"),
            Source::Trending => f.write_str("trending"),
            Source::Popular => f.write_str("popular"),
            Source::Latest => f.write_str("latest"),
            Source::Pinned => f.write_str("pinned"),
        }
    }
}

/// The source of one listed item and, when a soft filter had to be relaxed to list it, the
/// constraint it breaks. Its string form (`model:als`, `relaxed:date_window:popular`) is stable:
/// it is what JSON results and logs record.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ItemSource {
    pub source: Source,
    pub relaxed: Option<Relaxation>,
}

impl fmt::Display for ItemSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.relaxed {
            Some(r) => write!(f, "relaxed:{r}:{}", self.source),
            None => self.source.fmt(f),
        }
    }
}

/// Per-training-set item orders of the fallback stages.
#[derive(Debug, Clone, Default)]
pub struct FallbackCatalog {
    /// Distinct training users per item.
    pub item_users: Vec<u32>,
    /// Items with at least one training user, most users first (ties: lower index).
    popular: Vec<u32>,
    /// Items with a timestamped interaction, highest decayed weight first.
    trending: Vec<u32>,
    /// Every item, newest first; undated items last in index order.
    latest: Vec<u32>,
    segment_column: Option<String>,
    segment_vocab: IdMap,
    /// Per segment value, its items by distinct users of the segment (most first).
    segment_lists: Vec<Vec<u32>>,
    /// Per user index, its segment value (the first value when a user has several).
    user_segment: Vec<Option<u32>>,
}

/// The training interactions the catalog is built from, as parallel index columns.
#[derive(Debug, Clone, Copy)]
pub struct TrainingLog<'a> {
    pub users: &'a [u32],
    pub items: &'a [u32],
    /// Unix seconds, `NO_TIMESTAMP` where unknown.
    pub timestamps: &'a [i64],
}

/// Items with a positive key, highest key first, ties by lower index.
fn order_by<K: PartialOrd + Copy>(keys: &[K], keep: impl Fn(K) -> bool) -> Vec<u32> {
    let mut items: Vec<u32> = (0..keys.len() as u32)
        .filter(|&i| keep(keys[i as usize]))
        .collect();
    items.sort_by(|&a, &b| {
        keys[b as usize]
            .partial_cmp(&keys[a as usize])
            .unwrap_or(std::cmp::Ordering::Equal)
            .then(a.cmp(&b))
    });
    items
}

/// A numeric item column holding item dates, and the config key that named it (for errors).
#[derive(Debug, Clone, Copy)]
pub struct ItemDateColumn<'a> {
    pub key: &'a str,
    pub name: &'a str,
    pub unit: DateUnit,
}

/// When each item of `item_ids` appeared, in Unix seconds (NaN when unknown): its value in the
/// date `column` where it has one, else its first interaction in the training log.
pub fn item_dates(
    log: TrainingLog<'_>,
    item_ids: &IdMap,
    item_features: Option<&FeatureTable>,
    column: Option<ItemDateColumn<'_>>,
) -> Result<Vec<f64>> {
    let mut dates = vec![f64::NAN; item_ids.len()];
    for (&i, &t) in log.items.iter().zip(log.timestamps) {
        if let (Some(first), true) = (dates.get_mut(i as usize), t != NO_TIMESTAMP) {
            if first.is_nan() || (t as f64) < *first {
                *first = t as f64;
            }
        }
    }
    if let Some(c) = column {
        let values = aligned_numeric(item_features, c.key, c.name, item_ids)?;
        for (date, v) in dates.iter_mut().zip(values) {
            if !v.is_nan() {
                *date = c.unit.to_unix_seconds(f64::from(v));
            }
        }
    }
    Ok(dates)
}

impl FallbackCatalog {
    /// Builds the stage orders for `n_items` items and the users of `user_ids` from the
    /// training log, the item features (for `latest_column`) and the user features (for
    /// `segment_column`).
    pub fn new(
        config: &FallbackConfig,
        log: TrainingLog<'_>,
        item_ids: &IdMap,
        item_features: Option<&FeatureTable>,
        user_ids: &IdMap,
        user_features: Option<&FeatureTable>,
    ) -> Result<Self> {
        let n_items = item_ids.len();
        if log.users.len() != log.items.len() || log.items.len() != log.timestamps.len() {
            return Err(Error::InvalidInput(
                "fallback catalog: the training log's columns differ in length".to_owned(),
            ));
        }
        if let Some(&bad) = log.items.iter().find(|&&i| i as usize >= n_items) {
            return Err(Error::InvalidInput(format!(
                "fallback catalog: item index {bad} outside a catalog of {n_items} items"
            )));
        }
        // Distinct (item, user) pairs, sorted by item.
        let mut pairs: Vec<(u32, u32)> = log
            .items
            .iter()
            .copied()
            .zip(log.users.iter().copied())
            .collect();
        pairs.sort_unstable();
        pairs.dedup();
        let mut item_users = vec![0u32; n_items];
        for &(i, _) in &pairs {
            item_users[i as usize] += 1;
        }
        let popular = order_by(&item_users, |c| c > 0);

        let newest = log
            .timestamps
            .iter()
            .copied()
            .filter(|&t| t != NO_TIMESTAMP)
            .max();
        let mut trending_weight = vec![0f64; n_items];
        if let Some(newest) = newest {
            let half_life = config.trending_half_life_days * 86_400.0;
            for (&i, &t) in log.items.iter().zip(log.timestamps) {
                if t != NO_TIMESTAMP {
                    let age = (newest - t) as f64;
                    trending_weight[i as usize] += (-age / half_life).exp2();
                }
            }
        }
        let trending = order_by(&trending_weight, |w| w > 0.0);

        let column = config.latest_column.as_deref().map(|name| ItemDateColumn {
            key: "fallback.latest_column",
            name,
            unit: config.latest_unit,
        });
        let dates = item_dates(log, item_ids, item_features, column)?;
        let mut latest = order_by(&dates, |d: f64| !d.is_nan());
        latest.extend((0..n_items as u32).filter(|&i| dates[i as usize].is_nan()));

        let mut out = Self {
            item_users,
            popular,
            trending,
            latest,
            ..Self::default()
        };
        if let Some(column) = &config.segment_column {
            out.build_segments(column, &pairs, user_ids, user_features, n_items)?;
        }
        Ok(out)
    }

    fn build_segments(
        &mut self,
        column: &str,
        pairs: &[(u32, u32)],
        user_ids: &IdMap,
        user_features: Option<&FeatureTable>,
        n_items: usize,
    ) -> Result<()> {
        let data = user_features
            .and_then(|f| f.column(column))
            .map(|c| &c.data);
        let Some(ColumnData::Categorical { vocab, values }) = data else {
            let names: Vec<String> = user_features
                .map(|f| {
                    f.columns()
                        .iter()
                        .filter(|c| matches!(c.data, ColumnData::Categorical { .. }))
                        .map(|c| c.name.clone())
                        .collect()
                })
                .unwrap_or_default();
            return Err(Error::InvalidInput(format!(
                "rank config: fallback.segment_column `{column}` is not a categorical user feature \
                 (categorical user features: {})",
                if names.is_empty() {
                    "none".to_owned()
                } else {
                    names.join(", ")
                }
            )));
        };
        let rows = user_features.map(|f| f.align(user_ids)).unwrap_or_default();
        self.user_segment = rows
            .into_iter()
            .map(|r| r.and_then(|r| values[r as usize].first().copied()))
            .collect();
        let mut counts = vec![vec![0u32; n_items]; vocab.len()];
        for &(i, u) in pairs {
            if let Some(Some(s)) = self.user_segment.get(u as usize) {
                counts[*s as usize][i as usize] += 1;
            }
        }
        self.segment_lists = counts.iter().map(|c| order_by(c, |n| n > 0)).collect();
        self.segment_vocab = vocab.clone();
        self.segment_column = Some(column.to_owned());
        Ok(())
    }

    /// The segment of a request: the `segment` value given (unknown values: none), else the
    /// known user's own.
    pub fn segment_of(&self, user: Option<u32>, segment: Option<&str>) -> Option<u32> {
        self.segment_column.as_ref()?;
        match segment {
            Some(value) => self.segment_vocab.get(value),
            None => self.user_segment.get(user? as usize).copied().flatten(),
        }
    }

    /// The source label and item order of segment `s`.
    pub fn segment(&self, s: u32) -> Option<(Source, &[u32])> {
        let column = self.segment_column.as_ref()?;
        let list = self.segment_lists.get(s as usize)?;
        Some((
            Source::Segment {
                column: column.clone(),
                value: self.segment_vocab.external(s).to_owned(),
            },
            list,
        ))
    }

    /// Items by distinct training users, most first.
    pub fn popular(&self) -> &[u32] {
        &self.popular
    }

    /// Items by time-decayed interactions, most first.
    pub fn trending(&self) -> &[u32] {
        &self.trending
    }

    /// Every item, newest first.
    pub fn latest(&self) -> &[u32] {
        &self.latest
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kindred_core::FeatureValue;

    fn ids(names: &[&str]) -> IdMap {
        let mut m = IdMap::new();
        names.iter().for_each(|n| {
            m.intern(n);
        });
        m
    }

    const DAY: i64 = 86_400;

    #[test]
    fn stage_orders_by_hand() {
        // Items 0..4, users 0..2. Item 0: users 0, 1, 2 long ago; item 1: user 0 twice (one
        // distinct user) today; item 2: user 1 seven days ago; item 3: no interaction.
        let users = [0, 1, 2, 0, 0, 1];
        let items = [0, 0, 0, 1, 1, 2];
        let t = [0, 0, 0, 70 * DAY, 70 * DAY, 63 * DAY];
        let config = FallbackConfig::default(); // half-life 7 days
        let items_map = ids(&["a", "b", "c", "d"]);
        let users_map = ids(&["u0", "u1", "u2"]);
        let mut uf = FeatureTable::new();
        for (u, job) in [("u0", "writer"), ("u1", "writer"), ("u2", "artist")] {
            uf.set(u, "occupation", FeatureValue::Categories(vec![job.into()]))
                .unwrap();
        }
        let log = TrainingLog {
            users: &users,
            items: &items,
            timestamps: &t,
        };
        let config = FallbackConfig {
            segment_column: Some("occupation".into()),
            ..config
        };
        let c =
            FallbackCatalog::new(&config, log, &items_map, None, &users_map, Some(&uf)).unwrap();
        assert_eq!(c.item_users, vec![3, 1, 1, 0]);
        assert_eq!(c.popular(), &[0, 1, 2]);
        // Weights relative to day 70: item 1: 2 x 1 = 2; item 2: 2^-1 = 0.5; item 0:
        // 3 x 2^-10 = 0.003.
        assert_eq!(c.trending(), &[1, 2, 0]);
        // First interactions: item 1 day 70, item 2 day 63, item 0 day 0, item 3 never.
        assert_eq!(c.latest(), &[1, 2, 0, 3]);
        // Writers (u0, u1): item 0 has 2, items 1 and 2 one each. Artists (u2): item 0.
        let writer = c.segment_of(Some(0), None).unwrap();
        let (source, list) = c.segment(writer).unwrap();
        assert_eq!(source.to_string(), "segment:occupation=writer");
        assert_eq!(list, &[0, 1, 2]);
        let artist = c.segment_of(None, Some("artist")).unwrap();
        assert_eq!(c.segment(artist).unwrap().1, &[0]);
        assert_eq!(c.segment_of(None, Some("pilot")), None);
        assert_eq!(c.segment_of(Some(9), None), None);
    }

    #[test]
    fn latest_column_orders_by_date_and_errors_name_columns() {
        let items_map = ids(&["a", "b", "c"]);
        let mut f = FeatureTable::new();
        f.set("a", "year", FeatureValue::Number(1990.0)).unwrap();
        f.set("b", "year", FeatureValue::Number(2001.0)).unwrap();
        let config = FallbackConfig {
            latest_column: Some("year".into()),
            latest_unit: crate::date_unit::DateUnit::Year,
            ..FallbackConfig::default()
        };
        let log = TrainingLog {
            users: &[],
            items: &[],
            timestamps: &[],
        };
        let c =
            FallbackCatalog::new(&config, log, &items_map, Some(&f), &IdMap::new(), None).unwrap();
        assert_eq!(c.latest(), &[1, 0, 2]);
        assert!(c.popular().is_empty() && c.trending().is_empty());
        let bad = FallbackConfig {
            segment_column: Some("job".into()),
            ..FallbackConfig::default()
        };
        let err = FallbackCatalog::new(&bad, log, &items_map, Some(&f), &IdMap::new(), None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("fallback.segment_column `job`"), "{err}");
        let bad = FallbackConfig {
            latest_column: Some("released".into()),
            ..FallbackConfig::default()
        };
        let err = FallbackCatalog::new(&bad, log, &items_map, Some(&f), &IdMap::new(), None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("item features: year"), "{err}");
    }

    #[test]
    fn source_strings_are_stable() {
        let s = |source, relaxed| ItemSource { source, relaxed }.to_string();
        assert_eq!(s(Source::Model("als".into()), None), "model:als");
        assert_eq!(s(Source::FoldIn(Arc::from("")), None), "fold-in");
        assert_eq!(s(Source::Popular, None), "popular");
        assert_eq!(s(Source::Pinned, None), "pinned");
        assert_eq!(
            s(Source::Trending, Some(Relaxation::DateWindow)),
            "relaxed:date_window:trending"
        );
    }
}
