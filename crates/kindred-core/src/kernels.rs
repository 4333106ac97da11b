//! The numeric kernels every crate shares, defined once: dot products and the logistic
//! function.
//!
//! Two dot products, because callers pin two accumulation orders: [`dot`] (f32, sixteen
//! independent partial sums, what vector search and the models' scoring loops run) and
//! [`dot_f64`] (f64, summed in index order, what simulation and the f64 solvers' results were
//! fixed with). The SIMD kernels (SGD, ALS CG) keep their own portable twins next to their
//! intrinsics, since each twin must match its vector code's order exactly.

/// Lanes of independent accumulators: enough to fill the vector registers and hide the latency
/// of the adds, so the compiler turns the loop into packed multiply-adds without `-ffast-math`.
const LANES: usize = 16;

/// `a . b` over the common length, with [`LANES`] independent partial sums.
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
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
