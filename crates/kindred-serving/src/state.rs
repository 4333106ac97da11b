//! The server's shared state: the store, the live [`Snapshot`] behind an atomic pointer, the
//! real-time feedback overlay, the list cache and the metrics; and the background work that keeps
//! the snapshot current (a new live version, catalog changes, scheduled retraining).
//!
//! Hot swap: a new snapshot is built completely on a blocking thread and then published with one
//! atomic pointer store. A request loads the pointer once and uses that snapshot to the end, so
//! a swap never fails or mixes two versions in one answer.
//!
//! Real time: feedback posted to the server is stored first (durable), then appended to the
//! overlay of its user with a generation number, and that user's cached lists are dropped. A
//! request folds the overlay events newer than its snapshot into the user's history, so the next
//! list reflects the event without waiting for a retrain.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use kindred_core::{Dataset, FitContext, InteractionsBuilder};
use kindred_rank::RankConfig;
use kindred_store::{Feedback, Store};
use serde::Serialize;

use crate::auth::ApiKeys;
use crate::cache::ListCache;
use crate::config::ServerConfig;
use crate::error::{Error, Result};
use crate::experiments::{Assignment, Experiments, ExposureLog};
use crate::metrics::Metrics;
use crate::snapshot::{LiveModel, Snapshot, SnapshotInput, DEFAULT_RANK};
use crate::training::{self, TrainSpec};

/// Most real-time events kept per user between snapshots.
const OVERLAY_PER_USER: usize = 200;

/// One item of a served list, as the API returns it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServedItem {
    pub item: String,
    /// The model's score (None for items that fallbacks placed).
    pub score: Option<f32>,
    /// `model:als`, `fold-in:als`, `popular`, `relaxed:date_window:popular`, ...
    pub source: String,
}

/// Shared by every request handler and background task.
pub struct AppState {
    pub config: ServerConfig,
    pub store: Store,
    pub keys: ApiKeys,
    pub metrics: Metrics,
    pub cache: ListCache<Vec<ServedItem>>,
    /// Online metrics, drift/quality passes and alerts.
    pub monitor: crate::monitor::Monitor,
    snapshot: ArcSwap<Snapshot>,
    snapshot_counter: AtomicU64,
    /// user -> (generation, item) of feedback newer than some snapshot.
    overlay: Mutex<HashMap<String, Vec<(u64, String)>>>,
    generation: AtomicU64,
    /// Set when stored users, items or feedback changed since the data was last read: a rebuild
    /// for a new model version reuses the current snapshot's data otherwise.
    data_changed: AtomicBool,
    /// (users, items, feedback) counts in the store when the current data was read: catches
    /// writes by other processes.
    data_stamp: Mutex<Option<(u64, u64, u64)>>,
    rank_configs: BTreeMap<String, RankConfig>,
    rebuild_lock: tokio::sync::Mutex<()>,
    catalog_changed: tokio::sync::Notify,
    training: AtomicBool,
    request_counter: AtomicU64,
    instance: String,
    /// Running experiments and who is in which variant.
    pub experiments: Experiments,
    /// Writes exposures and their impressions in the background.
    pub exposure_log: ExposureLog,
    /// The newest registered version whose offline metrics were checked against their control
    /// charts (see [`AppState::check_offline_charts`]).
    offline_checked: Mutex<Option<String>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Loads the default and named rank configs named in the server config.
fn rank_configs(config: &ServerConfig) -> Result<BTreeMap<String, RankConfig>> {
    let mut out = BTreeMap::new();
    let default = match &config.rank {
        Some(path) => RankConfig::from_file(path)?,
        None => RankConfig::default(),
    };
    out.insert(DEFAULT_RANK.to_owned(), default);
    for (name, path) in &config.rank_named {
        if name == DEFAULT_RANK {
            return Err(Error::Config {
                origin: "rank_named".into(),
                message: format!("`{DEFAULT_RANK}` is the name of `rank`; pick another name"),
            });
        }
        out.insert(name.clone(), RankConfig::from_file(path)?);
    }
    // The learned second stage is trained per evaluation fold; serving it needs the factorisation
    // machine saved with the model version, which does not exist yet. Refuse rather than serve
    // lists that silently differ from what `kindred eval --rank` measured.
    if let Some((name, _)) = out.iter().find(|(_, c)| c.second_stage.is_some()) {
        return Err(Error::Config {
            origin: format!("rank config `{name}`"),
            message: "[second_stage] is not served yet (it is measured offline by `kindred eval \
                      --rank`); remove it from configs given to the server"
                .into(),
        });
    }
    Ok(out)
}

impl AppState {
    /// Opens the state and builds the first snapshot from the store (and its live version).
    pub async fn new(config: ServerConfig, store: Store) -> Result<Arc<Self>> {
        let rank_configs = rank_configs(&config)?;
        // A placeholder until the first rebuild below; plain ranking, because the configured
        // rank configs may name feature columns an empty catalog does not have.
        let empty = Snapshot::build(SnapshotInput {
            dataset: Arc::new(Dataset::new("empty", InteractionsBuilder::new().build())),
            live: None,
            rank_configs: [(DEFAULT_RANK.to_owned(), RankConfig::default())].into(),
            batch_size: None,
            generation: 0,
        })?;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let state = Arc::new(Self {
            keys: ApiKeys::new(config.keys.clone()),
            cache: ListCache::new(
                Duration::from_secs(config.cache.ttl_seconds),
                config.cache.capacity,
            ),
            monitor: crate::monitor::Monitor::new(&config.monitoring),
            config,
            metrics: Metrics::default(),
            snapshot: ArcSwap::from_pointee(empty),
            snapshot_counter: AtomicU64::new(0),
            overlay: Mutex::new(HashMap::new()),
            generation: AtomicU64::new(0),
            data_changed: AtomicBool::new(true),
            data_stamp: Mutex::new(None),
            rank_configs,
            rebuild_lock: tokio::sync::Mutex::new(()),
            catalog_changed: tokio::sync::Notify::new(),
            training: AtomicBool::new(false),
            request_counter: AtomicU64::new(0),
            experiments: Experiments::default(),
            exposure_log: ExposureLog::start(store.clone()),
            offline_checked: Mutex::new(None),
            instance: format!(
                "{:08x}",
                (nanos as u64 ^ u64::from(std::process::id())) as u32
            ),
            store,
        });
        state.experiments.reload(&state.store).await?;
        state.rebuild().await?;
        Ok(state)
    }

    /// The snapshot requests use now.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.load_full()
    }

    /// A fresh id for a served list (`<instance>-<counter>`), unique across restarts in practice.
    pub fn request_id(&self) -> String {
        let n = self.request_counter.fetch_add(1, Ordering::Relaxed);
        format!("{}-{n:x}", self.instance)
    }

    /// Rebuilds the snapshot from the store's current data and live version, and swaps it in.
    /// One rebuild runs at a time; a model already loaded is reused.
    pub async fn rebuild(&self) -> Result<()> {
        let _guard = self.rebuild_lock.lock().await;
        let started = std::time::Instant::now();
        let generation = self.generation.load(Ordering::SeqCst);
        let current = self.snapshot();
        let live = match self.store.live_model().await? {
            Some(record) => {
                let reuse = current
                    .live
                    .as_ref()
                    .filter(|l| l.version == record.model.version)
                    .cloned();
                match reuse {
                    Some(live) => Some(live),
                    None => {
                        let job_record = record.clone();
                        let model = tokio::task::spawn_blocking(move || {
                            training::load_version(&job_record)
                        })
                        .await
                        .map_err(|e| Error::Task(e.to_string()))??;
                        Some(LiveModel {
                            version: record.model.version.clone(),
                            algorithm: record.model.algorithm.clone(),
                            model,
                        })
                    }
                }
            }
            None => None,
        };
        // The other versions running experiments serve, reused when already loaded.
        let mut variant_models = Vec::new();
        for version in self.experiments.model_versions() {
            if live.as_ref().is_some_and(|l| l.version == version) {
                continue;
            }
            let loaded = current
                .variants
                .get(&version)
                .and_then(|s| s.live.clone())
                .or_else(|| current.live.clone().filter(|l| l.version == version));
            let model = match loaded {
                Some(model) => model,
                None => {
                    let Some(record) = self.store.get_model(&version).await? else {
                        tracing::warn!(%version, "an experiment names a version that is not registered");
                        continue;
                    };
                    let job_record = record.clone();
                    let model =
                        tokio::task::spawn_blocking(move || training::load_version(&job_record))
                            .await
                            .map_err(|e| Error::Task(e.to_string()))??;
                    LiveModel {
                        version: record.model.version.clone(),
                        algorithm: record.model.algorithm.clone(),
                        model,
                    }
                }
            };
            variant_models.push(model);
        }
        // Reading ML-1M takes seconds; a rebuild that only swaps the model reuses the data when
        // nothing was written here (flag, cleared before reading so a write during the read
        // marks the next rebuild dirty) or elsewhere (row counts; an update in place by another
        // process waits for the next refresh).
        let counts = self.store.counts().await?;
        let stamp = (counts.users, counts.items, counts.feedback);
        let changed_here = self.data_changed.swap(false, Ordering::SeqCst);
        let changed_elsewhere = *lock(&self.data_stamp) != Some(stamp);
        let (dataset, generation) = if changed_here || changed_elsewhere {
            match self.store.load_dataset("store").await {
                Ok(data) => {
                    *lock(&self.data_stamp) = Some(stamp);
                    (Arc::new(data), generation)
                }
                Err(e) => {
                    self.data_changed.store(true, Ordering::SeqCst);
                    return Err(e.into());
                }
            }
        } else {
            (Arc::clone(&current.data), current.generation)
        };
        let input = SnapshotInput {
            dataset,
            live,
            rank_configs: self.rank_configs.clone(),
            batch_size: (self.config.mode == crate::config::ServeMode::Batch)
                .then_some(self.config.batch_size),
            generation,
        };
        let mut snapshot = tokio::task::spawn_blocking(move || {
            let variant_inputs: Vec<SnapshotInput> = variant_models
                .into_iter()
                .map(|model| SnapshotInput {
                    dataset: Arc::clone(&input.dataset),
                    live: Some(model),
                    rank_configs: input.rank_configs.clone(),
                    // Experiment arms are scored per request, never precomputed.
                    batch_size: None,
                    generation: input.generation,
                })
                .collect();
            let mut snapshot = Snapshot::build(input)?;
            for variant in variant_inputs {
                let built = Snapshot::build(variant)?;
                if let Some(version) = built.version().map(str::to_owned) {
                    snapshot.variants.insert(version, Arc::new(built));
                }
            }
            Ok::<_, kindred_core::Error>(snapshot)
        })
        .await
        .map_err(|e| Error::Task(e.to_string()))??;
        snapshot.id = self.snapshot_counter.fetch_add(1, Ordering::SeqCst) + 1;
        let version = snapshot.version().map(str::to_owned);
        self.snapshot.store(Arc::new(snapshot));
        self.cache.clear();
        lock(&self.overlay).retain(|_, events| {
            events.retain(|(g, _)| *g > generation);
            !events.is_empty()
        });
        self.metrics.snapshot_swaps.fetch_add(1, Ordering::Relaxed);
        tracing::info!(
            version = ?version,
            generation,
            millis = started.elapsed().as_millis() as u64,
            "snapshot swapped in"
        );
        Ok(())
    }

    /// Re-reads the experiments; when the running set changed, rebuilds the snapshot so it
    /// holds the model versions they serve, and drops cached lists (assignments changed).
    pub async fn reload_experiments(&self) -> Result<()> {
        if self.experiments.reload(&self.store).await? {
            self.rebuild().await?;
        }
        Ok(())
    }

    /// The experiment variant `user` is in, if any.
    pub fn assign(&self, user: &str) -> Option<Assignment> {
        self.experiments.assign(user)
    }

    /// Waits until queued exposures are stored.
    pub async fn flush_exposures(&self) {
        self.exposure_log.flush().await;
    }

    /// Notes stored feedback for real-time use: the users' overlays grow and their cached lists
    /// are dropped.
    pub fn record_feedback(&self, events: &[Feedback]) {
        self.data_changed.store(true, Ordering::SeqCst);
        let generation = self.generation.fetch_add(1, Ordering::SeqCst) + 1;
        {
            let mut overlay = lock(&self.overlay);
            for e in events {
                let list = overlay.entry(e.user.clone()).or_default();
                list.push((generation, e.item.clone()));
                if list.len() > OVERLAY_PER_USER {
                    list.drain(..list.len() - OVERLAY_PER_USER);
                }
            }
        }
        let mut users: Vec<&str> = events.iter().map(|e| e.user.as_str()).collect();
        users.sort_unstable();
        users.dedup();
        for user in users {
            self.cache.invalidate_user(user);
        }
    }

    /// Items of `user`'s real-time feedback that `snapshot` does not include, oldest first.
    pub fn overlay_items(&self, user: &str, snapshot: &Snapshot) -> Vec<u32> {
        let overlay = lock(&self.overlay);
        let Some(events) = overlay.get(user) else {
            return Vec::new();
        };
        events
            .iter()
            .filter(|(g, _)| *g > snapshot.generation)
            .filter_map(|(_, item)| snapshot.items.get(item))
            .collect()
    }

    /// Forgets a deleted user's real-time state.
    pub fn forget_user(&self, user: &str) {
        lock(&self.overlay).remove(user);
        self.cache.invalidate_user(user);
    }

    /// Asks for a catalog rebuild soon (items changed); several calls coalesce.
    pub fn catalog_changed(&self) {
        self.data_changed.store(true, Ordering::SeqCst);
        self.catalog_changed.notify_one();
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
        let result = async {
            let dir = self.config.artifacts_dir();
            // Half the cores: requests keep the rest while a version trains.
            let threads = std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1));
            let ctx = FitContext {
                threads,
                ..FitContext::with_seed(spec.seed)
            };
            let eval = self.config.training.offline_eval();
            let record = if activate {
                training::train_and_publish_with(&self.store, &dir, spec, ctx, &eval).await?
            } else {
                training::train_and_register_with(&self.store, &dir, spec, ctx, &eval).await?
            };
            if activate {
                self.rebuild().await?;
            }
            Ok::<_, Error>(record)
        }
        .await;
        self.training.store(false, Ordering::SeqCst);
        if result.is_ok() {
            if let Err(e) = self.check_offline_charts().await {
                tracing::warn!(error = %e, "checking the offline control charts failed");
            }
        }
        match &result {
            Ok(_) => self.metrics.training_runs.fetch_add(1, Ordering::Relaxed),
            Err(_) => self
                .metrics
                .training_failures
                .fetch_add(1, Ordering::Relaxed),
        };
        result.map(Some)
    }

    /// Checks the newest registered version's offline metrics against the control charts of
    /// the versions before it ([`crate::offline::offline_alerts`]) and raises what it violates
    /// in the alert sink (log, `/v1/alerts`, webhooks, `/metrics`). Each newest version is
    /// checked once, whoever trained it: this server (API or schedule) or another process
    /// (`kindred train --store`, seen by the background loop). Answers the alerts raised.
    pub async fn check_offline_charts(&self) -> Result<Vec<crate::monitor::alerts::AlertRecord>> {
        let records = self.store.list_models().await?;
        let Some(newest) = crate::offline::newest_version(&records) else {
            return Ok(Vec::new());
        };
        {
            let mut checked = lock(&self.offline_checked);
            if checked.as_deref() == Some(newest.as_str()) {
                return Ok(Vec::new());
            }
            *checked = Some(newest);
        }
        let alerts = crate::offline::offline_alerts(&records);
        if alerts.is_empty() {
            return Ok(Vec::new());
        }
        Ok(self.monitor.alerts.raise(alerts, training::unix_now()))
    }

    /// True while a training run is in progress.
    pub fn is_training(&self) -> bool {
        self.training.load(Ordering::SeqCst)
    }

    /// Keeps the snapshot current until `shutdown` fires: polls the registry for a version made
    /// live elsewhere (`kindred train --publish`, another server), rebuilds the catalog after
    /// item writes, and retrains on the configured interval.
    pub async fn run_background(self: Arc<Self>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        let watch = Duration::from_millis(self.config.watch_interval_ms.max(10));
        let refresh = Duration::from_millis(self.config.catalog_refresh_ms);
        let retrain = self.config.training.interval_seconds;
        let mut next_train =
            (retrain > 0).then(|| tokio::time::Instant::now() + Duration::from_secs(retrain));
        let mut ticker = tokio::time::interval(watch);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let train_at = next_train;
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = ticker.tick() => {
                    if let Err(e) = self.follow_live_version().await {
                        tracing::warn!(error = %e, "checking the live model version failed");
                    }
                    // Versions registered by another process (`kindred train --store`).
                    if let Err(e) = self.check_offline_charts().await {
                        tracing::warn!(error = %e, "checking the offline control charts failed");
                    }
                    // Experiments started or stopped by another process.
                    if let Err(e) = self.reload_experiments().await {
                        tracing::warn!(error = %e, "checking experiments failed");
                    }
                }
                _ = self.catalog_changed.notified() => {
                    tokio::select! {
                        _ = shutdown.changed() => return,
                        _ = tokio::time::sleep(refresh) => {}
                    }
                    if let Err(e) = self.rebuild().await {
                        tracing::warn!(error = %e, "catalog rebuild failed");
                    }
                }
                _ = async {
                    match train_at {
                        Some(t) => tokio::time::sleep_until(t).await,
                        None => std::future::pending().await,
                    }
                } => {
                    next_train = Some(tokio::time::Instant::now() + Duration::from_secs(retrain));
                    self.scheduled_training().await;
                }
            }
        }
    }

    /// Rebuilds when another process made a version live, or when the snapshot is older than
    /// `refresh_interval_seconds` and feedback arrived since it was built.
    async fn follow_live_version(&self) -> Result<()> {
        let live = self.store.live_model().await?;
        let current = self.snapshot();
        let refresh = self.config.refresh_interval_seconds;
        let stale = refresh > 0
            && current.built_at.elapsed() >= Duration::from_secs(refresh)
            && self.generation.load(Ordering::SeqCst) > current.generation;
        if stale || live.as_ref().map(|r| r.model.version.as_str()) != current.version() {
            self.rebuild().await?;
        }
        Ok(())
    }

    async fn scheduled_training(&self) {
        let live = match self.store.live_model().await {
            Ok(live) => live,
            Err(e) => {
                tracing::warn!(error = %e, "scheduled training: registry unavailable");
                return;
            }
        };
        let trained = live.as_ref().and_then(training::trained_events);
        let events = match self.store.counts().await {
            Ok(c) => c.feedback,
            Err(e) => {
                tracing::warn!(error = %e, "scheduled training: store unavailable");
                return;
            }
        };
        let new_events = events.saturating_sub(trained.unwrap_or(0));
        if live.is_some() && new_events < self.config.training.min_new_events {
            tracing::info!(
                new_events,
                "scheduled training skipped: too little new feedback"
            );
            return;
        }
        let spec = TrainSpec {
            model: self.config.training.model.clone(),
            positive: self.config.training.positive,
            seed: self.config.training.seed,
        };
        match self.train(&spec, true).await {
            Ok(Some(record)) => {
                tracing::info!(version = %record.model.version, "scheduled training published")
            }
            Ok(None) => tracing::info!("scheduled training skipped: a run is in progress"),
            Err(e) => tracing::error!(error = %e, "scheduled training failed"),
        }
    }
}
