//! `kindred models`: the `auto` spec, every model family with its parameters and defaults, and
//! the presets.

use anyhow::Result;
use kindred_eval::auto::DEFAULT_BUDGET_SECONDS;
use kindred_models::registry::{model_catalog, presets};

use super::Env;

#[derive(clap::Args)]
pub struct Args {
    /// Print as JSON.
    #[arg(long)]
    json: bool,
}

/// The spec's form, as listed.
const AUTO_SPEC: &str =
    "auto[:task=ranking|rating,budget=SECONDS,metric=ndcg@10|rmse|...,families=a+b+...,trials=N]";

pub fn run(args: Args, _env: &Env) -> Result<()> {
    let catalog = model_catalog();
    if args.json {
        let presets: Vec<_> = presets()
            .iter()
            .map(|(name, spec)| serde_json::json!({ "preset": name, "spec": spec }))
            .collect();
        outln!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "auto": { "spec": AUTO_SPEC, "default_budget_seconds": DEFAULT_BUDGET_SECONDS },
                "models": catalog,
                "presets": presets
            }))?
        )?;
        return Ok(());
    }
    outln!(
        "auto: chooses and tunes a family on your data (validation rows carved from the training \
         rows), within a time budget (default {DEFAULT_BUDGET_SECONDS:.0} s), then refits the winner\n    {AUTO_SPEC}\n"
    )?;
    for model in &catalog {
        outln!("{} ({:?}): {}", model.name, model.task, model.summary)?;
        for p in &model.params {
            outln!(
                "    {:<16} default {:<22} {}",
                p.name,
                p.default_text(),
                p.help
            )?;
        }
    }
    outln!()?;
    for (name, spec) in presets() {
        outln!("preset {name} = {spec} (a fixed configuration chosen on MovieLens)")?;
    }
    Ok(())
}
