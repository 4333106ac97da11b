//! Scale check of batch top-K: seeded synthetic factors (default 1,000,000 users x 100,000
//! items x 64 factors, ~20 seen items per user), scored once on a single node and once as a
//! distributed job on `--workers` local worker threads; checks that both give identical lists
//! and writes the timings as JSON.
//!
//! ```text
//! cargo run --release -p kindred-cluster --example topk_scale -- --json out.json \
//!     [--users N] [--items N] [--factors N] [--k N] [--neighbours N] [--seen N] \
//!     [--workers N] [--threads N] [--seed N] [--sample N] [--out-dir DIR]
//! ```
//!
//! `--threads` (default: all cores) is what the single node uses; each of the `--workers` local
//! workers gets `threads / workers` of them, as processes on separate machines would each have
//! their own.
//! `--sample N` scores only N evenly spaced users (and items, for neighbours) on the single
//! node and compares those; without it every list is compared. `--out-dir` makes the
//! distributed workers also write their Parquet parts (`DIR/users`, `DIR/neighbours`).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use kindred_cluster::topk::{
    distributed_top_k, neighbours_block, shard_rows, shard_seen, single_node_top_k, top_k_block,
    BatchSettings, WorkerLists, WorkerShard,
};
use kindred_cluster::{run, ExchangeStats, Topology};
use kindred_core::topk::Scored;
use kindred_core::{CsMatrix, FitContext, SplitMix64};
use kindred_rank::retrieval::{ExactIndex, Metric};
use rayon::prelude::*;

type BoxResult<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

struct Args {
    users: usize,
    items: usize,
    factors: usize,
    k: usize,
    neighbours: usize,
    seen: usize,
    workers: usize,
    threads: usize,
    seed: u64,
    sample: Option<usize>,
    out_dir: Option<PathBuf>,
    json: PathBuf,
}

fn parse_args() -> BoxResult<Args> {
    let mut args = Args {
        users: 1_000_000,
        items: 100_000,
        factors: 64,
        k: 10,
        neighbours: 10,
        seen: 20,
        workers: 2,
        threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        seed: 42,
        sample: None,
        out_dir: None,
        json: PathBuf::new(),
    };
    let mut json = None;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let number = || -> BoxResult<usize> {
            value
                .replace('_', "")
                .parse()
                .map_err(|e| format!("{flag} {value}: {e}").into())
        };
        match flag.as_str() {
            "--users" => args.users = number()?,
            "--items" => args.items = number()?,
            "--factors" => args.factors = number()?,
            "--k" => args.k = number()?,
            "--neighbours" => args.neighbours = number()?,
            "--seen" => args.seen = number()?,
            "--workers" => args.workers = number()?,
            "--threads" => args.threads = number()?,
            "--seed" => args.seed = number()? as u64,
            "--sample" => args.sample = Some(number()?),
            "--out-dir" => args.out_dir = Some(PathBuf::from(value)),
            "--json" => json = Some(PathBuf::from(value)),
            other => return Err(format!("unknown flag {other}").into()),
        }
    }
    args.json = json.ok_or("--json PATH is required")?;
    if args.users == 0 || args.items == 0 || args.factors == 0 || args.workers == 0 {
        return Err("--users, --items, --factors and --workers must be positive".into());
    }
    Ok(args)
}

/// Row-major N(0, 1/dim) factors, row `r` drawn from its own stream so generation is parallel
/// and independent of the thread count.
fn factors(seed: u64, rows: usize, dim: usize) -> Vec<f32> {
    let scale = 1.0 / (dim as f64).sqrt();
    let mut out = vec![0f32; rows * dim];
    out.par_chunks_mut(dim).enumerate().for_each(|(r, row)| {
        let mut rng = SplitMix64::stream(seed, r as u64);
        row.iter_mut()
            .for_each(|x| *x = (rng.normal() * scale) as f32);
    });
    out
}

/// Up to `per_user` distinct uniformly drawn items per user.
fn seen_items(seed: u64, users: usize, items: usize, per_user: usize) -> CsMatrix {
    let lists: Vec<Vec<u32>> = (0..users)
        .into_par_iter()
        .map(|u| {
            let mut rng = SplitMix64::stream(seed, u as u64);
            let mut mine: Vec<u32> = (0..per_user)
                .map(|_| rng.below(items as u64) as u32)
                .collect();
            mine.sort_unstable();
            mine.dedup();
            mine
        })
        .collect();
    let rows: Vec<u32> = lists
        .iter()
        .enumerate()
        .flat_map(|(u, l)| std::iter::repeat_n(u as u32, l.len()))
        .collect();
    let cols: Vec<u32> = lists.into_iter().flatten().collect();
    CsMatrix::build(users, items, &rows, &cols)
}

struct Shard {
    users: Vec<f32>,
    seen: CsMatrix,
    items: Vec<f32>,
    user_ids: Vec<String>,
}

struct WorkerResult {
    lists: WorkerLists,
    stats: ExchangeStats,
    score_seconds: f64,
    write_seconds: f64,
}

fn same(a: &[Scored], b: &[Scored]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| x.item == y.item && x.score.to_bits() == y.score.to_bits())
}

fn main() -> BoxResult<()> {
    let args = parse_args()?;
    let dim = args.factors;
    let settings = BatchSettings {
        k: args.k,
        neighbours: args.neighbours,
    };

    let started = Instant::now();
    let users = factors(args.seed, args.users, dim);
    let items = factors(args.seed ^ 0x17E5, args.items, dim);
    let seen = seen_items(args.seed ^ 0x5EE2, args.users, args.items, args.seen);
    let allowed: Vec<bool> = (0..args.items).map(|i| i % 50 != 7).collect();
    let generate_seconds = started.elapsed().as_secs_f64();
    eprintln!(
        "generated {} users x {} items x {dim} factors ({} seen) in {generate_seconds:.1} s",
        args.users,
        args.items,
        seen.nnz()
    );

    // Each worker's share, as a loader would hand it over: only its own rows.
    let started = Instant::now();
    let shards: Arc<Vec<Shard>> = Arc::new(
        (0..args.workers)
            .map(|w| Shard {
                users: shard_rows(&users, dim, w, args.workers),
                seen: shard_seen(&seen, w, args.workers),
                items: shard_rows(&items, dim, w, args.workers),
                user_ids: if args.out_dir.is_some() {
                    (w..args.users)
                        .step_by(args.workers)
                        .map(|u| format!("u{u}"))
                        .collect()
                } else {
                    Vec::new()
                },
            })
            .collect(),
    );
    let shard_seconds = started.elapsed().as_secs_f64();
    let item_ids: Arc<Vec<String>> = Arc::new((0..args.items).map(|i| format!("i{i}")).collect());

    let single_ctx = FitContext {
        threads: args.threads,
        ..FitContext::default()
    };
    let worker_threads = (args.threads / args.workers).max(1);
    let started = Instant::now();
    let job_shards = Arc::clone(&shards);
    let job_allowed = Arc::new(allowed.clone());
    let out_dir = args.out_dir.clone();
    let job_item_ids = Arc::clone(&item_ids);
    let results = run(
        &Topology::local_threads(args.workers),
        args.seed,
        move |ex| {
            let shard = &job_shards[ex.index()];
            let view = WorkerShard {
                dim,
                user_factors: &shard.users,
                seen: &shard.seen,
                item_factors: &shard.items,
            };
            let scoring = Instant::now();
            let lists = distributed_top_k(
                ex,
                &view,
                Some(&job_allowed),
                &settings,
                &FitContext {
                    threads: worker_threads,
                    ..FitContext::default()
                },
            )?;
            let score_seconds = scoring.elapsed().as_secs_f64();
            let writing = Instant::now();
            if let Some(dir) = &out_dir {
                let neighbours_dir = dir.join("neighbours");
                lists.write_parquet(
                    &dir.join("users"),
                    Some(&neighbours_dir),
                    &shard.user_ids,
                    &job_item_ids,
                )?;
            }
            Ok(WorkerResult {
                lists,
                stats: ex.stats(),
                score_seconds,
                write_seconds: writing.elapsed().as_secs_f64(),
            })
        },
    )?;
    let distributed_seconds = started.elapsed().as_secs_f64();
    eprintln!(
        "distributed ({} workers): {distributed_seconds:.1} s",
        args.workers
    );

    // Single node: every user and item, or evenly spaced samples scored through the same
    // kernel; user lists and neighbour lists timed apart. Lists not asked for are not compared.
    let pick = |total: usize, wanted: bool| -> Vec<usize> {
        match (wanted, args.sample) {
            (false, _) => Vec::new(),
            (true, None) => (0..total).collect(),
            (true, Some(n)) => {
                let step = (total / n.max(1)).max(1);
                (0..total).step_by(step).take(n).collect()
            }
        }
    };
    let compared_users = pick(args.users, settings.k > 0);
    let compared_items = pick(args.items, settings.neighbours > 0);
    let rows = |m: &[f32], picked: &[usize]| -> Vec<f32> {
        picked
            .iter()
            .flat_map(|&r| &m[r * dim..(r + 1) * dim])
            .copied()
            .collect()
    };
    // The sample calls the kernels directly, on the single node's threads.
    let single_pool = rayon::ThreadPoolBuilder::new()
        .num_threads(args.threads.max(1))
        .build()?;
    let started = Instant::now();
    let single_users = match (compared_users.is_empty(), args.sample) {
        (true, _) => Vec::new(),
        (false, None) => {
            let users_only = BatchSettings {
                k: settings.k,
                neighbours: 0,
            };
            single_node_top_k(
                dim,
                &users,
                &seen,
                &items,
                Some(&allowed),
                &users_only,
                &single_ctx,
            )?
            .users
        }
        (false, Some(_)) => {
            let index = ExactIndex::new(Metric::InnerProduct, dim, &items)?;
            let seen_of = |i: usize| seen.row(compared_users[i]);
            let queries = rows(&users, &compared_users);
            single_pool
                .install(|| top_k_block(&queries, &index, settings.k, &seen_of, Some(&allowed)))?
        }
    };
    let single_user_seconds = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let single_neighbours = match (compared_items.is_empty(), args.sample) {
        (true, _) => Vec::new(),
        (false, None) => {
            let neighbours_only = BatchSettings {
                k: 0,
                neighbours: settings.neighbours,
            };
            single_node_top_k(
                dim,
                &users,
                &seen,
                &items,
                Some(&allowed),
                &neighbours_only,
                &single_ctx,
            )?
            .neighbours
        }
        (false, Some(_)) => {
            let index = ExactIndex::new(Metric::Cosine, dim, &items)?;
            let ids: Vec<u32> = compared_items.iter().map(|&i| i as u32).collect();
            let queries = rows(&items, &compared_items);
            single_pool.install(|| {
                neighbours_block(&queries, &ids, &index, settings.neighbours, Some(&allowed))
            })?
        }
    };
    let single_neighbour_seconds = started.elapsed().as_secs_f64();
    let single_seconds = single_user_seconds + single_neighbour_seconds;
    eprintln!(
        "single node ({} users, {} items): {single_seconds:.1} s",
        compared_users.len(),
        compared_items.len()
    );

    let p = args.workers;
    let mut mismatched_users = 0usize;
    for (list, &u) in single_users.iter().zip(&compared_users) {
        if !same(list, &results[u % p].lists.users[u / p]) {
            mismatched_users += 1;
        }
    }
    let mut mismatched_items = 0usize;
    for (list, &i) in single_neighbours.iter().zip(&compared_items) {
        if !same(list, &results[i % p].lists.neighbours[i / p]) {
            mismatched_items += 1;
        }
    }
    let mut stats = ExchangeStats::default();
    for r in &results {
        stats.add(&r.stats);
    }
    let users_scored = compared_users.len();
    let queries = if settings.k > 0 { args.users } else { 0 }
        + if settings.neighbours > 0 {
            args.items
        } else {
            0
        };
    let report = serde_json::json!({
        "users": args.users,
        "items": args.items,
        "factors": dim,
        "k": args.k,
        "neighbours": args.neighbours,
        "seen_per_user": args.seen,
        "seen_total": seen.nnz(),
        "workers": p,
        "threads": args.threads,
        "threads_per_worker": worker_threads,
        "seed": args.seed,
        "profile": if cfg!(debug_assertions) { "debug" } else { "release" },
        "generate_seconds": generate_seconds,
        "shard_seconds": shard_seconds,
        "distributed_seconds": distributed_seconds,
        // Users and neighbour queries together: the workers score both in one pass.
        "distributed_queries_per_second": queries as f64 / distributed_seconds,
        "distributed_worker_score_seconds": results.iter().map(|r| r.score_seconds).collect::<Vec<_>>(),
        "distributed_worker_write_seconds": results.iter().map(|r| r.write_seconds).collect::<Vec<_>>(),
        "distributed_bytes_exchanged": stats.bytes_to_workers,
        "single_node_seconds": single_seconds,
        "single_node_user_seconds": single_user_seconds,
        "single_node_neighbour_seconds": single_neighbour_seconds,
        "single_node_users_scored": users_scored,
        "single_node_items_scored": compared_items.len(),
        "single_node_users_per_second": users_scored as f64 / single_user_seconds,
        "compared": if args.sample.is_some() { "sample" } else { "all" },
        "compared_users": users_scored,
        "compared_items": compared_items.len(),
        "mismatched_users": mismatched_users,
        "mismatched_items": mismatched_items,
        "identical": mismatched_users == 0 && mismatched_items == 0,
        "parquet_dir": args.out_dir.as_ref().map(|d| d.display().to_string()),
    });
    let text = serde_json::to_string_pretty(&report)?;
    std::fs::write(&args.json, format!("{text}\n"))
        .map_err(|e| format!("{}: {e}", args.json.display()))?;
    println!("{text}");
    if mismatched_users + mismatched_items > 0 {
        return Err("distributed and single-node lists differ".into());
    }
    Ok(())
}
