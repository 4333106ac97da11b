//! Dense pairwise similarity matrices over co-rated columns (k-NN, Slope One) and their
//! compact upper-triangle storage.

use kindred_core::{CsMatrix, FitContext, Result};
use rayon::prelude::*;

/// Rows of the similarity matrix per unit of parallel work.
const ROWS: usize = 16;

/// Per-pair sums: `freq` co-ratings and up to five running sums chosen by the kernel.
pub(crate) type Acc = [f64; 5];

/// Dense `n × n` matrix over the rows of `xs` (the similarity side; columns are the other side,
/// whose rows `ys` list the `x`s that rated them). For each pair `x < x'`, `add` folds the pair
/// of values of every common column into the pair's sums, `finish(freq, sums)` turns them into
/// the entry `[x][x']`; `[x'][x] = mirror([x][x'])` and the diagonal is `diagonal`.
/// Deterministic: every entry is a sequential sum in column order.
#[allow(clippy::too_many_arguments)]
pub(crate) fn pair_matrix<A, F>(
    xs: &CsMatrix,
    x_vals: &[f64],
    ys: &CsMatrix,
    y_vals: &[f64],
    add: A,
    finish: F,
    diagonal: f32,
    mirror: fn(f32) -> f32,
    task: &str,
    ctx: &FitContext,
) -> Result<Vec<f32>>
where
    A: Fn(&mut Acc, f64, f64) + Sync,
    F: Fn(u32, &Acc) -> f32 + Sync,
{
    let n = xs.n_rows();
    let mut m = vec![0f32; n * n];
    if n == 0 {
        return Ok(m);
    }
    ctx.progress.begin(task, n as u64);
    let (x_ptr, y_ptr) = (xs.indptr(), ys.indptr());
    m.par_chunks_mut(n * ROWS).enumerate().try_for_each_init(
        || (vec![0u32; n], vec![[0f64; 5]; n]),
        |(freq, acc), (c, chunk)| -> Result<()> {
            ctx.cancel.check()?;
            let first = c * ROWS;
            for (r, row) in chunk.chunks_mut(n).enumerate() {
                let x = first + r;
                for (p, &y) in xs.row(x).iter().enumerate() {
                    let rx = x_vals[x_ptr[x] + p];
                    let y = y as usize;
                    let cols = ys.row(y);
                    let from = cols.partition_point(|&c| (c as usize) <= x);
                    let vals = &y_vals[y_ptr[y] + from..y_ptr[y + 1]];
                    for (&x2, &ry) in cols[from..].iter().zip(vals) {
                        let x2 = x2 as usize;
                        freq[x2] += 1;
                        add(&mut acc[x2], rx, ry);
                    }
                }
                row[x] = diagonal;
                for x2 in x + 1..n {
                    row[x2] = finish(freq[x2], &acc[x2]);
                    freq[x2] = 0;
                    acc[x2] = [0.0; 5];
                }
            }
            ctx.progress.advance((chunk.len() / n) as u64);
            Ok(())
        },
    )?;
    // Lower triangle from the upper one, in tiles for cache locality.
    const TILE: usize = 64;
    for bi in (0..n).step_by(TILE) {
        for bj in (0..=bi).step_by(TILE) {
            for i in bi..(bi + TILE).min(n) {
                for j in bj..(bj + TILE).min(i) {
                    m[i * n + j] = mirror(m[j * n + i]);
                }
            }
        }
    }
    ctx.progress.finish();
    Ok(m)
}

/// The strict upper triangle of a dense `n × n` matrix, row by row.
pub(crate) fn upper_triangle(m: &[f32], n: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(n * n.saturating_sub(1) / 2);
    for x in 0..n {
        out.extend_from_slice(&m[x * n + x + 1..(x + 1) * n]);
    }
    out
}

/// Rebuilds a dense matrix from [`upper_triangle`], the diagonal and the mirror rule.
pub(crate) fn from_upper_triangle(
    upper: &[f32],
    n: usize,
    diagonal: f32,
    mirror: fn(f32) -> f32,
) -> Vec<f32> {
    let mut m = vec![0f32; n * n];
    let mut at = 0;
    for x in 0..n {
        m[x * n + x] = diagonal;
        let len = n - x - 1;
        m[x * n + x + 1..(x + 1) * n].copy_from_slice(&upper[at..at + len]);
        at += len;
    }
    for x in 0..n {
        for x2 in 0..x {
            m[x * n + x2] = mirror(m[x2 * n + x]);
        }
    }
    m
}

/// Mean of each row's values (0 for empty rows) and population standard deviation.
pub(crate) fn row_moments(m: &CsMatrix, vals: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let ptr = m.indptr();
    (0..m.n_rows())
        .map(|r| {
            let v = &vals[ptr[r]..ptr[r + 1]];
            if v.is_empty() {
                return (0.0, 0.0);
            }
            let mean = v.iter().sum::<f64>() / v.len() as f64;
            let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / v.len() as f64;
            (mean, var.sqrt())
        })
        .unzip()
}
