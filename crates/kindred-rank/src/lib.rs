//! Kindred's ranking layer: what sits between a model's scores and the short list a user sees.
//! Re-rankers (diversity, calibration), exploration policies with logged propensities, and the
//! rules that evaluation and serving share, so offline numbers describe what users get.

pub mod calibration;
pub mod config;
pub mod exploration;
pub mod fallback;
pub mod filters;
pub mod freshness;
pub mod mmr;
pub mod pipeline;
pub mod rerank;
pub mod retrieval;

pub use config::RankConfig;
pub use exploration::{Candidate, ExplorationLogRecord, ExplorationPolicy, ShownSlot};
pub use fallback::{FallbackCatalog, ItemSource, Source, TrainingLog};
pub use filters::{Relaxation, RequestFilters};
pub use freshness::{Freshness, FreshnessConfig, FreshnessRequest};
pub use pipeline::{CatalogData, RankPipeline, RankRequest, RankedItem, ScoreSource};
pub use rerank::{ItemCategories, Reranker};
