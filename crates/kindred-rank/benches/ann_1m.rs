//! One-shot ANN acceptance measurement (run through `bench/ann.sh`, release build).
//!
//! For each data set (env `KINDRED_ANN_DATASETS`, default `clustered-ip,gaussian-cosine`) of
//! `KINDRED_ANN_N` items (default 1,000,000) x `KINDRED_ANN_DIM` (64): builds the HNSW index once
//! with all threads and records build seconds and index bytes; runs `KINDRED_ANN_QUERIES` (1000)
//! separate queries single-threaded through the exact scan (ground truth and its QPS) and through
//! HNSW at several ef values (recall@10 and QPS); then times neighbour lists (k = 10) for every
//! item. Writes `bench/out/ann.json` and `bench/out/ann.md` (directory: `KINDRED_ANN_OUT`).

use std::fmt::Write as _;
use std::time::Instant;

use kindred_core::FitContext;
use kindred_rank::retrieval::neighbours::hnsw_neighbour_lists;
use kindred_rank::retrieval::{ExactIndex, HnswIndex, HnswParams, Metric};
use serde_json::json;

mod support;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().replace('_', "").parse().ok())
        .unwrap_or(default)
}

fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

fn main() {
    if let Err(e) = run() {
        eprintln!("ann_1m: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    // `cargo bench` passes `--bench`; anything else is ignored.
    let n = env_usize("KINDRED_ANN_N", 1_000_000);
    let dim = env_usize("KINDRED_ANN_DIM", 64);
    let n_queries = env_usize("KINDRED_ANN_QUERIES", 1000);
    let k = 10;
    let efs: Vec<usize> = std::env::var("KINDRED_ANN_EFS")
        .unwrap_or_else(|_| "16,32,64,128,256".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let datasets = std::env::var("KINDRED_ANN_DATASETS")
        .unwrap_or_else(|_| "clustered-ip,gaussian-cosine".into());
    let out_dir = std::path::PathBuf::from(
        std::env::var("KINDRED_ANN_OUT").unwrap_or_else(|_| "bench/out".into()),
    );
    let threads = std::thread::available_parallelism().map_or(1, |t| t.get());
    let params_m = env_usize("KINDRED_ANN_M", 16);
    let params_efc = env_usize("KINDRED_ANN_EF_CONSTRUCTION", 100);
    let neighbour_ef = env_usize("KINDRED_ANN_NEIGHBOUR_EF", 32);
    let mut runs = Vec::new();
    let mut md = String::new();
    writeln!(
        md,
        "# ANN benchmark: {n} items x {dim} dims, {n_queries} queries, recall@{k}\n"
    )?;
    writeln!(md, "Build and neighbour lists use {threads} threads; every QPS figure is one thread, one query at a time.\n")?;
    for spec in datasets.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        // `KIND-METRIC`, METRIC one of ip, cosine, l2, or `ip+reduction` for the MIPS reduction.
        let (kind, metric_name) = spec.split_once('-').unwrap_or((spec, "ip"));
        let (metric_name, ip_reduction) = match metric_name.strip_suffix("+reduction") {
            Some(base) => (base, true),
            None => (metric_name, false),
        };
        let metric = Metric::parse(metric_name)?;
        eprintln!("[{spec}] generating {n} x {dim}");
        let items = support::vectors(kind, n, dim, 2024, 0);
        let queries = support::vectors(kind, n_queries, dim, 2024, 1);

        let exact = ExactIndex::new(metric, dim, &items)?;
        eprintln!("[{spec}] exact single-thread scan of {n_queries} queries");
        let start = Instant::now();
        let truth: Vec<Vec<u32>> = queries
            .chunks_exact(dim)
            .map(|q| {
                exact
                    .search(q, k, |_| false)
                    .map(|top| top.iter().map(|s| s.item).collect())
            })
            .collect::<Result<_, _>>()?;
        let exact_seconds = start.elapsed().as_secs_f64();
        let exact_qps = n_queries as f64 / exact_seconds;
        eprintln!("[{spec}] exact: {exact_qps:.1} QPS");

        let params = HnswParams {
            metric,
            m: params_m,
            ef_construction: params_efc,
            ef_search: 64,
            seed: 7,
            ip_reduction,
        };
        let ctx = FitContext {
            threads,
            ..FitContext::with_seed(7)
        };
        eprintln!("[{spec}] building HNSW (M={params_m}, ef_construction={params_efc}, {threads} threads)");
        let start = Instant::now();
        let index = HnswIndex::build(params, dim, &items, &ctx)?;
        let build_seconds = start.elapsed().as_secs_f64();
        let index_bytes = index.memory_bytes();
        eprintln!("[{spec}] built in {build_seconds:.1}s, {index_bytes} bytes");

        let mut by_ef = Vec::new();
        for &ef in &efs {
            let start = Instant::now();
            let mut hits = 0usize;
            for (q, want) in queries.chunks_exact(dim).zip(&truth) {
                let got = index.search(q, k, Some(ef), &|_| true)?;
                hits += want
                    .iter()
                    .filter(|w| got.iter().any(|g| g.item == **w))
                    .count();
            }
            let seconds = start.elapsed().as_secs_f64();
            let qps = n_queries as f64 / seconds;
            let recall = hits as f64 / (k * n_queries) as f64;
            eprintln!(
                "[{spec}] ef {ef}: recall@{k} {recall:.4}, {qps:.0} QPS, {:.1}x exact",
                qps / exact_qps
            );
            by_ef.push(json!({"ef": ef, "recall_at_10": recall, "qps_single_thread": qps, "speedup_vs_exact": qps / exact_qps}));
        }

        eprintln!("[{spec}] neighbour lists for all {n} items (k={k}, ef={neighbour_ef})");
        let start = Instant::now();
        let lists = hnsw_neighbour_lists(&index, k, neighbour_ef, &ctx)?;
        let neighbour_seconds = start.elapsed().as_secs_f64();
        let full = lists.iter().filter(|l| l.len() == k).count();
        eprintln!("[{spec}] neighbour lists in {neighbour_seconds:.1}s ({full} full lists)");

        writeln!(
            md,
            "## {spec} ({})\n",
            if kind == "gaussian" {
                "i.i.d. Gaussian: no structure, the hard case"
            } else {
                "clustered low-rank factors, log-normal norms"
            }
        )?;
        writeln!(md, "- HNSW M={params_m}, ef_construction={params_efc}: build {build_seconds:.1} s on {threads} threads, index {:.1} MiB ({:.0} bytes/item)", index_bytes as f64 / (1 << 20) as f64, index_bytes as f64 / n as f64)?;
        writeln!(md, "- exact scan, one thread: {exact_qps:.1} QPS")?;
        writeln!(md, "- neighbour lists (k={k}, ef={neighbour_ef}) for all {n} items: {neighbour_seconds:.1} s on {threads} threads\n")?;
        writeln!(
            md,
            "| ef | recall@{k} | QPS (1 thread) | x exact |\n|---:|---:|---:|---:|"
        )?;
        for row in &by_ef {
            writeln!(
                md,
                "| {} | {:.4} | {:.0} | {:.1} |",
                row["ef"],
                row["recall_at_10"].as_f64().unwrap_or(0.0),
                row["qps_single_thread"].as_f64().unwrap_or(0.0),
                row["speedup_vs_exact"].as_f64().unwrap_or(0.0)
            )?;
        }
        writeln!(md)?;
        runs.push(json!({
            "dataset": spec, "n": n, "dim": dim, "metric": metric, "queries": n_queries, "k": k,
            "hnsw": {"m": params_m, "ef_construction": params_efc, "seed": 7, "ip_reduction": ip_reduction},
            "threads": threads, "build_seconds": build_seconds, "index_bytes": index_bytes,
            "exact_qps_single_thread": exact_qps, "by_ef": by_ef,
            "neighbour_lists": {"k": k, "ef": neighbour_ef, "seconds": neighbour_seconds, "full_lists": full},
        }));
        drop(lists);
    }
    let peak = peak_rss_bytes();
    if let Some(p) = peak {
        writeln!(
            md,
            "Peak resident memory of the whole run: {:.0} MiB.",
            p as f64 / (1 << 20) as f64
        )?;
    }
    std::fs::create_dir_all(&out_dir)?;
    let report = json!({"runs": runs, "peak_rss_bytes": peak});
    std::fs::write(
        out_dir.join("ann.json"),
        serde_json::to_string_pretty(&report)? + "\n",
    )?;
    std::fs::write(out_dir.join("ann.md"), md)?;
    eprintln!("wrote {}", out_dir.join("ann.md").display());
    Ok(())
}
