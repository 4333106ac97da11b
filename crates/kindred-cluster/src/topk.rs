//! Distributed batch top-K: every user's `k` best items (seen items excluded, only allowed items)
//! and every item's nearest neighbours by cosine, on one node or spread over the workers of a
//! cluster job.
//!
//! Layout of a distributed run: worker `w` of `p` owns the users with global index `u % p == w`
//! (their factors and seen items are local to it) and the items with `i % p == w`. The item
//! factors are all-gathered once, so every worker holds the whole item matrix; each worker then
//! scores its own users (and its own items' neighbour queries) with the same kernel the
//! single-node path uses.
//!
//! Identity with the single-node run: [`ExactIndex::search_batch`] multiplies a block of queries
//! by a block of items through faer, and faer chooses its code path by the block's shape (a
//! one-row block is a matrix-vector product, small products go through a different kernel).
//! A user's scores could then depend on how many users share its block, which differs between
//! a single node and a worker. The kernel here therefore always hands faer blocks of exactly
//! [`SCORING_BLOCK`] rows, padding the last one with zero rows whose results are dropped; GEMM
//! computes each output row from its own query row only, so with the shape fixed a user's
//! scores are the same bits whatever users surround it (proptest
//! `a_users_list_does_not_depend_on_its_neighbours_in_the_block`; without the padding it fails
//! on last-bit differences). faer also picks its kernels by the CPU's instruction set (AVX-512
//! or AVX2), so the identity holds between workers on machines of one CPU family; a mixed
//! cluster can differ in the last bits, and so in the order of near-ties.

use rayon::prelude::*;

use kindred_core::topk::Scored;
use kindred_core::{CsMatrix, FitContext};
use kindred_rank::retrieval::{ExactIndex, Metric};

use crate::error::{Error, Result};
use crate::runtime::Exchanger;
use crate::shard::{owned_count, owned_indices};
use crate::wire::{Reader, Writer};

/// Query rows per scoring call. Every call gets exactly this many rows (padded with zeros), so
/// that the GEMM shape, and with it faer's choice of kernel, never depends on the batch.
pub const SCORING_BLOCK: usize = 64;

/// What to compute in a batch run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchSettings {
    /// Items recommended per user (0: no user lists).
    pub k: usize,
    /// Neighbours per item (0: no neighbour lists).
    pub neighbours: usize,
}

/// Lists of a whole run, by global index.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct BatchLists {
    /// `users[u]`: user `u`'s best items, best first.
    pub users: Vec<Vec<Scored>>,
    /// `neighbours[i]`: item `i`'s nearest other items by cosine, nearest first.
    pub neighbours: Vec<Vec<Scored>>,
}

/// Lists of one worker's users and items, in local order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct WorkerLists {
    pub worker: usize,
    pub peers: usize,
    /// `users[r]`: lists of global user `r * peers + worker`.
    pub users: Vec<Vec<Scored>>,
    /// `neighbours[r]`: lists of global item `r * peers + worker`.
    pub neighbours: Vec<Vec<Scored>>,
}

impl WorkerLists {
    /// Global index of the `local`-th user or item of this worker.
    pub fn global_index(&self, local: usize) -> usize {
        crate::shard::global_index(local, self.worker, self.peers)
    }
}

/// One worker's share of the input.
#[derive(Debug, Clone, Copy)]
pub struct WorkerShard<'a> {
    /// Factors per user and item.
    pub dim: usize,
    /// Row-major factors of this worker's users (global `u % peers == worker`, ascending `u`).
    pub user_factors: &'a [f32],
    /// Items each of those users has seen, one row per local user (rows sorted ascending, as
    /// [`CsMatrix::build`] makes them).
    pub seen: &'a CsMatrix,
    /// Row-major factors of this worker's items (global `i % peers == worker`, ascending `i`).
    pub item_factors: &'a [f32],
}

/// The rows of a row-major matrix (`dim` columns) that worker `worker` of `peers` owns.
pub fn shard_rows(matrix: &[f32], dim: usize, worker: usize, peers: usize) -> Vec<f32> {
    let rows = matrix.len().checked_div(dim).unwrap_or(0);
    owned_indices(rows, worker, peers)
        .flat_map(|r| &matrix[r * dim..(r + 1) * dim])
        .copied()
        .collect()
}

/// The rows of `seen` (one per user) that worker `worker` of `peers` owns, as a matrix with one
/// row per local user.
pub fn shard_seen(seen: &CsMatrix, worker: usize, peers: usize) -> CsMatrix {
    let mut local_users = Vec::new();
    let mut items = Vec::new();
    for (local, user) in owned_indices(seen.n_rows(), worker, peers).enumerate() {
        for &item in seen.row(user) {
            local_users.push(local as u32);
            items.push(item);
        }
    }
    let n_local = owned_count(seen.n_rows(), worker, peers);
    CsMatrix::build(n_local, seen.n_cols(), &local_users, &items)
}

fn invalid(message: String) -> Error {
    Error::Core(kindred_core::Error::InvalidInput(message))
}

/// Number of rows of a row-major matrix, or an error naming it.
fn rows_of(what: &str, matrix: &[f32], dim: usize) -> Result<usize> {
    if dim == 0 {
        return Err(invalid(format!("{what}: the factor dimension is 0")));
    }
    if !matrix.len().is_multiple_of(dim) {
        return Err(invalid(format!(
            "{what}: {} values are not whole rows of {dim} factors",
            matrix.len()
        )));
    }
    Ok(matrix.len() / dim)
}

fn check_allowed(allowed: Option<&[bool]>, n_items: usize) -> Result<()> {
    match allowed {
        Some(flags) if flags.len() != n_items => Err(invalid(format!(
            "the allowed-item filter has {} entries for {n_items} items",
            flags.len()
        ))),
        _ => Ok(()),
    }
}

/// Scores `queries` (row-major) against `index` in fixed blocks of [`SCORING_BLOCK`] rows,
/// padded with zero rows, in parallel over blocks. `exclude(row, item)` is asked only about
/// real rows; padding rows exclude everything.
fn search_fixed_blocks(
    queries: &[f32],
    index: &ExactIndex,
    k: usize,
    exclude: &(dyn Fn(usize, u32) -> bool + Sync),
) -> Result<Vec<Vec<Scored>>> {
    let dim = index.dim();
    let n = rows_of("query matrix", queries, dim)?;
    let blocks: Vec<Result<Vec<Vec<Scored>>>> = queries
        .par_chunks(SCORING_BLOCK * dim)
        .enumerate()
        .map(|(block, rows)| {
            let first = block * SCORING_BLOCK;
            let real = rows.len() / dim;
            let mut padded = vec![0f32; SCORING_BLOCK * dim];
            padded[..rows.len()].copy_from_slice(rows);
            let block_exclude = |q: usize, item: u32| q >= real || exclude(first + q, item);
            let mut lists = index
                .search_batch(&padded, k, &block_exclude)
                .map_err(Error::Core)?;
            lists.truncate(real);
            Ok(lists)
        })
        .collect();
    let mut out = Vec::with_capacity(n);
    for block in blocks {
        out.extend(block?);
    }
    Ok(out)
}

/// The `k` best items of each user of a block (`user_factors` row-major, `index.dim()`
/// columns), best first, ties by the lower item index. `seen(i)` gives the sorted item indices
/// the block's `i`-th user has seen (never recommended); `allowed`, when given, has one flag per
/// item and only flagged items are recommended. A user's list does not depend on which other
/// users are in the block (see the module doc).
pub fn top_k_block<'a>(
    user_factors: &[f32],
    index: &ExactIndex,
    k: usize,
    seen: &'a (dyn Fn(usize) -> &'a [u32] + Sync),
    allowed: Option<&[bool]>,
) -> Result<Vec<Vec<Scored>>> {
    let n_users = rows_of("user factors", user_factors, index.dim())?;
    check_allowed(allowed, index.len())?;
    for user in 0..n_users {
        let row = seen(user);
        if let Some(pos) = row.windows(2).position(|w| w[0] > w[1]) {
            return Err(invalid(format!(
                "seen items of user {user} are not sorted (item {} before {})",
                row[pos],
                row[pos + 1]
            )));
        }
    }
    let exclude = |user: usize, item: u32| {
        allowed.is_some_and(|a| !a[item as usize]) || seen(user).binary_search(&item).is_ok()
    };
    search_fixed_blocks(user_factors, index, k, &exclude)
}

/// The `k` nearest other items by cosine of each query item: `query_factors` holds the query
/// items' raw factors (row-major) and `query_items` their indices in `index`, an index built
/// with [`Metric::Cosine`] over all item factors. `allowed`, when given, restricts the
/// neighbours (not the queries) to flagged items, as for user lists. Nearest first, ties by the
/// lower item index.
pub fn neighbours_block(
    query_factors: &[f32],
    query_items: &[u32],
    index: &ExactIndex,
    k: usize,
    allowed: Option<&[bool]>,
) -> Result<Vec<Vec<Scored>>> {
    if index.metric() != Metric::Cosine {
        return Err(invalid(format!(
            "item neighbours need a cosine index, not {:?}",
            index.metric()
        )));
    }
    let n = rows_of("query item factors", query_factors, index.dim())?;
    if n != query_items.len() {
        return Err(invalid(format!(
            "{n} query factor rows for {} query items",
            query_items.len()
        )));
    }
    check_allowed(allowed, index.len())?;
    let exclude = |row: usize, item: u32| {
        item == query_items[row] || allowed.is_some_and(|a| !a[item as usize])
    };
    search_fixed_blocks(query_factors, index, k, &exclude)
}

/// Checks the seen-item matrix against the users and items it must describe.
fn check_seen(seen: &CsMatrix, n_users: usize, n_items: usize) -> Result<()> {
    if seen.n_rows() != n_users {
        return Err(invalid(format!(
            "seen items cover {} users, the factors {n_users}",
            seen.n_rows()
        )));
    }
    if let Some(&bad) = seen.indices().iter().find(|&&i| i as usize >= n_items) {
        return Err(invalid(format!(
            "a seen item index {bad} is out of range for {n_items} items"
        )));
    }
    Ok(())
}

/// Rows scored between cancellation checks and progress reports (a whole number of blocks).
const CHUNK_ROWS: usize = SCORING_BLOCK * 256;

/// A thread pool of `ctx.threads` threads for the scoring.
fn pool(ctx: &FitContext) -> Result<rayon::ThreadPool> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(ctx.threads.max(1))
        .build()
        .map_err(|e| Error::Config(format!("cannot start scoring threads: {e}")))
}

/// Runs `score(start, end)` over `0..rows` in chunks of [`CHUNK_ROWS`] as phase `task`:
/// cancellation checked and progress reported between chunks.
fn in_chunks(
    task: &str,
    rows: usize,
    ctx: &FitContext,
    score: impl Fn(usize, usize) -> Result<Vec<Vec<Scored>>> + Sync,
) -> Result<Vec<Vec<Scored>>> {
    let pool = pool(ctx)?;
    ctx.progress.begin(task, rows as u64);
    let mut out = Vec::with_capacity(rows);
    for start in (0..rows).step_by(CHUNK_ROWS) {
        ctx.cancel.check()?;
        let end = (start + CHUNK_ROWS).min(rows);
        out.extend(pool.install(|| score(start, end))?);
        ctx.progress.advance((end - start) as u64);
    }
    ctx.progress.finish();
    Ok(out)
}

/// The top-K lists of `user_factors` (one `seen` row each) against all item factors.
fn user_lists(
    dim: usize,
    user_factors: &[f32],
    seen: &CsMatrix,
    all_items: &[f32],
    allowed: Option<&[bool]>,
    k: usize,
    ctx: &FitContext,
) -> Result<Vec<Vec<Scored>>> {
    let n_items = rows_of("item factors", all_items, dim)?;
    let n_users = rows_of("user factors", user_factors, dim)?;
    check_seen(seen, n_users, n_items)?;
    if k == 0 {
        return Ok(vec![Vec::new(); n_users]);
    }
    let index = ExactIndex::new(Metric::InnerProduct, dim, all_items)?;
    in_chunks("top-K lists", n_users, ctx, |start, end| {
        let seen_of = |u: usize| seen.row(start + u);
        let rows = &user_factors[start * dim..end * dim];
        top_k_block(rows, &index, k, &seen_of, allowed)
    })
}

/// The neighbour lists of `query_items` (raw factors `query_factors`) among all items.
fn neighbour_lists(
    dim: usize,
    all_items: &[f32],
    query_items: &[u32],
    query_factors: &[f32],
    allowed: Option<&[bool]>,
    k: usize,
    ctx: &FitContext,
) -> Result<Vec<Vec<Scored>>> {
    if k == 0 {
        return Ok(vec![Vec::new(); query_items.len()]);
    }
    let n_queries = rows_of("query item factors", query_factors, dim)?;
    if n_queries != query_items.len() {
        return Err(invalid(format!(
            "{n_queries} query factor rows for {} query items",
            query_items.len()
        )));
    }
    let index = ExactIndex::new(Metric::Cosine, dim, all_items)?;
    in_chunks("item neighbour lists", n_queries, ctx, |start, end| {
        let rows = &query_factors[start * dim..end * dim];
        neighbours_block(rows, &query_items[start..end], &index, k, allowed)
    })
}

/// Every user's top-K and every item's neighbours on this node. `seen` has one row per user;
/// `allowed`, when given, one flag per item. Scoring uses `ctx.threads` threads, reports
/// progress per chunk of users (items) and stops with an error when `ctx.cancel` is raised.
pub fn single_node_top_k(
    dim: usize,
    user_factors: &[f32],
    seen: &CsMatrix,
    item_factors: &[f32],
    allowed: Option<&[bool]>,
    settings: &BatchSettings,
    ctx: &FitContext,
) -> Result<BatchLists> {
    let n_items = rows_of("item factors", item_factors, dim)?;
    let query_items: Vec<u32> = (0..n_items as u32).collect();
    let users = user_lists(
        dim,
        user_factors,
        seen,
        item_factors,
        allowed,
        settings.k,
        ctx,
    )?;
    let neighbours = neighbour_lists(
        dim,
        item_factors,
        &query_items,
        item_factors,
        allowed,
        settings.neighbours,
        ctx,
    )?;
    Ok(BatchLists { users, neighbours })
}

/// This worker's part of a distributed run: gathers every worker's item factors once (one
/// all-gather round), then scores the worker's own users and item neighbour queries. Every
/// worker must call it with the same `dim`, `allowed` and `settings`. The lists equal the
/// single-node lists of the same users and items exactly. `ctx` as for [`single_node_top_k`],
/// per worker (`ctx.threads` is this worker's share of its machine).
pub fn distributed_top_k(
    ex: &mut Exchanger<'_>,
    shard: &WorkerShard<'_>,
    allowed: Option<&[bool]>,
    settings: &BatchSettings,
    ctx: &FitContext,
) -> Result<WorkerLists> {
    let worker = ex.index();
    let peers = ex.peers();
    let dim = shard.dim;
    let own_items = rows_of("this worker's item factors", shard.item_factors, dim)?;
    let received = ex.all_gather(|w: &mut Writer| {
        w.u64(dim as u64);
        w.u64(own_items as u64);
        w.f32s(shard.item_factors);
    })?;
    let mut parts = Vec::with_capacity(peers);
    for message in &received {
        let mut reader = Reader::new(&message.bytes, message.from);
        let their_dim = reader.u64()? as usize;
        if their_dim != dim {
            return Err(Error::Config(format!(
                "worker {} has {their_dim} factors per item, worker {worker} has {dim}",
                message.from
            )));
        }
        let rows = reader.u64()? as usize;
        let mut factors = Vec::with_capacity(rows * dim);
        reader.f32s_into(rows * dim, &mut factors)?;
        parts.push(factors);
    }
    let n_items: usize = parts.iter().map(|p| p.len() / dim).sum();
    for (from, part) in parts.iter().enumerate() {
        let expected = owned_count(n_items, from, peers);
        if part.len() / dim != expected {
            return Err(Error::Config(format!(
                "worker {from} holds {} item rows; with {n_items} items sharded by index over \
                 {peers} workers it should hold {expected}",
                part.len() / dim
            )));
        }
    }
    // Item i is row i / peers of worker i % peers.
    let mut all_items = vec![0f32; n_items * dim];
    for (i, row) in all_items.chunks_exact_mut(dim).enumerate() {
        let r = i / peers;
        row.copy_from_slice(&parts[i % peers][r * dim..(r + 1) * dim]);
    }
    drop(parts);
    let query_items: Vec<u32> = owned_indices(n_items, worker, peers)
        .map(|i| i as u32)
        .collect();
    let users = user_lists(
        dim,
        shard.user_factors,
        shard.seen,
        &all_items,
        allowed,
        settings.k,
        ctx,
    )?;
    let neighbours = neighbour_lists(
        dim,
        &all_items,
        &query_items,
        shard.item_factors,
        allowed,
        settings.neighbours,
        ctx,
    )?;
    Ok(WorkerLists {
        worker,
        peers,
        users,
        neighbours,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use kindred_core::SplitMix64;
    use proptest::prelude::*;

    fn ctx() -> FitContext {
        FitContext::default()
    }

    fn gaussian(rng: &mut SplitMix64, len: usize) -> Vec<f32> {
        (0..len).map(|_| rng.normal() as f32).collect()
    }

    #[test]
    fn hand_computed_lists_with_seen_and_disallowed_items() {
        // Items: (1,0) (0,1) (1,1) (2,0) (1,0)
        let items = [1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 2.0, 0.0, 1.0, 0.0];
        // User 0 = (1,0): scores 1, 0, 1, 2, 1; has seen item 3.
        // User 1 = (0,1): scores 0, 1, 1, 0, 0; item 2 is not allowed.
        let users = [1.0, 0.0, 0.0, 1.0];
        let seen = CsMatrix::build(2, 5, &[0], &[3]);
        let allowed = [true, true, false, true, true];
        let settings = BatchSettings {
            k: 3,
            neighbours: 2,
        };
        let lists =
            single_node_top_k(2, &users, &seen, &items, Some(&allowed), &settings, &ctx()).unwrap();
        let pairs = |l: &Vec<Scored>| l.iter().map(|s| (s.item, s.score)).collect::<Vec<_>>();
        // User 0: item 3 seen, item 2 disallowed -> 0 and 4 tie at 1 (lower index first), then 1.
        assert_eq!(pairs(&lists.users[0]), vec![(0, 1.0), (4, 1.0), (1, 0.0)]);
        // User 1: item 1 scores 1; items 0, 3, 4 tie at 0.
        assert_eq!(pairs(&lists.users[1]), vec![(1, 1.0), (0, 0.0), (3, 0.0)]);
        // Neighbours by cosine, self excluded: item 0 = (1,0) is parallel to 3 and 4.
        let ids = |l: &Vec<Scored>| l.iter().map(|s| s.item).collect::<Vec<_>>();
        assert_eq!(ids(&lists.neighbours[0]), vec![3, 4]);
        assert_eq!(ids(&lists.neighbours[3]), vec![0, 4]);
        // Item 1 = (0,1): cosine 1/sqrt(2) with item 2, but 2 is not allowed; 0 with the rest.
        assert_eq!(ids(&lists.neighbours[1]), vec![0, 3]);
        // Item 2 itself may still be a query: (1,1) is nearest to 0, then 1 (1/sqrt(2) each).
        assert_eq!(ids(&lists.neighbours[2]), vec![0, 1]);
        assert!((lists.neighbours[2][0].score - std::f32::consts::FRAC_1_SQRT_2).abs() < 1e-6);
        let unfiltered =
            single_node_top_k(2, &users, &seen, &items, None, &settings, &ctx()).unwrap();
        assert_eq!(ids(&unfiltered.neighbours[1]), vec![2, 0]);
    }

    #[test]
    fn bad_input_is_an_error_naming_what_is_wrong() {
        let items = [1.0, 0.0, 0.0, 1.0];
        let seen = CsMatrix::build(1, 2, &[], &[]);
        let settings = BatchSettings {
            k: 1,
            neighbours: 1,
        };
        let err = single_node_top_k(2, &[1.0, 0.0, 1.0], &seen, &items, None, &settings, &ctx())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("user factors") && err.contains("whole rows"),
            "{err}"
        );
        let err = single_node_top_k(
            2,
            &[1.0, 0.0],
            &seen,
            &items,
            Some(&[true]),
            &settings,
            &ctx(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("allowed-item filter has 1 entries for 2 items"),
            "{err}"
        );
        let two_users = CsMatrix::build(2, 2, &[], &[]);
        let err = single_node_top_k(2, &[1.0, 0.0], &two_users, &items, None, &settings, &ctx())
            .unwrap_err()
            .to_string();
        assert!(err.contains("seen items cover 2 users"), "{err}");
        let out_of_range = CsMatrix::build(1, 9, &[0], &[7]);
        let err = single_node_top_k(
            2,
            &[1.0, 0.0],
            &out_of_range,
            &items,
            None,
            &settings,
            &ctx(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("seen item index 7"), "{err}");
        let index = ExactIndex::new(Metric::InnerProduct, 2, &items).unwrap();
        let unsorted: [u32; 2] = [1, 0];
        let err = top_k_block(&[1.0, 0.0], &index, 1, &|_| &unsorted[..], None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("user 0 are not sorted"), "{err}");
        let err = neighbours_block(&[1.0, 0.0], &[0], &index, 1, None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("cosine"), "{err}");
    }

    /// Evidence for the padding: the same user scored alone (a one-row GEMM, which faer
    /// runs as a matrix-vector product) and inside a full block. Whether the raw bits differ is
    /// up to faer and the CPU; the padded kernel must agree with itself either way.
    #[test]
    fn the_padded_kernel_scores_a_user_alike_alone_and_in_a_full_block() {
        let mut rng = SplitMix64::new(5);
        let dim = 37;
        let items = gaussian(&mut rng, 300 * dim);
        let users = gaussian(&mut rng, 64 * dim);
        let index = ExactIndex::new(Metric::InnerProduct, dim, &items).unwrap();
        let none: &[u32] = &[];
        let all = index.len();
        let block = top_k_block(&users, &index, all, &|_| none, None).unwrap();
        let bits = |l: &[Scored]| -> Vec<(u32, u32)> {
            l.iter().map(|s| (s.item, s.score.to_bits())).collect()
        };
        for u in [0, 17, 63] {
            let alone =
                top_k_block(&users[u * dim..(u + 1) * dim], &index, all, &|_| none, None).unwrap();
            assert!(
                bits(&alone[0]) == bits(&block[u]),
                "user {u} scored differently alone"
            );
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        /// Random (inexact) floats, every item scored (k = all), compared bit for bit: a user's
        /// scores do not depend on the users placed before and after it.
        #[test]
        fn a_users_list_does_not_depend_on_its_neighbours_in_the_block(
            dim in 1usize..80,
            n_items in 1usize..400,
            before in 0usize..150,
            after in 0usize..150,
            seed in any::<u64>(),
        ) {
            let mut rng = SplitMix64::new(seed);
            let items = gaussian(&mut rng, n_items * dim);
            let user = gaussian(&mut rng, dim);
            let mut block = gaussian(&mut rng, before * dim);
            block.extend_from_slice(&user);
            block.extend(gaussian(&mut rng, after * dim));
            let index = ExactIndex::new(Metric::InnerProduct, dim, &items).unwrap();
            let none: &[u32] = &[];
            let alone = top_k_block(&user, &index, n_items, &|_| none, None).unwrap();
            let surrounded = top_k_block(&block, &index, n_items, &|_| none, None).unwrap();
            let bits = |l: &[Scored]| l.iter().map(|s| (s.item, s.score.to_bits())).collect::<Vec<_>>();
            prop_assert_eq!(alone[0].len(), n_items);
            prop_assert_eq!(bits(&alone[0]), bits(&surrounded[before]));
        }
    }
}
