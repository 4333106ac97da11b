//! The exact row solver (`solver=cholesky`): forms each row's `f x f` system and factors it.

use faer::dyn_stack::MemStack;
use faer::linalg::cholesky::llt;
use faer::linalg::matmul::triangular::{self, BlockStructure};
use faer::{Accum, MatMut, MatRef, Par};

use super::fixed_side::{Fixed, Scratch};
use super::simd::axpy;

/// Exact solve of `(G + sum (c-1) y y^T) x = sum c y` where `G = YtY + reg I`; `false` when the
/// system is not positive definite (only possible with confidences below 1).
pub(super) fn solve_cholesky(
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
        axpy(ci, y, &mut s.b);
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
