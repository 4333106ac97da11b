//! One module per `kindred` subcommand.

pub mod eval;
pub mod models;
pub mod predict;
pub mod quickstart;
pub mod recommend;
pub mod report;
pub mod split;
pub mod stats;
pub mod train;

use std::sync::Arc;

use kindred_core::{CancelFlag, FitContext, Progress};

use crate::progress::{ctrl_c_flag, TerminalProgress};

/// What every command shares: verbosity, threads, progress and the Ctrl-C flag.
pub struct Env {
    pub quiet: bool,
    pub threads: usize,
    pub progress: Arc<dyn Progress>,
    pub cancel: CancelFlag,
}

impl Env {
    pub fn new(quiet: bool, threads: Option<usize>) -> Self {
        Self {
            quiet,
            threads: threads.unwrap_or_else(rayon::current_num_threads).max(1),
            progress: Arc::new(TerminalProgress::new(quiet)),
            cancel: ctrl_c_flag(),
        }
    }

    /// A fit context with this environment's threads, progress and cancel flag.
    pub fn fit_context(&self, seed: u64) -> FitContext {
        FitContext {
            threads: self.threads,
            seed,
            progress: Arc::clone(&self.progress),
            cancel: self.cancel.clone(),
        }
    }

    /// Prints a status line on stderr unless quiet.
    pub fn note(&self, message: impl AsRef<str>) {
        if !self.quiet {
            eprintln!("{}", message.as_ref());
        }
    }
}

/// Writes `value` as pretty JSON to `path`.
pub fn write_json(path: &std::path::Path, value: &impl serde::Serialize) -> anyhow::Result<()> {
    use anyhow::Context;
    let json = serde_json::to_string_pretty(value)?;
    std::fs::write(path, json + "\n").with_context(|| format!("writing {}", path.display()))
}
