//! What a user-item pair contributes to similarities and scores: binary, summed implicit
//! weights, or BM25 / TF-IDF re-weighting of the item-user matrix (item-kNN, EASE, content).

use kindred_core::TrainSet;
use serde::{Deserialize, Serialize};

/// What a user-item pair contributes to similarities and scores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Weighting {
    /// Every interacted pair counts 1, however many events it has.
    #[default]
    Binary,
    /// A pair counts the sum of its events' implicit weights.
    Weight,
    /// Okapi BM25 of the item-user matrix (items are the documents, users the terms), as
    /// implicit's `bm25_weight`: with `tf` the pair's summed weights,
    /// `tf (k1 + 1) / (k1 ((1 - b) + b len_i / avg_len) + tf) * idf_u`, where `len_i` is the item's
    /// summed weights and `idf_u = ln(n_items) - ln(1 + items of u)`. Under cosine the per-item
    /// length factor cancels for binary data, but it still scales a history item's contribution
    /// when scoring, so popular items in a history count less.
    Bm25,
    /// TF-IDF of the item-user matrix, as implicit's `tfidf_weight`: `sqrt(tf) * idf_u`.
    Tfidf,
}

/// BM25 / TF-IDF statistics of the training data: what [`Weighting::Bm25`] and
/// [`Weighting::Tfidf`] turn a pair's summed weights into.
#[derive(Debug, Clone)]
pub(crate) struct TermWeights {
    weighting: Weighting,
    k1: f64,
    /// Per user (term): `ln(n_items) - ln(1 + distinct items of the user)`.
    idf: Vec<f64>,
    /// Per item (document): `(1 - b) + b * len_i / mean len`.
    length_norm: Vec<f64>,
}

impl TermWeights {
    /// `None` for the weightings that use a pair's value as is; `k1` and `b` are BM25's
    /// term-frequency saturation and length normalisation.
    pub(crate) fn new(data: &TrainSet, weighting: Weighting, k1: f64, b: f64) -> Option<Self> {
        if !matches!(weighting, Weighting::Bm25 | Weighting::Tfidf) {
            return None;
        }
        let n_items = data.n_items();
        let log = &data.data;
        let mut length = vec![0f64; n_items];
        for (&i, &w) in log.items().iter().zip(log.weights()) {
            if let Some(l) = length.get_mut(i as usize) {
                *l += w as f64;
            }
        }
        let m = &data.by_user;
        let idf = (0..m.n_rows())
            .map(|u| {
                let row = m.row(u);
                // Rows are sorted by item, so repeated events of a pair are adjacent.
                let distinct = row
                    .iter()
                    .enumerate()
                    .filter(|(p, i)| *p == 0 || row[p - 1] != **i)
                    .count();
                (n_items as f64).ln() - (distinct as f64).ln_1p()
            })
            .collect();
        let mean = length.iter().sum::<f64>() / n_items.max(1) as f64;
        let length_norm = length
            .iter()
            .map(|&l| {
                if mean > 0.0 {
                    (1.0 - b) + b * l / mean
                } else {
                    1.0
                }
            })
            .collect();
        Some(Self {
            weighting,
            k1,
            idf,
            length_norm,
        })
    }

    /// The re-weighted value of the pair (`user`, `item`) whose summed weights are `tf`.
    pub(crate) fn value(&self, user: usize, item: usize, tf: f32) -> f32 {
        let tf = tf as f64;
        let idf = self.idf.get(user).copied().unwrap_or(0.0);
        let v = match self.weighting {
            Weighting::Bm25 => {
                let norm = self.length_norm.get(item).copied().unwrap_or(1.0);
                tf * (self.k1 + 1.0) / (self.k1 * norm + tf) * idf
            }
            _ => tf.max(0.0).sqrt() * idf,
        };
        v as f32
    }
}
