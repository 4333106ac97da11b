//! Shared fixtures: a seeded synthetic log written as one Parquet file and as ordered shards.

use std::path::{Path, PathBuf};

use kindred_core::Interactions;
use kindred_data::parquet::write_parquet;
use kindred_data::synthetic::{generate, SyntheticConfig};

/// A seeded implicit log (with duplicate events, so that weights are summed).
pub fn synthetic_log(users: usize, items: usize, seed: u64) -> Interactions {
    let cfg = SyntheticConfig {
        users,
        items,
        seed,
        interactions_per_user: 20.0,
        duplicate_fraction: 0.05,
        implicit: true,
        ..SyntheticConfig::default()
    };
    generate(&cfg).expect("valid config").dataset.interactions
}

/// Writes `log` whole to `dir/full.parquet` and in `shards` contiguous pieces to
/// `dir/shard-K.parquet`; returns (full, shards in order).
pub fn write_shards(log: &Interactions, dir: &Path, shards: usize) -> (PathBuf, Vec<PathBuf>) {
    let full = dir.join("full.parquet");
    write_parquet(log, &full).expect("write full");
    let n = log.len();
    let paths = (0..shards)
        .map(|k| {
            let rows: Vec<u32> = ((k * n / shards) as u32..((k + 1) * n / shards) as u32).collect();
            let path = dir.join(format!("shard-{k}.parquet"));
            write_parquet(&log.subset(&rows), &path).expect("write shard");
            path
        })
        .collect();
    (full, paths)
}
