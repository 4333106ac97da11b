//! Training a model version from the store and publishing it to the registry: the one code path
//! behind `kindred train --publish`, `POST /v1/models` and the server's scheduler, so every
//! version is trained with the same preprocessing from the same feature store.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use kindred_core::{Dataset, FitContext, Result, TrainSet};
use kindred_eval::build_algorithm;
use kindred_store::{ModelRecord, NewModel, Store};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::curve::CurveRecorder;
use super::{offline_metrics, OfflineEval};
use crate::clock::unix_now;

/// What to train.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainSpec {
    /// Model spec or preset (`als`, `als:factors=64`, ...).
    pub model: String,
    /// Keep only ratings >= this, as implicit positives.
    #[serde(default)]
    pub positive: Option<f32>,
    #[serde(default = "default_seed")]
    pub seed: u64,
}

fn default_seed() -> u64 {
    42
}

/// A version name unique per process and second: `<algorithm>-<unix seconds>-<counter>`.
fn version_name(algorithm: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(
        "{algorithm}-{}-{:04x}{n}",
        unix_now(),
        (nanos ^ std::process::id()) & 0xffff
    )
}

/// The training set a spec trains on, from a dataset the store exported.
pub fn train_set(dataset: &Dataset, spec: &TrainSpec) -> TrainSet {
    let interactions = match spec.positive {
        Some(t) => dataset.interactions.positives(t),
        None => dataset.interactions.clone(),
    };
    TrainSet::new(interactions)
        .with_features(dataset.item_features.clone(), dataset.user_features.clone())
}

/// Trains `spec` on the store's current data (blocking work runs on a blocking thread), saves
/// the artifact under `artifacts/<version>` and registers the version (not live), measured with
/// the default [`OfflineEval`].
pub async fn train_and_register(
    store: &Store,
    artifacts: &Path,
    spec: &TrainSpec,
    ctx: FitContext,
) -> Result<ModelRecord> {
    train_and_register_with(store, artifacts, spec, ctx, &OfflineEval::default()).await
}

/// [`train_and_register`] with explicit offline-evaluation settings. The version's `metrics`
/// JSON holds the fit's counts, `offline` (ranking metrics on a holdout, see
/// [`kindred_eval::holdout`]; absent when `eval.enabled` is false, `{"error": ..}` when the
/// data cannot be evaluated) and `curve` (per-epoch loss of iterative models; absent otherwise).
pub async fn train_and_register_with(
    store: &Store,
    artifacts: &Path,
    spec: &TrainSpec,
    ctx: FitContext,
    eval: &OfflineEval,
) -> Result<ModelRecord> {
    let algorithm = build_algorithm(&spec.model)?;
    let artifacts = absolute_artifacts(artifacts)?;
    let dataset = store.load_dataset("store").await?;
    let version = version_name(algorithm.name());
    let dir: PathBuf = artifacts.join(&version);
    let spec_owned = spec.clone();
    let dir_for_job = dir.clone();
    let eval = eval.clone();
    let (algorithm_name, params, metrics) = tokio::task::spawn_blocking(move || -> Result<_> {
        let store_events = dataset.interactions.len();
        let train = train_set(&dataset, &spec_owned);
        if train.data.is_empty() {
            return Err(kindred_core::Error::InvalidInput(
                "the store holds no feedback to train on".into(),
            ));
        }
        // Measured before the served fit so a failure to evaluate never costs the version.
        let offline = if eval.enabled {
            Some(
                match offline_metrics(algorithm.as_ref(), &train, &eval, &ctx) {
                    Ok(v) => v,
                    Err(kindred_core::Error::Cancelled) => {
                        return Err(kindred_core::Error::Cancelled)
                    }
                    Err(e) => json!({ "error": e.to_string() }),
                },
            )
        } else {
            None
        };
        let recorder = Arc::new(CurveRecorder::new(Arc::clone(&ctx.progress)));
        let fit_ctx = FitContext {
            progress: recorder.clone(),
            ..ctx
        };
        let started = Instant::now();
        let model = algorithm.fit(&train, &fit_ctx)?;
        let fit_seconds = started.elapsed().as_secs_f64();
        model.save(&dir_for_job)?;
        let mut metrics = json!({
            "fit_seconds": fit_seconds,
            "interactions": train.data.len(),
            "users": train.data.n_users(),
            "items": train.data.n_items(),
            "store_events": store_events,
        });
        if let Some(obj) = metrics.as_object_mut() {
            if let Some(offline) = offline {
                obj.insert("offline".into(), offline);
            }
            let curve = recorder.points();
            if !curve.is_empty() {
                obj.insert("curve".into(), json!(curve));
            }
            if let Some(selection) = model.selection() {
                obj.insert("selection".into(), selection.clone());
            }
        }
        Ok((model.name(), model.params(), metrics))
    })
    .await
    .map_err(|e| kindred_core::Error::InvalidInput(format!("training job failed: {e}")))??;
    register(
        store,
        NewModel {
            version: version.clone(),
            // The fitted family (what `auto` chose, for an `auto` spec; the spec says `auto`).
            algorithm: algorithm_name.to_owned(),
            params: json!({ "spec": spec, "model": params }),
            metrics,
            artifact: dir.display().to_string(),
            created_at: unix_now(),
        },
    )
    .await
}

/// Registers a saved version, not live.
async fn register(store: &Store, record: NewModel) -> Result<ModelRecord> {
    store.register_model(&record).await?;
    Ok(ModelRecord {
        model: record,
        live: false,
    })
}

/// `artifacts` made absolute: the registry records where the artifact is, and a relative path
/// would break for a server started from another directory.
fn absolute_artifacts(artifacts: &Path) -> Result<PathBuf> {
    std::path::absolute(artifacts).map_err(|error| kindred_core::Error::io(artifacts, error))
}

/// Registers a model trained elsewhere (a distributed job, see `kindred cluster publish`):
/// `build` turns the store's current data (with `positive` applied as training would) into the
/// model, which is saved under `artifacts/<version>` and registered with `params` and
/// `metrics` (the store's counts are added), not live.
pub async fn register_external(
    store: &Store,
    artifacts: &Path,
    algorithm: &str,
    positive: Option<f32>,
    params: serde_json::Value,
    metrics: serde_json::Value,
    build: impl FnOnce(&TrainSet) -> Result<Box<dyn kindred_models::Model>> + Send + 'static,
) -> Result<ModelRecord> {
    let artifacts = absolute_artifacts(artifacts)?;
    let dataset = store.load_dataset("store").await?;
    let version = version_name(algorithm);
    let dir: PathBuf = artifacts.join(&version);
    let dir_for_job = dir.clone();
    let spec = TrainSpec {
        model: algorithm.to_owned(),
        positive,
        seed: default_seed(),
    };
    let mut metrics = metrics;
    let counts = tokio::task::spawn_blocking(move || -> Result<_> {
        let store_events = dataset.interactions.len();
        let train = train_set(&dataset, &spec);
        let model = build(&train)?;
        model.save(&dir_for_job)?;
        Ok(json!({
            "interactions": train.data.len(),
            "users": train.data.n_users(),
            "items": train.data.n_items(),
            "store_events": store_events,
        }))
    })
    .await
    .map_err(|e| kindred_core::Error::InvalidInput(format!("registering job failed: {e}")))??;
    if let (Some(obj), Some(counts)) = (metrics.as_object_mut(), counts.as_object()) {
        for (k, v) in counts {
            obj.entry(k.clone()).or_insert(v.clone());
        }
    }
    register(
        store,
        NewModel {
            version,
            algorithm: algorithm.to_owned(),
            params,
            metrics,
            artifact: dir.display().to_string(),
            created_at: unix_now(),
        },
    )
    .await
}

/// Trains, registers and makes the version live.
pub async fn train_and_publish(
    store: &Store,
    artifacts: &Path,
    spec: &TrainSpec,
    ctx: FitContext,
) -> Result<ModelRecord> {
    train_and_publish_with(store, artifacts, spec, ctx, &OfflineEval::default()).await
}

/// [`train_and_publish`] with explicit offline-evaluation settings.
pub async fn train_and_publish_with(
    store: &Store,
    artifacts: &Path,
    spec: &TrainSpec,
    ctx: FitContext,
    eval: &OfflineEval,
) -> Result<ModelRecord> {
    let record = train_and_register_with(store, artifacts, spec, ctx, eval).await?;
    store.activate_model(&record.model.version).await
}

/// Loads a registered version's artifact (blocking).
pub fn load_version(record: &ModelRecord) -> Result<Arc<dyn kindred_models::Model>> {
    Ok(Arc::from(kindred_models::load_model(Path::new(
        &record.model.artifact,
    ))?))
}

/// Events in the log, for the scheduler's "anything new since the live version" check.
pub fn trained_events(record: &ModelRecord) -> Option<u64> {
    record.model.metrics.get("store_events")?.as_u64()
}
