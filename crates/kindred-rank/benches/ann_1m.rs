//! The ANN measurement behind `bench/ann.sh` (release build), in two steps that meet in files so
//! hnswlib and faiss (`bench/peers/ann_peers.py`) index exactly the same vectors:
//!
//! - `KINDRED_ANN_STEP=prepare`: writes each data set's items, queries and exact top-10 ids as
//!   `.npy` files under `$KINDRED_ANN_DATA` (default `$KINDRED_ANN_OUT/ann-data`) and lists
//!   them in `datasets.json` there. The data
//!   sets are the user's files (`KINDRED_ANN_ITEMS` and `KINDRED_ANN_QUERY_VECTORS`, `.npy` or
//!   `.fvecs`, metric `KINDRED_ANN_METRIC`, default `ip`), or else synthetic ones
//!   (`KINDRED_ANN_DATASETS`, default `clustered-ip,gaussian-cosine:100000`, each `KIND-METRIC`
//!   with an optional `:ITEMS`, else `KINDRED_ANN_N` items, default 1,000,000, x
//!   `KINDRED_ANN_DIM`, default 64, and `KINDRED_ANN_QUERIES`, default 1000, separate queries). The ground truth comes from the batched exact scan.
//! - `KINDRED_ANN_STEP=run` (the default): for every data set in `datasets.json`, the batched exact
//!   scan on all threads (queries per second, and its agreement with the stored truth), the
//!   one-query exact scan on one thread, the HNSW build on all threads (seconds, index bytes) and
//!   single-thread searches at several ef values (recall@10, QPS); optionally
//!   (`KINDRED_ANN_NEIGHBOUR_LISTS=1`) neighbour lists for every item. Writes
//!   `$KINDRED_ANN_OUT/ann.json`. With `KINDRED_ANN_INDEX_DIR` set, each index is saved there
//!   after its build and loaded instead of built on later runs (its build time is then `null`):
//!   for exploring search settings, not for reports.

use std::path::{Path, PathBuf};
use std::time::Instant;

use kindred_core::FitContext;
use kindred_rank::retrieval::neighbours::hnsw_neighbour_lists;
use kindred_rank::retrieval::{
    read_npy_i32, read_vectors, write_npy_f32, write_npy_i32, ExactIndex, HnswIndex, HnswParams,
    Metric,
};
use serde_json::{json, Value};

mod support;

type BenchResult<T> = Result<T, Box<dyn std::error::Error>>;

/// Neighbours per query, as every ANN benchmark reports.
const K: usize = 10;
/// Shortest time each search setting is timed for (whole passes over the queries); the peers'
/// script uses the same.
const MIN_SEARCH_SECONDS: f64 = 2.0;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().replace('_', "").parse().ok())
        .unwrap_or(default)
}

fn env_text(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| default.into())
}

fn rss_bytes(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

fn main() {
    let out_dir = PathBuf::from(env_text("KINDRED_ANN_OUT", "bench/out"));
    let result = match env_text("KINDRED_ANN_STEP", "run").as_str() {
        "prepare" => prepare(&out_dir),
        "run" => run(&out_dir),
        other => Err(format!("KINDRED_ANN_STEP={other}: expected prepare or run").into()),
    };
    if let Err(e) = result {
        eprintln!("ann_1m: {e}");
        std::process::exit(1);
    }
}

fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, |t| t.get())
}

/// Where the data files and `datasets.json` live: `KINDRED_ANN_DATA`, else `OUT/ann-data`.
fn data_dir(out_dir: &Path) -> PathBuf {
    std::env::var("KINDRED_ANN_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|_| out_dir.join("ann-data"))
}

fn prepare(out_dir: &Path) -> BenchResult<()> {
    let data_dir = data_dir(out_dir);
    std::fs::create_dir_all(&data_dir)?;
    let mut sets = Vec::new();
    if let Ok(items_path) = std::env::var("KINDRED_ANN_ITEMS") {
        let queries_path = std::env::var("KINDRED_ANN_QUERY_VECTORS")
            .map_err(|_| "KINDRED_ANN_ITEMS is set: set KINDRED_ANN_QUERY_VECTORS too")?;
        let metric = Metric::parse(&env_text("KINDRED_ANN_METRIC", "ip"))?;
        let items = read_vectors(Path::new(&items_path))?;
        let queries = read_vectors(Path::new(&queries_path))?;
        if items.dim != queries.dim {
            return Err(format!(
                "{items_path} has dimension {}, {queries_path} has {}",
                items.dim, queries.dim
            )
            .into());
        }
        // Written again as .npy so the peers read one format whatever the user passed.
        sets.push(write_set(
            &data_dir,
            "file",
            metric,
            items.dim,
            &items.values,
            &queries.values,
            "the user's vectors",
        )?);
    } else {
        let n = env_usize("KINDRED_ANN_N", 1_000_000);
        let dim = env_usize("KINDRED_ANN_DIM", 64);
        let n_queries = env_usize("KINDRED_ANN_QUERIES", 1000);
        for spec in env_text(
            "KINDRED_ANN_DATASETS",
            "clustered-ip,gaussian-cosine:100000",
        )
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        {
            // `KIND-METRIC`, or `KIND-METRIC:N` for a size other than KINDRED_ANN_N.
            let (spec, n) = match spec.split_once(':') {
                Some((name, size)) => (name, size.replace('_', "").parse()?),
                None => (spec, n),
            };
            let (kind, metric_name) = spec.split_once('-').unwrap_or((spec, "ip"));
            let metric = Metric::parse(metric_name)?;
            eprintln!("[{spec}] generating {n} x {dim} and {n_queries} queries");
            let items = support::vectors(kind, n, dim, 2024, 0);
            let queries = support::vectors(kind, n_queries, dim, 2024, 1);
            let about = if kind == "gaussian" {
                "i.i.d. Gaussian: no structure, the hard case"
            } else {
                "clustered low-rank factors, log-normal norms"
            };
            sets.push(write_set(
                &data_dir, spec, metric, dim, &items, &queries, about,
            )?);
        }
    }
    let listing = data_dir.join("datasets.json");
    std::fs::write(&listing, serde_json::to_string_pretty(&sets)? + "\n")?;
    eprintln!("wrote {}", listing.display());
    Ok(())
}

/// Writes one data set's three files and returns its entry in `datasets.json`.
fn write_set(
    dir: &Path,
    name: &str,
    metric: Metric,
    dim: usize,
    items: &[f32],
    queries: &[f32],
    about: &str,
) -> BenchResult<Value> {
    let exact = ExactIndex::new(metric, dim, items)?;
    eprintln!("[{name}] exact top-{K} of every query (batched scan)");
    let truth = exact.search_batch(queries, K, &|_, _| false)?;
    let mut ids = Vec::with_capacity(truth.len() * K);
    for top in &truth {
        if top.len() < K {
            return Err(format!("[{name}] fewer than {K} items: nothing to measure").into());
        }
        ids.extend(top.iter().map(|s| s.item as i32));
    }
    let paths = ["items", "queries", "truth"].map(|part| dir.join(format!("{name}.{part}.npy")));
    write_npy_f32(&paths[0], dim, items)?;
    write_npy_f32(&paths[1], dim, queries)?;
    write_npy_i32(&paths[2], K, &ids)?;
    Ok(json!({
        "name": name, "about": about, "metric": metric, "dim": dim,
        "n": items.len() / dim, "queries": queries.len() / dim, "k": K,
        "items": paths[0], "query_vectors": paths[1], "truth": paths[2],
    }))
}

fn path_of(set: &Value, key: &str) -> BenchResult<PathBuf> {
    set[key]
        .as_str()
        .map(PathBuf::from)
        .ok_or_else(|| format!("datasets.json: entry without `{key}`").into())
}

fn run(out_dir: &Path) -> BenchResult<()> {
    let listing = data_dir(out_dir).join("datasets.json");
    let sets: Vec<Value> =
        serde_json::from_str(&std::fs::read_to_string(&listing).map_err(|e| {
            format!(
                "{}: {e} (run with KINDRED_ANN_STEP=prepare first)",
                listing.display()
            )
        })?)?;
    let efs: Vec<usize> = env_text("KINDRED_ANN_EFS", "16,32,64,128,256")
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let threads = threads();
    let m = env_usize("KINDRED_ANN_M", 16);
    let ef_construction = env_usize("KINDRED_ANN_EF_CONSTRUCTION", 100);
    let single_queries = env_usize("KINDRED_ANN_EXACT_SINGLE_QUERIES", 100);
    let neighbour_lists = env_usize("KINDRED_ANN_NEIGHBOUR_LISTS", 0) > 0;
    let neighbour_ef = env_usize("KINDRED_ANN_NEIGHBOUR_EF", 32);
    let mut runs = Vec::new();
    for set in &sets {
        let name = set["name"].as_str().unwrap_or("?");
        let metric: Metric = serde_json::from_value(set["metric"].clone())?;
        let items = read_vectors(&path_of(set, "items")?)?;
        let queries = read_vectors(&path_of(set, "query_vectors")?)?;
        let truth_ids = read_truth(&path_of(set, "truth")?)?;
        let (dim, n, n_queries) = (items.dim, items.rows(), queries.rows());

        let exact = ExactIndex::new(metric, dim, &items.values)?;
        eprintln!("[{name}] batched exact scan, {threads} threads");
        let start = Instant::now();
        let mut passes = 0usize;
        let mut batch = Vec::new();
        while passes == 0 || start.elapsed().as_secs_f64() < MIN_SEARCH_SECONDS {
            batch = exact.search_batch(&queries.values, K, &|_, _| false)?;
            passes += 1;
        }
        let batch_qps = (passes * n_queries) as f64 / start.elapsed().as_secs_f64();
        let batch_recall = recall(batch.iter().map(|t| t.iter().map(|s| s.item)), &truth_ids);
        drop(batch);

        let single = single_queries.min(n_queries);
        let start = Instant::now();
        for q in queries.values.chunks_exact(dim).take(single) {
            exact.search(q, K, |_| false)?;
        }
        let single_qps = single as f64 / start.elapsed().as_secs_f64();
        drop(exact);
        eprintln!("[{name}] exact: batched {batch_qps:.0} QPS (recall {batch_recall:.4}), one query at a time {single_qps:.1} QPS");

        let params = HnswParams {
            metric,
            m,
            ef_construction,
            ef_search: 64,
            seed: 7,
            ip_reduction: false,
        };
        let ctx = FitContext {
            threads,
            ..FitContext::with_seed(7)
        };
        let rss_before = rss_bytes("VmRSS:");
        let saved = std::env::var("KINDRED_ANN_INDEX_DIR")
            .ok()
            .map(|dir| PathBuf::from(dir).join(format!("{name}.m{m}.efc{ef_construction}.hnsw")));
        let (index, build_seconds) = match &saved {
            Some(path) if path.exists() => {
                eprintln!(
                    "[{name}] loading {} (build time not measured)",
                    path.display()
                );
                (HnswIndex::load(path)?, None)
            }
            _ => {
                eprintln!("[{name}] building HNSW (M={m}, ef_construction={ef_construction}, {threads} threads)");
                let start = Instant::now();
                let index = HnswIndex::build(params, dim, &items.values, &ctx)?;
                let seconds = start.elapsed().as_secs_f64();
                if let Some(path) = &saved {
                    index.save(path)?;
                }
                (index, Some(seconds))
            }
        };
        let rss_growth = rss_bytes("VmRSS:")
            .zip(rss_before)
            .map(|(after, before)| after.saturating_sub(before));
        drop(items);
        eprintln!(
            "[{name}] index of {} bytes, built in {build_seconds:?} s",
            index.memory_bytes()
        );

        let mut by_ef = Vec::new();
        // One untimed pass first (page faults, cold caches), then whole passes over the queries
        // until MIN_SEARCH_SECONDS have gone by: a single 1000-query pass lasts a tenth of a
        // second at low ef, too short to time on a shared machine.
        for q in queries.values.chunks_exact(dim) {
            index.search(q, K, Some(efs.first().copied().unwrap_or(64)), &|_| true)?;
        }
        for &ef in &efs {
            let start = Instant::now();
            let mut passes = 0usize;
            let mut found = Vec::with_capacity(n_queries);
            while passes == 0 || start.elapsed().as_secs_f64() < MIN_SEARCH_SECONDS {
                found.clear();
                for q in queries.values.chunks_exact(dim) {
                    found.push(index.search(q, K, Some(ef), &|_| true)?);
                }
                passes += 1;
            }
            let qps = (passes * n_queries) as f64 / start.elapsed().as_secs_f64();
            let r = recall(found.iter().map(|t| t.iter().map(|s| s.item)), &truth_ids);
            eprintln!("[{name}] ef {ef}: recall@{K} {r:.4}, {qps:.0} QPS ({passes} passes)");
            by_ef.push(
                json!({"ef": ef, "recall_at_10": r, "qps_single_thread": qps, "passes": passes}),
            );
        }

        let lists = if neighbour_lists {
            eprintln!("[{name}] neighbour lists for all {n} items (k={K}, ef={neighbour_ef})");
            let start = Instant::now();
            let lists = hnsw_neighbour_lists(&index, K, neighbour_ef, &ctx)?;
            let seconds = start.elapsed().as_secs_f64();
            let full = lists.iter().filter(|l| l.len() == K).count();
            json!({"k": K, "ef": neighbour_ef, "seconds": seconds, "full_lists": full})
        } else {
            Value::Null
        };
        runs.push(json!({
            "dataset": name, "about": set["about"], "n": n, "dim": dim, "metric": metric,
            "queries": n_queries, "k": K, "threads": threads,
            "exact": {"batched_qps": batch_qps, "batched_recall": batch_recall,
                      "single_thread_qps": single_qps, "single_thread_queries": single},
            "hnsw": {"m": m, "ef_construction": ef_construction, "seed": 7,
                     "build_seconds": build_seconds, "index_bytes": index.memory_bytes(),
                     "rss_growth_bytes": rss_growth, "by_ef": by_ef},
            "neighbour_lists": lists,
        }));
    }
    std::fs::create_dir_all(out_dir)?;
    let report = json!({"library": "kindred", "runs": runs, "peak_rss_bytes": rss_bytes("VmHWM:")});
    let path = out_dir.join("ann.json");
    std::fs::write(&path, serde_json::to_string_pretty(&report)? + "\n")?;
    eprintln!("wrote {}", path.display());
    Ok(())
}

/// The id rows of a truth file written by [`prepare`].
fn read_truth(path: &Path) -> BenchResult<Vec<Vec<u32>>> {
    let (width, ids) = read_npy_i32(path)?;
    Ok(ids
        .chunks(width.max(1))
        .map(|row| row.iter().map(|&id| id as u32).collect())
        .collect())
}

/// The share of the true top-K ids found, over all queries.
fn recall<I, J>(found: I, truth: &[Vec<u32>]) -> f64
where
    I: Iterator<Item = J>,
    J: Iterator<Item = u32>,
{
    let mut hits = 0usize;
    for (got, want) in found.zip(truth) {
        hits += got.filter(|g| want.contains(g)).count();
    }
    hits as f64 / (K * truth.len()).max(1) as f64
}
