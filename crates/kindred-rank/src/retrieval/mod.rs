//! Retrieval at catalog scale: exact and approximate (HNSW) nearest-neighbour search over
//! embeddings, similar items and users, and neighbour lists for a whole catalog.

pub mod exact;
pub mod hnsw;
mod hnsw_io;
pub mod metric;
pub mod neighbours;
pub mod similar;
pub mod vector_file;
mod visited;

pub use exact::ExactIndex;
pub use hnsw::{HnswIndex, HnswParams};
pub use metric::Metric;
pub use neighbours::{neighbour_lists, neighbour_lists_with, NeighbourOptions};
pub use similar::{
    cooccurrence_similar, FeatureSets, SetSimilarity, VectorIndex, DEFAULT_COOCCURRENCE_SHRINK,
};
pub use vector_file::{read_npy_i32, read_vectors, write_npy_f32, write_npy_i32, VectorMatrix};
