//! `kindred._native`: the compiled half of the `kindred` Python package (python/kindred/).
//!
//! Everything here calls the library functions the CLI calls: a dataset loads through
//! `kindred_data::spec`, a model fits through `kindred_serving::fit_version` and saves through
//! `save_version` (the server's model format), lists come from `kindred_models::recommend_users`,
//! evaluation and tuning are `kindred_eval::evaluate` and `tune` (returning the CLI's JSON), and
//! the HTML report is `kindred_report::render_html`. The GIL is released
//! while Rust works, and Ctrl-C cancels a long call ([`interrupt`]).

use pyo3::prelude::*;

/// Rust's allocations in this module (Python's objects keep Python's allocator): see the
/// dependency's note in Cargo.toml.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod dataset;
mod errors;
mod evaluate;
mod interrupt;
mod model;
mod progress;
mod report;
mod tune;

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    // The pool every parallel job runs on, started now, from the importing thread. Left to start
    // lazily, it started inside a job's worker thread, whose register state its threads
    // inherited: there the AVX registers' upper halves were in use, every SSE instruction of
    // the portable build paid for merging with them, and an ALS top-10 computed several times
    // slower than in the CLI. Already built (a second import in one process) is fine.
    let _ = rayon::ThreadPoolBuilder::new().build_global();
    m.add_class::<dataset::PyDataset>()?;
    m.add_class::<model::PyModel>()?;
    m.add_function(wrap_pyfunction!(evaluate::evaluate, m)?)?;
    m.add_function(wrap_pyfunction!(tune::tune, m)?)?;
    m.add_function(wrap_pyfunction!(report::report, m)?)?;
    m.add("KindredError", m.py().get_type::<errors::KindredError>())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
