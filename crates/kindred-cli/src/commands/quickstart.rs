//! `kindred quickstart`: the main job end to end on the embedded default. Loads (or generates)
//! data, prints the data-quality report, evaluates baselines and the strongest models under the
//! standard protocols (writing the results and an HTML report of them), trains the
//! `ranking-best` preset on all the data, saves it and shows sample recommendations.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use kindred_core::{Protocol, TrainSet};
use kindred_data::preprocess::PipelineConfig;
use kindred_eval::{evaluate, EvalOptions, EvalReport};
use kindred_models::build_algorithm;

use super::eval::format_report;
use super::recommend::recommend_for;
use super::{write_json, Env};
use crate::data::DataArgs;

/// The dataset used when none is given: generated, so the quick start needs no download.
pub const DEFAULT_DATA: &str = "synthetic:users=2000,items=1000,seed=42";

#[derive(clap::Args)]
pub struct Args {
    /// Data spec (default: a seeded synthetic dataset).
    #[arg(long, default_value = DEFAULT_DATA)]
    data: String,
    /// Where to save the trained model.
    #[arg(long, default_value = "kindred-quickstart/model")]
    out: PathBuf,
    /// Folds of the rating evaluation (set 0 to skip it).
    #[arg(long, default_value_t = 5)]
    folds: usize,
    /// Where to write the evaluation results (`rating.json`, `ranking.json`) and their HTML
    /// report (`report.html`); default: the folder that holds `--out`.
    #[arg(long)]
    results: Option<PathBuf>,
}

pub fn run(args: Args, env: &Env) -> Result<()> {
    let data_args = DataArgs {
        data: args.data.clone(),
        columns: None,
        skip_invalid: false,
        pipeline: None,
        item_features: None,
        user_features: None,
    };
    let dataset = data_args.load(env.quiet)?;
    println!(
        "== data quality\n{}",
        kindred_data::quality::report(&dataset, &PipelineConfig::default())
    );

    let options = EvalOptions {
        threads: env.threads,
        progress: env.progress.clone(),
        cancel: env.cancel.clone(),
        ..EvalOptions::default()
    };
    let results_dir = args.results.clone().unwrap_or_else(|| {
        args.out
            .parent()
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
    });
    std::fs::create_dir_all(&results_dir)
        .with_context(|| format!("creating {}", results_dir.display()))?;
    let mut sources = Vec::new();
    let has_ratings = dataset.interactions.has_ratings();
    if has_ratings && args.folds >= 2 {
        let protocol = Protocol::parse(&format!("kfold:{}", args.folds))?;
        let models = ["random", "baseline", "svd", "svdpp", "rating-best"].map(String::from);
        let report = evaluate(&dataset, &protocol, &models, &options)?;
        println!("== rating prediction\n{}", format_report(&report));
        sources.push(save_results(&results_dir, "rating", report)?);
    }
    let ranking_protocol = if has_ratings {
        "temporal:0.2,positive>=4"
    } else {
        "temporal:0.2"
    };
    let protocol = Protocol::parse(ranking_protocol)?;
    let models = [
        "random",
        "popularity:half_life_days=60",
        "baseline",
        "als",
        "ease",
        "ranking-best",
    ]
    .map(String::from);
    let report = evaluate(&dataset, &protocol, &models, &options)?;
    println!("== top-N ranking\n{}", format_report(&report));
    sources.push(save_results(&results_dir, "ranking", report)?);
    let page = results_dir.join("report.html");
    std::fs::write(&page, kindred_report::render_html(&sources))
        .with_context(|| format!("writing {}", page.display()))?;
    println!("== report of both evaluations: {}\n", page.display());

    let interactions = protocol.prepare(&dataset.interactions);
    let train = TrainSet::new(interactions)
        .with_features(dataset.item_features.clone(), dataset.user_features.clone());
    let algorithm = build_algorithm("ranking-best")?;
    let model = algorithm.fit(&train, &env.fit_context(42))?;
    model.save(&args.out)?;
    println!(
        "== trained ranking-best ({}) on all data, saved to {}",
        algorithm.name(),
        args.out.display()
    );
    let sample: Vec<String> = model
        .fitted()
        .users
        .externals()
        .iter()
        .take(3)
        .cloned()
        .collect();
    for (user, list) in recommend_for(model.as_ref(), &sample, 5) {
        let items: Vec<String> = list
            .iter()
            .map(|s| format!("{} ({:.3})", model.fitted().items.external(s.item), s.score))
            .collect();
        println!("{user}: {}", items.join(", "));
    }
    println!(
        "\nnext: kindred recommend --model {} --user {} --k 10",
        args.out.display(),
        sample.first().map_or("USER", String::as_str)
    );
    Ok(())
}

/// Writes one evaluation's JSON result into `dir` and keeps it for the report.
fn save_results(dir: &Path, name: &str, report: EvalReport) -> Result<kindred_report::Source> {
    let path = dir.join(format!("{name}.json"));
    write_json(&path, &report)?;
    Ok(kindred_report::Source { path, report })
}
