//! Exploration policies that fill a short list's slots from a ranked candidate list and log, for
//! every shown item, the probability that the policy shows it there, so the logs can later be
//! used to estimate another policy's click rate off-policy (see `kindred_eval::offpolicy`).
//!
//! # Propensity
//!
//! Slots are filled in order, slot 0 first. The propensity logged for slot `j` is the
//! **conditional, per-slot** probability
//!
//! `p_j = P(policy puts item a_j in slot j | context, items a_0..a_{j-1} already in slots 0..j-1)`.
//!
//! The probability of the whole prefix `a_0..a_j` is the product `p_0 * ... * p_j`. Off-policy
//! estimators weight slot `j`'s click by the ratio of these prefix products under the target and
//! the logging policy, which is unbiased whenever slot `j`'s click depends only on the context and
//! the items in slots `0..=j` (position bias and cascade-style attention both qualify).
//!
//! * [`ExplorationPolicy::Greedy`]: the top `k` in rank order; every propensity is exactly 1.
//! * [`ExplorationPolicy::EpsilonGreedy`]: each slot shows the best remaining candidate with
//!   probability `1 - epsilon` and otherwise a uniform draw over the `r` remaining candidates (the
//!   best one included), so the propensity is exactly `1 - epsilon + epsilon / r` for the best
//!   remaining item and `epsilon / r` for any other.
//! * [`ExplorationPolicy::Thompson`]: each candidate's click rate gets a Beta posterior from its
//!   impression and click counts; one sample per candidate is drawn and the list is the candidates
//!   sorted by sample (ties in rank order). The exact slot probabilities have no closed form, so
//!   they are **approximate**: Monte Carlo over a fixed number of seeded extra draws, counting how
//!   often each logged prefix recurs (`p_j = m_j / m_{j-1}`, `m_j` the draws whose top `j + 1`
//!   equal the logged prefix). When logging, the realised draw is counted as one of the draws, so
//!   a logged propensity is never zero.

use kindred_core::rng::SplitMix64;
use kindred_core::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;

/// One candidate for a short list: an item, the score it was ranked by, and (for Thompson
/// sampling) the feedback it has had so far.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    pub item: u32,
    pub score: f64,
    /// Times the item was shown; Thompson sampling's posterior uses these, other policies ignore them.
    pub impressions: u64,
    /// Times the item was clicked; at most `impressions`.
    pub clicks: u64,
}

impl Candidate {
    /// A candidate with no feedback yet.
    pub fn new(item: u32, score: f64) -> Self {
        Self {
            item,
            score,
            impressions: 0,
            clicks: 0,
        }
    }

    /// The same candidate with impression and click counts.
    pub fn with_feedback(self, impressions: u64, clicks: u64) -> Self {
        Self {
            impressions,
            clicks,
            ..self
        }
    }
}

/// How slots are filled from a ranked candidate list.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "policy", rename_all = "snake_case")]
pub enum ExplorationPolicy {
    /// The top `k` candidates in rank order (no exploration).
    Greedy,
    /// Per slot: the best remaining candidate with probability `1 - epsilon`, else a uniform
    /// draw over the remaining candidates.
    EpsilonGreedy { epsilon: f64 },
    /// Sort by one draw from each candidate's `Beta(prior_alpha + clicks, prior_beta + non-clicks)`
    /// posterior; propensities are estimated from `propensity_draws` further seeded draws.
    Thompson {
        prior_alpha: f64,
        prior_beta: f64,
        propensity_draws: u32,
    },
}

/// One filled slot: which item went where, and its logged propensity (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ShownSlot {
    pub slot: u32,
    pub item: u32,
    pub propensity: f64,
}

/// One line of an exploration log, as serving writes it: who saw what where, with what
/// probability, under which policy. The click outcome is joined later from the event stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExplorationLogRecord {
    pub request_id: String,
    pub user: String,
    pub slot: u32,
    pub item: String,
    /// `P(item in this slot | context, items in earlier slots)` under the logging policy.
    pub propensity: f64,
    /// [`ExplorationPolicy::name`] of the logging policy.
    pub policy: String,
}

impl ExplorationPolicy {
    /// A short stable name for logs, e.g. `epsilon_greedy(0.3)`.
    pub fn name(&self) -> String {
        match self {
            Self::Greedy => "greedy".to_string(),
            Self::EpsilonGreedy { epsilon } => format!("epsilon_greedy({epsilon})"),
            Self::Thompson {
                prior_alpha,
                prior_beta,
                ..
            } => format!("thompson({prior_alpha},{prior_beta})"),
        }
    }

    /// Checks the policy's parameters.
    pub fn validate(&self) -> Result<()> {
        match *self {
            Self::Greedy => Ok(()),
            Self::EpsilonGreedy { epsilon } => {
                if (0.0..=1.0).contains(&epsilon) {
                    Ok(())
                } else {
                    Err(Error::spec(
                        "exploration policy",
                        self.name(),
                        "epsilon must be in [0, 1]",
                    ))
                }
            }
            Self::Thompson {
                prior_alpha,
                prior_beta,
                propensity_draws,
            } => {
                let positive = |x: f64| x.is_finite() && x > 0.0;
                if !positive(prior_alpha) || !positive(prior_beta) {
                    Err(Error::spec(
                        "exploration policy",
                        self.name(),
                        "Beta prior parameters must be positive and finite",
                    ))
                } else if propensity_draws == 0 {
                    Err(Error::spec(
                        "exploration policy",
                        self.name(),
                        "propensity_draws must be at least 1",
                    ))
                } else {
                    Ok(())
                }
            }
        }
    }

    /// Fills `min(k, candidates.len())` slots from `candidates` (ranked best first), seeded by
    /// `seed` (one per request), each with its logged propensity.
    pub fn present(&self, candidates: &[Candidate], k: usize, seed: u64) -> Result<Vec<ShownSlot>> {
        self.validate()?;
        check_candidates(candidates)?;
        let k = k.min(candidates.len());
        let mut rng = SplitMix64::new(seed);
        match *self {
            Self::Greedy | Self::EpsilonGreedy { .. } => {
                let epsilon = match *self {
                    Self::EpsilonGreedy { epsilon } => epsilon,
                    _ => 0.0,
                };
                // Candidate positions not yet shown, kept in rank order so index 0 is the best.
                let mut remaining: Vec<usize> = (0..candidates.len()).collect();
                let mut slots = Vec::with_capacity(k);
                for slot in 0..k {
                    let r = remaining.len();
                    let explore = epsilon > 0.0 && rng.next_f64() < epsilon;
                    let pick = if explore {
                        rng.below(r as u64) as usize
                    } else {
                        0
                    };
                    let propensity = epsilon_greedy_probability(epsilon, r, pick == 0);
                    let position = remaining.remove(pick);
                    slots.push(ShownSlot {
                        slot: slot as u32,
                        item: candidates[position].item,
                        propensity,
                    });
                }
                Ok(slots)
            }
            Self::Thompson {
                prior_alpha,
                prior_beta,
                propensity_draws,
            } => {
                let order = thompson_order(candidates, prior_alpha, prior_beta, &mut rng);
                let shown: Vec<usize> = order[..k].to_vec();
                let mut mc = SplitMix64::stream(seed, 1);
                let mut matches = thompson_prefix_matches(
                    candidates,
                    &shown,
                    prior_alpha,
                    prior_beta,
                    propensity_draws,
                    &mut mc,
                );
                // The realised draw matches its own prefix at every length.
                for m in &mut matches {
                    *m += 1;
                }
                let total = propensity_draws as u64 + 1;
                Ok(shown
                    .iter()
                    .enumerate()
                    .map(|(j, &position)| {
                        let before = if j == 0 { total } else { matches[j - 1] };
                        ShownSlot {
                            slot: j as u32,
                            item: candidates[position].item,
                            propensity: matches[j] as f64 / before as f64,
                        }
                    })
                    .collect())
            }
        }
    }

    /// For a list `shown` (items in slot order, e.g. from another policy's log), the probability
    /// that this policy puts each of them in its slot given the earlier ones: what an off-policy
    /// estimator needs from the target policy. Exact for greedy and epsilon-greedy; a Monte Carlo
    /// estimate from `propensity_draws` draws seeded by `seed` for Thompson (0 when no draw
    /// reproduces the prefix).
    pub fn slot_probabilities(
        &self,
        candidates: &[Candidate],
        shown: &[u32],
        seed: u64,
    ) -> Result<Vec<f64>> {
        self.validate()?;
        check_candidates(candidates)?;
        let mut positions = Vec::with_capacity(shown.len());
        let mut seen = HashSet::with_capacity(shown.len());
        for &item in shown {
            let position = candidates
                .iter()
                .position(|c| c.item == item)
                .ok_or_else(|| {
                    Error::InvalidInput(format!("shown item {item} is not among the candidates"))
                })?;
            if !seen.insert(item) {
                return Err(Error::InvalidInput(format!(
                    "item {item} is shown in more than one slot"
                )));
            }
            positions.push(position);
        }
        match *self {
            Self::Greedy | Self::EpsilonGreedy { .. } => {
                let epsilon = match *self {
                    Self::EpsilonGreedy { epsilon } => epsilon,
                    _ => 0.0,
                };
                let mut taken = vec![false; candidates.len()];
                let mut probabilities = Vec::with_capacity(positions.len());
                for (j, &position) in positions.iter().enumerate() {
                    let remaining = candidates.len() - j;
                    // Positions are in rank order, so the best remaining is the first not taken.
                    let best = taken.iter().position(|&t| !t).unwrap_or(position);
                    probabilities.push(epsilon_greedy_probability(
                        epsilon,
                        remaining,
                        position == best,
                    ));
                    taken[position] = true;
                }
                Ok(probabilities)
            }
            Self::Thompson {
                prior_alpha,
                prior_beta,
                propensity_draws,
            } => {
                let mut mc = SplitMix64::new(seed);
                let matches = thompson_prefix_matches(
                    candidates,
                    &positions,
                    prior_alpha,
                    prior_beta,
                    propensity_draws,
                    &mut mc,
                );
                Ok((0..positions.len())
                    .map(|j| {
                        let before = if j == 0 {
                            propensity_draws as u64
                        } else {
                            matches[j - 1]
                        };
                        if before == 0 {
                            0.0
                        } else {
                            matches[j] as f64 / before as f64
                        }
                    })
                    .collect())
            }
        }
    }
}

/// Probability that epsilon-greedy picks a given item among `remaining` candidates.
pub(crate) fn epsilon_greedy_probability(epsilon: f64, remaining: usize, is_best: bool) -> f64 {
    let uniform = epsilon / remaining as f64;
    if is_best {
        1.0 - epsilon + uniform
    } else {
        uniform
    }
}

fn check_candidates(candidates: &[Candidate]) -> Result<()> {
    let mut seen = HashSet::with_capacity(candidates.len());
    for c in candidates {
        if !c.score.is_finite() {
            return Err(Error::InvalidInput(format!(
                "candidate {} has a non-finite score {}",
                c.item, c.score
            )));
        }
        if c.clicks > c.impressions {
            return Err(Error::InvalidInput(format!(
                "candidate {} has {} clicks but only {} impressions",
                c.item, c.clicks, c.impressions
            )));
        }
        if !seen.insert(c.item) {
            return Err(Error::InvalidInput(format!(
                "candidate {} appears more than once",
                c.item
            )));
        }
    }
    Ok(())
}

/// Candidate positions sorted by one posterior draw each, highest first (stable: ties keep rank order).
fn thompson_order(
    candidates: &[Candidate],
    prior_alpha: f64,
    prior_beta: f64,
    rng: &mut SplitMix64,
) -> Vec<usize> {
    let samples: Vec<f64> = candidates
        .iter()
        .map(|c| {
            let a = prior_alpha + c.clicks as f64;
            let b = prior_beta + (c.impressions - c.clicks) as f64;
            sample_beta(a, b, rng)
        })
        .collect();
    let mut order: Vec<usize> = (0..candidates.len()).collect();
    order.sort_by(|&x, &y| samples[y].total_cmp(&samples[x]));
    order
}

/// `m[j]` = how many of `draws` fresh Thompson orderings start with `shown[..=j]`.
fn thompson_prefix_matches(
    candidates: &[Candidate],
    shown: &[usize],
    prior_alpha: f64,
    prior_beta: f64,
    draws: u32,
    rng: &mut SplitMix64,
) -> Vec<u64> {
    let mut matches = vec![0u64; shown.len()];
    for _ in 0..draws {
        let order = thompson_order(candidates, prior_alpha, prior_beta, rng);
        for (j, (&a, &b)) in shown.iter().zip(&order).enumerate() {
            if a != b {
                break;
            }
            matches[j] += 1;
        }
    }
    matches
}

/// Gamma(shape, 1) by Marsaglia and Tsang (2000); shapes below 1 use the `U^(1/shape)` boost.
fn sample_gamma(shape: f64, rng: &mut SplitMix64) -> f64 {
    if shape < 1.0 {
        let u = 1.0 - rng.next_f64(); // (0, 1]
        return sample_gamma(shape + 1.0, rng) * u.powf(1.0 / shape);
    }
    let d = shape - 1.0 / 3.0;
    let c = 1.0 / (9.0 * d).sqrt();
    loop {
        let x = rng.normal();
        let v = (1.0 + c * x).powi(3);
        if v <= 0.0 {
            continue;
        }
        let u = 1.0 - rng.next_f64();
        if u.ln() < 0.5 * x * x + d - d * v + d * v.ln() {
            return d * v;
        }
    }
}

/// Beta(a, b) as `X / (X + Y)` with independent Gammas.
fn sample_beta(a: f64, b: f64, rng: &mut SplitMix64) -> f64 {
    let x = sample_gamma(a, rng);
    let y = sample_gamma(b, rng);
    if x + y > 0.0 {
        x / (x + y)
    } else {
        0.5 // both underflowed (tiny shapes): either order is as likely
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    fn ranked(n: u32) -> Vec<Candidate> {
        (0..n)
            .map(|i| Candidate::new(100 + i, (n - i) as f64))
            .collect()
    }

    #[test]
    fn greedy_is_top_k_with_propensity_one() {
        let slots = ExplorationPolicy::Greedy.present(&ranked(5), 3, 1).unwrap();
        let items: Vec<u32> = slots.iter().map(|s| s.item).collect();
        assert_eq!(items, vec![100, 101, 102]);
        assert!(slots.iter().all(|s| s.propensity == 1.0));
        let p = ExplorationPolicy::Greedy
            .slot_probabilities(&ranked(5), &[100, 102, 101], 0)
            .unwrap();
        assert_eq!(p, vec![1.0, 0.0, 1.0]);
    }

    #[test]
    fn epsilon_greedy_propensities_by_hand() {
        // epsilon 0.3 over 4 candidates: slot 0 best = 0.7 + 0.3/4 = 0.775, other = 0.075;
        // after 101 is shown, best remaining is 100: 0.7 + 0.1 = 0.8, others 0.1.
        let policy = ExplorationPolicy::EpsilonGreedy { epsilon: 0.3 };
        let p = policy
            .slot_probabilities(&ranked(4), &[101, 100, 103], 0)
            .unwrap();
        let expected = [0.075, 0.8, 0.15];
        for (a, b) in p.iter().zip(expected) {
            assert!((a - b).abs() < 1e-12, "{p:?}");
        }
    }

    #[test]
    fn epsilon_greedy_logged_propensities_match_frequencies() {
        let policy = ExplorationPolicy::EpsilonGreedy { epsilon: 0.4 };
        let candidates = ranked(4);
        let n = 40_000;
        let mut counts: HashMap<Vec<u32>, (usize, f64)> = HashMap::new();
        for seed in 0..n {
            let slots = policy.present(&candidates, 2, seed).unwrap();
            let items: Vec<u32> = slots.iter().map(|s| s.item).collect();
            let prob: f64 = slots.iter().map(|s| s.propensity).product();
            let recomputed: f64 = policy
                .slot_probabilities(&candidates, &items, 0)
                .unwrap()
                .iter()
                .product();
            assert!((prob - recomputed).abs() < 1e-12);
            let e = counts.entry(items).or_insert((0, prob));
            e.0 += 1;
        }
        assert_eq!(counts.len(), 12, "every ordered pair of 4 items occurs");
        let total: f64 = counts.values().map(|c| c.1).sum();
        assert!((total - 1.0).abs() < 1e-9, "prefix probabilities sum to 1");
        for (items, (count, prob)) in counts {
            let freq = count as f64 / n as f64;
            let se = (prob * (1.0 - prob) / n as f64).sqrt();
            assert!(
                (freq - prob).abs() < 5.0 * se,
                "{items:?}: {freq} vs {prob}"
            );
        }
    }

    #[test]
    fn thompson_propensities_approximate_frequencies() {
        // Item 100 clearly best, 101 and 102 uncertain: prefix frequencies over many requests
        // should agree with the Monte Carlo propensities logged per request.
        let candidates = vec![
            Candidate::new(100, 3.0).with_feedback(100, 60),
            Candidate::new(101, 2.0).with_feedback(4, 2),
            Candidate::new(102, 1.0).with_feedback(2, 1),
        ];
        let policy = ExplorationPolicy::Thompson {
            prior_alpha: 1.0,
            prior_beta: 1.0,
            propensity_draws: 400,
        };
        let n = 3000;
        let mut counts: HashMap<u32, (usize, f64)> = HashMap::new();
        for seed in 0..n {
            let slots = policy.present(&candidates, 1, seed).unwrap();
            assert!(slots[0].propensity > 0.0 && slots[0].propensity <= 1.0);
            let e = counts.entry(slots[0].item).or_insert((0, 0.0));
            e.0 += 1;
            e.1 += slots[0].propensity;
        }
        for (item, (count, propensity_sum)) in counts {
            let freq = count as f64 / n as f64;
            let mean_logged = propensity_sum / count as f64;
            assert!(
                (freq - mean_logged).abs() < 0.04,
                "{item}: {freq} vs {mean_logged}"
            );
        }
    }

    #[test]
    fn beta_sampler_moments() {
        let mut rng = SplitMix64::new(9);
        for (a, b) in [(2.0, 5.0), (0.5, 0.5), (30.0, 70.0)] {
            let n = 50_000;
            let xs: Vec<f64> = (0..n).map(|_| sample_beta(a, b, &mut rng)).collect();
            let mean = xs.iter().sum::<f64>() / n as f64;
            let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
            let true_mean = a / (a + b);
            let true_var = a * b / ((a + b).powi(2) * (a + b + 1.0));
            assert!((mean - true_mean).abs() < 0.01, "{a},{b}: mean {mean}");
            assert!(
                (var - true_var).abs() < 0.1 * true_var,
                "{a},{b}: var {var}"
            );
        }
    }

    #[test]
    fn bad_input_is_an_error() {
        let eps = ExplorationPolicy::EpsilonGreedy { epsilon: 1.5 };
        assert!(eps.present(&ranked(3), 2, 0).is_err());
        let mut dup = ranked(3);
        dup[2].item = 100;
        assert!(ExplorationPolicy::Greedy.present(&dup, 2, 0).is_err());
        let greedy = ExplorationPolicy::Greedy;
        assert!(greedy.slot_probabilities(&ranked(3), &[7], 0).is_err());
        assert!(greedy
            .slot_probabilities(&ranked(3), &[100, 100], 0)
            .is_err());
        let bad_feedback = vec![Candidate::new(1, 1.0).with_feedback(1, 2)];
        assert!(greedy.present(&bad_feedback, 1, 0).is_err());
    }

    #[test]
    fn log_record_round_trips_through_json() {
        let record = ExplorationLogRecord {
            request_id: "r1".into(),
            user: "u9".into(),
            slot: 2,
            item: "i4".into(),
            propensity: 0.075,
            policy: ExplorationPolicy::EpsilonGreedy { epsilon: 0.3 }.name(),
        };
        let json = serde_json::to_string(&record).unwrap();
        let back: ExplorationLogRecord = serde_json::from_str(&json).unwrap();
        assert_eq!(record, back);
        assert_eq!(back.policy, "epsilon_greedy(0.3)");
    }

    proptest! {
        #[test]
        fn slots_are_distinct_and_propensities_valid(
            n in 0u32..12, k in 0usize..15, seed in any::<u64>(),
            epsilon in 0.0f64..=1.0, which in 0u8..3,
        ) {
            let policy = match which {
                0 => ExplorationPolicy::Greedy,
                1 => ExplorationPolicy::EpsilonGreedy { epsilon },
                _ => ExplorationPolicy::Thompson { prior_alpha: 1.0, prior_beta: 2.0, propensity_draws: 20 },
            };
            let candidates = ranked(n);
            let slots = policy.present(&candidates, k, seed).unwrap();
            prop_assert_eq!(slots.len(), k.min(n as usize));
            let distinct: HashSet<u32> = slots.iter().map(|s| s.item).collect();
            prop_assert_eq!(distinct.len(), slots.len());
            for (j, s) in slots.iter().enumerate() {
                prop_assert_eq!(s.slot as usize, j);
                prop_assert!(s.propensity > 0.0 && s.propensity <= 1.0 + 1e-12);
            }
            prop_assert_eq!(policy.present(&candidates, k, seed).unwrap(), slots);
        }
    }
}
