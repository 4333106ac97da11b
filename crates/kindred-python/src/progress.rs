//! Progress of a long call, shown from Python. The Rust job reports into a [`Relay`] (a short
//! lock and an atomic counter, never the GIL), and the thread waiting for the job hands what
//! changed to a Python callable between its checks for Ctrl-C (see [`crate::interrupt`]): Python
//! code runs on the caller's thread only, at most once per polling interval.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use kindred_core::Progress;
use pyo3::prelude::*;

/// The current phase as the job last described it.
#[derive(Debug, Clone, Default, PartialEq)]
struct Phase {
    /// Counts phases begun, so two phases with the same name are told apart.
    number: u64,
    task: String,
    total: u64,
    /// The last finished epoch of an iterative model: (epoch, training loss).
    epoch: Option<(usize, f64)>,
}

/// What a job reports, kept until the waiting thread reads it.
#[derive(Debug, Default)]
pub struct Relay {
    phase: Mutex<Phase>,
    done: AtomicU64,
}

impl Progress for Relay {
    fn begin(&self, task: &str, total: u64) {
        if let Ok(mut phase) = self.phase.lock() {
            phase.number += 1;
            phase.task = task.to_owned();
            phase.total = total;
            phase.epoch = None;
            self.done.store(0, Ordering::Relaxed);
        }
    }

    fn advance(&self, n: u64) {
        self.done.fetch_add(n, Ordering::Relaxed);
    }

    fn epoch(&self, epoch: usize, loss: f64, _validation: Option<f64>) {
        if let Ok(mut phase) = self.phase.lock() {
            phase.epoch = Some((epoch, loss));
        }
    }
}

/// A relay and the Python callable it reports to: `callback(phase, task, done, total, loss)`,
/// called whenever one of them changed since the last call (`loss` is None outside epochs).
pub struct Reporter<'py> {
    pub relay: std::sync::Arc<Relay>,
    callback: Bound<'py, PyAny>,
    last: Option<(Phase, u64)>,
}

impl<'py> Reporter<'py> {
    pub fn new(callback: Bound<'py, PyAny>) -> Self {
        Self {
            relay: std::sync::Arc::new(Relay::default()),
            callback,
            last: None,
        }
    }

    /// Calls the callback if anything changed; an exception it raises is returned.
    pub fn deliver(&mut self) -> PyResult<()> {
        let Ok(phase) = self.relay.phase.lock().map(|p| p.clone()) else {
            return Ok(());
        };
        if phase.number == 0 {
            return Ok(());
        }
        let done = self.relay.done.load(Ordering::Relaxed);
        let now = (phase, done);
        if self.last.as_ref() == Some(&now) {
            return Ok(());
        }
        let (phase, done) = &now;
        let loss = phase.epoch.map(|(_, loss)| loss);
        self.callback
            .call1((phase.number, phase.task.as_str(), *done, phase.total, loss))?;
        self.last = Some(now);
        Ok(())
    }
}
