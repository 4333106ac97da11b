//! One module per `kindred` subcommand.

#[cfg(feature = "cluster")]
pub mod cluster;
pub mod embed;
pub mod eval;
pub mod experiment;
pub mod import;
pub mod models;
pub mod monitor;
pub mod offpolicy;
pub mod predict;
pub mod quickstart;
pub mod recommend;
pub mod report;
pub mod serve;
pub mod similar;
pub mod simulate;
pub mod split;
pub mod stats;
pub mod train;
pub mod tune;

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
            // One write per line: child processes share this stderr, and a line written in
            // pieces can be split by theirs.
            use std::io::Write;
            let line = format!("{}\n", message.as_ref());
            let _ = std::io::stderr().lock().write_all(line.as_bytes());
        }
    }
}

/// A multi-threaded tokio runtime for the commands that talk to a store or serve.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    use anyhow::Context;
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// Writes `value` as pretty JSON to `path`.
pub fn write_json(path: &std::path::Path, value: &impl serde::Serialize) -> anyhow::Result<()> {
    use anyhow::Context;
    let json = serde_json::to_string_pretty(value)?;
    std::fs::write(path, json + "\n").with_context(|| format!("writing {}", path.display()))
}

/// A `--model` argument: a spec, or `@FILE` naming a file that holds one: a `kindred tune
/// --json` result (its `tuning.chosen`), or text with the spec on its first non-empty line
/// (`kindred tune --best`).
pub fn model_spec_arg(arg: &str) -> anyhow::Result<String> {
    use anyhow::{bail, Context};
    let Some(path) = arg.trim().strip_prefix('@') else {
        return Ok(arg.to_owned());
    };
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading model spec file {path}"))?;
    let trimmed = text.trim_start();
    if trimmed.starts_with('{') {
        let json: serde_json::Value =
            serde_json::from_str(trimmed).with_context(|| format!("{path}: not valid JSON"))?;
        return match json.pointer("/tuning/chosen").and_then(|v| v.as_str()) {
            Some(spec) => Ok(spec.to_owned()),
            None => bail!("{path}: JSON without a string at tuning.chosen (expected a `kindred tune --json` result)"),
        };
    }
    match text.lines().map(str::trim).find(|l| !l.is_empty()) {
        Some(spec) => Ok(spec.to_owned()),
        None => bail!("{path}: empty; expected a model spec on its first non-empty line"),
    }
}

#[cfg(test)]
mod tests {
    use super::model_spec_arg;

    #[test]
    fn model_spec_files_hold_a_line_or_a_tune_result() {
        let dir = std::env::temp_dir().join(format!("kindred-spec-arg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert_eq!(model_spec_arg("svd:factors=10").unwrap(), "svd:factors=10");
        let line = dir.join("best.txt");
        std::fs::write(&line, "\n  als:factors=32,reg=0.1 \nignored\n").unwrap();
        assert_eq!(
            model_spec_arg(&format!("@{}", line.display())).unwrap(),
            "als:factors=32,reg=0.1"
        );
        let json = dir.join("tune.json");
        std::fs::write(
            &json,
            r#"{"results": [], "tuning": {"chosen": "svd:epochs=30"}}"#,
        )
        .unwrap();
        assert_eq!(
            model_spec_arg(&format!("@{}", json.display())).unwrap(),
            "svd:epochs=30"
        );
        std::fs::write(&json, r#"{"results": []}"#).unwrap();
        let err = model_spec_arg(&format!("@{}", json.display()))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("tune.json") && err.contains("tuning.chosen"),
            "{err}"
        );
        let empty = dir.join("empty.txt");
        std::fs::write(&empty, "\n \n").unwrap();
        let err = model_spec_arg(&format!("@{}", empty.display()))
            .unwrap_err()
            .to_string();
        assert!(err.contains("empty.txt"), "{err}");
        let err = format!(
            "{:#}",
            model_spec_arg("@/nonexistent/spec.txt").unwrap_err()
        );
        assert!(err.contains("/nonexistent/spec.txt"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
