//! `kindred models`: every model family with its parameters and defaults, and the presets.

use anyhow::Result;
use kindred_models::registry::{model_catalog, presets};

use super::Env;

#[derive(clap::Args)]
pub struct Args {
    /// Print as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args, _env: &Env) -> Result<()> {
    let catalog = model_catalog();
    if args.json {
        let presets: Vec<_> = presets()
            .iter()
            .map(|(name, spec)| serde_json::json!({ "preset": name, "spec": spec }))
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({ "models": catalog, "presets": presets })
            )?
        );
        return Ok(());
    }
    for model in &catalog {
        println!("{} ({:?}): {}", model.name, model.task, model.summary);
        for p in &model.params {
            println!(
                "    {:<16} default {:<22} {}",
                p.name,
                p.default_text(),
                p.help
            );
        }
    }
    println!();
    for (name, spec) in presets() {
        println!("preset {name} = {spec}");
    }
    Ok(())
}
