//! `kindred quickstart`: the main job end to end on the embedded default. Loads (or generates)
//! data, prints the data-quality report, evaluates baselines and the strongest models under the
//! standard protocols,
//! trains the `ranking-best` preset on all the data, saves it and shows sample recommendations.

use std::path::PathBuf;

use anyhow::Result;
use kindred_core::{Protocol, TrainSet};
use kindred_data::preprocess::PipelineConfig;
use kindred_eval::{evaluate, EvalOptions};
use kindred_models::build_algorithm;

use super::eval::format_report;
use super::recommend::recommend_for;
use super::Env;
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
    let has_ratings = dataset.interactions.has_ratings();
    if has_ratings && args.folds >= 2 {
        let protocol = Protocol::parse(&format!("kfold:{}", args.folds))?;
        let models = ["random", "baseline", "svd", "svdpp", "rating-best"].map(String::from);
        println!(
            "== rating prediction\n{}",
            format_report(&evaluate(&dataset, &protocol, &models, &options)?)
        );
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
    println!(
        "== top-N ranking\n{}",
        format_report(&evaluate(&dataset, &protocol, &models, &options)?)
    );

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
