//! One half-iteration: every row of one side solved against the fixed other side, in parallel
//! and independently (so a fit is the same for any thread count), by the configured solver.

use std::borrow::Cow;

use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut, MatRef, Par};
use kindred_core::{Error, Result, SplitMix64};
use rayon::prelude::*;

use super::cg::solve_cg;
use super::cholesky::solve_cholesky;
use super::confidence::ConfidenceRows;
use super::fixed_side::{Fixed, Scratch};
use super::params::{AlsParams, Solver};

/// The `draw`-th value of ALS's initial factors for `seed`: uniform in `[0, 0.01)` as in
/// `implicit`. A single-node fit draws the user factors first (draw `u * f + k`), then the item
/// factors (draw `(n_users + i) * f + k`); a shard of a distributed fit computes the same values
/// for its own rows without drawing the others.
pub fn initial_value(seed: u64, draw: u64) -> f64 {
    SplitMix64::at(seed, draw).next_f64() * 0.01
}

/// Rows per block of [`gram`]: blocks are multiplied in parallel and their products summed in
/// block order.
const GRAM_BLOCK: usize = 1024;

/// `F^T F` of a row-major `rows x f` matrix, f x f row-major (symmetric). Blocks of
/// [`GRAM_BLOCK`] rows are multiplied in parallel and summed in block order, so the result does
/// not depend on the thread count.
pub fn gram(factors: &[f64], f: usize) -> Vec<f64> {
    let f = f.max(1);
    let partials: Vec<Vec<f64>> = factors
        .par_chunks(GRAM_BLOCK * f)
        .map(|block| {
            let m = MatRef::from_row_major_slice(block, block.len() / f, f);
            let mut out = vec![0.0; f * f];
            matmul(
                MatMut::from_row_major_slice_mut(&mut out, f, f),
                Accum::Replace,
                m.transpose(),
                m,
                1.0,
                Par::Seq,
            );
            out
        })
        .collect();
    let mut total = vec![0.0; f * f];
    for partial in partials {
        for (t, v) in total.iter_mut().zip(partial) {
            *t += v;
        }
    }
    total
}

/// Re-solves every row of `target` against the fixed `other` factors. Conjugate gradient reads
/// `other` through `other32`, an f32 copy refreshed here and kept by the caller between
/// half-iterations (a fresh megabyte-sized buffer each time costs page faults).
pub(super) fn solve_side(
    target: &mut [f64],
    rows: &ConfidenceRows,
    other: &[f64],
    other32: &mut Vec<f32>,
    params: &AlsParams,
) -> Result<()> {
    let g = gram(other, params.factors);
    match params.solver {
        Solver::Cg => {
            other32.clear();
            other32.extend(other.iter().map(|&v| v as f32));
            solve_rows(target, rows, FixedRows::F32(other32), g, params)
        }
        Solver::Cholesky => solve_rows(target, rows, FixedRows::F64(other), g, params),
    }
}

/// The fixed side's rows a solve reads. The exact solver reads them in f64; conjugate gradient
/// reads only an f32 copy (its loops are bound by fetching these rows), so a shard of a
/// distributed fit may be sent just that copy: half the bytes, the same result.
#[derive(Debug, Clone, Copy)]
pub enum FixedRows<'a> {
    F64(&'a [f64]),
    F32(&'a [f32]),
}

/// Re-solves every row of `target` (row `r` of `rows`, `factors` values each) against the fixed
/// side: `other` holds the rows that `rows` points into, `other_gram` is `YtY` over the *whole*
/// fixed side (which may hold more rows than `other`, as on one shard of a distributed fit). The
/// kernel of both the single-node and the distributed fit.
pub fn solve_rows(
    target: &mut [f64],
    rows: &ConfidenceRows,
    other: FixedRows<'_>,
    other_gram: Vec<f64>,
    params: &AlsParams,
) -> Result<()> {
    let f = params.factors;
    let other_len = match other {
        FixedRows::F64(o) => o.len(),
        FixedRows::F32(o) => o.len(),
    };
    if other_gram.len() != f * f
        || target.len() != rows.n_rows() * f
        || !other_len.is_multiple_of(f)
    {
        return Err(Error::InvalidInput(format!(
            "als: shapes disagree (gram {}, target {}, rows {}, other {other_len}, factors {f})",
            other_gram.len(),
            target.len(),
            rows.n_rows(),
        )));
    }
    if let Some(&top) = rows.indices.iter().max() {
        if top as usize >= other_len / f {
            return Err(Error::InvalidInput(format!(
                "als: a row points at fixed row {top} of {}",
                other_len / f
            )));
        }
    }
    let mut g = other_gram;
    for k in 0..f {
        g[k * f + k] += params.reg;
    }
    let (other64, other32): (&[f64], Cow<'_, [f32]>) = match (params.solver, other) {
        (Solver::Cg, FixedRows::F64(o)) => (&[], Cow::Owned(o.iter().map(|&v| v as f32).collect())),
        (Solver::Cg, FixedRows::F32(o)) => (&[], Cow::Borrowed(o)),
        (Solver::Cholesky, FixedRows::F64(o)) => (o, Cow::Borrowed(&[][..])),
        (Solver::Cholesky, FixedRows::F32(_)) => {
            return Err(Error::InvalidInput(
                "als: the exact solver needs the fixed rows in f64".into(),
            ))
        }
    };
    let fixed = Fixed {
        gram: &g,
        other: other64,
        f,
    };
    let gram32: Vec<f32> = match params.solver {
        Solver::Cg => g.iter().map(|&v| v as f32).collect(),
        Solver::Cholesky => Vec::new(),
    };
    let fixed32 = Fixed {
        gram: &gram32,
        other: &other32,
        f,
    };
    let failed = target
        .par_chunks_mut(f)
        .enumerate()
        .with_min_len(16)
        .map_init(
            || match params.solver {
                Solver::Cg => Scratch::for_cg(f),
                Solver::Cholesky => Scratch::new(f),
            },
            |s, (r, x)| {
                let (cols, conf) = rows.row(r);
                if cols.is_empty() {
                    x.fill(0.0);
                    return false;
                }
                match params.solver {
                    Solver::Cholesky => !solve_cholesky(fixed, cols, conf, s, x),
                    Solver::Cg => {
                        solve_cg(fixed32, cols, conf, params.cg_steps, s, x);
                        false
                    }
                }
            },
        )
        .filter(|&failed| failed)
        .count();
    if failed > 0 {
        return Err(Error::InvalidInput(format!(
            "als: {failed} systems were not positive definite; raise reg or use confidence=hu"
        )));
    }
    Ok(())
}
