//! Training a model version: the one code path behind `kindred train` (on a file or a store),
//! `POST /v1/models` and the server's scheduler. [`prepare`] turns a dataset into the training
//! set (the cleaning pipeline, then the positive threshold, then the features), [`fit_version`]
//! fits it and records how it was made, and the store functions below save and register the
//! result. So a version trained in the server is the model `kindred train --data ... --pipeline`
//! makes from the same rows, with the same config and seed.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use kindred_core::rng::{mix64, stable_hash};
use kindred_core::{Dataset, FitContext, Interactions, Result, TrainSet};
use kindred_data::preprocess::{self, PipelineConfig, PipelineReport};
use kindred_eval::build_algorithm;
use kindred_models::persist::Manifest;
use kindred_models::Model;
use kindred_store::{ModelRecord, NewModel, Store};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::curve::CurveRecorder;
use super::gate::{self, GateConfig, Reference};
use super::OfflineEval;
use crate::clock::unix_now;
use crate::monitor::skew::FeatureProfile;
use kindred_eval::holdout::{metrics_on_holdout, offline_evaluation, Holdout};

/// What to train.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainSpec {
    /// Model spec or preset (`als`, `als:factors=64`, ...).
    pub model: String,
    /// Keep only ratings >= this, as implicit positives (applied after the pipeline).
    #[serde(default)]
    pub positive: Option<f32>,
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// The cleaning pipeline applied to the data first (duplicates, bots, k-core, weights,
    /// recency, normalisation); none trains on the data as it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline: Option<PipelineConfig>,
}

impl TrainSpec {
    /// `model` with the default seed, no threshold and no pipeline.
    pub fn new(model: impl Into<String>) -> Self {
        Self {
            model: model.into(),
            positive: None,
            seed: default_seed(),
            pipeline: None,
        }
    }
}

fn default_seed() -> u64 {
    42
}

/// Counts and a fingerprint of the data a version was trained from, before cleaning: enough
/// to tell whether a retrain sees the same rows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataSnapshot {
    pub events: usize,
    pub users: usize,
    pub items: usize,
    /// Hex digest of every row (user and item ids, event, rating, weight, timestamp) in order.
    pub fingerprint: String,
}

impl DataSnapshot {
    pub fn of(data: &Interactions) -> Self {
        Self {
            events: data.len(),
            users: data.n_users(),
            items: data.n_items(),
            fingerprint: format!("{:016x}", fingerprint(data)),
        }
    }
}

/// [`Interactions::fingerprint`] covers the rows by dense index; the external ids and event
/// types are folded in here so two logs that differ only in names differ too.
fn fingerprint(data: &Interactions) -> u64 {
    let mut h = data.fingerprint();
    let mut eat = |x: u64| h = mix64(h ^ x).wrapping_add(0x9E37_79B9_7F4A_7C15);
    for id in data.user_ids().externals() {
        eat(stable_hash(id.as_bytes()));
    }
    eat(u64::MAX);
    for id in data.item_ids().externals() {
        eat(stable_hash(id.as_bytes()));
    }
    for &event in data.events() {
        eat(stable_hash(data.event_name(event).as_bytes()));
    }
    h
}

/// The training set of a spec and what went into it.
pub struct Prepared {
    pub train: TrainSet,
    /// The data before cleaning.
    pub source: DataSnapshot,
    /// What each cleaning step removed or changed; `None` without a pipeline.
    pub cleaning: Option<PipelineReport>,
}

/// The training set a spec trains on: `dataset`'s interactions cleaned by the spec's pipeline,
/// then kept at or above its positive threshold, with the dataset's features.
pub fn prepare(dataset: &Dataset, spec: &TrainSpec) -> Result<Prepared> {
    let source = DataSnapshot::of(&dataset.interactions);
    let (cleaned, cleaning) = match spec.pipeline.as_ref().filter(|p| !p.is_empty()) {
        Some(pipeline) => {
            let (cleaned, report) = preprocess::run(pipeline, &dataset.interactions)?;
            (cleaned, Some(report))
        }
        None => (dataset.interactions.clone(), None),
    };
    let interactions = match spec.positive {
        Some(t) => cleaned.positives(t),
        None => cleaned,
    };
    let train = TrainSet::new(interactions)
        .with_features(dataset.item_features.clone(), dataset.user_features.clone());
    Ok(Prepared {
        train,
        source,
        cleaning,
    })
}

/// A fitted version with its record.
pub struct FittedVersion {
    pub model: Box<dyn Model>,
    /// The registry's `metrics` JSON: counts, fit time, offline metrics, learning curve,
    /// selection trace, the data snapshot and the cleaning report.
    pub metrics: Value,
    /// How the version was made, for its manifest ([`Manifest::training`]).
    pub training: Value,
    /// The training set it was fitted on.
    pub train: TrainSet,
    /// What each cleaning step removed or changed; `None` without a pipeline.
    pub cleaning: Option<PipelineReport>,
    /// The distributions of the features it was trained with ([`FeatureProfile`]).
    pub profile: FeatureProfile,
    /// The events the offline evaluation held out (saved with the version, so the next
    /// retrain can be judged on them); `None` when evaluation was off or failed.
    pub holdout: Option<Holdout>,
}

/// A retrain to be judged against the live version ([`gate`]).
#[derive(Debug, Clone)]
pub struct Gate {
    pub config: GateConfig,
    pub reference: Reference,
}

/// Fits `spec` on `dataset` (blocking): [`prepare`], the offline metrics of `eval` (a sibling
/// fit on a holdout; skipped when disabled), then the served fit on every prepared row.
/// `source` names the data in the record (`store`, or the file spec).
pub fn fit_version(
    dataset: &Dataset,
    source: &str,
    spec: &TrainSpec,
    ctx: FitContext,
    eval: &OfflineEval,
) -> Result<FittedVersion> {
    fit_gated_version(dataset, source, spec, ctx, eval, None)
}

/// [`fit_version`], and with `gate` the candidate's metrics on the live version's holdout and
/// the gate's verdict (`metrics.gate_measure`, `metrics.gate`): one more fit, on the prepared
/// rows minus those events.
pub fn fit_gated_version(
    dataset: &Dataset,
    source: &str,
    spec: &TrainSpec,
    ctx: FitContext,
    eval: &OfflineEval,
    gate: Option<&Gate>,
) -> Result<FittedVersion> {
    let algorithm = build_algorithm(&spec.model)?;
    let prepared = prepare(dataset, spec)?;
    let train = prepared.train;
    if train.data.is_empty() {
        return Err(kindred_core::Error::InvalidInput(
            if prepared.source.events == 0 {
                format!("{source} holds no feedback to train on")
            } else {
                format!(
                    "no feedback of {source} is left to train on after cleaning and the positive \
                 threshold ({} events before)",
                    prepared.source.events
                )
            },
        ));
    }
    // Measured before the served fit so a failure to evaluate never costs the version.
    let (offline, holdout) = if eval.enabled {
        match offline_evaluation(algorithm.as_ref(), &train, eval, &ctx) {
            Ok((metrics, holdout)) => (Some(metrics), Some(holdout)),
            Err(kindred_core::Error::Cancelled) => return Err(kindred_core::Error::Cancelled),
            Err(e) => (Some(json!({ "error": e.to_string() })), None),
        }
    } else {
        (None, None)
    };
    let gated = match gate {
        Some(gate) => {
            let measured =
                match metrics_on_holdout(algorithm.as_ref(), &train, &gate.reference.holdout, &ctx)
                {
                    Ok(m) => Ok(m),
                    Err(kindred_core::Error::Cancelled) => {
                        return Err(kindred_core::Error::Cancelled)
                    }
                    Err(e) => Err(e.to_string()),
                };
            let verdict = gate::judge(
                &gate.config,
                &gate.reference,
                measured.as_ref().map_err(Clone::clone),
            );
            Some((measured.ok(), verdict))
        }
        None => None,
    };
    let recorder = Arc::new(CurveRecorder::new(Arc::clone(&ctx.progress)));
    let fit_ctx = FitContext {
        progress: recorder.clone(),
        ..ctx
    };
    let profile = FeatureProfile::of(&train);
    let started = Instant::now();
    let model = algorithm.fit(&train, &fit_ctx)?;
    let fit_seconds = started.elapsed().as_secs_f64();
    let mut metrics = json!({
        "fit_seconds": fit_seconds,
        "interactions": train.data.len(),
        "users": train.data.n_users(),
        "items": train.data.n_items(),
        "store_events": prepared.source.events,
        "data": prepared.source,
        "code_version": code_version(),
    });
    if let Some(obj) = metrics.as_object_mut() {
        if let Some(report) = &prepared.cleaning {
            obj.insert("cleaning".into(), json!(report));
        }
        if let Some(offline) = offline {
            obj.insert("offline".into(), offline);
        }
        if let Some((measured, verdict)) = gated {
            if let Some(measured) = measured {
                obj.insert("gate_measure".into(), measured);
            }
            obj.insert("gate".into(), json!(verdict));
        }
        let curve = recorder.points();
        if !curve.is_empty() {
            obj.insert("curve".into(), json!(curve));
        }
        if let Some(selection) = model.selection() {
            obj.insert("selection".into(), selection.clone());
        }
    }
    let training = json!({
        "spec": spec,
        "source": { "name": source, "data": prepared.source },
        "cleaning": prepared.cleaning,
        "train_interactions": train.data.len(),
        "offline_eval": eval,
        "code_version": code_version(),
    });
    Ok(FittedVersion {
        model,
        metrics,
        training,
        train,
        cleaning: prepared.cleaning,
        holdout,
        profile,
    })
}

/// The code a version is trained by: the crate version and the git commit of the build
/// (`0.1.0+3f2a...`, or `+unknown` for a build outside a git checkout).
pub fn code_version() -> String {
    format!(
        "{}+{}",
        env!("CARGO_PKG_VERSION"),
        env!("KINDRED_GIT_COMMIT")
    )
}

/// Saves a fitted version's model in `dir` with how it was made in its manifest, and the
/// events its offline evaluation held out ([`gate::HOLDOUT_FILE`]).
pub fn save_version(fitted: &FittedVersion, dir: &Path) -> Result<()> {
    fitted.model.save(dir)?;
    Manifest::record_training(dir, fitted.training.clone())?;
    if let Some(holdout) = &fitted.holdout {
        gate::save_holdout(dir, holdout)?;
    }
    if !fitted.profile.columns.is_empty() {
        fitted.profile.save(dir)?;
    }
    Ok(())
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
    train_and_register_gated(store, artifacts, spec, ctx, eval, None).await
}

/// [`train_and_register_with`], judged by `gate` when given (the verdict is in the record's
/// `metrics.gate`; the version is registered either way, not live).
pub async fn train_and_register_gated(
    store: &Store,
    artifacts: &Path,
    spec: &TrainSpec,
    ctx: FitContext,
    eval: &OfflineEval,
    gate: Option<Gate>,
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
        let fitted = fit_gated_version(
            &dataset,
            "the store",
            &spec_owned,
            ctx,
            &eval,
            gate.as_ref(),
        )?;
        save_version(&fitted, &dir_for_job)?;
        Ok((fitted.model.name(), fitted.model.params(), fitted.metrics))
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
        positive,
        ..TrainSpec::new(algorithm)
    };
    let mut metrics = metrics;
    let counts = tokio::task::spawn_blocking(move || -> Result<_> {
        let store_events = dataset.interactions.len();
        let train = prepare(&dataset, &spec)?.train;
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

/// A loaded artifact and its feature profile.
pub type LoadedVersion = (Arc<dyn Model>, Option<Arc<FeatureProfile>>);

/// Loads a registered version's artifact and its feature profile (blocking). A profile that
/// cannot be read is logged and left out: the skew check is not worth refusing a version for.
pub fn load_version_with_profile(record: &ModelRecord) -> Result<LoadedVersion> {
    let model = load_version(record)?;
    let profile = match FeatureProfile::load(Path::new(&record.model.artifact)) {
        Ok(profile) => profile.filter(|p| !p.columns.is_empty()).map(Arc::new),
        Err(e) => {
            tracing::warn!(version = %record.model.version, error = %e, "feature profile unreadable; no skew check for this version");
            None
        }
    };
    Ok((model, profile))
}

/// Loads a registered version's artifact (blocking).
pub fn load_version(record: &ModelRecord) -> Result<Arc<dyn kindred_models::Model>> {
    Ok(Arc::from(kindred_models::load_model(Path::new(
        &record.model.artifact,
    ))?))
}

/// The spec a version was trained with, from its registry record (`params.spec`); `None` for
/// versions registered from elsewhere (`register_external`), whose spec names no model spec.
pub fn recorded_spec(record: &ModelRecord) -> Option<TrainSpec> {
    let spec: TrainSpec = serde_json::from_value(record.model.params.get("spec")?.clone()).ok()?;
    build_algorithm(&spec.model).is_ok().then_some(spec)
}

/// Events in the log, for the scheduler's "anything new since the live version" check.
pub fn trained_events(record: &ModelRecord) -> Option<u64> {
    record.model.metrics.get("store_events")?.as_u64()
}
