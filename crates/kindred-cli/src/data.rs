//! Data options shared by every command that reads a dataset: the spec, import options and the
//! preprocessing pipeline (one config used identically by eval and train).

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use kindred_core::Dataset;
use kindred_data::import::ImportOptions;
use kindred_data::preprocess::PipelineConfig;

use crate::table::plural;

/// Where the data comes from and how it is cleaned.
#[derive(clap::Args, Clone)]
pub struct DataArgs {
    /// Data spec: movielens:DIR, csv:FILE, tsv:FILE, jsonl:FILE, parquet:FILE, synthetic:users=N,items=M,seed=S.
    #[arg(long)]
    pub data: String,
    /// Column mapping for CSV/TSV/Parquet, e.g. `user,item,rating,timestamp` or `user=uid,item=pid`.
    #[arg(long)]
    pub columns: Option<String>,
    /// Skip invalid rows (reported by kind) instead of stopping at the first.
    #[arg(long)]
    pub skip_invalid: bool,
    /// Accepted timestamps, `MIN..MAX` in Unix seconds (default 0..4102444800, 1970 to 2100);
    /// a row outside is invalid (`timestamp out of range`).
    #[arg(long, value_parser = parse_timestamp_range)]
    pub timestamps: Option<kindred_core::TimestampRange>,
    /// Item features as JSON Lines (`{"id": .., "genres": [..], "price": 9.5, "title": "..",
    /// "embedding": [..]}`), replacing any that came with the data.
    #[arg(long)]
    pub item_features: Option<PathBuf>,
    /// User features as JSON Lines, in the same form as --item-features.
    #[arg(long)]
    pub user_features: Option<PathBuf>,
}

/// The cleaning pipeline, given apart from the data so that `kindred train --store` takes it too.
#[derive(clap::Args, Clone, Default)]
pub struct PipelineArgs {
    /// Preprocessing pipeline config (TOML): duplicates, bots, k-core, weights, decay, normalisation.
    #[arg(long)]
    pub pipeline: Option<PathBuf>,
}

impl PipelineArgs {
    /// The config read from `--pipeline`; errors name the file, line and key.
    pub fn config(&self) -> Result<Option<PipelineConfig>> {
        Ok(self
            .pipeline
            .as_deref()
            .map(PipelineConfig::from_file)
            .transpose()?)
    }
}

/// `MIN..MAX` (Unix seconds, both included).
fn parse_timestamp_range(text: &str) -> std::result::Result<kindred_core::TimestampRange, String> {
    let (min, max) = text
        .split_once("..")
        .ok_or_else(|| format!("`{text}` is not MIN..MAX (Unix seconds)"))?;
    let number = |part: &str| {
        part.trim()
            .parse::<i64>()
            .map_err(|_| format!("`{part}` in `{text}` is not a whole number of Unix seconds"))
    };
    let range = kindred_core::TimestampRange {
        min: number(min)?,
        max: number(max)?,
        max_future_seconds: None,
    };
    range.validate()?;
    Ok(range)
}

impl DataArgs {
    /// Loads the dataset and applies the pipeline, reporting both on stderr.
    pub fn load_cleaned(&self, cleaning: &PipelineArgs, quiet: bool) -> Result<Dataset> {
        // Read before the (slow) data load so that a bad config fails at once.
        let pipeline = cleaning.config()?;
        let mut dataset = self.load(quiet)?;
        if let Some(config) = &pipeline {
            let (cleaned, report) = kindred_data::preprocess::run(config, &dataset.interactions)?;
            if !quiet {
                eprintln!("{report}");
            }
            dataset.interactions = cleaned;
        }
        Ok(dataset)
    }

    /// Loads the dataset as it is (no cleaning), reporting what the import skipped on stderr.
    pub fn load(&self, quiet: bool) -> Result<Dataset> {
        let spec = kindred_data::spec::DataSpec::parse(&self.data)?;
        let mut options = ImportOptions {
            skip_invalid: self.skip_invalid,
            timestamps: self.timestamps.unwrap_or_default(),
            ..ImportOptions::default()
        };
        if let Some(columns) = &self.columns {
            options.columns = Some(kindred_data::delimited::ColumnMapping::parse(columns)?);
        }
        let started = std::time::Instant::now();
        let (mut dataset, report) = kindred_data::spec::load(&spec, &options)
            .with_context(|| format!("loading {}", self.data))?;
        if !quiet {
            eprintln!(
                "loaded {}: {}, {}, {} in {:.2}s",
                dataset.name,
                plural(dataset.interactions.len() as u64, "interaction"),
                plural(dataset.interactions.n_users() as u64, "user"),
                plural(dataset.interactions.n_items() as u64, "item"),
                started.elapsed().as_secs_f64()
            );
            if report.rows_read != report.rows_imported {
                eprintln!("{report}");
            }
        }
        if let Some(path) = &self.item_features {
            dataset.item_features = Some(Arc::new(kindred_data::jsonl::load_features_jsonl(path)?));
        }
        if let Some(path) = &self.user_features {
            dataset.user_features = Some(Arc::new(kindred_data::jsonl::load_features_jsonl(path)?));
        }
        Ok(dataset)
    }
}
