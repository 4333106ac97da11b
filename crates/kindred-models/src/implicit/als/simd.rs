//! The vector kernels of the row solves: dot products, `axpy` and the symmetric
//! matrix-vector product, each generic over `FUSED` (fused multiply-add). The portable loops are
//! the twins of the AVX2 + FMA paths and fix the same summation order.

/// `a * b + c`, fused where the caller was compiled with FMA (`FUSED`); without FMA hardware a
/// fused multiply-add is a slow library call.
#[inline(always)]
pub(super) fn madd<const FUSED: bool>(a: f64, b: f64, c: f64) -> f64 {
    if FUSED {
        a.mul_add(b, c)
    } else {
        a * b + c
    }
}

/// Dot product over 16 independent accumulators, so that the add (or FMA) latency chain does not
/// bound the loop once it is vectorised.
#[inline(always)]
pub(super) fn dot_with<const FUSED: bool>(a: &[f64], b: &[f64]) -> f64 {
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

/// An element type the AVX2 dot product loads four at a time as f64 lanes.
#[cfg(target_arch = "x86_64")]
pub(super) trait Lanes: Copy + Into<f64> {
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
pub(super) unsafe fn dot_avx2<T: Lanes>(a: &[T], b: &[f64]) -> f64 {
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
pub(super) fn axpy_with<const FUSED: bool>(alpha: f64, x: &[f64], y: &mut [f64]) {
    for (y, x) in y.iter_mut().zip(x) {
        *y = madd::<FUSED>(alpha, *x, *y);
    }
}

/// `out = A v` for a symmetric row-major f x f matrix.
#[inline(always)]
pub(super) fn symv_with<const FUSED: bool>(a: &[f64], v: &[f64], out: &mut [f64]) {
    let f = v.len();
    for (o, row) in out.iter_mut().zip(a.chunks_exact(f)) {
        *o = dot_with::<FUSED>(row, v);
    }
}

pub(super) fn symv(a: &[f64], v: &[f64], out: &mut [f64]) {
    symv_with::<false>(a, v, out);
}

/// `y . x` for an f32 row and an f64 vector.
#[inline(always)]
pub(super) fn dot_row<const FUSED: bool>(y: &[f32], x: &[f64]) -> f64 {
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
pub(super) fn axpy_row<const FUSED: bool>(alpha: f64, y: &[f32], out: &mut [f64]) {
    for (o, v) in out.iter_mut().zip(y) {
        *o = madd::<FUSED>(alpha, *v as f64, *o);
    }
}
