//! Kindred's scale-out jobs on timely-dataflow.
//!
//! - [`runtime`]: connecting processes and exchanging messages between workers in rounds.
//! - [`topology`]: the hosts file and the process/worker layout.
//! - [`shard`]: reading Parquet shards into per-worker rows with single-node indices.
//! - [`als`]: distributed implicit ALS, with [`checkpoint`]s and [`factors`] in Parquet.
//! - [`topk`]: batch top-K and item neighbour lists, single-node and distributed;
//!   [`topk_parquet`]: their Parquet output.

pub mod als;
pub mod checkpoint;
pub mod error;
pub mod factors;
pub mod item_filter;
pub mod runtime;
pub mod shard;
pub mod topk;
pub mod topk_parquet;
pub mod topology;
pub mod wire;

pub use als::{run_als, AlsJob, AlsSummary, IterationReport, ListsJob, ListsReport};
pub use error::{Error, Result};
pub use runtime::{run, ExchangeStats, Exchanger, Outbox, Received};
pub use topk::BatchSettings;
pub use topology::Topology;
