//! Exact top-K search over a row-major item matrix: the reference every approximate index is
//! measured against, and the right tool when the catalog is small or queries come in batches.
//!
//! Two paths give the same answers (up to floating-point summation order):
//! - [`ExactIndex::search`]: one query, one pass over the items with the lane-parallel
//!   [`dot`] kernel and a bounded heap; no allocation proportional to the catalog.
//! - [`ExactIndex::search_batch`]: a block of queries times a block of items through faer's GEMM,
//!   then a bounded heap per query; parallel over query blocks with rayon.
//!
//! Ties are broken by the lower item index; NaN scores and excluded items are never returned.

use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut, MatRef, Par};
use rayon::prelude::*;

use kindred_core::topk::{top_k_of, Scored, TopK};
use kindred_core::{Error, Result};

use super::metric::{check_matrix, dot, norm, normalise, Metric};

/// Queries per GEMM block: one rayon task each.
const QUERY_BLOCK: usize = 64;
/// Items per GEMM block: 64 x 2048 scores (512 KiB) stay in the cache while the heaps read them.
const ITEM_BLOCK: usize = 2048;

/// A brute-force index: the item matrix, prepared for its metric.
#[derive(Debug, Clone)]
pub struct ExactIndex {
    metric: Metric,
    dim: usize,
    n: usize,
    /// Row-major n x dim; rows are unit length for [`Metric::Cosine`].
    items: Vec<f32>,
    /// `|x|^2` per item, for [`Metric::L2`] (`-|q-x|^2 = 2 q.x - |x|^2 - |q|^2`).
    squared_norms: Vec<f32>,
}

impl ExactIndex {
    /// Indexes `items` (row-major, `dim` columns). Errors when the length is not a multiple of
    /// `dim` or a value is not finite.
    pub fn new(metric: Metric, dim: usize, items: &[f32]) -> Result<Self> {
        let n = check_matrix("item matrix", dim, items)?;
        let mut items = items.to_vec();
        if metric == Metric::Cosine {
            items.chunks_exact_mut(dim).for_each(normalise);
        }
        let squared_norms = if metric == Metric::L2 {
            items.chunks_exact(dim).map(|x| dot(x, x)).collect()
        } else {
            Vec::new()
        };
        Ok(Self {
            metric,
            dim,
            n,
            items,
            squared_norms,
        })
    }

    pub fn metric(&self) -> Metric {
        self.metric
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Number of items.
    pub fn len(&self) -> usize {
        self.n
    }

    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// Row `item` as stored (unit length under [`Metric::Cosine`]).
    pub fn vector(&self, item: u32) -> Option<&[f32]> {
        let start = item as usize * self.dim;
        self.items.get(start..start + self.dim)
    }

    /// Bytes held by the index.
    pub fn memory_bytes(&self) -> usize {
        (self.items.capacity() + self.squared_norms.capacity()) * std::mem::size_of::<f32>()
    }

    fn check_query(&self, len: usize) -> Result<()> {
        if len != self.dim {
            return Err(Error::InvalidInput(format!(
                "query of dimension {len} against an index of dimension {}",
                self.dim
            )));
        }
        Ok(())
    }

    /// The query as the scoring loop wants it: unit length for cosine.
    fn prepare_query(&self, query: &[f32]) -> Vec<f32> {
        let mut q = query.to_vec();
        if self.metric == Metric::Cosine {
            normalise(&mut q);
        }
        q
    }

    /// The `k` best items for one query, best first, skipping items for which `exclude` is true.
    pub fn search(
        &self,
        query: &[f32],
        k: usize,
        exclude: impl FnMut(u32) -> bool,
    ) -> Result<Vec<Scored>> {
        self.check_query(query.len())?;
        let q = self.prepare_query(query);
        let q_sq = dot(&q, &q);
        let dim = self.dim;
        let scores = self
            .items
            .chunks_exact(dim)
            .enumerate()
            .map(|(i, x)| Scored {
                item: i as u32,
                score: match self.metric {
                    Metric::InnerProduct | Metric::Cosine => dot(&q, x),
                    Metric::L2 => 2.0 * dot(&q, x) - self.squared_norms[i] - q_sq,
                },
            });
        Ok(top_k_of(scores, k, exclude))
    }

    /// The `k` best items for each of the `queries` (row-major, `dim` columns), in query order.
    /// `exclude(query, item)` removes items per query (e.g. what that user has seen).
    pub fn search_batch(
        &self,
        queries: &[f32],
        k: usize,
        exclude: &(dyn Fn(usize, u32) -> bool + Sync),
    ) -> Result<Vec<Vec<Scored>>> {
        let n_queries = check_matrix("query matrix", self.dim, queries)?;
        if k == 0 || self.n == 0 {
            return Ok(vec![Vec::new(); n_queries]);
        }
        let dim = self.dim;
        let blocks: Vec<Vec<Vec<Scored>>> = queries
            .par_chunks(QUERY_BLOCK * dim)
            .enumerate()
            .map(|(block, rows)| {
                let first_query = block * QUERY_BLOCK;
                let mut prepared = rows.to_vec();
                if self.metric == Metric::Cosine {
                    prepared.chunks_exact_mut(dim).for_each(normalise);
                }
                self.search_block(first_query, &prepared, k, exclude)
            })
            .collect();
        Ok(blocks.into_iter().flatten().collect())
    }

    /// One query block against every item block: GEMM, then the heaps.
    fn search_block(
        &self,
        first_query: usize,
        queries: &[f32],
        k: usize,
        exclude: &(dyn Fn(usize, u32) -> bool + Sync),
    ) -> Vec<Vec<Scored>> {
        let dim = self.dim;
        let n_queries = queries.len() / dim;
        let query_sq: Vec<f32> = queries.chunks_exact(dim).map(|q| dot(q, q)).collect();
        let mut heaps: Vec<TopK> = (0..n_queries).map(|_| TopK::new(k)).collect();
        let q_mat = MatRef::from_row_major_slice(queries, n_queries, dim);
        let mut scores = vec![0f32; n_queries * ITEM_BLOCK.min(self.n)];
        for first_item in (0..self.n).step_by(ITEM_BLOCK) {
            let n_items = ITEM_BLOCK.min(self.n - first_item);
            let block = &self.items[first_item * dim..(first_item + n_items) * dim];
            let x_mat = MatRef::from_row_major_slice(block, n_items, dim);
            let out = &mut scores[..n_queries * n_items];
            // Sequential GEMM: the parallelism is over query blocks, one level up.
            matmul(
                MatMut::from_row_major_slice_mut(out, n_queries, n_items),
                Accum::Replace,
                q_mat,
                x_mat.transpose(),
                1.0f32,
                Par::Seq,
            );
            for (q, heap) in heaps.iter_mut().enumerate() {
                let row = &out[q * n_items..(q + 1) * n_items];
                for (j, &raw) in row.iter().enumerate() {
                    let item = first_item + j;
                    let score = match self.metric {
                        Metric::InnerProduct | Metric::Cosine => raw,
                        Metric::L2 => 2.0 * raw - self.squared_norms[item] - query_sq[q],
                    };
                    if heap.would_accept(score, item as u32)
                        && !exclude(first_query + q, item as u32)
                    {
                        heap.push(Scored {
                            item: item as u32,
                            score,
                        });
                    }
                }
            }
        }
        heaps.into_iter().map(TopK::into_sorted).collect()
    }

    /// Score of `item` for an already prepared query (used by tests and callers re-scoring).
    pub fn score(&self, query: &[f32], item: u32) -> Option<f32> {
        let x = self.vector(item)?;
        Some(match self.metric {
            Metric::InnerProduct => dot(query, x),
            Metric::Cosine => {
                let n = norm(query);
                if n > 0.0 {
                    dot(query, x) / n
                } else {
                    0.0
                }
            }
            Metric::L2 => -super::metric::squared_l2(query, x),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn naive(
        metric: Metric,
        dim: usize,
        items: &[f32],
        q: &[f32],
        k: usize,
        skip: impl Fn(u32) -> bool,
    ) -> Vec<Scored> {
        let mut all: Vec<Scored> = items
            .chunks_exact(dim)
            .enumerate()
            .filter(|(i, _)| !skip(*i as u32))
            .map(|(i, x)| {
                let score = match metric {
                    Metric::InnerProduct => q.iter().zip(x).map(|(a, b)| a * b).sum(),
                    Metric::L2 => -q.iter().zip(x).map(|(a, b)| (a - b) * (a - b)).sum::<f32>(),
                    Metric::Cosine => unreachable!("integer data test covers ip and l2"),
                };
                Scored {
                    item: i as u32,
                    score,
                }
            })
            .collect();
        // partial_cmp, not total_cmp: 0.0 and -0.0 tie, as in the ordering under test.
        all.sort_by(|a, b| {
            b.score
                .partial_cmp(&a.score)
                .unwrap_or(std::cmp::Ordering::Equal)
                .then(a.item.cmp(&b.item))
        });
        all.truncate(k);
        all
    }

    #[test]
    fn hand_computed_example_with_ties_and_exclusions() {
        // Items: (1,0) (0,1) (1,1) (2,0) (1,0)
        let items = [1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 2.0, 0.0, 1.0, 0.0];
        let ip = ExactIndex::new(Metric::InnerProduct, 2, &items).unwrap();
        // q = (1, 0): scores 1, 0, 1, 2, 1 -> 3, then ties 0, 2, 4 by index.
        let top = ip.search(&[1.0, 0.0], 3, |i| i == 0).unwrap();
        let got: Vec<(u32, f32)> = top.iter().map(|s| (s.item, s.score)).collect();
        assert_eq!(got, vec![(3, 2.0), (2, 1.0), (4, 1.0)]);
        let cos = ExactIndex::new(Metric::Cosine, 2, &items).unwrap();
        let top = cos.search(&[2.0, 0.0], 2, |_| false).unwrap();
        // Cosine 1 for items 0, 3, 4: lowest indices win.
        assert_eq!(top.iter().map(|s| s.item).collect::<Vec<_>>(), vec![0, 3]);
        assert!((top[0].score - 1.0).abs() < 1e-6);
        let l2 = ExactIndex::new(Metric::L2, 2, &items).unwrap();
        // q = (0, 2): d^2 = 5, 1, 2, 8, 5.
        let top = l2.search(&[0.0, 2.0], 2, |_| false).unwrap();
        let got: Vec<(u32, f32)> = top.iter().map(|s| (s.item, s.score)).collect();
        assert_eq!(got, vec![(1, -1.0), (2, -2.0)]);
        assert!(l2.search(&[0.0], 2, |_| false).is_err());
        assert!(ExactIndex::new(Metric::L2, 2, &[1.0, 2.0, 3.0]).is_err());
    }

    proptest! {
        #[test]
        fn both_paths_equal_a_naive_sort(
            dim in 1usize..20,
            n in 0usize..300,
            n_queries in 1usize..80,
            k in 0usize..12,
            seed in any::<u64>(),
            l2 in any::<bool>(),
        ) {
            // Small integers keep every dot product exact in f32, so the GEMM and the loop
            // agree bit for bit with the naive sum and ties are real ties.
            let mut rng = kindred_core::SplitMix64::new(seed);
            let mut draw = |len: usize| -> Vec<f32> {
                (0..len).map(|_| rng.below(7) as f32 - 3.0).collect()
            };
            let items = draw(n * dim);
            let queries = draw(n_queries * dim);
            let metric = if l2 { Metric::L2 } else { Metric::InnerProduct };
            let index = ExactIndex::new(metric, dim, &items).unwrap();
            let skip = |q: usize, i: u32| (i as usize + q).is_multiple_of(5);
            let batch = index.search_batch(&queries, k, &skip).unwrap();
            prop_assert_eq!(batch.len(), n_queries);
            for (qi, q) in queries.chunks_exact(dim).enumerate() {
                let want = naive(metric, dim, &items, q, k, |i| skip(qi, i));
                let single = index.search(q, k, |i| skip(qi, i)).unwrap();
                prop_assert_eq!(&single, &want);
                prop_assert_eq!(&batch[qi], &want);
            }
        }
    }
}
