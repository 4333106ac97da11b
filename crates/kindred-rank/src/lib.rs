//! Kindred's ranking layer: what sits between a model's scores and the short list a user sees.
//! Retrieval (exact and HNSW, similar items and users, neighbour lists), the [`RankPipeline`]
//! that evaluation and serving share (filters and pins, a learned second stage, freshness,
//! multi-objective relevance, diversity and calibration, the fallback chain with a source per
//! item), and exploration policies with logged propensities, so offline numbers describe what
//! users get.

pub mod calibration;
pub mod config;
pub mod date_unit;
pub mod exploration;
pub mod fallback;
pub mod filters;
pub mod freshness;
pub mod item_set;
pub mod mmr;
pub mod pipeline;
pub mod rerank;
pub mod retrieval;
pub mod second_stage;

pub use config::RankConfig;
pub use exploration::{
    Candidate, ExplorationConfig, ExplorationKind, ExplorationLogRecord, ExplorationPolicy,
    ShownSlot,
};
pub use fallback::{FallbackCatalog, ItemSource, Source, TrainingLog};
pub use filters::{Relaxation, RequestFilters};
pub use freshness::{Freshness, FreshnessConfig, FreshnessRequest};
pub use kindred_models::ranking::{
    ContextScorer, FactorisationMachine, FmEncoder, FmParams, FmScorer, LabelledExample,
    RequestContext,
};
pub use pipeline::{CatalogData, RankPipeline, RankRequest, RankedItem, ScoreSource};
pub use rerank::{item_boosts, ItemCategories, Reranker};
pub use second_stage::SecondStage;
