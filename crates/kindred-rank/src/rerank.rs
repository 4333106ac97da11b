//! The re-ranking pipeline: turns a model's top-scored candidates into the final list with one
//! greedy pass that combines relevance, a long-tail boost, MMR diversity, Steck calibration and
//! per-category caps. Greedy selection is prefix-consistent (the first k of a longer re-ranked
//! list are the k-list), so evaluation can re-rank once to the deepest cut-off it needs.
//!
//! Each step picks the remaining candidate maximising
//! `(1 - c) * ((1 - m) * rel(i) - m * max_{j picked} sim(i, j)) - c * KL(p || q̃(picked + i))`
//! with `m` = `diversity.mmr_lambda`, `c` = `calibration.weight` and the multi-objective
//! relevance term
//! `rel(i) = r * norm(score_i) + Σ_b w_b * norm(column_b)(i) + n * novelty_u(i) - p * pop(i)`:
//! `r` = `objectives.relevance`, the score min-max normalised over the candidates; `w_b` the
//! `objectives.boost` weights of numeric item columns min-max normalised over the catalog;
//! `n` = `objectives.novelty` with novelty_u(i) = 1 - cos(item's categories, user's history
//! category distribution); `p` = `popularity.penalty` times the item's log-popularity.
//! With every weight at 0 (relevance 1) and no cap the output is the candidates' own order.

use kindred_core::features::ColumnData;
use kindred_core::{Error, FeatureTable, IdMap, Result, Scored};

use crate::calibration::{category_distribution, CategoryMass};
use crate::config::{BoostConfig, RankConfig};
use crate::mmr::category_similarity;

/// Category sets per item index, sorted and distinct.
#[derive(Debug, Clone, Default)]
pub struct ItemCategories {
    pub sets: Vec<Vec<u32>>,
    pub n_categories: usize,
}

impl ItemCategories {
    /// Categories of the items of `ids` from `column` of `features` (None: every categorical
    /// column, concatenated). Errors when the column is missing or not categorical.
    pub fn from_features(
        features: &FeatureTable,
        ids: &IdMap,
        column: Option<&str>,
    ) -> Result<Self> {
        let Some(name) = column else {
            let n_categories = features
                .columns()
                .iter()
                .map(|c| match &c.data {
                    ColumnData::Categorical { vocab, .. } => vocab.len(),
                    _ => 0,
                })
                .sum();
            return Ok(Self::new(features.categorical_vectors(ids), n_categories));
        };
        let col =
            features.column(name).ok_or_else(|| {
                let names: Vec<&str> = features.columns().iter().map(|c| c.name.as_str()).collect();
                Error::InvalidInput(format!(
                "rank config: category_column `{name}` is not an item feature (item features: {})",
                if names.is_empty() { "none".to_owned() } else { names.join(", ") }
            ))
            })?;
        let ColumnData::Categorical { vocab, values } = &col.data else {
            return Err(Error::InvalidInput(format!(
                "rank config: category_column `{name}` is not a categorical item feature"
            )));
        };
        let sets = features
            .align(ids)
            .into_iter()
            .map(|row| row.map_or_else(Vec::new, |r| values[r as usize].clone()))
            .collect();
        Ok(Self::new(sets, vocab.len()))
    }

    /// From explicit sets (sorted and deduplicated here).
    pub fn new(mut sets: Vec<Vec<u32>>, n_categories: usize) -> Self {
        for s in &mut sets {
            s.sort_unstable();
            s.dedup();
        }
        Self { sets, n_categories }
    }

    fn of(&self, item: u32) -> &[u32] {
        self.sets.get(item as usize).map_or(&[], Vec::as_slice)
    }
}

/// A configured re-ranker for one catalog (categories and popularity fixed per training set).
pub struct Reranker<'a> {
    config: &'a RankConfig,
    categories: &'a ItemCategories,
    /// Per item: ln(1 + users) / ln(1 + max users), in [0, 1].
    popularity: &'a [f64],
    /// Per item: Σ weight * normalised column value of the `objectives.boost` columns (empty:
    /// no boost). Borrowed, so building a re-ranker per request costs nothing.
    boost: &'a [f64],
}

/// The summed, weighted boost of every item of `ids`: each `objectives.boost` column min-max
/// normalised over the items of `ids` that have a value, missing values 0. Errors name the
/// column when it is not a numeric item feature.
pub fn item_boosts(
    features: Option<&FeatureTable>,
    ids: &IdMap,
    boosts: &[BoostConfig],
) -> Result<Vec<f64>> {
    let mut total = vec![0.0f64; ids.len()];
    for boost in boosts {
        let not_numeric = |why: &str| {
            Error::InvalidInput(format!(
                "rank config: objectives.boost column `{}` {why}",
                boost.column
            ))
        };
        let features =
            features.ok_or_else(|| not_numeric("needs item features, and the dataset has none"))?;
        let column = features.column(&boost.column).ok_or_else(|| {
            let names: Vec<&str> = features.columns().iter().map(|c| c.name.as_str()).collect();
            not_numeric(&format!(
                "is not an item feature (item features: {})",
                names.join(", ")
            ))
        })?;
        let ColumnData::Numeric(values) = &column.data else {
            return Err(not_numeric("is not a numeric item feature"));
        };
        let aligned: Vec<Option<f64>> = features
            .align(ids)
            .into_iter()
            .map(|row| {
                row.and_then(|r| values.get(r as usize).copied())
                    .map(f64::from)
                    .filter(|v| v.is_finite())
            })
            .collect();
        let (lo, hi) = aligned
            .iter()
            .flatten()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
                (lo.min(v), hi.max(v))
            });
        for (t, v) in total.iter_mut().zip(&aligned) {
            if let Some(v) = v {
                let norm = if hi > lo { (v - lo) / (hi - lo) } else { 1.0 };
                *t += boost.weight * norm;
            }
        }
    }
    Ok(total)
}

/// Per item: ln(1 + users) / ln(1 + users of the most popular item), in [0, 1]; `item_users[i]`
/// is how many training users have item i.
pub fn log_popularity(item_users: &[u32]) -> Vec<f64> {
    let max = item_users.iter().copied().max().unwrap_or(0) as f64;
    item_users
        .iter()
        .map(|&u| {
            if max > 0.0 {
                (1.0 + u as f64).ln() / (1.0 + max).ln()
            } else {
                0.0
            }
        })
        .collect()
}

impl<'a> Reranker<'a> {
    /// `popularity[i]`: item i's [`log_popularity`] (read only by the popularity penalty; may be
    /// empty without one). Borrowed, so a re-ranker costs nothing to build per request.
    pub fn new(
        config: &'a RankConfig,
        categories: &'a ItemCategories,
        popularity: &'a [f64],
    ) -> Self {
        Self {
            config,
            categories,
            popularity,
            boost: &[],
        }
    }

    /// Adds per-item boosts (from [`item_boosts`]) to the relevance term.
    pub fn with_boost(mut self, boost: &'a [f64]) -> Self {
        self.boost = boost;
        self
    }

    /// How many top-scored items to hand to [`Reranker::rerank`] for a list of `depth`.
    pub fn pool_size(&self, depth: usize) -> usize {
        self.config.candidates.max(depth)
    }

    /// The calibration target of a user, also the profile personal novelty is measured
    /// against: the category distribution of their history.
    pub fn target(&self, history: impl IntoIterator<Item = u32>) -> Vec<f64> {
        if self.config.needs_profile() {
            category_distribution(history, &self.categories.sets, self.categories.n_categories)
        } else {
            Vec::new()
        }
    }

    /// Re-ranks `candidates` (best first by score) into a list of min(k, candidates) distinct
    /// candidates; `target` is the user's [`Reranker::target`].
    pub fn rerank(&self, candidates: &[Scored], k: usize, target: &[f64]) -> Vec<Scored> {
        let cfg = self.config;
        let n = candidates.len();
        let want = k.min(n);
        let mmr = cfg.diversity.mmr_lambda;
        let calib = if target.iter().any(|&p| p > 0.0) {
            cfg.calibration.weight
        } else {
            0.0
        };
        let relevance = self.relevance(candidates, target);
        if mmr == 0.0
            && calib == 0.0
            && cfg.diversity.max_per_category.is_none()
            && relevance.iter().all(|v| !v.is_nan())
        {
            // Each candidate's value is fixed, so the greedy walk below is a stable sort by
            // relevance (ties keep the model's order): n log n instead of n x k, which matters
            // when an exploration pool asks for many more items than a list shows.
            let mut order: Vec<usize> = (0..n).collect();
            order.sort_unstable_by(|&a, &b| {
                relevance[b]
                    .partial_cmp(&relevance[a])
                    .unwrap_or(std::cmp::Ordering::Equal)
                    .then(a.cmp(&b))
            });
            return order
                .into_iter()
                .take(want)
                .map(|i| candidates[i])
                .collect();
        }
        let cats: Vec<&[u32]> = candidates
            .iter()
            .map(|c| self.categories.of(c.item))
            .collect();
        let mut taken = vec![false; n];
        let mut max_sim = vec![0.0f64; n];
        let mut per_category = vec![0usize; self.categories.n_categories];
        let mut mass = CategoryMass::new(self.categories.n_categories);
        let mut out = Vec::with_capacity(want);
        let fits_caps = |i: usize, counts: &[usize]| match cfg.diversity.max_per_category {
            Some(cap) => cats[i]
                .iter()
                .all(|&g| counts.get(g as usize).is_none_or(|&c| c < cap)),
            None => true,
        };
        while out.len() < want {
            let value = |i: usize| {
                let mut v = (1.0 - calib) * ((1.0 - mmr) * relevance[i] - mmr * max_sim[i]);
                if calib > 0.0 {
                    v -= calib * mass.kl_with(target, cats[i], cfg.calibration.smoothing);
                }
                v
            };
            let best_of = |feasible_only: bool| {
                let mut best: Option<(usize, f64)> = None;
                let open = (0..n).filter(|&i| !taken[i]);
                for i in open.filter(|&i| !feasible_only || fits_caps(i, &per_category)) {
                    let v = value(i);
                    // Strictly greater: ties keep the model's order.
                    if best.is_none_or(|(_, b)| v > b) {
                        best = Some((i, v));
                    }
                }
                best.map(|(i, _)| i)
            };
            // When no candidate fits the caps, fill from the rest rather than return a short list.
            let Some(choice) = best_of(true).or_else(|| best_of(false)) else {
                break;
            };
            taken[choice] = true;
            out.push(candidates[choice]);
            for &g in cats[choice] {
                if let Some(c) = per_category.get_mut(g as usize) {
                    *c += 1;
                }
            }
            if calib > 0.0 {
                mass.add(cats[choice]);
            }
            if mmr > 0.0 {
                for i in (0..n).filter(|&i| !taken[i]) {
                    let s = category_similarity(cats[i], cats[choice], cfg.diversity.similarity);
                    max_sim[i] = max_sim[i].max(s);
                }
            }
        }
        out
    }

    /// The multi-objective relevance term: scores min-max normalised over the candidates (all 1
    /// when they are equal) times `objectives.relevance`, plus boosts and personal novelty,
    /// minus the popularity penalty. Normalising makes the weights mean the same for every model.
    fn relevance(&self, candidates: &[Scored], profile: &[f64]) -> Vec<f64> {
        let finite = candidates
            .iter()
            .map(|c| c.score as f64)
            .filter(|s| s.is_finite());
        let (lo, hi) = finite.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), s| {
            (lo.min(s), hi.max(s))
        });
        let penalty = self.config.popularity.penalty;
        let weight = self.config.objectives.relevance;
        let novelty = self.config.objectives.novelty;
        let profile_norm = profile.iter().map(|p| p * p).sum::<f64>().sqrt();
        candidates
            .iter()
            .map(|c| {
                let s = c.score as f64;
                let rel = if !s.is_finite() {
                    0.0
                } else if hi > lo {
                    (s - lo) / (hi - lo)
                } else {
                    1.0
                };
                let pop = self.popularity.get(c.item as usize).copied().unwrap_or(0.0);
                let mut value = weight * rel - penalty * pop;
                value += self.boost.get(c.item as usize).copied().unwrap_or(0.0);
                if novelty > 0.0 {
                    value += novelty
                        * personal_novelty(self.categories.of(c.item), profile, profile_norm);
                }
                value
            })
            .collect()
    }
}

/// 1 - cosine between an item's binary category vector and the user's category distribution;
/// 0 when either is empty (nothing is known, so nothing is claimed novel).
fn personal_novelty(categories: &[u32], profile: &[f64], profile_norm: f64) -> f64 {
    if categories.is_empty() || profile_norm <= 0.0 {
        return 0.0;
    }
    let dot: f64 = categories
        .iter()
        .map(|&g| profile.get(g as usize).copied().unwrap_or(0.0))
        .sum();
    1.0 - dot / ((categories.len() as f64).sqrt() * profile_norm)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{CalibrationConfig, DiversityConfig, PopularityConfig};
    use proptest::prelude::*;

    fn scored(scores: &[f32]) -> Vec<Scored> {
        scores
            .iter()
            .enumerate()
            .map(|(i, &s)| Scored {
                item: i as u32,
                score: s,
            })
            .collect()
    }

    fn items(list: &[Scored]) -> Vec<u32> {
        list.iter().map(|s| s.item).collect()
    }

    #[test]
    fn mmr_example_by_hand() {
        // Same example as mmr::tests: normalised relevance 1, 0.8, 0.
        let cats = ItemCategories::new(vec![vec![0], vec![0], vec![1]], 2);
        let config = RankConfig {
            diversity: DiversityConfig {
                mmr_lambda: 0.5,
                ..Default::default()
            },
            ..Default::default()
        };
        let r = Reranker::new(&config, &cats, &[0.0; 3]);
        assert_eq!(
            items(&r.rerank(&scored(&[1.0, 0.9, 0.5]), 3, &[])),
            vec![0, 2, 1]
        );
    }

    #[test]
    fn calibration_example_by_hand() {
        // History all category 1; candidates 0, 1 in category 0 score higher than 2 in category 1.
        // Relevance 1, 0.5, 0. Weight 0.5, alpha 0.01: first step item 0 costs
        // 0.5*1 - 0.5*KL((0,1)||(0.99,0.01)) = 0.5 - 0.5 ln(100) = -1.80; item 2 costs
        // 0.5*0 - 0.5*KL((0,1)||(0,1)) = 0, so calibration puts item 2 first.
        let cats = ItemCategories::new(vec![vec![0], vec![0], vec![1]], 2);
        let config = RankConfig {
            calibration: CalibrationConfig {
                weight: 0.5,
                smoothing: 0.01,
            },
            ..Default::default()
        };
        let r = Reranker::new(&config, &cats, &[0.0; 3]);
        let target = r.target([2u32]);
        assert_eq!(target, vec![0.0, 1.0]);
        assert_eq!(
            items(&r.rerank(&scored(&[1.0, 0.75, 0.5]), 2, &target)),
            vec![2, 0]
        );
        // Weight 0.01: 0.99*1 - 0.01*4.6 = 0.944 > 0, relevance wins.
        let light = RankConfig {
            calibration: CalibrationConfig {
                weight: 0.01,
                smoothing: 0.01,
            },
            ..Default::default()
        };
        let r = Reranker::new(&light, &cats, &[0.0; 3]);
        assert_eq!(
            items(&r.rerank(&scored(&[1.0, 0.75, 0.5]), 1, &target)),
            vec![0]
        );
    }

    #[test]
    fn popularity_penalty_by_hand() {
        // Relevance 1 and 0.9 (scores 1.0, 0.95, 0.5); item 0 is the most popular (pop 1),
        // item 1 has ln(2)/ln(101) = 0.150. Penalty 0.5: 1 - 0.5 = 0.5 < 0.9 - 0.075.
        let cats = ItemCategories::default();
        let config = RankConfig {
            popularity: PopularityConfig { penalty: 0.5 },
            ..Default::default()
        };
        let popularity = log_popularity(&[100, 1, 0]);
        let r = Reranker::new(&config, &cats, &popularity);
        assert_eq!(
            items(&r.rerank(&scored(&[1.0, 0.95, 0.5]), 3, &[])),
            vec![1, 0, 2]
        );
    }

    #[test]
    fn caps_fall_back_instead_of_short_lists() {
        let cats = ItemCategories::new(vec![vec![0], vec![0], vec![0], vec![1]], 2);
        let config = RankConfig {
            diversity: DiversityConfig {
                max_per_category: Some(1),
                ..Default::default()
            },
            ..Default::default()
        };
        let r = Reranker::new(&config, &cats, &[0.0; 4]);
        // One of category 0, one of category 1, then the caps cannot be met: fill by relevance.
        assert_eq!(
            items(&r.rerank(&scored(&[4.0, 3.0, 2.0, 1.0]), 4, &[])),
            vec![0, 3, 1, 2]
        );
    }

    #[test]
    fn boost_columns_by_hand() {
        // Margins 10, 30, 20 and one item without a value: normalised 0, 1, 0.5, and 0.
        let mut features = FeatureTable::new();
        for (id, margin) in [("a", 10.0), ("b", 30.0), ("c", 20.0)] {
            features
                .set(id, "margin", kindred_core::FeatureValue::Number(margin))
                .unwrap();
        }
        features
            .set(
                "d",
                "genre",
                kindred_core::FeatureValue::Categories(vec!["x".into()]),
            )
            .unwrap();
        let mut ids = IdMap::new();
        for id in ["a", "b", "c", "d", "e"] {
            ids.intern(id);
        }
        let boosts = [BoostConfig {
            column: "margin".into(),
            weight: 0.3,
        }];
        let boost = item_boosts(Some(&features), &ids, &boosts).unwrap();
        assert_eq!(boost, vec![0.0, 0.3, 0.15, 0.0, 0.0]);
        // Relevance 1, 0.8, 0 plus boost 0, 0.3, 0.15: 1, 1.1, 0.15.
        let cats = ItemCategories::default();
        let config = RankConfig::default();
        let r = Reranker::new(&config, &cats, &[]).with_boost(&boost);
        assert_eq!(
            items(&r.rerank(&scored(&[1.0, 0.9, 0.5]), 3, &[])),
            vec![1, 0, 2]
        );
        // Relevance weight 0: the boost alone orders the list (ties keep the model's order).
        let config = RankConfig {
            objectives: crate::config::ObjectivesConfig {
                relevance: 0.0,
                ..Default::default()
            },
            ..Default::default()
        };
        let r = Reranker::new(&config, &cats, &[]).with_boost(&boost);
        assert_eq!(
            items(&r.rerank(&scored(&[1.0, 0.9, 0.5, 0.2, 0.1]), 5, &[])),
            vec![1, 2, 0, 3, 4]
        );
        // A boost column that is not numeric, or absent, is a clear error.
        let bad = [BoostConfig {
            column: "genre".into(),
            weight: 1.0,
        }];
        let err = item_boosts(Some(&features), &ids, &bad)
            .unwrap_err()
            .to_string();
        assert!(err.contains("`genre` is not a numeric"), "{err}");
        let err = item_boosts(None, &ids, &boosts).unwrap_err().to_string();
        assert!(err.contains("`margin` needs item features"), "{err}");
    }

    #[test]
    fn personal_novelty_by_hand() {
        // History all in category 0, profile (1, 0). Items: {0}, {1}, {0, 1}: novelty 0, 1 and
        // 1 - 1/sqrt(2) = 0.293. Scores 1.0, 0.8, 0.6: relevance 1, 0.5, 0.
        let cats = ItemCategories::new(vec![vec![0], vec![1], vec![0, 1]], 2);
        let with = |novelty: f64| RankConfig {
            objectives: crate::config::ObjectivesConfig {
                novelty,
                ..Default::default()
            },
            ..Default::default()
        };
        // Novelty 0.6: 1, 0.5 + 0.6 = 1.1, 0.176: the unfamiliar category comes first.
        let config = with(0.6);
        let r = Reranker::new(&config, &cats, &[0.0; 3]);
        let profile = r.target([0u32]);
        assert_eq!(profile, vec![1.0, 0.0]);
        assert_eq!(
            items(&r.rerank(&scored(&[1.0, 0.8, 0.6]), 3, &profile)),
            vec![1, 0, 2]
        );
        assert!((personal_novelty(&[0, 1], &profile, 1.0) - (1.0 - 0.5f64.sqrt())).abs() < 1e-12);
        // Novelty 0.4: 1 > 0.9, the model's order stays.
        let config = with(0.4);
        let r = Reranker::new(&config, &cats, &[0.0; 3]);
        assert_eq!(
            items(&r.rerank(&scored(&[1.0, 0.8, 0.6]), 3, &profile)),
            vec![0, 1, 2]
        );
        // A user without history has no profile: nothing is novel, the order stays.
        let config = with(5.0);
        let r = Reranker::new(&config, &cats, &[0.0; 3]);
        let empty = r.target(std::iter::empty());
        assert_eq!(
            items(&r.rerank(&scored(&[1.0, 0.8, 0.6]), 3, &empty)),
            vec![0, 1, 2]
        );
    }

    fn arb_case() -> impl Strategy<Value = (Vec<f32>, Vec<Vec<u32>>, usize)> {
        (1usize..30).prop_flat_map(|n| {
            (
                prop::collection::vec(-5.0f32..5.0, n),
                prop::collection::vec(prop::collection::vec(0u32..5, 0..3), n),
                0usize..35,
            )
        })
    }

    fn sorted_candidates(scores: &[f32]) -> Vec<Scored> {
        kindred_core::top_k(scores, scores.len(), |_| false)
    }

    proptest! {
        #[test]
        fn output_is_distinct_subset_of_length_min_k_n(
            (scores, sets, k) in arb_case(),
            mmr in 0.0f64..=1.0,
            calib in 0.0f64..=1.0,
            penalty in 0.0f64..2.0,
            cap in prop::option::of(1usize..4),
            novelty in 0.0f64..2.0,
            boost_weight in -1.0f64..1.0,
        ) {
            let cats = ItemCategories::new(sets, 5);
            let config = RankConfig {
                diversity: DiversityConfig { mmr_lambda: mmr, max_per_category: cap, ..Default::default() },
                calibration: CalibrationConfig { weight: calib, smoothing: 0.01 },
                popularity: PopularityConfig { penalty },
                objectives: crate::config::ObjectivesConfig { novelty, ..Default::default() },
                ..Default::default()
            };
            let users: Vec<u32> = (0..scores.len() as u32).map(|i| i * 7 % 11).collect();
            let boost: Vec<f64> = (0..scores.len()).map(|i| boost_weight * (i % 3) as f64 / 2.0).collect();
            let popularity = log_popularity(&users);
            let r = Reranker::new(&config, &cats, &popularity).with_boost(&boost);
            let candidates = sorted_candidates(&scores);
            let target = r.target([0u32, 1, 2]);
            let out = r.rerank(&candidates, k, &target);
            prop_assert_eq!(out.len(), k.min(candidates.len()));
            let mut seen = std::collections::HashSet::new();
            for s in &out {
                prop_assert!(seen.insert(s.item));
                prop_assert!(candidates.contains(s));
            }
            // Prefix consistency: a shorter list is the head of a longer one.
            let short = r.rerank(&candidates, k / 2, &target);
            prop_assert_eq!(&out[..short.len()], &short[..]);
        }

        #[test]
        fn zero_weights_reproduce_the_plain_top_k((scores, sets, k) in arb_case()) {
            let cats = ItemCategories::new(sets, 5);
            let config = RankConfig::default();
            let r = Reranker::new(&config, &cats, &[]);
            let candidates = sorted_candidates(&scores);
            let target = r.target([0u32]);
            prop_assert_eq!(r.rerank(&candidates, k, &target), kindred_core::top_k(&scores, k, |_| false));
        }

        #[test]
        fn fixed_values_sort_as_the_greedy_walk_picks(
            (scores, sets, k) in arb_case(),
            penalty in 0.0f64..2.0,
            novelty in 0.0f64..2.0,
            boost_weight in -1.0f64..1.0,
        ) {
            // Without diversity or calibration the values are fixed and the sort's fast path
            // runs; a cap no list can reach forces the greedy walk, which must agree.
            let cats = ItemCategories::new(sets, 5);
            let config = |cap| RankConfig {
                diversity: DiversityConfig { max_per_category: cap, ..Default::default() },
                popularity: PopularityConfig { penalty },
                objectives: crate::config::ObjectivesConfig { novelty, ..Default::default() },
                ..Default::default()
            };
            let (fast, walk) = (config(None), config(Some(usize::MAX)));
            let users: Vec<u32> = (0..scores.len() as u32).map(|i| i * 7 % 11).collect();
            let boost: Vec<f64> = (0..scores.len()).map(|i| boost_weight * (i % 3) as f64 / 2.0).collect();
            let popularity = log_popularity(&users);
            let candidates = sorted_candidates(&scores);
            let r = Reranker::new(&fast, &cats, &popularity).with_boost(&boost);
            let target = r.target([0u32, 1, 2]);
            let by_sort = r.rerank(&candidates, k, &target);
            let r = Reranker::new(&walk, &cats, &popularity).with_boost(&boost);
            prop_assert_eq!(by_sort, r.rerank(&candidates, k, &target));
        }

        #[test]
        fn caps_hold_when_feasible(
            (scores, k) in (1usize..30).prop_flat_map(|n| (prop::collection::vec(-5.0f32..5.0, n), 0usize..35)),
            seed in 0u32..1000,
            cap in 1usize..4,
            mmr in 0.0f64..=1.0,
        ) {
            // One category per item: the greedy choice never blocks a later feasible one, so the
            // caps hold whenever the categories can fill the list within them.
            let n = scores.len();
            let sets: Vec<Vec<u32>> = (0..n as u32).map(|i| vec![(i * 7 + seed) % 4]).collect();
            let mut per = [0usize; 4];
            sets.iter().for_each(|s| per[s[0] as usize] += 1);
            let capacity: usize = per.iter().map(|&c| c.min(cap)).sum();
            let cats = ItemCategories::new(sets.clone(), 4);
            let config = RankConfig {
                diversity: DiversityConfig { mmr_lambda: mmr, max_per_category: Some(cap), ..Default::default() },
                ..Default::default()
            };
            let r = Reranker::new(&config, &cats, &[]);
            let out = r.rerank(&sorted_candidates(&scores), k, &[]);
            prop_assert_eq!(out.len(), k.min(n));
            if capacity >= k.min(n) {
                let mut counts = [0usize; 4];
                out.iter().for_each(|s| counts[sets[s.item as usize][0] as usize] += 1);
                prop_assert!(counts.iter().all(|&c| c <= cap), "{:?}", counts);
            }
        }
    }
}
