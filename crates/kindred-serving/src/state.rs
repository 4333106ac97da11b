//! The serving state every service shares: the store, the live [`Snapshot`] behind an atomic
//! pointer, the real-time feedback overlay, the list cache, the counters and the running
//! experiments; and the rebuilds that keep the snapshot current.
//!
//! Hot swap: a new snapshot is built completely on a blocking thread and then published with one
//! atomic pointer store. A request loads the pointer once and uses that snapshot to the end, so
//! a swap never fails or mixes two versions in one answer. The snapshot swapped out is kept for
//! a while (two at most): activating its version again on unchanged data swaps it back in
//! without a model load or a build.
//!
//! Real time: feedback posted to the server is stored first (durable), then appended to the
//! overlay of its user with a generation number, and that user's cached lists are dropped. A
//! request folds the overlay events newer than its snapshot into the user's history, so the next
//! list reflects the event without waiting for a retrain.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use kindred_core::{Dataset, InteractionsBuilder};
use kindred_rank::RankConfig;
use kindred_store::{Erasures, Feedback, ModelRecord, Store};

use crate::cache::ListCache;
use crate::config::ServerConfig;
use crate::counters::ServingCounters;
use crate::error::{Error, Result};
use crate::experiments::{Assignment, Experiments, ExposureLog};
use crate::lifecycle::training;
use crate::live_snapshot::LiveSnapshot;
use crate::overlay::Overlay;
use crate::served_item::ServedItem;
use crate::snapshot::{LiveModel, Snapshot, SnapshotInput, DEFAULT_RANK};
use crate::sync::lock;
use crate::write_limits::{FeatureOwner, WriteLimits};

/// Most real-time events kept per user between snapshots.
const OVERLAY_PER_USER: usize = 200;

/// Snapshots of recently live versions kept after they are swapped out, so that activating one
/// of them again on unchanged data (a rollback, or switching between two versions) is a pointer
/// swap instead of a model load and a catalog build: the build costs a fraction of a CPU second
/// on ML-1M, taken from the cores that answer requests. Each kept snapshot shares the data with
/// the live one and holds its own model, catalog indexes and pipelines; any change of data drops
/// them all.
const KEPT_SNAPSHOTS: usize = 2;

/// Loads a registered version's model and feature profile on a blocking thread.
async fn load_live_model(record: ModelRecord) -> Result<LiveModel> {
    let job_record = record.clone();
    let (model, profile) =
        tokio::task::spawn_blocking(move || training::load_version_with_profile(&job_record))
            .await
            .map_err(|e| Error::Task(e.to_string()))??;
    Ok(LiveModel {
        version: record.model.version,
        algorithm: record.model.algorithm,
        model,
        trained: None,
        profile,
    })
}

/// Shared by every service and background task.
pub struct ServingState {
    pub config: ServerConfig,
    pub store: Store,
    pub counters: ServingCounters,
    pub cache: ListCache<Vec<ServedItem>>,
    snapshot: LiveSnapshot,
    snapshot_counter: AtomicU64,
    /// Recently swapped-out snapshots, oldest first (at most [`KEPT_SNAPSHOTS`]).
    kept: Mutex<Vec<Arc<Snapshot>>>,
    /// Per user, the items of feedback newer than some snapshot.
    pub overlay: Overlay,
    /// The `[limits]` writes are checked against.
    pub write_limits: WriteLimits,
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
    request_counter: AtomicU64,
    instance: String,
    /// Running experiments and who is in which variant.
    pub experiments: Experiments,
    /// Writes exposures and their impressions in the background.
    pub exposure_log: ExposureLog,
    /// What the contextual bandit rank configs learn from feedback.
    pub bandits: Arc<crate::exploration::BanditLearners>,
    /// The store's tombstones, as of the last erasure here or the last rebuild: writes naming
    /// an erased id are refused against it.
    erasures: ArcSwap<Erasures>,
}

/// Longest name of a named rank config.
const MAX_RANK_NAME_BYTES: usize = 32;

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
        // An exploring list's impressions name the rank config (`version#name`, see
        // `exploration/policy_id.rs`), within the store's limit on policy names.
        if name.is_empty() || name.len() > MAX_RANK_NAME_BYTES || name.contains('#') {
            return Err(Error::Config {
                origin: "rank_named".into(),
                message: format!(
                    "rank config name `{name}` must be 1 to {MAX_RANK_NAME_BYTES} bytes without `#`"
                ),
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

impl ServingState {
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
            erasures: Arc::new(Erasures::default()),
        })?;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let overlay = Overlay::new(config.limits.overlay_users, OVERLAY_PER_USER);
        let write_limits = WriteLimits::new(config.limits.clone());
        let state = Arc::new(Self {
            cache: ListCache::new(
                Duration::from_secs(config.cache.ttl_seconds),
                config.cache.capacity,
                config.cache.max_bytes,
            ),
            config,
            counters: ServingCounters::default(),
            snapshot: LiveSnapshot::new(empty),
            snapshot_counter: AtomicU64::new(0),
            kept: Mutex::new(Vec::new()),
            overlay,
            write_limits,
            generation: AtomicU64::new(0),
            data_changed: AtomicBool::new(true),
            data_stamp: Mutex::new(None),
            rank_configs,
            rebuild_lock: tokio::sync::Mutex::new(()),
            catalog_changed: tokio::sync::Notify::new(),
            request_counter: AtomicU64::new(0),
            experiments: Experiments::default(),
            exposure_log: ExposureLog::start(store.clone()),
            bandits: Default::default(),
            erasures: ArcSwap::from_pointee(Erasures::default()),
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
        self.snapshot.load()
    }

    /// A handle that reads the current snapshot (for monitoring, which needs nothing else).
    pub fn live_snapshot(&self) -> LiveSnapshot {
        self.snapshot.clone()
    }

    /// A fresh id for a served list (`<instance>-<counter>`), unique across restarts in practice.
    pub fn request_id(&self) -> String {
        let n = self.request_counter.fetch_add(1, Ordering::Relaxed);
        format!("{}-{n:x}", self.instance)
    }

    /// Rebuilds the snapshot from the store's current data and live version, and swaps it in.
    /// One rebuild runs at a time; a model already loaded is reused, and so is a whole snapshot
    /// kept from an earlier activation of the same version on the same data (see
    /// [`KEPT_SNAPSHOTS`]).
    pub async fn rebuild(&self) -> Result<()> {
        let _guard = self.rebuild_lock.lock().await;
        let started = std::time::Instant::now();
        let generation = self.generation.load(Ordering::SeqCst);
        let current = self.snapshot();
        let live_record = self.store.live_model().await?;
        // Reading ML-1M takes seconds; a rebuild that only swaps the model reuses the data when
        // nothing was written here (flag, cleared before reading so a write during the read
        // marks the next rebuild dirty) or elsewhere (row counts; an update in place by another
        // process waits for the next refresh).
        let erasures = Arc::new(self.store.erasures().await?);
        self.erasures.store(Arc::clone(&erasures));
        let counts = self.store.counts().await?;
        let stamp = (counts.users, counts.items, counts.feedback);
        let changed_here = self.data_changed.swap(false, Ordering::SeqCst);
        let changed_elsewhere = *lock(&self.data_stamp) != Some(stamp);
        let fresh = changed_here || changed_elsewhere;
        let (dataset, generation) = if fresh {
            match self.store.load_dataset("store").await {
                Ok(data) => (Arc::new(data), generation),
                Err(e) => {
                    self.data_changed.store(true, Ordering::SeqCst);
                    return Err(e.into());
                }
            }
        } else {
            (Arc::clone(&current.data), current.generation)
        };
        let served = SnapshotInput {
            dataset,
            live: None,
            rank_configs: self.rank_configs.clone(),
            batch_size: (self.config.mode == crate::config::ServeMode::Batch)
                .then_some(self.config.batch_size),
            generation,
            erasures,
        };
        let result = self.swap_to(live_record, served, &current, started).await;
        if fresh {
            match &result {
                // Served: later rebuilds reuse this data while the store's counts stay.
                Ok(()) => *lock(&self.data_stamp) = Some(stamp),
                // Not served (a model failed to load, or the build failed): the data read is
                // gone with it, so the next rebuild reads the data again.
                Err(_) => self.data_changed.store(true, Ordering::SeqCst),
            }
        }
        result
    }

    /// Swaps in a snapshot of `input`'s data serving `live_record` and the versions the running
    /// experiments serve: a kept one when it matches, else one built here, with models already
    /// loaded in `current` reused.
    async fn swap_to(
        &self,
        live_record: Option<ModelRecord>,
        mut input: SnapshotInput,
        current: &Arc<Snapshot>,
        started: std::time::Instant,
    ) -> Result<()> {
        let variant_versions: Vec<String> = self
            .experiments
            .model_versions()
            .into_iter()
            .filter(|v| live_record.as_ref().is_none_or(|r| &r.model.version != v))
            .collect();
        if variant_versions.is_empty() {
            if let Some(record) = &live_record {
                let kept = self.take_kept(
                    &record.model.version,
                    &input.dataset,
                    input.generation,
                    &input.erasures,
                );
                if let Some(kept) = kept {
                    return self.swap_in(kept, current, started, true).await;
                }
            }
        }
        input.live = match live_record {
            Some(record) => {
                let loaded = current
                    .live
                    .as_ref()
                    .filter(|l| l.version == record.model.version)
                    .cloned();
                match loaded {
                    Some(live) => Some(live),
                    None => Some(load_live_model(record).await?),
                }
            }
            None => None,
        };
        // The other versions running experiments serve, reused when already loaded.
        let mut variant_models = Vec::new();
        for version in variant_versions {
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
                    load_live_model(record).await?
                }
            };
            variant_models.push(model);
        }
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
                    erasures: Arc::clone(&input.erasures),
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
        self.swap_in(Arc::new(snapshot), current, started, false)
            .await
    }

    /// Publishes `next` in place of `current`: the bandits' posteriors for its catalogs are
    /// built first, off the request path; `current` is kept for a later activation of its
    /// version.
    async fn swap_in(
        &self,
        next: Arc<Snapshot>,
        current: &Arc<Snapshot>,
        started: std::time::Instant,
        reused: bool,
    ) -> Result<()> {
        if !self.bandits.is_empty() {
            let (bandits, next) = (Arc::clone(&self.bandits), Arc::clone(&next));
            tokio::task::spawn_blocking(move || {
                bandits.prepare(|policy| next.catalog_serving(policy))
            })
            .await
            .map_err(|e| Error::Task(e.to_string()))?;
        }
        let version = next.version().map(str::to_owned);
        let generation = next.generation;
        self.write_limits
            .seed(FeatureOwner::User, next.user_feature_kinds.keys());
        self.write_limits
            .seed(FeatureOwner::Item, next.item_feature_kinds.keys());
        self.keep(current, &next);
        self.snapshot.store(next);
        self.cache.clear();
        self.overlay.retain_after(generation);
        self.counters.snapshot_swaps.fetch_add(1, Ordering::Relaxed);
        tracing::info!(
            version = ?version,
            generation,
            reused,
            millis = started.elapsed().as_millis() as u64,
            "snapshot swapped in"
        );
        Ok(())
    }

    /// Keeps `previous` (the snapshot `next` replaces) for a later activation of its version,
    /// when it serves one version and no experiment arms; drops kept snapshots of other data,
    /// which can never be swapped in again, and the oldest beyond [`KEPT_SNAPSHOTS`].
    fn keep(&self, previous: &Arc<Snapshot>, next: &Arc<Snapshot>) {
        let mut kept = lock(&self.kept);
        kept.retain(|k| Arc::ptr_eq(&k.data, &next.data) && k.version() != next.version());
        if previous.version().is_some()
            && previous.variants.is_empty()
            && previous.version() != next.version()
            && Arc::ptr_eq(&previous.data, &next.data)
        {
            kept.push(Arc::clone(previous));
        }
        while kept.len() > KEPT_SNAPSHOTS {
            kept.remove(0);
        }
    }

    /// Takes the kept snapshot of `version` built from exactly this data, generation and
    /// tombstones, if there is one.
    fn take_kept(
        &self,
        version: &str,
        dataset: &Arc<Dataset>,
        generation: u64,
        erasures: &Erasures,
    ) -> Option<Arc<Snapshot>> {
        let mut kept = lock(&self.kept);
        let at = kept.iter().position(|k| {
            k.version() == Some(version)
                && Arc::ptr_eq(&k.data, dataset)
                && k.generation == generation
                && *k.erasures == *erasures
        })?;
        Some(kept.remove(at))
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
        self.overlay.record(
            generation,
            events.iter().map(|e| (e.user.as_str(), e.item.as_str())),
        );
        let mut users: Vec<&str> = events.iter().map(|e| e.user.as_str()).collect();
        users.sort_unstable();
        users.dedup();
        for user in users {
            self.cache.invalidate_user(user);
        }
    }

    /// Items of `user`'s real-time feedback that `snapshot` does not include, oldest first.
    pub fn overlay_items(&self, user: &str, snapshot: &Snapshot) -> Vec<u32> {
        self.overlay
            .items_after(user, snapshot.generation, |item| snapshot.items.get(item))
    }

    /// The store's tombstones as this process last read them.
    pub fn erasures(&self) -> Arc<Erasures> {
        self.erasures.load_full()
    }

    /// Re-reads the store's tombstones (after an erasure).
    pub(crate) async fn refresh_erasures(&self) -> Result<()> {
        self.erasures.store(Arc::new(self.store.erasures().await?));
        Ok(())
    }

    /// Forgets a deleted user's real-time state.
    pub fn forget_user(&self, user: &str) {
        self.overlay.remove(user);
        self.cache.invalidate_user(user);
    }

    /// Asks for a catalog rebuild soon (items changed); several calls coalesce.
    pub fn catalog_changed(&self) {
        self.data_changed.store(true, Ordering::SeqCst);
        self.catalog_changed.notify_one();
    }

    /// Rebuilds when another process made a version live or erased a user or item, or when the
    /// snapshot is older than `refresh_interval_seconds` and feedback arrived since it was built.
    pub(crate) async fn follow_live_version(&self) -> Result<()> {
        let live = self.store.live_model().await?;
        let current = self.snapshot();
        let refresh = self.config.refresh_interval_seconds;
        let stale = refresh > 0
            && current.built_at.elapsed() >= Duration::from_secs(refresh)
            && self.generation.load(Ordering::SeqCst) > current.generation;
        let erased_elsewhere = self.store.erasure_count().await? != current.erasures.len() as u64;
        if erased_elsewhere {
            // The data lost rows too: read it again rather than reuse it.
            self.data_changed.store(true, Ordering::SeqCst);
        }
        if stale
            || erased_elsewhere
            || live.as_ref().map(|r| r.model.version.as_str()) != current.version()
        {
            self.rebuild().await?;
        }
        Ok(())
    }

    /// Waits until items changed ([`Self::catalog_changed`]).
    pub(crate) async fn catalog_change(&self) {
        self.catalog_changed.notified().await;
    }
}
