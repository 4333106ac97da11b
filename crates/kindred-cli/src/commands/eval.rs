//! `kindred eval`: fit and score models under an evaluation protocol; print a table and
//! optionally write the JSON result and the exact top-K lists.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Result;
use kindred_core::Protocol;
use kindred_eval::{evaluate, Comparison, EvalOptions, EvalReport};
use kindred_rank::RankConfig;

use super::{write_json, Env};
use crate::data::{DataArgs, PipelineArgs};
use crate::table::{plural, render, thousands};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    data: DataArgs,
    #[command(flatten)]
    cleaning: PipelineArgs,
    /// Protocol: kfold:5, temporal:0.2, random:0.2, loo, coldstart-items:0.1, coldstart-users:0.1
    /// (options: ,positive>=4 ,seed=S ,fold-in=N).
    #[arg(long)]
    protocol: String,
    /// Model spec `name[:key=value,...]`, preset, or @FILE holding one; repeat for several models.
    #[arg(long = "model", required = true)]
    models: Vec<String>,
    /// Cut-off of the ranking metrics.
    #[arg(long, default_value_t = 10, allow_negative_numbers = true, value_parser = crate::args::at_least_one)]
    k: usize,
    /// Write the results as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write the exact top-K lists the ranking metrics were computed from (user,item,rank,score).
    #[arg(long)]
    export_recs: Option<PathBuf>,
    /// Seed of model fitting.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Skip per-segment breakdowns.
    #[arg(long)]
    no_segments: bool,
    /// Skip the per-user AUC (one sort of all candidates per user).
    #[arg(long)]
    no_auc: bool,
    /// Bootstrap resamples for confidence intervals and paired comparisons (0: none).
    #[arg(long, default_value_t = 1000)]
    bootstrap: usize,
    /// Ranking protocols: record metric@K curves for K = 1..=N (0: none).
    #[arg(long, default_value_t = 50)]
    curve_k: usize,
    /// Also compare every later model with the first on this metric (e.g. `recall@10`; repeat
    /// for several); the primary metric (`ndcg@K`, or `rmse`) is always compared.
    #[arg(long = "compare-on", value_name = "METRIC")]
    compare_on: Vec<String>,
    /// Show each metric's 95% bootstrap interval `value [lo, hi]` in the table instead of the
    /// standard deviation over folds (needs --bootstrap > 0).
    #[arg(long)]
    ci: bool,
    /// Ranking-layer config (TOML, see examples/rank/): re-rank each user's top candidates for
    /// diversity, calibration or the long tail before the metrics are computed.
    #[arg(long)]
    rank: Option<PathBuf>,
}

pub fn run(args: Args, env: &Env) -> Result<()> {
    let protocol = Protocol::parse(&args.protocol)?;
    // Read the rank config before the (slow) data load so a bad config fails fast.
    let rank = args
        .rank
        .as_ref()
        .map(|path| RankConfig::from_file(path).map(Arc::new))
        .transpose()?;
    // Every spec is checked before the (slow) data load, so a typo fails at once.
    let models = args
        .models
        .iter()
        .map(|m| super::model_spec_arg(m))
        .collect::<Result<Vec<_>>>()?;
    for spec in &models {
        kindred_eval::build_algorithm_for(spec, &protocol)?;
    }
    check_compare_on(&args.compare_on, args.k, args.bootstrap)?;
    let dataset = args.data.load_cleaned(&args.cleaning, env.quiet)?;
    let options = EvalOptions {
        k: args.k,
        seed: args.seed,
        threads: env.threads,
        progress: env.progress.clone(),
        cancel: env.cancel.clone(),
        segments: !args.no_segments,
        auc: !args.no_auc,
        export_recs: args.export_recs.clone(),
        bootstrap: args.bootstrap,
        curve_k: args.curve_k,
        max_folds: None,
        rank,
    };
    let mut report = evaluate(&dataset, &protocol, &models, &options)?;
    add_comparisons(&mut report, &args.compare_on, args.bootstrap, args.seed)?;
    out!("{}", format_report_with(&report, args.ci))?;
    for result in &report.results {
        if let Some(path) = &result.recs_file {
            env.note(format!(
                "wrote the top-{} lists of {} to {}",
                args.k,
                label(result),
                path.display()
            ));
        }
    }
    if let Some(path) = &args.json {
        write_json(path, &report)?;
        env.note(format!("wrote {}", path.display()));
    }
    Ok(())
}

/// Refuses, before the data is loaded, `--compare-on` metrics that no evaluation has per user
/// or per pair, and `--compare-on` without resampling.
fn check_compare_on(metrics: &[String], k: usize, bootstrap: usize) -> Result<()> {
    if metrics.is_empty() {
        return Ok(());
    }
    if bootstrap == 0 {
        anyhow::bail!(
            "--compare-on needs --bootstrap above 0 (paired comparisons resample users or pairs)"
        );
    }
    let mut known = vec!["rmse".to_owned(), "mae".to_owned()];
    known.extend(
        ["ndcg", "precision", "recall", "map", "mrr", "hit"]
            .iter()
            .map(|m| format!("{m}@{k}")),
    );
    for metric in metrics {
        if !known.contains(metric) {
            anyhow::bail!(
                "--compare-on: no metric `{metric}` (with --k {k}: {})",
                known.join(", ")
            );
        }
    }
    Ok(())
}

/// Compares every later result with the first on each of `metrics` not compared already (with
/// the evaluation's seed, as the runner compares the primary metric).
fn add_comparisons(
    report: &mut EvalReport,
    metrics: &[String],
    resamples: usize,
    seed: u64,
) -> Result<()> {
    let Some((first, rest)) = report.results.split_first() else {
        return Ok(());
    };
    for metric in metrics {
        if !first.metrics.contains_key(metric) {
            let known: Vec<&str> = first.metrics.keys().map(String::as_str).collect();
            anyhow::bail!(
                "--compare-on: no metric `{metric}` in these results (they have {})",
                known.join(", ")
            );
        }
        if report.comparisons.iter().any(|c| &c.metric == metric) {
            continue;
        }
        for result in rest {
            let comparison = kindred_eval::compare_results(first, result, metric, resamples, seed)?;
            report.comparisons.push(comparison);
        }
    }
    Ok(())
}

/// Metric columns in display order; only those present in the results are shown.
fn metric_columns(report: &EvalReport) -> Vec<String> {
    let k = report.k;
    let order = [
        "rmse".to_owned(),
        "mae".to_owned(),
        format!("ndcg@{k}"),
        format!("precision@{k}"),
        format!("recall@{k}"),
        format!("map@{k}"),
        format!("mrr@{k}"),
        format!("hit@{k}"),
        "auc".to_owned(),
        format!("coverage@{k}"),
        format!("diversity@{k}"),
        format!("novelty@{k}"),
        format!("popularity@{k}"),
    ];
    order
        .into_iter()
        .filter(|m| report.results.iter().any(|r| r.metrics.contains_key(m)))
        .collect()
}

/// How a result is named on the terminal: the spec, with the preset it came from.
fn label(r: &kindred_eval::ModelResult) -> String {
    match &r.preset {
        Some(preset) => format!("{preset} ({})", r.spec),
        None => r.spec.clone(),
    }
}

/// The terminal summary: header lines, then one row per model (value ±std over folds).
pub fn format_report(report: &EvalReport) -> String {
    format_report_with(report, false)
}

/// The terminal summary; with `ci`, metrics that have a bootstrap interval show it as
/// `value [lo, hi]` instead of the standard deviation over folds.
pub fn format_report_with(report: &EvalReport, ci: bool) -> String {
    let columns = metric_columns(report);
    let mut headers = vec!["model".to_owned()];
    headers.extend(columns.iter().cloned());
    headers.extend(["fit s".to_owned(), "test s".to_owned()]);
    let rows: Vec<Vec<String>> = report
        .results
        .iter()
        .map(|r| {
            let mut row = vec![label(r)];
            for c in &columns {
                let interval = r.metrics_ci.get(c).filter(|_| ci);
                row.push(match (r.metrics.get(c), interval, r.metrics_std.get(c)) {
                    (Some(v), Some([lo, hi]), _) => format!("{v:.4} [{lo:.4}, {hi:.4}]"),
                    (Some(v), None, Some(sd)) => format!("{v:.4} ±{sd:.4}"),
                    (Some(v), None, None) => format!("{v:.4}"),
                    (None, _, _) => "-".to_owned(),
                });
            }
            row.push(format!("{:.2}", r.fit_seconds));
            row.push(format!("{:.2}", r.predict_seconds));
            row
        })
        .collect();
    let d = &report.dataset;
    let mut out = format!(
        "dataset {}: {}, {}, {}\nprotocol {} ({}), {}",
        d.name,
        plural(d.interactions as u64, "interaction"),
        plural(d.users as u64, "user"),
        plural(d.items as u64, "item"),
        report.protocol,
        plural(d.protocol_interactions as u64, "interaction"),
        plural(
            report.results.first().map_or(0, |r| r.per_fold.len()) as u64,
            "fold"
        ),
    );
    if let Some(first) = report.results.first().and_then(|r| r.per_fold.first()) {
        out.push_str(&format!(
            "; train {}, test {}, evaluated {}",
            thousands(first.train),
            thousands(first.test),
            thousands(first.evaluated)
        ));
    }
    if let Some(rank) = &report.rank {
        // Re-ranked numbers must never be mistaken for the model's own.
        out.push_str(&format!("\nlists re-ranked with {rank}"));
    }
    out.push_str("\n\n");
    out.push_str(&render(&headers, &rows));
    for c in &report.comparisons {
        out.push_str(&format_comparison(c, report));
        out.push('\n');
    }
    for r in &report.results {
        if let Some(sources) = &r.rank_sources {
            let shares: Vec<String> = sources
                .iter()
                .map(|(source, share)| format!("{source} {:.1}%", 100.0 * share))
                .collect();
            out.push_str(&format!(
                "{}: listed items by source: {}\n",
                label(r),
                shares.join(", ")
            ));
        }
        for fold in &r.per_fold {
            let selection = fold.selection.as_ref();
            if let Some(selection) = selection.and_then(kindred_eval::auto::Selection::from_json) {
                out.push_str(&format!(
                    "{} fold {}: {}\n",
                    label(r),
                    fold.fold + 1,
                    selection.summary()
                ));
            }
        }
        if let Some(n) = r.impossible_predictions.filter(|&n| n > 0.0) {
            out.push_str(&format!(
                "{}: {n:.0} test pairs per fold had an unknown user or item (predicted from the fallback)\n",
                label(r)
            ));
        }
        if let Some(seg) = &r.segments {
            if !seg.gaps.is_empty() {
                let gaps: Vec<String> = seg
                    .gaps
                    .iter()
                    .map(|(k, v)| format!("{k} {v:.4}"))
                    .collect();
                out.push_str(&format!(
                    "{} segment gaps (best - worst): {}\n",
                    label(r),
                    gaps.join(", ")
                ));
            }
        }
    }
    out
}

/// The name a spec is shown under in `report`'s table (with its preset), so that a comparison
/// line names a model exactly as the table above it does.
fn label_of(report: &EvalReport, spec: &str) -> String {
    report
        .results
        .iter()
        .find(|r| r.spec == spec)
        .map_or_else(|| spec.to_owned(), label)
}

/// One comparison line: `svd vs baseline: rmse -0.0312 [-0.0330, -0.0295], p < 0.001 (paired
/// randomisation test, 1,000,209 test pairs): better`.
pub fn format_comparison(c: &Comparison, report: &EvalReport) -> String {
    let p = if c.p_value < 0.001 {
        "p < 0.001".to_owned()
    } else {
        format!("p = {:.3}", c.p_value)
    };
    // Rating metrics pair test pairs; ranking metrics pair users.
    let unit = if matches!(c.metric.as_str(), "rmse" | "mae") {
        "test pair"
    } else {
        "user"
    };
    format!(
        "{} vs {}: {} {:+.4} [{:+.4}, {:+.4}], {p} ({}, {}): {}",
        label_of(report, &c.model),
        label_of(report, &c.baseline),
        c.metric,
        c.difference,
        c.ci[0],
        c.ci[1],
        c.test,
        plural(c.n as u64, unit),
        c.verdict
    )
}
