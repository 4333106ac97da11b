//! The evaluation runner: prepares the protocol's splits, fits each model on each training set,
//! scores the test set and aggregates metrics over folds.
//!
//! Ranking evaluation follows the protocol exactly: recommendations exclude the user's training
//! items, relevance is binary, metrics are macro-averaged over users with at least one test item.
//! Test items the user already has in training can never be recommended, so they are not counted
//! as relevant.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use kindred_core::rng::{mix64, pair_key};
use kindred_core::split::Split;
use kindred_core::topk::top_k_with_tie_key;
use kindred_core::{
    top_k, CancelFlag, Dataset, Error, FitContext, NoProgress, Progress, Protocol, Result, Scored,
    TrainSet,
};
use kindred_models::{registry::resolve_preset, Model, UserQuery};
use kindred_rank::{
    CatalogData, RankConfig, RankPipeline, RankRequest, RequestContext, ScoreSource, SecondStage,
    TrainingLog,
};
use rayon::prelude::*;

use crate::auto::build_algorithm_for;
use crate::export::write_recs_file;
use crate::metrics::{self, UserRanking};
use crate::report::{
    Comparison, DatasetSummary, EpochPoint, EvalReport, FoldResult, ModelResult, PerUnit,
    PopularityBias,
};
use crate::segments::{self, PredictedPair, RankedUser, Segments};
use crate::stats::{self, Aggregate, Strata};

/// Knobs of one evaluation run.
#[derive(Clone)]
pub struct EvalOptions {
    /// Cut-off of the ranking metrics.
    pub k: usize,
    /// Seed handed to model fitting.
    pub seed: u64,
    pub threads: usize,
    pub progress: Arc<dyn Progress>,
    pub cancel: CancelFlag,
    /// Compute per-segment breakdowns.
    pub segments: bool,
    /// Compute per-user AUC over all candidates (costs one sort per user).
    pub auc: bool,
    /// Write the exact top-K lists of single-split protocols here (one file per model; with
    /// several models the model's position and name are added before the extension).
    pub export_recs: Option<PathBuf>,
    /// Bootstrap resamples behind confidence intervals and paired comparisons (0: none).
    pub bootstrap: usize,
    /// Ranking protocols: compute metric@K curves for K = 1..=curve_k (0: none).
    pub curve_k: usize,
    /// Evaluate only the first this many folds of the protocol (None: all).
    pub max_folds: Option<usize>,
    /// Ranking protocols: run every user's list through the ranking pipeline of this config
    /// (`kindred_rank::RankPipeline`: filters, re-ranking of the top `candidates`, pins, the
    /// fallback chain) before any metric is computed, so every list metric describes the lists
    /// users would get. A user's request time is their first test interaction ("when they come
    /// back"; the fold's newest training interaction for users without a timestamped one).
    pub rank: Option<Arc<RankConfig>>,
}

impl Default for EvalOptions {
    fn default() -> Self {
        Self {
            k: 10,
            seed: 42,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            progress: Arc::new(NoProgress),
            cancel: CancelFlag::new(),
            segments: true,
            auc: true,
            export_recs: None,
            bootstrap: 1000,
            curve_k: 50,
            max_folds: None,
            rank: None,
        }
    }
}

impl EvalOptions {
    /// Options for a cheap inner evaluation (hyperparameter search): headline metrics only.
    pub fn headline_only(&self) -> Self {
        Self {
            segments: false,
            auc: false,
            export_recs: None,
            bootstrap: 0,
            curve_k: 0,
            ..self.clone()
        }
    }
}

/// What to fit on each fold: one spec everywhere, or one spec per fold (nested tuning, where
/// each outer fold chose its own configuration from its own training data).
#[derive(Debug, Clone)]
pub struct ModelPlan {
    /// The spec (or preset) the result is named by.
    pub spec: String,
    /// When not empty, fold f fits `fold_specs[f]` instead of `spec`.
    pub fold_specs: Vec<String>,
}

impl ModelPlan {
    /// The same spec on every fold.
    pub fn single(spec: &str) -> Self {
        Self {
            spec: spec.to_owned(),
            fold_specs: Vec::new(),
        }
    }
}

/// Evaluates every model spec on the dataset under the protocol.
pub fn evaluate(
    dataset: &Dataset,
    protocol: &Protocol,
    model_specs: &[String],
    opts: &EvalOptions,
) -> Result<EvalReport> {
    let plans: Vec<ModelPlan> = model_specs.iter().map(|s| ModelPlan::single(s)).collect();
    evaluate_plans(dataset, protocol, &plans, opts)
}

/// Evaluates every plan on the dataset under the protocol.
pub fn evaluate_plans(
    dataset: &Dataset,
    protocol: &Protocol,
    plans: &[ModelPlan],
    opts: &EvalOptions,
) -> Result<EvalReport> {
    let prepared = prepare_splits(dataset, protocol, opts)?;
    evaluate_prepared(dataset, protocol, &prepared, plans, opts)
}

/// A protocol applied to a dataset: the rows it keeps and its splits (the first
/// `opts.max_folds`). Preparing once and evaluating many plans against it is what a search
/// does (`auto` fits hundreds of trials on one validation split).
pub struct PreparedSplits {
    pub data: kindred_core::Interactions,
    pub splits: Vec<Split>,
}

/// Applies `protocol` to `dataset` under `opts`, checking that the two fit together.
pub fn prepare_splits(
    dataset: &Dataset,
    protocol: &Protocol,
    opts: &EvalOptions,
) -> Result<PreparedSplits> {
    if opts.k == 0 {
        return Err(Error::InvalidInput("k must be at least 1".into()));
    }
    let prepared = protocol.prepare(&dataset.interactions);
    let rating = protocol.is_rating_prediction();
    if rating && !prepared.has_ratings() {
        return Err(Error::InvalidInput(format!(
            "protocol `{}` predicts ratings, but some interactions have no rating; use a ranking protocol such as temporal:0.2",
            protocol.spec()
        )));
    }
    if rating && opts.rank.is_some() {
        return Err(Error::InvalidInput(format!(
            "a rank config re-ranks recommendation lists, and protocol `{}` predicts ratings; use a ranking protocol such as temporal:0.2",
            protocol.spec()
        )));
    }
    let mut splits = protocol.splits(&prepared)?;
    if let Some(max) = opts.max_folds {
        splits.truncate(max.max(1));
    }
    if opts.export_recs.is_some() && (rating || splits.len() != 1) {
        return Err(Error::InvalidInput(
            "--export-recs needs a single-split ranking protocol (temporal, random, loo, coldstart-*)".into(),
        ));
    }
    Ok(PreparedSplits {
        data: prepared,
        splits,
    })
}

/// Evaluates every plan on splits [`prepare_splits`] made of `dataset` under `protocol`.
pub fn evaluate_prepared(
    dataset: &Dataset,
    protocol: &Protocol,
    prepared: &PreparedSplits,
    plans: &[ModelPlan],
    opts: &EvalOptions,
) -> Result<EvalReport> {
    let rating = protocol.is_rating_prediction();
    let (splits, prepared) = (&prepared.splits, &prepared.data);
    let mut results = Vec::with_capacity(plans.len());
    for (m, plan) in plans.iter().enumerate() {
        if !plan.fold_specs.is_empty() && plan.fold_specs.len() < splits.len() {
            return Err(Error::InvalidInput(format!(
                "plan `{}` names {} fold specs for {} folds",
                plan.spec,
                plan.fold_specs.len(),
                splits.len()
            )));
        }
        let spec = &plan.spec;
        let algorithm = build_algorithm_for(spec, protocol)?;
        let mut folds = Vec::with_capacity(splits.len());
        let mut ranked_all = Vec::new();
        let mut pairs_all = Vec::new();
        let mut item_users_last = Vec::new();
        let mut per_unit = PerUnit::default();
        let mut fold_curves: Vec<BTreeMap<String, Vec<f64>>> = Vec::new();
        let mut popularity = PopularityCounts::default();
        let mut source_counts: BTreeMap<String, u64> = BTreeMap::new();
        let recorder = Arc::new(EpochRecorder::new(Arc::clone(&opts.progress)));
        for (f, split) in splits.iter().enumerate() {
            opts.cancel.check()?;
            let fold_spec = plan.fold_specs.get(f);
            let fold_algorithm = match fold_spec {
                Some(s) => Some(build_algorithm_for(s, protocol)?),
                None => None,
            };
            let algorithm = fold_algorithm.as_ref().unwrap_or(&algorithm);
            let train = TrainSet::new(prepared.subset(&split.train))
                .with_features(dataset.item_features.clone(), dataset.user_features.clone());
            recorder.set_fold(f);
            let ctx = FitContext {
                threads: opts.threads,
                seed: opts.seed,
                progress: Arc::clone(&recorder) as Arc<dyn Progress>,
                cancel: opts.cancel.clone(),
            };
            opts.progress.begin(
                &format!("{} fit, fold {}/{}", algorithm.name(), f + 1, splits.len()),
                0,
            );
            let started = Instant::now();
            let model = algorithm.fit(&train, &ctx)?;
            let fit_seconds = started.elapsed().as_secs_f64();
            opts.progress.finish();
            let started = Instant::now();
            let item_users = distinct_users_per_item(&train);
            let mut fold = if rating {
                let (fold, pairs) = rating_fold(model.as_ref(), prepared, split, &train)?;
                add_rating_units(&mut per_unit, f, &split.test, &pairs);
                pairs_all.extend(pairs);
                fold
            } else {
                let RankingFold {
                    fold,
                    ranked,
                    curves,
                    popularity: fold_popularity,
                    sources: fold_sources,
                } = ranking_fold(
                    model.as_ref(),
                    prepared,
                    split,
                    &train,
                    dataset,
                    &item_users,
                    opts,
                    protocol.seed,
                )?;
                add_ranking_units(&mut per_unit, f, &ranked, opts.k);
                fold_curves.push(curves);
                popularity.add(&fold_popularity);
                for (label, count) in fold_sources {
                    *source_counts.entry(label).or_insert(0u64) += count;
                }
                if let Some(path) = &opts.export_recs {
                    let lists: Vec<(u32, Vec<Scored>)> =
                        ranked.iter().map(|r| (r.0.user, r.1.clone())).collect();
                    write_recs_file(
                        &export_path(path, m, algorithm.name(), plans.len()),
                        prepared.user_ids(),
                        prepared.item_ids(),
                        &lists,
                    )?;
                }
                ranked_all.extend(ranked.into_iter().map(|r| r.0));
                fold
            };
            item_users_last = item_users;
            fold.fold = f;
            fold.train = split.train.len();
            fold.test = split.test.len();
            fold.fit_seconds = fit_seconds;
            fold.predict_seconds = started.elapsed().as_secs_f64();
            fold.selection = model.selection().cloned();
            // What this fold fitted when it is not the result's spec: a nested choice, or the
            // one `auto` made on this fold's training rows.
            fold.spec = match (&fold.selection, fold_spec) {
                (Some(selection), _) => selection
                    .get("chosen")
                    .and_then(|c| c.as_str())
                    .map(str::to_owned),
                (None, Some(s)) => Some(resolve_preset(s).to_owned()),
                (None, None) => None,
            };
            folds.push(fold);
        }
        let segments: Option<Segments> = opts.segments.then(|| {
            let features = dataset.user_features.as_deref();
            if rating {
                segments::rating_segments(
                    &pairs_all,
                    &item_users_last,
                    features,
                    prepared.user_ids(),
                )
            } else {
                segments::ranking_segments(
                    &ranked_all,
                    &item_users_last,
                    features,
                    prepared.user_ids(),
                    opts.k,
                )
            }
        });
        let mut result = aggregate(
            algorithm.name(),
            resolve_preset(spec),
            algorithm.params(),
            folds,
            segments,
        );
        if resolve_preset(spec) != spec {
            result.preset = Some(spec.trim().to_owned());
        }
        result.recs_file = opts
            .export_recs
            .as_deref()
            .map(|path| export_path(path, m, algorithm.name(), plans.len()));
        result.curves = mean_curves(&fold_curves);
        result.popularity_bias = (!rating).then(|| popularity.shares());
        let listed: u64 = source_counts.values().sum();
        result.rank_sources = (listed > 0).then(|| {
            source_counts
                .into_iter()
                .map(|(label, count)| (label, count as f64 / listed as f64))
                .collect()
        });
        result.learning_curve = recorder.take();
        result.per_unit = Some(per_unit);
        results.push(result);
    }
    let comparisons = if opts.bootstrap > 0 {
        fill_intervals_and_compare(&mut results, rating, opts.k, opts.bootstrap, opts.seed)?
    } else {
        Vec::new()
    };
    Ok(EvalReport {
        dataset: DatasetSummary {
            name: dataset.name.clone(),
            interactions: dataset.interactions.len(),
            users: dataset.interactions.n_users(),
            items: dataset.interactions.n_items(),
            protocol_interactions: prepared.len(),
        },
        protocol: protocol.spec().to_owned(),
        k: opts.k,
        results,
        comparisons,
        trials: Vec::new(),
        tuning: None,
        rank: opts
            .rank
            .as_deref()
            .map(serde_json::to_value)
            .transpose()
            .map_err(|e| Error::InvalidInput(format!("rank config as JSON: {e}")))?,
        versions: BTreeMap::from([("kindred".to_owned(), env!("CARGO_PKG_VERSION").to_owned())]),
    })
}

fn export_path(path: &Path, index: usize, name: &str, n_models: usize) -> PathBuf {
    if n_models == 1 {
        return path.to_owned();
    }
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("recs");
    let ext = path.extension().and_then(|s| s.to_str()).unwrap_or("csv");
    path.with_file_name(format!("{stem}.{index}-{name}.{ext}"))
}

/// Number of distinct training users of each item.
fn distinct_users_per_item(train: &TrainSet) -> Vec<u32> {
    (0..train.n_items())
        .map(|i| {
            let users = train.by_item.row(i);
            users
                .iter()
                .enumerate()
                .filter(|(p, u)| *p == 0 || users[p - 1] != **u)
                .count() as u32
        })
        .collect()
}

fn rating_fold(
    model: &dyn Model,
    data: &kindred_core::Interactions,
    split: &Split,
    train: &TrainSet,
) -> Result<(FoldResult, Vec<PredictedPair>)> {
    let user_counts = train.data.user_counts();
    let item_counts = train.data.item_counts();
    let (users, items, ratings) = (data.users(), data.items(), data.ratings());
    let predicted: Vec<Option<PredictedPair>> = split
        .test
        .par_iter()
        .map(|&r| {
            let (u, i) = (users[r as usize], items[r as usize]);
            model.predict(u, i).map(|p| PredictedPair {
                user: u,
                item: i,
                user_train_count: user_counts[u as usize],
                prediction: p as f64,
                truth: ratings[r as usize] as f64,
            })
        })
        .collect();
    let pairs: Vec<PredictedPair> = predicted.into_iter().collect::<Option<_>>().ok_or_else(|| {
        Error::InvalidInput(format!(
            "model `{}` does not predict ratings; use a ranking protocol such as temporal:0.2,positive>=4",
            model.name()
        ))
    })?;
    let impossible = pairs
        .iter()
        .filter(|p| user_counts[p.user as usize] == 0 || item_counts[p.item as usize] == 0)
        .count() as u64;
    let pts: Vec<(f64, f64)> = pairs.iter().map(|p| (p.prediction, p.truth)).collect();
    let fold = FoldResult {
        fold: 0,
        train: 0,
        test: 0,
        evaluated: pairs.len(),
        metrics: BTreeMap::from([
            ("rmse".to_owned(), metrics::rmse(&pts)),
            ("mae".to_owned(), metrics::mae(&pts)),
        ]),
        fit_seconds: 0.0,
        predict_seconds: 0.0,
        impossible_predictions: Some(impossible),
        spec: None,
        selection: None,
    };
    Ok((fold, pairs))
}

/// Per user: their first test interaction (earliest timestamp, then row): in `--rank`
/// evaluation the request happens then, "when the user comes back", with its context.
fn first_test_rows(data: &kindred_core::Interactions, split: &Split) -> Vec<Option<u32>> {
    let timestamps = data.timestamps();
    let mut first: Vec<Option<u32>> = vec![None; data.n_users()];
    for &r in &split.test {
        let slot = &mut first[data.users()[r as usize] as usize];
        let earlier = |f: u32| (timestamps[r as usize], r) < (timestamps[f as usize], f);
        if slot.is_none_or(earlier) {
            *slot = Some(r);
        }
    }
    first
}

/// Per user: their last timestamped training interaction (their last activity before a request).
fn last_training_times(data: &kindred_core::Interactions, split: &Split) -> Vec<Option<i64>> {
    let timestamps = data.timestamps();
    let mut last: Vec<Option<i64>> = vec![None; data.n_users()];
    for &r in &split.train {
        let t = timestamps[r as usize];
        if t != kindred_core::interactions::NO_TIMESTAMP {
            let slot = &mut last[data.users()[r as usize] as usize];
            *slot = Some(slot.map_or(t, |old: i64| old.max(t)));
        }
    }
    last
}

/// Per evaluated user: the breakdown record and the exact top-K list with scores.
type RankedList = (RankedUser, Vec<Scored>);

/// Per evaluated user: the list, its AUC, its metric curve and (`--rank` only) the source of
/// each of its top-k items.
type UserOutcome = (RankedList, Option<f64>, Vec<UserRanking>, Vec<String>);

/// The request time of `--rank` evaluation for users without a timestamped test interaction:
/// the newest training interaction; the current time when the log has no timestamps.
fn request_time(train: &kindred_core::Interactions) -> i64 {
    let newest = train
        .timestamps()
        .iter()
        .copied()
        .filter(|&t| t != kindred_core::interactions::NO_TIMESTAMP)
        .max();
    newest.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64)
    })
}

/// What one ranking fold produced besides its metrics.
struct RankingFold {
    fold: FoldResult,
    /// Per evaluated user (ascending user index): the breakdown record and the top-K list.
    ranked: Vec<RankedList>,
    /// Metric name -> macro average over users at K = 1..=curve_k (empty when curves are off).
    curves: BTreeMap<String, Vec<f64>>,
    popularity: PopularityCounts,
    /// `--rank` only: how many top-k items each source (`model:als`, `popular`, ...) supplied.
    sources: BTreeMap<String, u64>,
}

#[allow(clippy::too_many_arguments)]
fn ranking_fold(
    model: &dyn Model,
    data: &kindred_core::Interactions,
    split: &Split,
    train: &TrainSet,
    dataset: &Dataset,
    item_users: &[u32],
    opts: &EvalOptions,
    tie_seed: u64,
) -> Result<RankingFold> {
    let n_items = data.n_items();
    let k = opts.k;
    // Curves need longer lists; top-K orders are total (score, then tie key or item index), so
    // the first k of the longer list are exactly the list a depth-k selection returns.
    let depth = k.max(opts.curve_k);
    // Relevant test items and query-time history per user.
    let mut relevant: Vec<Vec<u32>> = vec![Vec::new(); data.n_users()];
    for &r in &split.test {
        let (u, i) = (data.users()[r as usize], data.items()[r as usize]);
        if !train.by_user.contains(u as usize, i) {
            relevant[u as usize].push(i);
        }
    }
    let mut history: Vec<Vec<u32>> = vec![Vec::new(); data.n_users()];
    for &r in &split.query {
        history[data.users()[r as usize] as usize].push(data.items()[r as usize]);
    }
    let evaluated: Vec<u32> = (0..data.n_users() as u32)
        .filter(|&u| {
            let rel = &mut relevant[u as usize];
            rel.sort_unstable();
            rel.dedup();
            !rel.is_empty()
        })
        .collect();
    let candidate = split.candidates.as_ref().map(|c| {
        let mut mask = vec![false; n_items];
        c.iter().for_each(|&i| mask[i as usize] = true);
        mask
    });
    let user_counts = train.data.user_counts();
    // The ranking layer, when configured: the same pipeline serving runs (filters, re-ranking,
    // pins, fallback chain), built once per training set.
    let pipeline = match &opts.rank {
        Some(cfg) => Some(RankPipeline::new(
            RankConfig::clone(cfg),
            CatalogData {
                item_ids: data.item_ids(),
                item_features: dataset.item_features.as_deref(),
                user_ids: data.user_ids(),
                user_features: dataset.user_features.as_deref(),
                train: TrainingLog {
                    users: train.data.users(),
                    items: train.data.items(),
                    timestamps: train.data.timestamps(),
                },
            },
        )?),
        None => None,
    };
    let now = request_time(&train.data);
    let first_test = first_test_rows(data, split);
    let request_times: Vec<i64> = first_test
        .iter()
        .map(|r| {
            r.map(|r| data.timestamps()[r as usize])
                .filter(|&t| t != kindred_core::interactions::NO_TIMESTAMP)
                .unwrap_or(now)
        })
        .collect();
    let last_train = last_training_times(data, split);
    // The learned second stage, when configured, is trained on this fold and attached to the
    // pipeline; each user's request context is that of their first test interaction.
    let mut pipeline = pipeline;
    let mut contexts: Vec<RequestContext> = Vec::new();
    if let Some((stage, request_contexts)) = second_stage_for_fold(data, &first_test, train, opts)?
    {
        pipeline = pipeline.map(|p| p.with_second_stage(stage));
        contexts = request_contexts;
    }
    opts.progress
        .begin(&format!("{} ranking", model.name()), evaluated.len() as u64);
    let per_user: Vec<UserOutcome> = evaluated
        .par_iter()
        .map_init(
            || vec![0f32; n_items],
            |scores, &u| -> Result<UserOutcome> {
                let hist = &history[u as usize];
                let query = UserQuery {
                    user: Some(u),
                    history: hist,
                };
                model.score_all(&query, scores);
                // Excluded items (training items, query history, non-candidates) are masked with
                // NaN, which top-K never selects and AUC skips. A model's own NaN is excluded too.
                for &i in train.by_user.row(u as usize).iter().chain(hist) {
                    scores[i as usize] = f32::NAN;
                }
                if let Some(mask) = &candidate {
                    for (s, &allowed) in scores.iter_mut().zip(mask) {
                        if !allowed {
                            *s = f32::NAN;
                        }
                    }
                }
                // Candidate sets (cold start) break score ties by a seeded hash of the pair:
                // item order would leak popularity to models that cannot tell new items apart.
                let user_id = data.user_ids().external(u);
                let item_ids = data.item_ids();
                let tie_key = |i: u32| pair_key(tie_seed, user_id, item_ids.external(i));
                let mut sources = Vec::new();
                let mut list = if let Some(pipeline) = &pipeline {
                    let seen: Vec<u32> = train
                        .by_user
                        .row(u as usize)
                        .iter()
                        .chain(hist)
                        .copied()
                        .collect();
                    let request = RankRequest {
                        user: Some(u),
                        seen: &seen,
                        primary: Some(ScoreSource {
                            name: model.name(),
                            scores,
                        }),
                        candidates: candidate.as_deref(),
                        tie_key: candidate
                            .is_some()
                            .then_some(&tie_key as &(dyn Fn(u32) -> u64 + Sync)),
                        last_active: last_train[u as usize],
                        context: contexts.get(u as usize),
                        ..RankRequest::new(request_times[u as usize])
                    };
                    let ranked = pipeline.rank(&request, depth)?;
                    sources = ranked
                        .iter()
                        .take(k)
                        .map(|r| r.source.to_string())
                        .collect();
                    ranked
                        .into_iter()
                        .map(|r| Scored {
                            item: r.item,
                            score: r.score,
                        })
                        .collect()
                } else if candidate.is_some() {
                    top_k_with_tie_key(scores, depth, tie_key)
                } else {
                    top_k(scores, depth, |_| false)
                };
                let rel = &relevant[u as usize];
                let curve = if opts.curve_k > 0 {
                    let deep: Vec<u32> = list.iter().map(|s| s.item).collect();
                    metrics::ranking_curve(&deep, rel, opts.curve_k)
                } else {
                    Vec::new()
                };
                list.truncate(k);
                let items: Vec<u32> = list.iter().map(|s| s.item).collect();
                let auc = opts.auc.then(|| {
                    let mut cands: Vec<(f32, bool)> = (0..n_items as u32)
                        .filter(|&i| !scores[i as usize].is_nan())
                        .map(|i| (scores[i as usize], rel.binary_search(&i).is_ok()))
                        .collect();
                    metrics::auc(&mut cands)
                });
                opts.progress.advance(1);
                let record = RankedUser {
                    user: u,
                    train_count: user_counts[u as usize],
                    metrics: metrics::user_ranking(&items, rel, k),
                    recommended: items,
                    relevant: rel.clone(),
                };
                Ok(((record, list), auc.flatten(), curve, sources))
            },
        )
        .collect::<Result<_>>()?;
    opts.progress.finish();
    if opts.cancel.is_cancelled() {
        return Err(Error::Cancelled);
    }
    let n = per_user.len().max(1) as f64;
    let mean =
        |f: fn(&UserRanking) -> f64| per_user.iter().map(|p| f(&p.0 .0.metrics)).sum::<f64>() / n;
    let mut m = BTreeMap::from([
        (format!("precision@{k}"), mean(|m| m.precision)),
        (format!("recall@{k}"), mean(|m| m.recall)),
        (format!("ndcg@{k}"), mean(|m| m.ndcg)),
        (format!("map@{k}"), mean(|m| m.map)),
        (format!("mrr@{k}"), mean(|m| m.mrr)),
        (format!("hit@{k}"), mean(|m| m.hit)),
    ]);
    let lists = || per_user.iter().map(|p| p.0 .0.recommended.as_slice());
    let catalog = candidate
        .as_ref()
        .map_or(n_items, |c| c.iter().filter(|&&x| x).count());
    m.insert(format!("coverage@{k}"), metrics::coverage(lists(), catalog));
    let aucs: Vec<f64> = per_user.iter().filter_map(|p| p.1).collect();
    if !aucs.is_empty() {
        m.insert(
            "auc".to_owned(),
            aucs.iter().sum::<f64>() / aucs.len() as f64,
        );
    }
    let n_train_users = user_counts.iter().filter(|&&c| c > 0).count();
    let mean_of = |values: Vec<f64>| {
        (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
    };
    if let Some(v) = mean_of(
        lists()
            .filter_map(|l| metrics::novelty(l, item_users, n_train_users))
            .collect(),
    ) {
        m.insert(format!("novelty@{k}"), v);
    }
    if let Some(v) = mean_of(
        lists()
            .filter_map(|l| metrics::mean_popularity(l, item_users))
            .collect(),
    ) {
        m.insert(format!("popularity@{k}"), v);
    }
    if let Some(features) = &dataset.item_features {
        let vectors = features.categorical_vectors(data.item_ids());
        if vectors.iter().any(|v| !v.is_empty()) {
            if let Some(v) = mean_of(
                lists()
                    .filter_map(|l| metrics::diversity(l, &vectors))
                    .collect(),
            ) {
                m.insert(format!("diversity@{k}"), v);
            }
        }
    }
    let mut curves = BTreeMap::new();
    if opts.curve_k > 0 {
        let curve_mean = |f: fn(&UserRanking) -> f64| -> Vec<f64> {
            (0..opts.curve_k)
                .map(|pos| per_user.iter().map(|p| f(&p.2[pos])).sum::<f64>() / n)
                .collect()
        };
        for (name, f) in RANKING_METRICS {
            curves.insert(name.to_owned(), curve_mean(f));
        }
    }
    let popularity = PopularityCounts::of_fold(
        item_users,
        &train.data.item_counts(),
        per_user.iter().map(|p| &p.0 .0),
    );
    let fold = FoldResult {
        fold: 0,
        train: 0,
        test: 0,
        evaluated: per_user.len(),
        metrics: m,
        fit_seconds: 0.0,
        predict_seconds: 0.0,
        impossible_predictions: None,
        spec: None,
        selection: None,
    };
    let mut sources = BTreeMap::new();
    for label in per_user.iter().flat_map(|p| &p.3) {
        *sources.entry(label.clone()).or_insert(0u64) += 1;
    }
    Ok(RankingFold {
        fold,
        sources,
        ranked: per_user.into_iter().map(|p| p.0).collect(),
        curves,
        popularity,
    })
}

/// The rank config's learned second stage trained on this fold's training rows, with each
/// user's request context: the context of their first test interaction (earliest timestamp,
/// then row order), i.e. the request is taken to happen when the user comes back. Users without
/// a test interaction get an empty context. None when the config has no second stage.
fn second_stage_for_fold(
    data: &kindred_core::Interactions,
    first_test: &[Option<u32>],
    train: &TrainSet,
    opts: &EvalOptions,
) -> Result<Option<(SecondStage, Vec<RequestContext>)>> {
    let Some(config) = opts.rank.as_ref().and_then(|c| c.second_stage.as_ref()) else {
        return Ok(None);
    };
    let ctx = FitContext {
        threads: opts.threads,
        seed: opts.seed,
        progress: Arc::clone(&opts.progress),
        cancel: opts.cancel.clone(),
    };
    let stage = SecondStage::fit(config, train, &ctx)?;
    let contexts = first_test
        .iter()
        .map(|r| r.map_or_else(RequestContext::default, |r| RequestContext::of_row(data, r)))
        .collect();
    Ok(Some((stage, contexts)))
}

/// Reads one metric of a user's ranking.
type MetricOf = fn(&UserRanking) -> f64;

/// The per-user ranking metrics, by the name they carry in results (`ndcg@10`, ...).
const RANKING_METRICS: [(&str, MetricOf); 6] = [
    ("ndcg", |m| m.ndcg),
    ("precision", |m| m.precision),
    ("recall", |m| m.recall),
    ("map", |m| m.map),
    ("mrr", |m| m.mrr),
    ("hit", |m| m.hit),
];

/// Metrics whose intervals the runner reports; the first is the one models are compared on.
fn headline_metrics(rating: bool, k: usize) -> Vec<String> {
    if rating {
        vec!["rmse".to_owned(), "mae".to_owned()]
    } else {
        RANKING_METRICS
            .iter()
            .map(|(name, _)| format!("{name}@{k}"))
            .collect()
    }
}

/// Appends one fold's per-user ranking metrics, keyed (fold, user).
fn add_ranking_units(units: &mut PerUnit, fold: usize, ranked: &[RankedList], k: usize) {
    units
        .keys
        .extend(ranked.iter().map(|r| (fold as u32, r.0.user)));
    for (name, f) in RANKING_METRICS {
        units
            .values
            .entry(format!("{name}@{k}"))
            .or_default()
            .extend(ranked.iter().map(|r| f(&r.0.metrics)));
    }
}

/// Appends one fold's per-pair squared (`rmse`) and absolute (`mae`) errors, keyed (fold, test
/// row); `pairs` are in the order of `test`.
fn add_rating_units(units: &mut PerUnit, fold: usize, test: &[u32], pairs: &[PredictedPair]) {
    units.keys.extend(test.iter().map(|&r| (fold as u32, r)));
    // The same expressions as metrics::rmse / mae, so the means reproduce them exactly.
    units
        .values
        .entry("rmse".to_owned())
        .or_default()
        .extend(pairs.iter().map(|p| (p.prediction - p.truth).powi(2)));
    units
        .values
        .entry("mae".to_owned())
        .or_default()
        .extend(pairs.iter().map(|p| (p.prediction - p.truth).abs()));
}

/// Means over folds of the per-fold curves.
fn mean_curves(folds: &[BTreeMap<String, Vec<f64>>]) -> BTreeMap<String, Vec<f64>> {
    let Some(first) = folds.first() else {
        return BTreeMap::new();
    };
    first
        .iter()
        .map(|(name, curve)| {
            let mean = (0..curve.len())
                .map(|pos| folds.iter().map(|f| f[name][pos]).sum::<f64>() / folds.len() as f64)
                .collect();
            (name.clone(), mean)
        })
        .collect()
}

/// Buckets of the popularity-sorted catalog.
const POPULARITY_BUCKETS: usize = 10;

/// Counts behind [`PopularityBias`], pooled over folds.
#[derive(Debug, Default, Clone, PartialEq)]
struct PopularityCounts {
    recommended: [u64; POPULARITY_BUCKETS],
    test: [u64; POPULARITY_BUCKETS],
    train: [u64; POPULARITY_BUCKETS],
}

impl PopularityCounts {
    /// One fold's counts. Items are ranked by distinct training users (most first, ties by
    /// item index) and item of rank r falls in bucket `r * 10 / catalog`.
    fn of_fold<'a>(
        item_users: &[u32],
        item_interactions: &[u32],
        users: impl Iterator<Item = &'a RankedUser>,
    ) -> Self {
        let catalog = item_users.len();
        let mut order: Vec<u32> = (0..catalog as u32).collect();
        order.sort_by_key(|&i| (std::cmp::Reverse(item_users[i as usize]), i));
        let mut bucket = vec![0usize; catalog];
        for (rank, &i) in order.iter().enumerate() {
            bucket[i as usize] = rank * POPULARITY_BUCKETS / catalog;
        }
        let mut counts = Self::default();
        for user in users {
            for &i in &user.recommended {
                counts.recommended[bucket[i as usize]] += 1;
            }
            for &i in &user.relevant {
                counts.test[bucket[i as usize]] += 1;
            }
        }
        for (i, &n) in item_interactions.iter().enumerate() {
            counts.train[bucket[i]] += n as u64;
        }
        counts
    }

    fn add(&mut self, other: &Self) {
        for (mine, theirs) in [
            (&mut self.recommended, &other.recommended),
            (&mut self.test, &other.test),
            (&mut self.train, &other.train),
        ] {
            mine.iter_mut().zip(theirs).for_each(|(a, b)| *a += b);
        }
    }

    /// Shares per bucket (all zero for a kind with no counts at all).
    fn shares(&self) -> PopularityBias {
        let share = |counts: &[u64; POPULARITY_BUCKETS]| -> Vec<f64> {
            let total = counts.iter().sum::<u64>().max(1) as f64;
            counts.iter().map(|&c| c as f64 / total).collect()
        };
        let step = 100 / POPULARITY_BUCKETS;
        PopularityBias {
            buckets: (0..POPULARITY_BUCKETS)
                .map(|b| match b {
                    0 => format!("top {step}%"),
                    b => format!("{}-{}%", b * step, (b + 1) * step),
                })
                .collect(),
            recommended: share(&self.recommended),
            test: share(&self.test),
            train: share(&self.train),
        }
    }
}

/// Forwards every progress call to the real sink and records each epoch of the current fold,
/// so that the loss curve models report lands in [`ModelResult::learning_curve`].
struct EpochRecorder {
    inner: Arc<dyn Progress>,
    fold: std::sync::atomic::AtomicUsize,
    points: Mutex<Vec<EpochPoint>>,
}

impl EpochRecorder {
    fn new(inner: Arc<dyn Progress>) -> Self {
        Self {
            inner,
            fold: Default::default(),
            points: Mutex::new(Vec::new()),
        }
    }

    fn set_fold(&self, fold: usize) {
        self.fold.store(fold, std::sync::atomic::Ordering::Relaxed);
    }

    fn take(&self) -> Vec<EpochPoint> {
        // A poisoned lock only means a model panicked mid-report; the points are still valid.
        std::mem::take(&mut *self.points.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl Progress for EpochRecorder {
    fn begin(&self, task: &str, total: u64) {
        self.inner.begin(task, total);
    }
    fn advance(&self, n: u64) {
        self.inner.advance(n);
    }
    fn epoch(&self, epoch: usize, loss: f64, validation: Option<f64>) {
        self.inner.epoch(epoch, loss, validation);
        self.points
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(EpochPoint {
                fold: self.fold.load(std::sync::atomic::Ordering::Relaxed),
                epoch,
                loss,
                validation,
            });
    }
    fn finish(&self) {
        self.inner.finish();
    }
}

fn aggregate(
    name: &str,
    spec: &str,
    params: serde_json::Value,
    folds: Vec<FoldResult>,
    segments: Option<Segments>,
) -> ModelResult {
    let n = folds.len().max(1) as f64;
    let mut metrics = BTreeMap::new();
    let mut metrics_std = BTreeMap::new();
    if let Some(first) = folds.first() {
        for key in first.metrics.keys() {
            let values: Vec<f64> = folds
                .iter()
                .filter_map(|f| f.metrics.get(key).copied())
                .collect();
            let mean = values.iter().sum::<f64>() / values.len() as f64;
            metrics.insert(key.clone(), mean);
            if folds.len() > 1 {
                let var =
                    values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / values.len() as f64;
                metrics_std.insert(key.clone(), var.sqrt());
            }
        }
    }
    let impossible = folds
        .iter()
        .map(|f| f.impossible_predictions)
        .collect::<Option<Vec<u64>>>()
        .map(|v| v.iter().sum::<u64>() as f64 / n);
    ModelResult {
        model: name.to_owned(),
        spec: spec.to_owned(),
        preset: None,
        params,
        metrics,
        metrics_std,
        fit_seconds: folds.iter().map(|f| f.fit_seconds).sum::<f64>() / n,
        predict_seconds: folds.iter().map(|f| f.predict_seconds).sum::<f64>() / n,
        impossible_predictions: impossible,
        per_fold: folds,
        segments,
        metrics_ci: BTreeMap::new(),
        curves: BTreeMap::new(),
        popularity_bias: None,
        rank_sources: None,
        learning_curve: Vec::new(),
        recs_file: None,
        per_unit: None,
    }
}

/// Confidence level of the intervals and comparisons the runner reports.
pub const CONFIDENCE_LEVEL: f64 = 0.95;

/// The seed of the bootstrap and randomisation streams for an evaluation seed (kept apart from
/// the streams model fitting draws from the same seed).
fn resampling_seed(seed: u64) -> u64 {
    mix64(seed ^ 0xB007_57A9_0000_0001)
}

/// True for metrics where lower values are better.
pub fn lower_is_better(metric: &str) -> bool {
    matches!(metric, "rmse" | "mae")
}

/// The per-unit values of `metric` in `result`.
fn unit_values<'a>(result: &'a ModelResult, metric: &str) -> Result<&'a [f64]> {
    let units = result.per_unit.as_ref().ok_or_else(|| {
        Error::InvalidInput(format!(
            "result `{}` keeps no per-unit values (it was not produced by this evaluation run)",
            result.spec
        ))
    })?;
    let values = units.values.get(metric).ok_or_else(|| {
        let known: Vec<&str> = units.values.keys().map(String::as_str).collect();
        Error::InvalidInput(format!(
            "result `{}` has no per-unit values of `{metric}` (it has: {})",
            result.spec,
            known.join(", ")
        ))
    })?;
    Ok(values)
}

/// Paired comparison of `model` against `baseline` on `metric` (e.g. `rmse`, `ndcg@10`): the
/// difference model - baseline with a 95% paired percentile bootstrap interval from `resamples`
/// resamples of the shared units (within folds), a paired randomisation test with as many
/// random swaps, and the verdict. Both results must come from evaluations of the same protocol
/// and data, so that their units (fold, user) or (fold, test pair) align.
///
/// With the same `seed` as the evaluation, this reproduces the comparison in its report.
pub fn compare_results(
    baseline: &ModelResult,
    model: &ModelResult,
    metric: &str,
    resamples: usize,
    seed: u64,
) -> Result<Comparison> {
    let (a, b) = (unit_values(baseline, metric)?, unit_values(model, metric)?);
    let keys = |r: &ModelResult| {
        r.per_unit
            .as_ref()
            .map(|u| u.keys.clone())
            .unwrap_or_default()
    };
    let base_keys = keys(baseline);
    if base_keys != keys(model) {
        return Err(Error::InvalidInput(format!(
            "cannot pair `{}` with `{}`: they were evaluated on different users or test pairs",
            model.spec, baseline.spec
        )));
    }
    if resamples == 0 {
        return Err(Error::InvalidInput(
            "a comparison needs at least one bootstrap resample".into(),
        ));
    }
    let strata = Strata::from_fold_keys(&base_keys)?;
    let aggregate = Aggregate::for_metric(metric);
    let seed = resampling_seed(seed);
    let samples =
        stats::bootstrap_statistics(&[(a, aggregate), (b, aggregate)], &strata, resamples, seed)?;
    comparison_from_samples(
        baseline,
        model,
        metric,
        &samples[0],
        &samples[1],
        &strata,
        resamples,
        seed,
    )
}

/// A comparison from paired bootstrap statistics of the two results (same resample indices).
#[allow(clippy::too_many_arguments)]
fn comparison_from_samples(
    baseline: &ModelResult,
    model: &ModelResult,
    metric: &str,
    baseline_samples: &[f64],
    model_samples: &[f64],
    strata: &Strata,
    permutations: usize,
    seed: u64,
) -> Result<Comparison> {
    let (a, b) = (unit_values(baseline, metric)?, unit_values(model, metric)?);
    let aggregate = Aggregate::for_metric(metric);
    let mut differences: Vec<f64> = model_samples
        .iter()
        .zip(baseline_samples)
        .map(|(m, b)| m - b)
        .collect();
    let (lower, upper) = stats::percentile_interval(&mut differences, CONFIDENCE_LEVEL)?;
    let difference =
        stats::statistic(b, strata, aggregate) - stats::statistic(a, strata, aggregate);
    let p_value = stats::paired_randomisation_test(a, b, strata, aggregate, permutations, seed)?;
    let lower_is_better = lower_is_better(metric);
    Ok(Comparison {
        baseline: baseline.spec.clone(),
        model: model.spec.clone(),
        metric: metric.to_owned(),
        lower_is_better,
        difference,
        ci: [lower, upper],
        level: CONFIDENCE_LEVEL,
        p_value,
        test: format!("paired randomisation test, {permutations} permutations"),
        n: a.len(),
        verdict: stats::verdict(
            difference,
            [lower, upper],
            p_value,
            CONFIDENCE_LEVEL,
            lower_is_better,
        )
        .to_owned(),
    })
}

/// Fills `metrics_ci` of every result and compares each later result with the first on the
/// primary metric. Results on the same units as the first are resampled in one pass (the same
/// indices pair them, and one pass costs little more than one column); others get intervals
/// only.
fn fill_intervals_and_compare(
    results: &mut [ModelResult],
    rating: bool,
    k: usize,
    resamples: usize,
    seed: u64,
) -> Result<Vec<Comparison>> {
    let metrics = headline_metrics(rating, k);
    fn keys(r: &ModelResult) -> Option<&[(u32, u32)]> {
        r.per_unit.as_ref().map(|u| u.keys.as_slice())
    }
    let Some(base_keys) = results.first().map(keys) else {
        return Ok(Vec::new());
    };
    let (aligned, alone): (Vec<usize>, Vec<usize>) =
        (0..results.len()).partition(|&i| keys(&results[i]) == base_keys);
    let groups = std::iter::once(aligned).chain(alone.into_iter().map(|i| vec![i]));
    let seed = resampling_seed(seed);
    let mut intervals: Vec<(usize, String, [f64; 2])> = Vec::new();
    let mut comparisons = Vec::new();
    for group in groups {
        let Some(unit_keys) = keys(&results[group[0]]).filter(|k| !k.is_empty()) else {
            continue;
        };
        let strata = Strata::from_fold_keys(unit_keys)?;
        let mut columns = Vec::with_capacity(group.len() * metrics.len());
        for &i in &group {
            for metric in &metrics {
                columns.push((
                    unit_values(&results[i], metric)?,
                    Aggregate::for_metric(metric),
                ));
            }
        }
        let samples = stats::bootstrap_statistics(&columns, &strata, resamples, seed)?;
        for (g, &i) in group.iter().enumerate() {
            for (j, metric) in metrics.iter().enumerate() {
                let mut column = samples[g * metrics.len() + j].clone();
                let (lower, upper) = stats::percentile_interval(&mut column, CONFIDENCE_LEVEL)?;
                intervals.push((i, metric.clone(), [lower, upper]));
            }
        }
        if group[0] == 0 {
            for (g, &i) in group.iter().enumerate().skip(1) {
                comparisons.push(comparison_from_samples(
                    &results[0],
                    &results[i],
                    &metrics[0],
                    &samples[0],
                    &samples[g * metrics.len()],
                    &strata,
                    resamples,
                    seed,
                )?);
            }
        }
    }
    for (i, metric, ci) in intervals {
        results[i].metrics_ci.insert(metric, ci);
    }
    Ok(comparisons)
}
