//! Top-K selection over a dense score vector, with exclusions.
//!
//! Ties are broken by the lower item index so that results are reproducible and independent of
//! the order scores were computed in. NaN scores are never selected.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use serde::{Deserialize, Serialize};

/// An item with its score.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Scored {
    pub item: u32,
    pub score: f32,
}

/// Ordering "better first": higher score, then lower item index.
fn better(a: &Scored, b: &Scored) -> Ordering {
    b.score
        .partial_cmp(&a.score)
        .unwrap_or(Ordering::Equal)
        .then(a.item.cmp(&b.item))
}

/// Heap entry ordered so that the worst kept candidate sits on top.
struct Worst(Scored);

impl PartialEq for Worst {
    fn eq(&self, other: &Self) -> bool {
        better(&self.0, &other.0) == Ordering::Equal
    }
}
impl Eq for Worst {}
impl PartialOrd for Worst {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Worst {
    fn cmp(&self, other: &Self) -> Ordering {
        better(&self.0, &other.0)
    }
}

/// The `k` best items of `scores` (index = item), best first, skipping items for which `skip` is true.
pub fn top_k(scores: &[f32], k: usize, skip: impl FnMut(u32) -> bool) -> Vec<Scored> {
    top_k_of(
        scores.iter().enumerate().map(|(i, &s)| Scored {
            item: i as u32,
            score: s,
        }),
        k,
        skip,
    )
}

/// The `k` best items of `scores` (NaN never selected), best first, with ties broken by the
/// lower `tie_key(item)` and only then by the lower item index.
///
/// For candidate sets where ties are the norm (cold-start evaluation: a model that knows nothing
/// about new items scores them all alike), breaking ties by item index would rank them in id
/// order, which usually follows first appearance in the log and so leaks popularity; a seeded
/// hash of the (user, item) pair as the key ranks such ties at random instead.
pub fn top_k_with_tie_key(scores: &[f32], k: usize, tie_key: impl Fn(u32) -> u64) -> Vec<Scored> {
    if k == 0 {
        return Vec::new();
    }
    let order = |a: &(Scored, u64), b: &(Scored, u64)| {
        b.0.score
            .partial_cmp(&a.0.score)
            .unwrap_or(Ordering::Equal)
            .then(a.1.cmp(&b.1))
            .then(a.0.item.cmp(&b.0.item))
    };
    let mut kept: Vec<(Scored, u64)> = Vec::with_capacity(2 * k);
    for (i, &score) in scores.iter().enumerate() {
        if score.is_nan() {
            continue;
        }
        kept.push((
            Scored {
                item: i as u32,
                score,
            },
            tie_key(i as u32),
        ));
        // Amortised selection: shrink back to k whenever the buffer doubles.
        if kept.len() >= 2 * k.max(16) {
            kept.select_nth_unstable_by(k - 1, order);
            kept.truncate(k);
        }
    }
    kept.sort_by(order);
    kept.truncate(k);
    kept.into_iter().map(|(s, _)| s).collect()
}

/// The `k` best candidates seen so far, fed one at a time (e.g. across item blocks of a batched
/// scan). Same order as [`top_k`]: higher score, then lower item index; NaN never kept.
pub struct TopK {
    k: usize,
    heap: BinaryHeap<Worst>,
}

impl TopK {
    pub fn new(k: usize) -> Self {
        Self {
            k,
            heap: BinaryHeap::with_capacity(k + 1),
        }
    }

    /// True when `(score, item)` would enter the current top `k`. Cheap, so a caller can test
    /// costlier exclusions only for candidates that matter.
    #[inline]
    pub fn would_accept(&self, score: f32, item: u32) -> bool {
        if score.is_nan() || self.k == 0 {
            return false;
        }
        match self.heap.peek() {
            Some(worst) if self.heap.len() >= self.k => {
                better(&Scored { item, score }, &worst.0) == Ordering::Less
            }
            _ => true,
        }
    }

    /// Offers a candidate; kept when it is among the best `k` so far.
    #[inline]
    pub fn push(&mut self, cand: Scored) {
        if !self.would_accept(cand.score, cand.item) {
            return;
        }
        if self.heap.len() < self.k {
            self.heap.push(Worst(cand));
        } else if let Some(mut worst) = self.heap.peek_mut() {
            // Full: the newcomer takes the worst one's place and sinks once, instead of a push
            // that rises and a pop that sinks (half the heap work per accepted candidate).
            *worst = Worst(cand);
        }
    }

    /// The kept candidates, best first.
    pub fn into_sorted(self) -> Vec<Scored> {
        let mut out: Vec<Scored> = self.heap.into_iter().map(|w| w.0).collect();
        // `better` is a total order (the item index breaks ties): an unstable sort gives the
        // same list, faster.
        out.sort_unstable_by(better);
        out
    }
}

/// The `k` best of an arbitrary candidate stream, best first.
pub fn top_k_of(
    candidates: impl IntoIterator<Item = Scored>,
    k: usize,
    mut skip: impl FnMut(u32) -> bool,
) -> Vec<Scored> {
    let mut top = TopK::new(k);
    for cand in candidates {
        if top.would_accept(cand.score, cand.item) && !skip(cand.item) {
            top.push(cand);
        }
    }
    top.into_sorted()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn picks_best_with_ties_by_index_and_exclusions() {
        let scores = [0.5, 0.9, f32::NAN, 0.9, 0.1, 0.7];
        let top = top_k(&scores, 3, |i| i == 5);
        let items: Vec<u32> = top.iter().map(|s| s.item).collect();
        assert_eq!(items, vec![1, 3, 0]);
        assert!(top_k(&scores, 0, |_| false).is_empty());
        assert_eq!(top_k(&scores, 10, |_| false).len(), 5);
    }

    #[test]
    fn tie_key_orders_ties_only() {
        let scores = [0.5, 0.9, f32::NAN, 0.5, 0.5, 0.7];
        // Key reverses the index order among ties; the better scores still come first.
        let top = top_k_with_tie_key(&scores, 4, |i| 100 - i as u64);
        let items: Vec<u32> = top.iter().map(|s| s.item).collect();
        assert_eq!(items, vec![1, 5, 4, 3]);
        assert!(top_k_with_tie_key(&scores, 0, |_| 0).is_empty());
        assert_eq!(top_k_with_tie_key(&scores, 10, |_| 0).len(), 5);
    }

    proptest! {
        #[test]
        fn tie_key_selection_equals_full_sort(
            scores in proptest::collection::vec(-5i32..5, 0..200),
            k in 0usize..40,
            salt in 0u64..1000,
        ) {
            let scores: Vec<f32> = scores.into_iter().map(|s| s as f32).collect();
            let key = |i: u32| crate::rng::mix64(salt ^ i as u64);
            let top = top_k_with_tie_key(&scores, k, key);
            let mut all: Vec<(Scored, u64)> = scores.iter().enumerate()
                .map(|(i, &s)| (Scored { item: i as u32, score: s }, key(i as u32))).collect();
            all.sort_by(|a, b| b.0.score.partial_cmp(&a.0.score).unwrap()
                .then(a.1.cmp(&b.1)).then(a.0.item.cmp(&b.0.item)));
            let want: Vec<Scored> = all.into_iter().take(k).map(|x| x.0).collect();
            prop_assert_eq!(top, want);
        }

        #[test]
        fn equals_full_sort(scores in proptest::collection::vec(-100i32..100, 0..80), k in 0usize..20) {
            let scores: Vec<f32> = scores.into_iter().map(|s| s as f32 / 7.0).collect();
            let top = top_k(&scores, k, |i| i % 5 == 0);
            let mut all: Vec<Scored> = scores.iter().enumerate()
                .filter(|(i, _)| i % 5 != 0)
                .map(|(i, &s)| Scored { item: i as u32, score: s }).collect();
            all.sort_by(better);
            all.truncate(k);
            prop_assert_eq!(top, all);
        }
    }
}
