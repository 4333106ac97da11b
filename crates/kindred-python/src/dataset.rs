//! `kindred.Dataset`: interactions (and features) loaded once in Rust and shared by every model
//! fitted or evaluated on them. The DataFrame and CSR constructors are in Python
//! (python/kindred/dataset.py); they hand columns to [`PyDataset::from_columns`] and features
//! to [`PyDataset::with_features`].

use std::path::Path;
use std::sync::Arc;

use kindred_core::{CancelFlag, Dataset, Error, FeatureTable, TimestampRange};
use kindred_data::columns::{dataset_from_columns, Columns};
use kindred_data::jsonl::read_features_jsonl;
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

    /// This dataset with item and/or user features replaced, each given as JSON Lines text in
    /// the form `--item-features FILE` takes (one `{"id": .., "genres": [..], "price": 9.5,
    /// "title": "..", "embedding": [..]}` per line, one line per DataFrame row), parsed by the
    /// same reader; errors name the DataFrame (`items_name`), the row and the JSON path.
    #[pyo3(signature = (items=None, users=None, items_name="item_features", users_name="user_features"))]
    fn with_features(
        &self,
        py: Python<'_>,
        items: Option<Vec<u8>>,
        users: Option<Vec<u8>>,
        items_name: &str,
        users_name: &str,
    ) -> PyResult<Self> {
        // A line of the JSON Lines text is a row of the DataFrame: errors say the row, as
        // `from_columns` does.
        let read = |text: Option<Vec<u8>>, name: &str| {
            text.map(|bytes| {
                read_features_jsonl(&bytes, Path::new(name))
                    .map(Arc::new)
                    .map_err(|e| match e {
                        Error::Parse {
                            line,
                            field,
                            message,
                            ..
                        } => Error::InvalidInput(format!(
                            "{name}: row {}: field `{field}`: {message}",
                            line.saturating_sub(1)
                        )),
                        other => other,
                    })
            })
            .transpose()
        };
        let data = Arc::clone(&self.data);
        let cancel = CancelFlag::new();
        let dataset = interrupt::run(py, &cancel, move || {
            let mut dataset = Dataset {
                name: data.name.clone(),
                interactions: data.interactions.clone(),
                item_features: data.item_features.clone(),
                user_features: data.user_features.clone(),
            };
            if let Some(table) = read(items, items_name)? {
                dataset.item_features = Some(table);
            }
            if let Some(table) = read(users, users_name)? {
                dataset.user_features = Some(table);
            }
            Ok(dataset)
        })?;
        Ok(Self {
            data: Arc::new(dataset),
            source: self.source.clone(),
        })
    }

    /// The item feature names (empty without item features).
    fn item_feature_names(&self) -> Vec<String> {
        feature_names(self.data.item_features.as_deref())
    }

    /// The user feature names (empty without user features).
    fn user_feature_names(&self) -> Vec<String> {
        feature_names(self.data.user_features.as_deref())
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

fn feature_names(table: Option<&FeatureTable>) -> Vec<String> {
    table.map_or_else(Vec::new, |t| {
        t.columns().iter().map(|c| c.name.clone()).collect()
    })
}
