//! Compressed sparse rows over the interaction log (CSR by user, CSC by item).
//!
//! A `CsMatrix` does not copy values: besides the minor indices it keeps, for each stored entry,
//! the row of the interaction log it came from, so any column (rating, weight, timestamp) can be
//! read through it, or gathered once into a contiguous array when a hot loop needs that.

/// A compressed sparse matrix whose entries point back into an interaction log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsMatrix {
    n_major: usize,
    n_minor: usize,
    indptr: Vec<usize>,
    indices: Vec<u32>,
    entries: Vec<u32>,
}

impl CsMatrix {
    /// Builds from coordinate lists by two stable counting sorts (minor, then major), so each
    /// major row is sorted by minor index and, among equal minors, by log row. O(nnz + n).
    pub fn build(n_major: usize, n_minor: usize, major: &[u32], minor: &[u32]) -> Self {
        debug_assert_eq!(major.len(), minor.len());
        let nnz = major.len();
        let by_minor = counting_order(
            minor,
            n_minor,
            (0..nnz as u32).collect::<Vec<_>>().as_slice(),
        );
        let ordered_major: Vec<u32> = by_minor.iter().map(|&e| major[e as usize]).collect();
        let order = counting_order(&ordered_major, n_major, &by_minor);
        Self::from_order(n_major, n_minor, major, minor, order)
    }

    /// Builds from coordinate lists keeping, within each major row, the order in which `visit`
    /// lists the log rows (e.g. oldest first) instead of sorting by minor index: one stable
    /// counting sort by major. Log rows missing from `visit` are left out.
    pub fn build_in_order(
        n_major: usize,
        n_minor: usize,
        major: &[u32],
        minor: &[u32],
        visit: &[u32],
    ) -> Self {
        let keys: Vec<u32> = visit.iter().map(|&e| major[e as usize]).collect();
        let order = counting_order(&keys, n_major, visit);
        Self::from_order(n_major, n_minor, major, minor, order)
    }

    /// The matrix whose entries are the log rows `order`, already grouped by major row.
    fn from_order(
        n_major: usize,
        n_minor: usize,
        major: &[u32],
        minor: &[u32],
        order: Vec<u32>,
    ) -> Self {
        let mut indptr = vec![0usize; n_major + 1];
        for &e in &order {
            indptr[major[e as usize] as usize + 1] += 1;
        }
        for i in 0..n_major {
            indptr[i + 1] += indptr[i];
        }
        let indices = order.iter().map(|&e| minor[e as usize]).collect();
        Self {
            n_major,
            n_minor,
            indptr,
            indices,
            entries: order,
        }
    }

    /// Number of major rows (users for CSR, items for CSC).
    pub fn n_rows(&self) -> usize {
        self.n_major
    }

    /// Number of minor columns.
    pub fn n_cols(&self) -> usize {
        self.n_minor
    }

    /// Number of stored entries.
    pub fn nnz(&self) -> usize {
        self.indices.len()
    }

    pub fn indptr(&self) -> &[usize] {
        &self.indptr
    }

    pub fn indices(&self) -> &[u32] {
        &self.indices
    }

    /// Log rows of all entries, aligned with [`Self::indices`].
    pub fn entries(&self) -> &[u32] {
        &self.entries
    }

    /// Minor indices of row `r`, sorted ascending.
    pub fn row(&self, r: usize) -> &[u32] {
        &self.indices[self.indptr[r]..self.indptr[r + 1]]
    }

    /// Log rows of row `r`, aligned with [`Self::row`].
    pub fn row_entries(&self, r: usize) -> &[u32] {
        &self.entries[self.indptr[r]..self.indptr[r + 1]]
    }

    /// Number of entries in row `r`.
    pub fn row_len(&self, r: usize) -> usize {
        self.indptr[r + 1] - self.indptr[r]
    }

    /// True when row `r` holds minor index `c` (binary search).
    pub fn contains(&self, r: usize, c: u32) -> bool {
        self.row(r).binary_search(&c).is_ok()
    }

    /// A log column laid out in this matrix's entry order (e.g. ratings aligned with indices).
    pub fn gather<T: Copy>(&self, column: &[T]) -> Vec<T> {
        self.entries.iter().map(|&e| column[e as usize]).collect()
    }
}

/// Stable counting sort of `items` by `keys[item]`-style key lookup: returns `items` reordered
/// by `key_of_position`, where `keys[k]` is the key of `items[k]`.
fn counting_order(keys: &[u32], n_keys: usize, items: &[u32]) -> Vec<u32> {
    let mut start = vec![0usize; n_keys + 1];
    for &k in keys {
        start[k as usize + 1] += 1;
    }
    for i in 0..n_keys {
        start[i + 1] += start[i];
    }
    let mut out = vec![0u32; items.len()];
    for (pos, &k) in keys.iter().enumerate() {
        out[start[k as usize]] = items[pos];
        start[k as usize] += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn csr_holds_exactly_the_coordinates(
            coords in proptest::collection::vec((0u32..7, 0u32..5), 0..60)
        ) {
            let major: Vec<u32> = coords.iter().map(|c| c.0).collect();
            let minor: Vec<u32> = coords.iter().map(|c| c.1).collect();
            let m = CsMatrix::build(7, 5, &major, &minor);
            prop_assert_eq!(m.nnz(), coords.len());
            let mut seen = vec![false; coords.len()];
            for r in 0..7 {
                let row = m.row(r);
                prop_assert!(row.windows(2).all(|w| w[0] <= w[1]));
                for (&c, &e) in row.iter().zip(m.row_entries(r)) {
                    prop_assert_eq!(coords[e as usize], (r as u32, c));
                    prop_assert!(!seen[e as usize]);
                    seen[e as usize] = true;
                }
            }
            prop_assert!(seen.iter().all(|&s| s));
            let transposed = CsMatrix::build(5, 7, &minor, &major);
            for &(r, c) in &coords {
                prop_assert!(m.contains(r as usize, c));
                prop_assert!(transposed.contains(c as usize, r));
            }
        }
    }

    #[test]
    fn build_in_order_keeps_the_visiting_order_within_rows() {
        // Log rows: (major, minor) = (0, 5), (1, 2), (0, 1), (0, 3).
        let (major, minor) = ([0, 1, 0, 0], [5, 2, 1, 3]);
        let m = CsMatrix::build_in_order(2, 6, &major, &minor, &[3, 1, 0, 2]);
        assert_eq!(m.row(0), &[3, 5, 1]);
        assert_eq!(m.row(1), &[2]);
        assert_eq!(m.row_entries(0), &[3, 0, 2]);
        let partial = CsMatrix::build_in_order(2, 6, &major, &minor, &[2, 0]);
        assert_eq!(partial.row(0), &[1, 5]);
        assert!(partial.row(1).is_empty());
    }
}
