//! `kindred models`: the `auto` spec, every model family with its parameters and defaults, and
//! the presets; `kindred models prune` deletes old versions from a store's model registry
//! (kindred-serving's `lifecycle::retention`, the same code as a server's `[retention] keep`);
//! `kindred models register` adds a saved model directory (from `kindred train --out` or the
//! Python package's `Model.save`) to a store's registry, so a server on that store serves it.

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
    /// Register a saved model directory (`kindred train --out`, Python's `Model.save`) as a new
    /// version of a store's registry; with --publish make it live.
    Register(RegisterArgs),
}

#[derive(clap::Args)]
struct RegisterArgs {
    /// The store (SQLite file or postgres:// URL) whose registry gets the version.
    #[arg(long)]
    store: String,
    /// The saved model directory (manifest.json + model.safetensors).
    #[arg(long)]
    artifact: PathBuf,
    /// Where the version's copy of the model goes (default: `<store file>.models/`).
    #[arg(long)]
    models_dir: Option<PathBuf>,
    /// Make the new version live (a running `kindred serve` on the store swaps it in).
    #[arg(long)]
    publish: bool,
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
    match args.command {
        Some(ModelsCommand::Prune(prune_args)) => return prune(prune_args, env),
        Some(ModelsCommand::Register(register_args)) => return register(register_args),
        None => {}
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

fn register(args: RegisterArgs) -> Result<()> {
    // Loaded first: a directory that is not a model fails before the store is touched.
    let model = kindred_models::load_model(&args.artifact)
        .with_context(|| format!("reading the model at {}", args.artifact.display()))?;
    let algorithm = model.name();
    let params = model.params();
    let location = args.store.as_str();
    let is_postgres = location.starts_with("postgres://") || location.starts_with("postgresql://");
    // Opening a SQLite path creates the file: a mistyped path would register into a new store.
    if !is_postgres
        && !std::path::Path::new(location.strip_prefix("sqlite:").unwrap_or(location)).exists()
    {
        bail!("store {location} does not exist");
    }
    let artifacts = args
        .models_dir
        .clone()
        .unwrap_or_else(|| kindred_serving::config::artifacts_dir_for(location));
    let metrics = serde_json::json!({ "registered_from": args.artifact.display().to_string() });
    super::runtime()?.block_on(async {
        let store = Store::open(location)
            .await
            .with_context(|| format!("opening store {location}"))?;
        // The store's counts are recorded as of now; the model itself is the directory's.
        let record = kindred_serving::register_external(
            &store,
            &artifacts,
            algorithm,
            None,
            params,
            metrics,
            move |_| Ok(model),
        )
        .await?;
        let version = record.model.version;
        let live = if args.publish {
            store.activate_model(&version).await?;
            "live now"
        } else {
            "registered, not live (activate with POST /v1/models/VERSION/activate)"
        };
        outln!(
            "registered {algorithm} from {} as version {version}; artifact {}; {live}",
            args.artifact.display(),
            record.model.artifact
        )?;
        Ok(())
    })
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
