//! A Hierarchical Navigable Small World graph (Malkov & Yashunin, 2016/2018) for approximate
//! nearest-neighbour search, written here rather than wrapped: the crates that exist either pull
//! in many dependencies or lack clean incremental insert, delete and persistence.
//!
//! # Metrics
//! The graph is navigated with one "graph distance" per metric, and every result carries the
//! exact score of its metric (higher is better), so approximate results are re-scored for free:
//! - L2: squared Euclidean distance; score `-|q - x|^2`.
//! - Cosine: vectors are stored at unit length and the distance is `-q.x`; score = cosine.
//! - Inner product (MIPS), by default navigated with the raw inner product as a (non-metric)
//!   similarity, as ip-NSW does (Morozov & Babenko, NeurIPS 2018): distance `-q.x`, graph built
//!   with the same. Optionally (`ip_reduction`) by the standard reduction to cosine (Bachrach
//!   et al. 2014): each item
//!   `x` is stored as `x' = [x, sqrt(M^2 - |x|^2)]` where `M` is the largest item norm at build
//!   time, so every `x'` has norm `M`, and the query is `q' = [q, 0]`. Then `q'.x' = q.x`: the
//!   nearest neighbours of `q'` by angle are exactly the largest inner products, and the score
//!   is the true inner product. Items inserted later with a norm above `M` get a zero extra
//!   coordinate: their scores stay exact but the graph navigates them less well (rebuild then).
//!   On clustered factors with log-normal norms the reduction measured far lower recall at the
//!   same ef than the direct inner product (the queries, with a zero extra coordinate, sit far
//!   from every augmented item), which is why it is not the default; see BENCHMARKS.md.
//!
//! # Concurrency and determinism
//! [`HnswIndex::build`] inserts in parallel (rayon) with one lock per node guarding writes of its
//! neighbour lists; readers read lists through atomics without locking (a torn read only changes
//! which valid nodes are explored). With one thread the build is deterministic given the seed;
//! with several it is not (insertion interleaving changes the graph), though node levels are
//! always a function of (seed, node id).
//!
//! # Deletion
//! [`HnswIndex::delete`] marks a tombstone: deleted nodes still route searches but are never
//! returned. [`HnswIndex::repair`] then reconnects every live node that pointed at a deleted one
//! (candidates: its live neighbours and the live neighbours of the deleted ones, pruned with the
//! same heuristic as insertion) and unlinks the deleted nodes. Node ids are never reused, and a
//! deleted node's vector stays in memory until the index is rebuilt.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicU32, Ordering as AtomicOrdering};
use std::sync::Mutex;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use kindred_core::kernels::{dot_gathered, prefetch};
use kindred_core::rng::mix64;
use kindred_core::topk::Scored;
use kindred_core::{Error, FitContext, Result};

use super::metric::{check_matrix, dot, norm, normalise, squared_l2, Metric};
use super::visited::{with_visited, Visited};

/// "No node": the entry point of an empty graph.
pub(crate) const NONE: u32 = u32::MAX;
/// Highest layer a node may be drawn on; with M >= 2 a layer above 15 is never needed below 2^30 nodes.
pub(crate) const MAX_LEVEL: usize = 15;
/// Nodes inserted between cancellation checks and progress reports.
const BUILD_CHUNK: usize = 4096;

/// Construction and search parameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct HnswParams {
    pub metric: Metric,
    /// Links per node on the upper layers; layer 0 allows `2 * m`.
    pub m: usize,
    /// Candidate list size while inserting (quality of the graph vs build time).
    pub ef_construction: usize,
    /// Default candidate list size while searching (recall vs speed); at least `k` is used.
    pub ef_search: usize,
    /// Seeds the level of every node.
    pub seed: u64,
    /// Inner product only: navigate with the norm-augmentation reduction to cosine instead of
    /// the raw inner product (see the module doc; measured worse on skewed norms, so off by default).
    #[serde(default)]
    pub ip_reduction: bool,
}

impl Default for HnswParams {
    fn default() -> Self {
        Self {
            metric: Metric::Cosine,
            m: 16,
            ef_construction: 100,
            ef_search: 64,
            seed: 42,
            ip_reduction: false,
        }
    }
}

impl HnswParams {
    fn validate(&self) -> Result<()> {
        if self.m < 2 || self.m > 256 {
            return Err(Error::spec(
                "hnsw parameter",
                format!("m={}", self.m),
                "m must be in 2..=256",
            ));
        }
        if self.ef_construction == 0 || self.ef_search == 0 {
            return Err(Error::spec(
                "hnsw parameter",
                format!(
                    "ef_construction={} ef_search={}",
                    self.ef_construction, self.ef_search
                ),
                "ef values must be positive",
            ));
        }
        Ok(())
    }

    /// True when inner product goes through the augmentation reduction.
    pub(crate) fn reduces_ip(&self) -> bool {
        self.metric == Metric::InnerProduct && self.ip_reduction
    }

    /// Link capacity of layer 0.
    pub(crate) fn m0(&self) -> usize {
        2 * self.m
    }
}

/// A node at a graph distance from the query; ordered by distance, then id.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Near {
    pub(crate) dist: f32,
    pub(crate) id: u32,
}

impl Eq for Near {}
impl PartialOrd for Near {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Near {
    fn cmp(&self, other: &Self) -> Ordering {
        self.dist
            .total_cmp(&other.dist)
            .then(self.id.cmp(&other.id))
    }
}

/// Where searches start: the node on the highest layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) node: u32,
    pub(crate) level: usize,
}

/// The index. Node ids are `0..len()` in insertion order (the item rows for a built index).
#[derive(Debug)]
pub struct HnswIndex {
    pub(crate) params: HnswParams,
    /// Dimension of the vectors callers pass.
    pub(crate) dim: usize,
    /// Dimension as stored: `dim + 1` for inner product (the reduction's extra coordinate).
    pub(crate) stored_dim: usize,
    /// `M` of the inner-product reduction (0 for other metrics).
    pub(crate) max_norm: f32,
    pub(crate) vectors: Vec<f32>,
    pub(crate) levels: Vec<u8>,
    /// Layer-0 lists, `2m + 1` slots per node: the count, then the ids.
    pub(crate) layer0: Vec<AtomicU32>,
    /// Upper-layer lists per node, `level * (m + 1)` slots (layer 1 first); empty for level 0.
    pub(crate) upper: Vec<Box<[AtomicU32]>>,
    pub(crate) locks: Vec<Mutex<()>>,
    pub(crate) deleted: Vec<bool>,
    pub(crate) n_deleted: usize,
    pub(crate) entry: Mutex<Entry>,
}

/// A zeroed run of list slots.
pub(crate) fn zeroed(len: usize) -> Vec<AtomicU32> {
    (0..len).map(|_| AtomicU32::new(0)).collect()
}

impl HnswIndex {
    /// An empty index for vectors of dimension `dim`; fill it with [`Self::insert`].
    pub fn new(params: HnswParams, dim: usize) -> Result<Self> {
        params.validate()?;
        if dim == 0 {
            return Err(Error::InvalidInput(
                "hnsw: dimension must be positive".into(),
            ));
        }
        let stored_dim = if params.reduces_ip() { dim + 1 } else { dim };
        Ok(Self {
            params,
            dim,
            stored_dim,
            max_norm: 0.0,
            vectors: Vec::new(),
            levels: Vec::new(),
            layer0: Vec::new(),
            upper: Vec::new(),
            locks: Vec::new(),
            deleted: Vec::new(),
            n_deleted: 0,
            entry: Mutex::new(Entry {
                node: NONE,
                level: 0,
            }),
        })
    }

    /// Builds an index over `items` (row-major, `dim` columns; node `i` = row `i`) with
    /// `ctx.threads` threads, reporting progress and honouring `ctx.cancel` between chunks.
    pub fn build(params: HnswParams, dim: usize, items: &[f32], ctx: &FitContext) -> Result<Self> {
        let n = check_matrix("hnsw item matrix", dim, items)?;
        let mut index = Self::new(params, dim)?;
        if params.reduces_ip() {
            index.max_norm = items.chunks_exact(dim).map(norm).fold(0.0, f32::max);
        }
        index.vectors.reserve_exact(n * index.stored_dim);
        for row in items.chunks_exact(dim) {
            let stored = index.to_stored(row);
            index.vectors.extend_from_slice(&stored);
        }
        index.allocate_nodes(n);
        if n == 0 {
            return Ok(index);
        }
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(ctx.threads.max(1))
            .build()
            .map_err(|e| Error::InvalidInput(format!("hnsw: cannot start worker threads: {e}")))?;
        ctx.progress.begin("hnsw build", n as u64);
        index.insert_node(0);
        ctx.progress.advance(1);
        let index_ref = &index;
        for start in (1..n).step_by(BUILD_CHUNK) {
            ctx.cancel.check()?;
            let end = (start + BUILD_CHUNK).min(n);
            if ctx.threads <= 1 {
                (start..end).for_each(|i| index_ref.insert_node(i as u32));
            } else {
                pool.install(|| {
                    (start..end)
                        .into_par_iter()
                        .for_each(|i| index_ref.insert_node(i as u32))
                });
            }
            ctx.progress.advance((end - start) as u64);
        }
        ctx.progress.finish();
        Ok(index)
    }

    /// Number of nodes, deleted ones included (ids are never reused).
    pub fn len(&self) -> usize {
        self.levels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.levels.is_empty()
    }

    /// Nodes not deleted.
    pub fn live_len(&self) -> usize {
        self.len() - self.n_deleted
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    pub fn params(&self) -> &HnswParams {
        &self.params
    }

    /// Sets the default search breadth.
    pub fn set_ef_search(&mut self, ef: usize) {
        self.params.ef_search = ef.max(1);
    }

    pub fn is_deleted(&self, id: u32) -> bool {
        self.deleted.get(id as usize).copied().unwrap_or(false)
    }

    /// Bytes held by vectors, lists, levels, locks and tombstones.
    pub fn memory_bytes(&self) -> usize {
        let upper: usize = self
            .upper
            .iter()
            .map(|b| b.len() * 4 + std::mem::size_of::<Box<[AtomicU32]>>())
            .sum();
        self.vectors.capacity() * 4
            + self.layer0.capacity() * 4
            + upper
            + self.levels.capacity()
            + self.locks.capacity() * std::mem::size_of::<Mutex<()>>()
            + self.deleted.capacity()
    }

    /// Inserts one vector and returns its id.
    pub fn insert(&mut self, vector: &[f32]) -> Result<u32> {
        check_matrix("hnsw insert", self.dim, vector)?;
        if vector.len() != self.dim {
            return Err(Error::InvalidInput(format!(
                "hnsw insert: vector of dimension {} into an index of dimension {}",
                vector.len(),
                self.dim
            )));
        }
        if self.len() >= NONE as usize {
            return Err(Error::InvalidInput("hnsw insert: index is full".into()));
        }
        if self.params.reduces_ip() && self.live_len() == 0 && self.max_norm == 0.0 {
            // First vector of an index created empty: it sets the reduction's norm bound.
            self.max_norm = norm(vector);
        }
        let stored = self.to_stored(vector);
        self.vectors.extend_from_slice(&stored);
        let id = self.len() as u32;
        self.allocate_nodes(1);
        self.insert_node(id);
        Ok(id)
    }

    /// Marks `id` deleted: it is never returned again. True when it was live.
    pub fn delete(&mut self, id: u32) -> Result<bool> {
        match self.deleted.get_mut(id as usize) {
            None => Err(Error::InvalidInput(format!(
                "hnsw delete: no node {id} (the index has {})",
                self.levels.len()
            ))),
            Some(true) => Ok(false),
            Some(flag) => {
                *flag = true;
                self.n_deleted += 1;
                Ok(true)
            }
        }
    }

    /// The vector of node `id` in the caller's space (unit length under cosine).
    pub fn vector(&self, id: u32) -> Option<&[f32]> {
        let start = id as usize * self.stored_dim;
        self.vectors.get(start..start + self.dim)
    }

    /// The `k` best live nodes for `query` that `accept` allows, best first, searching with
    /// breadth `ef` (the default `ef_search` when `None`, and never less than `k`).
    pub fn search(
        &self,
        query: &[f32],
        k: usize,
        ef: Option<usize>,
        accept: &dyn Fn(u32) -> bool,
    ) -> Result<Vec<Scored>> {
        if query.len() != self.dim {
            return Err(Error::InvalidInput(format!(
                "hnsw search: query of dimension {} against an index of dimension {}",
                query.len(),
                self.dim
            )));
        }
        if k == 0 || self.live_len() == 0 {
            return Ok(Vec::new());
        }
        let q = self.prepare_query(query);
        let ef = ef.unwrap_or(self.params.ef_search).max(k);
        let entry = self.entry();
        if entry.node == NONE {
            return Ok(Vec::new());
        }
        let mut current = Near {
            dist: self.distance(&q, entry.node),
            id: entry.node,
        };
        for level in (1..=entry.level).rev() {
            current = self.greedy(&q, current, level);
        }
        let allowed = |id: u32| !self.deleted[id as usize] && accept(id);
        let found = with_visited(self.len(), |visited| {
            self.search_layer(&q, &[current], ef, 0, visited, Some(&allowed))
        });
        Ok(found
            .into_iter()
            .take(k)
            .map(|near| Scored {
                item: near.id,
                score: -near.dist,
            })
            .collect())
    }

    // ----- internals -----

    pub(crate) fn entry(&self) -> Entry {
        *self
            .entry
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn set_entry(&self, entry: Entry) {
        *self
            .entry
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = entry;
    }

    /// The level of node `id`: a geometric draw with ratio `1/m`, a function of (seed, id).
    pub(crate) fn level_of(&self, id: u32) -> usize {
        let bits = mix64(self.params.seed ^ (id as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let uniform = ((bits >> 11) as f64 + 0.5) / (1u64 << 53) as f64; // (0, 1)
        let ml = 1.0 / (self.params.m as f64).ln();
        ((-uniform.ln() * ml) as usize).min(MAX_LEVEL)
    }

    /// Appends list storage for `count` new nodes (their vectors are already stored).
    fn allocate_nodes(&mut self, count: usize) {
        let first = self.levels.len();
        let (m, m0) = (self.params.m, self.params.m0());
        for id in first..first + count {
            let level = self.level_of(id as u32);
            self.levels.push(level as u8);
            self.upper.push(zeroed(level * (m + 1)).into_boxed_slice());
        }
        self.layer0.extend(zeroed(count * (m0 + 1)));
        self.locks.extend((0..count).map(|_| Mutex::new(())));
        self.deleted.extend(std::iter::repeat_n(false, count));
    }

    /// A caller's vector as stored: normalised (cosine) or augmented (inner product).
    fn to_stored(&self, vector: &[f32]) -> Vec<f32> {
        let mut v = vector.to_vec();
        match self.params.metric {
            Metric::Cosine => normalise(&mut v),
            Metric::InnerProduct if self.params.ip_reduction => {
                let sq = dot(vector, vector);
                let bound = self.max_norm * self.max_norm;
                v.push((bound - sq).max(0.0).sqrt());
            }
            Metric::InnerProduct | Metric::L2 => {}
        }
        v
    }

    /// A query as the graph compares it: normalised (cosine) or with a zero extra coordinate.
    fn prepare_query(&self, query: &[f32]) -> Vec<f32> {
        let mut q = query.to_vec();
        match self.params.metric {
            Metric::Cosine => normalise(&mut q),
            Metric::InnerProduct if self.params.ip_reduction => q.push(0.0),
            Metric::InnerProduct | Metric::L2 => {}
        }
        q
    }

    #[inline]
    fn stored(&self, id: u32) -> &[f32] {
        let start = id as usize * self.stored_dim;
        &self.vectors[start..start + self.stored_dim]
    }

    /// Graph distance from a prepared query (or stored vector) to node `id`.
    #[inline]
    pub(crate) fn distance(&self, q: &[f32], id: u32) -> f32 {
        let x = self.stored(id);
        match self.params.metric {
            Metric::L2 => squared_l2(q, x),
            Metric::Cosine | Metric::InnerProduct => -dot(q, x),
        }
    }

    /// The slots of node `id` on `level`: the count, then the ids.
    #[inline]
    pub(crate) fn slots(&self, id: u32, level: usize) -> &[AtomicU32] {
        if level == 0 {
            let width = self.params.m0() + 1;
            &self.layer0[id as usize * width..(id as usize + 1) * width]
        } else {
            let width = self.params.m + 1;
            &self.upper[id as usize][(level - 1) * width..level * width]
        }
    }

    /// Copies the links of `id` on `level` into `out`.
    #[inline]
    pub(crate) fn read_links(&self, id: u32, level: usize, out: &mut Vec<u32>) {
        out.clear();
        let slots = self.slots(id, level);
        let count = (slots[0].load(AtomicOrdering::Relaxed) as usize).min(slots.len() - 1);
        out.extend(
            slots[1..=count]
                .iter()
                .map(|s| s.load(AtomicOrdering::Relaxed)),
        );
    }

    /// Replaces the links of `id` on `level`; the caller holds `id`'s lock (or `&mut self`).
    pub(crate) fn write_links(&self, id: u32, level: usize, links: &[u32]) {
        let slots = self.slots(id, level);
        let count = links.len().min(slots.len() - 1);
        for (slot, &link) in slots[1..=count].iter().zip(links) {
            slot.store(link, AtomicOrdering::Relaxed);
        }
        slots[0].store(count as u32, AtomicOrdering::Release);
    }

    fn lock(&self, id: u32) -> std::sync::MutexGuard<'_, ()> {
        self.locks[id as usize]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Walks `level` greedily from `start` towards `q` (the upper-layer descent).
    fn greedy(&self, q: &[f32], start: Near, level: usize) -> Near {
        let mut best = start;
        let mut links = Vec::with_capacity(self.params.m + 1);
        let mut dists = Vec::with_capacity(self.params.m + 1);
        loop {
            let mut moved = false;
            self.read_links(best.id, level, &mut links);
            self.distances(q, &links, &mut dists);
            for (&nb, &d) in links.iter().zip(&dists) {
                if d < best.dist {
                    best = Near { dist: d, id: nb };
                    moved = true;
                }
            }
            if !moved {
                return best;
            }
        }
    }

    /// Graph distances from `q` to each of `ids` into `out`: the nodes' vectors are asked into
    /// the cache together first, since they are scattered and each one would otherwise be a
    /// separate wait on memory.
    fn distances(&self, q: &[f32], ids: &[u32], out: &mut Vec<f32>) {
        for &id in ids {
            prefetch(self.stored(id));
        }
        out.clear();
        out.resize(ids.len(), 0.0);
        match self.params.metric {
            Metric::L2 => {
                for (o, &id) in out.iter_mut().zip(ids) {
                    *o = squared_l2(q, self.stored(id));
                }
            }
            Metric::Cosine | Metric::InnerProduct => {
                dot_gathered(&self.vectors, self.stored_dim, ids, q, out);
                out.iter_mut().for_each(|d| *d = -*d);
            }
        }
    }

    /// The best `ef` nodes of `level` near `q` reachable from `entries` (Algorithm 2), closest
    /// first. Only nodes `accept` allows enter the result, but all nodes are traversed.
    pub(crate) fn search_layer(
        &self,
        q: &[f32],
        entries: &[Near],
        ef: usize,
        level: usize,
        visited: &mut Visited,
        accept: Option<&dyn Fn(u32) -> bool>,
    ) -> Vec<Near> {
        let allows = |id: u32| accept.is_none_or(|f| f(id));
        let mut candidates: BinaryHeap<Reverse<Near>> = BinaryHeap::with_capacity(ef * 2);
        let mut results: BinaryHeap<Near> = BinaryHeap::with_capacity(ef + 1);
        for &e in entries {
            if visited.insert(e.id) {
                candidates.push(Reverse(e));
                if allows(e.id) {
                    results.push(e);
                }
            }
        }
        while results.len() > ef {
            results.pop();
        }
        let mut links = Vec::with_capacity(self.params.m0());
        let mut fresh = Vec::with_capacity(self.params.m0());
        let mut dists = Vec::with_capacity(self.params.m0());
        while let Some(Reverse(current)) = candidates.pop() {
            if results.len() >= ef && results.peek().is_some_and(|w| current.dist > w.dist) {
                break;
            }
            if let Some(Reverse(next)) = candidates.peek() {
                prefetch(self.slots(next.id, level));
            }
            self.read_links(current.id, level, &mut links);
            fresh.clear();
            fresh.extend(links.iter().copied().filter(|&nb| visited.insert(nb)));
            self.distances(q, &fresh, &mut dists);
            for (&nb, &d) in fresh.iter().zip(&dists) {
                let worst = results.peek().map_or(f32::INFINITY, |w| w.dist);
                if results.len() < ef || d < worst {
                    let near = Near { dist: d, id: nb };
                    candidates.push(Reverse(near));
                    if allows(nb) {
                        results.push(near);
                        if results.len() > ef {
                            results.pop();
                        }
                    }
                }
            }
        }
        results.into_sorted_vec()
    }

    /// The neighbour-selection heuristic (Algorithm 4): walking candidates from the closest,
    /// keep one only when it is closer to the base than to every one already kept, so links
    /// spread over directions instead of piling into one cluster. `sorted` is closest first.
    pub(crate) fn select_neighbours(&self, sorted: &[Near], m: usize) -> Vec<u32> {
        let mut kept: Vec<Near> = Vec::with_capacity(m);
        for cand in sorted {
            if kept.len() >= m {
                break;
            }
            let x = self.stored(cand.id);
            let diverse = kept.iter().all(|s| self.distance(x, s.id) > cand.dist);
            if diverse {
                kept.push(*cand);
            }
        }
        kept.into_iter().map(|n| n.id).collect()
    }

    /// Links an allocated node into the graph (Algorithm 1). Safe to call from many threads.
    pub(crate) fn insert_node(&self, id: u32) {
        let level = self.levels[id as usize] as usize;
        let q = self.stored(id).to_vec();
        let entry = {
            let mut guard = self.entry.lock().unwrap_or_else(|p| p.into_inner());
            if guard.node == NONE {
                *guard = Entry { node: id, level };
                return;
            }
            *guard
        };
        let mut current = Near {
            dist: self.distance(&q, entry.node),
            id: entry.node,
        };
        for l in (level + 1..=entry.level).rev() {
            current = self.greedy(&q, current, l);
        }
        let mut entries = vec![current];
        let mut links = Vec::new();
        for l in (0..=level.min(entry.level)).rev() {
            let found = with_visited(self.len(), |visited| {
                self.search_layer(&q, &entries, self.params.ef_construction, l, visited, None)
            });
            let found: Vec<Near> = found.into_iter().filter(|n| n.id != id).collect();
            let chosen = self.select_neighbours(&found, self.params.m);
            {
                let _guard = self.lock(id);
                self.write_links(id, l, &chosen);
            }
            let cap = if l == 0 {
                self.params.m0()
            } else {
                self.params.m
            };
            for &nb in &chosen {
                let _guard = self.lock(nb);
                self.read_links(nb, l, &mut links);
                if links.contains(&id) {
                    continue;
                }
                if links.len() < cap {
                    links.push(id);
                    self.write_links(nb, l, &links);
                } else {
                    let base = self.stored(nb);
                    let mut cands: Vec<Near> = links
                        .iter()
                        .chain(std::iter::once(&id))
                        .map(|&c| Near {
                            dist: self.distance(base, c),
                            id: c,
                        })
                        .collect();
                    cands.sort_unstable();
                    let pruned = self.select_neighbours(&cands, cap);
                    self.write_links(nb, l, &pruned);
                }
            }
            if !found.is_empty() {
                entries = found;
            }
        }
        if level > entry.level {
            let mut guard = self.entry.lock().unwrap_or_else(|p| p.into_inner());
            if level > guard.level || guard.node == NONE {
                *guard = Entry { node: id, level };
            }
        }
    }

    /// Reconnects live nodes around deleted ones and unlinks the deleted (see the module doc).
    /// Searches afterwards never pass through deleted nodes.
    pub fn repair(&mut self) {
        if self.n_deleted == 0 {
            return;
        }
        let this = &*self;
        let n = this.len() as u32;
        let top = this.levels.iter().copied().max().unwrap_or(0) as usize;
        for level in 0..=top {
            let cap = if level == 0 {
                this.params.m0()
            } else {
                this.params.m
            };
            (0..n).into_par_iter().for_each(|u| {
                if this.deleted[u as usize] || (this.levels[u as usize] as usize) < level {
                    return;
                }
                let mut links = Vec::new();
                this.read_links(u, level, &mut links);
                if !links.iter().any(|&v| this.deleted[v as usize]) {
                    return;
                }
                let mut pool: Vec<u32> = Vec::new();
                let mut second = Vec::new();
                for &v in &links {
                    if this.deleted[v as usize] {
                        this.read_links(v, level, &mut second);
                        pool.extend(
                            second
                                .iter()
                                .copied()
                                .filter(|&w| w != u && !this.deleted[w as usize]),
                        );
                    } else {
                        pool.push(v);
                    }
                }
                pool.sort_unstable();
                pool.dedup();
                let base = this.stored(u);
                let mut cands: Vec<Near> = pool
                    .into_iter()
                    .map(|c| Near {
                        dist: this.distance(base, c),
                        id: c,
                    })
                    .collect();
                cands.sort_unstable();
                let kept = this.select_neighbours(&cands, cap);
                this.write_links(u, level, &kept);
            });
        }
        for id in 0..n {
            if self.deleted[id as usize] {
                for level in 0..=self.levels[id as usize] as usize {
                    self.write_links(id, level, &[]);
                }
            }
        }
        let entry = self.entry();
        if entry.node != NONE && self.deleted[entry.node as usize] {
            let replacement = (0..n)
                .filter(|&id| !self.deleted[id as usize])
                .max_by_key(|&id| (self.levels[id as usize], Reverse(id)));
            self.set_entry(match replacement {
                Some(id) => Entry {
                    node: id,
                    level: self.levels[id as usize] as usize,
                },
                None => Entry {
                    node: NONE,
                    level: 0,
                },
            });
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::retrieval::exact::ExactIndex;
    use kindred_core::SplitMix64;

    /// Clustered Gaussian data: `clusters` centres, points around them, non-uniform norms.
    pub(crate) fn clustered(n: usize, dim: usize, clusters: usize, seed: u64) -> Vec<f32> {
        let mut rng = SplitMix64::new(seed);
        let centres: Vec<f32> = (0..clusters * dim).map(|_| rng.normal() as f32).collect();
        let mut out = Vec::with_capacity(n * dim);
        for _ in 0..n {
            let c = rng.below(clusters as u64) as usize;
            let scale = 0.5 + rng.next_f64() as f32;
            for j in 0..dim {
                out.push(scale * (centres[c * dim + j] + 0.4 * rng.normal() as f32));
            }
        }
        out
    }

    pub(crate) fn recall(
        index: &HnswIndex,
        exact: &ExactIndex,
        queries: &[f32],
        k: usize,
        ef: usize,
    ) -> f64 {
        let dim = exact.dim();
        let mut hits = 0usize;
        let mut total = 0usize;
        for q in queries.chunks_exact(dim) {
            let want = exact.search(q, k, |_| false).unwrap();
            let got = index.search(q, k, Some(ef), &|_| true).unwrap();
            total += want.len();
            hits += want
                .iter()
                .filter(|w| got.iter().any(|g| g.item == w.item))
                .count();
        }
        hits as f64 / total.max(1) as f64
    }

    fn ctx(threads: usize) -> FitContext {
        FitContext {
            threads,
            ..FitContext::with_seed(7)
        }
    }

    #[test]
    fn recall_against_exact_for_every_metric() {
        let (n, dim) = (3000, 16);
        let items = clustered(n, dim, 20, 1);
        let queries = clustered(100, dim, 20, 2);
        let cases = [
            (Metric::Cosine, false),
            (Metric::InnerProduct, false),
            (Metric::InnerProduct, true),
            (Metric::L2, false),
        ];
        for (metric, ip_reduction) in cases {
            let params = HnswParams {
                metric,
                ip_reduction,
                ..HnswParams::default()
            };
            let index = HnswIndex::build(params, dim, &items, &ctx(2)).unwrap();
            let exact = ExactIndex::new(metric, dim, &items).unwrap();
            // Reduced MIPS queries sit off the sphere the augmented items lie on, so they need a
            // wider search for the same recall (measured here: about 0.88 at ef 64). Raw inner
            // product sits right at 0.95 at ef 64 (0.949-0.960 over runs: a two-thread build's
            // graph depends on thread interleaving), so it gets a margin too.
            let ef = match (metric, ip_reduction) {
                (_, true) => 200,
                (Metric::InnerProduct, false) => 100,
                _ => 64,
            };
            let r = recall(&index, &exact, &queries, 10, ef);
            eprintln!("{metric:?} (reduction {ip_reduction}) recall@10 at ef {ef}: {r}");
            assert!(
                r >= 0.95,
                "{metric:?} (reduction {ip_reduction}): recall@10 {r}"
            );
            // Scores are the metric's exact scores.
            let q = &queries[..dim];
            for s in index.search(q, 5, None, &|_| true).unwrap() {
                let want = exact.search(q, n, |i| i != s.item).unwrap()[0].score;
                assert!(
                    (s.score - want).abs() <= 1e-4 * want.abs().max(1.0),
                    "{metric:?}"
                );
            }
        }
    }

    #[test]
    fn single_thread_build_is_deterministic() {
        let items = clustered(800, 8, 5, 3);
        let params = HnswParams::default();
        let a = HnswIndex::build(params, 8, &items, &ctx(1)).unwrap();
        let b = HnswIndex::build(params, 8, &items, &ctx(1)).unwrap();
        let q = &items[..8];
        assert_eq!(
            a.search(q, 10, None, &|_| true).unwrap(),
            b.search(q, 10, None, &|_| true).unwrap()
        );
        let lists = |x: &HnswIndex| -> Vec<u32> {
            x.layer0
                .iter()
                .map(|s| s.load(AtomicOrdering::Relaxed))
                .collect()
        };
        assert_eq!(lists(&a), lists(&b));
    }

    #[test]
    fn insert_then_find_and_filters() {
        let dim = 8;
        let items = clustered(500, dim, 5, 4);
        let params = HnswParams {
            metric: Metric::L2,
            ..HnswParams::default()
        };
        let mut index = HnswIndex::new(params, dim).unwrap();
        for row in items.chunks_exact(dim) {
            index.insert(row).unwrap();
        }
        let far: Vec<f32> = vec![50.0; dim];
        let id = index.insert(&far).unwrap();
        assert_eq!(id, 500);
        let top = index.search(&far, 1, None, &|_| true).unwrap();
        assert_eq!(top[0].item, id);
        assert_eq!(top[0].score, 0.0);
        // Every inserted vector finds itself.
        let found = items
            .chunks_exact(dim)
            .enumerate()
            .filter(|(i, row)| index.search(row, 1, None, &|_| true).unwrap()[0].item == *i as u32)
            .count();
        assert!(found >= 495, "{found}");
        // The filter is honoured: only even ids.
        let even = index
            .search(&items[..dim], 10, None, &|i| i.is_multiple_of(2))
            .unwrap();
        assert_eq!(even.len(), 10);
        assert!(even.iter().all(|s| s.item.is_multiple_of(2)));
        assert!(index.insert(&[1.0]).is_err());
        assert!(index.insert(&vec![f32::NAN; dim]).is_err());
        assert!(index.search(&[1.0], 1, None, &|_| true).is_err());
    }

    #[test]
    fn deleted_nodes_are_never_returned_and_repair_keeps_recall() {
        let (n, dim) = (2000, 12);
        let items = clustered(n, dim, 10, 5);
        let queries = clustered(50, dim, 10, 6);
        let mut index = HnswIndex::build(HnswParams::default(), dim, &items, &ctx(2)).unwrap();
        let gone = |i: u32| i.is_multiple_of(3);
        for id in (0..n as u32).filter(|&i| gone(i)) {
            assert!(index.delete(id).unwrap());
        }
        assert!(!index.delete(0).unwrap());
        assert!(index.delete(n as u32).is_err());
        let live: Vec<f32> = items
            .chunks_exact(dim)
            .enumerate()
            .flat_map(|(i, r)| {
                if gone(i as u32) {
                    Vec::new()
                } else {
                    r.to_vec()
                }
            })
            .collect();
        let live_ids: Vec<u32> = (0..n as u32).filter(|&i| !gone(i)).collect();
        let exact = ExactIndex::new(Metric::Cosine, dim, &live).unwrap();
        let check = |index: &HnswIndex| {
            let mut hits = 0;
            for q in queries.chunks_exact(dim) {
                let got = index.search(q, 10, Some(64), &|_| true).unwrap();
                assert_eq!(got.len(), 10);
                assert!(got.iter().all(|s| !gone(s.item)));
                let want = exact.search(q, 10, |_| false).unwrap();
                hits += want
                    .iter()
                    .filter(|w| got.iter().any(|g| g.item == live_ids[w.item as usize]))
                    .count();
            }
            hits as f64 / (10 * queries.len() / dim) as f64
        };
        let before = check(&index);
        index.repair();
        let after = check(&index);
        assert!(
            before >= 0.9 && after >= 0.9,
            "recall before {before} after {after}"
        );
        // After repair no live node links to a deleted one.
        let mut links = Vec::new();
        for u in (0..n as u32).filter(|&i| !gone(i)) {
            index.read_links(u, 0, &mut links);
            assert!(links.iter().all(|&v| !gone(v)));
        }
        // Delete everything: searches return nothing rather than failing.
        for id in 0..n as u32 {
            index.delete(id).unwrap();
        }
        index.repair();
        assert!(index
            .search(&queries[..dim], 5, None, &|_| true)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn cancelled_build_stops() {
        let items = clustered(10_000, 4, 3, 9);
        let context = ctx(1);
        context.cancel.cancel();
        let err = HnswIndex::build(HnswParams::default(), 4, &items, &context).unwrap_err();
        assert!(matches!(err, Error::Cancelled));
        assert!(HnswIndex::new(
            HnswParams {
                m: 1,
                ..HnswParams::default()
            },
            4
        )
        .is_err());
    }
}
