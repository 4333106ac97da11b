//! `kindred.evaluate`: `kindred eval` from Python. The report is the CLI's `--json` document.

use std::sync::Arc;

use kindred_core::{CancelFlag, FitContext, NoProgress, Protocol};
use kindred_eval::{evaluate as run_evaluation, EvalOptions};
use pyo3::prelude::*;

use crate::dataset::PyDataset;
use crate::errors::to_py;
use crate::interrupt;

/// Fits and scores each model spec under `protocol` on `dataset`; returns the report as JSON
/// text, the same document `kindred eval --json` writes for the same arguments.
#[pyfunction]
#[pyo3(signature = (models, dataset, protocol, k=10, seed=42, bootstrap=1000, curve_k=50, segments=true, auc=true, threads=None))]
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
) -> PyResult<String> {
    if k == 0 {
        return Err(pyo3::exceptions::PyValueError::new_err(
            "k must be at least 1",
        ));
    }
    let protocol = Protocol::parse(protocol).map_err(to_py)?;
    for spec in &models {
        kindred_eval::build_algorithm_for(spec, &protocol).map_err(to_py)?;
    }
    let cancel = CancelFlag::new();
    let options = EvalOptions {
        k,
        seed,
        threads: threads.unwrap_or(FitContext::default().threads).max(1),
        progress: Arc::new(NoProgress),
        cancel: cancel.clone(),
        segments,
        auc,
        export_recs: None,
        bootstrap,
        curve_k,
        max_folds: None,
        rank: None,
    };
    let data = Arc::clone(&dataset.data);
    interrupt::run(py, &cancel, move || {
        let report = run_evaluation(&data, &protocol, &models, &options)?;
        serde_json::to_string(&report).map_err(|e| {
            kindred_core::Error::InvalidInput(format!("the report does not serialise: {e}"))
        })
    })
}
