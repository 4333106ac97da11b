//! The ranking pipeline: the one entry point evaluation (`kindred eval --rank`) and serving call
//! to turn scores into the list a user sees, so offline numbers describe what users get.
//!
//! [`RankPipeline::rank`] runs, for one request and a list of `n`:
//!
//! 1. **Pins.** Each `[[pin]]` (an item, or the best-scored item flagged by a column) that passes
//!    the hard filters takes its fixed position; pins ignore the soft filters (a pin is a
//!    deliberate placement).
//! 2. **Model.** The primary scores' top `candidates` items that pass every filter are rescored
//!    by the freshness stage (new items, impressions, absence; `freshness.rs`) and re-ranked by
//!    the [`Reranker`] (diversity, calibration, popularity penalty) into the head of the list.
//! 3. **Fallback chain.** While the list is short: fold-in / content scores, segment popularity,
//!    trending, global popularity, latest (see `fallback.rs`), each skipping listed items and
//!    items that fail a filter.
//! 4. **Relaxation.** If every source is exhausted and the list is still short, the soft filters
//!    are relaxed in the order `filters.rs` documents and steps 2-3 run again (without the
//!    re-ranker) over the items the relaxation admits; those items' sources say what was relaxed.
//!
//! So a list comes out with min(n, items passing the hard filters) distinct items, and it breaks a
//! soft filter only when the items meeting it are all listed already. Per request the pipeline
//! allocates the list, bit sets of the seen / excluded and listed items, the model's candidate
//! pool and (only with a popularity penalty) the re-ranker's popularity vector; the catalog-wide
//! data is built once in [`RankPipeline::new`].

use std::sync::Arc;

use kindred_core::features::ColumnData;
use kindred_core::topk::top_k_with_tie_key;
use kindred_core::{top_k, Error, FeatureTable, IdMap, Result, Scored};

use crate::config::RankConfig;
use crate::exploration::bandit::{
    self, shown_at, BanditPosterior, Candidate, EncodeRequest, FeatureEncoder, FeatureSpec,
};
use crate::exploration::{GreedyList, ReplayedSlot};
use crate::fallback::{
    item_dates, FallbackCatalog, ItemDateColumn, ItemSource, Source, TrainingLog,
};
use crate::filters::{find_column, ItemFilters, Relaxation, RequestFilters, ResolvedRequest};
use crate::freshness::{Freshness, FreshnessRequest};
use crate::item_set::ItemSet;
use crate::rerank::{item_boosts, log_popularity, ItemCategories, Reranker};
use crate::second_stage::SecondStage;
use kindred_models::ranking::RequestContext;

/// What a pipeline is built from: the catalog's ids and features and the training log.
#[derive(Debug, Clone, Copy)]
pub struct CatalogData<'a> {
    pub item_ids: &'a Arc<IdMap>,
    pub item_features: Option<&'a FeatureTable>,
    pub user_ids: &'a IdMap,
    pub user_features: Option<&'a FeatureTable>,
    /// Training interactions, indexed by `item_ids` / `user_ids`.
    pub train: TrainingLog<'a>,
}

/// Scores over the whole catalog (index = item; NaN: not scored) with the name their items'
/// source carries (`model:<name>`, `fold-in:<name>`).
#[derive(Debug, Clone, Copy)]
pub struct ScoreSource<'a> {
    pub name: &'a str,
    pub scores: &'a [f32],
}

/// One ranking request.
#[derive(Clone, Copy)]
pub struct RankRequest<'a> {
    /// The user's index in the catalog's user ids (None: unknown to training).
    pub user: Option<u32>,
    /// Items the user already has (training and request-time history), any order.
    pub seen: &'a [u32],
    /// The personal model's scores.
    pub primary: Option<ScoreSource<'a>>,
    /// Fold-in or content scores, the first fallback.
    pub secondary: Option<ScoreSource<'a>>,
    /// Request time, Unix seconds (availability windows, `max_age_days`, item age).
    pub now: i64,
    /// The user's last interaction before the request, Unix seconds (freshness: absence).
    pub last_active: Option<i64>,
    /// `(item, times shown to this user without a click)` (freshness: impression decay).
    pub impressions: &'a [(u32, u32)],
    pub filters: &'a RequestFilters,
    /// The user's value of the segment column when the user is unknown to training.
    pub segment: Option<&'a str>,
    /// Hard: rank only these items (index = item), e.g. a cold-start protocol's candidates.
    pub candidates: Option<&'a [bool]>,
    /// Breaks ties of the primary scores by this key before the item index (cold-start
    /// evaluation, where ties by index would leak popularity).
    pub tie_key: Option<&'a (dyn Fn(u32) -> u64 + Sync)>,
    /// When and where the request happens (hour, weekday, device) for the learned second
    /// stage; None: `now` with no key/value entries.
    pub context: Option<&'a RequestContext>,
    /// Seeds the `[exploration]` draw of this list (serving: the config's seed mixed with the
    /// request id). None: the list is the ranking's own order, whatever the config says.
    pub exploration_seed: Option<u64>,
    /// What a contextual bandit `[exploration]` has learned so far; None: its prior.
    pub bandit: Option<&'a BanditPosterior>,
}

static NO_FILTERS: RequestFilters = RequestFilters {
    categories: Vec::new(),
    exclude: Vec::new(),
};

impl<'a> RankRequest<'a> {
    /// A request with nothing but the request time: unknown user, no scores, no filters.
    pub fn new(now: i64) -> Self {
        Self {
            user: None,
            seen: &[],
            primary: None,
            secondary: None,
            now,
            last_active: None,
            impressions: &[],
            filters: &NO_FILTERS,
            segment: None,
            candidates: None,
            tie_key: None,
            context: None,
            exploration_seed: None,
            bandit: None,
        }
    }
}

/// One item of a final list.
#[derive(Debug, Clone, PartialEq)]
pub struct RankedItem {
    pub item: u32,
    /// The primary model's score of the item (NaN when it gave none).
    pub score: f32,
    pub source: ItemSource,
    /// `P(this item here | items above it)` under the config's exploration (1 without it).
    pub propensity: f64,
    /// True when exploration put the item here instead of the ranking's choice.
    pub explored: bool,
    /// A contextual bandit's feature row of the item as shown, its `position` feature set to
    /// the slot it is in (what the bandit learns from when the item is clicked or not); empty
    /// unless a bandit filled the list.
    pub features: Vec<f64>,
}

/// A pin resolved against the catalog.
#[derive(Debug, Clone)]
enum Pin {
    Item {
        item: u32,
        position: usize,
    },
    /// The best-scored (else most popular) of these flagged items.
    Flagged {
        items: Vec<u32>,
        position: usize,
    },
}

/// The configured ranking layer for one catalog and training set.
pub struct RankPipeline {
    config: RankConfig,
    categories: ItemCategories,
    filters: ItemFilters,
    fallback: FallbackCatalog,
    /// Sorted by position.
    pins: Vec<Pin>,
    n_items: usize,
    /// Item dates (Unix seconds, NaN unknown) for freshness; empty unless it is active.
    item_dates: Vec<f64>,
    /// Per item, log-popularity in [0, 1] (popularity penalty, freshness absence decay).
    log_popularity: Vec<f64>,
    /// Per item: the weighted `[[objectives.boost]]` columns (empty: none).
    boost: Vec<f64>,
    /// The learned second stage re-scoring the model's pool, when one is attached.
    second_stage: Option<SecondStage>,
    /// `config.reorders_pool()`, once.
    reorders_pool: bool,
    /// The contextual bandit's feature encoder, when `[exploration]` is one.
    bandit: Option<FeatureEncoder>,
}

impl RankPipeline {
    /// Precomputes filters, re-ranker categories, pins and fallback orders. Errors name the
    /// config key at fault and what the catalog has instead.
    pub fn new(config: RankConfig, data: CatalogData<'_>) -> Result<Self> {
        let item_ids = data.item_ids.as_ref();
        let n_items = item_ids.len();
        let bandit = if config.exploration.policy.is_bandit() {
            let spec = FeatureSpec::parse(&config.exploration.feature_names()).map_err(|e| {
                Error::InvalidInput(format!("rank config: exploration.features: {e}"))
            })?;
            Some(FeatureEncoder::new(
                spec,
                item_ids,
                data.item_features,
                data.user_ids,
                data.user_features,
            )?)
        } else {
            None
        };
        let bandit_categories = bandit.as_ref().is_some_and(|b| b.spec().needs_categories());
        let categories = if config.needs_categories() || bandit_categories {
            let features = data.item_features.ok_or_else(|| {
                Error::InvalidInput(
                    "rank config: diversity and calibration need item category features, and \
                     the dataset has no item features"
                        .to_owned(),
                )
            })?;
            ItemCategories::from_features(features, item_ids, config.category_column.as_deref())?
        } else {
            ItemCategories::default()
        };
        let filters = ItemFilters::new(
            &config.filters,
            config.category_column.as_deref(),
            Arc::clone(data.item_ids),
            data.item_features,
        )?;
        let fallback = FallbackCatalog::new(
            &config.fallback,
            data.train,
            item_ids,
            data.item_features,
            data.user_ids,
            data.user_features,
        )?;
        let mut pins = Vec::with_capacity(config.pins.len());
        for (n, pin) in config.pins.iter().enumerate() {
            let position = pin.position;
            if let Some(id) = &pin.item {
                let item = item_ids.get(id).ok_or_else(|| {
                    Error::InvalidInput(format!(
                        "rank config: pin {} (position {position}): item `{id}` is not in the catalog",
                        n + 1
                    ))
                })?;
                pins.push(Pin::Item { item, position });
            } else if let Some(column) = &pin.column {
                let data_col = find_column(data.item_features, "pin.column", column)?;
                let ColumnData::Numeric(values) = data_col else {
                    return Err(Error::InvalidInput(format!(
                        "rank config: pin.column `{column}` is not a numeric item feature"
                    )));
                };
                let rows = data
                    .item_features
                    .map(|f| f.align(item_ids))
                    .unwrap_or_default();
                let items = (0..n_items as u32)
                    .filter(|&i| {
                        rows[i as usize].is_some_and(|r| {
                            let v = values[r as usize];
                            v != 0.0 && !v.is_nan()
                        })
                    })
                    .collect();
                pins.push(Pin::Flagged { items, position });
            }
        }
        pins.sort_by_key(|p| match p {
            Pin::Item { position, .. } | Pin::Flagged { position, .. } => *position,
        });
        let item_dates = if config.freshness.is_active() {
            let column = config
                .freshness
                .item_date_column
                .as_deref()
                .map(|name| ItemDateColumn {
                    key: "freshness.item_date_column",
                    name,
                    unit: config.freshness.item_date_unit,
                });
            item_dates(data.train, item_ids, data.item_features, column)?
        } else {
            Vec::new()
        };
        let log_popularity = log_popularity(&fallback.item_users);
        let config_reorders = config.reorders_pool();
        let boost = if config.objectives.boost.is_empty() {
            Vec::new()
        } else {
            item_boosts(data.item_features, item_ids, &config.objectives.boost)?
        };
        Ok(Self {
            config,
            categories,
            filters,
            fallback,
            pins,
            n_items,
            item_dates,
            log_popularity,
            boost,
            second_stage: None,
            reorders_pool: config_reorders,
            bandit,
        })
    }

    /// Attaches a trained second stage (see [`SecondStage::fit`] and `[second_stage]`): it
    /// re-scores the model's pool before freshness and re-ranking.
    pub fn with_second_stage(mut self, stage: SecondStage) -> Self {
        self.second_stage = Some(stage);
        self
    }

    /// The config the pipeline was built from.
    pub fn config(&self) -> &RankConfig {
        &self.config
    }

    /// The fallback orders (and distinct users per item).
    pub fn fallback(&self) -> &FallbackCatalog {
        &self.fallback
    }

    /// A non-personal order (`fallback().popular()`, `trending()`, `latest()`) cut to the page
    /// `offset..offset+n` of the items that pass the hard filters at `now` (hidden,
    /// availability, request excludes) and meet every soft one (categories, date window).
    pub fn filter_order(
        &self,
        order: &[u32],
        filters: &RequestFilters,
        now: i64,
        offset: usize,
        n: usize,
    ) -> Result<Vec<u32>> {
        let resolved = self.filters.resolve(&[], filters, now, None)?;
        Ok(order
            .iter()
            .copied()
            .filter(|&i| resolved.passes_hard(i) && resolved.soft_level(i) == 0)
            .skip(offset)
            .take(n)
            .collect())
    }

    /// The list of up to `n` distinct items for `request`, best first, each with its source;
    /// with an exploration seed, filled by the `[exploration]` policy (see `exploration/`).
    /// Errors only on request filters naming unknown categories.
    pub fn rank(&self, request: &RankRequest<'_>, n: usize) -> Result<Vec<RankedItem>> {
        let exploration = &self.config.exploration;
        let Some(seed) = request.exploration_seed.filter(|_| exploration.explores()) else {
            return self.rank_greedy(request, &self.resolve(request)?, n);
        };
        let greedy = self.exploration_pool(request, n)?;
        let (items, pinned) = Self::greedy_list(&greedy);
        let list = GreedyList {
            items: &items,
            pinned: &pinned,
        };
        let Some(encoder) = &self.bandit else {
            return Ok(exploration
                .fill(list, n, seed)
                .into_iter()
                .map(|slot| RankedItem {
                    propensity: slot.propensity,
                    explored: slot.explored,
                    ..greedy[slot.index].clone()
                })
                .collect());
        };
        let rows = self.bandit_rows(encoder, request, &greedy);
        let scores = self.bandit_scores(request, &rows, &items, seed);
        let dim = encoder.dim();
        Ok(exploration
            .fill_with(list, n, seed, scores.preference())
            .into_iter()
            .enumerate()
            .map(|(position, slot)| RankedItem {
                propensity: slot.propensity,
                explored: slot.explored,
                features: shown_at(
                    encoder.spec(),
                    &rows[slot.index * dim..(slot.index + 1) * dim],
                    position,
                ),
                ..greedy[slot.index].clone()
            })
            .collect())
    }

    /// For a list another policy logged (`shown`, items in position order), the probability
    /// that this pipeline, under its `[exploration]` config, shows each item in its position
    /// given the logged items above it, and its expectation of `value(item, position)` there:
    /// what off-policy evaluation of this pipeline reads (see `ExplorationConfig::replay`). A
    /// bandit is replayed as `request.bandit` has it (frozen), with the request's seed.
    pub fn replay(
        &self,
        request: &RankRequest<'_>,
        shown: &[u32],
        value: &dyn Fn(u32, usize) -> f64,
    ) -> Result<Vec<ReplayedSlot>> {
        let exploration = &self.config.exploration;
        let greedy = if exploration.explores() {
            self.exploration_pool(request, shown.len())?
        } else {
            self.rank_greedy(request, &self.resolve(request)?, shown.len())?
        };
        let (items, pinned) = Self::greedy_list(&greedy);
        let list = GreedyList {
            items: &items,
            pinned: &pinned,
        };
        let Some(encoder) = self.bandit.as_ref().filter(|_| exploration.explores()) else {
            return Ok(exploration.replay(list, shown, value));
        };
        let rows = self.bandit_rows(encoder, request, &greedy);
        let seed = request.exploration_seed.unwrap_or(exploration.seed);
        let scores = self.bandit_scores(request, &rows, &items, seed);
        Ok(exploration.replay_with(list, shown, value, scores.preference()))
    }

    /// What exploration draws from: the ranking's list run `pool` items long, and for a
    /// bandit up to `new_items` of the newest items the model does not score.
    fn exploration_pool(&self, request: &RankRequest<'_>, n: usize) -> Result<Vec<RankedItem>> {
        let exploration = &self.config.exploration;
        // Resolved once: the pool's ranking and its new items read the same filters.
        let resolved = self.resolve(request)?;
        let mut list = self.rank_greedy(request, &resolved, n.saturating_add(exploration.pool))?;
        let wanted = if self.bandit.is_some() {
            exploration.new_items
        } else {
            0
        };
        if wanted == 0 {
            return Ok(list);
        }
        let mut taken = ItemSet::with_items(self.n_items);
        list.iter().for_each(|r| {
            taken.insert(r.item);
        });
        let scored = |item: u32| {
            request
                .primary
                .and_then(|p| p.scores.get(item as usize))
                .is_some_and(|s| s.is_finite())
        };
        let newest = self
            .fallback
            .latest()
            .iter()
            .copied()
            .filter(|&i| {
                !taken.contains(i)
                    && !scored(i)
                    && resolved.passes_hard(i)
                    && resolved.soft_level(i) == 0
            })
            .take(wanted);
        let source = ItemSource {
            source: Source::Latest,
            relaxed: None,
        };
        let newest: Vec<RankedItem> = newest
            .map(|item| RankedItem {
                item,
                score: f32::NAN,
                source: source.clone(),
                propensity: 1.0,
                explored: false,
                features: Vec::new(),
            })
            .collect();
        list.extend(newest);
        Ok(list)
    }

    /// The bandit's feature rows of a pool, one per item in order.
    fn bandit_rows(
        &self,
        encoder: &FeatureEncoder,
        request: &RankRequest<'_>,
        pool: &[RankedItem],
    ) -> Vec<f64> {
        let candidates: Vec<Candidate> = pool
            .iter()
            .enumerate()
            .map(|(position, r)| Candidate {
                item: r.item,
                score: r.score,
                position,
            })
            .collect();
        let encode = EncodeRequest {
            user: request.user,
            seen: request.seen,
            now: request.now,
            context: request.context,
        };
        encoder.encode(&encode, &candidates, &self.log_popularity, &self.categories)
    }

    /// The bandit's scores of a pool under the request's posterior (else the prior).
    fn bandit_scores(
        &self,
        request: &RankRequest<'_>,
        rows: &[f64],
        items: &[u32],
        seed: u64,
    ) -> bandit::PoolScores {
        let exploration = &self.config.exploration;
        let dim = self.bandit.as_ref().map_or(0, FeatureEncoder::dim);
        let prior;
        let posterior = match request.bandit.filter(|p| p.dim() == dim) {
            Some(p) => p,
            None => {
                prior = BanditPosterior::prior(dim, exploration.ridge);
                &prior
            }
        };
        bandit::preference(exploration, posterior, rows, items, seed)
    }

    /// The contextual bandit's feature encoder, when the config's exploration is one.
    pub fn bandit_encoder(&self) -> Option<&FeatureEncoder> {
        self.bandit.as_ref()
    }

    /// The items of a ranked list and which positions pins hold.
    fn greedy_list(list: &[RankedItem]) -> (Vec<u32>, Vec<bool>) {
        list.iter()
            .map(|r| (r.item, r.source.source == Source::Pinned))
            .unzip()
    }

    /// The request's filters resolved against the catalog.
    fn resolve<'r>(&'r self, request: &'r RankRequest<'_>) -> Result<ResolvedRequest<'r>> {
        self.filters.resolve(
            request.seen,
            request.filters,
            request.now,
            request.candidates,
        )
    }

    /// The ranking's own list: filters, pins, re-ranking and the fallback chain, no exploration.
    fn rank_greedy(
        &self,
        request: &RankRequest<'_>,
        resolved: &ResolvedRequest<'_>,
        n: usize,
    ) -> Result<Vec<RankedItem>> {
        let primary_score = |item: u32| {
            request
                .primary
                .and_then(|p| p.scores.get(item as usize).copied())
                .unwrap_or(f32::NAN)
        };
        let pinned = self.resolve_pins(resolved, request, n);
        let want = n - pinned.len();
        let mut list = List {
            items: Vec::with_capacity(n),
            taken: {
                let mut taken = ItemSet::with_items(self.n_items);
                pinned.iter().for_each(|p| {
                    taken.insert(p.1);
                });
                taken
            },
            want,
        };
        for level in 0..=resolved.max_level() {
            if list.full() {
                break;
            }
            let allowed = |i: u32| resolved.passes_hard(i) && resolved.soft_level(i) <= level;
            let relaxed = |i: u32| Relaxation::of_level(resolved.soft_level(i));
            if let Some(primary) = request.primary {
                let mut pool = self.select(primary.scores, &list, &allowed, request.tie_key, level);
                if level == 0 {
                    // Only the strict round is re-ranked: it is where the model's list is made;
                    // later rounds only fill what relaxation admits.
                    if let Some(stage) = &self.second_stage {
                        let at_now = RequestContext {
                            timestamp: Some(request.now),
                            entries: Vec::new(),
                        };
                        let context = request.context.unwrap_or(&at_now);
                        pool = stage.rescore(request.user, context, &pool);
                    }
                    self.refresh(&mut pool, request);
                    pool = self.rerank(&pool, request, list.remaining());
                }
                let source = Source::Model(Arc::from(primary.name));
                for s in pool {
                    list.push(s.item, primary_score(s.item), &source, relaxed(s.item));
                }
            }
            if let Some(secondary) = request.secondary {
                let pool = self.select(secondary.scores, &list, &allowed, None, level);
                let source = Source::FoldIn(Arc::from(secondary.name));
                for s in pool {
                    list.push(s.item, primary_score(s.item), &source, relaxed(s.item));
                }
            }
            let segment = self
                .fallback
                .segment_of(request.user, request.segment)
                .and_then(|s| self.fallback.segment(s));
            let stages = [
                segment,
                Some((Source::Trending, self.fallback.trending())),
                Some((Source::Popular, self.fallback.popular())),
                Some((Source::Latest, self.fallback.latest())),
            ];
            for (source, order) in stages.into_iter().flatten() {
                for &item in order {
                    if list.full() {
                        break;
                    }
                    if !list.taken.contains(item) && allowed(item) {
                        list.push(item, primary_score(item), &source, relaxed(item));
                    }
                }
            }
        }
        let mut items = list.items;
        for (position, item) in pinned {
            let at = position.min(items.len());
            items.insert(
                at,
                RankedItem {
                    item,
                    score: primary_score(item),
                    source: ItemSource {
                        source: Source::Pinned,
                        relaxed: None,
                    },
                    propensity: 1.0,
                    explored: false,
                    features: Vec::new(),
                },
            );
        }
        Ok(items)
    }

    /// The pins that apply to this request and list length: (0-based position, item), by
    /// position, each passing the hard filters and distinct.
    fn resolve_pins(
        &self,
        resolved: &ResolvedRequest<'_>,
        request: &RankRequest<'_>,
        n: usize,
    ) -> Vec<(usize, u32)> {
        let mut out: Vec<(usize, u32)> = Vec::new();
        for pin in &self.pins {
            let free = |i: u32| resolved.passes_hard(i) && out.iter().all(|p| p.1 != i);
            let (position, item) = match pin {
                Pin::Item { item, position } => (*position, free(*item).then_some(*item)),
                Pin::Flagged { items, position } => {
                    // Best by primary score; items it did not score rank by popularity below.
                    let key = |i: u32| {
                        let s = request
                            .primary
                            .and_then(|p| p.scores.get(i as usize).copied())
                            .filter(|s| !s.is_nan());
                        let users = self.fallback.item_users.get(i as usize).copied();
                        (s.is_some(), s.unwrap_or(0.0), users.unwrap_or(0))
                    };
                    let best = items.iter().copied().filter(|&i| free(i)).max_by(|&a, &b| {
                        key(a)
                            .partial_cmp(&key(b))
                            .unwrap_or(std::cmp::Ordering::Equal)
                            // Equal keys: the lower index wins.
                            .then(b.cmp(&a))
                    });
                    (*position, best)
                }
            };
            if let (Some(item), true) = (item, position <= n) {
                out.push((position - 1, item));
            }
        }
        out
    }

    /// The best items of `scores` (NaN never) that are allowed and not listed yet: the pool the
    /// re-ranker draws from in the strict round, just what is missing in later rounds.
    fn select(
        &self,
        scores: &[f32],
        list: &List,
        allowed: &dyn Fn(u32) -> bool,
        tie_key: Option<&(dyn Fn(u32) -> u64 + Sync)>,
        level: u8,
    ) -> Vec<Scored> {
        let need = list.remaining();
        if need == 0 {
            return Vec::new();
        }
        let k = if level == 0 && (self.reorders_pool || self.second_stage.is_some()) {
            self.config.candidates.max(need)
        } else {
            need
        };
        let skip = |i: u32| list.taken.contains(i) || !allowed(i);
        let scores = &scores[..scores.len().min(self.n_items)];
        match tie_key {
            None => top_k(scores, k, skip),
            Some(key) => {
                // Same total order as `top_k_with_tie_key`, over the allowed items only.
                let masked: Vec<f32> = scores
                    .iter()
                    .enumerate()
                    .map(|(i, &s)| if skip(i as u32) { f32::NAN } else { s })
                    .collect();
                top_k_with_tie_key(&masked, k, key)
            }
        }
    }

    /// The freshness stage over the model's pool (a no-op unless `[freshness]` is active).
    fn refresh(&self, pool: &mut [Scored], request: &RankRequest<'_>) {
        if self.config.freshness.is_active() {
            let freshness = Freshness::new(
                &self.config.freshness,
                &self.item_dates,
                &self.log_popularity,
            );
            let context = FreshnessRequest {
                now: Some(request.now),
                last_active: request.last_active,
                impressions: request.impressions,
            };
            freshness.apply(pool, &context);
        }
    }

    /// The configured re-ranker over `pool` into a list of `k`.
    fn rerank(&self, pool: &[Scored], request: &RankRequest<'_>, k: usize) -> Vec<Scored> {
        let reranker = Reranker::new(&self.config, &self.categories, &self.log_popularity)
            .with_boost(&self.boost);
        let target = reranker.target(request.seen.iter().copied());
        reranker.rerank(pool, k, &target)
    }
}

/// The list being filled (pins aside).
struct List {
    items: Vec<RankedItem>,
    taken: ItemSet,
    want: usize,
}

impl List {
    fn full(&self) -> bool {
        self.items.len() >= self.want
    }

    fn remaining(&self) -> usize {
        self.want.saturating_sub(self.items.len())
    }

    fn push(&mut self, item: u32, score: f32, source: &Source, relaxed: Option<Relaxation>) {
        if !self.full() && self.taken.insert(item) {
            self.items.push(RankedItem {
                item,
                score,
                source: ItemSource {
                    source: source.clone(),
                    relaxed,
                },
                propensity: 1.0,
                explored: false,
                features: Vec::new(),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{FallbackConfig, FiltersConfig, PinConfig};
    use kindred_core::FeatureValue;

    /// Items a..f with genres; users u0 (writer), u1 (artist). Training: u0 has a, b; u1 has
    /// a, c, d. So popularity: a (2), b, c, d (1 each), e and f none.
    fn pipeline(config: RankConfig) -> RankPipeline {
        let mut items = IdMap::new();
        let mut f = FeatureTable::new();
        let genres = [
            ("a", "Drama"),
            ("b", "Comedy"),
            ("c", "Drama"),
            ("d", "Horror"),
            ("e", "Comedy"),
            ("f", "Drama"),
        ];
        for (id, g) in genres {
            items.intern(id);
            f.set(id, "genres", FeatureValue::Categories(vec![g.into()]))
                .unwrap();
            let promo = if id == "e" || id == "f" { 1.0 } else { 0.0 };
            f.set(id, "promo", FeatureValue::Number(promo)).unwrap();
        }
        let mut users = IdMap::new();
        let mut uf = FeatureTable::new();
        for (u, job) in [("u0", "writer"), ("u1", "artist")] {
            users.intern(u);
            uf.set(u, "occupation", FeatureValue::Categories(vec![job.into()]))
                .unwrap();
        }
        let items = Arc::new(items);
        RankPipeline::new(
            config,
            CatalogData {
                item_ids: &items,
                item_features: Some(&f),
                user_ids: &users,
                user_features: Some(&uf),
                train: TrainingLog {
                    users: &[0, 0, 1, 1, 1],
                    items: &[0, 1, 0, 2, 3],
                    timestamps: &[10, 20, 30, 40, 50],
                },
            },
        )
        .unwrap()
    }

    fn labels(list: &[RankedItem]) -> Vec<(u32, String)> {
        list.iter()
            .map(|r| (r.item, r.source.to_string()))
            .collect()
    }

    #[test]
    fn a_plain_config_selects_only_what_the_list_needs_in_model_order() {
        assert!(!RankConfig::default().reorders_pool());
        let mut mmr = RankConfig::default();
        mmr.diversity.mmr_lambda = 0.3;
        assert!(mmr.reorders_pool());
        // With ties (c = e) and a candidate pool of 1, the plain list is the model's order
        // (ties by lower index) and the same as a zero-weight re-ranker over a full pool.
        let scores = [5.0, 4.0, 3.0, 2.0, 3.0, 1.5];
        let request = RankRequest {
            user: Some(0),
            seen: &[0, 1],
            primary: Some(ScoreSource {
                name: "m",
                scores: &scores,
            }),
            ..RankRequest::new(100)
        };
        let plain = pipeline(RankConfig {
            candidates: 1,
            ..Default::default()
        });
        let mut zero_mmr = RankConfig::default();
        zero_mmr.diversity.mmr_lambda = 1e-12;
        let reranked = pipeline(zero_mmr);
        let a = plain.rank(&request, 4).unwrap();
        assert_eq!(
            a.iter().map(|r| r.item).collect::<Vec<_>>(),
            vec![2, 4, 3, 5]
        );
        assert_eq!(labels(&a), labels(&reranked.rank(&request, 4).unwrap()));
    }

    #[test]
    fn objectives_boost_reaches_the_pipelines_reranker() {
        // u0 has seen a, b. Pool c (3), d (2), f (1.5), e (1): relevance 1, 0.5, 0.25, 0. The
        // promo column is 1 for e and f: weight 0.6 gives c 1, f 0.85, e 0.6, d 0.5.
        let config = RankConfig {
            objectives: crate::config::ObjectivesConfig {
                boost: vec![crate::config::BoostConfig {
                    column: "promo".into(),
                    weight: 0.6,
                }],
                ..Default::default()
            },
            ..Default::default()
        };
        let p = pipeline(config);
        let scores = [5.0, 4.0, 3.0, 2.0, 1.0, 1.5];
        let request = RankRequest {
            user: Some(0),
            seen: &[0, 1],
            primary: Some(ScoreSource {
                name: "m",
                scores: &scores,
            }),
            ..RankRequest::new(100)
        };
        let items: Vec<u32> = p
            .rank(&request, 4)
            .unwrap()
            .iter()
            .map(|r| r.item)
            .collect();
        assert_eq!(items, vec![2, 5, 4, 3]);
    }

    #[test]
    fn known_user_model_then_segment_then_trending_then_latest() {
        let p = pipeline(RankConfig {
            category_column: Some("genres".into()),
            fallback: FallbackConfig {
                segment_column: Some("occupation".into()),
                ..FallbackConfig::default()
            },
            ..RankConfig::default()
        });
        // u0 has seen a, b. The model scores only e (NaN elsewhere).
        let scores = [f32::NAN, f32::NAN, f32::NAN, f32::NAN, 2.0, f32::NAN];
        let request = RankRequest {
            user: Some(0),
            seen: &[0, 1],
            primary: Some(ScoreSource {
                name: "als",
                scores: &scores,
            }),
            ..RankRequest::new(100)
        };
        let out = p.rank(&request, 4).unwrap();
        // Writers' segment (u0: a, b) has nothing unseen; trending (relative to t=50, half-life
        // 7 days: d at 50, c at 40 and a...) gives d then c; latest (first interaction) has f
        // never seen, after the dated items.
        assert_eq!(
            labels(&out),
            vec![
                (4, "model:als".into()),
                (3, "trending".into()),
                (2, "trending".into()),
                (5, "latest".into()),
            ]
        );
        assert_eq!(out[0].score, 2.0);
        assert!(out[1].score.is_nan());
    }

    #[test]
    fn unknown_user_gets_the_segment_they_name_then_popularity() {
        let p = pipeline(RankConfig {
            fallback: FallbackConfig {
                segment_column: Some("occupation".into()),
                ..FallbackConfig::default()
            },
            ..RankConfig::default()
        });
        let request = RankRequest {
            segment: Some("artist"),
            ..RankRequest::new(100)
        };
        let out = p.rank(&request, 6).unwrap();
        // Artists (u1) had a, c, d (one each, index order); then trending adds b; latest e, f.
        let got = labels(&out);
        assert_eq!(got[0], (0, "segment:occupation=artist".into()));
        assert_eq!(got[1], (2, "segment:occupation=artist".into()));
        assert_eq!(got[2], (3, "segment:occupation=artist".into()));
        assert_eq!(got[3], (1, "trending".into()));
        assert_eq!(got[4], (4, "latest".into()));
        assert_eq!(got[5], (5, "latest".into()));
        // Everything seen: nothing passes the hard filters, so the list is empty, not padded.
        let all = [0, 1, 2, 3, 4, 5];
        let request = RankRequest {
            seen: &all,
            ..RankRequest::new(100)
        };
        assert!(p.rank(&request, 3).unwrap().is_empty());
    }

    #[test]
    fn soft_filters_relax_in_order_and_say_so() {
        let p = pipeline(RankConfig {
            category_column: Some("genres".into()),
            filters: FiltersConfig {
                exclude_categories: vec!["Horror".into()],
                ..FiltersConfig::default()
            },
            ..RankConfig::default()
        });
        let comedy = RequestFilters::parse_query("category=Comedy&exclude=b").unwrap();
        let scores = [5.0, 4.0, 3.0, 2.0, 1.0, 0.0];
        let request = RankRequest {
            primary: Some(ScoreSource {
                name: "m",
                scores: &scores,
            }),
            filters: &comedy,
            ..RankRequest::new(100)
        };
        let out = p.rank(&request, 5).unwrap();
        // b is excluded (hard). Comedy: only e. Then the includes relax (a, c, f by score),
        // and only then the Horror exclusion (d).
        assert_eq!(
            labels(&out),
            vec![
                (4, "model:m".into()),
                (0, "relaxed:include_categories:model:m".into()),
                (2, "relaxed:include_categories:model:m".into()),
                (5, "relaxed:include_categories:model:m".into()),
                (3, "relaxed:exclude_categories:model:m".into()),
            ]
        );
    }

    #[test]
    fn pins_take_their_positions_when_they_pass_the_hard_filters() {
        let p = pipeline(RankConfig {
            pins: vec![
                PinConfig {
                    item: Some("d".into()),
                    column: None,
                    position: 1,
                },
                PinConfig {
                    item: None,
                    column: Some("promo".into()),
                    position: 3,
                },
            ],
            ..RankConfig::default()
        });
        // Promoted: e and f; the model scores f higher, so f is pinned at 3.
        let scores = [5.0, 4.0, 3.0, 2.0, 1.0, 1.5];
        let request = RankRequest {
            primary: Some(ScoreSource {
                name: "m",
                scores: &scores,
            }),
            ..RankRequest::new(100)
        };
        let out = p.rank(&request, 4).unwrap();
        assert_eq!(
            labels(&out),
            vec![
                (3, "pinned".into()),
                (0, "model:m".into()),
                (5, "pinned".into()),
                (1, "model:m".into()),
            ]
        );
        // d seen: its pin is dropped and the list is the model's.
        let request = RankRequest {
            seen: &[3],
            ..request
        };
        let out = p.rank(&request, 2).unwrap();
        assert_eq!(
            labels(&out),
            vec![(0, "model:m".into()), (1, "model:m".into())]
        );
    }

    #[test]
    fn exploration_leaves_pins_in_place_and_replays_its_own_propensities() {
        use crate::exploration::{ExplorationConfig, ExplorationKind};
        let p = pipeline(RankConfig {
            pins: vec![PinConfig {
                item: Some("d".into()),
                column: None,
                position: 2,
            }],
            exploration: ExplorationConfig {
                policy: ExplorationKind::EpsilonGreedy,
                epsilon: 1.0,
                max_explored: 1,
                pool: 3,
                ..ExplorationConfig::default()
            },
            ..RankConfig::default()
        });
        let scores = [5.0, 4.0, 3.0, 2.0, 1.0, 1.5];
        let greedy = RankRequest {
            primary: Some(ScoreSource {
                name: "m",
                scores: &scores,
            }),
            ..RankRequest::new(100)
        };
        // No seed: the ranking's own list, whatever the config says.
        let plain = p.rank(&greedy, 3).unwrap();
        assert_eq!(labels(&plain)[1], (3, "pinned".into()));
        assert!(plain.iter().all(|r| r.propensity == 1.0 && !r.explored));
        let mut explored_somewhere = false;
        for seed in 0..50 {
            let request = RankRequest {
                exploration_seed: Some(seed),
                ..greedy
            };
            let out = p.rank(&request, 3).unwrap();
            assert_eq!(out.len(), 3);
            assert_eq!(out[1].item, 3, "the pin stays at position 2");
            assert!(out.iter().filter(|r| r.explored).count() <= 1);
            explored_somewhere |= out.iter().any(|r| r.explored);
            let shown: Vec<u32> = out.iter().map(|r| r.item).collect();
            let replayed: Vec<f64> = p
                .replay(&greedy, &shown, &|_, _| 0.0)
                .unwrap()
                .iter()
                .map(|s| s.probability)
                .collect();
            let logged: Vec<f64> = out.iter().map(|r| r.propensity).collect();
            assert_eq!(replayed, logged, "seed {seed}");
        }
        assert!(explored_somewhere);
    }

    #[test]
    fn a_bandit_list_carries_each_row_as_shown_at_its_slot() {
        use crate::exploration::{BanditPosterior, ExplorationConfig, ExplorationKind};
        let p = pipeline(RankConfig {
            exploration: ExplorationConfig {
                policy: ExplorationKind::Linucb,
                features: Some(vec!["bias".into(), "score".into(), "position".into()]),
                slots: Some([1, 3]),
                pool: 3,
                ..ExplorationConfig::default()
            },
            ..RankConfig::default()
        });
        let scores = [5.0, 4.0, 3.0, 2.0, 1.0, 1.5];
        let posterior = BanditPosterior::prior(3, 1.0);
        let request = RankRequest {
            primary: Some(ScoreSource {
                name: "m",
                scores: &scores,
            }),
            exploration_seed: Some(7),
            bandit: Some(&posterior),
            ..RankRequest::new(100)
        };
        let out = p.rank(&request, 3).unwrap();
        assert_eq!(out.len(), 3);
        for (slot, item) in out.iter().enumerate() {
            assert_eq!(item.features.len(), 3);
            assert_eq!(item.features[0], 1.0);
            assert_eq!(item.features[2], 1.0 / (1.0 + slot as f64), "slot {slot}");
        }
    }

    #[test]
    fn unknown_pin_item_is_a_build_error() {
        let mut items = IdMap::new();
        items.intern("a");
        let items = Arc::new(items);
        let config = RankConfig {
            pins: vec![PinConfig {
                item: Some("zz".into()),
                column: None,
                position: 2,
            }],
            ..RankConfig::default()
        };
        let data = CatalogData {
            item_ids: &items,
            item_features: None,
            user_ids: &IdMap::new(),
            user_features: None,
            train: TrainingLog {
                users: &[],
                items: &[],
                timestamps: &[],
            },
        };
        let err = RankPipeline::new(config, data).err().map(|e| e.to_string());
        let err = err.unwrap_or_default();
        assert!(err.contains("item `zz` is not in the catalog"), "{err}");
    }
}
