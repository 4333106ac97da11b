//! The reward model of a doubly robust estimate: a logged slot's click probability as the slot's
//! click rate times the item's smoothed lift (its clicks over the clicks its slots would give an
//! average item). Position and item, nothing else: crude on purpose, because the doubly robust
//! estimate stays unbiased however wrong the model is, and only its variance gains from a good
//! one. Fit it on other requests than it is applied to ([`CrossFitted`]), so its errors and the
//! slots it predicts are independent and the interval stays honest.

use std::collections::HashMap;
use std::hash::Hash;

/// Pseudo-clicks that pull an item's lift towards 1 (items seen a few times stay near average).
const LIFT_PRIOR: f64 = 5.0;

/// One logged slot to fit on: the request it belongs to, the item, its position and its reward.
#[derive(Debug, Clone, PartialEq)]
pub struct RewardExample<K> {
    pub request: u64,
    pub item: K,
    pub slot: usize,
    pub reward: f64,
}

/// Slot click rate times item lift, predictions clipped to [0, 1].
#[derive(Debug, Clone, Default)]
pub struct SlotItemRewardModel<K: Hash + Eq> {
    slot_rate: Vec<f64>,
    lift: HashMap<K, f64>,
}

impl<K: Hash + Eq + Clone> SlotItemRewardModel<K> {
    /// Fits on `examples` (any order).
    pub fn fit<'a>(examples: impl IntoIterator<Item = &'a RewardExample<K>> + Clone) -> Self
    where
        K: 'a,
    {
        let mut clicks: Vec<f64> = Vec::new();
        let mut shown: Vec<f64> = Vec::new();
        for e in examples.clone() {
            if clicks.len() <= e.slot {
                clicks.resize(e.slot + 1, 0.0);
                shown.resize(e.slot + 1, 0.0);
            }
            clicks[e.slot] += e.reward;
            shown[e.slot] += 1.0;
        }
        let slot_rate: Vec<f64> = clicks
            .iter()
            .zip(&shown)
            .map(|(c, n)| if *n > 0.0 { c / n } else { 0.0 })
            .collect();
        // Per item: observed clicks and the clicks an average item would have had in its slots.
        let mut per_item: HashMap<K, (f64, f64)> = HashMap::new();
        for e in examples {
            let entry = per_item.entry(e.item.clone()).or_default();
            entry.0 += e.reward;
            entry.1 += slot_rate[e.slot];
        }
        let lift = per_item
            .into_iter()
            .map(|(item, (observed, expected))| {
                (item, (observed + LIFT_PRIOR) / (expected + LIFT_PRIOR))
            })
            .collect();
        Self { slot_rate, lift }
    }

    /// The predicted reward of `item` in `slot` (an unseen item or slot: the average item, the
    /// last slot's rate). `item` may be any borrowed form of the key (`&str` for `String`).
    pub fn predict<Q>(&self, item: &Q, slot: usize) -> f64
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let rate = match self.slot_rate.get(slot) {
            Some(&r) => r,
            None => self.slot_rate.last().copied().unwrap_or(0.0),
        };
        (rate * self.lift.get(item).copied().unwrap_or(1.0)).clamp(0.0, 1.0)
    }
}

/// Two reward models, each fit on the requests the other predicts (even and odd request
/// numbers), so no slot is predicted by a model that saw its own reward.
#[derive(Debug, Clone)]
pub struct CrossFitted<K: Hash + Eq> {
    folds: [SlotItemRewardModel<K>; 2],
}

impl<K: Hash + Eq + Clone> CrossFitted<K> {
    pub fn fit(examples: &[RewardExample<K>]) -> Self {
        let half = |fold: u64| examples.iter().filter(move |e| e.request % 2 == fold);
        Self {
            // The model for fold 0 is fit on fold 1 and the reverse.
            folds: [
                SlotItemRewardModel::fit(half(1)),
                SlotItemRewardModel::fit(half(0)),
            ],
        }
    }

    /// The model that predicts the slots of `request`.
    pub fn for_request(&self, request: u64) -> &SlotItemRewardModel<K> {
        &self.folds[(request % 2) as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example(request: u64, item: &str, slot: usize, reward: f64) -> RewardExample<String> {
        RewardExample {
            request,
            item: item.to_owned(),
            slot,
            reward,
        }
    }

    #[test]
    fn slot_rate_times_smoothed_lift_by_hand() {
        // Slot 0: 2 clicks of 4; slot 1: 0 of 2. Item a: 2 clicks where an average item gets
        // 2 * 0.5 = 1, so lift (2 + 5) / (1 + 5).
        let examples = vec![
            example(0, "a", 0, 1.0),
            example(1, "a", 0, 1.0),
            example(2, "b", 0, 0.0),
            example(3, "b", 0, 0.0),
            example(0, "b", 1, 0.0),
            example(1, "c", 1, 0.0),
        ];
        let model = SlotItemRewardModel::fit(&examples);
        assert!((model.predict(&"a".to_owned(), 0) - 0.5 * 7.0 / 6.0).abs() < 1e-12);
        assert!((model.predict(&"b".to_owned(), 0) - 0.5 * 5.0 / 6.0).abs() < 1e-12);
        assert_eq!(model.predict(&"a".to_owned(), 1), 0.0);
        assert_eq!(model.predict(&"new".to_owned(), 0), 0.5);
        assert_eq!(model.predict(&"new".to_owned(), 9), 0.0);
    }

    #[test]
    fn cross_fitting_predicts_a_request_from_the_other_half() {
        let examples = vec![example(0, "a", 0, 1.0), example(1, "a", 0, 0.0)];
        let models = CrossFitted::fit(&examples);
        // Request 0 (clicked) is predicted from request 1 (not clicked) and the reverse.
        assert_eq!(models.for_request(0).predict(&"a".to_owned(), 0), 0.0);
        assert_eq!(models.for_request(1).predict(&"a".to_owned(), 0), 1.0);
    }
}
