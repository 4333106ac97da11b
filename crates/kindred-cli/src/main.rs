//! `kindred`: the command-line front of the Kindred recommendation engine.

// First, so that `outln!` and `out!` are in scope in every module below.
#[macro_use]
mod output;

mod allocator;
mod args;
mod commands;
mod data;
mod progress;
mod table;
mod threads;
mod titles;

use clap::{Parser, Subcommand};

/// Kindred: import interaction data, evaluate and train recommenders, and recommend.
#[derive(Parser)]
#[command(name = "kindred", version, about, propagate_version = true)]
struct Cli {
    /// Worker threads (default: RAYON_NUM_THREADS, else all cores).
    #[arg(long, global = true)]
    threads: Option<usize>,
    /// No progress bars.
    #[arg(long, short, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the main job end to end: data, quality report, baseline evaluation, training, recommendations.
    Quickstart(commands::quickstart::Args),
    /// Load a dataset (with features) into a store: a SQLite file or a postgres:// URL.
    Import(commands::import::Args),
    /// Run the recommendation server (HTTP API, real-time feedback, model versions) on a store.
    Serve(commands::serve::Args),
    /// Counts, sparsity, distributions and a data-quality report.
    Stats(commands::stats::Args),
    /// Evaluate models under a protocol (kfold:5, temporal:0.2,positive>=4, ...).
    Eval(commands::eval::Args),
    /// Train a model on all the data and save it.
    Train(commands::train::Args),
    /// Top-K recommendations from a saved model.
    Recommend(commands::recommend::Args),
    /// Most similar items or users (embeddings, co-occurrence or features), or neighbour lists for all.
    Similar(commands::similar::Args),
    /// Add a sentence-encoder vector of each item's text fields to a feature file (JSON Lines).
    Embed(commands::embed::Args),
    /// Rating predictions for user,item pairs from a saved model.
    Predict(commands::predict::Args),
    /// Every model with its parameters and defaults.
    Models(commands::models::Args),
    /// Write a protocol's exact train/test splits, for outside tools to use the same data.
    Split(commands::split::Args),
    /// Nested hyperparameter search of a model family (random, TPE or successive halving).
    Tune(commands::tune::Args),
    /// A self-contained HTML report (or PNG charts) from eval/tune JSON result files.
    Report(commands::report::Args),
    /// A/B test analysis (rates, means, ratios, CUPED, SRM, sequential, segments) and power.
    Experiment(commands::experiment::Args),
    /// Drift (PSI), data-quality counters and alerts of the last window against a reference window.
    Monitor(commands::monitor::Args),
    /// Simulated users with known preferences drive a running server; CTR per model version and variant.
    Simulate(commands::simulate::Args),
    /// A candidate rank config's click rate estimated from an exploring server's logs (IPS, SNIPS, DR).
    Offpolicy(commands::offpolicy::Args),
    /// Distributed jobs on timely-dataflow: ALS across processes and hosts, input sharding.
    #[cfg(feature = "cluster")]
    #[command(subcommand_required = true)]
    Cluster(commands::cluster::Args),
    /// Distributed jobs on timely-dataflow (not in this build: it needs the `cluster` feature).
    #[cfg(not(feature = "cluster"))]
    Cluster {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
        args: Vec<String>,
    },
}

fn main() {
    let cli = Cli::parse();
    allocator::with_options(&threads::environment(cli.threads));
    threads::build_pool(cli.threads);
    // Models given `text=...,encoder=DIR` open their sentence encoder through this loader.
    #[cfg(feature = "encoder")]
    kindred_core::text_encoder::register_text_encoder(kindred_neural::open_text_encoder);
    // The neural model families (sasrec) join the built-in ones.
    #[cfg(feature = "encoder")]
    if let Err(e) = kindred_neural::registry_with_neural()
        .and_then(kindred_models::ModelRegistry::install_global)
    {
        eprintln!("warning: the neural model families are unavailable: {e}");
    }
    let env = commands::Env::new(cli.quiet, cli.threads);
    let result = match cli.command {
        Command::Quickstart(args) => commands::quickstart::run(args, &env),
        Command::Import(args) => commands::import::run(args, &env),
        Command::Serve(args) => commands::serve::run(args, &env),
        Command::Stats(args) => commands::stats::run(args, &env),
        Command::Eval(args) => commands::eval::run(args, &env),
        Command::Train(args) => commands::train::run(args, &env),
        Command::Recommend(args) => commands::recommend::run(args, &env),
        Command::Predict(args) => commands::predict::run(args, &env),
        Command::Embed(args) => commands::embed::run(args, &env),
        Command::Similar(args) => commands::similar::run(args, &env),
        Command::Models(args) => commands::models::run(args, &env),
        Command::Split(args) => commands::split::run(args, &env),
        Command::Tune(args) => commands::tune::run(args, &env),
        Command::Report(args) => commands::report::run(args, &env),
        Command::Monitor(args) => commands::monitor::run(args, &env),
        Command::Experiment(args) => commands::experiment::run(args, &env),
        Command::Simulate(args) => commands::simulate::run(args, &env),
        Command::Offpolicy(args) => commands::offpolicy::run(args, &env),
        #[cfg(feature = "cluster")]
        Command::Cluster(args) => commands::cluster::run(args, &env),
        #[cfg(not(feature = "cluster"))]
        Command::Cluster { .. } => Err(anyhow::anyhow!(
            "this build of kindred has no `kindred cluster`; rebuild with the `cluster` feature \
             (`cargo install --path crates/kindred-cli --features cluster`, or `--features full`)"
        )),
    };
    if let Err(err) = result {
        // The reader of our output went away (`kindred models | head`): not an error.
        if output::is_broken_pipe(&err) {
            return;
        }
        eprintln!("error: {err:#}");
        std::process::exit(1);
    }
}
