//! What a contextual bandit sees of one (request, candidate) pair: the `features` list of an
//! `[exploration]` section, parsed once ([`FeatureSpec`]) and bound to a catalog
//! ([`FeatureEncoder`]), which turns a request's candidate pool into one row of numbers per
//! candidate.
//!
//! | name | value |
//! |---|---|
//! | `bias` | 1 |
//! | `score` | the model's score, min-max scaled over the pool (0 where it has none) |
//! | `rank` | `1 / (1 + position)` in the ranking's own list |
//! | `unscored` | 1 when the model does not score the item (e.g. it arrived after training) |
//! | `popularity` | the item's log-popularity among training users, in [0, 1] |
//! | `category_affinity` | largest share of the user's history (up to 500 items) in one of the item's categories |
//! | `weekend` | 1 on Saturday and Sunday (UTC) |
//! | `hour_sin`, `hour_cos` | the request's hour of day on the unit circle |
//! | `item:NAME` | numeric item feature `NAME` (0 where missing) |
//! | `user:NAME` | numeric user feature `NAME` (0 where missing or the user is unknown) |
//! | `context:KEY=VALUE` | 1 when the request's context has `KEY` = `VALUE` |
//! | `a*b` | the product of two of the above (e.g. `score*weekend`) |
//! | `position` | `1 / (1 + slot)` of the slot the item was shown in when learning; 1 when scoring |
//!
//! `position` separates where an item was shown from how good it is: lower slots are examined
//! less, so without it an item only ever shown low (a new item explored below the top) looks
//! worse than it is. When scoring, every candidate of a slot gets the same value, so the term
//! never reorders a list; it only keeps the other weights unbiased. It cannot be part of a
//! product.
//!
//! A shared linear model over these rows can only move items relative to each other through
//! item-dependent terms, so request-only terms (`weekend`, `hour_*`, `context:*`, `user:*`)
//! matter as crosses with item terms.

use std::collections::HashMap;

use kindred_core::{FeatureTable, IdMap, Result};
use kindred_models::ranking::RequestContext;

use crate::filters::aligned_numeric;
use crate::rerank::ItemCategories;

/// One named factor of a feature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeatureTerm {
    Bias,
    Score,
    Rank,
    Unscored,
    Popularity,
    CategoryAffinity,
    Weekend,
    HourSin,
    HourCos,
    Item(String),
    User(String),
    Context(String, String),
    Position,
}

impl FeatureTerm {
    fn parse(name: &str) -> std::result::Result<Self, String> {
        let name = name.trim();
        let named = |prefix: &str| {
            name.strip_prefix(prefix)
                .map(str::trim)
                .filter(|rest| !rest.is_empty())
                .map(str::to_owned)
        };
        Ok(match name {
            "bias" => Self::Bias,
            "score" => Self::Score,
            "rank" => Self::Rank,
            "unscored" => Self::Unscored,
            "popularity" => Self::Popularity,
            "category_affinity" => Self::CategoryAffinity,
            "weekend" => Self::Weekend,
            "hour_sin" => Self::HourSin,
            "hour_cos" => Self::HourCos,
            "position" => Self::Position,
            _ => {
                if let Some(column) = named("item:") {
                    Self::Item(column)
                } else if let Some(column) = named("user:") {
                    Self::User(column)
                } else if let Some(pair) = named("context:") {
                    let (key, value) = pair.split_once('=').ok_or_else(|| {
                        format!("`{name}`: a context feature is `context:KEY=VALUE`")
                    })?;
                    Self::Context(key.trim().to_owned(), value.trim().to_owned())
                } else {
                    return Err(format!(
                        "unknown feature `{name}` (bias, score, rank, unscored, popularity, \
                         category_affinity, weekend, hour_sin, hour_cos, position, item:NAME, user:NAME, \
                         context:KEY=VALUE, or a product a*b of two)"
                    ));
                }
            }
        })
    }
}

/// The parsed `features` list: each feature is the product of one or two terms.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FeatureSpec {
    pub features: Vec<Vec<FeatureTerm>>,
}

impl FeatureSpec {
    /// Parses every name; the error names the first bad one.
    pub fn parse(names: &[String]) -> std::result::Result<Self, String> {
        let mut features = Vec::with_capacity(names.len());
        for name in names {
            let terms: Vec<&str> = name.split('*').collect();
            if terms.len() > 2 {
                return Err(format!(
                    "`{name}`: a feature is a product of at most two terms"
                ));
            }
            if terms.len() == 2 && terms.iter().any(|t| t.trim() == "position") {
                return Err(format!("`{name}`: `position` cannot be part of a product"));
            }
            features.push(
                terms
                    .into_iter()
                    .map(FeatureTerm::parse)
                    .collect::<std::result::Result<Vec<_>, _>>()?,
            );
        }
        let mut distinct = names.to_vec();
        distinct.sort();
        distinct.dedup();
        if distinct.len() != names.len() {
            return Err("a feature is listed twice".to_owned());
        }
        Ok(Self { features })
    }

    /// Number of features (the model's dimension).
    pub fn dim(&self) -> usize {
        self.features.len()
    }

    fn any(&self, wanted: impl Fn(&FeatureTerm) -> bool) -> bool {
        self.features.iter().flatten().any(wanted)
    }

    /// Index of the `position` feature, if listed.
    pub fn position_index(&self) -> Option<usize> {
        self.features
            .iter()
            .position(|f| f.as_slice() == [FeatureTerm::Position])
    }

    /// Whether any feature reads item categories.
    pub fn needs_categories(&self) -> bool {
        self.any(|t| *t == FeatureTerm::CategoryAffinity)
    }
}

/// One candidate as the encoder sees it.
#[derive(Debug, Clone, Copy)]
pub struct Candidate {
    pub item: u32,
    /// The model's score (NaN: none).
    pub score: f32,
    /// Position in the ranking's own list.
    pub position: usize,
}

/// What the encoder reads of a request.
#[derive(Debug, Clone, Copy)]
pub struct EncodeRequest<'a> {
    pub user: Option<u32>,
    pub seen: &'a [u32],
    pub now: i64,
    pub context: Option<&'a RequestContext>,
}

/// A [`FeatureSpec`] bound to a catalog: columns resolved to per-item (per-user) values.
#[derive(Debug, Clone, Default)]
pub struct FeatureEncoder {
    spec: FeatureSpec,
    /// Per `item:NAME` term, values by catalog item index.
    item_columns: HashMap<String, Vec<f32>>,
    /// Per `user:NAME` term, values by catalog user index.
    user_columns: HashMap<String, Vec<f32>>,
}

/// How many of the user's history items `category_affinity` reads at most (the request's
/// `seen` list carries no order, so a long history is sampled by its end, not by recency).
const AFFINITY_HISTORY: usize = 500;

impl FeatureEncoder {
    /// Resolves the `item:` and `user:` columns; errors name the `exploration.features` key and
    /// what the catalog has.
    pub fn new(
        spec: FeatureSpec,
        item_ids: &IdMap,
        item_features: Option<&FeatureTable>,
        user_ids: &IdMap,
        user_features: Option<&FeatureTable>,
    ) -> Result<Self> {
        let mut item_columns = HashMap::new();
        let mut user_columns = HashMap::new();
        for term in spec.features.iter().flatten() {
            match term {
                FeatureTerm::Item(name) if !item_columns.contains_key(name) => {
                    let values = numeric_column(item_features, item_ids, name, "item")?;
                    item_columns.insert(name.clone(), values);
                }
                FeatureTerm::User(name) if !user_columns.contains_key(name) => {
                    let values = numeric_column(user_features, user_ids, name, "user")?;
                    user_columns.insert(name.clone(), values);
                }
                _ => {}
            }
        }
        Ok(Self {
            spec,
            item_columns,
            user_columns,
        })
    }

    pub fn dim(&self) -> usize {
        self.spec.dim()
    }

    pub fn spec(&self) -> &FeatureSpec {
        &self.spec
    }

    /// One row of `dim()` numbers per candidate, row-major.
    pub fn encode(
        &self,
        request: &EncodeRequest<'_>,
        candidates: &[Candidate],
        log_popularity: &[f64],
        categories: &ItemCategories,
    ) -> Vec<f64> {
        let (low, high) = candidates
            .iter()
            .map(|c| c.score)
            .filter(|s| s.is_finite())
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), s| {
                (lo.min(s), hi.max(s))
            });
        let spread = f64::from(high - low);
        let affinity = if self.spec.needs_categories() {
            History::of(request.seen, categories)
        } else {
            History::default()
        };
        let timestamp = request
            .context
            .and_then(|c| c.timestamp)
            .unwrap_or(request.now);
        let hour = timestamp.rem_euclid(86_400) as f64 / 3_600.0;
        let angle = hour / 24.0 * std::f64::consts::TAU;
        // 1970-01-01 was a Thursday: day 0 is weekday 3 counting Monday as 0.
        let weekday = (timestamp.div_euclid(86_400) + 3).rem_euclid(7);
        let term_value = |term: &FeatureTerm, c: &Candidate| -> f64 {
            match term {
                FeatureTerm::Bias => 1.0,
                FeatureTerm::Score => {
                    if !c.score.is_finite() {
                        0.0
                    } else if spread > 0.0 {
                        f64::from(c.score - low) / spread
                    } else {
                        1.0
                    }
                }
                FeatureTerm::Rank => 1.0 / (1.0 + c.position as f64),
                FeatureTerm::Unscored => f64::from(u8::from(!c.score.is_finite())),
                FeatureTerm::Popularity => {
                    log_popularity.get(c.item as usize).copied().unwrap_or(0.0)
                }
                FeatureTerm::CategoryAffinity => affinity.share(c.item, categories),
                FeatureTerm::Weekend => f64::from(u8::from(weekday >= 5)),
                FeatureTerm::HourSin => angle.sin(),
                FeatureTerm::HourCos => angle.cos(),
                FeatureTerm::Item(name) => self
                    .item_columns
                    .get(name)
                    .and_then(|v| v.get(c.item as usize))
                    .map_or(0.0, |&v| f64::from(v)),
                FeatureTerm::User(name) => request
                    .user
                    .and_then(|u| self.user_columns.get(name)?.get(u as usize))
                    .map_or(0.0, |&v| f64::from(v)),
                // Scored as if at the top; learned at the slot it was shown in.
                FeatureTerm::Position => 1.0,
                FeatureTerm::Context(key, value) => {
                    f64::from(u8::from(request.context.is_some_and(|c| {
                        c.entries.iter().any(|(k, v)| k == key && v == value)
                    })))
                }
            }
        };
        let mut rows = Vec::with_capacity(candidates.len() * self.dim());
        for c in candidates {
            for feature in &self.spec.features {
                rows.push(feature.iter().map(|t| term_value(t, c)).product());
            }
        }
        rows
    }
}

/// The categories of a user's recent history, for `category_affinity`.
#[derive(Debug, Default)]
struct History {
    /// Per category, how many history items carry it.
    counts: HashMap<u32, u32>,
    items: usize,
}

impl History {
    fn of(seen: &[u32], categories: &ItemCategories) -> Self {
        let mut history = Self::default();
        for &item in seen.iter().rev().take(AFFINITY_HISTORY) {
            if let Some(set) = categories.sets.get(item as usize) {
                history.items += 1;
                for &c in set {
                    *history.counts.entry(c).or_default() += 1;
                }
            }
        }
        history
    }

    /// The largest share of history items carrying one of the item's categories.
    fn share(&self, item: u32, categories: &ItemCategories) -> f64 {
        if self.items == 0 {
            return 0.0;
        }
        let best = categories.sets.get(item as usize).map_or(0, |set| {
            set.iter()
                .map(|c| self.counts.get(c).copied().unwrap_or(0))
                .max()
                .unwrap_or(0)
        });
        f64::from(best) / self.items as f64
    }
}

/// Values of numeric column `name` of `table`, by index of `ids` (0 where missing or NaN).
fn numeric_column(
    table: Option<&FeatureTable>,
    ids: &IdMap,
    name: &str,
    side: &str,
) -> Result<Vec<f32>> {
    let values = aligned_numeric(table, "exploration.features", name, ids)
        .map_err(|e| kindred_core::Error::InvalidInput(format!("{e} (feature `{side}:{name}`)")))?;
    Ok(values
        .into_iter()
        .map(|v| if v.is_finite() { v } else { 0.0 })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn parses_terms_products_and_refuses_unknown_names() {
        let spec = FeatureSpec::parse(&names(&["bias", "score*weekend", "context:device=mobile"]))
            .unwrap();
        assert_eq!(spec.dim(), 3);
        assert_eq!(
            spec.features[1],
            vec![FeatureTerm::Score, FeatureTerm::Weekend]
        );
        assert_eq!(
            spec.features[2],
            vec![FeatureTerm::Context("device".into(), "mobile".into())]
        );
        for bad in [
            "colour",
            "score*rank*bias",
            "context:device",
            "item:",
            "position*score",
        ] {
            let err = FeatureSpec::parse(&names(&[bad])).unwrap_err();
            assert!(err.contains('`'), "{bad}: {err}");
        }
        assert!(FeatureSpec::parse(&names(&["bias", "bias"])).is_err());
    }

    #[test]
    fn encodes_scores_ranks_time_and_context() {
        let spec = FeatureSpec::parse(&names(&[
            "bias",
            "score",
            "rank",
            "unscored",
            "weekend",
            "context:device=mobile",
            "score*context:device=mobile",
        ]))
        .unwrap();
        let encoder = FeatureEncoder::new(spec, &IdMap::new(), None, &IdMap::new(), None).unwrap();
        let context = RequestContext {
            // Saturday 2021-01-02 12:00 UTC.
            timestamp: Some(1_609_588_800),
            entries: vec![("device".into(), "mobile".into())],
        };
        let request = EncodeRequest {
            user: None,
            seen: &[],
            now: 0,
            context: Some(&context),
        };
        let candidates = [
            Candidate {
                item: 0,
                score: 3.0,
                position: 0,
            },
            Candidate {
                item: 1,
                score: 1.0,
                position: 1,
            },
            Candidate {
                item: 2,
                score: f32::NAN,
                position: 2,
            },
        ];
        let rows = encoder.encode(&request, &candidates, &[], &ItemCategories::default());
        assert_eq!(&rows[0..7], &[1.0, 1.0, 1.0, 0.0, 1.0, 1.0, 1.0]);
        assert_eq!(&rows[7..14], &[1.0, 0.0, 0.5, 0.0, 1.0, 1.0, 0.0]);
        assert_eq!(&rows[14..21], &[1.0, 0.0, 1.0 / 3.0, 1.0, 1.0, 1.0, 0.0]);
    }

    #[test]
    fn category_affinity_is_the_share_of_history_in_the_items_best_category() {
        let categories = ItemCategories {
            sets: vec![vec![0], vec![0, 1], vec![1], vec![2]],
            n_categories: 3,
        };
        let history = History::of(&[0, 1, 2], &categories);
        assert!((history.share(3, &categories) - 0.0).abs() < 1e-12);
        assert!((history.share(0, &categories) - 2.0 / 3.0).abs() < 1e-12);
        assert!((history.share(1, &categories) - 2.0 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn a_missing_item_column_names_the_key() {
        let spec = FeatureSpec::parse(&names(&["item:price"])).unwrap();
        let err = FeatureEncoder::new(spec, &IdMap::new(), None, &IdMap::new(), None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("exploration.features"), "{err}");
    }
}
