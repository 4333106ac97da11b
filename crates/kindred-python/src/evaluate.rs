//! `kindred.evaluate`: `kindred eval` from Python. The report is the CLI's `--json` document.

use std::sync::Arc;

use kindred_core::{CancelFlag, FitContext, NoProgress, Progress, Protocol};
use kindred_eval::{evaluate as run_evaluation, EvalOptions, EvalReport};
use pyo3::prelude::*;

use crate::dataset::PyDataset;
use crate::errors::to_py;
use crate::interrupt;
use crate::progress::Reporter;

/// What `evaluate` and `tune` share: k, seed, threads and what the scoring computes, with the
/// cancel flag and progress of one call.
pub struct Scoring {
    pub k: usize,
    pub seed: u64,
    pub bootstrap: usize,
    pub curve_k: usize,
    pub segments: bool,
    pub auc: bool,
    pub threads: Option<usize>,
}

impl Scoring {
    /// The CLI's evaluation options for these settings.
    pub fn options(
        &self,
        cancel: &CancelFlag,
        reporter: Option<&Reporter<'_>>,
    ) -> PyResult<EvalOptions> {
        if self.k == 0 {
            return Err(pyo3::exceptions::PyValueError::new_err(
                "k must be at least 1",
            ));
        }
        let progress: Arc<dyn Progress> = match reporter {
            Some(r) => r.relay.clone(),
            None => Arc::new(NoProgress),
        };
        Ok(EvalOptions {
            k: self.k,
            seed: self.seed,
            threads: self.threads.unwrap_or(FitContext::default().threads).max(1),
            progress,
            cancel: cancel.clone(),
            segments: self.segments,
            auc: self.auc,
            export_recs: None,
            bootstrap: self.bootstrap,
            curve_k: self.curve_k,
            max_folds: None,
            rank: None,
        })
    }
}

/// The report as the JSON text `--json` writes.
pub fn report_json(report: &EvalReport) -> kindred_core::Result<String> {
    serde_json::to_string(report).map_err(|e| {
        kindred_core::Error::InvalidInput(format!("the report does not serialise: {e}"))
    })
}

/// Fits and scores each model spec under `protocol` on `dataset`; returns the report as JSON
/// text, the same document `kindred eval --json` writes for the same arguments.
#[pyfunction]
#[pyo3(signature = (models, dataset, protocol, k=10, seed=42, bootstrap=1000, curve_k=50, segments=true, auc=true, threads=None, progress=None))]
#[allow(clippy::too_many_arguments)]
pub fn evaluate(
    py: Python<'_>,
    models: Vec<String>,
    dataset: &PyDataset,
    protocol: &str,
    k: usize,
    seed: u64,
    bootstrap: usize,
    curve_k: usize,
    segments: bool,
    auc: bool,
    threads: Option<usize>,
    progress: Option<Bound<'_, PyAny>>,
) -> PyResult<String> {
    let scoring = Scoring {
        k,
        seed,
        bootstrap,
        curve_k,
        segments,
        auc,
        threads,
    };
    let protocol = Protocol::parse(protocol).map_err(to_py)?;
    for spec in &models {
        kindred_eval::build_algorithm_for(spec, &protocol).map_err(to_py)?;
    }
    let cancel = CancelFlag::new();
    let mut reporter = progress.map(Reporter::new);
    let options = scoring.options(&cancel, reporter.as_ref())?;
    let data = Arc::clone(&dataset.data);
    interrupt::run_reporting(py, &cancel, reporter.as_mut(), move || {
        report_json(&run_evaluation(&data, &protocol, &models, &options)?)
    })
}
