//! Second-stage ranking models: they re-score a candidate pool that a first-stage model
//! retrieved, with what that model never saw (request time, device, user and item features).
//! kindred-rank's second stage holds one behind [`ContextScorer`].

pub mod context;
pub mod fm;

pub use context::{ContextScorer, RequestContext};
pub use fm::{
    FactorisationMachine, FmEncoder, FmFeature, FmLoss, FmParams, FmScorer, LabelledExample,
    NegativeSampling,
};
