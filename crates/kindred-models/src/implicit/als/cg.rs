//! The conjugate-gradient row solver (`solver=cg`, implicit's default): a few steps warm-started
//! from the previous vector, never forming the row's matrix, in f32 end to end; dispatched to an
//! AVX2 + FMA build where the CPU has both.

use super::fixed_side::{Fixed, Scratch};
use super::simd::{axpy32, dot32, madd32, row_dots, rows_axpy, symv32};

/// `out += sum_j coef(c_j, y_j . v) y_j` over the row's fixed-side rows `y_j`: the pass over the
/// scattered rows that every CG step makes, as two sweeps: every dot product first (independent,
/// so they overlap), then one accumulation whose outputs stay in registers.
#[inline(always)]
fn row_pass<const FUSED: bool>(
    fixed: Fixed<'_, f32>,
    cols: &[u32],
    s: &mut Scratch,
    v: Vector,
    coef: impl Fn(f32, f32) -> f32,
) {
    let (source, target) = match v {
        Vector::X => (&s.x, &mut s.r),
        Vector::P => (&s.p, &mut s.ap),
    };
    // In blocks of rows small enough to stay in L1 between the two sweeps (a popular item's
    // rows do not); the accumulation runs over the rows in order either way.
    for ((cols, conf), coefs) in cols
        .chunks(PASS_BLOCK)
        .zip(s.conf.chunks(PASS_BLOCK))
        .zip(s.coefs.chunks_mut(PASS_BLOCK))
    {
        row_dots::<FUSED>(fixed.other, fixed.f, cols, source, coefs);
        for (d, &c) in coefs.iter_mut().zip(conf) {
            *d = coef(c, *d);
        }
        rows_axpy::<FUSED>(fixed.other, fixed.f, cols, coefs, target);
    }
}

/// Fixed-side rows a [`row_pass`] takes through both sweeps at a time: 64 rows of 64 f32
/// factors are 16 KiB, half of a typical L1 data cache.
const PASS_BLOCK: usize = 64;

/// Which CG vector a [`row_pass`] multiplies: the current solution (into the residual) or the
/// search direction (into `A p`).
#[derive(Clone, Copy)]
enum Vector {
    X,
    P,
}

/// `steps` conjugate-gradient steps on the row's system `(G + sum (c-1) y y^T) x = sum c y` from
/// the current `x` (`implicit`'s `least_squares_cg`: the matrix is applied as
/// `G p + sum (c-1) (y.p) y`, never formed). `x` is stored in f64 by the caller and solved in f32.
#[inline(always)]
pub(super) fn solve_cg_with<const FUSED: bool>(
    fixed: Fixed<'_, f32>,
    cols: &[u32],
    conf: &[f64],
    steps: usize,
    s: &mut Scratch,
    x: &mut [f64],
) {
    for (x32, &v) in s.x.iter_mut().zip(x.iter()) {
        *x32 = v as f32;
    }
    s.conf.clear();
    s.conf.extend(conf.iter().map(|&c| c as f32));
    s.coefs.resize(cols.len(), 0.0);
    // r = b - A x = sum (c - (c-1) y.x) y - G x
    symv32::<FUSED>(fixed.gram, &s.x, &mut s.r);
    s.r.iter_mut().for_each(|v| *v = -*v);
    row_pass::<FUSED>(fixed, cols, s, Vector::X, |c, yx| {
        madd32::<FUSED>(-(c - 1.0), yx, c)
    });
    s.p.copy_from_slice(&s.r);
    let mut rs_old = dot32::<FUSED>(&s.r, &s.r);
    if rs_old >= 1e-20 {
        for _ in 0..steps {
            symv32::<FUSED>(fixed.gram, &s.p, &mut s.ap);
            row_pass::<FUSED>(fixed, cols, s, Vector::P, |c, yp| (c - 1.0) * yp);
            let step = rs_old / dot32::<FUSED>(&s.p, &s.ap);
            axpy32::<FUSED>(step, &s.p, &mut s.x);
            axpy32::<FUSED>(-step, &s.ap, &mut s.r);
            let rs_new = dot32::<FUSED>(&s.r, &s.r);
            if rs_new < 1e-20 {
                break;
            }
            let beta = rs_new / rs_old;
            for (p, r) in s.p.iter_mut().zip(&s.r) {
                *p = madd32::<FUSED>(beta, *p, *r);
            }
            rs_old = rs_new;
        }
    }
    for (v, &x32) in x.iter_mut().zip(&s.x) {
        *v = x32 as f64;
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The AVX2 + FMA build and its portable twin solve the same system to f32 rounding.
    #[test]
    #[cfg(target_arch = "x86_64")]
    fn the_avx2_build_agrees_with_the_portable_twin() {
        if !(std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma"))
        {
            return;
        }
        for f in [3usize, 8, 32, 40, 64] {
            let rows = 50;
            let other: Vec<f32> = (0..rows * f)
                .map(|k| ((k * 7919 % 1000) as f32 / 1000.0 - 0.5) * 0.2)
                .collect();
            let mut gram = vec![0f32; f * f];
            for r in 0..rows {
                for a in 0..f {
                    for b in 0..f {
                        gram[a * f + b] += other[r * f + a] * other[r * f + b];
                    }
                }
            }
            for a in 0..f {
                gram[a * f + a] += 0.05;
            }
            let fixed = Fixed {
                gram: &gram,
                other: &other,
                f,
            };
            let cols: Vec<u32> = (0..rows as u32).step_by(3).collect();
            let conf: Vec<f64> = cols.iter().map(|&c| 1.0 + (c % 4) as f64).collect();
            let mut portable = vec![0.001; f];
            let mut fused = portable.clone();
            solve_cg_with::<false>(fixed, &cols, &conf, 3, &mut Scratch::new(f), &mut portable);
            // SAFETY: AVX2 and FMA are present (checked above).
            unsafe { solve_cg_avx2(fixed, &cols, &conf, 3, &mut Scratch::new(f), &mut fused) };
            let scale = portable.iter().fold(0f64, |m, v| m.max(v.abs()));
            for (a, b) in portable.iter().zip(&fused) {
                assert!(
                    (a - b).abs() <= 1e-4 * scale.max(1.0),
                    "f={f}: {portable:?} vs {fused:?}"
                );
            }
        }
    }
}
