//! Kindred's recommendation algorithms.
//!
//! Every algorithm implements [`Algorithm`] (hyperparameters + `fit`) and produces a frozen
//! [`Model`] (scoring, top-K, persistence). Models live in one folder per family (`rating`,
//! `neighbours`, `implicit`, `content`, `neural`, `simple`), helpers they share in `common`.
//! Each family describes itself once with a [`ModelFamily`]; the [`ModelRegistry`] lists them,
//! maps specs such as `baseline:method=sgd` to algorithms, lists them for `kindred models`,
//! resolves presets, holds the tuning search spaces and loads saved models back.

pub mod batch_recommend;
pub mod common;
pub mod content;
pub mod family;
pub mod implicit;
pub mod model;
pub mod neighbours;
pub mod neural;
pub mod params;
pub mod persist;
pub mod ranking;
pub mod rating;
pub mod registry;
pub mod simple;
pub mod space;

pub use batch_recommend::recommend_users;
pub use family::{
    Applicability, CheaperForm, Cost, DataShape, Estimate, ModelFamily, ModelInfo, ParamInfo,
    Saved, Task,
};
pub use model::{Algorithm, ItemFilter, Model, UserQuery};
pub use params::ModelSpec;
pub use persist::{Fitted, Manifest};
pub use registry::{build_algorithm, load_model, model_catalog, ModelRegistry};

#[cfg(test)]
pub(crate) mod testutil {
    use kindred_core::{Interaction, InteractionsBuilder, Protocol, TrainSet};

    /// A training set from (user, item, rating) triples.
    pub fn train(rows: &[(&str, &str, f32)]) -> TrainSet {
        let mut b = InteractionsBuilder::new();
        for &(u, i, r) in rows {
            b.push(Interaction::rating(u, i, r, None));
        }
        TrainSet::new(b.build())
    }

    /// The first kfold:5 fold of a synthetic dataset: training set and (user, item, rating) tests.
    pub fn synthetic_split(spec: &str) -> (TrainSet, Vec<(u32, u32, f32)>) {
        use kindred_data::synthetic::{generate, SyntheticConfig};
        let data = generate(&SyntheticConfig::parse(spec).unwrap())
            .unwrap()
            .dataset
            .interactions;
        let protocol = Protocol::parse("kfold:5").unwrap();
        let prepared = protocol.prepare(&data);
        let split = protocol.splits(&prepared).unwrap().remove(0);
        let test = split
            .test
            .iter()
            .map(|&r| {
                let r = r as usize;
                (
                    prepared.users()[r],
                    prepared.items()[r],
                    prepared.ratings()[r],
                )
            })
            .collect();
        (TrainSet::new(prepared.subset(&split.train)), test)
    }

    /// RMSE of `predict` on `test`.
    pub fn rmse(test: &[(u32, u32, f32)], predict: impl Fn(u32, u32) -> f32) -> f64 {
        let sse: f64 = test
            .iter()
            .map(|&(u, i, r)| (predict(u, i) as f64 - r as f64).powi(2))
            .sum();
        (sse / test.len() as f64).sqrt()
    }
}
