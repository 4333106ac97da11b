//! Metric definitions: the one place each ranking and rating metric is defined.
//!
//! Ranking metrics use binary relevance: `recommended` is a user's top-K list (best first) and
//! `relevant` the sorted, de-duplicated set of that user's test items. Every function here is
//! checked against hand-computed examples and property tests below.

/// Per-user ranking metrics at a cut-off K.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct UserRanking {
    pub precision: f64,
    pub recall: f64,
    pub ndcg: f64,
    pub map: f64,
    pub mrr: f64,
    pub hit: f64,
}

/// Ranking metrics of one list. `relevant` must be sorted and non-empty.
pub fn user_ranking(recommended: &[u32], relevant: &[u32], k: usize) -> UserRanking {
    debug_assert!(relevant.windows(2).all(|w| w[0] < w[1]));
    if relevant.is_empty() || k == 0 {
        return UserRanking::default();
    }
    let mut hits = 0usize;
    let mut dcg = 0.0;
    let mut ap_sum = 0.0;
    let mut first_hit: Option<usize> = None;
    for (pos, item) in recommended.iter().take(k).enumerate() {
        let rank = pos + 1;
        if relevant.binary_search(item).is_ok() {
            hits += 1;
            dcg += 1.0 / ((rank + 1) as f64).log2();
            ap_sum += hits as f64 / rank as f64;
            first_hit.get_or_insert(rank);
        }
    }
    let ideal = relevant.len().min(k);
    let idcg: f64 = (1..=ideal)
        .map(|rank| 1.0 / ((rank + 1) as f64).log2())
        .sum();
    UserRanking {
        precision: hits as f64 / k as f64,
        recall: hits as f64 / relevant.len() as f64,
        ndcg: dcg / idcg,
        map: ap_sum / ideal as f64,
        mrr: first_hit.map_or(0.0, |r| 1.0 / r as f64),
        hit: if hits > 0 { 1.0 } else { 0.0 },
    }
}

/// Ranking metrics of one list at every cut-off K = 1..=max_k in one pass: element K - 1 equals
/// `user_ranking(recommended, relevant, K)` exactly (same sums in the same order), so a curve
/// read at the headline K reproduces the headline metric bit for bit.
pub fn ranking_curve(recommended: &[u32], relevant: &[u32], max_k: usize) -> Vec<UserRanking> {
    debug_assert!(relevant.windows(2).all(|w| w[0] < w[1]));
    if relevant.is_empty() {
        return vec![UserRanking::default(); max_k];
    }
    let mut curve = Vec::with_capacity(max_k);
    let (mut hits, mut dcg, mut ap_sum, mut idcg) = (0usize, 0.0, 0.0, 0.0);
    let mut first_hit: Option<usize> = None;
    for rank in 1..=max_k {
        if let Some(item) = recommended.get(rank - 1) {
            if relevant.binary_search(item).is_ok() {
                hits += 1;
                dcg += 1.0 / ((rank + 1) as f64).log2();
                ap_sum += hits as f64 / rank as f64;
                first_hit.get_or_insert(rank);
            }
        }
        if rank <= relevant.len() {
            idcg += 1.0 / ((rank + 1) as f64).log2();
        }
        let ideal = relevant.len().min(rank);
        curve.push(UserRanking {
            precision: hits as f64 / rank as f64,
            recall: hits as f64 / relevant.len() as f64,
            ndcg: dcg / idcg,
            map: ap_sum / ideal as f64,
            mrr: first_hit.map_or(0.0, |r| 1.0 / r as f64),
            hit: if hits > 0 { 1.0 } else { 0.0 },
        });
    }
    curve
}

/// Area under the ROC curve for one user: the probability that a relevant candidate scores
/// above an irrelevant one, ties counting one half (Mann-Whitney U with average ranks).
/// `candidates` are (score, is_relevant) pairs; `None` when either class is empty.
pub fn auc(candidates: &mut [(f32, bool)]) -> Option<f64> {
    let n_pos = candidates.iter().filter(|c| c.1).count();
    let n_neg = candidates.len() - n_pos;
    if n_pos == 0 || n_neg == 0 {
        return None;
    }
    candidates.sort_by(|a, b| a.0.total_cmp(&b.0));
    // Sum of (average, 1-based) ranks of the positives.
    let mut rank_sum = 0.0;
    let mut start = 0;
    while start < candidates.len() {
        let mut end = start;
        while end < candidates.len() && candidates[end].0 == candidates[start].0 {
            end += 1;
        }
        let avg_rank = (start + 1 + end) as f64 / 2.0;
        let pos_in_group = candidates[start..end].iter().filter(|c| c.1).count();
        rank_sum += avg_rank * pos_in_group as f64;
        start = end;
    }
    let u = rank_sum - (n_pos * (n_pos + 1)) as f64 / 2.0;
    Some(u / (n_pos as f64 * n_neg as f64))
}

/// Root mean squared error of `(prediction, truth)` pairs.
pub fn rmse(pairs: &[(f64, f64)]) -> f64 {
    if pairs.is_empty() {
        return f64::NAN;
    }
    (pairs.iter().map(|(p, t)| (p - t).powi(2)).sum::<f64>() / pairs.len() as f64).sqrt()
}

/// Mean absolute error of `(prediction, truth)` pairs.
pub fn mae(pairs: &[(f64, f64)]) -> f64 {
    if pairs.is_empty() {
        return f64::NAN;
    }
    pairs.iter().map(|(p, t)| (p - t).abs()).sum::<f64>() / pairs.len() as f64
}

/// Distinct items over all lists divided by the catalog size (the candidate count on candidate-set
/// protocols, whose item indices can exceed it: they are indices into the whole item map).
pub fn coverage<'a>(lists: impl IntoIterator<Item = &'a [u32]>, catalog_size: usize) -> f64 {
    if catalog_size == 0 {
        return 0.0;
    }
    let distinct: std::collections::HashSet<u32> = lists.into_iter().flatten().copied().collect();
    distinct.len() as f64 / catalog_size as f64
}

/// Cosine similarity of two sparse binary vectors given as sorted feature indices
/// (0 when either is empty).
pub fn binary_cosine(a: &[u32], b: &[u32]) -> f64 {
    if a.is_empty() || b.is_empty() {
        return 0.0;
    }
    let (mut i, mut j, mut common) = (0, 0, 0usize);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                common += 1;
                i += 1;
                j += 1;
            }
        }
    }
    common as f64 / ((a.len() * b.len()) as f64).sqrt()
}

/// Intra-list diversity: mean over pairs of `1 - cosine` of the items' feature vectors;
/// `None` for lists shorter than two.
pub fn diversity(list: &[u32], vectors: &[Vec<u32>]) -> Option<f64> {
    if list.len() < 2 {
        return None;
    }
    let empty = Vec::new();
    let vec_of = |i: u32| vectors.get(i as usize).unwrap_or(&empty);
    let mut sum = 0.0;
    let mut pairs = 0usize;
    for a in 0..list.len() {
        for b in a + 1..list.len() {
            sum += 1.0 - binary_cosine(vec_of(list[a]), vec_of(list[b]));
            pairs += 1;
        }
    }
    Some(sum / pairs as f64)
}

/// Novelty of a list: mean of `-log2(share)` over its items, where an item's share is the
/// fraction of training users who interacted with it (items never seen count as one user, so
/// the value stays finite).
pub fn novelty(list: &[u32], item_users: &[u32], n_users: usize) -> Option<f64> {
    if list.is_empty() || n_users == 0 {
        return None;
    }
    let sum: f64 = list
        .iter()
        .map(|&i| {
            let users = item_users.get(i as usize).copied().unwrap_or(0).max(1);
            -(users as f64 / n_users as f64).log2()
        })
        .sum();
    Some(sum / list.len() as f64)
}

/// Mean training popularity (number of users) of the items in a list: the popularity bias.
pub fn mean_popularity(list: &[u32], item_users: &[u32]) -> Option<f64> {
    if list.is_empty() {
        return None;
    }
    let sum: f64 = list
        .iter()
        .map(|&i| item_users.get(i as usize).copied().unwrap_or(0) as f64)
        .sum();
    Some(sum / list.len() as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn ranking_metrics_by_hand() {
        // K = 5, list [7, 3, 9, 1, 4], relevant {1, 3, 8}: hits at ranks 2 and 4.
        let m = user_ranking(&[7, 3, 9, 1, 4], &[1, 3, 8], 5);
        assert!(close(m.precision, 2.0 / 5.0));
        assert!(close(m.recall, 2.0 / 3.0));
        let dcg = 1.0 / 3f64.log2() + 1.0 / 5f64.log2();
        let idcg = 1.0 + 1.0 / 3f64.log2() + 1.0 / 4f64.log2();
        assert!(close(m.ndcg, dcg / idcg));
        // AP: (1/2 + 2/4) / min(3, 5) = 1/3.
        assert!(close(m.map, 1.0 / 3.0));
        assert!(close(m.mrr, 0.5));
        assert!(close(m.hit, 1.0));
        // Only the first K count; IDCG over min(|T|, K) = 2 items.
        let m = user_ranking(&[5, 6, 1], &[1, 2, 3], 2);
        assert_eq!(m, UserRanking::default());
        let m = user_ranking(&[1, 2], &[1, 2, 3], 2);
        assert!(close(m.ndcg, 1.0) && close(m.map, 1.0) && close(m.precision, 1.0));
        // Short list: precision still divides by K.
        let m = user_ranking(&[3], &[3], 10);
        assert!(close(m.precision, 0.1) && close(m.ndcg, 1.0) && close(m.recall, 1.0));
    }

    #[test]
    fn auc_by_hand() {
        // positives scored 0.9 and 0.4; negatives 0.5, 0.4, 0.1.
        // pairs: (0.9 beats all 3) + (0.4: beats 0.1, ties 0.4, loses to 0.5) = 3 + 1.5 = 4.5 of 6.
        let mut c = vec![
            (0.9, true),
            (0.5, false),
            (0.4, true),
            (0.4, false),
            (0.1, false),
        ];
        assert!(close(auc(&mut c).unwrap(), 4.5 / 6.0));
        assert!(auc(&mut [(0.3, true)]).is_none());
    }

    #[test]
    fn rating_and_list_metrics_by_hand() {
        let pairs = [(3.0, 4.0), (5.0, 5.0), (2.0, 4.0)];
        assert!(close(rmse(&pairs), (5.0f64 / 3.0).sqrt()));
        assert!(close(mae(&pairs), 1.0));
        assert!(close(coverage([&[0u32, 1][..], &[1, 2][..]], 8), 3.0 / 8.0));
        // Candidate sets: indices into the whole item map may exceed the candidate count.
        assert!(close(
            coverage([&[40u32, 7][..], &[7, 99][..]], 4),
            3.0 / 4.0
        ));
        // vectors: 0 = {a, b}, 1 = {a}, 2 = {} -> cos(0,1) = 1/sqrt2, others 0.
        let vectors = vec![vec![0, 1], vec![0], vec![]];
        let d = diversity(&[0, 1, 2], &vectors).unwrap();
        assert!(close(d, ((1.0 - 1.0 / 2f64.sqrt()) + 1.0 + 1.0) / 3.0));
        // item 0 seen by 2 of 8 users (2 bits), item 1 by 0 (counts 1: 3 bits).
        assert!(close(novelty(&[0, 1], &[2, 0], 8).unwrap(), 2.5));
        assert!(close(mean_popularity(&[0, 1], &[2, 0]).unwrap(), 1.0));
    }

    proptest! {
        #[test]
        fn ranking_metrics_stay_in_bounds(
            list in proptest::collection::vec(0u32..30, 0..15),
            relevant in proptest::collection::btree_set(0u32..30, 1..10),
            k in 1usize..15,
        ) {
            let mut list = list;
            list.dedup();
            let mut seen = std::collections::HashSet::new();
            list.retain(|i| seen.insert(*i));
            let relevant: Vec<u32> = relevant.into_iter().collect();
            let m = user_ranking(&list, &relevant, k);
            for v in [m.precision, m.recall, m.ndcg, m.map, m.mrr, m.hit] {
                prop_assert!((0.0..=1.0 + 1e-12).contains(&v), "{m:?}");
            }
            prop_assert_eq!(m.hit > 0.0, m.mrr > 0.0);
            prop_assert!(m.map <= m.ndcg + 1e-12 || m.hit > 0.0);
            // A perfect list scores 1 on NDCG and MAP.
            let perfect: Vec<u32> = relevant.iter().copied().take(k).collect();
            let p = user_ranking(&perfect, &relevant, k);
            prop_assert!((p.ndcg - 1.0).abs() < 1e-12 && (p.map - 1.0).abs() < 1e-12);
        }

        #[test]
        fn curve_equals_metrics_at_every_cut_off(
            list in proptest::collection::btree_set(0u32..40, 0..25),
            relevant in proptest::collection::btree_set(0u32..40, 1..12),
            max_k in 0usize..30,
            seed in any::<u64>(),
        ) {
            // Shuffle the distinct items into a list order.
            let mut list: Vec<u32> = list.into_iter().collect();
            kindred_core::rng::SplitMix64::new(seed).shuffle(&mut list);
            let relevant: Vec<u32> = relevant.into_iter().collect();
            let curve = ranking_curve(&list, &relevant, max_k);
            prop_assert_eq!(curve.len(), max_k);
            for (pos, point) in curve.iter().enumerate() {
                prop_assert_eq!(*point, user_ranking(&list, &relevant, pos + 1));
            }
        }

        #[test]
        fn auc_matches_pair_counting(scores in proptest::collection::vec((0u8..6, any::<bool>()), 2..40)) {
            let mut cands: Vec<(f32, bool)> = scores.iter().map(|&(s, r)| (s as f32, r)).collect();
            let pos: Vec<f32> = cands.iter().filter(|c| c.1).map(|c| c.0).collect();
            let neg: Vec<f32> = cands.iter().filter(|c| !c.1).map(|c| c.0).collect();
            let got = auc(&mut cands);
            if pos.is_empty() || neg.is_empty() {
                prop_assert!(got.is_none());
            } else {
                let mut wins = 0.0;
                for p in &pos { for n in &neg { wins += if p > n { 1.0 } else if p == n { 0.5 } else { 0.0 }; } }
                prop_assert!((got.unwrap() - wins / (pos.len() * neg.len()) as f64).abs() < 1e-12);
            }
        }
    }
}
