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
}

pub fn run(args: Args, env: &Env) -> Result<()> {
    // The report shows what each rule would remove, so it reads the raw data and the config.
    let config = args.cleaning.config()?.unwrap_or_default();
    let dataset = args.data.load(env.quiet)?;
    let report = kindred_data::quality::report(&dataset, &config);
    outln!("{report}")?;
    if let Some(path) = &args.json {
        write_json(path, &report)?;
    }
    Ok(())
}
