//! Model lifecycle: train a version on the store's data ([`training`]), measure it offline
//! (kindred-eval's holdout, re-exported here) and record its learning curve ([`curve`]), chart it
//! against the versions before it ([`offline`]), publish it and make any version live, and
//! delete versions no longer wanted ([`retention`]). [`Lifecycle`] is the service the API, the dashboard and the scheduler call;
//! the free functions of [`training`] and [`retention`] are the same work for the CLI, which has no server.

pub mod curve;
pub mod gate;
pub mod offline;
pub mod retention;
pub mod training;

pub use kindred_eval::holdout::{offline_evaluation, OfflineEval, OFFLINE_METRICS};

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use kindred_core::FitContext;
use kindred_data::preprocess::PipelineConfig;
use kindred_store::ModelRecord;

use crate::clock::unix_now;
use crate::error::{Error, Result};
use crate::monitor::alerts::{AlertRecord, AlertSink};
use crate::state::ServingState;
use crate::sync::lock;
use kindred_stats::monitoring::alerts::AlertKind;
use training::TrainSpec;

/// Holds the training flag for one run and clears it when dropped, however the run ends:
/// finished, failed, panicked, or its future dropped by a caller that stopped waiting.
struct TrainingRun<'a>(&'a AtomicBool);

impl Drop for TrainingRun<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

/// Trains, publishes and activates versions for a running server, one training run at a time.
pub struct Lifecycle {
    state: Arc<ServingState>,
    /// Where offline control-chart violations are raised.
    alerts: Arc<AlertSink>,
    training: AtomicBool,
    /// The newest registered version whose offline metrics were checked against their control
    /// charts (see [`Lifecycle::check_offline_charts`]).
    offline_checked: Mutex<Option<String>>,
    /// `[training] pipeline`, read when the server started.
    pipeline: Option<PipelineConfig>,
    /// The newest drift alert acted on, and when a drift retrain last started (Unix seconds).
    drift: Mutex<DriftTrigger>,
}

/// What [`Lifecycle::drift_retrain_due`] remembers between checks.
#[derive(Debug, Default)]
struct DriftTrigger {
    newest_alert: u64,
    last_retrain: Option<i64>,
}

impl Lifecycle {
    /// Reads `[training] pipeline` now, so a bad file stops the server at start rather than
    /// failing every training run later.
    pub fn new(state: Arc<ServingState>, alerts: Arc<AlertSink>) -> Result<Self> {
        let pipeline = state.config.training.load_pipeline()?;
        Ok(Self {
            state,
            alerts,
            training: AtomicBool::new(false),
            offline_checked: Mutex::new(None),
            pipeline,
            drift: Mutex::new(DriftTrigger::default()),
        })
    }

    /// The spec of a training run: what the caller names, the configured `[training]` otherwise.
    /// Refuses a spec that cannot train now rather than in a background job nobody watches.
    pub fn spec(
        &self,
        model: Option<String>,
        positive: Option<f32>,
        seed: Option<u64>,
    ) -> Result<TrainSpec> {
        let defaults = &self.state.config.training;
        let from_caller = model.is_some();
        let spec = TrainSpec {
            model: model.unwrap_or_else(|| defaults.model.clone()),
            positive: positive.or(defaults.positive),
            seed: seed.unwrap_or(defaults.seed),
            pipeline: self.pipeline.clone(),
        };
        kindred_eval::build_algorithm(&spec.model)?;
        if from_caller {
            self.check_encoder_folder(&spec.model)?;
        }
        if let Some(threshold) = spec.positive.filter(|p| !p.is_finite()) {
            return Err(Error::invalid(
                "invalid_input",
                format!("`positive`: {threshold} is not a finite number"),
            ));
        }
        Ok(spec)
    }

    /// A spec sent over the API may name a folder of this machine only as the sentence encoder
    /// the operator configured (`[encoder] dir`): any other `encoder=` would let a caller make
    /// the server open folders of its choosing.
    fn check_encoder_folder(&self, spec: &str) -> Result<()> {
        let Ok(parsed) = kindred_models::ModelSpec::parse(spec) else {
            return Ok(());
        };
        let Some(named) = parsed.params.get("encoder") else {
            return Ok(());
        };
        let configured = self.state.config.encoder.dir.as_deref();
        if configured.is_some_and(|dir| dir == std::path::Path::new(named.trim())) {
            return Ok(());
        }
        Err(Error::invalid(
            "invalid_input",
            match configured {
                Some(dir) => format!(
                    "`encoder={named}`: a model trained through the API may only name the \
                     server's [encoder] dir ({})",
                    dir.display()
                ),
                None => format!(
                    "`encoder={named}`: a model trained through the API may only name the \
                     server's [encoder] dir, and none is configured"
                ),
            },
        ))
    }

    /// The spec a registered version was trained with (model, threshold, seed and cleaning
    /// pipeline, as its registry record holds them), so a retrain is made exactly as it was.
    pub async fn spec_of(&self, version: &str) -> Result<TrainSpec> {
        kindred_store::check_id("model version", version)?;
        let record = self
            .state
            .store
            .get_model(version)
            .await?
            .ok_or_else(|| Error::not_found("model version", version))?;
        training::recorded_spec(&record).ok_or_else(|| {
            Error::conflict(
                "no_recorded_spec",
                format!(
                    "version `{version}` was not trained by Kindred's training path (registered \
                     from elsewhere), so there is no spec to retrain it with"
                ),
            )
        })
    }

    /// Trains a version with `spec` unless a training run is in progress; returns false when
    /// one is. `activate` makes it live and swaps it in.
    pub async fn train(
        &self,
        spec: &TrainSpec,
        activate: bool,
    ) -> Result<Option<kindred_store::ModelRecord>> {
        if self.training.swap(true, Ordering::SeqCst) {
            return Ok(None);
        }
        let run = TrainingRun(&self.training);
        let result = async {
            let dir = self.state.config.artifacts_dir();
            // Half the cores: requests keep the rest while a version trains.
            let threads = std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1));
            let ctx = FitContext {
                threads,
                ..FitContext::with_seed(spec.seed)
            };
            let eval = self.state.config.training.offline_eval();
            let gate = if activate { self.gate().await? } else { None };
            let gated = gate.is_some();
            let record = training::train_and_register_gated(
                &self.state.store,
                &dir,
                spec,
                ctx,
                &eval,
                gate,
            )
            .await?;
            let verdict = gated.then(|| gate::recorded_verdict(&record)).flatten();
            let record = match &verdict {
                Some(v) if !v.passed => {
                    tracing::warn!(version = %record.model.version, reason = %v.reason, "quality gate: kept inactive");
                    self.alerts.raise(vec![gate_alert(&record, v)], unix_now());
                    record
                }
                _ if activate => {
                    let record = self.state.store.activate_model(&record.model.version).await?;
                    self.state.rebuild().await?;
                    record
                }
                _ => record,
            };
            Ok::<_, Error>(record)
        }
        .await;
        drop(run);
        if let Ok(record) = &result {
            if let Err(e) = self.check_offline_charts().await {
                tracing::warn!(error = %e, "checking the offline control charts failed");
            }
            self.apply_retention(&record.model.version).await;
        }
        match &result {
            Ok(_) => self
                .state
                .counters
                .training_runs
                .fetch_add(1, Ordering::Relaxed),
            Err(_) => self
                .state
                .counters
                .training_failures
                .fetch_add(1, Ordering::Relaxed),
        };
        result.map(Some)
    }

    /// Checks the newest registered version's offline metrics against the control charts of
    /// the versions before it ([`offline::offline_alerts`]) and raises what it violates
    /// in the alert sink (log, `/v1/alerts`, webhooks, `/metrics`). Each newest version is
    /// checked once, whoever trained it: this server (API or schedule) or another process
    /// (`kindred train --store`, seen by the background loop). Answers the alerts raised.
    pub async fn check_offline_charts(&self) -> Result<Vec<AlertRecord>> {
        let records = self.state.store.list_models().await?;
        let Some(newest) = offline::newest_version(&records) else {
            return Ok(Vec::new());
        };
        {
            let mut checked = lock(&self.offline_checked);
            if checked.as_deref() == Some(newest.as_str()) {
                return Ok(Vec::new());
            }
            *checked = Some(newest);
        }
        let alerts = offline::offline_alerts(&records);
        if alerts.is_empty() {
            return Ok(Vec::new());
        }
        Ok(self.alerts.raise(alerts, unix_now()))
    }

    /// The gate a retrain to be made live passes through: `None` when `[training.gate]` is
    /// off, evaluation is off, or there is no live version yet (the first version has nothing
    /// to be compared with); also `None`, with a warning, when the live version cannot be a
    /// reference (no holdout or no value recorded), so that upgrading a server never blocks
    /// every retrain.
    async fn gate(&self) -> Result<Option<training::Gate>> {
        let training = &self.state.config.training;
        if !(training.gate.enabled && training.evaluate) {
            return Ok(None);
        }
        let Some(live) = self.state.store.live_model().await? else {
            return Ok(None);
        };
        match gate::Reference::of(&live, &training.gate.metric) {
            Ok(reference) => Ok(Some(training::Gate {
                config: training.gate.clone(),
                reference,
            })),
            Err(why) => {
                tracing::warn!(reason = %why, "quality gate: not applied to this retrain");
                Ok(None)
            }
        }
    }

    /// With `[training] retrain_on_drift`: the alert that should start a retrain now (a drift
    /// or feature-skew alert newer than the last one acted on), unless one started less than
    /// `drift_retrain_min_seconds` before `now`; an alert inside that time is logged and
    /// dropped, so a drifting stream cannot keep the trainer busy.
    pub fn drift_retrain_due(&self, now: i64) -> Option<AlertRecord> {
        let config = &self.state.config.training;
        if !config.retrain_on_drift {
            return None;
        }
        let mut trigger = lock(&self.drift);
        let newest = self
            .alerts
            .recent(64)
            .into_iter()
            .filter(|r| r.id > trigger.newest_alert)
            .filter(|r| matches!(r.alert.kind, AlertKind::Drift | AlertKind::FeatureSkew))
            .max_by_key(|r| r.id)?;
        trigger.newest_alert = newest.id;
        if trigger
            .last_retrain
            .is_some_and(|t| now - t < config.drift_retrain_min_seconds)
        {
            tracing::info!(subject = %newest.alert.subject, "drift retrain skipped: one ran within drift_retrain_min_seconds");
            return None;
        }
        trigger.last_retrain = Some(now);
        Some(newest)
    }

    /// Prunes the registry to `[retention] keep` versions (plus the live one and those running
    /// experiments serve) after a training run; 0 keeps every version. A failure is logged: the
    /// version just trained stands either way.
    async fn apply_retention(&self, trained: &str) {
        let keep = self.state.config.retention.keep;
        if keep == 0 {
            return;
        }
        match retention::prune(&self.state.store, keep, false, None, Some(trained)).await {
            Ok(report) => {
                for deleted in &report.deleted {
                    tracing::info!(version = %deleted.version, artifact = ?deleted.artifact,
                        "retention deleted a model version");
                }
                for (version, why) in &report.refused {
                    tracing::info!(%version, %why, "retention kept a model version");
                }
            }
            Err(e) => tracing::warn!(error = %e, "applying [retention] failed"),
        }
    }

    /// Deletes a registered version and then its artifact directory (see [`retention`]): not
    /// found, or a conflict (`version_live`, `version_in_experiment`) for a version that must stay.
    pub async fn delete_version(&self, version: &str) -> Result<retention::DeletedVersion> {
        retention::delete_version(&self.state.store, version, None).await
    }

    /// True while a training run is in progress.
    pub fn is_training(&self) -> bool {
        self.training.load(Ordering::SeqCst)
    }

    /// Trains in the background unless a run is in progress (a conflict); the outcome is logged.
    pub fn train_in_background(self: &Arc<Self>, spec: TrainSpec, activate: bool) -> Result<()> {
        if self.is_training() {
            return Err(training_in_progress());
        }
        let lifecycle = Arc::clone(self);
        tokio::spawn(async move {
            match lifecycle.train(&spec, activate).await {
                Ok(Some(record)) => {
                    tracing::info!(version = %record.model.version, "trained on request")
                }
                Ok(None) => tracing::info!("training request skipped: a run is in progress"),
                Err(e) => tracing::error!(error = %e, "training on request failed"),
            }
        });
        Ok(())
    }

    /// Trains now and answers the version; a conflict while another run is in progress. The run
    /// is its own task: if the caller goes away (a request timeout drops this future), it still
    /// finishes, registers its version and frees the training flag.
    pub async fn train_now(
        self: &Arc<Self>,
        spec: &TrainSpec,
        activate: bool,
    ) -> Result<ModelRecord> {
        if self.is_training() {
            return Err(training_in_progress());
        }
        let lifecycle = Arc::clone(self);
        let spec = spec.clone();
        tokio::spawn(async move { lifecycle.train(&spec, activate).await })
            .await
            .map_err(|e| Error::Task(format!("training: {e}")))??
            .ok_or_else(training_in_progress)
    }

    /// Makes a registered version live and swaps it in before answering, so the next request is
    /// served by it; requests in flight finish on the previous one.
    pub async fn activate(&self, version: &str) -> Result<ModelRecord> {
        kindred_store::check_id("model version", version)?;
        let store = &self.state.store;
        if store.get_model(version).await?.is_none() {
            return Err(Error::not_found("model version", version));
        }
        let record = store.activate_model(version).await?;
        self.state.rebuild().await?;
        Ok(record)
    }

    /// Makes the previously live version live again and swaps it in.
    pub async fn rollback(&self) -> Result<ModelRecord> {
        let record = self
            .state
            .store
            .rollback_model()
            .await
            .map_err(|e| match e {
                kindred_core::Error::InvalidInput(m) => Error::conflict("no_previous_version", m),
                other => other.into(),
            })?;
        self.state.rebuild().await?;
        Ok(record)
    }
}

/// The alert of a retrain the gate kept inactive: the metric, both values and the reason.
fn gate_alert(
    record: &ModelRecord,
    verdict: &gate::Verdict,
) -> kindred_stats::monitoring::alerts::Alert {
    kindred_stats::monitoring::alerts::Alert {
        kind: kindred_stats::monitoring::alerts::AlertKind::QualityGate,
        subject: verdict.metric.clone(),
        value: verdict.candidate.unwrap_or(f64::NAN),
        limit: verdict.live * (1.0 - verdict.tolerance),
        window: None,
        message: format!(
            "version {} not activated: {}",
            record.model.version, verdict.reason
        ),
    }
}

fn training_in_progress() -> Error {
    Error::conflict(
        "training_in_progress",
        "a model is being trained; try again when it is done",
    )
}
