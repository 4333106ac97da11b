//! Each user's chronological training history with per-pair values: what recency-weighted
//! scoring (item-kNN, EASE, SLIM) and user profiles (content) read, and their tensors.

use std::borrow::Cow;
use std::collections::HashSet;

use kindred_core::interactions::NO_TIMESTAMP;
use kindred_core::{ItemIdx, Result, TrainSet, UserIdx};

use crate::model::UserQuery;
use crate::persist::{TensorReader, TensorWriter};
use crate::space::Param;

/// The help line of a scoring-time `half_life` parameter (item-kNN, EASE, SLIM).
pub(crate) const HALF_LIFE_HELP: &str =
    "half-life in interactions of a history item's weight when scoring (the latest has age 0)";

/// The searched values of `half_life`: 0 switches recency off, so it cannot sit on a log scale.
pub(crate) fn half_life_param() -> Param {
    Param::choice("half_life", &["0", "1", "2", "3", "5", "10", "20", "50"], 0)
}

use crate::common::weighting::{TermWeights, Weighting};

/// Each user's distinct training items, oldest first (by their latest event), with values.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Histories {
    pub(crate) indptr: Vec<u64>,
    pub(crate) items: Vec<ItemIdx>,
    pub(crate) weights: Vec<f32>,
}

impl Histories {
    pub(crate) fn new(data: &TrainSet, weighting: Weighting, terms: Option<&TermWeights>) -> Self {
        let log = &data.data;
        let (timestamps, weights) = (log.timestamps(), log.weights());
        let m = &data.by_user;
        let mut out = Histories {
            indptr: Vec::with_capacity(m.n_rows() + 1),
            items: Vec::with_capacity(m.nnz()),
            weights: Vec::with_capacity(m.nnz()),
        };
        out.indptr.push(0);
        let mut user: Vec<((i64, u64), ItemIdx, f32)> = Vec::new();
        for u in 0..m.n_rows() {
            user.clear();
            for (&item, &e) in m.row(u).iter().zip(m.row_entries(u)) {
                let t = timestamps[e as usize];
                // Chronology as the temporal protocol sees it: (timestamp, item); rows without a
                // timestamp keep their log order, the only chronology they have.
                let key = if t == NO_TIMESTAMP {
                    (t, e as u64)
                } else {
                    (t, item as u64)
                };
                let w = match weighting {
                    Weighting::Binary => 1.0,
                    _ => weights[e as usize],
                };
                match user.last_mut() {
                    Some(last) if last.1 == item => {
                        last.0 = last.0.max(key);
                        if weighting != Weighting::Binary {
                            last.2 += w;
                        }
                    }
                    _ => user.push((key, item, w)),
                }
            }
            user.sort_by_key(|h| h.0);
            out.items.extend(user.iter().map(|h| h.1));
            match terms {
                Some(t) => out
                    .weights
                    .extend(user.iter().map(|h| t.value(u, h.1 as usize, h.2))),
                None => out.weights.extend(user.iter().map(|h| h.2)),
            }
            out.indptr.push(out.items.len() as u64);
        }
        out
    }

    /// The history a query is scored from, most recent first, each item once with its value:
    /// the query's items (chronological, last = most recent) come before the known user's
    /// training history.
    pub(crate) fn recent_first(&self, query: &UserQuery<'_>) -> Vec<(ItemIdx, f32)> {
        let (items, weights) = query.user.map_or((&[][..], &[][..]), |u| self.of(u));
        let trained = items.iter().copied().zip(weights.iter().copied()).rev();
        if query.history.is_empty() {
            // Training histories are distinct already.
            return trained.collect();
        }
        let mut taken = HashSet::with_capacity(query.history.len() + items.len());
        query
            .history
            .iter()
            .rev()
            .map(|&i| (i, 1.0))
            .chain(trained)
            .filter(|&(i, _)| taken.insert(i))
            .collect()
    }

    /// Adds the `history.*` tensors.
    pub(crate) fn save_into(&self, tensors: &mut TensorWriter) {
        tensors
            .u64("history.indptr", &self.indptr)
            .u32("history.items", &self.items)
            .f32("history.weights", &[self.weights.len()], &self.weights);
    }

    /// Reads the `history.*` tensors of a model with `users` users and `items` items.
    pub(crate) fn load(tensors: &TensorReader, users: usize, items: usize) -> Result<Self> {
        let histories = Histories {
            indptr: tensors.u64("history.indptr")?,
            items: tensors.u32("history.items")?,
            weights: tensors.f32_shaped("history.weights")?.1,
        };
        tensors.check_csr(
            "history",
            &histories.indptr,
            users,
            &histories.items,
            items,
            histories.weights.len(),
        )?;
        Ok(histories)
    }

    pub(crate) fn of(&self, user: UserIdx) -> (&[ItemIdx], &[f32]) {
        let u = user as usize;
        if u + 1 >= self.indptr.len() {
            return (&[], &[]);
        }
        let range = self.indptr[u] as usize..self.indptr[u + 1] as usize;
        (&self.items[range.clone()], &self.weights[range])
    }
}

/// The weight of a history item `age` interactions old (the latest has age 0) under a
/// half-life in interactions: `0.5^(age / half_life)`; 1 when `half_life` is 0 (off).
pub(crate) fn recency_decay(age: usize, half_life: f64) -> f32 {
    if half_life > 0.0 {
        0.5f64.powf(age as f64 / half_life) as f32
    } else {
        1.0
    }
}

/// Each event's implicit weight times the recency decay of its (user, item) pair: the pair's age
/// is its position in the user's distinct items, newest first (the chronology of [`Histories`]).
/// The weights as they are (borrowed) when `half_life` is 0.
pub(crate) fn recency_weighted(data: &TrainSet, half_life: f64) -> Cow<'_, [f32]> {
    if half_life <= 0.0 {
        return Cow::Borrowed(data.data.weights());
    }
    let mut weights = data.data.weights().to_vec();
    let histories = Histories::new(data, Weighting::Binary, None);
    let m = &data.by_user;
    let mut age_of: Vec<(ItemIdx, usize)> = Vec::new();
    for u in 0..m.n_rows() {
        let (items, _) = histories.of(u as UserIdx);
        age_of.clear();
        age_of.extend(
            items
                .iter()
                .enumerate()
                .map(|(pos, &i)| (i, items.len() - 1 - pos)),
        );
        age_of.sort_unstable_by_key(|&(i, _)| i);
        for (&item, &e) in m.row(u).iter().zip(m.row_entries(u)) {
            if let Ok(k) = age_of.binary_search_by_key(&item, |&(i, _)| i) {
                weights[e as usize] *= recency_decay(age_of[k].1, half_life);
            }
        }
    }
    Cow::Owned(weights)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kindred_core::{EventType, Interaction, InteractionsBuilder};

    #[test]
    fn recency_halves_a_pair_per_half_life_of_newer_items() {
        // u1: a (t=1), b (t=2), a again (t=3), c (t=4): newest first c, a, b.
        let mut builder = InteractionsBuilder::new();
        for (u, i, t) in [
            ("u1", "a", 1),
            ("u1", "b", 2),
            ("u1", "a", 3),
            ("u1", "c", 4),
        ] {
            builder.push(Interaction::implicit(u, i, EventType::View, Some(t)));
        }
        let data = TrainSet::new(builder.build());
        assert_eq!(&*recency_weighted(&data, 0.0), data.data.weights());
        let weighted = recency_weighted(&data, 1.0);
        let items = data.data.item_ids();
        for (row, &w) in weighted.iter().enumerate() {
            let expected = match items.external(data.data.items()[row]) {
                "c" => 1.0,
                "a" => 0.5,
                _ => 0.25,
            };
            assert_eq!(w, expected, "row {row}");
        }
        assert_eq!(recency_decay(3, 0.0), 1.0);
        assert_eq!(recency_decay(2, 2.0), 0.5);
    }
}
