//! `kindred stats`: counts, sparsity, distributions and what each cleaning rule would remove.

use std::path::PathBuf;

use anyhow::Result;

use super::{write_json, Env};
use crate::data::{DataArgs, PipelineArgs};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    data: DataArgs,
    #[command(flatten)]
    cleaning: PipelineArgs,
    /// Also write the report as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Flag rows dated more than this many seconds after now (a clock ahead, milliseconds).
    #[arg(long, default_value_t = 86_400)]
    future_tolerance: i64,
    /// Flag rows dated before this Unix second (e.g. the product's launch).
    #[arg(long)]
    epoch: Option<i64>,
}

pub fn run(args: Args, env: &Env) -> Result<()> {
    // The report shows what each rule would remove, so it reads the raw data and the config.
    let config = args.cleaning.config()?.unwrap_or_default();
    let dataset = args.data.load(env.quiet)?;
    let checks = kindred_data::quality::TimestampChecks {
        future_tolerance_seconds: args.future_tolerance,
        epoch: args.epoch,
        ..kindred_data::quality::TimestampChecks::at_now()
    };
    let report = kindred_data::quality::report_with(&dataset, &config, &checks);
    outln!("{report}")?;
    if let Some(path) = &args.json {
        write_json(path, &report)?;
    }
    Ok(())
}
