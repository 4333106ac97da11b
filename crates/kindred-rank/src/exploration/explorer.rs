//! How an `[exploration]` section fills a list: positions are filled in order from the
//! ranking's own (greedy) list, which runs `pool` items past the list's end. A pinned position
//! keeps its item. Any other position takes the best remaining item, unless the policy may
//! change it (inside `slots`, fewer than `max_explored` items explored so far) and its draw
//! says explore: then it takes a uniform draw from the remaining items, the best one included.
//!
//! The propensity logged for a position is the conditional probability of its item given the
//! items in earlier positions (the convention `kindred_eval::offpolicy` reads). It is exact:
//! whether a position may explore depends only on the earlier positions. [`ExplorationConfig::
//! probabilities`] gives the same probability for any list, so a candidate config can be
//! replayed against what another policy logged.

use kindred_core::rng::SplitMix64;

use super::config::ExplorationConfig;
use super::policy::epsilon_greedy_probability;

/// The ranking's own order that exploration starts from.
#[derive(Debug, Clone, Copy)]
pub struct GreedyList<'a> {
    /// Items best first, the list's length plus the pool.
    pub items: &'a [u32],
    /// Per position of `items`: true when a pin holds it (it stays put and is never drawn).
    pub pinned: &'a [bool],
}

/// One filled position.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ExploredSlot {
    /// Index into [`GreedyList::items`] of the item shown.
    pub index: usize,
    /// `P(this item here | items in earlier positions)` under the config.
    pub propensity: f64,
    /// True when the item is not the ranking's choice for this position.
    pub explored: bool,
}

/// Open (unpinned, unused) items of a greedy list in rank order, and how many were explored.
struct Walk<'a> {
    list: GreedyList<'a>,
    open: Vec<usize>,
    explored: usize,
}

impl<'a> Walk<'a> {
    fn new(list: GreedyList<'a>) -> Self {
        let open = (0..list.items.len())
            .filter(|&i| !list.pinned.get(i).copied().unwrap_or(false))
            .collect();
        Self {
            list,
            open,
            explored: 0,
        }
    }

    /// The pinned index at `slot`, if a pin holds it.
    fn pinned_at(&self, slot: usize) -> Option<usize> {
        self.list
            .pinned
            .get(slot)
            .copied()
            .unwrap_or(false)
            .then_some(slot)
    }

    /// Whether `slot` draws under `config`, given what was explored before it.
    fn may_explore(&self, config: &ExplorationConfig, slot: usize) -> bool {
        config.explores()
            && config.may_change(slot)
            && self.explored < config.max_explored
            && self.open.len() > 1
    }

    /// Takes the `k`-th remaining open item.
    fn take(&mut self, k: usize) -> usize {
        if k > 0 {
            self.explored += 1;
        }
        self.open.remove(k)
    }
}

/// What the policy prefers among the open items of a slot, before its epsilon mixing.
#[derive(Debug, Clone, Copy)]
pub enum Preference<'a> {
    /// The ranking's order: the best open item (greedy, epsilon-greedy).
    Ranking,
    /// The open item with the highest score, one per item of the greedy list (LinUCB); ties go
    /// to the item the ranking puts higher.
    Scores(&'a [f64]),
    /// Thompson sampling: rows of one sampled score per item of the greedy list. The list
    /// follows row 0 (the draw); an item's preference is the share of rows in which it is the
    /// best open item, row 0 included, so the logged item's is never 0.
    Samples { rows: &'a [f64], len: usize },
}

impl Preference<'_> {
    /// Index into `open` of the preferred item.
    fn pick(&self, open: &[usize]) -> usize {
        match *self {
            Preference::Ranking => 0,
            Preference::Scores(scores) => best_open(scores, open),
            Preference::Samples { rows, len } => best_open(&rows[..len.min(rows.len())], open),
        }
    }

    /// Per item of `open`, the probability the preference picks it.
    fn distribution(&self, open: &[usize]) -> Vec<f64> {
        let mut p = vec![0.0; open.len()];
        if open.is_empty() {
            return p;
        }
        match *self {
            Preference::Ranking | Preference::Scores(_) => p[self.pick(open)] = 1.0,
            Preference::Samples { rows, len } => {
                let draws = rows.len().checked_div(len).unwrap_or(0);
                for row in rows.chunks_exact(len.max(1)).take(draws) {
                    p[best_open(row, open)] += 1.0 / draws as f64;
                }
                if draws == 0 {
                    p[0] = 1.0;
                }
            }
        }
        p
    }
}

/// Index into `open` of the highest score; ties to the earlier.
fn best_open(scores: &[f64], open: &[usize]) -> usize {
    let mut best = 0;
    for (k, &i) in open.iter().enumerate().skip(1) {
        let (a, b) = (scores.get(i), scores.get(open[best]));
        if let (Some(a), Some(b)) = (a, b) {
            if a > b {
                best = k;
            }
        }
    }
    best
}

impl ExplorationConfig {
    /// Fills up to `n` positions from `list`, seeded by `seed` (one per request), following
    /// the ranking's order where the policy prefers it.
    pub fn fill(&self, list: GreedyList<'_>, n: usize, seed: u64) -> Vec<ExploredSlot> {
        self.fill_with(list, n, seed, Preference::Ranking)
    }

    /// [`Self::fill`] with a bandit's `preference` among the open items of each slot it may
    /// change; the `epsilon` mixing applies on top of it.
    pub fn fill_with(
        &self,
        list: GreedyList<'_>,
        n: usize,
        seed: u64,
        preference: Preference<'_>,
    ) -> Vec<ExploredSlot> {
        let mut walk = Walk::new(list);
        let mut rng = SplitMix64::new(seed);
        let mut out = Vec::with_capacity(n);
        for slot in 0..n {
            if let Some(index) = walk.pinned_at(slot) {
                out.push(ExploredSlot {
                    index,
                    propensity: 1.0,
                    explored: false,
                });
                continue;
            }
            let remaining = walk.open.len();
            if remaining == 0 {
                break;
            }
            let (pick, propensity) = if walk.may_explore(self, slot) {
                let preferred = preference.pick(&walk.open);
                let pick = if rng.next_f64() < self.epsilon {
                    rng.below(remaining as u64) as usize
                } else {
                    preferred
                };
                let p = match preference {
                    // A deterministic preference (the ranking's or a bandit's scores): the
                    // closed form around its pick.
                    Preference::Ranking | Preference::Scores(_) => {
                        epsilon_greedy_probability(self.epsilon, remaining, pick == preferred)
                    }
                    Preference::Samples { .. } => {
                        self.slot_probabilities(&preference, &walk.open)[pick]
                    }
                };
                (pick, p)
            } else {
                (0, 1.0)
            };
            out.push(ExploredSlot {
                index: walk.take(pick),
                propensity,
                explored: pick > 0,
            });
        }
        out
    }

    /// Per item of `open`, `P(it here)`: the preference's probability mixed with the uniform
    /// draw.
    fn slot_probabilities(&self, preference: &Preference<'_>, open: &[usize]) -> Vec<f64> {
        let uniform = self.epsilon / open.len().max(1) as f64;
        let mut p = preference.distribution(open);
        for v in &mut p {
            *v = (1.0 - self.epsilon) * *v + uniform;
        }
        p
    }

    /// For a logged list `shown` (items in position order), the probability that this config,
    /// starting from `list`, puts each item in its position given the logged earlier ones: the
    /// target probabilities an off-policy estimate needs. 0 for an item it could not show there.
    pub fn probabilities(&self, list: GreedyList<'_>, shown: &[u32]) -> Vec<f64> {
        self.replay(list, shown, &|_, _| 0.0)
            .into_iter()
            .map(|s| s.probability)
            .collect()
    }

    /// [`Self::probabilities`], and per position the expectation of `value(item, position)`
    /// over the items this config could put there given the logged earlier ones (the direct
    /// term of a doubly robust estimate, with `value` a reward model).
    pub fn replay(
        &self,
        list: GreedyList<'_>,
        shown: &[u32],
        value: &dyn Fn(u32, usize) -> f64,
    ) -> Vec<ReplayedSlot> {
        self.replay_with(list, shown, value, Preference::Ranking)
    }

    /// [`Self::replay`] under a bandit's `preference` (see [`Self::fill_with`]).
    pub fn replay_with(
        &self,
        list: GreedyList<'_>,
        shown: &[u32],
        value: &dyn Fn(u32, usize) -> f64,
        preference: Preference<'_>,
    ) -> Vec<ReplayedSlot> {
        let mut walk = Walk::new(list);
        let mut out = Vec::with_capacity(shown.len());
        for (slot, &item) in shown.iter().enumerate() {
            if let Some(index) = walk.pinned_at(slot) {
                let pinned = list.items[index];
                out.push(ReplayedSlot {
                    probability: if pinned == item { 1.0 } else { 0.0 },
                    expected_value: value(pinned, slot),
                });
                continue;
            }
            let at = walk.open.iter().position(|&i| list.items[i] == item);
            let explores = walk.may_explore(self, slot);
            let slot_p = if explores {
                self.slot_probabilities(&preference, &walk.open)
            } else {
                Vec::new()
            };
            let probability = match at {
                None => 0.0,
                Some(k) if explores => slot_p[k],
                Some(0) => 1.0,
                Some(_) => 0.0,
            };
            let best = walk.open.first().map(|&i| list.items[i]);
            let expected_value = match best {
                None => 0.0,
                Some(_) if explores => walk
                    .open
                    .iter()
                    .zip(&slot_p)
                    .fold(0.0, |sum, (&i, p)| sum + p * value(list.items[i], slot)),
                Some(best) => value(best, slot),
            };
            out.push(ReplayedSlot {
                probability,
                expected_value,
            });
            match at {
                Some(k) => {
                    walk.take(k);
                }
                // An item from outside the pool is not the ranking's choice either.
                None => walk.explored += 1,
            }
        }
        out
    }
}

/// One logged position replayed under a config (see [`ExplorationConfig::replay`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReplayedSlot {
    /// `P(logged item here | logged items above)` under the config.
    pub probability: f64,
    /// The config's expectation of the value function at this position, given the logged items
    /// above (0 when it has nothing left to show).
    pub expected_value: f64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exploration::ExplorationKind;
    use proptest::prelude::*;
    use std::collections::HashMap;

    fn epsilon(epsilon: f64) -> ExplorationConfig {
        ExplorationConfig {
            policy: ExplorationKind::EpsilonGreedy,
            epsilon,
            ..ExplorationConfig::default()
        }
    }

    fn items(list: &GreedyList<'_>, slots: &[ExploredSlot]) -> Vec<u32> {
        slots.iter().map(|s| list.items[s.index]).collect()
    }

    #[test]
    fn greedy_keeps_the_ranking_and_gives_probability_one_only_to_it() {
        let config = ExplorationConfig::default();
        let ranked = [10, 11, 12, 13, 14];
        let list = GreedyList {
            items: &ranked,
            pinned: &[false; 5],
        };
        let slots = config.fill(list, 3, 9);
        assert_eq!(items(&list, &slots), vec![10, 11, 12]);
        assert!(slots.iter().all(|s| s.propensity == 1.0 && !s.explored));
        assert_eq!(
            config.probabilities(list, &[10, 12, 11]),
            vec![1.0, 0.0, 1.0]
        );
    }

    #[test]
    fn probabilities_by_hand_with_a_slot_range_a_pin_and_a_cap() {
        // Positions 2..=3 may explore, one item at most; position 1 (0-based) is pinned.
        let config = ExplorationConfig {
            slots: Some([2, 3]),
            max_explored: 1,
            ..epsilon(0.4)
        };
        let ranked = [10, 99, 11, 12, 13];
        let pinned = [false, true, false, false, false];
        let list = GreedyList {
            items: &ranked,
            pinned: &pinned,
        };
        // Slot 0: outside the range, so the best open item for sure. Slot 1: the pin. Slot 2:
        // three open items (11, 12, 13), 13 is drawn: 0.4 / 3. Slot 3: the cap is reached, so
        // the best remaining (11) for sure, and 12 would be impossible.
        let p = config.probabilities(list, &[10, 99, 13, 11]);
        let expected = [1.0, 1.0, 0.4 / 3.0, 1.0];
        for (a, b) in p.iter().zip(expected) {
            assert!((a - b).abs() < 1e-12, "{p:?}");
        }
        assert_eq!(config.probabilities(list, &[10, 99, 13, 12])[3], 0.0);
        // The best item at slot 2 keeps its greedy mass plus its share of the draw.
        let best = config.probabilities(list, &[10, 99, 11])[2];
        assert!((best - (0.6 + 0.4 / 3.0)).abs() < 1e-12);
        // An item the config could never show (not in its pool) has probability 0.
        assert_eq!(config.probabilities(list, &[77])[0], 0.0);
    }

    #[test]
    fn expected_values_weigh_every_item_the_config_could_show() {
        let config = ExplorationConfig {
            max_explored: 1,
            ..epsilon(0.3)
        };
        let ranked = [1, 2, 3];
        let list = GreedyList {
            items: &ranked,
            pinned: &[false; 3],
        };
        let value = |item: u32, slot: usize| item as f64 * 10.0 + slot as f64;
        // Slot 0 explores over {1, 2, 3}: 0.8 * 10 + 0.1 * 20 + 0.1 * 30. Item 2 is logged
        // (explored), so slot 1 is capped: the best remaining, item 1, for sure.
        let replayed = config.replay(list, &[2, 1], &value);
        assert!(
            (replayed[0].expected_value - 13.0).abs() < 1e-12,
            "{replayed:?}"
        );
        assert!(
            (replayed[1].expected_value - 11.0).abs() < 1e-12,
            "{replayed:?}"
        );
        assert!((replayed[0].probability - 0.1).abs() < 1e-12);
        assert_eq!(replayed[1].probability, 1.0);
    }

    #[test]
    fn logged_propensities_match_the_frequencies_of_whole_lists() {
        let config = ExplorationConfig {
            max_explored: 1,
            ..epsilon(0.5)
        };
        let ranked = [1, 2, 3, 4];
        let list = GreedyList {
            items: &ranked,
            pinned: &[false; 4],
        };
        let draws = 40_000u64;
        let mut counts: HashMap<Vec<u32>, (u64, f64)> = HashMap::new();
        for seed in 0..draws {
            let slots = config.fill(list, 2, seed);
            let shown = items(&list, &slots);
            let logged: f64 = slots.iter().map(|s| s.propensity).product();
            let replayed: f64 = config.probabilities(list, &shown).iter().product();
            assert!((logged - replayed).abs() < 1e-12);
            counts.entry(shown).or_insert((0, logged)).0 += 1;
        }
        let total: f64 = counts.values().map(|c| c.1).sum();
        assert!((total - 1.0).abs() < 1e-9, "probabilities sum to {total}");
        for (shown, (count, p)) in counts {
            let frequency = count as f64 / draws as f64;
            let se = (p * (1.0 - p) / draws as f64).sqrt();
            assert!(
                (frequency - p).abs() < 5.0 * se + 1e-9,
                "{shown:?}: frequency {frequency}, probability {p}"
            );
        }
    }

    #[test]
    fn a_bandits_preference_orders_the_open_slots_and_replays_its_own_propensities() {
        let config = ExplorationConfig {
            max_explored: 2,
            slots: Some([2, 3]),
            ..epsilon(0.2)
        };
        let ranked = [10, 11, 12, 13];
        let list = GreedyList {
            items: &ranked,
            pinned: &[false; 4],
        };
        // The bandit likes item 13 best, then 12: with epsilon 0.2 and a 2-item cap.
        let scores = [0.1, 0.2, 0.5, 0.9];
        let thompson_rows = [0.1, 0.2, 0.5, 0.9, 0.1, 0.2, 0.9, 0.5];
        for preference in [
            Preference::Scores(&scores),
            Preference::Samples {
                rows: &thompson_rows,
                len: 4,
            },
        ] {
            for seed in 0..200 {
                let slots = config.fill_with(list, 3, seed, preference);
                let shown = items(&list, &slots);
                assert_eq!(shown[0], 10, "position 1 is outside the slot range");
                let replayed = config.replay_with(list, &shown, &|_, _| 0.0, preference);
                for (s, r) in slots.iter().zip(&replayed) {
                    assert!((s.propensity - r.probability).abs() < 1e-12);
                }
            }
        }
        // Position 2 under the scores: 13 with 0.8 + 0.2 / 3; under the two draws, 13 and 12
        // share the preference: 0.4 + 0.2 / 3 each.
        let p = config.probabilities(list, &[10, 13]);
        assert!((p[1] - 0.2 / 3.0).abs() < 1e-12, "{p:?}");
        let by_scores =
            config.replay_with(list, &[10, 13], &|_, _| 0.0, Preference::Scores(&scores));
        assert!((by_scores[1].probability - (0.8 + 0.2 / 3.0)).abs() < 1e-12);
        let by_draws = config.replay_with(
            list,
            &[10, 12],
            &|_, _| 0.0,
            Preference::Samples {
                rows: &thompson_rows,
                len: 4,
            },
        );
        assert!((by_draws[1].probability - (0.4 + 0.2 / 3.0)).abs() < 1e-12);
    }

    proptest! {
        #[test]
        fn filled_lists_are_distinct_respect_pins_and_the_cap(
            len in 1usize..12,
            n in 1usize..8,
            pins in proptest::collection::vec(any::<bool>(), 12),
            cap in 1usize..4,
            seed in any::<u64>(),
        ) {
            let config = ExplorationConfig { max_explored: cap, slots: Some([2, 6]), ..epsilon(0.7) };
            let ranked: Vec<u32> = (0..len as u32).map(|i| 100 + i).collect();
            let list = GreedyList { items: &ranked, pinned: &pins[..len] };
            let slots = config.fill(list, n, seed);
            let shown = items(&list, &slots);
            let mut distinct = shown.clone();
            distinct.sort_unstable();
            distinct.dedup();
            prop_assert_eq!(distinct.len(), shown.len());
            prop_assert!(slots.iter().filter(|s| s.explored).count() <= cap);
            for (slot, s) in slots.iter().enumerate() {
                if pins[..len].get(slot).copied().unwrap_or(false) {
                    prop_assert_eq!(s.index, slot);
                }
                if s.explored {
                    prop_assert!((1..6).contains(&slot));
                }
                prop_assert!(s.propensity > 0.0 && s.propensity <= 1.0);
            }
            let replayed = config.probabilities(list, &shown);
            for (s, p) in slots.iter().zip(replayed) {
                prop_assert!((s.propensity - p).abs() < 1e-12);
            }
        }
    }
}
