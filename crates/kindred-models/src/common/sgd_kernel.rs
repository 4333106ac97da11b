//! The per-rating step of biased matrix factorisation by SGD, the loop SVD spends almost all of
//! its time in, written once portably and once with AVX2 + FMA intrinsics.
//!
//! For a rating `r` of user row `p_u` and item row `q_i`: `err = r - (mu + b_u + b_i + p_u·q_i)`
//! (`p_u·q_i` alone when unbiased), the biases move by `lr (err - reg b)`, and every factor, from
//! the values before the step, by `p_uf += lr_pu (err q_if - reg_pu p_uf)` and
//! `q_if += lr_qi (err p_uf - reg_qi q_if)`. The factor update is evaluated in the equivalent
//! form `p_uf = (1 - lr_pu reg_pu) p_uf + (lr_pu err) q_if`, which is one multiply and one
//! fused multiply-add per element.
//!
//! The AVX2 path exists because the auto-vectorised dot product of the portable path spilled
//! its accumulators and reduced them one scalar at a time: with explicit vectors the whole step
//! is a few dozen vector instructions for 100 factors. FMA rounds once instead of twice, so the
//! two paths agree to the last few bits, not bit for bit; each is reproducible on one machine.

use kindred_core::{CancelFlag, Result};

/// Ratings between two cancellation checks.
pub(crate) const CANCEL_EVERY: usize = 1 << 17;

/// One training rating, packed for streaming; indices are rows of the factor matrices.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Rating {
    pub u: u32,
    pub i: u32,
    pub r: f32,
}

/// Learning rates and regularisation of each term, resolved from the `*_all` defaults.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Rates {
    pub lr_bu: f32,
    pub lr_bi: f32,
    pub lr_pu: f32,
    pub lr_qi: f32,
    pub reg_bu: f32,
    pub reg_bi: f32,
    pub reg_pu: f32,
    pub reg_qi: f32,
}

/// What every rating update of one pass shares.
#[derive(Clone, Copy)]
pub(crate) struct Step<'a> {
    pub f: usize,
    pub mu: f32,
    pub biased: bool,
    pub h: &'a Rates,
    pub cancel: &'a CancelFlag,
}

/// The factor and bias rows one pass may update (row indices as in its ratings).
pub(crate) struct Rows<'a> {
    pub p: &'a mut [f32],
    pub q: &'a mut [f32],
    pub bu: &'a mut [f32],
    pub bi: &'a mut [f32],
}

/// Dot product with eight independent accumulators (vectorises; fixed summation order).
#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0f32; 8];
    for (x, y) in a.chunks_exact(8).zip(b.chunks_exact(8)) {
        for k in 0..8 {
            acc[k] += x[k] * y[k];
        }
    }
    let whole = n / 8 * 8;
    let mut tail = 0f32;
    for (x, y) in a[whole..].iter().zip(&b[whole..]) {
        tail += x * y;
    }
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail
}

/// One SGD pass over `ratings` in order; returns the summed squared error before each step.
///
/// Dispatches to the AVX2 + FMA kernel where the CPU has both.
pub(crate) fn sgd_pass(ratings: &[Rating], step: &Step<'_>, rows: Rows<'_>) -> Result<f64> {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: the CPU supports AVX2 and FMA (checked just above).
            return unsafe { avx2::sgd_pass(ratings, step, rows) };
        }
    }
    sgd_pass_portable(ratings, step, rows)
}

/// The error of one rating's prediction and the bias steps; shared by both kernels.
#[inline(always)]
fn error_and_biases(r: &Rating, d: f32, step: &Step<'_>, bu: &mut f32, bi: &mut f32) -> f32 {
    let h = step.h;
    if !step.biased {
        return r.r - d;
    }
    let err = r.r - (step.mu + *bu + *bi + d);
    *bu += h.lr_bu * (err - h.reg_bu * *bu);
    *bi += h.lr_bi * (err - h.reg_bi * *bi);
    err
}

fn sgd_pass_portable(ratings: &[Rating], step: &Step<'_>, rows: Rows<'_>) -> Result<f64> {
    let (f, h) = (step.f, step.h);
    let (keep_p, keep_q) = (1.0 - h.lr_pu * h.reg_pu, 1.0 - h.lr_qi * h.reg_qi);
    let Rows { p, q, bu, bi } = rows;
    let mut sse = 0f64;
    for chunk in ratings.chunks(CANCEL_EVERY) {
        step.cancel.check()?;
        for r in chunk {
            let (u, i) = (r.u as usize, r.i as usize);
            let pu = &mut p[u * f..(u + 1) * f];
            let qi = &mut q[i * f..(i + 1) * f];
            let err = error_and_biases(r, dot(pu, qi), step, &mut bu[u], &mut bi[i]);
            sse += (err as f64) * (err as f64);
            let (gp, gq) = (h.lr_pu * err, h.lr_qi * err);
            for (x, y) in pu.iter_mut().zip(qi.iter_mut()) {
                let (puf, qif) = (*x, *y);
                *x = keep_p * puf + gp * qif;
                *y = keep_q * qif + gq * puf;
            }
        }
    }
    Ok(sse)
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::{error_and_biases, Rating, Rows, Step, CANCEL_EVERY};
    use kindred_core::Result;

    const W: usize = 8;

    /// `a · b` over the first `f` elements: four vector accumulators, then a scalar tail.
    ///
    /// # Safety
    /// `a` and `b` must be valid for `f` reads and the CPU must have AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn dot(a: *const f32, b: *const f32, f: usize) -> f32 {
        let mut acc = [_mm256_setzero_ps(); 4];
        let mut k = 0;
        // SAFETY (all loads): k + W <= f, within the caller's guarantee.
        unsafe {
            while k + 4 * W <= f {
                for (j, a_j) in acc.iter_mut().enumerate() {
                    let o = k + j * W;
                    *a_j =
                        _mm256_fmadd_ps(_mm256_loadu_ps(a.add(o)), _mm256_loadu_ps(b.add(o)), *a_j);
                }
                k += 4 * W;
            }
            while k + W <= f {
                acc[0] =
                    _mm256_fmadd_ps(_mm256_loadu_ps(a.add(k)), _mm256_loadu_ps(b.add(k)), acc[0]);
                k += W;
            }
        }
        let mut v = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
        // A half vector for a remainder of four or more (100 factors = 12 x 8 + 4), so the
        // scalar chain after the reduction stays short.
        if k + W / 2 <= f {
            // SAFETY: k + 4 <= f.
            let t = unsafe { _mm_mul_ps(_mm_loadu_ps(a.add(k)), _mm_loadu_ps(b.add(k))) };
            v = _mm256_add_ps(v, _mm256_zextps128_ps256(t));
            k += W / 2;
        }
        let mut s = kindred_core::kernels::fold8(v);
        while k < f {
            // SAFETY: k < f.
            unsafe { s = (*a.add(k)).mul_add(*b.add(k), s) };
            k += 1;
        }
        s
    }

    /// Per-element factors of one step's update, broadcast: how much of each row is kept and
    /// how much of the other row is added.
    struct Gains {
        kp: __m256,
        kq: __m256,
        gp: __m256,
        gq: __m256,
    }

    /// Eight factors of the update: `p = kp p + gp q`, `q = kq q + gq p`, from the values before.
    ///
    /// # Safety
    /// `p` and `q` must be valid for 8 reads and writes, must not overlap, and the CPU must have
    /// AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn update8(p: *mut f32, q: *mut f32, g: &Gains) {
        // SAFETY: the caller's guarantee covers these eight elements of each row.
        unsafe {
            let x = _mm256_loadu_ps(p);
            let y = _mm256_loadu_ps(q);
            _mm256_storeu_ps(p, _mm256_fmadd_ps(g.gp, y, _mm256_mul_ps(g.kp, x)));
            _mm256_storeu_ps(q, _mm256_fmadd_ps(g.gq, x, _mm256_mul_ps(g.kq, y)));
        }
    }

    /// # Safety
    /// The CPU must have AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn sgd_pass(
        ratings: &[Rating],
        step: &Step<'_>,
        rows: Rows<'_>,
    ) -> Result<f64> {
        let (f, h) = (step.f, step.h);
        let (keep_p, keep_q) = (1.0 - h.lr_pu * h.reg_pu, 1.0 - h.lr_qi * h.reg_qi);
        let (kp, kq) = (_mm256_set1_ps(keep_p), _mm256_set1_ps(keep_q));
        let Rows { p, q, bu, bi } = rows;
        let mut sse = 0f64;
        for chunk in ratings.chunks(CANCEL_EVERY) {
            step.cancel.check()?;
            for r in chunk {
                let (u, i) = (r.u as usize, r.i as usize);
                // Bounds-checked once per rating; the loops below stay inside these rows.
                let pu = p[u * f..(u + 1) * f].as_mut_ptr();
                let qi = q[i * f..(i + 1) * f].as_mut_ptr();
                // SAFETY: both rows hold exactly f elements.
                let d = unsafe { dot(pu, qi, f) };
                let err = error_and_biases(r, d, step, &mut bu[u], &mut bi[i]);
                sse += (err as f64) * (err as f64);
                let (gp, gq) = (h.lr_pu * err, h.lr_qi * err);
                let (vgp, vgq) = (_mm256_set1_ps(gp), _mm256_set1_ps(gq));
                let mut k = 0;
                let gains = Gains {
                    kp,
                    kq,
                    gp: vgp,
                    gq: vgq,
                };
                // SAFETY: every access is at an index below f, inside both rows; the rows are
                // disjoint (different matrices).
                unsafe {
                    // Four vectors per iteration: the loop's own counter and branch
                    // instructions were about a third of the update's.
                    while k + 4 * W <= f {
                        for o in [k, k + W, k + 2 * W, k + 3 * W] {
                            update8(pu.add(o), qi.add(o), &gains);
                        }
                        k += 4 * W;
                    }
                    while k + W <= f {
                        update8(pu.add(k), qi.add(k), &gains);
                        k += W;
                    }
                    if k + W / 2 <= f {
                        let (kp4, kq4) = (_mm256_castps256_ps128(kp), _mm256_castps256_ps128(kq));
                        let (gp4, gq4) = (_mm256_castps256_ps128(vgp), _mm256_castps256_ps128(vgq));
                        let x = _mm_loadu_ps(pu.add(k));
                        let y = _mm_loadu_ps(qi.add(k));
                        _mm_storeu_ps(pu.add(k), _mm_fmadd_ps(gp4, y, _mm_mul_ps(kp4, x)));
                        _mm_storeu_ps(qi.add(k), _mm_fmadd_ps(gq4, x, _mm_mul_ps(kq4, y)));
                        k += W / 2;
                    }
                    while k < f {
                        let (x, y) = (*pu.add(k), *qi.add(k));
                        *pu.add(k) = gp.mul_add(y, keep_p * x);
                        *qi.add(k) = gq.mul_add(x, keep_q * y);
                        k += 1;
                    }
                }
            }
        }
        Ok(sse)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(ratings: &[Rating], f: usize, portable: bool) -> (Vec<f32>, Vec<f32>, Vec<f32>, f64) {
        let h = Rates {
            lr_bu: 0.01,
            lr_bi: 0.02,
            lr_pu: 0.03,
            lr_qi: 0.04,
            reg_bu: 0.1,
            reg_bi: 0.2,
            reg_pu: 0.3,
            reg_qi: 0.4,
        };
        let cancel = CancelFlag::default();
        let step = Step {
            f,
            mu: 3.0,
            biased: true,
            h: &h,
            cancel: &cancel,
        };
        let mut p: Vec<f32> = (0..2 * f)
            .map(|k| ((k * 7 % 11) as f32 - 5.0) / 20.0)
            .collect();
        let mut q: Vec<f32> = (0..3 * f)
            .map(|k| ((k * 5 % 13) as f32 - 6.0) / 25.0)
            .collect();
        let (mut bu, mut bi) = (vec![0.1, -0.2], vec![0.0, 0.3, -0.1]);
        let rows = Rows {
            p: &mut p,
            q: &mut q,
            bu: &mut bu,
            bi: &mut bi,
        };
        let sse = if portable {
            sgd_pass_portable(ratings, &step, rows)
        } else {
            sgd_pass(ratings, &step, rows)
        }
        .unwrap_or(f64::NAN);
        (p, q, bu, sse)
    }

    #[test]
    fn dispatched_kernel_agrees_with_portable_one_for_every_width() {
        let ratings = [
            Rating { u: 0, i: 1, r: 4.0 },
            Rating { u: 1, i: 1, r: 2.0 },
            Rating { u: 0, i: 2, r: 5.0 },
            Rating { u: 1, i: 0, r: 1.0 },
        ];
        // Widths below, at and between the vector and unrolled-loop sizes, with tails.
        for f in [1, 3, 4, 5, 8, 9, 12, 15, 31, 32, 33, 36, 100] {
            let (p1, q1, b1, e1) = run(&ratings, f, true);
            let (p2, q2, b2, e2) = run(&ratings, f, false);
            assert!((e1 - e2).abs() < 1e-5, "f={f}: sse {e1} vs {e2}");
            for (a, b) in p1
                .iter()
                .chain(&q1)
                .chain(&b1)
                .zip(p2.iter().chain(&q2).chain(&b2))
            {
                assert!((a - b).abs() < 1e-5, "f={f}: {a} vs {b}");
            }
        }
    }

    #[test]
    fn one_step_matches_the_update_rule() {
        // f = 2, one rating: check against the rule written out by hand.
        let h = Rates {
            lr_bu: 0.1,
            lr_bi: 0.1,
            lr_pu: 0.1,
            lr_qi: 0.1,
            reg_bu: 0.5,
            reg_bi: 0.5,
            reg_pu: 0.5,
            reg_qi: 0.5,
        };
        let cancel = CancelFlag::default();
        let step = Step {
            f: 2,
            mu: 3.0,
            biased: true,
            h: &h,
            cancel: &cancel,
        };
        let (mut p, mut q) = (vec![1.0f32, 2.0], vec![0.5f32, -1.0]);
        let (mut bu, mut bi) = (vec![0.0f32], vec![0.0f32]);
        let rows = Rows {
            p: &mut p,
            q: &mut q,
            bu: &mut bu,
            bi: &mut bi,
        };
        // est = 3 + 0.5 - 2 = 1.5, err = 2.5.
        let sse = sgd_pass(&[Rating { u: 0, i: 0, r: 4.0 }], &step, rows).unwrap_or(f64::NAN);
        assert!((sse - 6.25).abs() < 1e-6);
        // p0 = 1 + 0.1 (2.5*0.5 - 0.5*1) = 1.075; p1 = 2 + 0.1 (2.5*-1 - 0.5*2) = 1.65
        // q0 = 0.5 + 0.1 (2.5*1 - 0.5*0.5) = 0.725; q1 = -1 + 0.1 (2.5*2 + 0.5) = -0.45
        let want = [1.075f32, 1.65, 0.725, -0.45, 0.25, 0.25];
        for (a, b) in p.iter().chain(&q).chain(&bu).chain(&bi).zip(want) {
            assert!((a - b).abs() < 1e-6, "{a} vs {b}");
        }
    }
}
