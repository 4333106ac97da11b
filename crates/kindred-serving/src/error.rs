//! The serving crate's errors: what setting up the serving state, a service call or background
//! work can fail with. Each variant says whose fault it is, so the HTTP server maps it to a
//! status without knowing the service, and the CLI reports it as is.

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Failures of setup, service calls and background work.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A config file or environment value that is invalid; `origin` names where it came from.
    #[error("{origin}: {message}")]
    Config { origin: String, message: String },
    /// Anything from the libraries (store, models, ranking).
    #[error(transparent)]
    Core(#[from] kindred_core::Error),
    /// A background task died (panicked or was cancelled).
    #[error("background task failed: {0}")]
    Task(String),
    /// A call the caller got wrong; `code` is stable and machine-readable
    /// (`unknown_rank_config`, `invalid_parameter`, ...).
    #[error("{message}")]
    Invalid { code: &'static str, message: String },
    /// What the call names does not exist; the message names it.
    #[error("{0}")]
    NotFound(String),
    /// The call conflicts with the current state (a run in progress, a version already live, ...).
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
}

impl Error {
    pub(crate) fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        Self::Invalid {
            code,
            message: message.into(),
        }
    }

    pub(crate) fn not_found(what: &str, id: &str) -> Self {
        Self::NotFound(format!("{what} `{id}` not found"))
    }

    pub(crate) fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::Conflict {
            code,
            message: message.into(),
        }
    }
}
