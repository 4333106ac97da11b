//! What every row solve of a half-iteration reads and writes: the fixed side ([`Fixed`]: the
//! Gram matrix and the other side's factors) and one thread's buffers ([`Scratch`]). Both
//! solvers (`cg`, `cholesky`) and the dispatcher (`solve`) use them, so they live apart from all
//! three.

use faer::dyn_stack::{MemBuffer, StackReq};
use faer::linalg::cholesky::llt;
use faer::Par;

/// The fixed side of a half-iteration: `G = YtY + reg I` and the other side's factors, both f64
/// for the exact solver and both f32 for conjugate gradient (which runs in f32 end to end).
#[derive(Clone, Copy)]
pub(super) struct Fixed<'a, T = f64> {
    pub(super) gram: &'a [T],
    pub(super) other: &'a [T],
    pub(super) f: usize,
}

impl<T> Fixed<'_, T> {
    pub(super) fn row(&self, c: u32) -> &[T] {
        &self.other[c as usize * self.f..(c as usize + 1) * self.f]
    }
}

/// Per-thread buffers of a row solve.
pub(super) struct Scratch {
    pub(super) a: Vec<f64>,
    pub(super) b: Vec<f64>,
    pub(super) gathered: Vec<f64>,
    pub(super) scaled: Vec<f64>,
    /// Conjugate gradient's row vector, residual, direction and `A p`, in f32.
    pub(super) x: Vec<f32>,
    pub(super) r: Vec<f32>,
    pub(super) p: Vec<f32>,
    pub(super) ap: Vec<f32>,
    /// Conjugate gradient's per-row values: the row's confidences in f32, then each step's dot
    /// products turned into update coefficients.
    pub(super) conf: Vec<f32>,
    pub(super) coefs: Vec<f32>,
    pub(super) stack: MemBuffer,
}

impl Scratch {
    /// Buffers for either solver.
    pub(super) fn new(f: usize) -> Self {
        Self {
            a: vec![0.0; f * f],
            b: vec![0.0; f],
            stack: MemBuffer::new(llt::factor::cholesky_in_place_scratch::<f64>(
                f,
                Par::Seq,
                Default::default(),
            )),
            ..Self::for_cg(f)
        }
    }

    /// Buffers for conjugate gradient only: a few vectors, without the exact solver's `f x f`
    /// matrix and factorisation workspace. The parallel solve makes one per task it splits off,
    /// hundreds per half-iteration, and fresh 40 KiB blocks each time cost page faults that
    /// showed in profiles.
    pub(super) fn for_cg(f: usize) -> Self {
        Self {
            a: Vec::new(),
            b: Vec::new(),
            gathered: Vec::new(),
            scaled: Vec::new(),
            x: vec![0.0; f],
            r: vec![0.0; f],
            p: vec![0.0; f],
            ap: vec![0.0; f],
            conf: Vec::new(),
            coefs: Vec::new(),
            stack: MemBuffer::new(StackReq::EMPTY),
        }
    }
}
