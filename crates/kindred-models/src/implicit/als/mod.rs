//! Implicit-feedback alternating least squares (Hu, Koren & Volinsky 2008), as in the `implicit`
//! Python library.
//!
//! Every observed (user, item) pair has preference `p_ui = 1` and confidence `c_ui` computed from
//! the summed implicit weight `w_ui` of the pair's events; unobserved pairs have `p = 0`, `c = 1`.
//! The model minimises `sum c_ui (p_ui - x_u . y_i)^2 + reg (|x_u|^2 + |y_i|^2)` by alternately
//! solving every user vector with the items fixed and every item vector with the users fixed.
//! Confidence is `1 + alpha * w` (Hu et al., `confidence=hu`, the default) or `alpha * w` (what
//! `implicit` does: it passes `alpha * w` as the confidence, so its `alpha = 1` on binary data
//! weighs observed pairs like unobserved ones).
//!
//! With the Gram trick each user's system is `(YtY + reg I + sum_i (c_ui - 1) y_i y_i^T) x_u =
//! sum_i c_ui y_i`: `YtY` is computed once per half-iteration, and a user costs O(n_u f^2) with
//! the exact solver (`solver=cholesky`: faer's Cholesky on the f x f system) or O(n_u f) per step
//! with the conjugate-gradient solver (`solver=cg`, `implicit`'s default: `cg_steps` steps warm-
//! started from the previous vector, never forming the matrix). Regularisation is not scaled by
//! the number of interactions, as in `implicit`. Rows are solved in parallel and independently, so
//! a fit is identical for any thread count.
//!
//! Scores are `x_u . y_i`. Anonymous users, and known users with extra query history, are folded
//! in: one exact solve of the same normal equations against the trained item factors.

use std::borrow::Cow;
use std::path::Path;

use faer::dyn_stack::{MemBuffer, MemStack};
use faer::linalg::cholesky::llt;
use faer::linalg::matmul::matmul;
use faer::linalg::matmul::triangular::{self, BlockStructure};
use faer::{Accum, MatMut, MatRef, Par};
use kindred_core::{CsMatrix, Error, FitContext, ItemIdx, Result, SplitMix64, TrainSet, UserIdx};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::model::{Algorithm, Model, UserQuery};
use crate::persist::{Fitted, TensorReader, TensorWriter};

/// How each user (item) vector is solved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Solver {
    /// Conjugate gradient, `cg_steps` steps from the previous vector (`implicit`'s default).
    #[default]
    Cg,
    /// Exact solve by Cholesky factorisation of the f x f system.
    Cholesky,
}

/// How an observed pair's summed weight becomes its confidence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Confidence {
    /// `1 + alpha * w` (Hu, Koren & Volinsky).
    #[default]
    Hu,
    /// `alpha * w` (the `implicit` library).
    Implicit,
}

/// Hyperparameters (names as `implicit`'s).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlsParams {
    pub factors: usize,
    /// L2 regularisation of every user and item vector (not scaled by counts).
    pub reg: f64,
    pub alpha: f64,
    pub confidence: Confidence,
    pub iterations: usize,
    pub solver: Solver,
    /// Conjugate-gradient steps per vector and half-iteration.
    pub cg_steps: usize,
    /// Seed of the initial factors; `None` uses the fit seed.
    pub seed: Option<u64>,
    /// Report the training loss after each iteration (costs about one more CG step per
    /// iteration; off by default, as `implicit`'s `calculate_training_loss`).
    pub training_loss: bool,
}

impl Default for AlsParams {
    fn default() -> Self {
        Self {
            factors: 64,
            reg: 0.05,
            alpha: 1.0,
            confidence: Confidence::Hu,
            iterations: 15,
            solver: Solver::Cg,
            cg_steps: 3,
            seed: None,
            training_loss: false,
        }
    }
}

impl AlsParams {
    /// Checks every parameter; errors name the parameter.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidInput(format!("als: {m}")));
        if self.factors == 0 {
            return bad("factors must be at least 1".into());
        }
        if !(self.reg.is_finite() && self.reg > 0.0) {
            return bad(format!(
                "reg must be a positive number (it keeps every system solvable), got {}",
                self.reg
            ));
        }
        if !(self.alpha.is_finite() && self.alpha > 0.0) {
            return bad(format!(
                "alpha must be a positive number, got {}",
                self.alpha
            ));
        }
        if self.iterations == 0 {
            return bad("iterations must be at least 1".into());
        }
        if self.solver == Solver::Cg && self.cg_steps == 0 {
            return bad("cg_steps must be at least 1".into());
        }
        Ok(())
    }

    fn confidence(&self, weight: f64) -> f64 {
        match self.confidence {
            Confidence::Hu => 1.0 + self.alpha * weight,
            Confidence::Implicit => self.alpha * weight,
        }
    }
}

/// The ALS algorithm.
#[derive(Debug, Clone, Default)]
pub struct Als {
    pub params: AlsParams,
}

/// Rows of a compressed view with repeated minor indices merged into one entry whose value is the
/// sum of the events' implicit weights (rows are sorted by minor index, so repeats are adjacent).
#[derive(Debug, Clone, Default)]
pub(crate) struct WeightedRows {
    indptr: Vec<usize>,
    indices: Vec<u32>,
    values: Vec<f32>,
}

impl WeightedRows {
    pub(crate) fn new(m: &CsMatrix, weights: &[f32]) -> Self {
        let mut out = Self {
            indptr: Vec::with_capacity(m.n_rows() + 1),
            indices: Vec::with_capacity(m.nnz()),
            values: Vec::with_capacity(m.nnz()),
        };
        out.indptr.push(0);
        for r in 0..m.n_rows() {
            let row_start = out.indices.len();
            for (&c, &e) in m.row(r).iter().zip(m.row_entries(r)) {
                let w = weights[e as usize];
                match out.values.last_mut() {
                    Some(v) if out.indices.len() > row_start && out.indices.last() == Some(&c) => {
                        *v += w
                    }
                    _ => {
                        out.indices.push(c);
                        out.values.push(w);
                    }
                }
            }
            out.indptr.push(out.indices.len());
        }
        out
    }

    pub(crate) fn n_rows(&self) -> usize {
        self.indptr.len() - 1
    }

    pub(crate) fn row(&self, r: usize) -> (&[u32], &[f32]) {
        let range = self.indptr[r]..self.indptr[r + 1];
        (&self.indices[range.clone()], &self.values[range])
    }

    pub(crate) fn values(&self) -> &[f32] {
        &self.values
    }
}

/// One side's rows as (other index, confidence) with non-positive weights dropped: a pair whose
/// events sum to nothing is no evidence of preference.
pub struct ConfidenceRows {
    indptr: Vec<usize>,
    indices: Vec<u32>,
    confidence: Vec<f64>,
}

impl ConfidenceRows {
    fn new(rows: &WeightedRows, params: &AlsParams) -> Self {
        let mut out = Self {
            indptr: vec![0],
            indices: Vec::with_capacity(rows.indices.len()),
            confidence: Vec::with_capacity(rows.indices.len()),
        };
        for r in 0..rows.n_rows() {
            let (cols, weights) = rows.row(r);
            for (&c, &w) in cols.iter().zip(weights) {
                if w > 0.0 {
                    out.indices.push(c);
                    out.confidence.push(params.confidence(w as f64));
                }
            }
            out.indptr.push(out.indices.len());
        }
        out
    }

    /// Rows given as CSR arrays of (other index, summed weight), e.g. one shard of a distributed
    /// job whose other indices point into a gathered buffer of the fixed side's factors.
    pub fn from_weighted(
        indptr: &[usize],
        indices: &[u32],
        weights: &[f32],
        params: &AlsParams,
    ) -> Result<Self> {
        let bad = |m: &str| Err(Error::InvalidInput(format!("als rows: {m}")));
        if indptr.first() != Some(&0) || indptr.windows(2).any(|w| w[0] > w[1]) {
            return bad("indptr must start at 0 and never decrease");
        }
        let nnz = indptr.last().copied().unwrap_or(0);
        if indices.len() != nnz || weights.len() != nnz {
            return bad("indices and weights must have indptr's last value entries");
        }
        let rows = WeightedRows {
            indptr: indptr.to_vec(),
            indices: indices.to_vec(),
            values: weights.to_vec(),
        };
        Ok(Self::new(&rows, params))
    }

    /// Number of rows.
    pub fn n_rows(&self) -> usize {
        self.indptr.len() - 1
    }

    /// Row `r` as (other indices, confidences).
    pub fn row(&self, r: usize) -> (&[u32], &[f64]) {
        let range = self.indptr[r]..self.indptr[r + 1];
        (&self.indices[range.clone()], &self.confidence[range])
    }
}

/// The `draw`-th value of ALS's initial factors for `seed`: uniform in `[0, 0.01)` as in
/// `implicit`. A single-node fit draws the user factors first (draw `u * f + k`), then the item
/// factors (draw `(n_users + i) * f + k`); a shard of a distributed fit computes the same values
/// for its own rows without drawing the others.
pub fn initial_value(seed: u64, draw: u64) -> f64 {
    SplitMix64::at(seed, draw).next_f64() * 0.01
}

/// `F^T F` of a row-major `rows x f` matrix, f x f row-major (symmetric). Sequential, so the
/// result does not depend on the thread count.
pub fn gram(factors: &[f64], f: usize) -> Vec<f64> {
    let rows = factors.len() / f.max(1);
    let m = MatRef::from_row_major_slice(factors, rows, f);
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
}

/// `a * b + c`, fused where the caller was compiled with FMA (`FUSED`); without FMA hardware a
/// fused multiply-add is a slow library call.
#[inline(always)]
fn madd<const FUSED: bool>(a: f64, b: f64, c: f64) -> f64 {
    if FUSED {
        a.mul_add(b, c)
    } else {
        a * b + c
    }
}

/// Dot product over 16 independent accumulators, so that the add (or FMA) latency chain does not
/// bound the loop once it is vectorised.
#[inline(always)]
fn dot_with<const FUSED: bool>(a: &[f64], b: &[f64]) -> f64 {
    #[cfg(target_arch = "x86_64")]
    if FUSED {
        // SAFETY: `FUSED` code is only reached from `solve_cg_avx2`, which runs only on CPUs with
        // AVX2 and FMA.
        return unsafe { dot_avx2(a, b) };
    }
    const LANES: usize = 16;
    let mut acc = [0f64; LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let mut tail = 0.0;
    for (x, y) in ca.remainder().iter().zip(cb.remainder()) {
        tail = madd::<FUSED>(*x, *y, tail);
    }
    for (x, y) in ca.zip(cb) {
        for k in 0..LANES {
            acc[k] = madd::<FUSED>(x[k], y[k], acc[k]);
        }
    }
    let mut half = LANES / 2;
    while half > 0 {
        for k in 0..half {
            acc[k] += acc[k + half];
        }
        half /= 2;
    }
    acc[0] + tail
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    dot_with::<false>(a, b)
}

/// An element type the AVX2 dot product loads four at a time as f64 lanes.
#[cfg(target_arch = "x86_64")]
trait Lanes: Copy + Into<f64> {
    /// # Safety
    /// `p` must be valid for four reads and the CPU must have AVX2.
    unsafe fn load4(p: *const Self) -> std::arch::x86_64::__m256d;
}

#[cfg(target_arch = "x86_64")]
impl Lanes for f64 {
    #[inline(always)]
    unsafe fn load4(p: *const f64) -> std::arch::x86_64::__m256d {
        // SAFETY: the caller guarantees four readable values and AVX2.
        unsafe { std::arch::x86_64::_mm256_loadu_pd(p) }
    }
}

#[cfg(target_arch = "x86_64")]
impl Lanes for f32 {
    #[inline(always)]
    unsafe fn load4(p: *const f32) -> std::arch::x86_64::__m256d {
        use std::arch::x86_64::{_mm256_cvtps_pd, _mm_loadu_ps};
        // SAFETY: the caller guarantees four readable values and AVX2.
        unsafe { _mm256_cvtps_pd(_mm_loadu_ps(p)) }
    }
}

/// Dot product with four AVX2 accumulators (auto-vectorisation of [`dot_with`] stayed at 128-bit
/// width, and the dot products are most of a CG step); `a` may be f32 (widened) or f64.
///
/// # Safety
/// The CPU must have AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn dot_avx2<T: Lanes>(a: &[T], b: &[f64]) -> f64 {
    use std::arch::x86_64::*;
    let n = a.len().min(b.len());
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let mut acc = [_mm256_setzero_pd(); 4];
    let mut k = 0;
    // SAFETY (all loads): every index read is below n, the length of both slices.
    unsafe {
        while k + 16 <= n {
            for (j, acc_j) in acc.iter_mut().enumerate() {
                let o = k + 4 * j;
                *acc_j = _mm256_fmadd_pd(T::load4(pa.add(o)), _mm256_loadu_pd(pb.add(o)), *acc_j);
            }
            k += 16;
        }
        while k + 4 <= n {
            acc[0] = _mm256_fmadd_pd(T::load4(pa.add(k)), _mm256_loadu_pd(pb.add(k)), acc[0]);
            k += 4;
        }
    }
    let v = _mm256_add_pd(_mm256_add_pd(acc[0], acc[1]), _mm256_add_pd(acc[2], acc[3]));
    let s = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd::<1>(v));
    let mut sum = _mm_cvtsd_f64(_mm_add_sd(s, _mm_unpackhi_pd(s, s)));
    while k < n {
        sum = a[k].into().mul_add(b[k], sum);
        k += 1;
    }
    sum
}

#[inline(always)]
fn axpy_with<const FUSED: bool>(alpha: f64, x: &[f64], y: &mut [f64]) {
    for (y, x) in y.iter_mut().zip(x) {
        *y = madd::<FUSED>(alpha, *x, *y);
    }
}

/// `out = A v` for a symmetric row-major f x f matrix.
#[inline(always)]
fn symv_with<const FUSED: bool>(a: &[f64], v: &[f64], out: &mut [f64]) {
    let f = v.len();
    for (o, row) in out.iter_mut().zip(a.chunks_exact(f)) {
        *o = dot_with::<FUSED>(row, v);
    }
}

fn symv(a: &[f64], v: &[f64], out: &mut [f64]) {
    symv_with::<false>(a, v, out);
}

/// The fixed side of a half-iteration: `G = YtY + reg I` and the other side's factors (f64 for
/// the exact solver; an f32 copy for conjugate gradient, whose loops are bound by fetching these
/// scattered rows: half the bytes, and the CG arithmetic itself stays f64).
#[derive(Clone, Copy)]
struct Fixed<'a, T = f64> {
    gram: &'a [f64],
    other: &'a [T],
    f: usize,
}

impl<T> Fixed<'_, T> {
    fn row(&self, c: u32) -> &[T] {
        &self.other[c as usize * self.f..(c as usize + 1) * self.f]
    }
}

/// `y . x` for an f32 row and an f64 vector.
#[inline(always)]
fn dot_row<const FUSED: bool>(y: &[f32], x: &[f64]) -> f64 {
    #[cfg(target_arch = "x86_64")]
    if FUSED {
        // SAFETY: `FUSED` code is only reached from `solve_cg_avx2` (AVX2 + FMA present).
        return unsafe { dot_avx2(y, x) };
    }
    let mut acc = [0f64; 4];
    let (cy, cx) = (y.chunks_exact(4), x.chunks_exact(4));
    let tail: f64 = cy
        .remainder()
        .iter()
        .zip(cx.remainder())
        .map(|(a, b)| *a as f64 * b)
        .sum();
    for (a, b) in cy.zip(cx) {
        for k in 0..4 {
            acc[k] = madd::<FUSED>(a[k] as f64, b[k], acc[k]);
        }
    }
    (acc[0] + acc[2]) + (acc[1] + acc[3]) + tail
}

/// `out += alpha y` for an f32 row.
#[inline(always)]
fn axpy_row<const FUSED: bool>(alpha: f64, y: &[f32], out: &mut [f64]) {
    for (o, v) in out.iter_mut().zip(y) {
        *o = madd::<FUSED>(alpha, *v as f64, *o);
    }
}

/// Per-thread buffers of a row solve.
struct Scratch {
    a: Vec<f64>,
    b: Vec<f64>,
    gathered: Vec<f64>,
    scaled: Vec<f64>,
    r: Vec<f64>,
    p: Vec<f64>,
    ap: Vec<f64>,
    stack: MemBuffer,
}

impl Scratch {
    fn new(f: usize) -> Self {
        Self {
            a: vec![0.0; f * f],
            b: vec![0.0; f],
            gathered: Vec::new(),
            scaled: Vec::new(),
            r: vec![0.0; f],
            p: vec![0.0; f],
            ap: vec![0.0; f],
            stack: MemBuffer::new(llt::factor::cholesky_in_place_scratch::<f64>(
                f,
                Par::Seq,
                Default::default(),
            )),
        }
    }
}

/// Exact solve of `(G + sum (c-1) y y^T) x = sum c y` where `G = YtY + reg I`; `false` when the
/// system is not positive definite (only possible with confidences below 1).
fn solve_cholesky(
    fixed: Fixed<'_>,
    cols: &[u32],
    conf: &[f64],
    s: &mut Scratch,
    x: &mut [f64],
) -> bool {
    let (n, f) = (cols.len(), fixed.f);
    s.gathered.clear();
    s.scaled.clear();
    s.b.fill(0.0);
    for (&c, &ci) in cols.iter().zip(conf) {
        let y = fixed.row(c);
        s.gathered.extend_from_slice(y);
        s.scaled.extend(y.iter().map(|v| v * (ci - 1.0)));
        axpy_with::<false>(ci, y, &mut s.b);
    }
    s.a.copy_from_slice(fixed.gram);
    let mut a = MatMut::from_row_major_slice_mut(&mut s.a, f, f);
    if n > 0 {
        let yu = MatRef::from_row_major_slice(&s.gathered, n, f);
        let scaled = MatRef::from_row_major_slice(&s.scaled, n, f);
        // The factorisation reads only the lower triangle, so only that half is updated.
        triangular::matmul(
            a.as_mut(),
            BlockStructure::TriangularLower,
            Accum::Add,
            yu.transpose(),
            BlockStructure::Rectangular,
            scaled,
            BlockStructure::Rectangular,
            1.0,
            Par::Seq,
        );
    }
    let stack = MemStack::new(&mut s.stack);
    if llt::factor::cholesky_in_place(
        a.as_mut(),
        Default::default(),
        Par::Seq,
        stack,
        Default::default(),
    )
    .is_err()
    {
        return false;
    }
    let rhs = MatMut::from_column_major_slice_mut(&mut s.b, f, 1);
    llt::solve::solve_in_place(a.as_ref(), rhs, Par::Seq, stack);
    x.copy_from_slice(&s.b);
    true
}

/// `cg_steps` conjugate-gradient steps on the same system from the current `x` (`implicit`'s
/// `least_squares_cg`: the matrix is applied as `G p + sum (c-1) (y.p) y`, never formed).
/// Rows ahead of the current one whose factors are prefetched in the CG loops.
const PREFETCH_AHEAD: usize = 4;

/// Asks the cache for the fixed-side row `cols[j]` (if any): the rows a CG loop visits are known
/// in advance but scattered, so the hardware prefetcher cannot guess them. Only in the AVX2 build
/// (`FUSED`), which is x86-64.
#[inline(always)]
fn prefetch_row<const FUSED: bool>(fixed: Fixed<'_, f32>, cols: &[u32], j: usize) {
    #[cfg(target_arch = "x86_64")]
    if FUSED {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        if let Some(&c) = cols.get(j) {
            let row = fixed.row(c);
            for line in row.chunks(16) {
                // SAFETY: prefetching is a hint; the address is inside `row`.
                unsafe { _mm_prefetch::<_MM_HINT_T0>(line.as_ptr().cast::<i8>()) };
            }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (fixed, cols, j);
}

#[inline(always)]
fn solve_cg_with<const FUSED: bool>(
    fixed: Fixed<'_, f32>,
    cols: &[u32],
    conf: &[f64],
    steps: usize,
    s: &mut Scratch,
    x: &mut [f64],
) {
    let (g, row) = (fixed.gram, |c: u32| fixed.row(c));
    symv_with::<FUSED>(g, x, &mut s.r);
    s.r.iter_mut().for_each(|v| *v = -*v);
    for (j, (&c, &ci)) in cols.iter().zip(conf).enumerate() {
        prefetch_row::<FUSED>(fixed, cols, j + PREFETCH_AHEAD);
        let y = row(c);
        axpy_row::<FUSED>(ci - (ci - 1.0) * dot_row::<FUSED>(y, x), y, &mut s.r);
    }
    s.p.copy_from_slice(&s.r);
    let mut rs_old = dot_with::<FUSED>(&s.r, &s.r);
    if rs_old < 1e-20 {
        return;
    }
    for _ in 0..steps {
        symv_with::<FUSED>(g, &s.p, &mut s.ap);
        for (j, (&c, &ci)) in cols.iter().zip(conf).enumerate() {
            prefetch_row::<FUSED>(fixed, cols, j + PREFETCH_AHEAD);
            let y = row(c);
            axpy_row::<FUSED>((ci - 1.0) * dot_row::<FUSED>(y, &s.p), y, &mut s.ap);
        }
        let step = rs_old / dot_with::<FUSED>(&s.p, &s.ap);
        axpy_with::<FUSED>(step, &s.p, x);
        axpy_with::<FUSED>(-step, &s.ap, &mut s.r);
        let rs_new = dot_with::<FUSED>(&s.r, &s.r);
        if rs_new < 1e-20 {
            break;
        }
        let beta = rs_new / rs_old;
        for (p, r) in s.p.iter_mut().zip(&s.r) {
            *p = madd::<FUSED>(beta, *p, *r);
        }
        rs_old = rs_new;
    }
}

/// [`solve_cg_with`] compiled for AVX2 + FMA where the CPU has them (twice the vector width of
/// the baseline x86-64 build, and fused multiply-adds), else the portable build.
fn solve_cg(
    fixed: Fixed<'_, f32>,
    cols: &[u32],
    conf: &[f64],
    steps: usize,
    s: &mut Scratch,
    x: &mut [f64],
) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: the CPU supports AVX2 and FMA (checked just above).
            return unsafe { solve_cg_avx2(fixed, cols, conf, steps, s, x) };
        }
    }
    solve_cg_with::<false>(fixed, cols, conf, steps, s, x)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn solve_cg_avx2(
    fixed: Fixed<'_, f32>,
    cols: &[u32],
    conf: &[f64],
    steps: usize,
    s: &mut Scratch,
    x: &mut [f64],
) {
    solve_cg_with::<true>(fixed, cols, conf, steps, s, x)
}

/// Re-solves every row of `target` against the fixed `other` factors.
fn solve_side(
    target: &mut [f64],
    rows: &ConfidenceRows,
    other: &[f64],
    params: &AlsParams,
) -> Result<()> {
    solve_rows(
        target,
        rows,
        FixedRows::F64(other),
        gram(other, params.factors),
        params,
    )
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
    let fixed32 = Fixed {
        gram: &g,
        other: &other32,
        f,
    };
    let failed = target
        .par_chunks_mut(f)
        .enumerate()
        .with_min_len(16)
        .map_init(
            || Scratch::new(f),
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

/// `implicit`'s training loss: the weighted squared error over every (user, item) cell plus the
/// regularisation, divided by the total confidence of all cells. Computed exactly without visiting
/// unobserved cells: `x^T YtY x` covers every cell as if unobserved, and each observed cell
/// corrects it by `(c-1) s^2 - 2 c s + c`.
fn loss(x: &[f64], y: &[f64], rows: &ConfidenceRows, params: &AlsParams, n_items: usize) -> f64 {
    let f = params.factors;
    let g = gram(y, f);
    let per_user: Vec<(f64, f64, usize)> = x
        .par_chunks(f)
        .enumerate()
        .map_init(
            || vec![0.0; f],
            |gx, (u, xu)| {
                symv(&g, xu, gx);
                let mut sum = dot(gx, xu);
                let mut total_conf = 0.0;
                let (cols, conf) = rows.row(u);
                for (&i, &c) in cols.iter().zip(conf) {
                    let s = dot(&y[i as usize * f..(i as usize + 1) * f], xu);
                    sum += (c - 1.0) * s * s - 2.0 * c * s + c;
                    total_conf += c;
                }
                (sum, total_conf, cols.len())
            },
        )
        .collect();
    let (mut sum, mut total_conf, mut nnz) = (0.0, 0.0, 0usize);
    for (s, c, n) in per_user {
        sum += s;
        total_conf += c;
        nnz += n;
    }
    let norms = dot(x, x) + dot(y, y);
    let cells = total_conf + (x.len() / f * n_items - nnz) as f64;
    (sum + params.reg * norms) / cells.max(1.0)
}

impl Algorithm for Als {
    fn name(&self) -> &'static str {
        "als"
    }

    fn params(&self) -> serde_json::Value {
        serde_json::to_value(&self.params).unwrap_or_default()
    }

    fn fit(&self, data: &TrainSet, ctx: &FitContext) -> Result<Box<dyn Model>> {
        Ok(Box::new(self.fit_model(data, ctx)?))
    }
}

impl Als {
    /// Trains and returns the concrete model (for fold-in and tests).
    pub fn fit_model(&self, data: &TrainSet, ctx: &FitContext) -> Result<AlsModel> {
        let params = &self.params;
        params.validate()?;
        ctx.cancel.check()?;
        let f = params.factors;
        let (n_users, n_items) = (data.n_users(), data.n_items());
        let weights = data.data.weights();
        let user_rows = WeightedRows::new(&data.by_user, weights);
        let by_user = ConfidenceRows::new(&user_rows, params);
        let by_item = ConfidenceRows::new(&WeightedRows::new(&data.by_item, weights), params);

        // implicit's initialisation: uniform in [0, 0.01). Users are solved first, so only the
        // item factors (and the CG warm start of the users) depend on it.
        let seed = params.seed.unwrap_or(ctx.seed);
        let init = |first_draw: usize, n: usize| -> Vec<f64> {
            (first_draw..first_draw + n * f)
                .map(|d| initial_value(seed, d as u64))
                .collect()
        };
        let mut x = init(0, n_users);
        let mut y = init(n_users * f, n_items);

        ctx.progress
            .begin("als iterations", params.iterations as u64);
        for it in 0..params.iterations {
            ctx.cancel.check()?;
            solve_side(&mut x, &by_user, &y, params)?;
            ctx.cancel.check()?;
            solve_side(&mut y, &by_item, &x, params)?;
            if params.training_loss {
                ctx.progress
                    .epoch(it, loss(&x, &y, &by_user, params, n_items), None);
            }
            ctx.progress.advance(1);
        }
        ctx.progress.finish();

        AlsModel::assemble(
            params.clone(),
            data,
            &user_rows,
            x.iter().map(|&v| v as f32).collect(),
            y.iter().map(|&v| v as f32).collect(),
        )
    }
}

/// A fitted ALS model.
#[derive(Debug, Clone)]
pub struct AlsModel {
    /// `n_users x factors`, row-major.
    user_factors: Vec<f32>,
    /// `n_items x factors`, row-major.
    item_factors: Vec<f32>,
    /// Summed weight of each user's training items, aligned with `fitted.seen`, for fold-in of
    /// known users with extra history.
    user_weights: Vec<f32>,
    /// Where each user's run starts in `user_weights`.
    weight_offsets: Vec<usize>,
    /// `YtY` of the stored (f32) item factors, in f64, for fold-in.
    item_gram: Vec<f64>,
    pub params: AlsParams,
    fitted: Fitted,
}

impl AlsModel {
    /// A model from factors trained elsewhere (e.g. by a distributed job) for the users and items
    /// of `data`, in `data`'s index order: `n_users x factors` and `n_items x factors`,
    /// row-major. `data` provides the seen items and the fold-in weights, as a fit on it would.
    pub fn from_factors(
        params: AlsParams,
        data: &TrainSet,
        user_factors: Vec<f32>,
        item_factors: Vec<f32>,
    ) -> Result<Self> {
        params.validate()?;
        let f = params.factors;
        if user_factors.len() != data.n_users() * f || item_factors.len() != data.n_items() * f {
            return Err(Error::InvalidInput(format!(
                "als: {} user and {} item factor values do not fit {} users and {} items x {f} factors",
                user_factors.len(),
                item_factors.len(),
                data.n_users(),
                data.n_items()
            )));
        }
        let user_rows = WeightedRows::new(&data.by_user, data.data.weights());
        Self::assemble(params, data, &user_rows, user_factors, item_factors)
    }

    fn assemble(
        params: AlsParams,
        data: &TrainSet,
        user_rows: &WeightedRows,
        user_factors: Vec<f32>,
        item_factors: Vec<f32>,
    ) -> Result<Self> {
        let fitted = Fitted::from_train(data);
        Ok(AlsModel {
            weight_offsets: AlsModel::seen_offsets(&fitted),
            item_gram: AlsModel::item_gram(&item_factors, params.factors),
            user_factors,
            item_factors,
            user_weights: user_rows.values().to_vec(),
            params,
            fitted,
        })
    }

    /// Start of each user's run of seen items (one more entry than users: the total).
    fn seen_offsets(fitted: &Fitted) -> Vec<usize> {
        let mut offsets = Vec::with_capacity(fitted.users.len() + 1);
        let mut total = 0;
        offsets.push(0);
        for u in 0..fitted.users.len() as u32 {
            total += fitted.seen.items_of(u).len();
            offsets.push(total);
        }
        offsets
    }

    fn item_gram(item_factors: &[f32], f: usize) -> Vec<f64> {
        let wide: Vec<f64> = item_factors.iter().map(|&v| v as f64).collect();
        gram(&wide, f)
    }

    /// Loads a model saved by [`Model::save`].
    pub fn load(params: serde_json::Value, fitted: Fitted, tensors: &TensorReader) -> Result<Self> {
        let params: AlsParams = serde_json::from_value(params)
            .map_err(|e| Error::InvalidInput(format!("als parameters: {e}")))?;
        params.validate()?;
        let f = params.factors;
        let (nu, ni) = (fitted.users.len(), fitted.items.len());
        let weight_offsets = Self::seen_offsets(&fitted);
        let n_seen = weight_offsets.last().copied().unwrap_or(0);
        let item_factors = tensors.f32_len("als.item_factors", ni * f)?;
        Ok(Self {
            user_factors: tensors.f32_len("als.user_factors", nu * f)?,
            item_gram: Self::item_gram(&item_factors, f),
            item_factors,
            user_weights: tensors.f32_len("als.user_weights", n_seen)?,
            weight_offsets,
            params,
            fitted,
        })
    }

    /// Number of latent factors.
    pub fn factors(&self) -> usize {
        self.params.factors
    }

    /// The trained vector of a user (`None` beyond the trained users).
    pub fn user_vector(&self, user: UserIdx) -> Option<&[f32]> {
        let f = self.params.factors;
        self.user_factors
            .get(user as usize * f..(user as usize + 1) * f)
    }

    /// The trained vector of an item (`None` beyond the trained items).
    pub fn item_vector(&self, item: ItemIdx) -> Option<&[f32]> {
        let f = self.params.factors;
        self.item_factors
            .get(item as usize * f..(item as usize + 1) * f)
    }

    /// Solves a user vector from `items` (repeats summed) against the trained item factors: the
    /// same normal equations as training, one exact solve. Unknown items are ignored; an empty or
    /// unusable history gives the zero vector.
    pub fn fold_in(&self, items: &[(ItemIdx, f32)]) -> Vec<f32> {
        let f = self.params.factors;
        let n_items = self.fitted.items.len();
        let mut merged: Vec<(ItemIdx, f32)> = items
            .iter()
            .copied()
            .filter(|&(i, _)| (i as usize) < n_items)
            .collect();
        merged.sort_by_key(|&(i, _)| i);
        let mut cols: Vec<u32> = Vec::with_capacity(merged.len());
        let mut weights: Vec<f32> = Vec::with_capacity(merged.len());
        for (i, w) in merged {
            match weights.last_mut() {
                Some(last) if cols.last() == Some(&i) => *last += w,
                _ => {
                    cols.push(i);
                    weights.push(w);
                }
            }
        }
        let (cols, conf): (Vec<u32>, Vec<f64>) = cols
            .into_iter()
            .zip(weights)
            .filter(|&(_, w)| w > 0.0)
            .map(|(i, w)| (i, self.params.confidence(w as f64)))
            .unzip();
        if cols.is_empty() {
            return vec![0.0; f];
        }
        let mut g = self.item_gram.clone();
        for k in 0..f {
            g[k * f + k] += self.params.reg;
        }
        let y: Vec<f64> = cols
            .iter()
            .flat_map(|&i| &self.item_factors[i as usize * f..(i as usize + 1) * f])
            .map(|&v| v as f64)
            .collect();
        // The gathered rows are indexed 0..n in the same order as `cols`.
        let local: Vec<u32> = (0..cols.len() as u32).collect();
        let mut x = vec![0.0; f];
        let fixed = Fixed {
            gram: &g,
            other: &y,
            f,
        };
        if solve_cholesky(fixed, &local, &conf, &mut Scratch::new(f), &mut x) {
            x.iter().map(|&v| v as f32).collect()
        } else {
            vec![0.0; f]
        }
    }

    /// The vector a query is scored with: the trained one for a known user without extra
    /// history, else a fold-in of the user's training items plus the query's history.
    fn query_vector(&self, query: &UserQuery<'_>) -> Cow<'_, [f32]> {
        let trained = query.user.and_then(|u| self.user_vector(u));
        if query.history.is_empty() {
            return match trained {
                Some(x) => Cow::Borrowed(x),
                None => Cow::Owned(vec![0.0; self.params.factors]),
            };
        }
        let mut items: Vec<(ItemIdx, f32)> = query.history.iter().map(|&i| (i, 1.0)).collect();
        if let Some(u) = query.user.filter(|_| trained.is_some()) {
            let seen = self.fitted.seen.items_of(u);
            let start = self.weight_offsets.get(u as usize).copied().unwrap_or(0);
            if let Some(w) = self.user_weights.get(start..start + seen.len()) {
                items.extend(seen.iter().copied().zip(w.iter().copied()));
            }
        }
        Cow::Owned(self.fold_in(&items))
    }
}

/// Dot product with 8 independent accumulators (vectorises; fixed order, so deterministic).
fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for k in 0..8 {
            acc[k] += x[k] * y[k];
        }
    }
    acc.iter().sum::<f32>() + tail
}

impl Model for AlsModel {
    fn name(&self) -> &'static str {
        "als"
    }

    fn params(&self) -> serde_json::Value {
        serde_json::to_value(&self.params).unwrap_or_default()
    }

    fn fitted(&self) -> &Fitted {
        &self.fitted
    }

    fn score(&self, query: &UserQuery<'_>, items: &[ItemIdx], out: &mut [f32]) {
        let f = self.params.factors;
        let x = self.query_vector(query);
        for (o, &i) in out.iter_mut().zip(items) {
            *o = self
                .item_factors
                .get(i as usize * f..(i as usize + 1) * f)
                .map_or(0.0, |y| dot_f32(&x, y));
        }
    }

    fn score_all(&self, query: &UserQuery<'_>, out: &mut [f32]) {
        let f = self.params.factors;
        let x = self.query_vector(query);
        out.fill(0.0);
        for (o, y) in out.iter_mut().zip(self.item_factors.chunks_exact(f)) {
            *o = dot_f32(&x, y);
        }
    }

    fn item_embeddings(&self) -> Option<(usize, &[f32])> {
        Some((self.params.factors, &self.item_factors))
    }

    fn user_embeddings(&self) -> Option<(usize, &[f32])> {
        Some((self.params.factors, &self.user_factors))
    }

    fn save(&self, dir: &Path) -> Result<()> {
        let f = self.params.factors;
        let (nu, ni) = (self.user_factors.len() / f, self.item_factors.len() / f);
        let mut t = TensorWriter::new();
        t.f32("als.user_factors", &[nu, f], &self.user_factors)
            .f32("als.item_factors", &[ni, f], &self.item_factors)
            .f32(
                "als.user_weights",
                &[self.user_weights.len()],
                &self.user_weights,
            );
        self.fitted.save(dir, "als", Model::params(self), t)
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    use super::*;
    use kindred_core::Protocol;

    /// A temporal:0.2,positive>=4 split of a synthetic dataset with planted structure: the
    /// training set and each user's relevant test items not already in training.
    pub fn temporal_split(spec: &str) -> (TrainSet, Vec<Vec<u32>>) {
        use kindred_data::synthetic::{generate, SyntheticConfig};
        let synthetic = generate(&SyntheticConfig::parse(spec).unwrap()).unwrap();
        let protocol = Protocol::parse("temporal:0.2,positive>=4").unwrap();
        let prepared = protocol.prepare(&synthetic.dataset.interactions);
        let split = protocol.splits(&prepared).unwrap().remove(0);
        let train = TrainSet::new(prepared.subset(&split.train));
        let mut relevant = vec![Vec::new(); prepared.n_users()];
        for &r in &split.test {
            let (u, i) = (prepared.users()[r as usize], prepared.items()[r as usize]);
            if !train.by_user.contains(u as usize, i) && !relevant[u as usize].contains(&i) {
                relevant[u as usize].push(i);
            }
        }
        (train, relevant)
    }

    /// Mean hit rate and recall at 10 over users with relevant items, training items excluded.
    pub fn hit_and_recall(model: &dyn Model, relevant: &[Vec<u32>]) -> (f64, f64) {
        let (mut hits, mut recall, mut users) = (0.0, 0.0, 0.0);
        for (u, rel) in relevant.iter().enumerate().filter(|(_, r)| !r.is_empty()) {
            let top = model.recommend(&UserQuery::known(u as u32), 10, &crate::model::AllItems);
            let found = top.iter().filter(|s| rel.contains(&s.item)).count() as f64;
            hits += (found > 0.0) as u8 as f64;
            recall += found / rel.len() as f64;
            users += 1.0;
        }
        (hits / users, recall / users)
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::{hit_and_recall, temporal_split};
    use super::*;
    use crate::model::AllItems;
    use kindred_core::{EventType, Interaction, InteractionsBuilder, Progress};
    use std::sync::{Arc, Mutex};

    const DATA: &str = "users=400,items=200,seed=5";

    fn params(solver: Solver) -> AlsParams {
        AlsParams {
            factors: 16,
            solver,
            ..Default::default()
        }
    }

    fn fit(data: &TrainSet, params: AlsParams) -> AlsModel {
        Als { params }
            .fit_model(data, &FitContext::default())
            .unwrap()
    }

    fn cosine(a: &[f32], b: &[f32]) -> f64 {
        let d = |x: &[f32], y: &[f32]| {
            x.iter()
                .zip(y)
                .map(|(a, b)| *a as f64 * *b as f64)
                .sum::<f64>()
        };
        d(a, b) / (d(a, a) * d(b, b)).sqrt()
    }

    #[derive(Default)]
    struct Losses(Mutex<Vec<f64>>);
    impl Progress for Losses {
        fn epoch(&self, _epoch: usize, loss: f64, _validation: Option<f64>) {
            self.0.lock().unwrap().push(loss);
        }
    }

    #[test]
    fn cholesky_step_solves_the_normal_equations() {
        // One user, items a (weight 2: two events of 1) and b (weight 1), f = 2, against fixed Y.
        let f = 2;
        let y = [0.5, -0.2, 0.1, 0.4, 0.3, 0.3];
        let p = AlsParams {
            factors: f,
            reg: 0.1,
            alpha: 2.0,
            solver: Solver::Cholesky,
            ..Default::default()
        };
        let cols = [0u32, 1];
        let conf = [p.confidence(2.0), p.confidence(1.0)];
        assert_eq!(conf, [5.0, 3.0]);
        let mut g = gram(&y, f);
        // YtY by hand: [0.25+0.01+0.09, -0.1+0.04+0.09; ., 0.04+0.16+0.09].
        let want = [0.35, 0.03, 0.03, 0.29];
        for (a, b) in g.iter().zip(want) {
            assert!((a - b).abs() < 1e-12, "{g:?}");
        }
        g[0] += 0.1;
        g[3] += 0.1;
        let mut x = [0.0; 2];
        let fixed = Fixed {
            gram: &g,
            other: &y,
            f,
        };
        assert!(solve_cholesky(
            fixed,
            &cols,
            &conf,
            &mut Scratch::new(f),
            &mut x
        ));
        // A = YtY + reg I + 4 y_a y_a^T + 2 y_b y_b^T; b = 5 y_a + 3 y_b.
        let a = [
            0.45 + 4.0 * 0.25 + 2.0 * 0.01,
            0.03 + 4.0 * -0.1 + 2.0 * 0.04,
            0.39 + 4.0 * 0.04 + 2.0 * 0.16,
        ];
        let b = [5.0 * 0.5 + 3.0 * 0.1, 5.0 * -0.2 + 3.0 * 0.4];
        let residual = [
            a[0] * x[0] + a[1] * x[1] - b[0],
            a[1] * x[0] + a[2] * x[1] - b[1],
        ];
        assert!(residual.iter().all(|r| r.abs() < 1e-12), "{residual:?}");

        // Enough CG steps reach the same solution from any start; CG reads the fixed rows as f32,
        // so agreement is to f32 rounding of Y.
        let y32: Vec<f32> = y.iter().map(|&v| v as f32).collect();
        let fixed32 = Fixed {
            gram: &g,
            other: &y32[..],
            f,
        };
        let mut xc = [0.3, -1.0];
        solve_cg(fixed32, &cols, &conf, 2, &mut Scratch::new(f), &mut xc);
        assert!(
            (xc[0] - x[0]).abs() < 1e-6 && (xc[1] - x[1]).abs() < 1e-6,
            "{xc:?} {x:?}"
        );
    }

    #[test]
    fn repeated_events_sum_their_weights() {
        let mut b = InteractionsBuilder::new();
        for (u, i, w) in [
            ("x", "a", 1.0),
            ("x", "a", 2.5),
            ("x", "b", 1.0),
            ("y", "a", 0.0),
        ] {
            let mut row = Interaction::implicit(u, i, EventType::View, Some(0));
            row.weight = w;
            b.push(row);
        }
        let data = TrainSet::new(b.build());
        let rows = WeightedRows::new(&data.by_user, data.data.weights());
        assert_eq!(rows.row(0), (&[0u32, 1][..], &[3.5f32, 1.0][..]));
        let conf = ConfidenceRows::new(&rows, &AlsParams::default());
        assert_eq!(conf.row(0), (&[0u32, 1][..], &[4.5, 2.0][..]));
        // A zero summed weight is no evidence: y has nothing to learn from.
        assert_eq!(conf.row(1).0.len(), 0);
        let model = fit(&data, params(Solver::Cholesky));
        assert!(model.user_vector(1).unwrap().iter().all(|&v| v == 0.0));
    }

    #[test]
    fn exact_loss_never_increases_and_cg_tracks_it() {
        let (train, _) = temporal_split(DATA);
        let run = |solver| {
            let losses = Arc::new(Losses::default());
            let ctx = FitContext {
                progress: losses.clone(),
                ..FitContext::default()
            };
            Als {
                params: AlsParams {
                    training_loss: true,
                    ..params(solver)
                },
            }
            .fit_model(&train, &ctx)
            .unwrap();
            let l = losses.0.lock().unwrap().clone();
            l
        };
        let exact = run(Solver::Cholesky);
        assert_eq!(exact.len(), 15);
        assert!(exact.iter().all(|l| l.is_finite() && *l > 0.0), "{exact:?}");
        assert!(
            exact.windows(2).all(|w| w[1] <= w[0] * (1.0 + 1e-9)),
            "{exact:?}"
        );
        let cg = run(Solver::Cg);
        let (e, c) = (exact[14], cg[14]);
        // Off by default: no loss reported.
        let quiet = Arc::new(Losses::default());
        let ctx = FitContext {
            progress: quiet.clone(),
            ..FitContext::default()
        };
        Als {
            params: params(Solver::Cg),
        }
        .fit_model(&train, &ctx)
        .unwrap();
        assert!(quiet.0.lock().unwrap().is_empty());
        assert!(
            (c - e).abs() / e < 0.02,
            "final loss cg {c} vs cholesky {e}"
        );
    }

    #[test]
    fn fold_in_reproduces_trained_users() {
        let (train, _) = temporal_split(DATA);
        let model = fit(&train, params(Solver::Cholesky));
        let mut worst = 1.0f64;
        let (mut overlap, mut same_first, mut users) = (0, 0, 0);
        for u in 0..train.n_users() as u32 {
            let seen = model.fitted.seen.items_of(u);
            if seen.is_empty() {
                continue;
            }
            users += 1;
            let start = model.weight_offsets[u as usize];
            let history: Vec<(ItemIdx, f32)> = seen
                .iter()
                .copied()
                .zip(
                    model.user_weights[start..start + seen.len()]
                        .iter()
                        .copied(),
                )
                .collect();
            let folded = model.fold_in(&history);
            worst = worst.min(cosine(&folded, model.user_vector(u).unwrap()));
            let known = model.recommend(&UserQuery::known(u), 10, &AllItems);
            let anonymous = model.recommend(&UserQuery::anonymous(seen), 10, &AllItems);
            overlap += known
                .iter()
                .filter(|k| anonymous.iter().any(|a| a.item == k.item))
                .count();
            same_first += (known[0].item == anonymous[0].item) as usize;
        }
        let mean_overlap = overlap as f64 / users as f64;
        // Measured: worst cosine 0.99922, mean top-10 overlap 9.9, same first item for 393 of
        // 400 users. Not exact: trained user vectors were solved against the item factors of
        // the previous half-iteration, fold-in against the final ones.
        assert!(worst > 0.995, "worst fold-in cosine {worst}");
        assert!(mean_overlap > 9.5, "mean top-10 overlap {mean_overlap}");
        assert!(
            same_first * 100 >= users * 95,
            "{same_first} of {users} first items agree"
        );
    }

    #[test]
    fn beats_popularity_on_planted_structure() {
        let (train, relevant) = temporal_split("users=600,items=300,seed=3");
        let ctx = FitContext::default();
        let popularity = crate::simple::popularity::Popularity::default()
            .fit(&train, &ctx)
            .unwrap();
        let (pop_hit, pop_recall) = hit_and_recall(popularity.as_ref(), &relevant);
        for solver in [Solver::Cg, Solver::Cholesky] {
            let als = Als {
                params: params(solver),
            }
            .fit(&train, &ctx)
            .unwrap();
            let (hit, recall) = hit_and_recall(als.as_ref(), &relevant);
            assert!(
                hit > 1.3 * pop_hit && recall > 1.3 * pop_recall,
                "{solver:?}: als hit@10 {hit:.4} recall@10 {recall:.4}; popularity {pop_hit:.4} {pop_recall:.4}"
            );
        }
    }

    #[test]
    fn same_seed_same_factors_for_any_thread_count() {
        let (train, _) = temporal_split(DATA);
        let on = |threads: usize, seed: u64| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap()
                .install(|| {
                    let p = AlsParams {
                        seed: Some(seed),
                        ..params(Solver::Cg)
                    };
                    let m = fit(&train, p);
                    (m.user_factors, m.item_factors)
                })
        };
        let one = on(1, 7);
        assert_eq!(one, on(3, 7));
        assert_ne!(one, on(1, 8));
    }

    #[test]
    fn save_load_scores_identically_and_folds_in_query_history() {
        let (train, _) = temporal_split(DATA);
        let model = fit(&train, params(Solver::Cg));
        let dir = std::env::temp_dir().join(format!("kindred-als-{}", std::process::id()));
        model.save(&dir).unwrap();
        let loaded = crate::registry::load_model(&dir).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(loaded.name(), "als");
        assert_eq!(loaded.params(), Model::params(&model));
        assert_eq!(loaded.item_embeddings(), model.item_embeddings());
        assert_eq!(loaded.user_embeddings(), model.user_embeddings());
        // A known user's score is the dot product of the two embeddings.
        let (f, users) = model.user_embeddings().unwrap();
        let (_, items) = model.item_embeddings().unwrap();
        assert_eq!(users.len(), train.n_users() * f);
        let mut scores = vec![0f32; train.n_items()];
        model.score_all(&UserQuery::known(5), &mut scores);
        let by_hand: f32 = (0..f).map(|j| users[5 * f + j] * items[7 * f + j]).sum();
        assert!(
            (scores[7] - by_hand).abs() < 1e-4,
            "{} vs {by_hand}",
            scores[7]
        );
        let history = [3u32, 17, 3, 40];
        let n = train.n_items();
        let queries = [
            UserQuery::known(0),
            UserQuery::known(5),
            UserQuery::anonymous(&history),
            UserQuery {
                user: Some(5),
                history: &history,
            },
        ];
        for q in queries {
            let (mut a, mut b) = (vec![0f32; n], vec![0f32; n]);
            model.score_all(&q, &mut a);
            loaded.score_all(&q, &mut b);
            assert_eq!(a, b);
            let mut some = [0f32; 2];
            loaded.score(&q, &[17, 2], &mut some);
            assert_eq!(some, [b[17], b[2]]);
        }
        // Extra history moves a known user's vector; an empty anonymous query scores nothing.
        let (mut plain, mut extra) = (vec![0f32; n], vec![0f32; n]);
        model.score_all(&UserQuery::known(5), &mut plain);
        model.score_all(
            &UserQuery {
                user: Some(5),
                history: &history,
            },
            &mut extra,
        );
        assert_ne!(plain, extra);
        model.score_all(&UserQuery::anonymous(&[]), &mut plain);
        assert!(plain.iter().all(|&s| s == 0.0));
    }

    #[test]
    fn rejects_bad_params_and_honours_cancel() {
        let (train, _) = temporal_split("users=50,items=30,seed=1");
        for spec in [
            "als:factors=0",
            "als:reg=0",
            "als:alpha=-1",
            "als:iterations=0",
            "als:cg_steps=0",
            "als:solver=qr",
            "als:confidence=log",
        ] {
            let err = crate::registry::build_algorithm(spec)
                .and_then(|a| a.fit(&train, &FitContext::default()).map(|_| ()));
            assert!(err.is_err(), "{spec} accepted");
        }
        let ctx = FitContext::default();
        ctx.cancel.cancel();
        let err = Als::default()
            .fit(&train, &ctx)
            .err()
            .map(|e| e.to_string());
        assert_eq!(err, Some(Error::Cancelled.to_string()));
    }
}
