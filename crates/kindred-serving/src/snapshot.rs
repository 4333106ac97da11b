//! What one model version serves: the model, the catalog it ranks over, each user's history and
//! the ranking pipelines, frozen together so a request sees one consistent picture.
//!
//! A snapshot is built off the request path (a blocking thread) from the store's current data
//! and the live model, then swapped in atomically; requests already running finish on the old
//! one. The catalog lists the model's items first, in the model's order, so model scores index
//! it directly. Items the model has never seen (added after training) are scored from their
//! features when the model can (content models grow their catalog at each build); the rest
//! follow and reach users through the fallback chain (latest, trending) until the next version
//! learns them.
//!
//! Erasure: the store leaves erased users and items out of the data, but the live model's
//! artifact still holds them until a version trained after the erasure replaces it. A snapshot
//! is built with the store's tombstones ([`Erasures`]) and treats those ids as unknown wherever
//! an id meets the model: an erased user is scored like a user never seen, an erased item is
//! excluded from every list and cannot be looked up.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use kindred_core::features::ColumnData;
use kindred_core::{CsMatrix, Dataset, FeatureTable, IdMap, Result, Scored};
use kindred_models::{Model, UserQuery};
use kindred_rank::exploration::{BanditPosterior, ReplayedSlot};
use kindred_rank::retrieval::{
    cooccurrence_similar, Metric, VectorIndex, DEFAULT_COOCCURRENCE_SHRINK,
};
use kindred_rank::{
    CatalogData, ExplorationConfig, RankConfig, RankPipeline, RankRequest, RankedItem,
    RequestFilters, ScoreSource, TrainingLog,
};
use kindred_store::Erasures;
use rayon::prelude::*;
use serde_json::Value;

use crate::exploration::PolicyId;

/// Most history items folded in per request (the most recent ones).
pub const MAX_FOLD_IN: usize = 500;

/// The live model version, as the registry describes it.
#[derive(Clone)]
pub struct LiveModel {
    pub version: String,
    pub algorithm: String,
    /// The model lists are scored with: the trained one, or a copy grown with the catalog's
    /// new items ([`with_new_items`]).
    pub model: Arc<dyn Model>,
    /// The model as trained, when `model` is a grown copy: every build grows it afresh, so an
    /// item rewritten with new features is scored from the new ones.
    pub trained: Option<Arc<dyn Model>>,
    /// The feature distributions it was trained with, for the skew check (None for versions
    /// saved without one).
    pub profile: Option<Arc<crate::monitor::skew::FeatureProfile>>,
}

impl std::fmt::Debug for LiveModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveModel")
            .field("version", &self.version)
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

/// `live` with the catalog's items it was not trained on scored from their features, where
/// its model can (content models; [`Model::with_new_items`]): a new item written with features
/// reaches model-scored lists at this rebuild instead of waiting for the next version.
fn with_new_items(live: LiveModel, item_features: Option<&FeatureTable>) -> LiveModel {
    let trained = live
        .trained
        .clone()
        .unwrap_or_else(|| Arc::clone(&live.model));
    match item_features.and_then(|table| trained.with_new_items(table)) {
        Some(grown) => LiveModel {
            model: Arc::from(grown),
            trained: Some(trained),
            ..live
        },
        None => LiveModel {
            model: trained,
            trained: None,
            ..live
        },
    }
}

/// Per user, the catalog items of their rows oldest first (ties in row order).
fn items_in_time_order(
    n_users: usize,
    n_items: usize,
    log: &kindred_core::Interactions,
    log_items: &[u32],
) -> CsMatrix {
    let ts = log.timestamps();
    let mut visit: Vec<u32> = (0..log.len() as u32).collect();
    // Stable: rows of equal time stay in store order.
    visit.sort_by_key(|&r| ts[r as usize]);
    CsMatrix::build_in_order(n_users, n_items, log.users(), log_items, &visit)
}

/// A list request, in catalog terms.
#[derive(Debug, Clone, Default)]
pub struct ListRequest<'a> {
    /// External user id (None: anonymous).
    pub user: Option<&'a str>,
    /// Items the user interacted with that the snapshot does not hold yet (real-time feedback,
    /// or an anonymous session's interactions), oldest first.
    pub history: Vec<u32>,
    /// A segment value given in the request (anonymous users' features).
    pub segment: Option<String>,
    pub filters: RequestFilters,
    /// Named rank config (None: the default one).
    pub rank: Option<&'a str>,
    pub now: i64,
    pub offset: usize,
    pub n: usize,
    /// Seeds the named pipeline's `[exploration]` draw; None (or a page past the first): the
    /// ranking's own order.
    pub exploration_seed: Option<u64>,
    /// What a contextual bandit `[exploration]` has learned (None: its prior).
    pub bandit: Option<Arc<BanditPosterior>>,
}

/// One catalog + model + pipelines.
pub struct Snapshot {
    /// Set when the snapshot is built and first swapped in, increasing with each build (cache
    /// entries carry it); a kept snapshot swapped in again keeps its id, since lists it made are
    /// still its own.
    pub id: u64,
    /// Live model (None: no version is live; lists come from the fallback chain).
    pub live: Option<LiveModel>,
    /// Catalog item ids: the model's items first, then items only the store knows.
    pub items: Arc<IdMap>,
    /// Catalog users: every user with feedback or features.
    pub users: Arc<IdMap>,
    n_model_items: usize,
    /// Per catalog user, the items of their stored feedback (sorted, catalog indices).
    seen: CsMatrix,
    /// Per catalog user, their stored feedback's items oldest first (ties in store order),
    /// kept only when the live model reads order ([`Model::reads_order`]).
    in_time_order: Option<CsMatrix>,
    /// Per catalog item, its users (for co-occurrence similarity when the model has no
    /// embeddings).
    by_item: CsMatrix,
    /// Per catalog user, their last feedback time (Unix seconds; `i64::MIN` unknown).
    last_active: Vec<i64>,
    pipelines: BTreeMap<String, RankPipeline>,
    item_index: Option<VectorIndex>,
    user_index: Option<VectorIndex>,
    /// Batch mode: each catalog user's precomputed default list, and the length asked for.
    batch: Option<Vec<Vec<RankedItem>>>,
    batch_size: usize,
    /// Kind of each user feature column in the store's data (writes are checked against it).
    pub user_feature_kinds: BTreeMap<String, FeatureKind>,
    /// Kind of each item feature column in the store's data.
    pub item_feature_kinds: BTreeMap<String, FeatureKind>,
    /// The store's data the snapshot was built from.
    pub data: Arc<Dataset>,
    /// Feedback events the snapshot was built from.
    pub events: usize,
    /// When the build finished.
    pub built_at: std::time::Instant,
    /// Real-time feedback generation at which the data was read: overlay events from later
    /// generations are not in `seen` yet.
    pub generation: u64,
    /// Snapshots of the same data for the other model versions running experiments serve, by
    /// version (filled in by the server's rebuild; empty otherwise).
    pub variants: BTreeMap<String, Arc<Snapshot>>,
    /// The store's tombstones when the snapshot was built.
    pub erasures: Arc<Erasures>,
    /// Catalog items whose id is tombstoned (only the model's can be: the store's data leaves
    /// erased items out), as ids for the pipelines' hard exclusion and as indices.
    erased_items: Vec<String>,
    erased_item_index: HashSet<u32>,
    /// The live model's users whose id is tombstoned, by model index.
    erased_model_users: HashSet<u32>,
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot")
            .field("version", &self.version())
            .field("items", &self.items.len())
            .field("users", &self.users.len())
            .finish_non_exhaustive()
    }
}

/// The default pipeline's name in [`Snapshot`]'s map.
pub const DEFAULT_RANK: &str = "default";

/// Everything a snapshot is built from.
pub struct SnapshotInput {
    /// The store's data (shared: a snapshot that only swaps the model reuses it).
    pub dataset: Arc<Dataset>,
    pub live: Option<LiveModel>,
    /// Named rank configs; [`DEFAULT_RANK`] must be among them.
    pub rank_configs: BTreeMap<String, RankConfig>,
    /// Precompute this many items per user (batch mode).
    pub batch_size: Option<usize>,
    pub generation: u64,
    /// The store's tombstones: ids the snapshot must treat as unknown.
    pub erasures: Arc<Erasures>,
}

/// What one request ranks from, prepared by [`Snapshot::prepare`].
struct Prepared<'s> {
    pipeline: &'s RankPipeline,
    /// The user's catalog index, if the catalog knows them.
    user: Option<u32>,
    /// Stored and request-time history, sorted and distinct.
    seen: Vec<u32>,
    /// The model's scores over the catalog (empty: no model score).
    scores: Vec<f32>,
    source_name: &'s str,
    /// The scores were folded in from history (they go to the pipeline as secondary).
    folded: bool,
    last_active: Option<i64>,
}

impl Prepared<'_> {
    /// The pipeline's request, without an exploration seed.
    fn request<'r>(
        &'r self,
        request: &'r ListRequest<'_>,
        filters: &'r RequestFilters,
    ) -> RankRequest<'r> {
        let scored = (!self.scores.is_empty()).then_some(ScoreSource {
            name: self.source_name,
            scores: &self.scores,
        });
        let mut rank_request = RankRequest::new(request.now);
        rank_request.user = self.user;
        rank_request.seen = &self.seen;
        if self.folded {
            rank_request.secondary = scored;
        } else {
            rank_request.primary = scored;
        }
        rank_request.last_active = self.last_active;
        rank_request.filters = filters;
        rank_request.segment = request.segment.as_deref();
        rank_request
    }
}

impl Snapshot {
    /// Builds the catalog, the pipelines and (batch mode) every user's list. Blocking: call from
    /// a blocking thread.
    pub fn build(input: SnapshotInput) -> Result<Self> {
        let SnapshotInput {
            dataset,
            live,
            rank_configs,
            batch_size,
            generation,
            erasures,
        } = input;
        let live = live.map(|l| with_new_items(l, dataset.item_features.as_deref()));
        let log = &dataset.interactions;
        let mut items = IdMap::new();
        if let Some(live) = &live {
            for id in live.model.fitted().items.externals() {
                items.intern(id);
            }
        }
        let n_model_items = items.len();
        let item_of_row: Vec<u32> = log
            .item_ids()
            .externals()
            .iter()
            .map(|id| items.intern(id))
            .collect();
        if let Some(table) = &dataset.item_features {
            for id in table.ids().externals() {
                items.intern(id);
            }
        }
        let mut users = IdMap::clone(log.user_ids());
        if let Some(table) = &dataset.user_features {
            for id in table.ids().externals() {
                users.intern(id);
            }
        }
        // Hashing every catalog id costs a fraction of a second on a million items, and only
        // when some item was erased.
        let erased_items: Vec<String> = if erasures.items() == 0 {
            Vec::new()
        } else {
            items
                .externals()
                .iter()
                .filter(|id| erasures.item_erased(id))
                .cloned()
                .collect()
        };
        let erased_item_index = erased_items.iter().filter_map(|id| items.get(id)).collect();
        let erased_model_users: HashSet<u32> = match &live {
            Some(live) if erasures.users() > 0 => {
                let ids = &live.model.fitted().users;
                (0..ids.len() as u32)
                    .filter(|&u| erasures.user_erased(ids.external(u)))
                    .collect()
            }
            _ => HashSet::new(),
        };
        let items = Arc::new(items);
        let users = Arc::new(users);
        let log_items: Vec<u32> = log
            .items()
            .iter()
            .map(|&i| item_of_row[i as usize])
            .collect();
        let seen = CsMatrix::build(users.len(), items.len(), log.users(), &log_items);
        let in_time_order = live
            .as_ref()
            .filter(|l| l.model.reads_order())
            .map(|_| items_in_time_order(users.len(), items.len(), log, &log_items));
        let by_item = CsMatrix::build(items.len(), users.len(), &log_items, log.users());
        let mut last_active = vec![i64::MIN; users.len()];
        for (&u, &t) in log.users().iter().zip(log.timestamps()) {
            let slot = &mut last_active[u as usize];
            *slot = (*slot).max(t);
        }
        let item_features = dataset.item_features.as_deref();
        let mut pipelines = BTreeMap::new();
        for (name, mut config) in rank_configs {
            let has_column = |name: &str| item_features.is_some_and(|f| f.column(name).is_some());
            // Hidden items are never served, whatever the rank config says.
            if config.filters.hide_column.is_none() && has_column("hidden") {
                config.filters.hide_column = Some("hidden".into());
            }
            // The store keeps item categories in `categories` and item dates in `timestamp`:
            // without these defaults a request's `category=` is refused (no category column)
            // and `latest` orders by first interaction instead of the item's date.
            if config.filters.category_column.is_none()
                && config.category_column.is_none()
                && has_column("categories")
            {
                config.filters.category_column = Some("categories".into());
            }
            if config.fallback.latest_column.is_none() && has_column("timestamp") {
                config.fallback.latest_column = Some("timestamp".into());
                config.fallback.latest_unit = kindred_rank::config::DateUnit::UnixSeconds;
            }
            let pipeline = RankPipeline::new(
                config,
                CatalogData {
                    item_ids: &items,
                    item_features,
                    user_ids: &users,
                    user_features: dataset.user_features.as_deref(),
                    train: TrainingLog {
                        users: log.users(),
                        items: &log_items,
                        timestamps: log.timestamps(),
                    },
                },
            )
            .map_err(|e| kindred_core::Error::InvalidInput(format!("rank config `{name}`: {e}")))?;
            pipelines.insert(name, pipeline);
        }
        let embeddings = |e: Option<(usize, &[f32])>| -> Result<Option<VectorIndex>> {
            match e {
                Some((dim, vectors)) if dim > 0 && !vectors.is_empty() => {
                    Ok(Some(VectorIndex::exact(Metric::Cosine, dim, vectors)?))
                }
                _ => Ok(None),
            }
        };
        let (item_index, user_index) = match &live {
            Some(l) => (
                embeddings(l.model.item_embeddings())?,
                embeddings(l.model.user_embeddings())?,
            ),
            None => (None, None),
        };
        let user_feature_kinds = FeatureKind::of_table(dataset.user_features.as_deref());
        let item_feature_kinds = FeatureKind::of_table(dataset.item_features.as_deref());
        let mut snapshot = Self {
            id: 0,
            live,
            items,
            users,
            n_model_items,
            seen,
            in_time_order,
            by_item,
            last_active,
            pipelines,
            item_index,
            user_index,
            batch: None,
            batch_size: batch_size.unwrap_or(0),
            user_feature_kinds,
            item_feature_kinds,
            events: log.len(),
            data: Arc::clone(&dataset),
            built_at: std::time::Instant::now(),
            generation,
            variants: BTreeMap::new(),
            erasures,
            erased_items,
            erased_item_index,
            erased_model_users,
        };
        if let Some(k) = batch_size {
            // Lists are as of the build; time-dependent rules (availability, freshness) move on
            // only at the next rebuild, which is why filtered requests are scored live.
            let now = crate::clock::unix_now();
            let lists: Result<Vec<Vec<RankedItem>>> = (0..snapshot.users.len())
                .into_par_iter()
                .map(|u| {
                    let request = ListRequest {
                        user: Some(snapshot.users.external(u as u32)),
                        n: k,
                        now,
                        ..ListRequest::default()
                    };
                    snapshot.rank_now(&request)
                })
                .collect();
            snapshot.batch = Some(lists?);
        }
        Ok(snapshot)
    }

    /// The snapshot that serves `version`: this one when it is the live version (or None is
    /// asked), else the variant snapshot loaded for a running experiment, if any.
    pub fn for_version(&self, version: Option<&str>) -> Option<&Snapshot> {
        match version {
            None => Some(self),
            Some(v) if self.version() == Some(v) => Some(self),
            Some(v) => self.variants.get(v).map(|s| s.as_ref()),
        }
    }

    /// The live version's name, if any.
    pub fn version(&self) -> Option<&str> {
        self.live.as_ref().map(|l| l.version.as_str())
    }

    /// The catalog a list of bandit policy `policy` (a [`PolicyId`]'s text) is drawn from when
    /// this snapshot serves: its own, or its experiment variant's for that version. `None` when
    /// the policy names a version this snapshot does not serve, or none (the id left it out).
    pub fn catalog_serving(&self, policy: &str) -> Option<Arc<IdMap>> {
        let id = PolicyId::parse(policy);
        match id.version.as_deref() {
            version if version == self.version() && !policy.starts_with('#') => {
                Some(Arc::clone(&self.items))
            }
            Some(version) => self.variants.get(version).map(|v| Arc::clone(&v.items)),
            None => None,
        }
    }

    /// True when `name` names a configured pipeline.
    pub fn has_rank(&self, name: &str) -> bool {
        self.pipelines.contains_key(name)
    }

    /// Names of the configured pipelines.
    pub fn rank_names(&self) -> impl Iterator<Item = &str> {
        self.pipelines.keys().map(String::as_str)
    }

    /// The named pipeline (None: the default one), if configured.
    pub fn pipeline(&self, rank: Option<&str>) -> Option<&RankPipeline> {
        self.pipelines.get(rank.unwrap_or(DEFAULT_RANK))
    }

    /// The named pipeline's `[exploration]` section when it explores.
    pub fn exploration(&self, rank: Option<&str>) -> Option<&ExplorationConfig> {
        self.pipeline(rank)
            .map(|p| &p.config().exploration)
            .filter(|e| e.explores())
    }

    /// The items of a precomputed list (batch mode) when it can answer `request` exactly: a
    /// known user, default pipeline, no filters, no new history, and the page within it.
    pub fn precomputed(&self, request: &ListRequest<'_>) -> Option<&[RankedItem]> {
        let lists = self.batch.as_ref()?;
        if request.rank.is_some_and(|r| r != DEFAULT_RANK)
            || !request.filters.is_empty()
            || !request.history.is_empty()
            || request.segment.is_some()
        {
            return None;
        }
        let u = self.users.get(self.known_user(request.user)?)?;
        let list = lists.get(u as usize)?;
        let end = request.offset + request.n;
        // A short list means the catalog ran out, so a longer page would not find more.
        (end <= list.len() || list.len() < self.batch_size).then(|| {
            let start = request.offset.min(list.len());
            &list[start..end.min(list.len())]
        })
    }

    /// Whether lists are precomputed.
    pub fn is_batch(&self) -> bool {
        self.batch.is_some()
    }

    /// The page `offset..offset+n` of the user's list, scored now.
    pub fn rank_now(&self, request: &ListRequest<'_>) -> Result<Vec<RankedItem>> {
        let prepared = self.prepare(request)?;
        let filters = self.without_erased(&request.filters);
        let rank_request = RankRequest {
            // Exploration draws the first page only: a later page's positions are conditioned
            // on items its reader never saw.
            exploration_seed: request.exploration_seed.filter(|_| request.offset == 0),
            bandit: request.bandit.as_deref(),
            ..prepared.request(request, &filters)
        };
        let mut list = prepared
            .pipeline
            .rank(&rank_request, request.offset + request.n)?;
        if prepared.folded {
            // The pipeline only carries primary scores through; folded-in items keep theirs.
            for ranked in &mut list {
                if ranked.score.is_nan() {
                    if let Some(&s) = prepared.scores.get(ranked.item as usize) {
                        ranked.score = s;
                    }
                }
            }
        }
        list.drain(..request.offset.min(list.len()));
        Ok(list)
    }

    /// The named pipeline's replay of `shown` (catalog items in position order, a list another
    /// policy logged for this request): per position the probability that it shows the logged
    /// item there given the ones above, and its expectation of `value` (see
    /// `RankPipeline::replay`).
    pub fn replay(
        &self,
        request: &ListRequest<'_>,
        shown: &[u32],
        value: &dyn Fn(u32, usize) -> f64,
    ) -> Result<Vec<ReplayedSlot>> {
        let prepared = self.prepare(request)?;
        let filters = self.without_erased(&request.filters);
        prepared
            .pipeline
            .replay(&prepared.request(request, &filters), shown, value)
    }

    /// The pipeline a request names and what it ranks from: the user's history and the
    /// model's scores (of the user, else folded in from their history).
    fn prepare(&self, request: &ListRequest<'_>) -> Result<Prepared<'_>> {
        let name = request.rank.unwrap_or(DEFAULT_RANK);
        let pipeline = self.pipelines.get(name).ok_or_else(|| {
            kindred_core::Error::InvalidInput(format!(
                "unknown rank config `{name}`; configured: {}",
                self.rank_names().collect::<Vec<_>>().join(", ")
            ))
        })?;
        let request_user = self.known_user(request.user);
        let user = request_user.and_then(|u| self.users.get(u));
        let stored: &[u32] = user.map_or(&[], |u| self.seen.row(u as usize));
        let mut seen: Vec<u32> = stored.iter().chain(&request.history).copied().collect();
        seen.sort_unstable();
        seen.dedup();
        let mut scores = Vec::new();
        let mut source_name = "";
        let mut folded = false;
        if let Some(live) = &self.live {
            let fitted = live.model.fitted();
            let model_user = request_user.and_then(|u| fitted.users.get(u));
            let in_model = |&&i: &&u32| (i as usize) < self.n_model_items;
            let mut history: Vec<u32> = request.history.iter().filter(in_model).copied().collect();
            if model_user.is_none() {
                // A user the model never saw: fold in everything the store has of them, oldest
                // first when the model reads order.
                let stored = match (&self.in_time_order, user) {
                    (Some(ordered), Some(u)) => ordered.row(u as usize),
                    _ => stored,
                };
                let mut all: Vec<u32> = stored.iter().filter(in_model).copied().collect();
                all.append(&mut history);
                history = all;
            }
            if history.len() > MAX_FOLD_IN {
                history.drain(..history.len() - MAX_FOLD_IN);
            }
            if model_user.is_some() || !history.is_empty() {
                scores = vec![f32::NAN; self.items.len()];
                let query = UserQuery {
                    user: model_user,
                    history: &history,
                };
                live.model
                    .score_all(&query, &mut scores[..self.n_model_items]);
                source_name = live.algorithm.as_str();
                folded = model_user.is_none() || !history.is_empty();
            }
        }
        Ok(Prepared {
            pipeline,
            user,
            seen,
            scores,
            source_name,
            folded,
            last_active: user
                .map(|u| self.last_active[u as usize])
                .filter(|&t| t != i64::MIN),
        })
    }

    /// Whether the live model scores catalog item `item` (false for items added after its
    /// training that it cannot score from features; they reach lists through the fallback chain
    /// or exploration).
    pub fn in_model(&self, item: u32) -> bool {
        (item as usize) < self.n_model_items
    }

    /// Catalog indices of `ids`, unknown (and erased) ones left out.
    pub fn item_indices<'s>(&self, ids: impl IntoIterator<Item = &'s str>) -> Vec<u32> {
        ids.into_iter().filter_map(|id| self.item(id)).collect()
    }

    /// The catalog index of item `id`; None for an unknown or erased item.
    pub fn item(&self, id: &str) -> Option<u32> {
        self.items
            .get(id)
            .filter(|i| !self.erased_item_index.contains(i))
    }

    /// Whether user `id` was erased (when the snapshot was built).
    pub fn user_erased(&self, id: &str) -> bool {
        self.erasures.user_erased(id)
    }

    /// `user`, unless it was erased: an erased user is served as a user never seen.
    fn known_user<'u>(&self, user: Option<&'u str>) -> Option<&'u str> {
        user.filter(|u| !self.user_erased(u))
    }

    /// `filters` with the erased items excluded too (borrowed as they are when none was).
    pub fn without_erased<'f>(&self, filters: &'f RequestFilters) -> Cow<'f, RequestFilters> {
        if self.erased_items.is_empty() {
            return Cow::Borrowed(filters);
        }
        let mut filters = filters.clone();
        filters.exclude.extend(self.erased_items.iter().cloned());
        Cow::Owned(filters)
    }

    /// The `n` servable items most similar to `item` and how they were found: by the model's
    /// item embeddings (cosine) when it has them and knows the item, else by co-occurrence in
    /// the stored feedback.
    pub fn similar_items(&self, item: u32, n: usize) -> Result<(Vec<Scored>, &'static str)> {
        // Ask for more than n: hidden or unavailable items are dropped afterwards.
        let want = n.saturating_mul(2).saturating_add(10);
        let (found, source) = match &self.item_index {
            Some(index) if (item as usize) < index.len() => {
                (index.similar_to(item, want)?, "embeddings")
            }
            _ => (
                cooccurrence_similar(
                    &self.by_item,
                    &self.seen,
                    item,
                    want,
                    DEFAULT_COOCCURRENCE_SHRINK,
                )?,
                "cooccurrence",
            ),
        };
        let order: Vec<u32> = found.iter().map(|s| s.item).collect();
        let keep = match self.pipelines.get(DEFAULT_RANK) {
            Some(p) => p.filter_order(
                &order,
                &self.without_erased(&RequestFilters::default()),
                crate::clock::unix_now(),
                0,
                n,
            )?,
            None => order
                .into_iter()
                .filter(|i| !self.erased_item_index.contains(i))
                .take(n)
                .collect(),
        };
        let found = found
            .into_iter()
            .filter(|s| keep.contains(&s.item))
            .take(n)
            .collect();
        Ok((found, source))
    }

    /// The `n` users most similar to `user` (model embeddings, else co-occurrence), as external
    /// ids with scores, and the method; None for a user neither knows.
    #[allow(clippy::type_complexity)]
    pub fn similar_users(
        &self,
        user: &str,
        n: usize,
    ) -> Result<Option<(Vec<(String, f32)>, &'static str)>> {
        if self.user_erased(user) {
            return Ok(None);
        }
        if let (Some(index), Some(live)) = (&self.user_index, &self.live) {
            let ids = &live.model.fitted().users;
            if let Some(u) = ids.get(user) {
                // The model still holds erased users: ask for enough to drop them.
                let extra = self.erased_model_users.len();
                let found = index.similar_to(u, n.saturating_add(extra))?;
                let users = found
                    .into_iter()
                    .filter(|s| !self.erased_model_users.contains(&s.item))
                    .take(n)
                    .map(|s| (ids.external(s.item).to_owned(), s.score))
                    .collect();
                return Ok(Some((users, "embeddings")));
            }
        }
        let Some(u) = self.users.get(user) else {
            return Ok(None);
        };
        let found =
            cooccurrence_similar(&self.seen, &self.by_item, u, n, DEFAULT_COOCCURRENCE_SHRINK)?;
        let users = found
            .into_iter()
            .map(|s| (self.users.external(s.item).to_owned(), s.score))
            .collect();
        Ok(Some((users, "cooccurrence")))
    }

    /// The user feature column the named pipeline's segment fallback reads, if any.
    pub fn segment_column(&self, rank: Option<&str>) -> Option<&str> {
        self.pipelines
            .get(rank.unwrap_or(DEFAULT_RANK))?
            .config()
            .fallback
            .segment_column
            .as_deref()
    }

    /// The predicted score of (user, item): the model's rating where it predicts ratings and
    /// `history` (real-time items the snapshot lacks) is empty, else its ranking score with the
    /// history folded in; None when the model cannot score the pair (no model, an item it never
    /// saw, a user with no known items).
    pub fn predict(&self, user: &str, item: &str, history: &[u32]) -> Option<f32> {
        let live = self.live.as_ref()?;
        let fitted = live.model.fitted();
        self.item(item)?;
        let i = fitted.items.get(item)?;
        let user = self.known_user(Some(user));
        let u = user.and_then(|user| fitted.users.get(user));
        if let (Some(u), true) = (u, history.is_empty()) {
            if let Some(r) = live.model.predict(u, i) {
                return Some(r);
            }
        }
        let in_model = |x: &&u32| (**x as usize) < self.n_model_items;
        let mut fold: Vec<u32> = history.iter().filter(in_model).copied().collect();
        if u.is_none() {
            let stored = user
                .and_then(|user| self.users.get(user))
                .map_or(&[][..], |cu| self.seen.row(cu as usize));
            fold.extend(stored.iter().filter(in_model));
        }
        if u.is_none() && fold.is_empty() {
            return None;
        }
        let mut out = [f32::NAN];
        live.model.score(
            &UserQuery {
                user: u,
                history: &fold,
            },
            &[i],
            &mut out,
        );
        Some(out[0]).filter(|s| s.is_finite())
    }

    /// A page of a non-personal list (popular, trending, latest) of the default pipeline,
    /// without hidden or unavailable items, meeting `filters`.
    pub fn non_personal(
        &self,
        which: FallbackList,
        filters: &RequestFilters,
        now: i64,
        offset: usize,
        n: usize,
    ) -> Result<Vec<u32>> {
        let Some(pipeline) = self.pipelines.get(DEFAULT_RANK) else {
            return Ok(Vec::new());
        };
        let fallback = pipeline.fallback();
        let order = match which {
            FallbackList::Popular => fallback.popular(),
            FallbackList::Trending => fallback.trending(),
            FallbackList::Latest => fallback.latest(),
        };
        pipeline.filter_order(order, &self.without_erased(filters), now, offset, n)
    }

    /// Distinct users per catalog item (popularity counts).
    pub fn item_users(&self, item: u32) -> u32 {
        self.pipelines
            .get(DEFAULT_RANK)
            .and_then(|p| p.fallback().item_users.get(item as usize).copied())
            .unwrap_or(0)
    }

    /// How many catalog items the live model scores (the first ones).
    pub fn n_model_items(&self) -> usize {
        self.n_model_items
    }
}

/// The kind of a feature column, as the store's dataset mapping makes it from JSON values: one
/// column holds one kind, and a stored value of another kind makes every later catalog build
/// and training run fail, so writes are checked against the kinds already stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeatureKind {
    Categorical,
    Numeric,
    Text,
    /// A dense vector of this dimension.
    Vector(usize),
}

impl FeatureKind {
    /// The kind of every column of `table`.
    pub fn of_table(table: Option<&FeatureTable>) -> BTreeMap<String, FeatureKind> {
        let Some(table) = table else {
            return BTreeMap::new();
        };
        table
            .columns()
            .iter()
            .map(|c| {
                let kind = match &c.data {
                    ColumnData::Categorical { .. } => FeatureKind::Categorical,
                    ColumnData::Numeric(_) => FeatureKind::Numeric,
                    ColumnData::Text(_) => FeatureKind::Text,
                    ColumnData::Dense { dim, .. } => FeatureKind::Vector(*dim),
                };
                (c.name.clone(), kind)
            })
            .collect()
    }

    /// The kind a JSON feature value makes, in the order the store's mapping tests them:
    /// None for `null` (not set), an error for values no column can hold.
    pub fn of_value(value: &Value) -> std::result::Result<Option<FeatureKind>, &'static str> {
        match value {
            Value::Null => Ok(None),
            Value::Bool(_) | Value::Number(_) => Ok(Some(FeatureKind::Numeric)),
            Value::String(_) => Ok(Some(FeatureKind::Text)),
            Value::Array(values) if values.iter().all(Value::is_string) => {
                Ok(Some(FeatureKind::Categorical))
            }
            Value::Array(values) if values.iter().all(Value::is_number) => {
                Ok(Some(FeatureKind::Vector(values.len())))
            }
            Value::Array(_) => Err("a list must hold only strings or only numbers"),
            Value::Object(_) => Err("nested objects are not features"),
        }
    }

    /// How the kind reads in messages.
    pub fn describe(self) -> String {
        match self {
            FeatureKind::Categorical => "a list of strings".into(),
            FeatureKind::Numeric => "a number or boolean".into(),
            FeatureKind::Text => "a string".into(),
            FeatureKind::Vector(dim) => format!("a list of {dim} numbers"),
        }
    }
}

/// The non-personal lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FallbackList {
    Popular,
    Trending,
    Latest,
}

#[cfg(test)]
mod tests {
    use super::*;
    use kindred_core::FeatureValue;
    use serde_json::json;

    #[test]
    fn feature_kinds_of_values_follow_the_store_mapping() {
        let kind = |v: Value| FeatureKind::of_value(&v);
        assert_eq!(kind(json!(null)), Ok(None));
        assert_eq!(kind(json!(true)), Ok(Some(FeatureKind::Numeric)));
        assert_eq!(kind(json!(2.5)), Ok(Some(FeatureKind::Numeric)));
        assert_eq!(kind(json!("x")), Ok(Some(FeatureKind::Text)));
        assert_eq!(kind(json!(["a", "b"])), Ok(Some(FeatureKind::Categorical)));
        // The store reads an empty list as categories (its first list rule).
        assert_eq!(kind(json!([])), Ok(Some(FeatureKind::Categorical)));
        assert_eq!(kind(json!([1, 2.5])), Ok(Some(FeatureKind::Vector(2))));
        assert!(kind(json!(["a", 1])).is_err());
        assert!(kind(json!({ "a": 1 })).is_err());
    }

    #[test]
    fn feature_kinds_of_a_table() {
        let mut table = FeatureTable::new();
        table
            .set("u1", "genres", FeatureValue::Categories(vec!["a".into()]))
            .unwrap();
        table.set("u1", "age", FeatureValue::Number(3.0)).unwrap();
        table
            .set("u1", "emb", FeatureValue::Vector(vec![1.0, 2.0, 3.0]))
            .unwrap();
        table
            .set("u1", "bio", FeatureValue::Text("hi".into()))
            .unwrap();
        let kinds = FeatureKind::of_table(Some(&table));
        assert_eq!(kinds["genres"], FeatureKind::Categorical);
        assert_eq!(kinds["age"], FeatureKind::Numeric);
        assert_eq!(kinds["emb"], FeatureKind::Vector(3));
        assert_eq!(kinds["bio"], FeatureKind::Text);
        assert!(FeatureKind::of_table(None).is_empty());
    }
}
