//! `kindred.tune`: `kindred tune` from Python, the nested search of one family (or `auto`)
//! with the same options; the report is the CLI's `--json` document.

use std::sync::Arc;

use kindred_core::{CancelFlag, Protocol};
use kindred_eval::tune::{Method, TuneOptions};
use pyo3::prelude::*;

use crate::dataset::PyDataset;
use crate::errors::to_py;
use crate::evaluate::{report_json, Scoring};
use crate::interrupt;
use crate::progress::Reporter;

/// Searches `family`'s hyperparameters on validation rows carved from each outer training set
/// of `protocol` and scores the choice and the defaults on the outer test sets, as `kindred
/// tune` does with the same arguments (including `--seconds` as `seconds`); returns the report
/// as JSON text.
#[pyfunction]
#[pyo3(signature = (family, dataset, protocol, trials=None, seconds=None, method="tpe", metric=None, parallel=1, outer_folds=None, k=10, seed=42, bootstrap=1000, threads=None, progress=None))]
#[allow(clippy::too_many_arguments)]
pub fn tune(
    py: Python<'_>,
    family: &str,
    dataset: &PyDataset,
    protocol: &str,
    trials: Option<usize>,
    seconds: Option<f64>,
    method: &str,
    metric: Option<String>,
    parallel: usize,
    outer_folds: Option<usize>,
    k: usize,
    seed: u64,
    bootstrap: usize,
    threads: Option<usize>,
    progress: Option<Bound<'_, PyAny>>,
) -> PyResult<String> {
    let protocol = Protocol::parse(protocol).map_err(to_py)?;
    let method = Method::parse(method).map_err(to_py)?;
    if kindred_eval::auto::is_auto(family) {
        kindred_eval::build_algorithm_for(family, &protocol).map_err(to_py)?;
    } else {
        kindred_models::registry::space_for(family).map_err(to_py)?;
    }
    // The final scoring records what `kindred tune` records (segments, no AUC).
    let scoring = Scoring {
        k,
        seed,
        bootstrap,
        curve_k: 50,
        segments: true,
        auc: false,
        threads,
    };
    let cancel = CancelFlag::new();
    let mut reporter = progress.map(Reporter::new);
    let eval = scoring.options(&cancel, reporter.as_ref())?;
    let opts = TuneOptions {
        method,
        max_trials: trials,
        max_seconds: seconds,
        metric,
        parallel,
        outer_folds,
        ..TuneOptions::new(family)
    };
    let data = Arc::clone(&dataset.data);
    interrupt::run_reporting(py, &cancel, reporter.as_mut(), move || {
        report_json(&kindred_eval::tune(&data, &protocol, &opts, &eval)?)
    })
}
