//! `kindred.report`: `kindred report` from Python, one self-contained HTML page from evaluation
//! and tuning results (the reports `kindred.evaluate` and `kindred.tune` return).

use std::path::PathBuf;

use kindred_core::Error;
use kindred_eval::EvalReport;
use kindred_report::{render_html, Source};
use pyo3::prelude::*;

use crate::errors::to_py;

/// Writes the HTML report of `results` (each one report's JSON text, labelled by the matching
/// entry of `names` where two results share a model spec) to `path`.
#[pyfunction]
pub fn report(
    py: Python<'_>,
    results: Vec<String>,
    names: Vec<String>,
    path: PathBuf,
) -> PyResult<()> {
    if results.is_empty() {
        return Err(pyo3::exceptions::PyValueError::new_err(
            "no results given to report on",
        ));
    }
    let sources = results
        .iter()
        .zip(names.iter().chain(std::iter::repeat(&String::new())))
        .enumerate()
        .map(|(i, (text, name))| {
            let label = if name.is_empty() {
                format!("results-{}", i + 1)
            } else {
                name.clone()
            };
            let report: EvalReport = serde_json::from_str(text).map_err(|e| {
                Error::InvalidInput(format!(
                    "results {} (`{label}`) is not a report of kindred.evaluate or kindred.tune: {e}",
                    i + 1
                ))
            })?;
            Ok(Source {
                path: PathBuf::from(format!("{label}.json")),
                report,
            })
        })
        .collect::<kindred_core::Result<Vec<_>>>()
        .map_err(to_py)?;
    py.detach(|| {
        let html = render_html(&sources);
        std::fs::write(&path, html).map_err(|e| Error::io(&path, e))
    })
    .map_err(to_py)
}
