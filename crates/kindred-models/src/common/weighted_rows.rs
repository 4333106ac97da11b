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

    /// The rows listed in `rows`, in that order (the item side of a fit on part of the
    /// catalog).
    pub(crate) fn select_rows(&self, rows: &[u32]) -> Self {
        let mut out = Self::default();
        out.indptr.push(0);
        for &r in rows {
            let (indices, values) = self.row(r as usize);
            out.indices.extend_from_slice(indices);
            out.values.extend_from_slice(values);
            out.indptr.push(out.indices.len());
        }
        out
    }

    /// Every row with its minor indices renumbered through `to` (None: the entry is dropped),
    /// e.g. the user side of a fit on part of the catalog. An increasing `to` keeps rows
    /// sorted.
    pub(crate) fn renumber_columns(&self, to: &[Option<u32>]) -> Self {
        let mut out = Self::default();
        out.indptr.push(0);
        for r in 0..self.n_rows() {
            let (indices, values) = self.row(r);
            for (&c, &v) in indices.iter().zip(values) {
                if let Some(&Some(new)) = to.get(c as usize) {
                    out.indices.push(new);
                    out.values.push(v);
                }
            }
            out.indptr.push(out.indices.len());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows() -> WeightedRows {
        // Row 0: columns 0, 2; row 1: column 1; row 2: columns 1, 2.
        WeightedRows {
            indptr: vec![0, 2, 3, 5],
            indices: vec![0, 2, 1, 1, 2],
            values: vec![1.0, 2.0, 3.0, 4.0, 5.0],
        }
    }

    #[test]
    fn selected_rows_keep_their_entries_in_the_order_asked() {
        let s = rows().select_rows(&[2, 0]);
        assert_eq!(s.n_rows(), 2);
        assert_eq!(s.row(0), (&[1, 2][..], &[4.0, 5.0][..]));
        assert_eq!(s.row(1), (&[0, 2][..], &[1.0, 2.0][..]));
    }

    #[test]
    fn renumbered_columns_drop_what_maps_to_nothing() {
        // Keep columns 1 and 2 as 0 and 1.
        let r = rows().renumber_columns(&[None, Some(0), Some(1)]);
        assert_eq!(r.n_rows(), 3);
        assert_eq!(r.row(0), (&[1][..], &[2.0][..]));
        assert_eq!(r.row(1), (&[0][..], &[3.0][..]));
        assert_eq!(r.row(2), (&[0, 1][..], &[4.0, 5.0][..]));
    }
}
