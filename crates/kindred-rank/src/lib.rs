//! Kindred's ranking layer: what sits between a model's scores and the short list a user sees.
//! Re-rankers (diversity, calibration), exploration policies with logged propensities, and the
//! rules that evaluation and serving share, so offline numbers describe what users get.

pub mod calibration;
pub mod config;
pub mod exploration;
pub mod mmr;
pub mod rerank;

pub use config::RankConfig;
pub use exploration::{Candidate, ExplorationLogRecord, ExplorationPolicy, ShownSlot};
pub use rerank::{item_boosts, ItemCategories, Reranker};
