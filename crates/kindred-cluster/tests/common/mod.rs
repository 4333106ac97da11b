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

/// Writes `log` whole to `dir/full.parquet` and in `shards` contiguous pieces; returns (full,
/// shards in order).
pub fn write_shards(log: &Interactions, dir: &Path, shards: usize) -> (PathBuf, Vec<PathBuf>) {
    let full = dir.join("full.parquet");
    write_parquet(log, &full).expect("write full");
    let paths = kindred_cluster::shard::write_shards(log, &dir.join("shards"), shards).unwrap();
    (full, paths)
}
