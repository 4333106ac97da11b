//! Negative sampling for implicit-feedback training (BPR, NCF): drawing, for a user, items they
//! did not interact with.
//!
//! Two proposal distributions over the catalog:
//! - **uniform**: every item with probability `1 / n_items`;
//! - **popularity**: item `i` with probability `c_i^beta / sum_j c_j^beta`, where `c_i` is the
//!   number of distinct training users of `i`. `beta = 1` is what sampling "the item of a random
//!   training interaction" gives (the `implicit` library's BPR), `beta = 0` is uniform over items
//!   with training data, and values in between flatten the skew (word2vec's 0.75). Draws are
//!   O(1) through Walker's alias table (Vose's construction).
//!
//! A drawn item the user interacted with is rejected and redrawn (each user's positives are kept
//! sorted, so the check is a binary search), up to [`MAX_TRIES`] times: a user who interacted
//! with (nearly) the whole proposal support would otherwise loop forever, so the sampler then
//! reports that no negative was found and the caller skips the sample.
//!
//! Samplers hold no random state: callers pass their own [`SplitMix64`] (one stream per thread),
//! which keeps multi-threaded training reproducible.

use kindred_core::{Error, ItemIdx, Result, SplitMix64, TrainSet, UserIdx};
use serde::{Deserialize, Serialize};

/// Draws per sample before giving up on finding a negative.
pub const MAX_TRIES: usize = 64;

/// Each user's distinct training items, sorted (CSR without values), with the flat layout exposed
/// so that a uniformly random positive pair is one index into [`Self::items`].
#[derive(Debug, Clone, Default)]
pub struct PositiveSets {
    indptr: Vec<usize>,
    items: Vec<ItemIdx>,
}

impl PositiveSets {
    /// From a training set's by-user view (repeated events on one item count once).
    pub fn from_train(data: &TrainSet) -> Self {
        let m = &data.by_user;
        let mut indptr = Vec::with_capacity(m.n_rows() + 1);
        let mut items = Vec::with_capacity(m.nnz());
        indptr.push(0);
        for u in 0..m.n_rows() {
            let start = items.len();
            for &i in m.row(u) {
                // Rows are sorted by item, so repeats are adjacent.
                if items.len() == start || items.last() != Some(&i) {
                    items.push(i);
                }
            }
            indptr.push(items.len());
        }
        Self { indptr, items }
    }

    /// Builds the sets from explicit per-user item lists (tests, fold-in).
    pub fn from_lists(lists: &[Vec<ItemIdx>]) -> Self {
        let mut indptr = vec![0];
        let mut items = Vec::new();
        for list in lists {
            let mut sorted = list.clone();
            sorted.sort_unstable();
            sorted.dedup();
            items.extend(sorted);
            indptr.push(items.len());
        }
        Self { indptr, items }
    }

    pub fn n_users(&self) -> usize {
        self.indptr.len().saturating_sub(1)
    }

    /// Number of distinct (user, item) pairs.
    pub fn n_pairs(&self) -> usize {
        self.items.len()
    }

    /// Sorted items of `user` (empty beyond the known users).
    pub fn of(&self, user: UserIdx) -> &[ItemIdx] {
        let u = user as usize;
        if u + 1 >= self.indptr.len() {
            return &[];
        }
        &self.items[self.indptr[u]..self.indptr[u + 1]]
    }

    /// Range of `user`'s pairs in the flat pair list.
    pub fn pair_range(&self, user: UserIdx) -> std::ops::Range<usize> {
        let u = user as usize;
        if u + 1 >= self.indptr.len() {
            return 0..0;
        }
        self.indptr[u]..self.indptr[u + 1]
    }

    /// Item of the `pair`-th pair in the flat list (pairs are grouped by user, in user order).
    pub fn item_of_pair(&self, pair: usize) -> ItemIdx {
        self.items[pair]
    }

    /// Distinct users of every item.
    pub fn item_counts(&self, n_items: usize) -> Vec<u32> {
        let mut counts = vec![0u32; n_items];
        for &i in &self.items {
            if let Some(c) = counts.get_mut(i as usize) {
                *c += 1;
            }
        }
        counts
    }
}

/// Which proposal distribution negatives come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Sampling {
    /// Every catalog item equally likely.
    #[default]
    Uniform,
    /// Items proportional to (distinct users)^beta.
    Popularity,
}

/// Walker's alias table: O(1) draws from a fixed discrete distribution.
#[derive(Debug, Clone)]
struct AliasTable {
    /// Probability of keeping column `k` rather than taking its alias.
    keep: Vec<f64>,
    alias: Vec<u32>,
}

impl AliasTable {
    /// Vose's construction from non-negative weights with a positive sum.
    fn new(weights: &[f64]) -> Self {
        let n = weights.len();
        let total: f64 = weights.iter().sum();
        let mut keep: Vec<f64> = weights.iter().map(|&w| w * n as f64 / total).collect();
        let mut alias: Vec<u32> = (0..n as u32).collect();
        let (mut small, mut large): (Vec<usize>, Vec<usize>) = (0..n).partition(|&k| keep[k] < 1.0);
        while let (Some(&s), Some(&l)) = (small.last(), large.last()) {
            small.pop();
            alias[s] = l as u32;
            keep[l] -= 1.0 - keep[s];
            if keep[l] < 1.0 {
                large.pop();
                small.push(l);
            }
        }
        // Leftovers differ from 1 only by rounding: they always keep themselves.
        for k in small.into_iter().chain(large) {
            keep[k] = 1.0;
        }
        Self { keep, alias }
    }

    fn draw(&self, rng: &mut SplitMix64) -> u32 {
        let k = rng.below(self.keep.len() as u64) as usize;
        if rng.next_f64() < self.keep[k] {
            k as u32
        } else {
            self.alias[k]
        }
    }
}

/// Draws negatives for users from a uniform or popularity-aware proposal.
#[derive(Debug, Clone)]
pub struct NegativeSampler {
    n_items: usize,
    /// `None`: uniform over the catalog.
    table: Option<AliasTable>,
}

impl NegativeSampler {
    /// Uniform over `n_items` items (at least one).
    pub fn uniform(n_items: usize) -> Result<Self> {
        if n_items == 0 {
            return Err(Error::InvalidInput(
                "negative sampling needs at least one item".into(),
            ));
        }
        Ok(Self {
            n_items,
            table: None,
        })
    }

    /// Proportional to `counts[i]^beta`; items with a zero count are never drawn.
    pub fn popularity(counts: &[u32], beta: f64) -> Result<Self> {
        if !(beta.is_finite() && beta >= 0.0) {
            return Err(Error::InvalidInput(format!(
                "negative sampling: beta must be a non-negative number, got {beta}"
            )));
        }
        let weights: Vec<f64> = counts
            .iter()
            .map(|&c| if c == 0 { 0.0 } else { (c as f64).powf(beta) })
            .collect();
        if !weights.iter().any(|&w| w > 0.0) {
            return Err(Error::InvalidInput(
                "popularity negative sampling needs at least one item with training data".into(),
            ));
        }
        Ok(Self {
            n_items: counts.len(),
            table: Some(AliasTable::new(&weights)),
        })
    }

    /// Builds the sampler a model's parameters ask for.
    pub fn new(
        sampling: Sampling,
        beta: f64,
        positives: &PositiveSets,
        n_items: usize,
    ) -> Result<Self> {
        match sampling {
            Sampling::Uniform => Self::uniform(n_items),
            Sampling::Popularity => Self::popularity(&positives.item_counts(n_items), beta),
        }
    }

    /// One draw from the proposal, positives not rejected.
    pub fn draw(&self, rng: &mut SplitMix64) -> ItemIdx {
        match &self.table {
            Some(table) => table.draw(rng),
            None => rng.below(self.n_items as u64) as ItemIdx,
        }
    }

    /// A draw that is not in `positives` (sorted), or `None` after [`MAX_TRIES`] rejections.
    pub fn sample(&self, rng: &mut SplitMix64, positives: &[ItemIdx]) -> Option<ItemIdx> {
        (0..MAX_TRIES)
            .map(|_| self.draw(rng))
            .find(|item| positives.binary_search(item).is_err())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lists() -> PositiveSets {
        PositiveSets::from_lists(&[vec![3, 1, 1, 7], vec![], (0..9).collect(), vec![0, 9]])
    }

    #[test]
    fn positive_sets_are_sorted_and_deduplicated() {
        let p = lists();
        assert_eq!(p.n_users(), 4);
        assert_eq!(p.of(0), &[1, 3, 7]);
        assert!(p.of(1).is_empty() && p.of(99).is_empty());
        assert_eq!(p.n_pairs(), 3 + 9 + 2);
        assert_eq!(p.pair_range(2), 3..12);
        assert_eq!(p.item_of_pair(3), 0);
        let counts = p.item_counts(10);
        assert_eq!(counts[0], 2);
        assert_eq!(counts[1], 2);
        assert_eq!(counts[9], 1);
    }

    #[test]
    fn never_returns_a_positive() {
        let p = lists();
        let counts = p.item_counts(10);
        for sampler in [
            NegativeSampler::uniform(10).unwrap(),
            NegativeSampler::popularity(&counts, 0.75).unwrap(),
            NegativeSampler::popularity(&counts, 1.0).unwrap(),
        ] {
            let mut rng = SplitMix64::new(9);
            for user in 0..4 {
                for _ in 0..2000 {
                    if let Some(item) = sampler.sample(&mut rng, p.of(user)) {
                        assert!(
                            !p.of(user).contains(&item),
                            "user {user} got positive {item}"
                        );
                        assert!(item < 10);
                    }
                }
            }
            // User 2 has 9 of 10 items: uniform always finds item 9 in 64 tries with
            // overwhelming probability, and every draw it returns is item 9.
            let mut found = 0;
            for _ in 0..100 {
                if let Some(item) = sampler.sample(&mut rng, p.of(2)) {
                    assert_eq!(item, 9);
                    found += 1;
                }
            }
            assert!(found > 0);
        }
        // A user who interacted with every item the proposal can reach gets no negative.
        let everything: Vec<ItemIdx> = (0..10).collect();
        let mut rng = SplitMix64::new(1);
        assert_eq!(
            NegativeSampler::uniform(10)
                .unwrap()
                .sample(&mut rng, &everything),
            None
        );
    }

    #[test]
    fn popularity_skews_toward_popular_items_in_proportion() {
        // Item k has k + 1 users (item 0 one, item 9 ten); item 10 has none.
        let counts: Vec<u32> = (1..=10).chain([0]).collect();
        let draws = 200_000;
        let frequencies = |sampler: &NegativeSampler| {
            let mut rng = SplitMix64::new(3);
            let mut f = vec![0f64; 11];
            for _ in 0..draws {
                f[sampler.draw(&mut rng) as usize] += 1.0 / draws as f64;
            }
            f
        };
        for beta in [1.0, 0.5] {
            let f = frequencies(&NegativeSampler::popularity(&counts, beta).unwrap());
            let total: f64 = counts
                .iter()
                .filter(|&&c| c > 0)
                .map(|&c| (c as f64).powf(beta))
                .sum();
            for k in 0..10 {
                let expected = (counts[k] as f64).powf(beta) / total;
                assert!(
                    (f[k] - expected).abs() < 0.005,
                    "beta {beta} item {k}: {} vs {expected}",
                    f[k]
                );
            }
            assert_eq!(f[10], 0.0, "items without users are never drawn");
            assert!(f[9] > 2.0 * f[0]);
        }
        let uniform = frequencies(&NegativeSampler::uniform(11).unwrap());
        assert!(
            uniform.iter().all(|&p| (p - 1.0 / 11.0).abs() < 0.005),
            "{uniform:?}"
        );
    }

    #[test]
    fn same_rng_same_draws_and_bad_params_rejected() {
        let sampler = NegativeSampler::popularity(&[5, 1, 0, 2], 0.75).unwrap();
        let run = |seed| {
            let mut rng = SplitMix64::stream(seed, 2);
            (0..50).map(|_| sampler.draw(&mut rng)).collect::<Vec<_>>()
        };
        assert_eq!(run(4), run(4));
        assert_ne!(run(4), run(5));
        assert!(NegativeSampler::uniform(0).is_err());
        assert!(NegativeSampler::popularity(&[0, 0], 1.0).is_err());
        let err = NegativeSampler::popularity(&[1, 2], -1.0)
            .unwrap_err()
            .to_string();
        assert!(err.contains("beta"), "{err}");
        assert!(NegativeSampler::popularity(&[1, 2], f64::NAN).is_err());
    }
}
