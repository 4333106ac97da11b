//! `kindred train`: fit one model on all the (cleaned) data and save it; or, with `--store`,
//! train on what a store holds (its feedback and features: the feature store), register the
//! version in the store's model registry and, with `--publish`, make it live (a running
//! `kindred serve` on that store swaps it in within its watch interval).

use std::path::PathBuf;

use anyhow::{Context, Result};
use kindred_core::TrainSet;
use kindred_eval::auto::Selection;
use kindred_eval::build_algorithm;

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
    /// With --store: skip the offline metrics (one extra fit on a holdout of recent events).
    #[arg(long, requires = "store")]
    no_offline_eval: bool,
    /// With --store: at most this many users are held out for the offline metrics.
    #[arg(long, requires = "store", default_value_t = kindred_serving::OfflineEval::default().users)]
    eval_users: usize,
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
    if let Some(selection) = model.selection().and_then(Selection::from_json) {
        println!("{}", selection.summary());
    }
    println!(
        "trained {} on {} interactions in {seconds:.2}s; saved to {}",
        model.name(),
        train.data.len(),
        out.display()
    );
    Ok(())
}

fn train_in_store(args: &Args, location: &str, env: &Env) -> Result<()> {
    let spec = kindred_serving::TrainSpec {
        model: super::model_spec_arg(&args.model)?,
        positive: args.positive,
        seed: args.seed,
    };
    let artifacts = args
        .models_dir
        .clone()
        .unwrap_or_else(|| kindred_serving::config::artifacts_dir_for(location));
    super::runtime()?.block_on(async {
        let store = kindred_store::Store::open(location)
            .await
            .with_context(|| format!("opening store {location}"))?;
        let ctx = env.fit_context(args.seed);
        let eval = kindred_serving::OfflineEval {
            enabled: !args.no_offline_eval,
            users: args.eval_users,
            ..kindred_serving::OfflineEval::default()
        };
        let record = if args.publish {
            kindred_serving::train_and_publish_with(&store, &artifacts, &spec, ctx, &eval).await?
        } else {
            kindred_serving::train_and_register_with(&store, &artifacts, &spec, ctx, &eval).await?
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
        if let Some(selection) = record
            .model
            .metrics
            .get("selection")
            .and_then(Selection::from_json)
        {
            println!("{}", selection.summary());
        }
        println!("{}", offline_summary(&record.model.metrics));
        Ok(())
    })
}

/// One line saying what the version's offline evaluation measured (or why there is none).
fn offline_summary(metrics: &serde_json::Value) -> String {
    let Some(offline) = metrics.get("offline") else {
        return "offline metrics: not measured (turned off)".into();
    };
    if let Some(error) = offline.get("error").and_then(|e| e.as_str()) {
        return format!("offline metrics: not measured: {error}");
    }
    let values: Vec<String> = kindred_serving::lifecycle::OFFLINE_METRICS
        .iter()
        .filter_map(|name| Some(format!("{name}={:.4}", offline.get(*name)?.as_f64()?)))
        .collect();
    let users = offline.get("users").and_then(|u| u.as_u64()).unwrap_or(0);
    let curve = metrics
        .get("curve")
        .and_then(|c| c.as_array())
        .map_or(0, Vec::len);
    format!(
        "offline metrics ({users} held-out users, temporal holdout of recent events): {}; \
         learning curve: {}",
        values.join(", "),
        if curve == 0 {
            "none (the model reported no epochs: not iterative, or loss reporting off)".to_owned()
        } else {
            format!("{curve} epochs recorded")
        }
    )
}

#[cfg(test)]
mod offline_summary_tests {
    use super::offline_summary;
    use serde_json::json;

    #[test]
    fn names_the_metrics_or_why_there_are_none() {
        let line = offline_summary(&json!({
            "offline": {"ndcg@10": 0.25, "recall@10": 0.5, "precision@10": 0.125,
                        "map@10": 0.2, "coverage@10": 0.75, "users": 40},
            "curve": [{"epoch": 0, "loss": 1.0}, {"epoch": 1, "loss": 0.5}]
        }));
        assert!(line.contains("ndcg@10=0.2500") && line.contains("coverage@10=0.7500"));
        assert!(line.contains("40 held-out users") && line.contains("2 epochs recorded"));
        assert!(offline_summary(&json!({})).contains("not measured"));
        let err = offline_summary(&json!({"offline": {"error": "too few users"}}));
        assert!(err.ends_with("not measured: too few users"));
        assert!(offline_summary(&json!({"offline": {"ndcg@10": 0.1}})).contains("none"));
    }
}
