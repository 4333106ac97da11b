//! The crate's error type: what went wrong in a cluster job, with the peer, file or setting named.

use std::path::PathBuf;

/// Errors of cluster jobs.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An error from the shared libraries (bad input data, invalid parameters, cancellation).
    #[error(transparent)]
    Core(#[from] kindred_core::Error),
    /// The hosts file or the process/worker settings are unusable.
    #[error("cluster configuration: {0}")]
    Config(String),
    /// A peer could not be reached before the connect deadline.
    #[error(
        "process {process} could not reach process {peer} at {address} within {seconds} s: {cause}"
    )]
    Unreachable {
        process: usize,
        peer: usize,
        address: String,
        seconds: u64,
        cause: String,
    },
    /// This process could not listen on its own address.
    #[error("process {process} cannot listen on {address}: {cause}")]
    Listen {
        process: usize,
        address: String,
        cause: String,
    },
    /// A peer process died or its connection broke while the job ran.
    #[error("a peer process failed or became unreachable during the job ({0}); restart the job to resume from the last checkpoint")]
    PeerLost(String),
    /// A worker of this process failed.
    #[error("worker {worker} failed: {message}")]
    Worker { worker: usize, message: String },
    /// Reading or writing a file failed.
    #[error("{}: {cause}", path.display())]
    Io {
        path: PathBuf,
        cause: std::io::Error,
    },
    /// A checkpoint exists but cannot be used for this job.
    #[error("checkpoint {}: {message}", path.display())]
    Checkpoint { path: PathBuf, message: String },
    /// A message between workers could not be decoded (a bug or mismatched binaries).
    #[error("malformed message from worker {from}: {message}")]
    Wire { from: usize, message: String },
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, cause: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            cause,
        }
    }
}

/// Result with [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
