//! Small dense linear algebra on row-major `n x n` matrices of `f64` (n up to a few hundred):
//! the Cholesky factorisation and its two triangular solves, shared by every model or policy
//! that solves a small normal-equation system (BPMF's posteriors, the linear bandits).

/// In-place Cholesky factorisation of a symmetric positive-definite matrix: on return the lower
/// triangle holds `L` with `A = L L^T` (the strict upper triangle is zeroed). Reads only the lower
/// triangle. Returns false when the matrix is not positive definite.
pub fn cholesky(a: &mut [f64], n: usize) -> bool {
    for i in 0..n {
        let (done, rest) = a.split_at_mut(i * n);
        let row_i = &mut rest[..n];
        for j in 0..=i {
            let row_j: &[f64] = if j == i {
                &row_i[..j]
            } else {
                &done[j * n..j * n + j]
            };
            let dot: f64 = row_i[..j].iter().zip(row_j).map(|(x, y)| x * y).sum();
            let s = row_i[j] - dot;
            if j == i {
                if s <= 0.0 || !s.is_finite() {
                    return false;
                }
                row_i[i] = s.sqrt();
            } else {
                row_i[j] = s / done[j * n + j];
            }
        }
        for x in &mut row_i[i + 1..] {
            *x = 0.0;
        }
    }
    true
}

/// Solves `L y = b` in place (`L` lower triangular, from [`cholesky`]).
pub fn solve_lower(l: &[f64], n: usize, b: &mut [f64]) {
    for i in 0..n {
        let row = &l[i * n..i * n + i];
        let s: f64 = row.iter().zip(&b[..i]).map(|(x, y)| x * y).sum();
        b[i] = (b[i] - s) / l[i * n + i];
    }
}

/// Solves `L^T x = y` in place.
pub fn solve_upper_t(l: &[f64], n: usize, y: &mut [f64]) {
    for i in (0..n).rev() {
        let xi = y[i] / l[i * n + i];
        y[i] = xi;
        for k in 0..i {
            y[k] -= l[i * n + k] * xi;
        }
    }
}

/// Inverse of a symmetric positive-definite matrix through its Cholesky factor.
pub fn spd_inverse(a: &[f64], n: usize) -> Option<Vec<f64>> {
    let mut l = a.to_vec();
    if !cholesky(&mut l, n) {
        return None;
    }
    let mut inv = vec![0.0; n * n];
    let mut col = vec![0.0; n];
    for c in 0..n {
        col.iter_mut().for_each(|x| *x = 0.0);
        col[c] = 1.0;
        solve_lower(&l, n, &mut col);
        solve_upper_t(&l, n, &mut col);
        for r in 0..n {
            inv[r * n + c] = col[r];
        }
    }
    Some(inv)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cholesky_solves_a_hand_example() {
        // A = [[4, 2], [2, 3]] = L L^T with L = [[2, 0], [1, sqrt 2]]; A x = (8, 7) has x = (1.25, 1.5).
        let mut a = vec![4.0, 2.0, 2.0, 3.0];
        assert!(cholesky(&mut a, 2));
        let want = [2.0, 0.0, 1.0, 2f64.sqrt()];
        for (g, w) in a.iter().zip(want) {
            assert!((g - w).abs() < 1e-12, "{a:?}");
        }
        let mut b = vec![8.0, 7.0];
        solve_lower(&a, 2, &mut b);
        solve_upper_t(&a, 2, &mut b);
        assert!(
            (b[0] - 1.25).abs() < 1e-12 && (b[1] - 1.5).abs() < 1e-12,
            "{b:?}"
        );
        assert!(!cholesky(&mut [1.0, 2.0, 2.0, 1.0], 2));
        // A 3x3 inverse through the factor.
        let m = [4.0, 1.0, 0.5, 1.0, 3.0, 0.2, 0.5, 0.2, 2.0];
        let inv = spd_inverse(&m, 3).unwrap();
        for i in 0..3 {
            for j in 0..3 {
                let s: f64 = (0..3).map(|k| m[i * 3 + k] * inv[k * 3 + j]).sum();
                assert!((s - f64::from(u8::from(i == j))).abs() < 1e-12);
            }
        }
    }
}
