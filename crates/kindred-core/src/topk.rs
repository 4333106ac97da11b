//! Top-K selection over a dense score vector, with exclusions.
//!
//! Ties are broken by the lower item index so that results are reproducible and independent of
//! the order scores were computed in. NaN scores are never selected.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

use serde::{Deserialize, Serialize};

/// An item with its score.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Scored {
    pub item: u32,
    pub score: f32,
}

/// `(score, item)` packed so that a larger key is a better candidate (higher score, then lower
/// item index): the score's bits made monotone in the high half, the item's complement in the
/// low half. One integer comparison then does the work of a float and an index comparison,
/// which is what the heap does most. NaN has no key; -0.0 packs as 0.0, the score it equals.
#[inline]
fn pack(score: f32, item: u32) -> u64 {
    let bits = (score + 0.0).to_bits();
    let monotone = if bits & 0x8000_0000 != 0 {
        !bits
    } else {
        bits | 0x8000_0000
    };
    (u64::from(monotone) << 32) | u64::from(!item)
}

/// The candidate a [`pack`]ed key stands for.
#[inline]
fn unpack(key: u64) -> Scored {
    let monotone = (key >> 32) as u32;
    let bits = if monotone & 0x8000_0000 != 0 {
        monotone & 0x7FFF_FFFF
    } else {
        !monotone
    };
    Scored {
        item: !(key as u32),
        score: f32::from_bits(bits),
    }
}

/// The `k` best items of `scores` (index = item), best first, skipping items for which `skip` is true.
pub fn top_k(scores: &[f32], k: usize, mut skip: impl FnMut(u32) -> bool) -> Vec<Scored> {
    /// Scores tested against the bar at once: a comparison the compiler vectorises, which
    /// passes over most of a scan once the bar has risen.
    const CHUNK: usize = 16;
    let mut top = TopK::new(k);
    for (c, chunk) in scores.chunks(CHUNK).enumerate() {
        let bar = top.bar_score;
        if !chunk.iter().fold(false, |any, &s| any | (s >= bar)) {
            continue;
        }
        for (j, &score) in chunk.iter().enumerate() {
            let item = (c * CHUNK + j) as u32;
            if top.would_accept(score, item) && !skip(item) {
                top.push(Scored { item, score });
            }
        }
    }
    top.into_sorted()
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
    /// Packed keys (see [`pack`]), the worst kept one on top.
    heap: BinaryHeap<Reverse<u64>>,
    /// The key a candidate must exceed to enter: the worst kept one's once `k` are kept, 0
    /// before (every packed key exceeds 0).
    bar: u64,
    /// `bar`'s score (-inf before `k` are kept): a float comparison turns away most of a scan
    /// before any packing.
    bar_score: f32,
}

impl TopK {
    pub fn new(k: usize) -> Self {
        Self {
            k,
            heap: BinaryHeap::with_capacity(k + 1),
            bar: if k == 0 { u64::MAX } else { 0 },
            bar_score: if k == 0 {
                f32::INFINITY
            } else {
                f32::NEG_INFINITY
            },
        }
    }

    /// True when `(score, item)` would enter the current top `k`. Cheap, so a caller can test
    /// costlier exclusions only for candidates that matter.
    #[inline]
    pub fn would_accept(&self, score: f32, item: u32) -> bool {
        // NaN fails the first comparison.
        score >= self.bar_score && pack(score, item) > self.bar
    }

    /// Offers a candidate; kept when it is among the best `k` so far.
    #[inline]
    pub fn push(&mut self, cand: Scored) {
        if !self.would_accept(cand.score, cand.item) {
            return;
        }
        let key = pack(cand.score, cand.item);
        if self.heap.len() < self.k {
            self.heap.push(Reverse(key));
        } else if let Some(mut worst) = self.heap.peek_mut() {
            // Full: the newcomer takes the worst one's place and sinks once, instead of a push
            // that rises and a pop that sinks (half the heap work per accepted candidate).
            *worst = Reverse(key);
        }
        if self.heap.len() >= self.k {
            if let Some(&Reverse(worst)) = self.heap.peek() {
                self.bar = worst;
                self.bar_score = unpack(worst).score;
            }
        }
    }

    /// The kept candidates, best first.
    pub fn into_sorted(self) -> Vec<Scored> {
        let mut keys: Vec<u64> = self.heap.into_iter().map(|w| w.0).collect();
        keys.sort_unstable_by(|a, b| b.cmp(a));
        keys.into_iter().map(unpack).collect()
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

    /// The reference order, "better first": higher score, then lower item index.
    fn better(a: &Scored, b: &Scored) -> Ordering {
        b.score
            .partial_cmp(&a.score)
            .unwrap_or(Ordering::Equal)
            .then(a.item.cmp(&b.item))
    }

    /// Scores with the edge cases a packed key must order: zeros of both signs, infinities,
    /// subnormals, ties.
    fn edge_score() -> impl Strategy<Value = f32> {
        prop_oneof![
            Just(0.0f32),
            Just(-0.0f32),
            Just(f32::INFINITY),
            Just(f32::NEG_INFINITY),
            Just(f32::MIN_POSITIVE / 4.0),
            Just(-f32::MIN_POSITIVE / 4.0),
            (-3i32..3).prop_map(|v| v as f32),
            any::<f32>().prop_filter("a score", |v| !v.is_nan()),
        ]
    }

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
        fn packed_keys_order_as_better_and_unpack_to_the_candidate(
            a in edge_score(), b in edge_score(), i in any::<u32>(), j in any::<u32>(),
        ) {
            let (x, y) = (Scored { item: i, score: a }, Scored { item: j, score: b });
            prop_assert_eq!(pack(a, i).cmp(&pack(b, j)), better(&y, &x));
            let back = unpack(pack(a, i));
            prop_assert_eq!(back.item, i);
            prop_assert_eq!(back.score.to_bits(), (a + 0.0).to_bits());
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
