//! Long calls (fit, evaluate, recommend for many users) run on a worker thread with the GIL
//! released, while the calling thread waits for the result and, every few milliseconds without
//! one, lets Python handle signals and shows progress: Ctrl-C raises the job's cancel flag, the
//! job stops at its next check, and the call raises `KeyboardInterrupt`. A result wakes the
//! caller at once, so a short call pays a thread start (tens of microseconds), not a polling
//! interval.

use std::sync::mpsc;
use std::time::Duration;

use kindred_core::CancelFlag;
use pyo3::prelude::*;

use crate::progress::Reporter;

/// How long the waiting thread waits for the result before it looks for a pending signal.
const POLL: Duration = Duration::from_millis(20);

/// Runs `work` without the GIL; `cancel` is raised when a signal handler raises (Ctrl-C), and
/// that exception is returned once the work has stopped.
pub fn run<T: Send>(
    py: Python<'_>,
    cancel: &CancelFlag,
    work: impl FnOnce() -> kindred_core::Result<T> + Send,
) -> PyResult<T> {
    run_reporting(py, cancel, None, work)
}

/// [`run`], also handing the job's progress to `reporter`'s callback while it waits (and once
/// more at the end, so a bar reaches its total). An exception the callback raises cancels the
/// job, as Ctrl-C does, and is what the call raises.
pub fn run_reporting<T: Send>(
    py: Python<'_>,
    cancel: &CancelFlag,
    mut reporter: Option<&mut Reporter<'_>>,
    work: impl FnOnce() -> kindred_core::Result<T> + Send,
) -> PyResult<T> {
    std::thread::scope(|scope| {
        let (done, mut result) = mpsc::sync_channel(1);
        let worker = scope.spawn(move || {
            // The receiver outlives the scope's threads, so this send cannot fail.
            let _ = done.send(work());
        });
        let mut interrupted = None;
        let outcome = loop {
            // The receiver moves into the GIL-free closure and back (it is Send, not Sync).
            let (received, receiver) = py.detach(move || (result.recv_timeout(POLL), result));
            result = receiver;
            match received {
                Ok(outcome) => break Some(outcome),
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if interrupted.is_none() {
                        let checked = py
                            .check_signals()
                            .and_then(|()| reporter.as_mut().map_or(Ok(()), |r| r.deliver()));
                        if let Err(raised) = checked {
                            cancel.cancel();
                            interrupted = Some(raised);
                        }
                    }
                }
                // The worker ended without sending: it panicked.
                Err(mpsc::RecvTimeoutError::Disconnected) => break None,
            }
        };
        // Joined here, so a panic is reported rather than re-raised when the scope ends.
        let panicked = py.detach(|| worker.join()).is_err();
        if let Some(raised) = interrupted {
            return Err(raised);
        }
        let result = match outcome {
            Some(result) if !panicked => result.map_err(crate::errors::to_py),
            _ => Err(crate::errors::KindredError::new_err(
                "the job panicked; this is a bug in Kindred",
            )),
        };
        if let (Ok(_), Some(reporter)) = (&result, reporter) {
            reporter.deliver()?;
        }
        result
    })
}
