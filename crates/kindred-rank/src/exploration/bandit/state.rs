//! What a contextual bandit has learned, and the posterior it scores with.
//!
//! The model is a hybrid linear one: the reward of showing item `i` with features `x` is
//! `theta . x + beta_i` plus noise, with `theta` shared by every item (so an item never shown
//! borrows what similar items taught) and `beta_i` the item's own correction (so a good item is
//! found even when the features do not say why). [`BanditState`] keeps the sufficient
//! statistics, additive so that states learned by several servers merge by summing, and decayed
//! by a half-life so that old feedback fades when tastes drift. [`BanditPosterior`] is the
//! ridge solution of a state for one catalog: the mean and the Cholesky factor that give each
//! candidate's mean and uncertainty.
//!
//! Online, the two parts are fitted by backfitting: the shared part learns from the reward less
//! the item's current correction, and the item part from the reward less the shared prediction.

use std::collections::{BTreeMap, HashMap, HashSet};

use kindred_core::dense::{cholesky, solve_lower, solve_upper_t};
use kindred_core::kernels::dot_f64;
use kindred_core::IdMap;

use serde::{Deserialize, Serialize};

/// Most items a state tracks; past it the least observed are dropped (bounds a state whose
/// items come from feedback).
pub const MAX_TRACKED_ITEMS: usize = 1_000_000;

/// One item's correction statistics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct ItemStats {
    /// Decayed number of observations.
    pub weight: f64,
    /// Decayed sum of (reward - shared prediction).
    pub residual: f64,
}

/// Sufficient statistics of the hybrid model (see the module docs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BanditState {
    /// The feature names, in order: a stored state is used only by a config with the same.
    pub features: Vec<String>,
    /// `sum w x x^T`, row-major `d x d`.
    pub gram: Vec<f64>,
    /// `sum w (reward - beta_item) x`.
    pub moment: Vec<f64>,
    /// Per external item id. A hash map: every shown item is looked up here when its list is
    /// learned, on the request path (an ordered map cost a string comparison per level). It is
    /// written in id order, so a stored state reads the same whichever server wrote it.
    #[serde(serialize_with = "in_id_order")]
    pub items: HashMap<String, ItemStats>,
    /// Decayed number of observations.
    pub observations: f64,
    /// Decayed sum of rewards.
    pub rewards: f64,
    /// Unix seconds the statistics are decayed to.
    pub time: i64,
}

impl BanditState {
    /// Nothing learned yet.
    pub fn new(features: Vec<String>, time: i64) -> Self {
        let d = features.len();
        Self {
            features,
            gram: vec![0.0; d * d],
            moment: vec![0.0; d],
            items: HashMap::new(),
            observations: 0.0,
            rewards: 0.0,
            time,
        }
    }

    pub fn dim(&self) -> usize {
        self.features.len()
    }

    /// Fades every statistic by `0.5^(elapsed / half_life)` and moves the clock to `now`
    /// (never backwards). No half-life: only the clock moves.
    pub fn decay_to(&mut self, now: i64, half_life_seconds: Option<f64>) {
        if now <= self.time {
            return;
        }
        let factor = self.decay_factor(now, half_life_seconds);
        if factor != 1.0 {
            self.scale(factor);
        }
        self.time = now;
    }

    /// `0.5^(elapsed / half_life)` from the state's clock to `now` (1 without a half-life or
    /// when `now` is not later).
    fn decay_factor(&self, now: i64, half_life_seconds: Option<f64>) -> f64 {
        match half_life_seconds.filter(|h| *h > 0.0) {
            Some(half_life) if now > self.time => 0.5f64.powf((now - self.time) as f64 / half_life),
            _ => 1.0,
        }
    }

    fn scale(&mut self, factor: f64) {
        self.gram.iter_mut().for_each(|v| *v *= factor);
        self.moment.iter_mut().for_each(|v| *v *= factor);
        self.observations *= factor;
        self.rewards *= factor;
        for stats in self.items.values_mut() {
            stats.weight *= factor;
            stats.residual *= factor;
        }
    }

    /// The decayed number of observations and sum of rewards as of `now` (what [`Self::merge`]
    /// would add), without touching the item statistics.
    pub fn totals_at(&self, now: i64, half_life_seconds: Option<f64>) -> (f64, f64) {
        let factor = self.decay_factor(now, half_life_seconds);
        (self.observations * factor, self.rewards * factor)
    }

    /// Learns one shown item: features `x`, its id, the reward, and the posterior's current
    /// shared prediction and item correction for it (backfitting).
    pub fn observe(&mut self, x: &[f64], item: &str, reward: f64, shared: f64, correction: f64) {
        let d = self.dim();
        if x.len() != d || !reward.is_finite() {
            return;
        }
        for r in 0..d {
            for c in 0..d {
                self.gram[r * d + c] += x[r] * x[c];
            }
            self.moment[r] += (reward - correction) * x[r];
        }
        self.observations += 1.0;
        self.rewards += reward;
        if let Some(stats) = self.items.get_mut(item) {
            stats.weight += 1.0;
            stats.residual += reward - shared;
        } else {
            self.items.insert(
                item.to_owned(),
                ItemStats {
                    weight: 1.0,
                    residual: reward - shared,
                },
            );
            self.cap_items(MAX_TRACKED_ITEMS);
        }
    }

    /// Adds `other` (learned elsewhere since the two last agreed) to this state, both decayed
    /// to the later of their clocks. False (nothing changes) when the features differ.
    pub fn merge(&mut self, other: &BanditState, half_life_seconds: Option<f64>) -> bool {
        if other.features != self.features {
            return false;
        }
        let now = self.time.max(other.time);
        self.decay_to(now, half_life_seconds);
        let mut other = other.clone();
        other.decay_to(now, half_life_seconds);
        for (a, b) in self.gram.iter_mut().zip(&other.gram) {
            *a += b;
        }
        for (a, b) in self.moment.iter_mut().zip(&other.moment) {
            *a += b;
        }
        self.observations += other.observations;
        self.rewards += other.rewards;
        for (item, stats) in other.items {
            let entry = self.items.entry(item).or_default();
            entry.weight += stats.weight;
            entry.residual += stats.residual;
        }
        self.cap_items(MAX_TRACKED_ITEMS);
        true
    }

    /// Keeps the `max` most observed items.
    fn cap_items(&mut self, max: usize) {
        if self.items.len() <= max {
            return;
        }
        let mut weights: Vec<f64> = self.items.values().map(|s| s.weight).collect();
        let cut = weights.len() - max;
        // The cut-th lightest weight: every lighter item goes, and enough of its ties.
        weights.select_nth_unstable_by(cut - 1, f64::total_cmp);
        let threshold = weights[cut - 1];
        let lighter = weights.iter().filter(|&&w| w < threshold).count();
        // Of the items at the threshold, those first in id order go, whatever the map's order.
        let mut ties: Vec<String> = self
            .items
            .iter()
            .filter(|(_, s)| s.weight == threshold)
            .map(|(id, _)| id.clone())
            .collect();
        ties.sort_unstable();
        ties.truncate(cut - lighter);
        let dropped: HashSet<String> = ties.into_iter().collect();
        self.items.retain(|id, s| {
            s.weight > threshold || (s.weight == threshold && !dropped.contains(id))
        });
    }

    /// The ridge posterior for a catalog (`item_ids` gives the catalog index of each id).
    pub fn posterior(&self, ridge: f64, item_ids: &IdMap) -> BanditPosterior {
        let d = self.dim();
        let ridge = ridge.max(1e-9);
        let mut factor = self.gram.clone();
        for k in 0..d {
            factor[k * d + k] += ridge;
        }
        if !cholesky(&mut factor, d) {
            // Only reachable with non-finite statistics: fall back to the prior.
            factor = vec![0.0; d * d];
            for k in 0..d {
                factor[k * d + k] = ridge.sqrt();
            }
        }
        let mut theta = self.moment.clone();
        solve_lower(&factor, d, &mut theta);
        solve_upper_t(&factor, d, &mut theta);
        // Column by column: every request's variances are then products, with no division.
        let mut covariance = vec![0.0; d * d];
        let mut column = vec![0.0; d];
        for j in 0..d {
            column
                .iter_mut()
                .enumerate()
                .for_each(|(i, v)| *v = f64::from(u8::from(i == j)));
            solve_lower(&factor, d, &mut column);
            solve_upper_t(&factor, d, &mut column);
            for (i, &v) in column.iter().enumerate() {
                covariance[i * d + j] = v;
            }
        }
        let mut item_mean = vec![0.0f32; item_ids.len()];
        let mut item_weight = vec![0.0f32; item_ids.len()];
        for (id, stats) in &self.items {
            if let Some(i) = item_ids.get(id) {
                let precision = stats.weight + ridge;
                item_mean[i as usize] = (stats.residual / precision) as f32;
                item_weight[i as usize] = stats.weight as f32;
            }
        }
        BanditPosterior {
            dim: d,
            theta,
            factor,
            covariance,
            item_mean,
            item_weight,
            ridge,
        }
    }
}

/// Writes the item statistics in id order.
fn in_id_order<S: serde::Serializer>(
    items: &HashMap<String, ItemStats>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    let ordered: BTreeMap<&String, &ItemStats> = items.iter().collect();
    ordered.serialize(serializer)
}

/// The ridge solution of a [`BanditState`] for one catalog.
#[derive(Debug, Clone, PartialEq)]
pub struct BanditPosterior {
    dim: usize,
    theta: Vec<f64>,
    /// Lower Cholesky factor of `ridge I + gram` (Thompson's draws).
    factor: Vec<f64>,
    /// `(ridge I + gram)^-1` (LinUCB's variances).
    covariance: Vec<f64>,
    /// Per catalog item: the correction's posterior mean and its observation weight.
    item_mean: Vec<f32>,
    item_weight: Vec<f32>,
    ridge: f64,
}

impl BanditPosterior {
    /// The posterior of nothing learned: every mean 0, every variance the prior's.
    pub fn prior(dim: usize, ridge: f64) -> Self {
        BanditState::new(vec![String::new(); dim], 0).posterior(ridge, &IdMap::new())
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The shared prediction `theta . x`.
    pub fn shared(&self, x: &[f64]) -> f64 {
        dot_f64(&self.theta, x)
    }

    /// `x^T (ridge I + gram)^-1 x`: the shared part's variance at `x` (in noise units).
    pub fn shared_variance(&self, x: &[f64]) -> f64 {
        let quadratic: f64 = self
            .covariance
            .chunks_exact(self.dim.max(1))
            .zip(x)
            .map(|(row, xr)| xr * dot_f64(row, x))
            .sum();
        // Rounding may take a variance of about 0 just below it.
        quadratic.max(0.0)
    }

    /// The item's correction: posterior mean and variance (in noise units).
    pub fn correction(&self, item: u32) -> (f64, f64) {
        let i = item as usize;
        let mean = self.item_mean.get(i).copied().map_or(0.0, f64::from);
        let weight = self.item_weight.get(i).copied().map_or(0.0, f64::from);
        (mean, 1.0 / (weight + self.ridge))
    }

    /// `theta + scale * L^-T z`: a draw of the shared weights given standard normals `z`.
    pub fn sample_theta(&self, z: &mut [f64], scale: f64) -> Vec<f64> {
        solve_upper_t(&self.factor, self.dim, z);
        self.theta
            .iter()
            .zip(z.iter())
            .map(|(t, e)| t + scale * e)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kindred_core::SplitMix64;

    fn ids(n: usize) -> IdMap {
        let mut ids = IdMap::new();
        for i in 0..n {
            ids.intern(&format!("i{i}"));
        }
        ids
    }

    #[test]
    fn learns_shared_weights_and_item_corrections_from_rewards() {
        // Reward = 0.5 * x0 + (item 3: +0.3), no noise.
        let mut state = BanditState::new(vec!["bias".into(), "x".into()], 0);
        let catalog = ids(5);
        let mut rng = SplitMix64::new(1);
        for _ in 0..40 {
            let posterior = state.posterior(1.0, &catalog);
            for _ in 0..50 {
                let item = rng.below(5) as u32;
                let x = [1.0, rng.next_f64()];
                let reward = 0.5 * x[1] + if item == 3 { 0.3 } else { 0.0 };
                let shared = posterior.shared(&x);
                let (correction, _) = posterior.correction(item);
                state.observe(&x, &format!("i{item}"), reward, shared, correction);
            }
        }
        let posterior = state.posterior(1.0, &catalog);
        let predict =
            |item: u32, x1: f64| posterior.shared(&[1.0, x1]) + posterior.correction(item).0;
        for x1 in [0.2, 0.8] {
            assert!(
                (predict(0, x1) - 0.5 * x1).abs() < 0.05,
                "{}",
                predict(0, x1)
            );
            assert!((predict(3, x1) - (0.5 * x1 + 0.3)).abs() < 0.05);
        }
        // More data, less uncertainty.
        let prior = BanditPosterior::prior(2, 1.0);
        assert!(posterior.shared_variance(&[1.0, 0.5]) < prior.shared_variance(&[1.0, 0.5]));
        assert!(posterior.correction(3).1 < prior.correction(3).1);
    }

    #[test]
    fn shared_variance_is_the_quadratic_form_of_the_inverse() {
        // x^T (ridge I + gram)^-1 x = |L^-1 x|^2 for the Cholesky factor L.
        let mut state = BanditState::new(vec!["a".into(), "b".into(), "c".into()], 0);
        let mut rng = SplitMix64::new(3);
        for _ in 0..200 {
            let x = [1.0, rng.next_f64(), rng.normal()];
            state.observe(&x, "i0", rng.next_f64(), 0.0, 0.0);
        }
        let posterior = state.posterior(0.7, &ids(1));
        for _ in 0..20 {
            let x = [rng.normal(), rng.normal(), rng.normal()];
            let mut y = x.to_vec();
            solve_lower(&posterior.factor, 3, &mut y);
            let expected: f64 = y.iter().map(|v| v * v).sum();
            let got = posterior.shared_variance(&x);
            assert!(
                (got - expected).abs() <= 1e-12 * (1.0 + expected),
                "{got} against {expected}"
            );
        }
    }

    #[test]
    fn decay_halves_per_half_life_and_merge_adds_states() {
        let mut a = BanditState::new(vec!["bias".into()], 0);
        a.observe(&[1.0], "i0", 1.0, 0.0, 0.0);
        let mut b = a.clone();
        a.decay_to(3_600, Some(3_600.0));
        assert!((a.observations - 0.5).abs() < 1e-12);
        assert!((a.gram[0] - 0.5).abs() < 1e-12);
        assert!((a.items["i0"].weight - 0.5).abs() < 1e-12);
        // b is one half-life behind: merging decays it to a's clock first.
        assert!(a.merge(&b, Some(3_600.0)));
        assert!((a.observations - 1.0).abs() < 1e-12);
        b.features = vec!["other".into()];
        assert!(!a.merge(&b, None));
        a.decay_to(0, Some(1.0));
        assert_eq!(a.time, 3_600, "the clock never goes back");
    }

    #[test]
    fn the_item_cap_keeps_the_most_observed() {
        let mut state = BanditState::new(vec!["bias".into()], 0);
        for (i, n) in [3, 1, 5, 2].into_iter().enumerate() {
            for _ in 0..n {
                state.observe(&[1.0], &format!("i{i}"), 0.0, 0.0, 0.0);
            }
        }
        state.cap_items(2);
        let mut kept: Vec<&str> = state.items.keys().map(String::as_str).collect();
        kept.sort_unstable();
        assert_eq!(kept, vec!["i0", "i2"]);
        // Ties at the cut: those first in id order go.
        let mut state = BanditState::new(vec!["bias".into()], 0);
        for id in ["i3", "i1", "i4", "i2"] {
            state.observe(&[1.0], id, 0.0, 0.0, 0.0);
        }
        state.observe(&[1.0], "i1", 0.0, 0.0, 0.0);
        state.cap_items(2);
        let mut kept: Vec<&str> = state.items.keys().map(String::as_str).collect();
        kept.sort_unstable();
        assert_eq!(kept, vec!["i1", "i4"]);
    }

    #[test]
    fn survives_a_json_round_trip() {
        let mut state = BanditState::new(vec!["bias".into(), "score".into()], 5);
        state.observe(&[1.0, 0.3], "i1", 1.0, 0.0, 0.0);
        state.observe(&[1.0, 0.1], "i0", 0.0, 0.0, 0.0);
        let json = serde_json::to_string(&state).unwrap();
        assert_eq!(serde_json::from_str::<BanditState>(&json).unwrap(), state);
        assert!(json.find("\"i0\"") < json.find("\"i1\""), "{json}");
    }
}
