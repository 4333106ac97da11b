//! `kindred tune`: nested hyperparameter search of a model family; prints the trace, the choice
//! of each outer fold, and the tuned configuration against the defaults on the untouched test
//! splits; optionally writes the eval-form JSON (with trials) and the chosen spec.

use std::path::PathBuf;

use anyhow::{Context, Result};
use kindred_core::Protocol;
use kindred_eval::tune::{Method, TuneOptions};
use kindred_eval::{tune, EvalOptions, EvalReport};

use super::eval::format_report;
use super::{write_json, Env};
use crate::data::{DataArgs, PipelineArgs};
use crate::table::render;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    data: DataArgs,
    #[command(flatten)]
    cleaning: PipelineArgs,
    /// Protocol of the outer splits (kfold:5, temporal:0.2,positive>=4, ...); validation data is
    /// carved from each outer training set with the same kind of protocol.
    #[arg(long)]
    protocol: String,
    /// Model family to tune (svd, svdpp, nmf, baseline, knn, coclustering, als, bpr, ease,
    /// itemknn, ncf, hybrid), or an `auto` spec (a search across families: --time is its budget
    /// over all folds, --trials its cap on fits per family).
    #[arg(long)]
    model: String,
    /// Trials per outer fold (halving: configurations at the first rung); default 20 when no
    /// --time is given.
    #[arg(long)]
    trials: Option<usize>,
    /// Seconds for the whole search, shared out over the outer folds (final scoring not counted).
    #[arg(long)]
    time: Option<f64>,
    /// Search method: tpe | random | halving.
    #[arg(long, default_value = "tpe")]
    method: String,
    /// Trials run at once, each with threads / P threads.
    #[arg(long, default_value_t = 1)]
    parallel: usize,
    /// JSON Lines file of completed trials; rerun with the same file to resume.
    #[arg(long)]
    state: Option<PathBuf>,
    /// Validation metric to optimise (default rmse for rating protocols, ndcg@K for ranking).
    #[arg(long)]
    metric: Option<String>,
    /// Search and score only the first N outer folds of a k-fold protocol.
    #[arg(long)]
    outer_folds: Option<usize>,
    /// Cut-off of the ranking metrics.
    #[arg(long, default_value_t = 10, allow_negative_numbers = true, value_parser = crate::args::at_least_one)]
    k: usize,
    /// Seed of model fitting and of the search.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Write the results (eval form plus trials and tuning) as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write the chosen spec (outer fold 1's choice) as one line, for `--model @FILE`.
    #[arg(long)]
    best: Option<PathBuf>,
    /// Bootstrap resamples of the final scoring: confidence intervals and the paired comparison
    /// of tuned against defaults (0: none).
    #[arg(long, default_value_t = 1000)]
    bootstrap: usize,
}

pub fn run(args: Args, env: &Env) -> Result<()> {
    let protocol = Protocol::parse(&args.protocol)?;
    let method = Method::parse(&args.method)?;
    // The family (or `auto` spec) is checked before the (slow) data load.
    if kindred_eval::auto::is_auto(&args.model) {
        kindred_eval::build_algorithm_for(&args.model, &protocol)?;
    } else {
        kindred_models::registry::space_for(&args.model)?;
    }
    let dataset = args.data.load_cleaned(&args.cleaning, env.quiet)?;
    let eval = EvalOptions {
        k: args.k,
        seed: args.seed,
        threads: env.threads,
        progress: env.progress.clone(),
        cancel: env.cancel.clone(),
        // The final scoring (tuned and defaults on the outer test sets) records what a report
        // shows; the inner validations compute headline metrics only.
        segments: true,
        auc: false,
        export_recs: None,
        bootstrap: args.bootstrap,
        curve_k: 50,
        max_folds: None,
        rank: None,
    };
    let opts = TuneOptions {
        method,
        max_trials: args.trials,
        max_seconds: args.time,
        metric: args.metric.clone(),
        parallel: args.parallel,
        outer_folds: args.outer_folds,
        state: args.state.clone(),
        ..TuneOptions::new(&args.model)
    };
    let report = tune(&dataset, &protocol, &opts, &eval)?;
    out!("{}", format_tune(&report))?;
    if let Some(path) = &args.json {
        write_json(path, &report)?;
        env.note(format!("wrote {}", path.display()));
    }
    if let (Some(path), Some(tuning)) = (&args.best, &report.tuning) {
        std::fs::write(path, format!("{}\n", tuning.chosen))
            .with_context(|| format!("writing {}", path.display()))?;
        env.note(format!("wrote {}", path.display()));
    }
    Ok(())
}

/// The trace table, the choices and the final comparison.
fn format_tune(report: &EvalReport) -> String {
    let headers: Vec<String> = [
        "fold", "trial", "rung", "spec", "score", "seconds", "status",
    ]
    .map(String::from)
    .to_vec();
    let rows: Vec<Vec<String>> = report
        .trials
        .iter()
        .map(|t| {
            vec![
                (t.fold + 1).to_string(),
                t.trial.to_string(),
                t.rung.to_string(),
                t.spec.clone(),
                t.score.map_or_else(|| "-".into(), |v| format!("{v:.4}")),
                format!("{:.2}", t.seconds),
                match &t.error {
                    Some(e) => format!("{} ({e})", t.status),
                    None => t.status.clone(),
                },
            ]
        })
        .collect();
    let mut out = render(&headers, &rows);
    if let Some(tuning) = &report.tuning {
        out.push_str(&format!(
            "\n{} search of {} on {} (validation {}), {:.1}s\n",
            tuning.method, tuning.family, tuning.metric, tuning.validation_protocol, tuning.seconds
        ));
        for (f, spec) in tuning.chosen_per_fold.iter().enumerate() {
            out.push_str(&format!("fold {} chose {spec}\n", f + 1));
        }
        out.push_str(&format!("chosen: {}\n\n", tuning.chosen));
    }
    out.push_str(match report.tuning.as_ref().map(|t| t.family.as_str()) {
        Some("auto") => "test results (auto's choice, then the task's simple baseline):\n",
        _ => "test results (tuned, then defaults):\n",
    });
    let per_fold = report
        .tuning
        .as_ref()
        .map_or(&[][..], |t| &t.chosen_per_fold[..]);
    if per_fold.iter().any(|spec| spec != &per_fold[0]) {
        out.push_str(
            "(the tuned row fits each fold's own choice on that fold and is named by fold 1's)\n",
        );
    }
    out.push_str(&format_report(report));
    out
}
