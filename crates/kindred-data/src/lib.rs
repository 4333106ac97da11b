//! Kindred's data layer: getting interactions and features in and out, cleaning them, and
//! generating seeded synthetic data.
//!
//! - [`spec`]: parse a data spec (`movielens:DIR`, `csv:FILE`, `jsonl:FILE`, `parquet:FILE`,
//!   `synthetic:users=N,...`) and load it.
//! - importers: [`movielens`], [`delimited`] (CSV/TSV with a column mapping), [`jsonl`], [`parquet`];
//!   [`columns`] for columns already in memory (the Python package's DataFrames).
//! - [`export`]: write interactions back out (CSV, JSON Lines, Parquet).
//! - [`preprocess`]: the cleaning/weighting pipeline shared by evaluation, training and serving.
//! - [`quality`]: the data-quality report behind `kindred stats`.
//! - [`synthetic`]: the seeded generator tests and benchmarks run on.

pub mod column_mapping;
pub mod columns;
pub mod delimited;
pub mod export;
pub mod export_columns;
pub mod import;
pub mod jsonl;
pub mod movielens;
#[cfg(feature = "parquet")]
pub mod parquet;
#[cfg(feature = "parquet")]
mod parquet_pages;

/// What a build without the `parquet` feature says when asked for Parquet.
pub const NO_PARQUET: &str = "this build of kindred has no Parquet support; rebuild with the \
     `parquet` feature (`cargo install --path crates/kindred-cli --features parquet`, or \
     `--features full`)";
pub mod preprocess;
pub mod quality;
pub mod spec;
pub mod synthetic;
#[cfg(test)]
mod test_logs;

pub use import::{ImportOptions, ImportReport};
pub use spec::{load, DataSpec};
