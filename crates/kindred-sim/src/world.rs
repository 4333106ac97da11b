//! The simulated world and its click model: who likes what, and how likely a user is to click
//! (and then buy) an item shown at a given slot.
//!
//! The world is kindred-data's seeded synthetic generator ([`kindred_data::synthetic`]): the
//! same config produces the history that is imported into the store and trained on, and the
//! latent tables ([`kindred_data::synthetic::SyntheticTruth`]) that define the truth below.
//! User `u{k}` and item `i{k}` are row `k` of those tables.
//!
//! **Click model: position-based (examination) model.** An item `i` shown to user `u` at slot
//! `k` (0-based) is clicked with probability
//!
//! ```text
//! P(click) = examine(k) * attract(u, i)
//! examine(k) = 1 / (1 + k)^position_decay
//! attract(u, i) = sigmoid(base + taste_weight * (u . v_i) + bias_i + popularity_weight * z_i)
//! ```
//!
//! where `u` is the user's taste at the end of their history, `v_i` the item vector, `bias_i`
//! the item's bias and `z_i` the item's standardised log popularity. Slots are examined
//! independently (not a cascade), so the expected clicks of a list are the sum of the
//! probabilities. After a click the user buys with probability
//! `sigmoid(purchase_base + taste_weight * (u . v_i))`.
//!
//! **Organic events** (a user finding an item without a recommendation) follow the generator:
//! 32 candidates drawn by `popularity^0.5`, one chosen with weight
//! `exp(0.5 * log_popularity + affinity * u . v_i)`.
//!
//! Item appeal (popularity and bias) lives in an [`Appeal`] so a drift scenario can reshuffle
//! it ([`Appeal::shifted`]) while tastes stay as they are.

use std::sync::Arc;

use kindred_core::kernels::sigmoid;
use kindred_core::{Dataset, Error, Result, SplitMix64};
use kindred_data::synthetic::{generate, SyntheticConfig, SyntheticTruth};
use serde::{Deserialize, Serialize};

/// Candidates per organic pick, as in the generator.
const CANDIDATES: usize = 32;
/// Share of the popularity that draws candidates; the rest weighs the choice.
const PROPOSAL_FLATTENING: f64 = 0.5;

/// Parameters of the click model (see the module docs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClickModel {
    /// Intercept of the attraction logit.
    pub base: f64,
    /// Weight of the user-item taste agreement `u . v_i`.
    pub taste_weight: f64,
    /// Weight of the item's standardised log popularity.
    pub popularity_weight: f64,
    /// Examination probability at slot `k` is `1 / (1 + k)^position_decay` (0 = no position bias).
    pub position_decay: f64,
    /// Intercept of the purchase-after-click logit.
    pub purchase_base: f64,
}

impl Default for ClickModel {
    fn default() -> Self {
        Self {
            base: -1.5,
            taste_weight: 1.5,
            popularity_weight: 0.25,
            position_decay: 1.0,
            purchase_base: -1.0,
        }
    }
}

impl ClickModel {
    /// Probability that slot `slot` (0-based) is examined: 1 at the top, never increasing.
    pub fn examination(&self, slot: usize) -> f64 {
        (1.0 + slot as f64).powf(-self.position_decay.max(0.0))
    }
}

/// How attractive and how popular each item is; reshuffled by the popularity-shift drift.
#[derive(Debug, Clone, PartialEq)]
pub struct Appeal {
    /// `-popularity_exponent * ln(rank + 1)` per item (0 for the most popular).
    pub log_popularity: Vec<f64>,
    /// Item bias per item.
    pub bias: Vec<f64>,
    /// Standardised log popularity (mean 0, sd 1; all 0 when every item is equally popular).
    standardised: Vec<f64>,
    /// Cumulative candidate weights `exp(0.5 * log_popularity)`, for organic draws.
    proposal_cdf: Vec<f64>,
}

impl Appeal {
    pub fn new(log_popularity: Vec<f64>, bias: Vec<f64>) -> Self {
        let n = log_popularity.len().max(1) as f64;
        let mean = log_popularity.iter().sum::<f64>() / n;
        let sd = (log_popularity
            .iter()
            .map(|x| (x - mean) * (x - mean))
            .sum::<f64>()
            / n)
            .sqrt();
        let standardised = log_popularity
            .iter()
            .map(|x| if sd > 0.0 { (x - mean) / sd } else { 0.0 })
            .collect();
        let mut total = 0.0;
        let proposal_cdf = log_popularity
            .iter()
            .map(|lp| {
                total += (PROPOSAL_FLATTENING * lp).exp();
                total
            })
            .collect();
        Self {
            log_popularity,
            bias,
            standardised,
            proposal_cdf,
        }
    }

    /// The same appeal with a seeded random `share` of the items exchanging their popularity
    /// and bias among themselves (a random permutation within the chosen set).
    pub fn shifted(&self, share: f64, seed: u64) -> Self {
        let n = self.log_popularity.len();
        let mut rng = SplitMix64::stream(seed, 0x5_41F7);
        let mut order: Vec<usize> = (0..n).collect();
        rng.shuffle(&mut order);
        let chosen = &order[..((share.clamp(0.0, 1.0) * n as f64).round() as usize).min(n)];
        let mut targets = chosen.to_vec();
        rng.shuffle(&mut targets);
        let mut log_popularity = self.log_popularity.clone();
        let mut bias = self.bias.clone();
        for (&from, &to) in chosen.iter().zip(&targets) {
            log_popularity[to] = self.log_popularity[from];
            bias[to] = self.bias[from];
        }
        Self::new(log_popularity, bias)
    }

    /// An item drawn by (flattened) popularity.
    fn draw_candidate(&self, rng: &mut SplitMix64) -> u32 {
        let total = self.proposal_cdf.last().copied().unwrap_or(0.0);
        let x = rng.next_f64() * total;
        let i = self.proposal_cdf.partition_point(|&c| c <= x);
        i.min(self.proposal_cdf.len().saturating_sub(1)) as u32
    }
}

/// The world: the generated history, the latent truth and the click model.
#[derive(Debug, Clone)]
pub struct World {
    pub config: SyntheticConfig,
    pub click_model: ClickModel,
    dataset: Dataset,
    truth: SyntheticTruth,
    appeal: Arc<Appeal>,
    /// Indices of the users that are not bots: the ones the simulator plays.
    humans: Vec<u32>,
    /// Per item index: left out of the history (synthetic `late_items`), to arrive later.
    late: Vec<bool>,
}

impl World {
    /// Generates the world of a synthetic spec (`users=1000,items=500,seed=7,...`, the keys of
    /// [`kindred_data::synthetic`]) with the default click model.
    pub fn from_spec(spec: &str) -> Result<Self> {
        Self::new(SyntheticConfig::parse(spec)?, ClickModel::default())
    }

    /// Generates the world of `config`.
    pub fn new(config: SyntheticConfig, click_model: ClickModel) -> Result<Self> {
        let synthetic = generate(&config)?;
        let truth = synthetic.truth;
        let bots: std::collections::HashSet<&str> =
            truth.bot_users.iter().map(String::as_str).collect();
        let humans: Vec<u32> = (0..config.users as u32)
            .filter(|u| !bots.contains(format!("u{u}").as_str()))
            .collect();
        if humans.is_empty() {
            return Err(Error::InvalidInput(
                "the synthetic world has no human users (bots=1?)".into(),
            ));
        }
        let appeal = Arc::new(Appeal::new(
            truth.item_log_popularity.clone(),
            truth.item_bias.clone(),
        ));
        let mut late = vec![false; config.items];
        for item in &truth.late_items {
            if let Some(i) = item
                .id
                .strip_prefix('i')
                .and_then(|k| k.parse::<usize>().ok())
            {
                if let Some(slot) = late.get_mut(i) {
                    *slot = true;
                }
            }
        }
        Ok(Self {
            config,
            click_model,
            dataset: synthetic.dataset,
            truth,
            appeal,
            humans,
            late,
        })
    }

    /// Whether item `item` is one of the late items (not in the history, arriving later).
    pub fn is_late(&self, item: u32) -> bool {
        self.late.get(item as usize).copied().unwrap_or(false)
    }

    /// The same world after its users' tastes drifted: each user's taste becomes
    /// `sqrt(1 - share) * taste + sqrt(share) * fresh`, with `fresh` drawn (seeded) at the
    /// tastes' own scale, so the spread of tastes stays the same.
    pub fn with_drifted_tastes(&self, share: f64, seed: u64) -> World {
        let share = share.clamp(0.0, 1.0);
        let factors = &self.truth.user_factors;
        let scale =
            (factors.iter().map(|x| x * x).sum::<f64>() / factors.len().max(1) as f64).sqrt();
        let mut rng = SplitMix64::stream(seed, 0x7A57E);
        let drifted = factors
            .iter()
            .map(|x| (1.0 - share).sqrt() * x + share.sqrt() * scale * rng.normal())
            .collect();
        let mut world = self.clone();
        world.truth.user_factors = drifted;
        world
    }

    /// The world's history as a dataset: import it into a store (or run `kindred import
    /// --data synthetic:SPEC`, which generates the very same rows) and train on it.
    pub fn dataset(&self) -> &Dataset {
        &self.dataset
    }

    /// What the generator planted, including the latent tables.
    pub fn truth(&self) -> &SyntheticTruth {
        &self.truth
    }

    /// Item appeal before any drift.
    pub fn appeal(&self) -> &Arc<Appeal> {
        &self.appeal
    }

    /// Indices of the human (non-bot) users.
    pub fn humans(&self) -> &[u32] {
        &self.humans
    }

    pub fn n_items(&self) -> usize {
        self.config.items
    }

    /// External id of user index `u`.
    pub fn user_id(u: u32) -> String {
        format!("u{u}")
    }

    /// External id of item index `i`.
    pub fn item_id(i: u32) -> String {
        format!("i{i}")
    }

    /// The index of an external item id of this world (`i{k}`), or None for a foreign id.
    pub fn item_index(&self, id: &str) -> Option<u32> {
        let k: u32 = id.strip_prefix('i')?.parse().ok()?;
        ((k as usize) < self.config.items && id == format!("i{k}")).then_some(k)
    }

    /// Taste agreement `u . v_i`.
    pub fn taste(&self, user: u32, item: u32) -> f64 {
        let f = self.truth.factors;
        let (u, i) = (user as usize * f, item as usize * f);
        self.truth.user_factors[u..u + f]
            .iter()
            .zip(&self.truth.item_factors[i..i + f])
            .map(|(a, b)| a * b)
            .sum()
    }

    /// Probability that `user` clicks `item` once they look at it.
    pub fn attraction(&self, appeal: &Appeal, user: u32, item: u32) -> f64 {
        let m = &self.click_model;
        let i = item as usize;
        sigmoid(
            m.base
                + m.taste_weight * self.taste(user, item)
                + appeal.bias[i]
                + m.popularity_weight * appeal.standardised[i],
        )
    }

    /// Probability that `user` clicks `item` shown at `slot` (0-based).
    pub fn click_probability(&self, appeal: &Appeal, user: u32, item: u32, slot: usize) -> f64 {
        self.click_model.examination(slot) * self.attraction(appeal, user, item)
    }

    /// Probability that `user` buys `item` after clicking it.
    pub fn purchase_probability(&self, user: u32, item: u32) -> f64 {
        let m = &self.click_model;
        sigmoid(m.purchase_base + m.taste_weight * self.taste(user, item))
    }

    /// Expected clicks on `items` shown in this order (foreign items count as never clicked).
    pub fn expected_clicks(&self, appeal: &Appeal, user: u32, items: &[Option<u32>]) -> f64 {
        items
            .iter()
            .enumerate()
            .filter_map(|(slot, item)| item.map(|i| self.click_probability(appeal, user, i, slot)))
            .sum()
    }

    /// An item `user` finds on their own: popularity times taste, as in the generator.
    pub fn organic_item(&self, appeal: &Appeal, user: u32, rng: &mut SplitMix64) -> u32 {
        let mut candidates = [(0u32, 0f64); CANDIDATES];
        let mut best = f64::NEG_INFINITY;
        for c in &mut candidates {
            let i = appeal.draw_candidate(rng);
            let logit = (1.0 - PROPOSAL_FLATTENING) * appeal.log_popularity[i as usize]
                + self.config.affinity * self.taste(user, i);
            best = best.max(logit);
            *c = (i, logit);
        }
        let mut total = 0.0;
        for c in &mut candidates {
            c.1 = (c.1 - best).exp();
            total += c.1;
        }
        let mut x = rng.next_f64() * total;
        for c in &candidates {
            x -= c.1;
            if x <= 0.0 {
                return c.0;
            }
        }
        candidates[CANDIDATES - 1].0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn world() -> World {
        World::from_spec("users=200,items=150,per_user=20,seed=3").unwrap()
    }

    #[test]
    fn drifted_tastes_keep_their_scale_and_part_of_their_direction() {
        let w = world();
        let before = &w.truth().user_factors;
        let share = 0.36;
        let drifted = w.with_drifted_tastes(share, 5);
        let after = &drifted.truth().user_factors;
        let mean_square = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>() / v.len() as f64;
        let ratio = mean_square(after) / mean_square(before);
        assert!((ratio - 1.0).abs() < 0.1, "{ratio}");
        // The correlation of old and new tastes is sqrt(1 - share) = 0.8.
        let cross = before.iter().zip(after).map(|(a, b)| a * b).sum::<f64>() / before.len() as f64;
        let correlation = cross / (mean_square(before) * mean_square(after)).sqrt();
        assert!((correlation - 0.8).abs() < 0.05, "{correlation}");
        assert_eq!(w.with_drifted_tastes(0.0, 5).truth().user_factors, *before);
        assert!(!w.is_late(0), "no late items without `late_items`");
    }

    #[test]
    fn probabilities_are_probabilities() {
        let w = world();
        let appeal = w.appeal().clone();
        for u in (0..200).step_by(7) {
            for i in 0..150 {
                for slot in [0, 1, 5, 20] {
                    let p = w.click_probability(&appeal, u, i, slot);
                    assert!((0.0..=1.0).contains(&p), "{p}");
                }
                let q = w.purchase_probability(u, i);
                assert!((0.0..=1.0).contains(&q), "{q}");
            }
        }
    }

    #[test]
    fn position_bias_is_monotone() {
        let m = ClickModel::default();
        assert_eq!(m.examination(0), 1.0);
        assert!((m.examination(1) - 0.5).abs() < 1e-12);
        assert!((m.examination(3) - 0.25).abs() < 1e-12);
        for k in 0..50 {
            assert!(m.examination(k + 1) < m.examination(k));
        }
        let flat = ClickModel {
            position_decay: 0.0,
            ..ClickModel::default()
        };
        assert!((0..10).all(|k| flat.examination(k) == 1.0));
    }

    /// Hand-computed: base 0, taste and popularity weights 0, bias 0 gives attraction 1/2,
    /// so a list of 3 at decay 1 expects 0.5 * (1 + 1/2 + 1/3) clicks.
    #[test]
    fn expected_clicks_by_hand() {
        let mut w = world();
        w.click_model = ClickModel {
            base: 0.0,
            taste_weight: 0.0,
            popularity_weight: 0.0,
            position_decay: 1.0,
            purchase_base: 0.0,
        };
        let appeal = Appeal::new(vec![0.0; 150], vec![0.0; 150]);
        let e = w.expected_clicks(&appeal, 0, &[Some(1), Some(2), None, Some(3)]);
        assert!((e - 0.5 * (1.0 + 0.5 + 0.25)).abs() < 1e-12, "{e}");
        assert!((w.purchase_probability(4, 4) - 0.5).abs() < 1e-12);
    }

    /// The oracle's best list (items sorted by the user's attraction) expects far more clicks
    /// than a random list, for every user.
    #[test]
    fn perfect_list_beats_random_list() {
        let w = world();
        let appeal = w.appeal().clone();
        let mut rng = SplitMix64::new(9);
        let (mut best_total, mut random_total) = (0.0, 0.0);
        for &u in w.humans().iter().take(50) {
            let mut items: Vec<u32> = (0..150).collect();
            items.sort_by(|&a, &b| {
                w.attraction(&appeal, u, b)
                    .total_cmp(&w.attraction(&appeal, u, a))
            });
            let best: Vec<Option<u32>> = items[..10].iter().copied().map(Some).collect();
            rng.shuffle(&mut items);
            let random: Vec<Option<u32>> = items[..10].iter().copied().map(Some).collect();
            let (b, r) = (
                w.expected_clicks(&appeal, u, &best),
                w.expected_clicks(&appeal, u, &random),
            );
            assert!(b >= r, "user {u}: best {b} < random {r}");
            best_total += b;
            random_total += r;
        }
        assert!(
            best_total > 2.0 * random_total,
            "{best_total} vs {random_total}"
        );
    }

    #[test]
    fn shift_permutes_a_share_of_items() {
        let w = world();
        let before = w.appeal();
        let after = before.shifted(0.5, 1);
        let moved = (0..150)
            .filter(|&i| after.log_popularity[i] != before.log_popularity[i])
            .count();
        assert!((50..=75).contains(&moved), "{moved} items moved");
        let mut a = before.log_popularity.clone();
        let mut b = after.log_popularity.clone();
        a.sort_by(f64::total_cmp);
        b.sort_by(f64::total_cmp);
        assert_eq!(a, b, "a permutation keeps the values");
        assert_eq!(before.shifted(0.0, 1), **before);
    }

    #[test]
    fn organic_items_follow_popularity() {
        let w = world();
        let appeal = w.appeal().clone();
        let mut rng = SplitMix64::new(2);
        let mut counts = vec![0usize; 150];
        for k in 0..20_000 {
            let u = w.humans()[k % w.humans().len()];
            counts[w.organic_item(&appeal, u, &mut rng) as usize] += 1;
        }
        let top = (0..150)
            .max_by(|&a, &b| appeal.log_popularity[a].total_cmp(&appeal.log_popularity[b]))
            .unwrap();
        let mean = 20_000.0 / 150.0;
        assert!(counts[top] as f64 > 3.0 * mean, "top item {}", counts[top]);
    }

    #[test]
    fn item_ids_round_trip() {
        let w = world();
        assert_eq!(w.item_index("i0"), Some(0));
        assert_eq!(w.item_index("i149"), Some(149));
        assert_eq!(w.item_index("i150"), None);
        assert_eq!(w.item_index("i07"), None);
        assert_eq!(w.item_index("x1"), None);
        assert_eq!(World::item_id(5), "i5");
        assert_eq!(World::user_id(5), "u5");
    }
}
