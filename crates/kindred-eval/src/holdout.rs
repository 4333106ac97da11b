//! The holdout a model version is measured on when it is trained: offline ranking metrics on
//! recent events, cheap enough for every retrain. The server stores the result in the version's
//! `metrics` JSON; `kindred train --store` prints it.
//!
//! The per-user temporal split of `kindred eval` (`temporal:0.2`: each user's latest 20% of events, at least one, for users with
//! two or more) applied to at most [`OfflineEval::users`] users chosen by a seeded hash. The
//! model is fitted once on everything except those held-out events, each sampled user gets a
//! top-K list that excludes their training items, and the metrics are [`crate::metrics`]'s
//! (`user_ranking`, `coverage`), macro-averaged over users with a held-out item they had not
//! already seen. The served model is then fitted on everything, so the numbers describe a
//! sibling fitted on slightly less data, not the served artifact itself; the JSON says so.

use std::time::Instant;

use kindred_core::rng::mix64;
use kindred_core::{Error, FitContext, Protocol, Result, TrainSet};
use kindred_models::model::AllItems;
use kindred_models::{Algorithm, UserQuery};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::metrics::{coverage, user_ranking, UserRanking};

/// The ranking metrics stored under `metrics.offline`, in display order.
pub const OFFLINE_METRICS: [&str; 5] = [
    "ndcg@10",
    "recall@10",
    "precision@10",
    "map@10",
    "coverage@10",
];

/// How (and whether) a training run measures its version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OfflineEval {
    /// Measure offline metrics (costs one extra fit on the holdout's training part).
    pub enabled: bool,
    /// At most this many users are held out and ranked.
    pub users: usize,
    /// Fraction of each sampled user's latest events held out.
    pub holdout: f64,
}

impl Default for OfflineEval {
    fn default() -> Self {
        Self {
            enabled: true,
            users: 500,
            holdout: 0.2,
        }
    }
}

/// Cut-off of the stored ranking metrics (the names in [`OFFLINE_METRICS`] say `@10`).
const K: usize = 10;

/// One held-out event, by external id, so that a later version (trained on other data, with
/// other dense indices) can be measured on exactly the same events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldOutEvent {
    pub user: String,
    pub item: String,
    pub timestamp: i64,
}

/// The held-out events of one offline evaluation (every sampled user's latest events).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holdout {
    pub events: Vec<HeldOutEvent>,
}

/// The `metrics.offline` object of a version (the ranking metrics and how they were
/// measured) and the held-out events it measured on. Errors other than cancellation are
/// recorded as `{"error": ...}` by the caller, so a model that cannot be evaluated still trains.
pub fn offline_evaluation(
    algorithm: &dyn Algorithm,
    train: &TrainSet,
    eval: &OfflineEval,
    ctx: &FitContext,
) -> Result<(Value, Holdout)> {
    if !(eval.holdout > 0.0 && eval.holdout < 1.0) {
        return Err(Error::InvalidInput(format!(
            "offline evaluation: holdout must be in (0, 1), got {}",
            eval.holdout
        )));
    }
    if eval.users == 0 {
        return Err(Error::InvalidInput(
            "offline evaluation: eval_users is 0 (turn evaluation off instead)".into(),
        ));
    }
    let data = &train.data;
    let protocol = Protocol::parse(&format!("temporal:{}", eval.holdout))?;
    let split = protocol
        .splits(data)?
        .into_iter()
        .next()
        .ok_or_else(|| Error::InvalidInput("offline evaluation: no split".into()))?;
    // Users with held-out rows, ordered by a seeded hash: the first `users` are sampled.
    let mut candidates: Vec<u32> = split
        .test
        .iter()
        .map(|&r| data.users()[r as usize])
        .collect();
    candidates.sort_unstable();
    candidates.dedup();
    let eligible = candidates.len();
    candidates.sort_by_key(|&u| (mix64(ctx.seed ^ mix64(u64::from(u))), u));
    candidates.truncate(eval.users);
    if candidates.is_empty() {
        return Err(Error::InvalidInput(
            "offline evaluation: no user has two or more events to hold out from".into(),
        ));
    }
    let mut sampled = vec![false; data.n_users()];
    candidates.iter().for_each(|&u| sampled[u as usize] = true);
    // Held-out rows of sampled users are the test set; everything else trains.
    let (test_rows, mut train_rows): (Vec<u32>, Vec<u32>) = split
        .test
        .iter()
        .partition(|&&r| sampled[data.users()[r as usize] as usize]);
    train_rows.extend_from_slice(&split.train);
    train_rows.sort_unstable();
    let test: Vec<(u32, u32)> = test_rows
        .iter()
        .map(|&r| (data.users()[r as usize], data.items()[r as usize]))
        .collect();
    let mut metrics = measure(algorithm, train, &train_rows, &candidates, &test, ctx)?;
    if let Some(obj) = metrics.as_object_mut() {
        obj.insert(
            "protocol".into(),
            json!(format!(
                "temporal:{}: each sampled user's latest {}% of events (at least 1) held out; \
                 {} of {eligible} users with 2+ events sampled by seeded hash; a sibling model \
                 fitted on all other events (the served version is fitted on everything); \
                 top-{K} lists exclude training items; metrics macro-averaged over users with \
                 an unseen held-out item",
                eval.holdout,
                eval.holdout * 100.0,
                candidates.len()
            )),
        );
    }
    let holdout = Holdout {
        events: test_rows
            .iter()
            .map(|&r| HeldOutEvent {
                user: data
                    .user_ids()
                    .external(data.users()[r as usize])
                    .to_owned(),
                item: data
                    .item_ids()
                    .external(data.items()[r as usize])
                    .to_owned(),
                timestamp: data.timestamps()[r as usize],
            })
            .collect(),
    };
    Ok((metrics, holdout))
}

/// The ranking metrics of `algorithm` on a holdout recorded earlier (another version's), in
/// the form of [`offline_evaluation`]: the rows of `train` that are held-out events are left out
/// of the fit, and each held-out user the data knows is ranked against their held-out items.
/// Events, users and items the data no longer has (erased, cleaned away) are left out and
/// counted under `missing_events`. The data may differ from the data the holdout was drawn
/// from; the events are the same, which is what makes two versions comparable.
pub fn metrics_on_holdout(
    algorithm: &dyn Algorithm,
    train: &TrainSet,
    holdout: &Holdout,
    ctx: &FitContext,
) -> Result<Value> {
    let data = &train.data;
    let held: std::collections::HashSet<(&str, &str, i64)> = holdout
        .events
        .iter()
        .map(|e| (e.user.as_str(), e.item.as_str(), e.timestamp))
        .collect();
    let (users, items) = (data.user_ids(), data.item_ids());
    let train_rows: Vec<u32> = (0..data.len() as u32)
        .filter(|&r| {
            let r = r as usize;
            !held.contains(&(
                users.external(data.users()[r]),
                items.external(data.items()[r]),
                data.timestamps()[r],
            ))
        })
        .collect();
    let mut test = Vec::with_capacity(holdout.events.len());
    let mut missing = 0usize;
    for event in &holdout.events {
        match (users.get(&event.user), items.get(&event.item)) {
            (Some(u), Some(i)) => test.push((u, i)),
            _ => missing += 1,
        }
    }
    let mut candidates: Vec<u32> = test.iter().map(|&(u, _)| u).collect();
    candidates.sort_unstable();
    candidates.dedup();
    if candidates.is_empty() {
        return Err(Error::InvalidInput(
            "no user of the recorded holdout is in the data any more".into(),
        ));
    }
    let mut metrics = measure(algorithm, train, &train_rows, &candidates, &test, ctx)?;
    if let Some(obj) = metrics.as_object_mut() {
        obj.insert("missing_events".into(), json!(missing));
    }
    Ok(metrics)
}

/// Fits `algorithm` on `train_rows` of `train` and ranks each of `candidates` against their
/// `test` items (user, item) they had not seen in those rows.
fn measure(
    algorithm: &dyn Algorithm,
    train: &TrainSet,
    train_rows: &[u32],
    candidates: &[u32],
    test: &[(u32, u32)],
    ctx: &FitContext,
) -> Result<Value> {
    let data = &train.data;
    let eval_train = TrainSet::new(data.subset(train_rows))
        .with_features(train.item_features.clone(), train.user_features.clone());
    let started = Instant::now();
    let model = algorithm.fit(&eval_train, ctx)?;
    let fit_seconds = started.elapsed().as_secs_f64();
    let mut relevant: Vec<Vec<u32>> = vec![Vec::new(); data.n_users()];
    for &(u, i) in test {
        if !eval_train.by_user.contains(u as usize, i) {
            relevant[u as usize].push(i);
        }
    }
    ctx.progress
        .begin("offline evaluation", candidates.len() as u64);
    let mut sum = UserRanking::default();
    let mut lists: Vec<Vec<u32>> = Vec::new();
    for &u in candidates {
        ctx.cancel.check()?;
        let rel = &mut relevant[u as usize];
        rel.sort_unstable();
        rel.dedup();
        if rel.is_empty() {
            continue;
        }
        let list: Vec<u32> = model
            .recommend(&UserQuery::known(u), K, &AllItems)
            .iter()
            .map(|s| s.item)
            .collect();
        let m = user_ranking(&list, rel, K);
        sum.ndcg += m.ndcg;
        sum.recall += m.recall;
        sum.precision += m.precision;
        sum.map += m.map;
        lists.push(list);
        ctx.progress.advance(1);
    }
    ctx.progress.finish();
    if lists.is_empty() {
        return Err(Error::InvalidInput(
            "offline evaluation: no sampled user has a held-out item they had not seen".into(),
        ));
    }
    let n = lists.len() as f64;
    let catalog = data.n_items();
    Ok(json!({
        "ndcg@10": sum.ndcg / n,
        "recall@10": sum.recall / n,
        "precision@10": sum.precision / n,
        "map@10": sum.map / n,
        "coverage@10": coverage(lists.iter().map(Vec::as_slice), catalog),
        "users": lists.len(),
        "test_interactions": test.len(),
        "train_interactions": train_rows.len(),
        "fit_seconds": fit_seconds,
    }))
}
