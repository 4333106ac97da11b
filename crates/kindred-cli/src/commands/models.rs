//! `kindred models`: the `auto` spec, every model family with its parameters and defaults, and
//! the presets; `kindred models prune` deletes old versions from a store's model registry
//! (kindred-serving's `lifecycle::retention`, the same code as a server's `[retention] keep`).

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use kindred_eval::auto::DEFAULT_BUDGET_SECONDS;
use kindred_models::registry::{model_catalog, presets};
use kindred_serving::lifecycle::retention::{self, ArtifactOutcome, KeepReason, PruneReport};
use kindred_store::Store;

use super::Env;
use crate::table::plural;

#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Args {
    #[command(subcommand)]
    command: Option<ModelsCommand>,
    /// Print as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Subcommand)]
enum ModelsCommand {
    /// Delete old versions (registry rows and artifact directories) from a store, keeping the N
    /// newest, the live one and every one a draft or running experiment serves.
    Prune(PruneArgs),
}

#[derive(clap::Args)]
struct PruneArgs {
    /// The store (SQLite file or postgres:// URL) whose registry to prune.
    #[arg(long)]
    store: String,
    /// Versions to keep, newest first (by creation time); the live version and those
    /// experiments serve are kept besides.
    #[arg(long)]
    keep: usize,
    /// Only say what would be deleted.
    #[arg(long)]
    dry_run: bool,
    /// Only delete artifact directories inside this directory (others are left and reported).
    #[arg(long)]
    models_dir: Option<PathBuf>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

/// The spec's form, as listed.
const AUTO_SPEC: &str =
    "auto[:task=ranking|rating,budget=SECONDS,metric=ndcg@10|rmse|...,families=a+b+...,trials=N]";

pub fn run(args: Args, env: &Env) -> Result<()> {
    if let Some(ModelsCommand::Prune(prune_args)) = args.command {
        return prune(prune_args, env);
    }
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

fn prune(args: PruneArgs, _env: &Env) -> Result<()> {
    if args.keep == 0 {
        bail!(
            "--keep must be at least 1 (the live version and versions experiments serve are \
             kept besides)"
        );
    }
    let location = args.store.as_str();
    let is_postgres = location.starts_with("postgres://") || location.starts_with("postgresql://");
    // Opening a SQLite path creates the file: a mistyped path would prune a new empty store.
    if !is_postgres
        && !std::path::Path::new(location.strip_prefix("sqlite:").unwrap_or(location)).exists()
    {
        bail!("store {location} does not exist");
    }
    if let Some(dir) = &args.models_dir {
        if !dir.is_dir() {
            bail!("--models-dir {} is not a directory", dir.display());
        }
    }
    let runtime = super::runtime()?;
    let report = runtime.block_on(async {
        let store = Store::open(location)
            .await
            .with_context(|| format!("opening store {location}"))?;
        let report = retention::prune(
            &store,
            args.keep,
            args.dry_run,
            args.models_dir.as_deref(),
            None,
        )
        .await;
        store.close().await?;
        anyhow::Ok(report?)
    })?;
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&report)?)?;
        return Ok(());
    }
    print_report(&report)
}

fn print_report(report: &PruneReport) -> Result<()> {
    for version in &report.would_delete {
        outln!("would delete {version}")?;
    }
    for deleted in &report.deleted {
        let artifact = match &deleted.artifact {
            ArtifactOutcome::Removed { path } => format!("artifact removed: {path}"),
            ArtifactOutcome::Missing { path } => format!("no artifact at {path}"),
            ArtifactOutcome::Kept { path, reason } => {
                format!("artifact left in place: {path} ({reason})")
            }
        };
        outln!("deleted {} ({artifact})", deleted.version)?;
    }
    for (version, why) in &report.refused {
        outln!("kept {version}: {why}")?;
    }
    let kept: Vec<String> = report
        .kept
        .iter()
        .map(|k| {
            let why = match &k.reason {
                KeepReason::Newest => "newest".to_owned(),
                KeepReason::JustTrained => "just trained".to_owned(),
                KeepReason::Live => "live".to_owned(),
                KeepReason::Experiment { experiment } => format!("experiment {experiment}"),
            };
            format!("{} ({why})", k.version)
        })
        .collect();
    let kept = if kept.is_empty() {
        "none".to_owned()
    } else {
        kept.join(", ")
    };
    if report.dry_run {
        outln!(
            "dry run: {} would be deleted, nothing was; kept: {kept}",
            plural(report.would_delete.len() as u64, "version")
        )?;
    } else {
        outln!(
            "deleted {}; kept: {kept}",
            plural(report.deleted.len() as u64, "version")
        )?;
    }
    Ok(())
}
