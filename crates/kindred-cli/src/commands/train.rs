//! `kindred train`: fit one model on all the (cleaned) data and save it; or, with `--store`,
//! train on what a store holds (its feedback and features: the feature store), register the
//! version in the store's model registry and, with `--publish`, make it live (a running
//! `kindred serve` on that store swaps it in within its watch interval). Both go through
//! [`kindred_serving::fit_version`], the function the server's `POST /v1/models` and scheduler
//! call, so the same data, pipeline and seed give the same model wherever it is trained.

use std::path::PathBuf;

use anyhow::{Context, Result};
use kindred_eval::auto::Selection;
use kindred_eval::build_algorithm;

use super::Env;
use crate::data::{DataArgs, PipelineArgs};
use crate::table::plural;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    data: Option<DataArgs>,
    /// The cleaning pipeline, applied before the positive threshold (with --data or --store).
    #[command(flatten)]
    cleaning: PipelineArgs,
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
    #[arg(long, required_unless_present = "like")]
    model: Option<String>,
    /// With --store: retrain exactly as this registered version was trained (its model,
    /// threshold, seed and cleaning pipeline, from the registry).
    #[arg(long, requires = "store", conflicts_with_all = ["model", "positive", "pipeline"])]
    like: Option<String>,
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
    // The spec and pipeline are checked before the (slow) data load, so a typo fails at once.
    let spec = spec_of_args(&args)?;
    let dataset = data.load(env.quiet)?;
    let titles = dataset
        .item_features
        .as_deref()
        .and_then(crate::titles::from_features);
    let eval = kindred_serving::OfflineEval {
        enabled: false,
        ..kindred_serving::OfflineEval::default()
    };
    let fitted = kindred_serving::fit_version(
        &dataset,
        &data.data,
        &spec,
        env.fit_context(args.seed),
        &eval,
    )?;
    if !env.quiet {
        if let Some(cleaning) = &fitted.cleaning {
            eprintln!("{cleaning}");
        }
    }
    kindred_serving::save_version(&fitted, out)
        .with_context(|| format!("saving model to {}", out.display()))?;
    // `kindred recommend` shows these beside the ids.
    if let Some(titles) = &titles {
        crate::titles::save(out, titles)?;
    }
    let model = &fitted.model;
    if let Some(selection) = model.selection().and_then(Selection::from_json) {
        outln!("{}", selection.summary())?;
    }
    outln!(
        "trained {} on {} interactions in {:.2}s; saved to {}",
        model.name(),
        fitted.train.data.len(),
        fitted.metrics["fit_seconds"].as_f64().unwrap_or(0.0),
        out.display()
    )?;
    Ok(())
}

/// The spec `--model`, `--positive`, `--seed` and `--pipeline` give.
fn spec_of_args(args: &Args) -> Result<kindred_serving::TrainSpec> {
    let model = args
        .model
        .as_deref()
        .context("give --model (or, with --store, --like VERSION)")?;
    let spec = kindred_serving::TrainSpec {
        positive: args.positive,
        seed: args.seed,
        pipeline: args.cleaning.config()?,
        ..kindred_serving::TrainSpec::new(super::model_spec_arg(model)?)
    };
    build_algorithm(&spec.model)?;
    Ok(spec)
}

fn train_in_store(args: &Args, location: &str, env: &Env) -> Result<()> {
    let like = args.like.as_deref();
    let spec = match like {
        Some(_) => None,
        None => Some(spec_of_args(args)?),
    };
    let artifacts = args
        .models_dir
        .clone()
        .unwrap_or_else(|| kindred_serving::config::artifacts_dir_for(location));
    super::runtime()?.block_on(async {
        let store = kindred_store::Store::open(location)
            .await
            .with_context(|| format!("opening store {location}"))?;
        let spec = match (spec, like) {
            (Some(spec), _) => spec,
            (None, Some(version)) => {
                let record = store
                    .get_model(version)
                    .await?
                    .with_context(|| format!("no version `{version}` in {location}"))?;
                kindred_serving::lifecycle::training::recorded_spec(&record).with_context(|| {
                    format!("version `{version}` records no spec to retrain it with")
                })?
            }
            (None, None) => anyhow::bail!("give --model or --like"),
        };
        let ctx = env.fit_context(spec.seed);
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
        outln!(
            "trained {} version {} {}; artifact {}; {}",
            record.model.algorithm,
            record.model.version,
            training_summary(&record.model.metrics),
            record.model.artifact,
            if record.live {
                "live now"
            } else {
                "registered, not live (activate with POST /v1/models/VERSION/activate)"
            }
        )?;
        if let Some(selection) = record
            .model
            .metrics
            .get("selection")
            .and_then(Selection::from_json)
        {
            outln!("{}", selection.summary())?;
        }
        outln!(
            "{}",
            offline_summary(&record.model.algorithm, &record.model.metrics)
        )?;
        Ok(())
    })
}

/// What the version was trained on and how long it took, from its stored metrics.
fn training_summary(metrics: &serde_json::Value) -> String {
    let count = |key: &str| metrics.get(key).and_then(|v| v.as_u64()).unwrap_or(0);
    let seconds = metrics
        .get("fit_seconds")
        .and_then(|v| v.as_f64())
        .unwrap_or(0.0);
    format!(
        "on {} ({}, {}) in {seconds:.2}s",
        plural(count("interactions"), "interaction"),
        plural(count("users"), "user"),
        plural(count("items"), "item"),
    )
}

/// One line saying what the version's offline evaluation measured (or why there is none).
fn offline_summary(family: &str, metrics: &serde_json::Value) -> String {
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
    // Families that compute their loss only on request say how to ask for it.
    let loss_switch = kindred_models::model_catalog()
        .into_iter()
        .find(|m| m.name == family)
        .and_then(|m| m.params.into_iter().find(|p| p.name == "training_loss"));
    let curve = metrics
        .get("curve")
        .and_then(|c| c.as_array())
        .map_or(0, Vec::len);
    format!(
        "offline metrics ({}, temporal holdout of recent events): {}; learning curve: {}",
        plural(users, "held-out user"),
        values.join(", "),
        match (curve, loss_switch) {
            (0, Some(_)) => format!(
                "none ({family} computes its training loss only when asked: {family}:training_loss=true)"
            ),
            (0, None) => format!("none ({family} is not fitted in epochs)"),
            (n, _) => plural(n as u64, "epoch") + " recorded",
        }
    )
}

#[cfg(test)]
mod offline_summary_tests {
    use super::offline_summary;
    use serde_json::json;

    #[test]
    fn names_the_metrics_or_why_there_are_none() {
        let line = offline_summary(
            "bpr",
            &json!({
                "offline": {"ndcg@10": 0.25, "recall@10": 0.5, "precision@10": 0.125,
                            "map@10": 0.2, "coverage@10": 0.75, "users": 40},
                "curve": [{"epoch": 0, "loss": 1.0}, {"epoch": 1, "loss": 0.5}]
            }),
        );
        assert!(line.contains("ndcg@10=0.2500") && line.contains("coverage@10=0.7500"));
        assert!(line.contains("40 held-out users") && line.contains("2 epochs recorded"));
        assert!(offline_summary("als", &json!({})).contains("not measured"));
        let err = offline_summary("als", &json!({"offline": {"error": "too few users"}}));
        assert!(err.ends_with("not measured: too few users"));
        let one = json!({"offline": {"ndcg@10": 0.1, "users": 1}});
        let line = offline_summary("als", &one);
        assert!(
            line.contains("(1 held-out user,")
                && line.contains(
                    "none (als computes its training loss only when asked: als:training_loss=true)"
                ),
            "{line}"
        );
        let line = offline_summary("ease", &one);
        assert!(
            line.ends_with("none (ease is not fitted in epochs)"),
            "{line}"
        );
    }

    #[test]
    fn training_summary_is_a_sentence_not_json() {
        let line = super::training_summary(&json!({
            "fit_seconds": 1.5, "interactions": 1, "users": 1, "items": 2, "store_events": 9
        }));
        assert_eq!(line, "on 1 interaction (1 user, 2 items) in 1.50s");
    }
}
