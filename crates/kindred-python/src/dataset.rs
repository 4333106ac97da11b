//! `kindred.Dataset`: interactions (and features) loaded once in Rust and shared by every model
//! fitted or evaluated on them. The DataFrame and CSR constructors are in Python
//! (python/kindred/_dataset.py); they hand columns to [`PyDataset::from_columns`].

use std::sync::Arc;

use kindred_core::{CancelFlag, Dataset, TimestampRange};
use kindred_data::columns::{dataset_from_columns, Columns};
use kindred_data::{DataSpec, ImportOptions};
use pyo3::prelude::*;

use crate::errors::to_py;
use crate::interrupt;

/// A loaded dataset. Build one with `from_file`, `from_movielens`, `from_pandas` or `from_csr`.
#[pyclass(name = "Dataset", module = "kindred._native", frozen)]
pub struct PyDataset {
    pub(crate) data: Arc<Dataset>,
    /// The data spec it came from (`movielens:DIR`, ...) or `dataframe:NAME`: what a saved
    /// model records as its source.
    pub(crate) source: String,
}

#[pymethods]
impl PyDataset {
    /// Loads `spec` exactly as the CLI's `--data SPEC` does (`movielens:DIR`, `csv:FILE`,
    /// `jsonl:FILE`, `synthetic:users=N,...`).
    #[staticmethod]
    fn from_file(py: Python<'_>, spec: &str) -> PyResult<Self> {
        let parsed = DataSpec::parse(spec).map_err(to_py)?;
        let cancel = CancelFlag::new();
        let (data, _report) = interrupt::run(py, &cancel, || {
            kindred_data::load(&parsed, &ImportOptions::default())
        })?;
        Ok(Self {
            data: Arc::new(data),
            source: spec.to_owned(),
        })
    }

    /// Loads a MovieLens directory (ml-100k, ml-1m, ...).
    #[staticmethod]
    fn from_movielens(py: Python<'_>, path: &str) -> PyResult<Self> {
        Self::from_file(py, &format!("movielens:{path}"))
    }

    /// Builds a dataset from columns of equal length (ids as strings); the importers' row
    /// checks apply, and the first bad row raises `ValueError` naming the row and column.
    #[staticmethod]
    #[pyo3(signature = (user, item, rating=None, weight=None, timestamp=None, event=None, name="dataframe"))]
    #[allow(clippy::too_many_arguments)]
    fn from_columns(
        py: Python<'_>,
        user: Vec<String>,
        item: Vec<String>,
        rating: Option<Vec<f32>>,
        weight: Option<Vec<f32>>,
        timestamp: Option<Vec<Option<i64>>>,
        event: Option<Vec<String>>,
        name: &str,
    ) -> PyResult<Self> {
        let columns = Columns {
            user,
            item,
            rating,
            weight,
            timestamp,
            event,
        };
        let cancel = CancelFlag::new();
        let data = interrupt::run(py, &cancel, || {
            dataset_from_columns(name, &columns, &TimestampRange::default())
        })?;
        Ok(Self {
            data: Arc::new(data),
            source: format!("dataframe:{name}"),
        })
    }

    /// The dataset's name (`movielens-1m`, the DataFrame's name, ...).
    #[getter]
    fn name(&self) -> &str {
        &self.data.name
    }

    /// Distinct users.
    #[getter]
    fn n_users(&self) -> usize {
        self.data.interactions.n_users()
    }

    /// Distinct items.
    #[getter]
    fn n_items(&self) -> usize {
        self.data.interactions.n_items()
    }

    /// Every user id, in the dataset's internal order.
    fn user_ids(&self) -> Vec<String> {
        self.data.interactions.user_ids().externals().to_vec()
    }

    /// Every item id, in the dataset's internal order.
    fn item_ids(&self) -> Vec<String> {
        self.data.interactions.item_ids().externals().to_vec()
    }

    fn __len__(&self) -> usize {
        self.data.interactions.len()
    }

    fn __repr__(&self) -> String {
        format!(
            "Dataset({:?}: {} interactions, {} users, {} items)",
            self.data.name,
            self.data.interactions.len(),
            self.data.interactions.n_users(),
            self.data.interactions.n_items()
        )
    }
}
