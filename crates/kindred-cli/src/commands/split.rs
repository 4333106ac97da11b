//! `kindred split`: write a protocol's exact train/test splits as CSV (or JSON Lines/Parquet),
//! so outside tools (peers in `bench/peers/`, notebooks) evaluate on the very same data.
//!
//! Besides the folds it writes `catalog.csv` (`item,features`): every item of the evaluation
//! catalog (the items of the dataset's interactions, before `positive>=` filtering) with its
//! categorical features, and for cold-start item protocols `fold{N}.candidates.csv` in the same
//! form: the held-out items that are ranked.

use std::path::PathBuf;

use anyhow::{Context, Result};
use kindred_core::{IdMap, Protocol};

use super::Env;
use crate::data::{DataArgs, PipelineArgs};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    data: DataArgs,
    #[command(flatten)]
    cleaning: PipelineArgs,
    /// Protocol whose splits to write (see `kindred eval --help`).
    #[arg(long)]
    protocol: String,
    /// Output directory: fold{N}.train.EXT and fold{N}.test.EXT per fold, catalog.csv, and
    /// fold{N}.candidates.csv for cold-start item protocols.
    #[arg(long)]
    out: PathBuf,
    /// File format: csv, jsonl or parquet.
    #[arg(long, default_value = "csv")]
    format: String,
}

pub fn run(args: Args, env: &Env) -> Result<()> {
    let protocol = Protocol::parse(&args.protocol)?;
    let dataset = args.data.load_cleaned(&args.cleaning, env.quiet)?;
    let prepared = protocol.prepare(&dataset.interactions);
    let splits = protocol.splits(&prepared)?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let features = dataset.item_features.as_deref();
    let catalog = prepared.item_ids();
    kindred_data::export::write_catalog_csv(catalog, features, &args.out.join("catalog.csv"))?;
    for (f, split) in splits.iter().enumerate() {
        for (part, rows) in [("train", &split.train), ("test", &split.test)] {
            let path = args.out.join(format!("fold{f}.{part}.{}", args.format));
            kindred_data::export::export(&prepared.subset(rows), &path)?;
        }
        if let Some(candidates) = &split.candidates {
            let mut ids = IdMap::with_capacity(candidates.len());
            for &i in candidates {
                ids.intern(catalog.external(i));
            }
            let path = args.out.join(format!("fold{f}.candidates.csv"));
            kindred_data::export::write_catalog_csv(&ids, features, &path)?;
        }
        env.note(format!(
            "fold {f}: {} train, {} test",
            split.train.len(),
            split.test.len()
        ));
    }
    outln!(
        "wrote {} fold(s) of {} to {}",
        splits.len(),
        protocol.spec(),
        args.out.display()
    )?;
    Ok(())
}
