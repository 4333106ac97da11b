//! `kindred tune --model auto`: `auto` evaluated as a nested search. Each outer fold's training
//! rows run one selection (fitting `auto` is the search), its choice is scored on the fold's
//! untouched test rows, and the report has the shape of a tuning report: every validation fit
//! as a trial, the choice per fold, and the chosen model beside the simple baseline of the task
//! (popularity for lists, the bias baseline for ratings) on the same splits.

use kindred_core::{Dataset, Error, Protocol, Result};
use kindred_models::ModelRegistry;

use super::spec::{AutoSpec, AutoTask};
use super::trace::Selection;
use crate::report::{EvalReport, TrialRecord, TuningSummary};
use crate::runner::{
    compare_results, evaluate_prepared, lower_is_better, prepare_splits, EvalOptions, ModelPlan,
};
use crate::tune::{validation_protocol, TuneOptions};

/// Runs `auto` (the spec in `opts.family`) nested under `protocol`. `--time` becomes the
/// budget of each fold's selection (shared out over the folds) and `--trials` the cap on fits per
/// family, unless the spec names its own; `--metric` is the validation metric unless the spec
/// names one.
pub fn tune_auto(
    dataset: &Dataset,
    protocol: &Protocol,
    opts: &TuneOptions,
    eval: &EvalOptions,
) -> Result<EvalReport> {
    let parsed = AutoSpec::parse(&opts.family, ModelRegistry::global())?;
    let spec_keys = kindred_models::ModelSpec::parse(&opts.family)?.params;
    let outer_opts = EvalOptions {
        max_folds: opts.outer_folds,
        ..eval.clone()
    };
    // Split once: the folds' count sets each selection's budget, and the same splits are scored.
    let prepared = prepare_splits(dataset, protocol, &outer_opts)?;
    let n_folds = prepared.splits.len();
    let mut extra = Vec::new();
    if let (Some(total), false) = (opts.max_seconds, spec_keys.contains_key("budget")) {
        extra.push(format!("budget={}", total / n_folds as f64));
    }
    if let (Some(trials), false) = (opts.max_trials, spec_keys.contains_key("trials")) {
        extra.push(format!("trials={trials}"));
    }
    if let (Some(metric), false) = (&opts.metric, spec_keys.contains_key("metric")) {
        extra.push(format!("metric={metric}"));
    }
    let spec = match (extra.is_empty(), spec_keys.is_empty()) {
        (true, _) => opts.family.trim().to_owned(),
        (false, true) => format!("{}:{}", opts.family.trim(), extra.join(",")),
        (false, false) => format!("{},{}", opts.family.trim(), extra.join(",")),
    };
    let task = parsed.task_under(protocol.is_rating_prediction(), &spec)?;
    let baseline = match task {
        AutoTask::Ranking => "popularity",
        AutoTask::Rating => "baseline",
    };
    let plans = [ModelPlan::single(&spec), ModelPlan::single(baseline)];
    let mut report = evaluate_prepared(dataset, protocol, &prepared, &plans, &outer_opts)?;
    let selections: Vec<Selection> = report.results[0]
        .per_fold
        .iter()
        .map(|fold| {
            fold.selection
                .as_ref()
                .and_then(Selection::from_json)
                .ok_or_else(|| {
                    Error::InvalidInput("internal: an auto fold has no selection trace".into())
                })
        })
        .collect::<Result<_>>()?;
    let metric = selections
        .first()
        .map_or_else(|| task.default_metric().to_owned(), |s| s.metric.clone());
    let lower = lower_is_better(&metric);
    if eval.bootstrap > 0 {
        if let [chosen, baseline] = report.results.as_slice() {
            report.comparisons = vec![compare_results(
                baseline,
                chosen,
                &metric,
                eval.bootstrap,
                eval.seed,
            )?];
        }
    }
    report.trials = selections
        .iter()
        .enumerate()
        .flat_map(|(fold, selection)| {
            selection
                .trials
                .iter()
                .enumerate()
                .map(move |(trial, t)| TrialRecord {
                    fold,
                    trial,
                    spec: t.spec.clone(),
                    params: serde_json::Value::Null,
                    rung: 0,
                    score: t.score,
                    seconds: t.seconds,
                    status: if t.score.is_some() {
                        "complete"
                    } else {
                        "failed"
                    }
                    .to_owned(),
                    error: t.error.clone(),
                })
        })
        .collect();
    let chosen_per_fold: Vec<String> = selections.iter().map(|s| s.chosen.clone()).collect();
    report.tuning = Some(TuningSummary {
        family: "auto".to_owned(),
        method: "auto".to_owned(),
        metric,
        lower_is_better: lower,
        validation_protocol: validation_protocol(protocol)?.spec().to_owned(),
        max_trials: parsed.trials.or(opts.max_trials),
        max_seconds: Some(selections.iter().map(|s| s.budget_seconds).sum()),
        chosen: chosen_per_fold.first().cloned().unwrap_or_default(),
        chosen_per_fold,
        seconds: selections.iter().map(|s| s.search_seconds).sum(),
    });
    Ok(report)
}
