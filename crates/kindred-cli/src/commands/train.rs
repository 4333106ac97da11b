//! `kindred train`: fit one model on all the (cleaned) data and save it; or, with `--store`,
//! train on what a store holds (its feedback and features: the feature store), register the
//! version in the store's model registry and, with `--publish`, make it live (a running
//! `kindred serve` on that store swaps it in within its watch interval).

use std::path::PathBuf;

use anyhow::{Context, Result};
use kindred_core::TrainSet;
use kindred_models::build_algorithm;

use super::Env;
use crate::data::DataArgs;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    data: Option<DataArgs>,
    /// Train on a store (SQLite file or postgres:// URL) instead of --data, and register the
    /// version in its model registry.
    #[arg(long, conflicts_with = "data")]
    store: Option<String>,
    /// With --store: make the new version live.
    #[arg(long, requires = "store")]
    publish: bool,
    /// With --store: where artifacts go (default: `<store file>.models/`).
    #[arg(long, requires = "store")]
    models_dir: Option<PathBuf>,
    /// Model spec or preset, or @FILE holding one (`kindred tune --best` / `--json` output).
    #[arg(long)]
    model: String,
    /// Directory to save the model into (manifest.json + model.safetensors); with --data.
    #[arg(long, required_unless_present = "store", conflicts_with = "store")]
    out: Option<PathBuf>,
    /// Seed of model fitting.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Keep only ratings >= T, as implicit positives (as the ranking protocols do).
    #[arg(long)]
    positive: Option<f32>,
}

pub fn run(args: Args, env: &Env) -> Result<()> {
    if let Some(store) = &args.store {
        return train_in_store(&args, store, env);
    }
    let (Some(data), Some(out)) = (&args.data, &args.out) else {
        anyhow::bail!("give --data SPEC --out DIR, or --store STORE");
    };
    let dataset = data.load(env.quiet)?;
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
        .save(out)
        .with_context(|| format!("saving model to {}", out.display()))?;
    println!(
        "trained {} on {} interactions in {seconds:.2}s; saved to {}",
        algorithm.name(),
        train.data.len(),
        out.display()
    );
    Ok(())
}

fn train_in_store(args: &Args, location: &str, env: &Env) -> Result<()> {
    let spec = kindred_server::TrainSpec {
        model: super::model_spec_arg(&args.model)?,
        positive: args.positive,
        seed: args.seed,
    };
    let artifacts = args
        .models_dir
        .clone()
        .unwrap_or_else(|| kindred_server::config::artifacts_dir_for(location));
    super::runtime()?.block_on(async {
        let store = kindred_store::Store::open(location)
            .await
            .with_context(|| format!("opening store {location}"))?;
        let ctx = env.fit_context(args.seed);
        let record = if args.publish {
            kindred_server::train_and_publish(&store, &artifacts, &spec, ctx).await?
        } else {
            kindred_server::train_and_register(&store, &artifacts, &spec, ctx).await?
        };
        println!(
            "trained {} version {} ({}); artifact {}; {}",
            record.model.algorithm,
            record.model.version,
            record.model.metrics,
            record.model.artifact,
            if record.live {
                "live now"
            } else {
                "registered, not live (activate with POST /v1/models/VERSION/activate)"
            }
        );
        Ok(())
    })
}
