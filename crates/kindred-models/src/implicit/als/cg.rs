//! The conjugate-gradient row solver (`solver=cg`, implicit's default): a few steps warm-started
//! from the previous vector, never forming the row's matrix; dispatched to an AVX2 + FMA build
//! where the CPU has both.

use super::fixed_side::{Fixed, Scratch};
use super::simd::{axpy_row, axpy_with, dot_row, dot_with, madd, symv_with};

/// `cg_steps` conjugate-gradient steps on the same system from the current `x` (`implicit`'s
/// `least_squares_cg`: the matrix is applied as `G p + sum (c-1) (y.p) y`, never formed).
/// Rows ahead of the current one whose factors are prefetched in the CG loops.
pub(super) const PREFETCH_AHEAD: usize = 4;

/// Asks the cache for the fixed-side row `cols[j]` (if any): the rows a CG loop visits are known
/// in advance but scattered, so the hardware prefetcher cannot guess them. Only in the AVX2 build
/// (`FUSED`), which is x86-64.
#[inline(always)]
pub(super) fn prefetch_row<const FUSED: bool>(fixed: Fixed<'_, f32>, cols: &[u32], j: usize) {
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
pub(super) fn solve_cg_with<const FUSED: bool>(
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
pub(super) fn solve_cg(
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
pub(super) fn solve_cg_avx2(
    fixed: Fixed<'_, f32>,
    cols: &[u32],
    conf: &[f64],
    steps: usize,
    s: &mut Scratch,
    x: &mut [f64],
) {
    solve_cg_with::<true>(fixed, cols, conf, steps, s, x)
}
