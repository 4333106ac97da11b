//! `kindred train`: fit one model on all the (cleaned) data and save it.

use std::path::PathBuf;

use anyhow::{Context, Result};
use kindred_core::TrainSet;
use kindred_models::build_algorithm;

use super::Env;
use crate::data::DataArgs;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    data: DataArgs,
    /// Model spec or preset, or @FILE holding one (`kindred tune --best` / `--json` output).
    #[arg(long)]
    model: String,
    /// Directory to save the model into (manifest.json + model.safetensors).
    #[arg(long)]
    out: PathBuf,
    /// Seed of model fitting.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Keep only ratings >= T, as implicit positives (as the ranking protocols do).
    #[arg(long)]
    positive: Option<f32>,
}

pub fn run(args: Args, env: &Env) -> Result<()> {
    let dataset = args.data.load(env.quiet)?;
    let interactions = match args.positive {
        Some(t) => dataset.interactions.positives(t),
        None => dataset.interactions.clone(),
    };
    let train = TrainSet::new(interactions)
        .with_features(dataset.item_features.clone(), dataset.user_features.clone());
    let algorithm = build_algorithm(&super::model_spec_arg(&args.model)?)?;
    let started = std::time::Instant::now();
    let model = algorithm.fit(&train, &env.fit_context(args.seed))?;
    let seconds = started.elapsed().as_secs_f64();
    model
        .save(&args.out)
        .with_context(|| format!("saving model to {}", args.out.display()))?;
    println!(
        "trained {} on {} interactions in {seconds:.2}s; saved to {}",
        algorithm.name(),
        train.data.len(),
        args.out.display()
    );
    Ok(())
}
