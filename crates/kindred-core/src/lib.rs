//! Kindred's core: the data model every other crate speaks.
//!
//! Nothing here knows about file formats, HTTP or storage. It holds the interned id maps, the
//! columnar interaction log with its CSR/CSC views, feature tables, deterministic splits,
//! top-K selection, the fit context (threads, seed, progress, cancellation) and the error type.

pub mod config_location;
pub mod context;
pub mod dataset;
pub mod dense;
pub mod distributions;
pub mod error;
pub mod event;
pub mod features;
pub mod ids;
pub mod interactions;
pub mod kernels;
pub mod quantile;
pub mod rng;
pub mod sparse;
pub mod split;
pub mod suggest;
pub mod text_encoder;
pub mod timestamp_range;
pub mod topk;
pub mod trainset;

pub use config_location::ConfigLocation;
pub use context::{CancelFlag, FitContext, NoProgress, Progress};
pub use dataset::Dataset;
pub use error::{Error, Result};
pub use event::EventType;
pub use features::{FeatureTable, FeatureValue};
pub use ids::{IdMap, ItemIdx, UserIdx};
pub use interactions::{Interaction, Interactions, InteractionsBuilder};
pub use rng::SplitMix64;
pub use sparse::CsMatrix;
pub use split::{Protocol, Split, SplitKind};
pub use text_encoder::TextEncoder;
pub use timestamp_range::TimestampRange;
pub use topk::{top_k, Scored};
pub use trainset::TrainSet;
