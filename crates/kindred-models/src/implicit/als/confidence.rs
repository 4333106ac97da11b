//! The observed pairs of one side as rows of summed implicit weights, and as the confidences
//! the normal equations weigh them by.

use kindred_core::{Error, Result};

use crate::common::weighted_rows::WeightedRows;

use super::params::AlsParams;

/// One side's rows as (other index, confidence) with non-positive weights dropped: a pair whose
/// events sum to nothing is no evidence of preference.
pub struct ConfidenceRows {
    pub(super) indptr: Vec<usize>,
    pub(super) indices: Vec<u32>,
    pub(super) confidence: Vec<f64>,
}

impl ConfidenceRows {
    pub(super) fn new(rows: &WeightedRows, params: &AlsParams) -> Self {
        let mut out = Self {
            indptr: vec![0],
            indices: Vec::with_capacity(rows.indices.len()),
            confidence: Vec::with_capacity(rows.indices.len()),
        };
        for r in 0..rows.n_rows() {
            let (cols, weights) = rows.row(r);
            for (&c, &w) in cols.iter().zip(weights) {
                if w > 0.0 {
                    out.indices.push(c);
                    out.confidence.push(params.confidence(w as f64));
                }
            }
            out.indptr.push(out.indices.len());
        }
        out
    }

    /// Rows given as CSR arrays of (other index, summed weight), e.g. one shard of a distributed
    /// job whose other indices point into a gathered buffer of the fixed side's factors.
    pub fn from_weighted(
        indptr: &[usize],
        indices: &[u32],
        weights: &[f32],
        params: &AlsParams,
    ) -> Result<Self> {
        let bad = |m: &str| Err(Error::InvalidInput(format!("als rows: {m}")));
        if indptr.first() != Some(&0) || indptr.windows(2).any(|w| w[0] > w[1]) {
            return bad("indptr must start at 0 and never decrease");
        }
        let nnz = indptr.last().copied().unwrap_or(0);
        if indices.len() != nnz || weights.len() != nnz {
            return bad("indices and weights must have indptr's last value entries");
        }
        let rows = WeightedRows {
            indptr: indptr.to_vec(),
            indices: indices.to_vec(),
            values: weights.to_vec(),
        };
        Ok(Self::new(&rows, params))
    }

    /// Number of rows.
    pub fn n_rows(&self) -> usize {
        self.indptr.len() - 1
    }

    /// Row `r` as (other indices, confidences).
    pub fn row(&self, r: usize) -> (&[u32], &[f64]) {
        let range = self.indptr[r]..self.indptr[r + 1];
        (&self.indices[range.clone()], &self.confidence[range])
    }
}
