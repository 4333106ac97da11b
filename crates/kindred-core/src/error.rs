//! The one error type of kindred-core and the crates built on it.
//!
//! Errors about input always say where: the file, the 1-based line and the field (or JSON path),
//! so a user can fix the data without reading our code.

use std::path::PathBuf;

/// Result alias used across Kindred's library crates.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in Kindred's libraries.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An I/O failure on a named file. The OS error is part of the message and deliberately not
    /// a `source()`: printers that walk the chain (`anyhow`'s `{:#}`) would say it twice.
    #[error("{}: {error}", path.display())]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    /// A record that could not be parsed; `line` is 1-based, `field` names the column or JSON path.
    #[error("{}:{line}: field `{field}`: {message}", file.display())]
    Parse {
        file: PathBuf,
        line: u64,
        field: String,
        message: String,
    },
    /// An invalid config file: `origin` is `FILE:LINE:COLUMN` (as much of it as is known) and
    /// `message` names the key; built by [`crate::ConfigLocation::error`].
    #[error("{origin}: {message}")]
    Config { origin: String, message: String },
    /// A file that is unusable as a whole (empty, wrong header, wrong encoding).
    #[error("{}: {message}", file.display())]
    BadFile { file: PathBuf, message: String },
    /// A user-supplied specification (data spec, model spec, protocol, config) that is invalid.
    #[error("invalid {what} `{input}`: {message}")]
    Spec {
        what: &'static str,
        input: String,
        message: String,
    },
    /// A request that does not fit the data (unknown id, empty training set, ...).
    #[error("{0}")]
    InvalidInput(String),
    /// A saved model that cannot be loaded.
    #[error("model at {}: {message}", path.display())]
    Model { path: PathBuf, message: String },
    /// A long job stopped because its cancel flag was raised.
    #[error("cancelled")]
    Cancelled,
    /// The store's backend (SQLite, PostgreSQL) failed; `operation` names what was being done.
    #[error("store ({backend}): {operation}: {message}")]
    Store {
        backend: &'static str,
        operation: &'static str,
        message: String,
    },
}

impl Error {
    /// Builds a [`Error::Spec`] error.
    pub fn spec(what: &'static str, input: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Spec {
            what,
            input: input.into(),
            message: message.into(),
        }
    }

    /// Builds an [`Error::Io`] error for `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            error: source,
        }
    }
}
