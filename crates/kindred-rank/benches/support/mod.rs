//! Synthetic embeddings for the ANN benchmarks.
//!
//! `clustered`: what trained factor models look like: items sit near one of many cluster
//! centres that themselves span a low-rank subspace (tastes are correlated), and item norms are
//! spread out (log-normal, popular items have longer vectors), which is what makes inner-product
//! search differ from cosine. `gaussian`: i.i.d. standard normal coordinates, the hard case for
//! graph indexes in 64 dimensions (no structure to exploit), reported for honesty.
//! Queries are drawn separately from the same distribution, never copied from the items.

#![allow(dead_code)]

use kindred_core::SplitMix64;

/// Rank of the subspace the cluster centres live in.
const CENTRE_RANK: usize = 16;

/// `n x dim` row-major vectors of the named kind (`clustered` or `gaussian`); the same `seed`
/// and `kind` always give the same structure, `stream` picks items (0) or queries (1).
pub fn vectors(kind: &str, n: usize, dim: usize, seed: u64, stream: u64) -> Vec<f32> {
    match kind {
        "gaussian" => {
            let mut rng = SplitMix64::stream(seed, stream);
            (0..n * dim).map(|_| rng.normal() as f32).collect()
        }
        _ => clustered(n, dim, seed, stream),
    }
}

fn clustered(n: usize, dim: usize, seed: u64, stream: u64) -> Vec<f32> {
    let clusters = 1024;
    // Shared structure from `seed` alone: a low-rank basis and the cluster centres in it.
    let mut shared = SplitMix64::new(seed);
    let basis: Vec<f32> = (0..CENTRE_RANK * dim)
        .map(|_| shared.normal() as f32 / (CENTRE_RANK as f32).sqrt())
        .collect();
    let mut centres = vec![0f32; clusters * dim];
    for c in 0..clusters {
        let z: Vec<f32> = (0..CENTRE_RANK).map(|_| shared.normal() as f32).collect();
        for (r, zr) in z.iter().enumerate() {
            for j in 0..dim {
                centres[c * dim + j] += zr * basis[r * dim + j];
            }
        }
    }
    // Cluster sizes follow a power law, like genres or categories.
    let weights: Vec<f64> = (0..clusters)
        .map(|c| 1.0 / (c as f64 + 1.0).powf(0.8))
        .collect();
    let total: f64 = weights.iter().sum();
    let mut cumulative = Vec::with_capacity(clusters);
    let mut acc = 0.0;
    for w in &weights {
        acc += w / total;
        cumulative.push(acc);
    }
    let mut rng = SplitMix64::stream(seed, stream + 1);
    let mut out = Vec::with_capacity(n * dim);
    for _ in 0..n {
        let u = rng.next_f64();
        let c = cumulative.partition_point(|&x| x < u).min(clusters - 1);
        let scale = (0.35 * rng.normal()).exp() as f32;
        for j in 0..dim {
            let noise = 0.45 * rng.normal() as f32;
            out.push(scale * (centres[c * dim + j] + noise));
        }
    }
    out
}
