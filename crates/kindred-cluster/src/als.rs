//! Distributed implicit ALS: the single-node fit (`kindred_models::implicit::als`) spread over workers.
//!
//! Users and items are sharded by global index (`index % workers`, see [`crate::shard`]); each
//! worker holds its users' rows and its items' rows and their factors. A half-iteration that
//! re-solves the users:
//!
//! 1. every item owner sends each worker the factors of the items that worker's users touch
//!    (the lists are agreed once, after loading; f32 for the conjugate-gradient solver, which
//!    reads nothing else, f64 for the exact one), plus its partial `YtY` over its own items;
//! 2. every worker sums the partial Grams in worker order, lays the received factors out in
//!    owner order, and solves its users with `kindred_models::implicit::als::solve_rows`, the kernel of the
//!    single-node fit.
//!
//! The items' half is the mirror image. Initial factors are the single-node fit's (the same
//! seeded draw for the same global index), so the only difference from a single-node run is
//! the order in which the Gram matrix's partial sums are added (`1e-12`-relative per
//! half-iteration). Every worker solves on one thread by default, so that the worker count is
//! the parallelism. After each iteration every worker checkpoints its rows ([`crate::checkpoint`]).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use kindred_data::import::ImportOptions;
use kindred_models::implicit::als::{
    gram, initial_value, solve_rows, AlsParams, ConfidenceRows, FixedRows, Solver,
};
use serde::{Deserialize, Serialize};

use kindred_core::{CsMatrix, FitContext};

use crate::checkpoint::{Checkpoints, Part};
use crate::error::{Error, Result};
use crate::factors::write_factors;
use crate::item_filter::allowed_items;
use crate::runtime::{run, ExchangeStats, Exchanger};
use crate::shard::{self, global_index, OwnedRows, Sharded};
use crate::topk::{distributed_top_k, BatchSettings, WorkerShard};
use crate::topology::Topology;
use crate::wire::Reader;

/// What to train and where to write it.
#[derive(Debug, Clone)]
pub struct AlsJob {
    /// Parquet shards in order (their concatenation is the data set).
    pub inputs: Vec<PathBuf>,
    pub import: ImportOptions,
    pub params: AlsParams,
    /// Seed of the initial factors when `params.seed` is unset (as `kindred train --seed`).
    pub seed: u64,
    /// Per-iteration checkpoints; a restarted job resumes from the newest complete one.
    pub checkpoint_dir: Option<PathBuf>,
    /// Where the factors (`user_factors/`, `item_factors/`) and `summary.json` go.
    pub out_dir: Option<PathBuf>,
    /// Threads each worker solves its rows with.
    pub threads_per_worker: usize,
    /// Lists to compute from the final factors, written under `out_dir`.
    pub lists: Option<ListsJob>,
}

/// Batch lists after training: every user's top-K (seen items and the rank config's hard item
/// filters excluded) in `OUT/topk/`, every item's nearest neighbours in `OUT/neighbours/`.
#[derive(Debug, Clone)]
pub struct ListsJob {
    pub settings: BatchSettings,
    /// A rank config whose hard `[filters]` every list obeys.
    pub rank_config: Option<PathBuf>,
    /// Item features (JSON Lines) for the rank config's columns.
    pub item_features: Option<PathBuf>,
    /// Unix seconds the availability windows are evaluated at.
    pub now: i64,
}

/// One iteration, job-wide.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IterationReport {
    /// 1-based.
    pub iteration: usize,
    /// Wall seconds of both half-iterations (exchange and solve; checkpointing not included).
    pub seconds: f64,
    /// Seconds writing the checkpoint.
    pub checkpoint_seconds: f64,
    /// Payload bytes all workers sent to other workers during the two halves.
    pub bytes_to_workers: u64,
    /// Of those, bytes between processes.
    pub bytes_to_processes: u64,
}

/// What a job did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AlsSummary {
    /// The parameters trained with (`seed` set to the seed used).
    pub params: AlsParams,
    pub processes: usize,
    pub workers: usize,
    pub users: usize,
    pub items: usize,
    /// Input rows (events) and distinct (user, item) pairs.
    pub rows: u64,
    pub pairs: u64,
    pub factors: usize,
    /// Iterations already done by an earlier run whose checkpoint this run resumed from.
    pub resumed_from: usize,
    pub load_seconds: f64,
    pub load_bytes_to_workers: u64,
    /// Bytes sent once to agree which factors each worker needs.
    pub setup_bytes_to_workers: u64,
    /// Batch lists written, when asked for: (user list rows, neighbour rows, seconds).
    #[serde(default)]
    pub lists: Option<ListsReport>,
    /// How many users (items) have each number of distinct items (users): (degree, count),
    /// ascending by degree; the input of the scaling model's traffic estimate.
    pub user_degrees: Vec<(u32, u64)>,
    pub item_degrees: Vec<(u32, u64)>,
    pub iterations: Vec<IterationReport>,
}

/// Job-wide histogram of the row lengths of every worker's `rows`.
fn degree_histogram(ex: &mut Exchanger<'_>, rows: &OwnedRows) -> Result<Vec<(u32, u64)>> {
    let mut local: BTreeMap<u32, u64> = BTreeMap::new();
    for l in 0..rows.len() {
        *local
            .entry((rows.indptr[l + 1] - rows.indptr[l]) as u32)
            .or_default() += 1;
    }
    let mut total: BTreeMap<u32, u64> = BTreeMap::new();
    for msg in ex.all_gather(|w| {
        for (&degree, &count) in &local {
            w.u32(degree);
            w.u64(count);
        }
    })? {
        let mut r = Reader::new(&msg.bytes, msg.from);
        while !r.is_empty() {
            let degree = r.u32()?;
            *total.entry(degree).or_default() += r.u64()?;
        }
    }
    Ok(total.into_iter().collect())
}

/// What the batch lists cost.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ListsReport {
    pub user_rows: u64,
    pub neighbour_rows: u64,
    pub seconds: f64,
    pub bytes_to_workers: u64,
}

/// Called on the first worker of each process after every iteration.
pub type OnIteration = Arc<dyn Fn(&IterationReport) + Send + Sync>;

/// A stable fingerprint of the job: inputs (path, size, modification time), parameters, seed
/// and worker count. Processes of one job must agree on it; checkpoints carry it.
pub fn fingerprint(job: &AlsJob, workers: usize) -> u64 {
    let mut text = format!(
        "als|{}|{}|{workers}|",
        serde_json::to_string(&job.params).unwrap_or_default(),
        job.params.seed.unwrap_or(job.seed)
    );
    for path in &job.inputs {
        let meta = std::fs::metadata(path).ok();
        let modified = meta
            .as_ref()
            .and_then(|m| m.modified().ok())
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        text.push_str(&format!(
            "{}|{}|{modified}|",
            path.display(),
            meta.map(|m| m.len()).unwrap_or(0)
        ));
    }
    kindred_core::rng::stable_hash(text.as_bytes())
}

/// Runs the job on this process's workers (the other processes of `topology` run the same
/// call) and returns the job-wide summary.
pub fn run_als(topology: &Topology, job: AlsJob, on_iteration: OnIteration) -> Result<AlsSummary> {
    job.params.validate()?;
    if job.inputs.is_empty() {
        return Err(Error::Config("no input files".into()));
    }
    let workers = topology.total_workers();
    let print = fingerprint(&job, workers);
    let job = Arc::new(job);
    let mut results = run(topology, print, move |ex| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(job.threads_per_worker.max(1))
            .build()
            .map_err(|e| Error::Config(format!("worker thread pool: {e}")))?;
        let local_lead = ex.index() % ex.workers_per_process() == 0;
        worker_als(ex, &job, print, &pool, |report| {
            if local_lead {
                on_iteration(report)
            }
        })
    })?;
    Ok(results.swap_remove(0))
}

/// One half-iteration's plan on one worker.
struct Subscriptions {
    /// For each worker: my local rows of the *fixed* side it needs, in the order it expects them.
    send: Vec<Vec<u32>>,
    /// My rows of the side being solved, re-indexed into the buffer of received factors.
    rows: ConfidenceRows,
}

/// Agrees with every owner which of its rows this worker needs for `mine` (rows whose other
/// side is owned by others), returns the send lists and `mine` re-indexed to receive slots.
fn subscribe(
    ex: &mut Exchanger<'_>,
    users: &OwnedRows,
    items: &OwnedRows,
    params: &AlsParams,
) -> Result<(Subscriptions, Subscriptions)> {
    let p = ex.peers();
    // Distinct other-side indices per owner, ascending: the receive layout is owner by owner.
    let needs = |rows: &OwnedRows| -> Vec<Vec<u32>> {
        let mut all = rows.other.clone();
        all.sort_unstable();
        all.dedup();
        let mut per_owner = vec![Vec::new(); p];
        for g in all {
            per_owner[g as usize % p].push(g);
        }
        per_owner
    };
    let need_items = needs(users);
    let need_users = needs(items);
    let mut outbox = ex.outbox();
    for owner in 0..p {
        let w = outbox.to(owner);
        w.u32(need_items[owner].len() as u32);
        for &g in &need_items[owner] {
            w.u32(g / p as u32);
        }
        w.u32(need_users[owner].len() as u32);
        for &g in &need_users[owner] {
            w.u32(g / p as u32);
        }
    }
    let mut send_items = vec![Vec::new(); p];
    let mut send_users = vec![Vec::new(); p];
    for msg in ex.exchange(outbox)? {
        let mut r = Reader::new(&msg.bytes, msg.from);
        for list in [&mut send_items[msg.from], &mut send_users[msg.from]] {
            let n = r.u32()? as usize;
            list.reserve(n);
            for _ in 0..n {
                list.push(r.u32()?);
            }
        }
    }
    let reindex = |rows: &OwnedRows, need: &[Vec<u32>]| -> Result<ConfidenceRows> {
        let mut offsets = vec![0usize; p];
        for o in 1..p {
            offsets[o] = offsets[o - 1] + need[o - 1].len();
        }
        // Every index is in its owner's list: the lists were built from these rows.
        let slots: Vec<u32> = rows
            .other
            .iter()
            .map(|&g| {
                let o = g as usize % p;
                need[o]
                    .binary_search(&g)
                    .map(|at| (offsets[o] + at) as u32)
                    .map_err(|_| Error::Config(format!("index {g} missing from its request list")))
            })
            .collect::<Result<_>>()?;
        Ok(ConfidenceRows::from_weighted(
            &rows.indptr,
            &slots,
            &rows.weights,
            params,
        )?)
    };
    Ok((
        Subscriptions {
            send: send_items,
            rows: reindex(users, &need_items)?,
        },
        Subscriptions {
            send: send_users,
            rows: reindex(items, &need_users)?,
        },
    ))
}

/// One half-iteration: re-solves `target` (this worker's rows of one side) against the other
/// side, whose owners send `fixed` rows per `fixed_subs` (the fixed side's send lists) and
/// `target_rows` (this side's rows re-indexed to the received buffer).
fn half(
    ex: &mut Exchanger<'_>,
    pool: &rayon::ThreadPool,
    target: &mut [f64],
    target_rows: &ConfidenceRows,
    fixed: &[f64],
    fixed_sends: &[Vec<u32>],
    params: &AlsParams,
) -> Result<()> {
    let f = params.factors;
    let partial = pool.install(|| gram(fixed, f));
    // Conjugate gradient reads the fixed rows in f32 only, so they travel in f32.
    let wide = params.solver == Solver::Cholesky;
    let value_bytes = if wide { 8 } else { 4 };
    let mut outbox = ex.outbox();
    for (to, rows) in fixed_sends.iter().enumerate() {
        let w = outbox.to(to);
        w.f64s(&partial);
        for &l in rows {
            let row = &fixed[l as usize * f..(l as usize + 1) * f];
            if wide {
                w.f64s(row);
            } else {
                for &v in row {
                    w.f32(v as f32);
                }
            }
        }
    }
    let mut total = vec![0.0; f * f];
    let (mut other64, mut other32): (Vec<f64>, Vec<f32>) = (Vec::new(), Vec::new());
    let mut part = Vec::with_capacity(f * f);
    for msg in ex.exchange(outbox)? {
        let mut r = Reader::new(&msg.bytes, msg.from);
        part.clear();
        r.f64s_into(f * f, &mut part)?;
        for (t, v) in total.iter_mut().zip(&part) {
            *t += v;
        }
        let rest = msg.bytes.len().saturating_sub(f * f * 8) / value_bytes;
        if wide {
            r.f64s_into(rest, &mut other64)?;
        } else {
            r.f32s_into(rest, &mut other32)?;
        }
    }
    let other = if wide {
        FixedRows::F64(&other64)
    } else {
        FixedRows::F32(&other32)
    };
    pool.install(|| solve_rows(target, target_rows, other, total, params))?;
    Ok(())
}

fn sum_stats(ex: &mut Exchanger<'_>, delta: ExchangeStats) -> Result<ExchangeStats> {
    let mut total = ExchangeStats::default();
    for msg in ex.all_gather(|w| {
        w.u64(delta.bytes_to_workers);
        w.u64(delta.bytes_to_processes);
    })? {
        let mut r = Reader::new(&msg.bytes, msg.from);
        total.bytes_to_workers += r.u64()?;
        total.bytes_to_processes += r.u64()?;
    }
    Ok(total)
}

fn delta(after: ExchangeStats, before: ExchangeStats) -> ExchangeStats {
    ExchangeStats {
        rounds: after.rounds - before.rounds,
        bytes_to_workers: after.bytes_to_workers - before.bytes_to_workers,
        bytes_to_processes: after.bytes_to_processes - before.bytes_to_processes,
    }
}

fn worker_als(
    ex: &mut Exchanger<'_>,
    job: &AlsJob,
    print: u64,
    pool: &rayon::ThreadPool,
    on_iteration: impl Fn(&IterationReport),
) -> Result<AlsSummary> {
    let params = &job.params;
    let f = params.factors;
    let (me, p) = (ex.index(), ex.peers());
    let started = Instant::now();
    let before = ex.stats();
    let Sharded {
        n_users,
        n_items,
        rows,
        users,
        items,
    } = shard::load(ex, &job.inputs, &job.import)?;
    let load_seconds = started.elapsed().as_secs_f64();
    let load = sum_stats(ex, delta(ex.stats(), before))?;
    let pairs: u64 = ex.gather_u64(users.other.len() as u64)?.iter().sum();

    let user_degrees = degree_histogram(ex, &users)?;
    let item_degrees = degree_histogram(ex, &items)?;

    let before = ex.stats();
    let (user_subs, item_subs) = subscribe(ex, &users, &items, params)?;
    let setup = sum_stats(ex, delta(ex.stats(), before))?;

    let seed = params.seed.unwrap_or(job.seed);
    let init = |first: usize, n_local: usize| -> Vec<f64> {
        (0..n_local)
            .flat_map(|l| {
                let g = global_index(l, me, p);
                (0..f).map(move |k| initial_value(seed, ((first + g) * f + k) as u64))
            })
            .collect()
    };
    let mut x = init(0, users.len());
    let mut y = init(n_users, items.len());

    let checkpoints = job
        .checkpoint_dir
        .as_ref()
        .map(|dir| Checkpoints::new(dir, print, me, p));
    let mine = checkpoints
        .as_ref()
        .and_then(|c| c.newest(params.iterations, x.len(), y.len()))
        .unwrap_or(0);
    let resumed_from = ex.gather_u64(mine as u64)?.into_iter().min().unwrap_or(0) as usize;
    if let (Some(c), true) = (&checkpoints, resumed_from > 0) {
        let part = c
            .load(resumed_from, x.len(), y.len())?
            .ok_or_else(|| Error::Checkpoint {
                path: job.checkpoint_dir.clone().unwrap_or_default(),
                message: format!("iteration {resumed_from} vanished while resuming"),
            })?;
        x = part.user_factors;
        y = part.item_factors;
    }

    let mut reports = Vec::new();
    for it in resumed_from..params.iterations {
        let t0 = Instant::now();
        let before = ex.stats();
        half(
            ex,
            pool,
            &mut x,
            &user_subs.rows,
            &y,
            &user_subs.send,
            params,
        )?;
        half(
            ex,
            pool,
            &mut y,
            &item_subs.rows,
            &x,
            &item_subs.send,
            params,
        )?;
        let seconds = t0.elapsed().as_secs_f64();
        let traffic = delta(ex.stats(), before);
        let t1 = Instant::now();
        if let Some(c) = &checkpoints {
            c.save(&Part {
                iteration: it + 1,
                user_factors: x.clone(),
                item_factors: y.clone(),
            })?;
        }
        // Nobody reports an iteration before every part of it is on disk.
        let traffic = sum_stats(ex, traffic)?;
        let report = IterationReport {
            iteration: it + 1,
            seconds,
            checkpoint_seconds: t1.elapsed().as_secs_f64(),
            bytes_to_workers: traffic.bytes_to_workers,
            bytes_to_processes: traffic.bytes_to_processes,
        };
        on_iteration(&report);
        reports.push(report);
    }

    let lists = match (&job.lists, &job.out_dir) {
        (Some(lists), Some(out)) => Some(batch_lists(
            ex, lists, out, &users, &items, n_items, &x, &y, f, job,
        )?),
        (Some(_), None) => {
            return Err(Error::Config("batch lists need an output directory".into()))
        }
        _ => None,
    };
    if let Some(out) = &job.out_dir {
        let name = format!("part-{me:05}.parquet");
        write_factors(&out.join("user_factors").join(&name), &users.ids, &x, f)?;
        write_factors(&out.join("item_factors").join(&name), &items.ids, &y, f)?;
    }
    let summary = AlsSummary {
        params: AlsParams {
            seed: Some(seed),
            ..params.clone()
        },
        processes: p / ex.workers_per_process(),
        workers: p,
        users: n_users,
        items: n_items,
        rows,
        pairs,
        factors: f,
        resumed_from,
        load_seconds,
        load_bytes_to_workers: load.bytes_to_workers,
        setup_bytes_to_workers: setup.bytes_to_workers,
        lists,
        user_degrees,
        item_degrees,
        iterations: reports,
    };
    // Everyone has written its files before the summary says the job is done.
    ex.barrier()?;
    if let (Some(out), 0) = (&job.out_dir, me) {
        let path = out.join("summary.json");
        let text = serde_json::to_string_pretty(&summary).unwrap_or_default();
        std::fs::write(&path, text).map_err(|e| Error::io(&path, e))?;
    }
    Ok(summary)
}

/// The batch lists of this worker's users and items from the final factors.
#[allow(clippy::too_many_arguments)]
fn batch_lists(
    ex: &mut Exchanger<'_>,
    lists: &ListsJob,
    out: &std::path::Path,
    users: &OwnedRows,
    items: &OwnedRows,
    n_items: usize,
    x: &[f64],
    y: &[f64],
    f: usize,
    job: &AlsJob,
) -> Result<ListsReport> {
    let started = Instant::now();
    let before = ex.stats();
    let (me, p) = (ex.index(), ex.peers());
    // Every worker needs every item's id: for the output and for the rank config's filters.
    let mut item_ids = vec![String::new(); n_items];
    for msg in ex.all_gather(|w| {
        for id in &items.ids {
            w.str(id);
        }
    })? {
        let mut r = Reader::new(&msg.bytes, msg.from);
        let mut local = 0;
        while !r.is_empty() {
            let id = r.str()?;
            let g = global_index(local, msg.from, p);
            let slot = item_ids.get_mut(g).ok_or_else(|| Error::Wire {
                from: msg.from,
                message: format!("item id for index {g} of {n_items}"),
            })?;
            *slot = id.to_owned();
            local += 1;
        }
    }
    let allowed = match &lists.rank_config {
        Some(config) => Some(allowed_items(
            config,
            lists.item_features.as_deref(),
            &item_ids,
            lists.now,
        )?),
        None => None,
    };
    let (mut local_users, mut seen_items) = (Vec::new(), Vec::new());
    for l in 0..users.len() {
        for &i in users.row(l).0 {
            local_users.push(l as u32);
            seen_items.push(i);
        }
    }
    let seen = CsMatrix::build(users.len(), n_items, &local_users, &seen_items);
    let user_factors: Vec<f32> = x.iter().map(|&v| v as f32).collect();
    let item_factors: Vec<f32> = y.iter().map(|&v| v as f32).collect();
    let shard = WorkerShard {
        dim: f,
        user_factors: &user_factors,
        seen: &seen,
        item_factors: &item_factors,
    };
    let ctx = FitContext {
        threads: job.threads_per_worker.max(1),
        ..FitContext::default()
    };
    let worker_lists = distributed_top_k(ex, &shard, allowed.as_deref(), &lists.settings, &ctx)?;
    let neighbours_dir = out.join("neighbours");
    let (user_rows, neighbour_rows) = worker_lists.write_parquet(
        &out.join("topk"),
        (lists.settings.neighbours > 0).then_some(neighbours_dir.as_path()),
        &users.ids,
        &item_ids,
    )?;
    debug_assert_eq!(worker_lists.worker, me);
    let traffic = sum_stats(ex, delta(ex.stats(), before))?;
    let rows: Vec<(u64, u64)> = ex
        .all_gather(|w| {
            w.u64(user_rows);
            w.u64(neighbour_rows);
        })?
        .iter()
        .map(|m| {
            let mut r = Reader::new(&m.bytes, m.from);
            Ok((r.u64()?, r.u64()?))
        })
        .collect::<Result<_>>()?;
    Ok(ListsReport {
        user_rows: rows.iter().map(|r| r.0).sum(),
        neighbour_rows: rows.iter().map(|r| r.1).sum(),
        seconds: started.elapsed().as_secs_f64(),
        bytes_to_workers: traffic.bytes_to_workers,
    })
}
