//! Kindred's scale-out jobs on timely-dataflow.
//!
//! - [`runtime`]: connecting processes and exchanging messages between workers in rounds.
//! - [`topology`]: the hosts file and the process/worker layout.
//! - [`topk`]: batch top-K and item neighbour lists, single-node and distributed;
//!   [`topk_parquet`]: their Parquet output.

pub mod error;
pub mod runtime;
pub mod topk;
pub mod topk_parquet;
pub mod topology;
pub mod wire;

pub use error::{Error, Result};
pub use runtime::{run, ExchangeStats, Exchanger, Outbox, Received};
pub use topology::Topology;
