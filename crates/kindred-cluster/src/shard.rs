//! Reading a job's input shards and giving every user and item the dense index a single-node
//! run would give it, without any process seeing all ids.
//!
//! A single-node import of the shards concatenated in order numbers users and items by first
//! appearance. The distributed equivalent, in six exchange rounds:
//!
//! 1. every worker reads the shards `s` with `s % workers == worker` (with the same importer as
//!    `parquet:FILE`) and sends each distinct id, with the position of its first row
//!    (`shard << 40 | row`), to the id's *hash owner*;
//! 2. the hash owner keeps the smallest position per id and forwards it to the *position owner*
//!    of that shard (`shard % workers`);
//! 3. position owners count first appearances per shard and all-gather the counts, so everyone
//!    knows where each shard's new ids start in the global numbering;
//! 4. position owners rank the first appearances within each shard and return the global index
//!    to the hash owner;
//! 5. the hash owner sends (id, index) to every worker that read the id, and (index, id) to the
//!    *index owner* (`index % workers`);
//! 6. readers translate their rows and send each interaction to the owner of its user and to the
//!    owner of its item.
//!
//! Each worker ends with the rows of the users and items it owns (index `% workers == worker`),
//! duplicates of a pair merged by summing their weights in row order, as `TrainSet` does.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use kindred_core::rng::{mix64, stable_hash};
use kindred_core::Interactions;
use kindred_data::import::ImportOptions;
use kindred_data::parquet::{load_parquet, write_parquet};

use crate::error::{Error, Result};
use crate::runtime::Exchanger;
use crate::wire::Reader;

/// Bits of a row position that hold the row within its shard.
const ROW_BITS: u32 = 40;
const USER: u8 = 0;
const ITEM: u8 = 1;

/// One side (users or items) of this worker's share: the rows it owns.
#[derive(Debug, Clone, Default)]
pub struct OwnedRows {
    /// External id of each owned row; local row `l` is global index `l * workers + worker`.
    pub ids: Vec<String>,
    /// CSR over owned rows: the other side's global indices, ascending, and summed weights.
    pub indptr: Vec<usize>,
    pub other: Vec<u32>,
    pub weights: Vec<f32>,
}

impl OwnedRows {
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Row `l`: (other global indices, weights).
    pub fn row(&self, l: usize) -> (&[u32], &[f32]) {
        let r = self.indptr[l]..self.indptr[l + 1];
        (&self.other[r.clone()], &self.weights[r])
    }
}

/// This worker's share of the input.
#[derive(Debug, Clone, Default)]
pub struct Sharded {
    pub n_users: usize,
    pub n_items: usize,
    /// Interaction rows read by all workers.
    pub rows: u64,
    pub users: OwnedRows,
    pub items: OwnedRows,
}

/// The global index of local row `local` on `worker` of `workers`.
pub fn global_index(local: usize, worker: usize, workers: usize) -> usize {
    local * workers + worker
}

/// The global indices below `total` that `worker` of `workers` owns, ascending.
pub fn owned_indices(total: usize, worker: usize, workers: usize) -> impl Iterator<Item = usize> {
    (worker..total).step_by(workers.max(1))
}

/// How many of `n` indices `worker` owns.
pub fn owned_count(n: usize, worker: usize, workers: usize) -> usize {
    if worker >= n {
        0
    } else {
        (n - worker).div_ceil(workers.max(1))
    }
}

/// The hash owner of an id is the same in every process: users and items hash apart.
fn id_hash(kind: u8, id: &str) -> u64 {
    stable_hash(id.as_bytes()) ^ mix64(kind as u64 + 1)
}

/// Writes `log` as `shards` ordered Parquet files `dir/shard-NNNNN.parquet` of contiguous rows
/// (their concatenation is `log`): the input of a cluster job. Returns the paths in order.
pub fn write_shards(log: &Interactions, dir: &Path, shards: usize) -> Result<Vec<PathBuf>> {
    if shards == 0 {
        return Err(Error::Config("at least one shard is needed".into()));
    }
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let n = log.len();
    (0..shards)
        .map(|k| {
            let rows: Vec<u32> = ((k * n / shards) as u32..((k + 1) * n / shards) as u32).collect();
            let path = dir.join(format!("shard-{k:05}.parquet"));
            write_parquet(&log.subset(&rows), &path)?;
            Ok(path)
        })
        .collect()
}

/// One shard as read by its worker.
struct ReadShard {
    shard: usize,
    user_ids: Vec<String>,
    item_ids: Vec<String>,
    users: Vec<u32>,
    items: Vec<u32>,
    weights: Vec<f32>,
}

/// An id's state at its hash owner.
struct OwnedId {
    kind: u8,
    id: String,
    first: u64,
    readers: Vec<u32>,
    global: u32,
}

/// Reads `inputs` across the job's workers and returns this worker's share.
pub fn load(ex: &mut Exchanger<'_>, inputs: &[PathBuf], opts: &ImportOptions) -> Result<Sharded> {
    let (me, p) = (ex.index(), ex.peers());
    if inputs.len() >= 1 << (64 - ROW_BITS) {
        return Err(Error::Config(format!(
            "{} input files is too many",
            inputs.len()
        )));
    }
    let mut shards = Vec::new();
    for (shard, path) in inputs.iter().enumerate().filter(|(s, _)| s % p == me) {
        let (dataset, _) = load_parquet(path, opts)?;
        let log = &dataset.interactions;
        if log.len() as u64 >= 1 << ROW_BITS {
            return Err(Error::Config(format!(
                "{}: {} rows is more than one shard may hold (2^40)",
                path.display(),
                log.len()
            )));
        }
        shards.push(ReadShard {
            shard,
            user_ids: log.user_ids().externals().to_vec(),
            item_ids: log.item_ids().externals().to_vec(),
            users: log.users().to_vec(),
            items: log.items().to_vec(),
            weights: log.weights().to_vec(),
        });
    }

    // Round 1: distinct ids with their first position to their hash owners. Ids are interned by
    // first appearance, so the first row of local id `k` comes before that of `k + 1`.
    let mut outbox = ex.outbox();
    for s in &shards {
        for (kind, ids, column) in [(USER, &s.user_ids, &s.users), (ITEM, &s.item_ids, &s.items)] {
            let mut first = vec![u64::MAX; ids.len()];
            for (row, &k) in column.iter().enumerate() {
                let slot = &mut first[k as usize];
                if *slot == u64::MAX {
                    *slot = ((s.shard as u64) << ROW_BITS) | row as u64;
                }
            }
            for (id, pos) in ids.iter().zip(first) {
                let w = outbox.to((id_hash(kind, id) % p as u64) as usize);
                w.u8(kind);
                w.str(id);
                w.u64(pos);
            }
        }
    }
    let mut owned: Vec<OwnedId> = Vec::new();
    let mut lookup: HashMap<(u8, String), usize> = HashMap::new();
    for msg in ex.exchange(outbox)? {
        let mut r = Reader::new(&msg.bytes, msg.from);
        while !r.is_empty() {
            let kind = r.u8()?;
            let id = r.str()?;
            let pos = r.u64()?;
            match lookup.get(&(kind, id.to_owned())) {
                Some(&i) => {
                    let entry = &mut owned[i];
                    entry.first = entry.first.min(pos);
                    if entry.readers.last() != Some(&(msg.from as u32)) {
                        entry.readers.push(msg.from as u32);
                    }
                }
                None => {
                    lookup.insert((kind, id.to_owned()), owned.len());
                    owned.push(OwnedId {
                        kind,
                        id: id.to_owned(),
                        first: pos,
                        readers: vec![msg.from as u32],
                        global: u32::MAX,
                    });
                }
            }
        }
    }
    drop(lookup);

    // Round 2: first positions to the position owner of their shard.
    let mut outbox = ex.outbox();
    for (slot, entry) in owned.iter().enumerate() {
        let shard = (entry.first >> ROW_BITS) as usize;
        let w = outbox.to(shard % p);
        w.u8(entry.kind);
        w.u64(entry.first);
        w.u32(slot as u32);
    }
    // (kind, position, hash owner, slot there)
    let mut firsts: Vec<(u8, u64, u32, u32)> = Vec::new();
    for msg in ex.exchange(outbox)? {
        let mut r = Reader::new(&msg.bytes, msg.from);
        while !r.is_empty() {
            firsts.push((r.u8()?, r.u64()?, msg.from as u32, r.u32()?));
        }
    }
    firsts.sort_unstable();

    // Round 3: counts of first appearances per (kind, shard), to everyone.
    let mut counts: Vec<(u8, u64, u64)> = Vec::new();
    for &(kind, pos, _, _) in &firsts {
        let shard = pos >> ROW_BITS;
        match counts.last_mut() {
            Some((k, s, c)) if *k == kind && *s == shard => *c += 1,
            _ => counts.push((kind, shard, 1)),
        }
    }
    let n_shards = inputs.len();
    let mut per_shard = [vec![0u64; n_shards], vec![0u64; n_shards]];
    for msg in ex.all_gather(|w| {
        for &(kind, shard, count) in &counts {
            w.u8(kind);
            w.u64(shard);
            w.u64(count);
        }
    })? {
        let mut r = Reader::new(&msg.bytes, msg.from);
        while !r.is_empty() {
            let (kind, shard, count) = (r.u8()?, r.u64()? as usize, r.u64()?);
            if kind > ITEM || shard >= n_shards {
                return Err(Error::Wire {
                    from: msg.from,
                    message: format!("count for kind {kind} shard {shard}"),
                });
            }
            per_shard[kind as usize][shard] = count;
        }
    }
    let totals = [
        per_shard[0].iter().sum::<u64>(),
        per_shard[1].iter().sum::<u64>(),
    ];
    for (kind, total) in totals.iter().enumerate() {
        if *total >= u32::MAX as u64 {
            return Err(Error::Config(format!(
                "{total} distinct {} ids: indices are 32-bit",
                if kind == 0 { "user" } else { "item" }
            )));
        }
    }
    let base: Vec<Vec<u64>> = per_shard
        .iter()
        .map(|counts| {
            counts
                .iter()
                .scan(0u64, |acc, c| {
                    let start = *acc;
                    *acc += c;
                    Some(start)
                })
                .collect()
        })
        .collect();

    // Round 4: global indices back to the hash owners. `firsts` is sorted by (kind, position),
    // so the rank within a shard is the count of earlier entries of that shard.
    let mut outbox = ex.outbox();
    let mut rank_in_shard = 0u64;
    let mut current: Option<(u8, u64)> = None;
    for &(kind, pos, owner, slot) in &firsts {
        let shard = pos >> ROW_BITS;
        if current != Some((kind, shard)) {
            current = Some((kind, shard));
            rank_in_shard = 0;
        }
        let global = base[kind as usize][shard as usize] + rank_in_shard;
        rank_in_shard += 1;
        let w = outbox.to(owner as usize);
        w.u32(slot);
        w.u32(global as u32);
    }
    drop(firsts);
    for msg in ex.exchange(outbox)? {
        let mut r = Reader::new(&msg.bytes, msg.from);
        while !r.is_empty() {
            let (slot, global) = (r.u32()? as usize, r.u32()?);
            let entry = owned.get_mut(slot).ok_or_else(|| Error::Wire {
                from: msg.from,
                message: format!("index for unknown slot {slot}"),
            })?;
            entry.global = global;
        }
    }

    // Round 5: (id, index) to the readers, (index, id) to the index owner.
    let mut outbox = ex.outbox();
    for entry in &owned {
        for &reader in &entry.readers {
            let w = outbox.to(reader as usize);
            w.u8(entry.kind);
            w.str(&entry.id);
            w.u32(entry.global);
        }
        let w = outbox.to(entry.global as usize % p);
        w.u8(entry.kind | 2);
        w.str(&entry.id);
        w.u32(entry.global);
    }
    drop(owned);
    let mut index_of: [HashMap<String, u32>; 2] = [HashMap::new(), HashMap::new()];
    let n = [totals[0] as usize, totals[1] as usize];
    let mut own_ids: [Vec<String>; 2] = [
        vec![String::new(); owned_count(n[0], me, p)],
        vec![String::new(); owned_count(n[1], me, p)],
    ];
    for msg in ex.exchange(outbox)? {
        let mut r = Reader::new(&msg.bytes, msg.from);
        while !r.is_empty() {
            let (tag, id, global) = (r.u8()?, r.str()?, r.u32()?);
            let kind = (tag & 1) as usize;
            if tag & 2 == 0 {
                index_of[kind].insert(id.to_owned(), global);
            } else {
                let slot =
                    own_ids[kind]
                        .get_mut(global as usize / p)
                        .ok_or_else(|| Error::Wire {
                            from: msg.from,
                            message: format!("id for index {global} beyond {}", n[kind]),
                        })?;
                *slot = id.to_owned();
            }
        }
    }

    // Round 6: every interaction to the owner of its user and the owner of its item.
    let mut outbox = ex.outbox();
    let mut rows = 0u64;
    for s in &shards {
        let translate = |ids: &[String], kind: usize| -> Result<Vec<u32>> {
            ids.iter()
                .map(|id| {
                    index_of[kind].get(id).copied().ok_or_else(|| {
                        Error::Config(format!("no index arrived for id {id:?} (a bug)"))
                    })
                })
                .collect()
        };
        let user_global = translate(&s.user_ids, 0)?;
        let item_global = translate(&s.item_ids, 1)?;
        for (row, ((&u, &i), &weight)) in s.users.iter().zip(&s.items).zip(&s.weights).enumerate() {
            let (u, i) = (user_global[u as usize], item_global[i as usize]);
            let pos = ((s.shard as u64) << ROW_BITS) | row as u64;
            for (tag, owner) in [(USER, u as usize % p), (ITEM, i as usize % p)] {
                let w = outbox.to(owner);
                w.u8(tag);
                w.u32(u);
                w.u32(i);
                w.f32(weight);
                w.u64(pos);
            }
        }
        rows += s.users.len() as u64;
    }
    drop(shards);
    drop(index_of);
    // (row index, other index, position, weight)
    let mut by_user: Vec<(u32, u32, u64, f32)> = Vec::new();
    let mut by_item: Vec<(u32, u32, u64, f32)> = Vec::new();
    for msg in ex.exchange(outbox)? {
        let mut r = Reader::new(&msg.bytes, msg.from);
        while !r.is_empty() {
            let (tag, u, i, weight, pos) = (r.u8()?, r.u32()?, r.u32()?, r.f32()?, r.u64()?);
            if tag == USER {
                by_user.push((u, i, pos, weight));
            } else {
                by_item.push((i, u, pos, weight));
            }
        }
    }
    let rows_total: u64 = ex.gather_u64(rows)?.iter().sum();
    let [user_ids, item_ids] = own_ids;
    Ok(Sharded {
        n_users: n[0],
        n_items: n[1],
        rows: rows_total,
        users: owned_rows(by_user, user_ids, me, p),
        items: owned_rows(by_item, item_ids, me, p),
    })
}

/// CSR rows from (row global, other global, position, weight) records; repeated pairs merged by
/// summing their weights in position order.
fn owned_rows(
    mut records: Vec<(u32, u32, u64, f32)>,
    ids: Vec<String>,
    me: usize,
    p: usize,
) -> OwnedRows {
    records.sort_unstable_by_key(|&(row, other, pos, _)| (row, other, pos));
    let mut out = OwnedRows {
        indptr: Vec::with_capacity(ids.len() + 1),
        other: Vec::with_capacity(records.len()),
        weights: Vec::with_capacity(records.len()),
        ids,
    };
    let mut last: Option<(u32, u32)> = None;
    for (row, other, _, weight) in records {
        debug_assert_eq!(row as usize % p, me);
        let local = row as usize / p;
        while out.indptr.len() <= local {
            out.indptr.push(out.other.len());
        }
        if last == Some((row, other)) {
            if let Some(w) = out.weights.last_mut() {
                *w += weight;
            }
        } else {
            out.other.push(other);
            out.weights.push(weight);
        }
        last = Some((row, other));
    }
    while out.indptr.len() < out.ids.len() + 1 {
        out.indptr.push(out.other.len());
    }
    out
}
