//! Contextual bandits for the `[exploration]` section: LinUCB, linear Thompson sampling and
//! per-item Thompson sampling over one hybrid linear model of the click (see [`state`]).
//!
//! * [`features`]: what the model sees of a (request, candidate) pair.
//! * [`state`]: what it has learned ([`BanditState`], additive and decayed, so it can be kept
//!   in the store and merged across servers) and its posterior for a catalog.
//!
//! [`preference`] turns a posterior and a pool's feature rows into the
//! [`crate::exploration::explorer::Preference`] the slot filling follows, so the bandit's
//! lists carry exact propensities (LinUCB, mixed with `epsilon`) or Monte Carlo ones (Thompson:
//! the share of `samples` draws in which each item is the best open one).

pub mod features;
pub mod state;

pub use features::{Candidate, EncodeRequest, FeatureEncoder, FeatureSpec, FeatureTerm};
pub use state::{BanditPosterior, BanditState, ItemStats, MAX_TRACKED_ITEMS};

/// The feature row to learn from for an item shown at 0-based `slot`: `row` with its `position`
/// feature (if the spec lists one) set to `1 / (1 + slot)`.
/// [`crate::RankPipeline::rank`] gives each item of a bandit's list this row.
pub fn shown_at(spec: &FeatureSpec, row: &[f64], slot: usize) -> Vec<f64> {
    let mut row = row.to_vec();
    if let Some(i) = spec.position_index() {
        if let Some(v) = row.get_mut(i) {
            *v = 1.0 / (1.0 + slot as f64);
        }
    }
    row
}

use kindred_core::kernels::dot_f64;
use kindred_core::rng::mix64;
use kindred_core::SplitMix64;

use super::config::ExplorationConfig;
use super::explorer::Preference;

/// The bandit's scores of a pool: one row of one score per candidate (LinUCB), or `samples`
/// rows of sampled scores (Thompson), row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolScores {
    pub scores: Vec<f64>,
    pub len: usize,
    pub sampled: bool,
}

impl PoolScores {
    /// The slot filling's view of these scores.
    pub fn preference(&self) -> Preference<'_> {
        if self.sampled {
            Preference::Samples {
                rows: &self.scores,
                len: self.len,
            }
        } else {
            Preference::Scores(&self.scores)
        }
    }
}

/// Scores `items` (with their feature `rows`, `dim` numbers each) under `posterior`, seeded
/// by the list's seed.
pub fn preference(
    config: &ExplorationConfig,
    posterior: &BanditPosterior,
    rows: &[f64],
    items: &[u32],
    seed: u64,
) -> PoolScores {
    let dim = posterior.dim();
    let m = items.len();
    if config.policy.samples() {
        let draws = config.samples.max(1);
        // Per item, once: the correction's mean and the draw's scale.
        let corrections: Vec<(f64, f64)> = items
            .iter()
            .map(|&item| {
                let (mean, variance) = posterior.correction(item);
                (mean, config.alpha * variance.sqrt())
            })
            .collect();
        let mut scores = Vec::with_capacity(draws * m);
        let mut z = vec![0.0; dim];
        for draw in 0..draws {
            let mut rng = SplitMix64::new(mix64(seed ^ 0x7468_6F6D ^ draw as u64));
            z.iter_mut().for_each(|v| *v = rng.normal());
            let theta = posterior.sample_theta(&mut z, config.alpha);
            for (k, &(mean, scale)) in corrections.iter().enumerate() {
                let shared = dot_f64(&theta, &rows[k * dim..(k + 1) * dim]);
                scores.push(shared + mean + scale * rng.normal());
            }
        }
        return PoolScores {
            scores,
            len: m,
            sampled: true,
        };
    }
    PoolScores {
        scores: items
            .iter()
            .enumerate()
            .map(|(k, &item)| {
                let x = &rows[k * dim..(k + 1) * dim];
                let (correction, item_variance) = posterior.correction(item);
                let mean = posterior.shared(x) + correction;
                let variance = posterior.shared_variance(x) + item_variance;
                mean + config.alpha * variance.sqrt()
            })
            .collect(),
        len: m,
        sampled: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exploration::ExplorationKind;
    use kindred_core::IdMap;

    fn catalog(n: usize) -> IdMap {
        let mut ids = IdMap::new();
        for i in 0..n {
            ids.intern(&format!("i{i}"));
        }
        ids
    }

    #[test]
    fn linucb_prefers_the_uncertain_item_until_it_has_been_tried() {
        let config = ExplorationConfig {
            policy: ExplorationKind::Linucb,
            alpha: 1.0,
            ..ExplorationConfig::default()
        };
        let mut state = BanditState::new(vec!["bias".into()], 0);
        // Item 0 has been shown 200 times at a 0.2 rate; item 1 never.
        for n in 0..200 {
            let reward = f64::from(u8::from(n % 5 == 0));
            state.observe(&[1.0], "i0", reward, 0.0, 0.0);
        }
        let posterior = state.posterior(1.0, &catalog(2));
        let scores = preference(&config, &posterior, &[1.0, 1.0], &[0, 1], 1);
        assert!(!scores.sampled);
        assert!(scores.scores[1] > scores.scores[0], "{scores:?}");
    }

    #[test]
    fn thompson_draws_are_seeded_and_spread_with_alpha() {
        let config = ExplorationConfig {
            policy: ExplorationKind::LinearThompson,
            samples: 16,
            ..ExplorationConfig::default()
        };
        let posterior = BanditPosterior::prior(1, 1.0);
        let a = preference(&config, &posterior, &[1.0, 1.0, 1.0], &[0, 1, 2], 9);
        let b = preference(&config, &posterior, &[1.0, 1.0, 1.0], &[0, 1, 2], 9);
        assert_eq!(a, b);
        assert_eq!(a.scores.len(), 48);
        let narrow = preference(
            &ExplorationConfig {
                alpha: 0.01,
                ..config.clone()
            },
            &posterior,
            &[1.0, 1.0, 1.0],
            &[0, 1, 2],
            9,
        );
        let spread = |s: &PoolScores| s.scores.iter().map(|v| v.abs()).sum::<f64>();
        assert!(spread(&narrow) < spread(&a) / 10.0);
    }
}
