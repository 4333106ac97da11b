//! Kindred's scale-out jobs on timely-dataflow.
//!
//! - [`runtime`]: connecting processes and exchanging messages between workers in rounds.
//! - [`topology`]: the hosts file and the process/worker layout.

pub mod als;
pub mod checkpoint;
pub mod error;
pub mod factors;
pub mod runtime;
pub mod shard;
pub mod topology;
pub mod wire;

pub use als::{run_als, AlsJob, AlsSummary, IterationReport};
pub use error::{Error, Result};
pub use runtime::{run, ExchangeStats, Exchanger, Outbox, Received};
pub use topology::Topology;
