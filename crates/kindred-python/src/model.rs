//! `kindred.Model`: one model spec, fitted through the function `kindred train` and the server
//! use (`kindred_serving::fit_version`) and saved in their format, so `kindred recommend` reads a
//! model trained here, and a model the CLI or the server trained loads here.

use std::path::PathBuf;
use std::sync::Arc;

use kindred_core::{CancelFlag, Error, FitContext, Scored, TrainSet};
use kindred_models::{load_model, recommend_users, Model};
use kindred_rank::retrieval::{
    cooccurrence_similar, Metric, VectorIndex, DEFAULT_COOCCURRENCE_SHRINK,
};
use kindred_serving::{fit_version, save_version, FittedVersion, OfflineEval, TrainSpec};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyDict};
use rayon::prelude::*;

use crate::dataset::PyDataset;
use crate::errors::{to_py, KindredError};
use crate::interrupt;
use crate::progress::Reporter;

/// Similar-item lists: per asked item, (similar item id, score) best first, and how they were
/// found (`embeddings` or `cooccurrence`).
type SimilarLists = (Vec<Vec<(String, f32)>>, &'static str);

/// What a model holds once it has one: a version fitted here (saved with its training record)
/// or a model loaded from a directory.
enum Trained {
    Fitted(Box<FittedVersion>),
    Loaded(Box<dyn Model>),
}

impl Trained {
    fn model(&self) -> &dyn Model {
        match self {
            Trained::Fitted(fitted) => fitted.model.as_ref(),
            Trained::Loaded(model) => model.as_ref(),
        }
    }
}

/// A recommendation model: `Model("als", factors=64)` or `Model("als:factors=64")`, any
/// registry family or preset (`kindred models` lists them), `auto` included.
#[pyclass(name = "Model", module = "kindred._native")]
pub struct PyModel {
    spec: String,
    trained: Option<Arc<Trained>>,
}

/// `name` with `params` appended as `key=value` (booleans as `true`/`false`).
fn spec_with(name: &str, params: Option<&Bound<'_, PyDict>>) -> PyResult<String> {
    let mut parts = Vec::new();
    for (key, value) in params.into_iter().flat_map(|p| p.iter()) {
        let key: String = key.extract()?;
        let value = if value.is_instance_of::<PyBool>() {
            if value.extract::<bool>()? {
                "true"
            } else {
                "false"
            }
            .to_owned()
        } else {
            value.str()?.to_string()
        };
        parts.push(format!("{key}={value}"));
    }
    Ok(match (parts.is_empty(), name.contains(':')) {
        (true, _) => name.to_owned(),
        (false, true) => format!("{name},{}", parts.join(",")),
        (false, false) => format!("{name}:{}", parts.join(",")),
    })
}

impl PyModel {
    /// The fitted or loaded model; the error every method needing one raises before `fit`.
    fn trained(&self) -> PyResult<&Arc<Trained>> {
        self.trained
            .as_ref()
            .ok_or_else(|| KindredError::new_err(format!("model `{}` is not fitted", self.spec)))
    }
}

/// Each of `items`' neighbours by `find` (on indices of `ids`), as external ids; an item not in
/// `ids` is an error naming it and `source`.
fn similar_by(
    items: &[String],
    ids: &kindred_core::IdMap,
    source: &str,
    find: impl Fn(u32) -> kindred_core::Result<Vec<Scored>> + Sync,
) -> kindred_core::Result<Vec<Vec<(String, f32)>>> {
    let asked = items
        .iter()
        .map(|item| {
            ids.get(item).ok_or_else(|| {
                Error::InvalidInput(format!(
                    "item `{item}` is not among the {} items of {source}",
                    ids.len()
                ))
            })
        })
        .collect::<kindred_core::Result<Vec<u32>>>()?;
    asked
        .par_iter()
        .map(|&i| {
            Ok(find(i)?
                .into_iter()
                .map(|s| (ids.external(s.item).to_owned(), s.score))
                .collect())
        })
        .collect()
}

#[pymethods]
impl PyModel {
    #[new]
    #[pyo3(signature = (spec, **params))]
    fn new(spec: &str, params: Option<&Bound<'_, PyDict>>) -> PyResult<Self> {
        let spec = spec_with(spec, params)?;
        // A typo in a name or a parameter fails here, before any data is read.
        kindred_eval::build_algorithm(&spec).map_err(to_py)?;
        Ok(Self {
            spec,
            trained: None,
        })
    }

    /// Fits on every row of `dataset` (after keeping ratings >= `positive`, when given), exactly
    /// as `kindred train --data ... --model SPEC [--positive T] --seed S` does.
    /// `progress`, when given, is called as `progress(phase, task, done, total, loss)` while the
    /// fit runs (see python/kindred/_progress.py).
    #[pyo3(signature = (dataset, positive=None, seed=42, threads=None, progress=None))]
    fn fit(
        &mut self,
        py: Python<'_>,
        dataset: &PyDataset,
        positive: Option<f32>,
        seed: u64,
        threads: Option<usize>,
        progress: Option<Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let spec = TrainSpec {
            positive,
            seed,
            ..TrainSpec::new(self.spec.clone())
        };
        let cancel = CancelFlag::new();
        let mut reporter = progress.map(Reporter::new);
        let defaults = FitContext::default();
        let ctx = FitContext {
            threads: threads.unwrap_or(defaults.threads).max(1),
            seed,
            cancel: cancel.clone(),
            progress: match &reporter {
                Some(r) => r.relay.clone(),
                None => defaults.progress,
            },
        };
        let eval = OfflineEval {
            enabled: false,
            ..OfflineEval::default()
        };
        let (data, source) = (Arc::clone(&dataset.data), dataset.source.clone());
        let fitted = interrupt::run_reporting(py, &cancel, reporter.as_mut(), move || {
            fit_version(&data, &source, &spec, ctx, &eval)
        })?;
        self.trained = Some(Arc::new(Trained::Fitted(Box::new(fitted))));
        Ok(())
    }

    /// Top-`k` lists for `users`, in that order, as three little-endian arrays packed in bytes
    /// (read with `numpy.frombuffer`, no Python object per row): per user the list's length
    /// (`u32`), then every list's items as indices into `item_ids()` (`u32`) and their scores
    /// (`f32`), best first. Seen items are left out unless `exclude_seen` is false; an unknown
    /// user gets the non-personalised ranking, as `kindred recommend` does.
    #[pyo3(signature = (users, k=10, exclude_seen=true))]
    fn recommend_packed<'py>(
        &self,
        py: Python<'py>,
        users: Vec<String>,
        k: usize,
        exclude_seen: bool,
    ) -> PyResult<(
        Bound<'py, PyBytes>,
        Bound<'py, PyBytes>,
        Bound<'py, PyBytes>,
    )> {
        let trained = Arc::clone(self.trained()?);
        let cancel = CancelFlag::new();
        let (lengths, items, scores) = interrupt::run(py, &cancel, move || {
            let lists = recommend_users(trained.model(), &users, k, exclude_seen);
            let rows: usize = lists.iter().map(|(_, l)| l.len()).sum();
            let mut lengths = Vec::with_capacity(lists.len() * 4);
            let mut items = Vec::with_capacity(rows * 4);
            let mut scores = Vec::with_capacity(rows * 4);
            for (_, list) in &lists {
                lengths.extend_from_slice(&(list.len() as u32).to_le_bytes());
                for scored in list {
                    items.extend_from_slice(&scored.item.to_le_bytes());
                    scores.extend_from_slice(&scored.score.to_le_bytes());
                }
            }
            Ok((lengths, items, scores))
        })?;
        Ok((
            PyBytes::new(py, &lengths),
            PyBytes::new(py, &items),
            PyBytes::new(py, &scores),
        ))
    }

    /// The `k` items most similar to each of `items`: by cosine of the model's item factors when
    /// it has them, else by co-occurrence (shrunk cosine of who interacted with what, as the
    /// server's similar-items route) in the rows it was fitted on, or in `dataset` for a loaded
    /// model. An item the model or the data does not know is a `ValueError`.
    #[pyo3(signature = (items, k=10, dataset=None))]
    fn similar_items(
        &self,
        py: Python<'_>,
        items: Vec<String>,
        k: usize,
        dataset: Option<&PyDataset>,
    ) -> PyResult<SimilarLists> {
        let trained = Arc::clone(self.trained()?);
        let given = dataset.map(|d| Arc::clone(&d.data));
        let cancel = CancelFlag::new();
        interrupt::run(py, &cancel, move || {
            let model = trained.model();
            if let Some((dim, vectors)) = model.item_embeddings() {
                let ids = &model.fitted().items;
                let index = VectorIndex::exact(Metric::Cosine, dim, vectors)?;
                let lists = similar_by(&items, ids, "the model", |i| index.similar_to(i, k))?;
                return Ok((lists, "embeddings"));
            }
            let built;
            let train = match (&given, trained.as_ref()) {
                (Some(data), _) => {
                    built = TrainSet::new(data.interactions.clone());
                    &built
                }
                (None, Trained::Fitted(fitted)) => &fitted.train,
                (None, Trained::Loaded(model)) => {
                    return Err(Error::InvalidInput(format!(
                        "model `{}` has no item factors: give the interactions to find \
                         co-occurring items in, `similar_items(items, dataset=...)`",
                        model.name()
                    )))
                }
            };
            let ids = train.data.item_ids();
            let lists = similar_by(&items, ids, "the data", |i| {
                cooccurrence_similar(
                    &train.by_item,
                    &train.by_user,
                    i,
                    k,
                    DEFAULT_COOCCURRENCE_SHRINK,
                )
            })?;
            Ok((lists, "cooccurrence"))
        })
    }

    /// Predicted ratings of `(user, item)` pairs; NaN where the model predicts none (ranking
    /// models) or an id is unknown to both the model's users and its fallbacks.
    fn predict(&self, users: Vec<String>, items: Vec<String>) -> PyResult<Vec<f32>> {
        if users.len() != items.len() {
            return Err(pyo3::exceptions::PyValueError::new_err(format!(
                "{} users but {} items: give one item per user",
                users.len(),
                items.len()
            )));
        }
        let model = self.trained()?.model();
        let fitted = model.fitted();
        Ok(users
            .iter()
            .zip(&items)
            .map(|(u, i)| match (fitted.users.get(u), fitted.items.get(i)) {
                (Some(u), Some(i)) => model.predict(u, i).unwrap_or(f32::NAN),
                _ => f32::NAN,
            })
            .collect())
    }

    /// The item factors as `(dimension, row-major values)`, one row per item of `item_ids()`;
    /// `None` for models without embeddings.
    fn item_factors(&self) -> PyResult<Option<(usize, Vec<f32>)>> {
        Ok(self
            .trained()?
            .model()
            .item_embeddings()
            .map(|(d, v)| (d, v.to_vec())))
    }

    /// The user factors likewise, one row per user of `user_ids()`.
    fn user_factors(&self) -> PyResult<Option<(usize, Vec<f32>)>> {
        Ok(self
            .trained()?
            .model()
            .user_embeddings()
            .map(|(d, v)| (d, v.to_vec())))
    }

    /// The model's user ids, in factor-row order.
    fn user_ids(&self) -> PyResult<Vec<String>> {
        Ok(self.trained()?.model().fitted().users.externals().to_vec())
    }

    /// The model's item ids, in factor-row order.
    fn item_ids(&self) -> PyResult<Vec<String>> {
        Ok(self.trained()?.model().fitted().items.externals().to_vec())
    }

    /// The hyperparameters it was fitted with, as JSON text.
    fn params_json(&self) -> PyResult<String> {
        Ok(self.trained()?.model().params().to_string())
    }

    /// Writes the model into `path` in the format of `kindred train` and of the server's
    /// versions (`manifest.json`, `model.safetensors`, and for a model fitted here its training
    /// record).
    fn save(&self, py: Python<'_>, path: PathBuf) -> PyResult<()> {
        let trained = Arc::clone(self.trained()?);
        py.detach(move || match trained.as_ref() {
            Trained::Fitted(fitted) => save_version(fitted, &path),
            Trained::Loaded(model) => model.save(&path),
        })
        .map_err(to_py)
    }

    /// Loads a model directory written by `save`, `kindred train` or the server.
    #[staticmethod]
    fn load(py: Python<'_>, path: PathBuf) -> PyResult<Self> {
        let model = py.detach(|| load_model(&path)).map_err(to_py)?;
        Ok(Self {
            spec: model.name().to_owned(),
            trained: Some(Arc::new(Trained::Loaded(model))),
        })
    }

    /// The spec it was built from (a loaded model: its algorithm's name).
    #[getter]
    fn spec(&self) -> &str {
        &self.spec
    }

    /// The registry name of the fitted algorithm (`None` before `fit`).
    #[getter]
    fn algorithm(&self) -> Option<&'static str> {
        self.trained.as_ref().map(|t| t.model().name())
    }

    #[getter]
    fn is_fitted(&self) -> bool {
        self.trained.is_some()
    }

    fn __repr__(&self) -> String {
        let state = if self.trained.is_some() {
            "fitted"
        } else {
            "not fitted"
        };
        format!("Model({:?}, {state})", self.spec)
    }
}
