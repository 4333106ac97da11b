//! The numeric kernels every crate shares, defined once: dot products (one pair, or many rows
//! against one vector, consecutive or gathered by id), the cache prefetch hint for scattered
//! rows, and the logistic function.
//!
//! Two dot products, because callers pin two accumulation orders: [`dot`] (f32, sixteen
//! independent partial sums, what vector search and the models' scoring loops run) and
//! [`dot_f64`] (f64, summed in index order, what simulation and the f64 solvers' results were
//! fixed with). The SIMD kernels (SGD, ALS CG) keep their own portable twins next to their
//! intrinsics, since each twin must match its vector code's order exactly.

/// Lanes of independent accumulators: enough to fill the vector registers and hide the latency
/// of the adds, so the compiler turns the loop into packed multiply-adds without `-ffast-math`.
const LANES: usize = 16;

/// Shortest vectors [`dot`] sends to its AVX2 path. Below it the call into that function (it
/// cannot be inlined into code built without AVX2) costs more than the vector code saves:
/// SVD++'s 20-factor dot products through the AVX2 path took a quarter of the CPU samples of a
/// 5-fold SVD++ `kindred eval` on MovieLens 1M, and with them inlined the fit ran 1.05 s per
/// fold against 1.16 s (one thread, medians of four alternating runs).
const AVX2_MIN_LEN: usize = 2 * LANES;

/// `a . b` over the common length, with [`LANES`] independent partial sums: in AVX2 registers
/// where the CPU has them and the vectors are at least [`AVX2_MIN_LEN`] long (the baseline
/// build's loop runs two or four lanes per instruction), else [`dot_portable`], inlined into
/// the caller's loop; the same result bit for bit.
#[inline(always)]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if a.len().min(b.len()) >= AVX2_MIN_LEN && std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2 (checked just above).
        return unsafe { dot_avx2(a, b) };
    }
    dot_portable(a, b)
}

/// [`dot`]'s sums in portable code: the twin the AVX2 path is tested against.
#[inline]
fn dot_portable(a: &[f32], b: &[f32]) -> f32 {
    lane_sum(a, b, |x, y| x * y)
}

/// `|a - b|^2` over the common length, with [`LANES`] independent partial sums.
#[inline]
pub fn squared_l2(a: &[f32], b: &[f32]) -> f32 {
    lane_sum(a, b, |x, y| (x - y) * (x - y))
}

/// `sum_i term(a_i, b_i)` over the common length in [`LANES`] independent partial sums, folded
/// pairwise; `term` inlines, so each caller gets its own vectorised loop.
#[inline(always)]
// Indexed lanes on fixed-size chunks are what the auto-vectoriser turns into packed arithmetic.
#[allow(clippy::needless_range_loop)]
fn lane_sum(a: &[f32], b: &[f32], term: impl Fn(f32, f32) -> f32) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0f32; LANES];
    let chunks_a = a.chunks_exact(LANES);
    let chunks_b = b.chunks_exact(LANES);
    let (tail_a, tail_b) = (chunks_a.remainder(), chunks_b.remainder());
    for (x, y) in chunks_a.zip(chunks_b) {
        for lane in 0..LANES {
            acc[lane] += term(x[lane], y[lane]);
        }
    }
    let mut sum = fold_lanes(acc);
    for (&x, &y) in tail_a.iter().zip(tail_b) {
        sum += term(x, y);
    }
    sum
}

/// Pairwise sum of the lanes (a fixed order, so results do not depend on the caller).
#[inline]
fn fold_lanes(mut acc: [f32; LANES]) -> f32 {
    let mut width = LANES / 2;
    while width > 0 {
        for lane in 0..width {
            acc[lane] += acc[lane + width];
        }
        width /= 2;
    }
    acc[0]
}

/// `out[j] = dot(rows[j], x)` for the consecutive `f`-value rows of `rows` (a model's item
/// factors against one query vector): the same sums as [`dot`] bit for bit, with one CPU feature
/// check for all the rows (scoring every item is most of a factor model's request).
pub fn dot_rows(rows: &[f32], f: usize, x: &[f32], out: &mut [f32]) {
    if f == 0 {
        out.fill(0.0);
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2 (checked just above).
        return unsafe { dot_rows_avx2(rows, f, x, out) };
    }
    for (o, row) in out.iter_mut().zip(rows.chunks_exact(f)) {
        *o = dot_portable(row, x);
    }
}

/// `out[j] = dot(rows[ids[j]], x)` for the `f`-value rows of `rows` that `ids` names (a graph
/// search's neighbours): the same sums as [`dot`] bit for bit, with AVX2 where the CPU has it.
/// Panics when an id names a row past the end of `rows`.
pub fn dot_gathered(rows: &[f32], f: usize, ids: &[u32], x: &[f32], out: &mut [f32]) {
    let row = |id: u32| &rows[id as usize * f..(id as usize + 1) * f];
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        for (o, &id) in out.iter_mut().zip(ids) {
            // SAFETY: the CPU supports AVX2 (checked just above).
            *o = unsafe { dot_avx2(row(id), x) };
        }
        return;
    }
    for (o, &id) in out.iter_mut().zip(ids) {
        *o = dot_portable(row(id), x);
    }
}

/// Asks the CPU to start loading `values` into its caches (a hint: it never faults and changes
/// no result). For scattered rows that the hardware prefetcher cannot predict, such as a graph
/// node's neighbours or a user's rated items.
#[inline]
pub fn prefetch<T>(values: &[T]) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        let bytes = std::mem::size_of_val(values);
        let start = values.as_ptr().cast::<i8>();
        let mut line = 0;
        while line < bytes {
            // SAFETY: `line < bytes` keeps the address inside `values`; a prefetch never faults.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(start.add(line)) };
            line += 64;
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = values;
}

/// [`dot_rows`] one row at a time through [`dot_avx2`].
///
/// # Safety
/// The CPU must have AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn dot_rows_avx2(rows: &[f32], f: usize, x: &[f32], out: &mut [f32]) {
    for (o, row) in out.iter_mut().zip(rows.chunks_exact(f)) {
        // SAFETY: this function's caller checked AVX2.
        *o = unsafe { dot_avx2(row, x) };
    }
}

/// [`dot`] with two eight-lane registers as its sixteen lanes (lane `l` of the low register is
/// lane `l`, of the high one lane `8 + l`), separate multiplies and adds (no fused multiply-add,
/// as the portable loop), the lanes folded in [`fold_lanes`]' order and the tail added in index
/// order: the same result bit for bit.
///
/// # Safety
/// The CPU must have AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn dot_avx2(row: &[f32], x: &[f32]) -> f32 {
    use std::arch::x86_64::*;
    let n = row.len().min(x.len());
    let body = n - n % LANES;
    let (pr, px) = (row.as_ptr(), x.as_ptr());
    let (mut lo, mut hi) = (_mm256_setzero_ps(), _mm256_setzero_ps());
    let mut k = 0;
    // SAFETY: k + 16 <= body <= n <= min(row.len(), x.len()) for every load.
    unsafe {
        while k < body {
            lo = _mm256_add_ps(
                lo,
                _mm256_mul_ps(_mm256_loadu_ps(pr.add(k)), _mm256_loadu_ps(px.add(k))),
            );
            hi = _mm256_add_ps(
                hi,
                _mm256_mul_ps(
                    _mm256_loadu_ps(pr.add(k + 8)),
                    _mm256_loadu_ps(px.add(k + 8)),
                ),
            );
            k += LANES;
        }
    }
    let mut sum = fold8(_mm256_add_ps(lo, hi));
    for (a, b) in row[body..n].iter().zip(&x[body..n]) {
        sum += a * b;
    }
    sum
}

/// The sum of an AVX register's eight lanes folded pairwise as [`fold_lanes`] folds its last
/// eight, `((0 + 4) + (2 + 6)) + ((1 + 5) + (3 + 7))`: the one horizontal sum of every AVX
/// kernel (this module's, ALS conjugate gradient's, the SGD step's), so each matches its
/// portable twin's order.
///
/// # Safety
/// Callable without `unsafe` only from code compiled with AVX (the AVX2 kernels); elsewhere the
/// caller must have checked that the CPU has AVX.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
#[inline]
pub fn fold8(v: std::arch::x86_64::__m256) -> f32 {
    use std::arch::x86_64::*;
    let four = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
    let two = _mm_add_ps(four, _mm_movehl_ps(four, four));
    let one = _mm_add_ss(two, _mm_movehdup_ps(two));
    _mm_cvtss_f32(one)
}

/// `a . b` over the common length in f64, summed in index order.
#[inline]
pub fn dot_f64(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// The logistic function `1 / (1 + e^-x)`.
#[inline]
pub fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// [`sigmoid`] in f32, for the f32 training loops.
#[inline]
pub fn sigmoid_f32(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dots_match_hand_computed_values_at_any_length() {
        for n in [0usize, 1, 15, 16, 17, 33] {
            let a: Vec<f32> = (1..=n).map(|x| x as f32).collect();
            let b: Vec<f32> = (1..=n).map(|x| 2.0 * x as f32).collect();
            // 2 sum x^2 = n (n + 1) (2n + 1) / 3
            let expected = (n * (n + 1) * (2 * n + 1) / 3) as f32;
            assert_eq!(dot(&a, &b), expected, "n = {n}");
            assert_eq!(squared_l2(&a, &b), expected / 2.0, "n = {n}");
            let (a64, b64): (Vec<f64>, Vec<f64>) = a
                .iter()
                .zip(&b)
                .map(|(&x, &y)| (x as f64, y as f64))
                .unzip();
            assert_eq!(dot_f64(&a64, &b64), expected as f64, "n = {n}");
        }
        // Over the common length only.
        assert_eq!(dot(&[1.0, 2.0, 3.0], &[4.0, 5.0]), 14.0);
        assert_eq!(dot_f64(&[1.0, 2.0], &[4.0, 5.0, 6.0]), 14.0);
    }

    #[test]
    fn dot_rows_is_dot_bit_for_bit() {
        for f in [1usize, 3, 15, 16, 17, 31, 32, 48, 64, 100] {
            let rows: Vec<f32> = (0..7 * f)
                .map(|k| ((k * 7919 % 2003) as f32 - 1001.0) * 1.37e-3)
                .collect();
            let x: Vec<f32> = (0..f)
                .map(|k| ((k * 104729 % 997) as f32 - 498.0) * 2.1e-3)
                .collect();
            let mut out = vec![f32::NAN; 7];
            dot_rows(&rows, f, &x, &mut out);
            for (j, got) in out.iter().enumerate() {
                let want = dot_portable(&rows[j * f..(j + 1) * f], &x);
                assert_eq!(dot(&rows[j * f..(j + 1) * f], &x).to_bits(), want.to_bits());
                assert_eq!(got.to_bits(), want.to_bits(), "f = {f}, row {j}");
            }
        }
        let mut out = [1.0f32; 2];
        dot_rows(&[], 0, &[], &mut out);
        assert_eq!(out, [0.0, 0.0]);
    }

    #[test]
    fn dot_gathered_is_dot_bit_for_bit() {
        for f in [1usize, 15, 16, 17, 64, 100] {
            let rows: Vec<f32> = (0..9 * f)
                .map(|k| ((k * 7919 % 2003) as f32 - 1001.0) * 1.37e-3)
                .collect();
            let x: Vec<f32> = (0..f).map(|k| (k as f32 - 7.5) * 0.31).collect();
            let ids = [8u32, 0, 3, 3, 5];
            let mut out = vec![f32::NAN; ids.len()];
            dot_gathered(&rows, f, &ids, &x, &mut out);
            for (got, &id) in out.iter().zip(&ids) {
                let id = id as usize;
                let want = dot_portable(&rows[id * f..(id + 1) * f], &x);
                assert_eq!(got.to_bits(), want.to_bits(), "f = {f}, row {id}");
            }
            prefetch(&rows[f..]);
            prefetch::<f32>(&[]);
        }
    }

    #[test]
    fn f64_dot_sums_in_index_order() {
        // 1e16 + 1 - 1e16 is 0 in f64 when summed left to right, 1 in other orders.
        assert_eq!(dot_f64(&[1e16, 1.0, -1e16], &[1.0, 1.0, 1.0]), 0.0);
    }

    #[test]
    fn sigmoid_is_the_logistic_function() {
        assert_eq!(sigmoid(0.0), 0.5);
        assert_eq!(sigmoid_f32(0.0), 0.5);
        assert!((sigmoid(2.0) - 0.880_797_077_977_882_3).abs() < 1e-15);
        assert!((sigmoid(-2.0) + sigmoid(2.0) - 1.0).abs() < 1e-15);
        assert!((sigmoid_f32(2.0) - 0.880_797_1).abs() < 1e-6);
        assert_eq!(sigmoid(-800.0), 0.0);
        assert_eq!(sigmoid(800.0), 1.0);
    }
}
