//! Kindred's recommendation algorithms.
//!
//! Every algorithm implements [`Algorithm`] (hyperparameters + `fit`) and produces a frozen
//! [`Model`] (scoring, top-K, persistence). [`registry`] maps model specs such as
//! `baseline:method=sgd` to algorithms, lists them for `kindred models`, resolves presets and
//! loads saved models back.

pub mod baseline;
pub mod coclustering;
pub mod itemknn;
pub mod knn;
pub mod model;
pub mod params;
pub mod persist;
pub mod popularity;
pub mod random;
pub mod registry;
pub mod slopeone;
pub mod svd;
pub mod svdpp;

pub use model::{Algorithm, ItemFilter, Model, UserQuery};
pub use params::ModelSpec;
pub use persist::{Fitted, Manifest};
pub use registry::{build_algorithm, load_model, model_catalog, ModelInfo, ParamInfo, Task};
