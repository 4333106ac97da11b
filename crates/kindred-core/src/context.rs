//! What a long job needs besides its input: threads, a seed, a progress sink and a cancel flag.
//!
//! Libraries never print: they report progress through [`Progress`], and they check the
//! [`CancelFlag`] between units of work, returning [`crate::Error::Cancelled`] when it is raised.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::error::{Error, Result};

/// Receives progress from long jobs. Every method has a no-op default.
pub trait Progress: Send + Sync {
    /// A new phase named `task` with `total` units (0 when unknown).
    fn begin(&self, _task: &str, _total: u64) {}
    /// `n` more units done.
    fn advance(&self, _n: u64) {}
    /// An iterative model finished epoch `epoch` (numbered from 0) with this training loss (and
    /// validation metric if any).
    fn epoch(&self, _epoch: usize, _loss: f64, _validation: Option<f64>) {}
    /// The current phase ended.
    fn finish(&self) {}
}

/// A progress sink that ignores everything.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {}

/// A shared flag that asks long jobs to stop.
#[derive(Debug, Clone, Default)]
pub struct CancelFlag(Arc<AtomicBool>);

impl CancelFlag {
    /// A lowered flag.
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks every job holding this flag to stop.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    /// True once [`Self::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    /// `Err(Cancelled)` once the flag is raised: call between units of work.
    pub fn check(&self) -> Result<()> {
        if self.is_cancelled() {
            Err(Error::Cancelled)
        } else {
            Ok(())
        }
    }
}

/// Threads, seed, progress and cancellation for one fit or evaluation.
#[derive(Clone)]
pub struct FitContext {
    /// Worker threads the job may use (at least 1).
    pub threads: usize,
    pub seed: u64,
    pub progress: Arc<dyn Progress>,
    pub cancel: CancelFlag,
}

impl std::fmt::Debug for FitContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FitContext")
            .field("threads", &self.threads)
            .field("seed", &self.seed)
            .finish_non_exhaustive()
    }
}

impl Default for FitContext {
    fn default() -> Self {
        Self {
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            seed: 42,
            progress: Arc::new(NoProgress),
            cancel: CancelFlag::new(),
        }
    }
}

impl FitContext {
    /// A context with the given seed and defaults otherwise.
    pub fn with_seed(seed: u64) -> Self {
        Self {
            seed,
            ..Self::default()
        }
    }
}
