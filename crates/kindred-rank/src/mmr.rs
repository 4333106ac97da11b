//! Maximal marginal relevance (Carbonell & Goldstein 1998) over item category sets: the
//! similarity measures and the greedy MMR selection on its own. `rerank` combines the same
//! marginal term with calibration and caps.

use crate::config::Similarity;

/// Similarity of two sorted, distinct category sets; 0 when either is empty.
pub fn category_similarity(a: &[u32], b: &[u32], measure: Similarity) -> f64 {
    if a.is_empty() || b.is_empty() {
        return 0.0;
    }
    let common = sorted_intersection(a, b) as f64;
    match measure {
        Similarity::Cosine => common / ((a.len() * b.len()) as f64).sqrt(),
        Similarity::Jaccard => common / ((a.len() + b.len()) as f64 - common),
    }
}

/// |a ∩ b| of two sorted slices.
fn sorted_intersection(a: &[u32], b: &[u32]) -> usize {
    let (mut i, mut j, mut n) = (0, 0, 0);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                n += 1;
                i += 1;
                j += 1;
            }
        }
    }
    n
}

/// Greedy MMR: indices into `relevance` of `k` picks, each maximising
/// `(1 - lambda) * relevance[i] - lambda * max_{j picked} similarity(i, j)`. Ties go to the lower
/// index, so `lambda = 0` returns `0..min(k, n)` when relevance is sorted best first.
pub fn mmr_select(
    relevance: &[f64],
    k: usize,
    lambda: f64,
    similarity: impl Fn(usize, usize) -> f64,
) -> Vec<usize> {
    let n = relevance.len();
    let mut picked = Vec::with_capacity(k.min(n));
    let mut taken = vec![false; n];
    let mut max_sim = vec![0.0f64; n];
    while picked.len() < k.min(n) {
        let mut best: Option<(usize, f64)> = None;
        for i in (0..n).filter(|&i| !taken[i]) {
            let value = (1.0 - lambda) * relevance[i] - lambda * max_sim[i];
            if best.is_none_or(|(_, b)| value > b) {
                best = Some((i, value));
            }
        }
        let Some((choice, _)) = best else { break };
        taken[choice] = true;
        picked.push(choice);
        for i in (0..n).filter(|&i| !taken[i]) {
            max_sim[i] = max_sim[i].max(similarity(i, choice));
        }
    }
    picked
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn similarities_by_hand() {
        // {1,2} vs {2,3}: one shared of 2 and 2 -> cosine 1/2, Jaccard 1/3.
        assert!((category_similarity(&[1, 2], &[2, 3], Similarity::Cosine) - 0.5).abs() < 1e-12);
        assert!(
            (category_similarity(&[1, 2], &[2, 3], Similarity::Jaccard) - 1.0 / 3.0).abs() < 1e-12
        );
        // {1} vs {1,2,3,4}: cosine 1/sqrt(4) = 1/2, Jaccard 1/4.
        assert!((category_similarity(&[1], &[1, 2, 3, 4], Similarity::Cosine) - 0.5).abs() < 1e-12);
        assert!(
            (category_similarity(&[1], &[1, 2, 3, 4], Similarity::Jaccard) - 0.25).abs() < 1e-12
        );
        assert_eq!(category_similarity(&[], &[1], Similarity::Cosine), 0.0);
        assert_eq!(category_similarity(&[5], &[5], Similarity::Jaccard), 1.0);
    }

    #[test]
    fn mmr_by_hand() {
        // Relevance 1, 0.8, 0; items 0 and 1 share their only category, item 2 has another.
        let rel = [1.0, 0.8, 0.0];
        let cats: [&[u32]; 3] = [&[0], &[0], &[1]];
        let sim = |a: usize, b: usize| category_similarity(cats[a], cats[b], Similarity::Cosine);
        // lambda 0.5: first 0 (0.5 vs 0.4 vs 0); then item 1 scores 0.5*0.8 - 0.5*1 = -0.1 and
        // item 2 scores 0 - 0 = 0, so item 2 comes second.
        assert_eq!(mmr_select(&rel, 3, 0.5, sim), vec![0, 2, 1]);
        // lambda 0.1: item 1 scores 0.9*0.8 - 0.1 = 0.62 > 0, relevance wins.
        assert_eq!(mmr_select(&rel, 3, 0.1, sim), vec![0, 1, 2]);
        assert_eq!(mmr_select(&rel, 2, 0.0, sim), vec![0, 1]);
        assert_eq!(mmr_select(&rel, 10, 0.5, sim).len(), 3);
    }
}
