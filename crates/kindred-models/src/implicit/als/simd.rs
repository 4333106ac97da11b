//! The vector kernels of the row solves.
//!
//! Conjugate gradient runs in f32 end to end (as `implicit` does): its loops are bound by the
//! arithmetic on the fixed side's rows, and f32 fills twice the lanes of each vector register.
//! Its kernels are generic over `FUSED` (fused multiply-add) and compiled twice: once inside
//! [`super::cg::solve_cg_avx2`] (AVX2 + FMA, eight lanes per instruction) and once for the
//! portable build. Both builds run the same loops in the same summation order; they differ only
//! in whether `a * b + c` rounds once or twice. The exact solver and the training loss stay in
//! f64 with portable loops.

use kindred_core::kernels::dot_f64;

/// Independent f32 accumulators of [`dot32`]: two eight-lane registers, so a 64-factor dot
/// product is four dependent multiply-adds per register.
const LANES_F32: usize = 16;

/// `y += alpha x` in f64.
#[inline]
pub(super) fn axpy(alpha: f64, x: &[f64], y: &mut [f64]) {
    for (y, x) in y.iter_mut().zip(x) {
        *y += alpha * x;
    }
}

/// `out = A v` for a symmetric row-major f x f matrix, in f64.
pub(super) fn symv(a: &[f64], v: &[f64], out: &mut [f64]) {
    let f = v.len();
    for (o, row) in out.iter_mut().zip(a.chunks_exact(f)) {
        *o = dot_f64(row, v);
    }
}

/// `a * b + c`, fused where the caller was compiled with FMA (`FUSED`); without FMA hardware a
/// fused multiply-add is a slow library call.
#[inline(always)]
pub(super) fn madd32<const FUSED: bool>(a: f32, b: f32, c: f32) -> f32 {
    if FUSED {
        a.mul_add(b, c)
    } else {
        a * b + c
    }
}

/// `a . b` in f32 over [`LANES_F32`] partial sums folded pairwise, then the tail in order.
#[inline(always)]
// Indexed lanes on fixed-size chunks mirror the two eight-lane registers of `dot32_avx2`.
#[allow(clippy::needless_range_loop)]
pub(super) fn dot32<const FUSED: bool>(a: &[f32], b: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if FUSED {
        // SAFETY: `FUSED` code is only reached from `solve_cg_avx2`, which runs only on CPUs with
        // AVX2 and FMA.
        return unsafe { dot32_avx2(a, b) };
    }
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0f32; LANES_F32];
    let (ca, cb) = (a.chunks_exact(LANES_F32), b.chunks_exact(LANES_F32));
    let (ta, tb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for k in 0..LANES_F32 {
            acc[k] = madd32::<FUSED>(x[k], y[k], acc[k]);
        }
    }
    let mut half = LANES_F32 / 2;
    while half > 0 {
        for k in 0..half {
            acc[k] += acc[k + half];
        }
        half /= 2;
    }
    let mut sum = acc[0];
    for (x, y) in ta.iter().zip(tb) {
        sum = madd32::<FUSED>(*x, *y, sum);
    }
    sum
}

/// [`dot32`] with two AVX2 registers as its sixteen lanes (register `j` lane `k` is lane
/// `8 j + k`) and the same pairwise fold: the auto-vectoriser split the portable loop into
/// 64-bit pieces.
///
/// # Safety
/// The CPU must have AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn dot32_avx2(a: &[f32], b: &[f32]) -> f32 {
    use std::arch::x86_64::*;
    let n = a.len().min(b.len());
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let (mut lo, mut hi) = (_mm256_setzero_ps(), _mm256_setzero_ps());
    let mut k = 0;
    // SAFETY: every index read is below n, the length of both slices.
    unsafe {
        while k + LANES_F32 <= n {
            lo = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(k)), _mm256_loadu_ps(pb.add(k)), lo);
            hi = _mm256_fmadd_ps(
                _mm256_loadu_ps(pa.add(k + 8)),
                _mm256_loadu_ps(pb.add(k + 8)),
                hi,
            );
            k += LANES_F32;
        }
    }
    let mut sum = kindred_core::kernels::fold8(_mm256_add_ps(lo, hi));
    while k < n {
        sum = a[k].mul_add(b[k], sum);
        k += 1;
    }
    sum
}

/// `y += alpha x` in f32.
#[inline(always)]
pub(super) fn axpy32<const FUSED: bool>(alpha: f32, x: &[f32], y: &mut [f32]) {
    for (y, x) in y.iter_mut().zip(x) {
        *y = madd32::<FUSED>(alpha, *x, *y);
    }
}

/// Output entries [`symv32`] accumulates at once: eight eight-lane registers held across the
/// whole pass over the matrix, so eight independent multiply-add chains keep both FMA units busy
/// (four registers left the loop waiting on the add latency).
const SYMV_BLOCK: usize = 64;

/// `out = A v` for a symmetric row-major f x f matrix in f32, as `sum_j v_j A[j, :]` (row `j`
/// is column `j`): whole-register multiply-adds into a block of outputs kept in registers, no
/// horizontal sums.
#[inline(always)]
#[allow(clippy::needless_range_loop)]
pub(super) fn symv32<const FUSED: bool>(a: &[f32], v: &[f32], out: &mut [f32]) {
    let f = v.len();
    let mut start = 0;
    while start < f {
        let width = SYMV_BLOCK.min(f - start);
        if width == SYMV_BLOCK {
            let mut acc = [0f32; SYMV_BLOCK];
            for (j, &vj) in v.iter().enumerate() {
                let row = &a[j * f + start..j * f + start + SYMV_BLOCK];
                for k in 0..SYMV_BLOCK {
                    acc[k] = madd32::<FUSED>(vj, row[k], acc[k]);
                }
            }
            out[start..start + SYMV_BLOCK].copy_from_slice(&acc);
        } else {
            let block = &mut out[start..start + width];
            block.fill(0.0);
            for (j, &vj) in v.iter().enumerate() {
                axpy32::<FUSED>(vj, &a[j * f + start..j * f + start + width], block);
            }
        }
        start += width;
    }
}

/// Rows of the fixed side whose dot products [`row_dots`] computes together: their four
/// sums fold in one shuffle tree.
const DOT_GROUP: usize = 4;

/// `dots[j] = y_j . v` for every fixed-side row `y_j = other[cols[j]]` (`f` values each). Each
/// row is summed in sixteen lanes (eight-value chunks alternating between two groups of eight),
/// the groups added lane by lane, the eight lanes folded as `((0+1)+(2+3))+((4+5)+(6+7))`, then
/// the last `f % 8` products in order: the order of `row_dots_avx2`'s registers, so both builds
/// agree to the rounding of their multiply-adds whatever rows are grouped together.
#[inline(always)]
pub(super) fn row_dots<const FUSED: bool>(
    other: &[f32],
    f: usize,
    cols: &[u32],
    v: &[f32],
    dots: &mut [f32],
) {
    #[cfg(target_arch = "x86_64")]
    if FUSED {
        // SAFETY: `FUSED` code is only reached from `solve_cg_avx2` (AVX2 + FMA present).
        return unsafe { row_dots_avx2(other, f, cols, v, dots) };
    }
    let body = f - f % 8;
    for (&c, d) in cols.iter().zip(dots.iter_mut()) {
        let y = &other[c as usize * f..(c as usize + 1) * f];
        let mut lanes = [0f32; 16];
        for (m, (yc, vc)) in y[..body]
            .chunks_exact(8)
            .zip(v[..body].chunks_exact(8))
            .enumerate()
        {
            let base = (m % 2) * 8;
            for k in 0..8 {
                lanes[base + k] = madd32::<FUSED>(yc[k], vc[k], lanes[base + k]);
            }
        }
        let mut a = [0f32; 8];
        for k in 0..8 {
            a[k] = lanes[k] + lanes[k + 8];
        }
        let mut sum = ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
        for k in body..f {
            sum = madd32::<FUSED>(y[k], v[k], sum);
        }
        *d = sum;
    }
}

/// [`row_dots`] on AVX2: four rows at a time in one loop, each with two accumulator registers,
/// so eight independent multiply-add chains are in flight and each chunk of `v` is loaded once
/// per group; the four sums fold together by horizontal adds.
///
/// # Safety
/// The CPU must have AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn row_dots_avx2(other: &[f32], f: usize, cols: &[u32], v: &[f32], dots: &mut [f32]) {
    use std::arch::x86_64::*;
    let body = f - f % 8;
    let n = cols.len().min(dots.len());
    assert!(v.len() >= f && cols.iter().all(|&c| (c as usize + 1) * f <= other.len()));
    let row = |j: usize| &other[cols[j] as usize * f..(cols[j] as usize + 1) * f];
    let tail = |y: &[f32], mut sum: f32| {
        for k in body..f {
            sum = y[k].mul_add(v[k], sum);
        }
        sum
    };
    // The rows are scattered, so the hardware prefetcher cannot guess them; ask for the rows a
    // couple of groups ahead while this group computes.
    let prefetch = |j: usize| {
        if let Some(&c) = cols.get(j) {
            kindred_core::kernels::prefetch(&other[c as usize * f..(c as usize + 1) * f]);
        }
    };
    let (pv, po) = (v.as_ptr(), other.as_ptr());
    let mut j = 0;
    while j + DOT_GROUP <= n {
        for g in 0..DOT_GROUP {
            prefetch(j + PREFETCH_AHEAD + g);
        }
        let base = [0, 1, 2, 3].map(|g| cols[j + g] as usize * f);
        let mut lo = [_mm256_setzero_ps(); DOT_GROUP];
        let mut hi = [_mm256_setzero_ps(); DOT_GROUP];
        let mut k = 0;
        // SAFETY: every row `base[g]..base[g] + f` lies inside `other` and `v` holds `f` values
        // (asserted above); every load reads 8 values at an offset below `body - 7`.
        unsafe {
            while k + 16 <= body {
                let (v0, v1) = (_mm256_loadu_ps(pv.add(k)), _mm256_loadu_ps(pv.add(k + 8)));
                for g in 0..DOT_GROUP {
                    lo[g] = _mm256_fmadd_ps(_mm256_loadu_ps(po.add(base[g] + k)), v0, lo[g]);
                    hi[g] = _mm256_fmadd_ps(_mm256_loadu_ps(po.add(base[g] + k + 8)), v1, hi[g]);
                }
                k += 16;
            }
            if k < body {
                let v0 = _mm256_loadu_ps(pv.add(k));
                for g in 0..DOT_GROUP {
                    lo[g] = _mm256_fmadd_ps(_mm256_loadu_ps(po.add(base[g] + k)), v0, lo[g]);
                }
            }
        }
        let a = [0, 1, 2, 3].map(|g| _mm256_add_ps(lo[g], hi[g]));
        let t = _mm256_hadd_ps(_mm256_hadd_ps(a[0], a[1]), _mm256_hadd_ps(a[2], a[3]));
        let four = _mm_add_ps(_mm256_castps256_ps128(t), _mm256_extractf128_ps::<1>(t));
        let group = &mut dots[j..j + DOT_GROUP];
        // SAFETY: `group` holds four f32.
        unsafe { _mm_storeu_ps(group.as_mut_ptr(), four) };
        if body < f {
            for (g, value) in group.iter_mut().enumerate() {
                *value = tail(row(j + g), *value);
            }
        }
        j += DOT_GROUP;
    }
    while j < n {
        prefetch(j + PREFETCH_AHEAD);
        let y = row(j);
        let (mut lo, mut hi) = (_mm256_setzero_ps(), _mm256_setzero_ps());
        let mut k = 0;
        // SAFETY: k + 8 <= body <= f = y.len() <= v.len() for every load.
        unsafe {
            while k + 16 <= body {
                lo = _mm256_fmadd_ps(
                    _mm256_loadu_ps(y.as_ptr().add(k)),
                    _mm256_loadu_ps(pv.add(k)),
                    lo,
                );
                hi = _mm256_fmadd_ps(
                    _mm256_loadu_ps(y.as_ptr().add(k + 8)),
                    _mm256_loadu_ps(pv.add(k + 8)),
                    hi,
                );
                k += 16;
            }
            if k < body {
                lo = _mm256_fmadd_ps(
                    _mm256_loadu_ps(y.as_ptr().add(k)),
                    _mm256_loadu_ps(pv.add(k)),
                    lo,
                );
            }
        }
        let a = _mm256_add_ps(lo, hi);
        let t = _mm256_hadd_ps(_mm256_hadd_ps(a, a), _mm256_hadd_ps(a, a));
        let one = _mm_add_ss(_mm256_castps256_ps128(t), _mm256_extractf128_ps::<1>(t));
        dots[j] = tail(y, _mm_cvtss_f32(one));
        j += 1;
    }
}

/// Rows ahead of the current one that [`row_dots_avx2`] asks the cache for.
const PREFETCH_AHEAD: usize = 8;

/// Outputs [`rows_axpy`] keeps in registers while it sweeps the rows: eight eight-lane registers.
const AXPY_BLOCK: usize = 64;

/// `out += sum_j coefs[j] y_j` over the fixed-side rows `y_j = other[cols[j]]`. Every output
/// value is accumulated over the rows in order, so any blocking of the outputs gives the same
/// sums; a block of [`AXPY_BLOCK`] outputs stays in registers across all the rows (no stores
/// until the end, and eight independent multiply-add chains).
#[inline(always)]
#[allow(clippy::needless_range_loop)]
pub(super) fn rows_axpy<const FUSED: bool>(
    other: &[f32],
    f: usize,
    cols: &[u32],
    coefs: &[f32],
    out: &mut [f32],
) {
    let mut start = 0;
    while start < f {
        let width = AXPY_BLOCK.min(f - start);
        let mut acc = [0f32; AXPY_BLOCK];
        acc[..width].copy_from_slice(&out[start..start + width]);
        if width == AXPY_BLOCK {
            for (&c, &a) in cols.iter().zip(coefs) {
                let y = &other[c as usize * f + start..c as usize * f + start + AXPY_BLOCK];
                for k in 0..AXPY_BLOCK {
                    acc[k] = madd32::<FUSED>(a, y[k], acc[k]);
                }
            }
        } else {
            for (&c, &a) in cols.iter().zip(coefs) {
                let y = &other[c as usize * f + start..c as usize * f + start + width];
                for k in 0..width {
                    acc[k] = madd32::<FUSED>(a, y[k], acc[k]);
                }
            }
        }
        out[start..start + width].copy_from_slice(&acc[..width]);
        start += width;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(n: usize, seed: u32) -> Vec<f32> {
        (0..n)
            .map(|k| (((k as u32).wrapping_mul(2654435761u32) ^ seed) % 1000) as f32 / 500.0 - 1.0)
            .collect()
    }

    #[test]
    fn f32_kernels_match_f64_references_at_every_length() {
        for n in [1usize, 7, 15, 16, 17, 31, 32, 33, 64, 100] {
            let (a, b) = (values(n, 1), values(n, 2));
            let want: f64 = a.iter().zip(&b).map(|(x, y)| *x as f64 * *y as f64).sum();
            for got in [dot32::<false>(&a, &b), dot32::<true>(&a, &b)] {
                assert!(
                    (got as f64 - want).abs() < 1e-4,
                    "dot n={n}: {got} vs {want}"
                );
            }
            let m = values(n * n, 3);
            // Symmetrise so row j is column j.
            let mut sym = m.clone();
            for i in 0..n {
                for j in 0..n {
                    sym[i * n + j] = m[i * n + j] + m[j * n + i];
                }
            }
            let mut out = vec![0f32; n];
            let mut fused = vec![0f32; n];
            symv32::<false>(&sym, &a, &mut out);
            symv32::<true>(&sym, &a, &mut fused);
            for i in 0..n {
                let want: f64 = (0..n).map(|j| sym[i * n + j] as f64 * a[j] as f64).sum();
                assert!((out[i] as f64 - want).abs() < 1e-4, "symv n={n} row {i}");
                assert!(
                    (fused[i] as f64 - want).abs() < 1e-4,
                    "fused symv n={n} row {i}"
                );
            }
            let mut y = b.clone();
            axpy32::<true>(0.5, &a, &mut y);
            for k in 0..n {
                assert!((y[k] - (b[k] + 0.5 * a[k])).abs() < 1e-6);
            }
        }
    }

    #[test]
    fn f64_symv_multiplies() {
        let mut out = vec![0.0; 2];
        symv(&[1.0, 2.0, 2.0, 3.0], &[1.0, -1.0], &mut out);
        assert_eq!(out, [-1.0, -1.0]);
    }
}
