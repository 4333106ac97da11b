//! One side of the interaction matrix as rows of summed implicit weights (ALS's confidences,
//! the item-item Gram matrices of EASE and SLIM).

use kindred_core::CsMatrix;

/// Rows of a compressed view with repeated minor indices merged into one entry whose value is the
/// sum of the events' implicit weights (rows are sorted by minor index, so repeats are adjacent).
#[derive(Debug, Clone, Default)]
pub(crate) struct WeightedRows {
    pub(crate) indptr: Vec<usize>,
    pub(crate) indices: Vec<u32>,
    pub(crate) values: Vec<f32>,
}

impl WeightedRows {
    pub(crate) fn new(m: &CsMatrix, weights: &[f32]) -> Self {
        let mut out = Self {
            indptr: Vec::with_capacity(m.n_rows() + 1),
            indices: Vec::with_capacity(m.nnz()),
            values: Vec::with_capacity(m.nnz()),
        };
        out.indptr.push(0);
        for r in 0..m.n_rows() {
            let row_start = out.indices.len();
            for (&c, &e) in m.row(r).iter().zip(m.row_entries(r)) {
                let w = weights[e as usize];
                match out.values.last_mut() {
                    Some(v) if out.indices.len() > row_start && out.indices.last() == Some(&c) => {
                        *v += w
                    }
                    _ => {
                        out.indices.push(c);
                        out.values.push(w);
                    }
                }
            }
            out.indptr.push(out.indices.len());
        }
        out
    }

    pub(crate) fn n_rows(&self) -> usize {
        self.indptr.len() - 1
    }

    pub(crate) fn row(&self, r: usize) -> (&[u32], &[f32]) {
        let range = self.indptr[r]..self.indptr[r + 1];
        (&self.indices[range.clone()], &self.values[range])
    }

    pub(crate) fn values(&self) -> &[f32] {
        &self.values
    }
}
