//! Neighbour lists: the `k` most similar others of every item (or user) at once, in parallel.
//!
//! Embedding neighbours go through exact batched search below [`NeighbourOptions::exact_below`]
//! entities (GEMM beats graph walks when the catalog is small) and through an HNSW index above
//! it. Any other similarity ([`super::similar`]) can be fanned out with [`neighbour_lists_with`].

use rayon::prelude::*;

use kindred_core::topk::Scored;
use kindred_core::{FitContext, Result};

use super::exact::ExactIndex;
use super::hnsw::{HnswIndex, HnswParams};
use super::metric::{check_matrix, Metric};

/// Entities handled between cancellation checks and progress reports.
const CHUNK: usize = 8192;

/// How neighbour lists are computed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NeighbourOptions {
    /// Neighbours per entity.
    pub k: usize,
    /// Exact search below this many entities, HNSW from there on.
    pub exact_below: usize,
    /// Graph parameters (and metric) for the HNSW path; `metric` is used by both paths.
    pub hnsw: HnswParams,
    /// Search breadth of the HNSW path.
    pub ef: usize,
}

impl Default for NeighbourOptions {
    fn default() -> Self {
        Self {
            k: 10,
            exact_below: 20_000,
            hnsw: HnswParams::default(),
            ef: 64,
        }
    }
}

/// The `k` nearest others of every row of `vectors` (row-major, `dim` columns), row order.
pub fn neighbour_lists(
    dim: usize,
    vectors: &[f32],
    options: &NeighbourOptions,
    ctx: &FitContext,
) -> Result<Vec<Vec<Scored>>> {
    let n = check_matrix("embedding matrix", dim, vectors)?;
    let metric: Metric = options.hnsw.metric;
    let k = options.k;
    if n < options.exact_below {
        let index = ExactIndex::new(metric, dim, vectors)?;
        let pool = pool(ctx)?;
        ctx.progress.begin("neighbour lists (exact)", n as u64);
        let mut out = Vec::with_capacity(n);
        for start in (0..n).step_by(CHUNK) {
            ctx.cancel.check()?;
            let end = (start + CHUNK).min(n);
            let rows = &vectors[start * dim..end * dim];
            let skip_self = move |q: usize, item: u32| item as usize == start + q;
            out.extend(pool.install(|| index.search_batch(rows, k, &skip_self))?);
            ctx.progress.advance((end - start) as u64);
        }
        ctx.progress.finish();
        return Ok(out);
    }
    let index = HnswIndex::build(options.hnsw, dim, vectors, ctx)?;
    hnsw_neighbour_lists(&index, k, options.ef, ctx)
}

/// The `k` nearest live others of every node of a built index, node order (empty lists for
/// deleted nodes).
pub fn hnsw_neighbour_lists(
    index: &HnswIndex,
    k: usize,
    ef: usize,
    ctx: &FitContext,
) -> Result<Vec<Vec<Scored>>> {
    neighbour_lists_with(index.len(), "neighbour lists (hnsw)", ctx, &|id| {
        if index.is_deleted(id) {
            return Ok(Vec::new());
        }
        match index.vector(id) {
            Some(v) => index.search(v, k, Some(ef), &|other| other != id),
            None => Ok(Vec::new()),
        }
    })
}

/// Runs `neighbours(id)` for every id in `0..n` in parallel with `ctx.threads` threads,
/// checking `ctx.cancel` and reporting progress under `task` between chunks.
pub fn neighbour_lists_with(
    n: usize,
    task: &str,
    ctx: &FitContext,
    neighbours: &(dyn Fn(u32) -> Result<Vec<Scored>> + Sync),
) -> Result<Vec<Vec<Scored>>> {
    let pool = pool(ctx)?;
    ctx.progress.begin(task, n as u64);
    let mut out = Vec::with_capacity(n);
    for start in (0..n).step_by(CHUNK) {
        ctx.cancel.check()?;
        let end = (start + CHUNK).min(n);
        let chunk: Result<Vec<Vec<Scored>>> = pool.install(|| {
            (start..end)
                .into_par_iter()
                .map(|id| neighbours(id as u32))
                .collect()
        });
        out.extend(chunk?);
        ctx.progress.advance((end - start) as u64);
    }
    ctx.progress.finish();
    Ok(out)
}

fn pool(ctx: &FitContext) -> Result<rayon::ThreadPool> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(ctx.threads.max(1))
        .build()
        .map_err(|e| kindred_core::Error::InvalidInput(format!("cannot start worker threads: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::retrieval::hnsw::tests::clustered;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;

    struct Count(AtomicU64);
    impl kindred_core::Progress for Count {
        fn advance(&self, n: u64) {
            self.0.fetch_add(n, Ordering::Relaxed);
        }
    }

    #[test]
    fn exact_and_hnsw_paths_agree() {
        let (n, dim) = (1200, 8);
        let vectors = clustered(n, dim, 6, 21);
        let counter = Arc::new(Count(AtomicU64::new(0)));
        let ctx = FitContext {
            threads: 2,
            progress: counter.clone(),
            ..FitContext::with_seed(1)
        };
        let exact = neighbour_lists(dim, &vectors, &NeighbourOptions::default(), &ctx).unwrap();
        let approx_options = NeighbourOptions {
            exact_below: 0,
            ..NeighbourOptions::default()
        };
        let approx = neighbour_lists(dim, &vectors, &approx_options, &ctx).unwrap();
        assert_eq!(exact.len(), n);
        assert_eq!(approx.len(), n);
        let mut hits = 0;
        for (id, (a, b)) in exact.iter().zip(&approx).enumerate() {
            assert_eq!(a.len(), 10);
            assert!(a.iter().chain(b).all(|s| s.item as usize != id));
            hits += a
                .iter()
                .filter(|x| b.iter().any(|y| y.item == x.item))
                .count();
        }
        assert!(hits as f64 / (10 * n) as f64 >= 0.95, "{hits}");
        // Exact lists equal one-at-a-time search.
        let index = ExactIndex::new(Metric::Cosine, dim, &vectors).unwrap();
        let want = index
            .search(&vectors[5 * dim..6 * dim], 10, |i| i == 5)
            .unwrap();
        assert_eq!(pairs(&exact[5]), pairs(&want));
        // exact (n) + build (n) + hnsw lists (n)
        assert_eq!(counter.0.load(Ordering::Relaxed), 3 * n as u64);
    }

    fn pairs(list: &[Scored]) -> Vec<u32> {
        list.iter().map(|s| s.item).collect()
    }

    #[test]
    fn cancelled_lists_stop() {
        let ctx = FitContext::with_seed(1);
        ctx.cancel.cancel();
        let err = neighbour_lists_with(10, "x", &ctx, &|_| Ok(Vec::new())).unwrap_err();
        assert!(matches!(err, kindred_core::Error::Cancelled));
    }
}
