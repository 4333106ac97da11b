//! Item-item regression on neighbourhoods: for every target item `j`, the weights `w` over its
//! `neighbors` most co-occurring items `C_j` that minimise
//! `1/2 |x_j - X_C w|^2 + l1 |w|_1 + l2/2 |w|^2` (optionally `w >= 0`), solved by cyclic
//! coordinate descent on the Gram submatrix `G[C_j, C_j]`. The target itself is never in `C_j`
//! (EASE's and SLIM's zero diagonal). With `l1 > 0` and `w >= 0` it is SLIM with feature
//! selection (Ning & Karypis); with `l1 = 0` and signs free it is EASE restricted to each item's
//! neighbourhood, which keeps memory at `items x neighbors` weights instead of `items^2` and
//! time at `items x neighbors^2` per sweep instead of `items^3`.

use kindred_core::{top_k, FitContext, ItemIdx, Result};

pub(crate) use crate::common::item_weights::ItemWeights;
use rayon::prelude::*;

/// How each item's regression is solved.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct RegressionSettings {
    /// Candidate items per target (the most co-occurring ones).
    pub neighbors: usize,
    pub l1: f64,
    pub l2: f64,
    /// Keep weights >= 0 (SLIM).
    pub non_negative: bool,
    /// Coordinate-descent sweeps at most.
    pub sweeps: usize,
    /// Stop when no weight moved by more than this (relative to the largest weight).
    pub tolerance: f64,
}

/// Solves every target's regression from the dense Gram matrix `g` (n x n, row-major, without
/// any regularisation on its diagonal) and returns the weights by source item.
pub(crate) fn neighbourhood_weights(
    g: &[f32],
    n: usize,
    settings: &RegressionSettings,
    ctx: &FitContext,
) -> Result<ItemWeights> {
    ctx.progress.begin("item regressions", n as u64);
    // Per target: its (source, weight) pairs.
    let columns: Vec<Vec<(ItemIdx, f32)>> = (0..n)
        .into_par_iter()
        .with_min_len(16)
        .map(|j| -> Result<Vec<(ItemIdx, f32)>> {
            if j % 64 == 0 {
                ctx.cancel.check()?;
            }
            let column = solve_target(g, n, j, settings);
            ctx.progress.advance(1);
            Ok(column)
        })
        .collect::<Result<_>>()?;
    ctx.progress.finish();
    // Transpose: scoring walks a history's source items.
    let mut counts = vec![0u64; n + 1];
    for column in &columns {
        for &(i, _) in column {
            counts[i as usize + 1] += 1;
        }
    }
    for i in 0..n {
        counts[i + 1] += counts[i];
    }
    let total = counts[n] as usize;
    let mut next = counts.clone();
    let mut targets = vec![0 as ItemIdx; total];
    let mut weights = vec![0f32; total];
    for (j, column) in columns.iter().enumerate() {
        for &(i, w) in column {
            let slot = next[i as usize] as usize;
            targets[slot] = j as ItemIdx;
            weights[slot] = w;
            next[i as usize] += 1;
        }
    }
    Ok(ItemWeights {
        indptr: counts,
        items: targets,
        weights,
    })
}

/// The non-zero weights of one target `j`: coordinate descent on `G[C, C] w = G[C, j]`.
fn solve_target(g: &[f32], n: usize, j: usize, s: &RegressionSettings) -> Vec<(ItemIdx, f32)> {
    let row = &g[j * n..(j + 1) * n];
    // Co-occurring items only: an item never seen with j explains none of x_j.
    let candidates: Vec<usize> = top_k(row, s.neighbors, |i| {
        i as usize == j || row[i as usize] <= 0.0
    })
    .into_iter()
    .map(|c| c.item as usize)
    .collect();
    let m = candidates.len();
    if m == 0 {
        return Vec::new();
    }
    let mut a = vec![0f64; m * m];
    for (r, &cr) in candidates.iter().enumerate() {
        let source = &g[cr * n..(cr + 1) * n];
        for (c, &cc) in candidates.iter().enumerate() {
            a[r * m + c] = source[cc] as f64;
        }
    }
    let b: Vec<f64> = candidates.iter().map(|&c| row[c] as f64).collect();
    let mut w = vec![0f64; m];
    // q = A w, kept up to date as weights move.
    let mut q = vec![0f64; m];
    for _ in 0..s.sweeps.max(1) {
        let mut largest_step = 0f64;
        let mut largest_weight = 0f64;
        for k in 0..m {
            let akk = a[k * m + k] + s.l2;
            if akk <= 0.0 {
                continue;
            }
            // The correlation of x_j with item k's column, minus what the others explain.
            let rho = b[k] - (q[k] - a[k * m + k] * w[k]);
            let mut next = if rho > s.l1 {
                (rho - s.l1) / akk
            } else if rho < -s.l1 {
                (rho + s.l1) / akk
            } else {
                0.0
            };
            if s.non_negative {
                next = next.max(0.0);
            }
            let step = next - w[k];
            if step != 0.0 {
                let column = &a[k * m..(k + 1) * m];
                for (qi, &aki) in q.iter_mut().zip(column) {
                    *qi += step * aki;
                }
                w[k] = next;
            }
            largest_step = largest_step.max(step.abs());
            largest_weight = largest_weight.max(next.abs());
        }
        if largest_step <= s.tolerance * largest_weight.max(f64::MIN_POSITIVE) {
            break;
        }
    }
    candidates
        .iter()
        .zip(&w)
        .filter(|(_, &v)| v != 0.0)
        .map(|(&c, &v)| (c as ItemIdx, v as f32))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(l1: f64, l2: f64, non_negative: bool) -> RegressionSettings {
        RegressionSettings {
            neighbors: 10,
            l1,
            l2,
            non_negative,
            sweeps: 500,
            tolerance: 1e-9,
        }
    }

    /// A small Gram matrix X^T X from explicit rows of X (users x items).
    fn gram(x: &[[f32; 4]]) -> Vec<f32> {
        let mut g = vec![0f32; 16];
        for row in x {
            for i in 0..4 {
                for j in 0..4 {
                    g[i * 4 + j] += row[i] * row[j];
                }
            }
        }
        g
    }

    const X: [[f32; 4]; 6] = [
        [1.0, 1.0, 0.0, 0.0],
        [1.0, 1.0, 1.0, 0.0],
        [0.0, 1.0, 1.0, 0.0],
        [1.0, 0.0, 1.0, 1.0],
        [0.0, 0.0, 1.0, 1.0],
        [1.0, 1.0, 0.0, 1.0],
    ];

    #[test]
    fn without_l1_it_solves_the_ridge_normal_equations_with_a_zero_diagonal() {
        let g = gram(&X);
        let l2 = 0.5;
        let weights =
            neighbourhood_weights(&g, 4, &settings(0.0, l2, false), &FitContext::default())
                .unwrap();
        // For each target j: (G[-j,-j] + l2 I) w = G[-j, j], checked by the residual.
        for j in 0..4usize {
            let others: Vec<usize> = (0..4).filter(|&i| i != j && g[j * 4 + i] > 0.0).collect();
            let w: Vec<f64> = others
                .iter()
                .map(|&i| {
                    let (targets, ws) = weights.of(i as ItemIdx);
                    targets
                        .iter()
                        .zip(ws)
                        .find(|(&t, _)| t as usize == j)
                        .map_or(0.0, |(_, &v)| v as f64)
                })
                .collect();
            for (r, &i) in others.iter().enumerate() {
                let lhs: f64 = others
                    .iter()
                    .zip(&w)
                    .map(|(&k, &wk)| g[i * 4 + k] as f64 * wk)
                    .sum::<f64>()
                    + l2 * w[r];
                assert!(
                    (lhs - g[i * 4 + j] as f64).abs() < 1e-6,
                    "target {j}, row {i}: {lhs} vs {}",
                    g[i * 4 + j]
                );
            }
        }
    }

    #[test]
    fn l1_and_non_negativity_make_weights_sparse_and_positive() {
        let g = gram(&X);
        let dense =
            neighbourhood_weights(&g, 4, &settings(0.0, 0.1, false), &FitContext::default())
                .unwrap();
        let sparse =
            neighbourhood_weights(&g, 4, &settings(1.5, 0.1, true), &FitContext::default())
                .unwrap();
        assert!(sparse.weights.iter().all(|&w| w > 0.0));
        assert!(sparse.weights.len() < dense.weights.len());
        // No item ever explains itself.
        for i in 0..4u32 {
            assert!(!sparse.of(i).0.contains(&i) && !dense.of(i).0.contains(&i));
        }
    }

    #[test]
    fn neighbourhoods_keep_the_most_co_occurring_items() {
        let g = gram(&X);
        let one = RegressionSettings {
            neighbors: 1,
            ..settings(0.0, 0.1, false)
        };
        let weights = neighbourhood_weights(&g, 4, &one, &FitContext::default()).unwrap();
        // Each target has at most one source, and it is its most co-occurring item.
        for j in 0..4usize {
            let sources: Vec<usize> = (0..4u32)
                .filter(|&i| weights.of(i).0.contains(&(j as ItemIdx)))
                .map(|i| i as usize)
                .collect();
            assert!(sources.len() <= 1);
            if let Some(&i) = sources.first() {
                let best = (0..4)
                    .filter(|&k| k != j)
                    .map(|k| g[j * 4 + k])
                    .fold(0f32, f32::max);
                assert_eq!(g[j * 4 + i], best);
            }
        }
    }
}
