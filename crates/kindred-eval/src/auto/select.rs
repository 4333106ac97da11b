//! The selection loop of `auto`, on validation rows carved from the training rows: every
//! candidate family is first fitted at its defaults (screening, cheapest first, each only when
//! its predicted time fits half of what is left of the budget); then the best few families are
//! searched further by successive halving across families — each round gives every surviving
//! family an equal share of half the remaining time for more TPE trials, continuing its own
//! search, and keeps the better half — until one family has the rest. The winner is the best
//! validation score over every trial.

use std::sync::Arc;
use std::time::Instant;

use kindred_core::rng::mix64;
use kindred_core::{CancelFlag, Dataset, Error, NoProgress, Progress, Protocol, Result};
use kindred_models::space::Space;

use super::candidates::Candidate;
use super::trace::{AutoTrial, FamilyTrace, Selection};
use crate::report::TrialRecord;
use crate::runner::{evaluate_prepared, prepare_splits, EvalOptions, ModelPlan};
use crate::tune::search::{search, Method, SearchSettings};
use crate::tune::DEFAULT_STARTUP_TRIALS;

/// Families that go on from screening to the search rounds.
const TUNED_FAMILIES: usize = 3;

/// The share of the remaining budget one family's screening fit may be predicted to take.
const SCREEN_SHARE: f64 = 0.5;

/// Trials one selection runs at most, whatever the budget: the trace (kept in the manifest and
/// the server's version record) lists every trial, so it must stay bounded.
pub const MAX_TRIALS: usize = 5_000;

/// How one selection runs.
#[derive(Clone)]
pub struct SelectSettings {
    pub task: &'static str,
    pub metric: String,
    /// The cut-off of ranking metrics (the metric's `@K`).
    pub k: usize,
    pub lower_is_better: bool,
    pub budget_seconds: f64,
    /// At most this many fits per family.
    pub max_trials_per_family: Option<usize>,
    pub seed: u64,
    pub threads: usize,
    pub cancel: CancelFlag,
    pub progress: Arc<dyn Progress>,
}

/// A candidate family and what it has done so far.
struct Arm<'r> {
    candidate: Candidate<'r>,
    /// The family's search space; empty for a family without one (it is fitted at its
    /// defaults only, by the same search).
    space: Space,
    records: Vec<TrialRecord>,
    /// Why it was never fitted (the budget ran short before its turn).
    not_run: Option<String>,
}

impl Arm<'_> {
    fn name(&self) -> &'static str {
        self.candidate.family.name()
    }

    /// Best (loss, record index), lower loss better.
    fn best(&self, lower_is_better: bool) -> Option<(f64, usize)> {
        self.records
            .iter()
            .enumerate()
            .filter_map(|(i, r)| r.score.map(|v| (loss(v, lower_is_better), i)))
            .min_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)))
    }

    fn mean_seconds(&self) -> f64 {
        if self.records.is_empty() {
            return self.candidate.estimate.seconds;
        }
        self.records.iter().map(|r| r.seconds).sum::<f64>() / self.records.len() as f64
    }
}

/// Orders arm indices best validation score first (ties: the earlier, cheaper arm).
fn rank_by_best(arms: &[Arm<'_>], order: &mut [usize], lower_is_better: bool) {
    let loss_of = |a: usize| arms[a].best(lower_is_better).map_or(f64::INFINITY, |b| b.0);
    order.sort_by(|&a, &b| loss_of(a).total_cmp(&loss_of(b)).then(a.cmp(&b)));
}

fn loss(score: f64, lower_is_better: bool) -> f64 {
    if lower_is_better {
        score
    } else {
        -score
    }
}

/// Runs the selection on `dataset` (the training rows) with `validation` carving the
/// validation rows. `skipped` (families ruled out before fitting) are carried into the trace.
/// The returned trace has no refit time yet.
pub fn select(
    dataset: &Dataset,
    validation: &Protocol,
    candidates: Vec<Candidate<'_>>,
    skipped: Vec<FamilyTrace>,
    s: &SelectSettings,
) -> Result<Selection> {
    let started = Instant::now();
    let left = || s.budget_seconds - started.elapsed().as_secs_f64();
    let eval_opts = EvalOptions {
        k: s.k,
        seed: s.seed,
        threads: s.threads,
        progress: Arc::new(NoProgress),
        cancel: s.cancel.clone(),
        max_folds: Some(1),
        ..EvalOptions::default().headline_only()
    };
    // The validation split is made once; every trial fits and scores on it.
    let prepared = prepare_splits(dataset, validation, &eval_opts)?;
    let objective = |spec: &str, threads: usize| -> Result<f64> {
        let opts = EvalOptions {
            threads,
            ..eval_opts.clone()
        };
        let plan = [ModelPlan::single(spec)];
        let report = evaluate_prepared(dataset, validation, &prepared, &plan, &opts)?;
        let metrics = report.results.first().map(|r| &r.metrics);
        metrics
            .and_then(|m| m.get(&s.metric).copied())
            .ok_or_else(|| {
                let known: Vec<&str> =
                    metrics.map_or(Vec::new(), |m| m.keys().map(String::as_str).collect());
                Error::InvalidInput(format!(
                    "auto: metric `{}` is not measured; measured: {}",
                    s.metric,
                    known.join(", ")
                ))
            })
    };
    let mut arms: Vec<Arm<'_>> = candidates
        .into_iter()
        .map(|candidate| {
            let mut space = candidate.family.search_space().unwrap_or(Space {
                family: candidate.family.name(),
                params: Vec::new(),
                fidelity: None,
                fixed: Vec::new(),
            });
            // A cheaper form's parameters stay fixed: the search varies the rest.
            space
                .params
                .retain(|p| !candidate.fixed.iter().any(|(n, _)| *n == p.name));
            space.fixed = candidate.fixed.clone();
            Arm {
                space,
                candidate,
                records: Vec::new(),
                not_run: None,
            }
        })
        .collect();

    // Screening, cheapest first. Predictions are scaled by how far the families fitted so far
    // were off, so one slow machine does not blow the budget on the expensive families.
    let mut calibration: Vec<f64> = Vec::new();
    for (index, arm) in arms.iter_mut().enumerate() {
        s.cancel.check()?;
        let scale = if calibration.is_empty() {
            1.0
        } else {
            (calibration.iter().sum::<f64>() / calibration.len() as f64).clamp(0.1, 10.0)
        };
        let predicted = arm.candidate.estimate.seconds * scale;
        let remaining = left();
        // One family's screening may take half of what is left at most: the rest is for the
        // families after it and for tuning the best.
        if predicted > SCREEN_SHARE * remaining {
            arm.not_run = Some(format!(
                "predicted {predicted:.1} s at the defaults, more than half of the {:.1} s left of the budget",
                remaining.max(0.0)
            ));
            continue;
        }
        run_arm(arm, index, 1, None, &objective, s)?;
        if let Some(first) = arm.records.first() {
            let estimate = arm.candidate.estimate.seconds;
            // Fits under a tenth of a second say more about overheads than about the model.
            if estimate > 0.1 && first.seconds > 0.1 {
                calibration.push(first.seconds / estimate);
            }
        }
    }

    // Successive halving across the best screened families that have a search space.
    let mut alive: Vec<usize> = (0..arms.len())
        .filter(|&a| !arms[a].space.params.is_empty() && arms[a].best(s.lower_is_better).is_some())
        .collect();
    rank_by_best(&arms, &mut alive, s.lower_is_better);
    alive.truncate(TUNED_FAMILIES);
    while !alive.is_empty() {
        s.cancel.check()?;
        let remaining = left();
        if remaining <= 0.0 {
            break;
        }
        let round = if alive.len() == 1 {
            remaining
        } else {
            remaining / 2.0
        };
        let share = round / alive.len() as f64;
        let mut progressed = false;
        for &a in &alive {
            let per_trial = arms[a].mean_seconds().max(1e-3);
            let total: usize = arms.iter().map(|arm| arm.records.len()).sum();
            let cap = s
                .max_trials_per_family
                .map_or(usize::MAX, |m| m.saturating_sub(arms[a].records.len()))
                .min(MAX_TRIALS.saturating_sub(total));
            let affordable = ((share / per_trial).floor() as usize).min(cap);
            if affordable == 0 {
                continue;
            }
            let before = arms[a].records.len();
            // The last trial must start early enough to end inside the share.
            let deadline = Instant::now() + std::time::Duration::from_secs_f64(share - per_trial);
            run_arm(
                &mut arms[a],
                a,
                before + affordable,
                Some(deadline),
                &objective,
                s,
            )?;
            progressed |= arms[a].records.len() > before;
        }
        if !progressed {
            break;
        }
        if alive.len() > 1 {
            rank_by_best(&arms, &mut alive, s.lower_is_better);
            alive.truncate(alive.len().div_ceil(2));
        }
    }
    let search_seconds = started.elapsed().as_secs_f64();

    let mut order: Vec<usize> = (0..arms.len()).collect();
    rank_by_best(&arms, &mut order, s.lower_is_better);
    let winner = order
        .first()
        .and_then(|&a| Some((a, arms[a].best(s.lower_is_better)?.1)));
    let Some((wa, wr)) = winner else {
        let first_error = arms
            .iter()
            .flat_map(|a| &a.records)
            .find_map(|r| r.error.clone())
            .or_else(|| arms.iter().find_map(|a| a.not_run.clone()))
            .unwrap_or_else(|| "no family applies to this data and task".into());
        return Err(Error::InvalidInput(format!(
            "auto: no family produced a validation score within the budget of {:.0} s; first reason: {first_error}",
            s.budget_seconds
        )));
    };
    let chosen_record = &arms[wa].records[wr];
    let mut trials = Vec::new();
    let mut families = Vec::new();
    for arm in &arms {
        for r in &arm.records {
            trials.push(AutoTrial {
                family: arm.name().to_owned(),
                phase: if r.trial == 0 { "screen" } else { "tune" }.to_owned(),
                spec: r.spec.clone(),
                score: r.score,
                seconds: r.seconds,
                error: r.error.clone(),
            });
        }
        let best = arm.best(s.lower_is_better).map(|(_, i)| &arm.records[i]);
        let status = match (&arm.not_run, arm.records.len(), best) {
            (Some(_), 0, _) => "skipped",
            (_, _, None) => "failed",
            (_, 1, _) => "screened",
            _ => "tuned",
        };
        families.push(FamilyTrace {
            family: arm.name().to_owned(),
            status: status.to_owned(),
            reason: {
                let why = arm.not_run.clone().or_else(|| {
                    (status == "failed")
                        .then(|| arm.records.iter().find_map(|r| r.error.clone()))
                        .flatten()
                });
                match (&arm.candidate.form, why) {
                    (Some(form), Some(why)) => Some(format!("{form}; {why}")),
                    (Some(form), None) => Some(form.clone()),
                    (None, why) => why,
                }
            },
            predicted_seconds: arm.candidate.estimate.seconds,
            predicted_bytes: arm.candidate.estimate.bytes,
            trials: arm.records.len(),
            seconds: arm.records.iter().map(|r| r.seconds).sum(),
            best_spec: best.map(|r| r.spec.clone()),
            best_score: best.and_then(|r| r.score),
        });
    }
    families.extend(skipped);
    Ok(Selection {
        task: s.task.to_owned(),
        metric: s.metric.clone(),
        lower_is_better: s.lower_is_better,
        budget_seconds: s.budget_seconds,
        validation: validation.spec().to_owned(),
        users: dataset.interactions.n_users(),
        items: dataset.interactions.n_items(),
        interactions: dataset.interactions.len(),
        chosen: chosen_record.spec.clone(),
        chosen_family: arms[wa].name().to_owned(),
        chosen_score: chosen_record.score.unwrap_or(f64::NAN),
        search_seconds,
        refit_seconds: 0.0,
        families,
        trials,
    })
}

/// Runs an arm's search up to `max_trials` trials in all (continuing from its earlier trials,
/// which are replayed, not refitted); trial 0 is the family's defaults.
fn run_arm(
    arm: &mut Arm<'_>,
    index: usize,
    max_trials: usize,
    deadline: Option<Instant>,
    objective: &(dyn Fn(&str, usize) -> Result<f64> + Sync),
    s: &SelectSettings,
) -> Result<()> {
    let name = arm.name();
    let space = &arm.space;
    let settings = SearchSettings {
        method: Method::Tpe,
        lower_is_better: s.lower_is_better,
        // Each family its own stream, the same in every round, so continuing a search replays
        // exactly the trials it ran before.
        seed: s.seed ^ mix64(index as u64 + 1),
        fold: 0,
        parallel: 1,
        threads: s.threads.max(1),
        max_trials: Some(max_trials),
        deadline,
        startup_trials: DEFAULT_STARTUP_TRIALS,
        eta: 3,
        include_defaults: true,
        cancel: s.cancel.clone(),
        progress: Arc::clone(&s.progress),
        label: format!("auto: {name}"),
    };
    let replay = arm.records.clone();
    match search(space, &settings, objective, &replay, &mut |_| Ok(())) {
        Ok(outcome) => arm.records = outcome.records,
        Err(Error::Cancelled) => return Err(Error::Cancelled),
        // Every trial failed: keep the failure as the family's record.
        Err(e) if arm.records.is_empty() => arm.records.push(TrialRecord {
            fold: 0,
            trial: 0,
            spec: space.spec(&space.defaults(), 1.0),
            params: serde_json::Value::Null,
            rung: 0,
            score: None,
            seconds: 0.0,
            status: "failed".to_owned(),
            error: Some(e.to_string()),
        }),
        Err(_) => {}
    }
    Ok(())
}
