//! What every row solve of a half-iteration reads and writes: the fixed side ([`Fixed`]: the
//! Gram matrix and the other side's factors) and one thread's buffers ([`Scratch`]). Both
//! solvers (`cg`, `cholesky`) and the dispatcher (`solve`) use them, so they live apart from all
//! three.

use faer::dyn_stack::MemBuffer;
use faer::linalg::cholesky::llt;
use faer::Par;

/// The fixed side of a half-iteration: `G = YtY + reg I` and the other side's factors (f64 for
/// the exact solver; an f32 copy for conjugate gradient, whose loops are bound by fetching these
/// scattered rows: half the bytes, and the CG arithmetic itself stays f64).
#[derive(Clone, Copy)]
pub(super) struct Fixed<'a, T = f64> {
    pub(super) gram: &'a [f64],
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
    pub(super) r: Vec<f64>,
    pub(super) p: Vec<f64>,
    pub(super) ap: Vec<f64>,
    pub(super) stack: MemBuffer,
}

impl Scratch {
    pub(super) fn new(f: usize) -> Self {
        Self {
            a: vec![0.0; f * f],
            b: vec![0.0; f],
            gathered: Vec::new(),
            scaled: Vec::new(),
            r: vec![0.0; f],
            p: vec![0.0; f],
            ap: vec![0.0; f],
            stack: MemBuffer::new(llt::factor::cholesky_in_place_scratch::<f64>(
                f,
                Par::Seq,
                Default::default(),
            )),
        }
    }
}
