//! Retrieval at catalog scale: exact and approximate (HNSW) nearest-neighbour search over
//! embeddings, similar items and users, and neighbour lists for a whole catalog.

pub mod exact;
pub mod hnsw;
mod hnsw_io;
pub mod metric;
mod visited;

pub use exact::ExactIndex;
pub use hnsw::{HnswIndex, HnswParams};
pub use metric::Metric;
