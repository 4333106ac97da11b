//! Random baselines: ranking by a seeded hash of (user, item), and rating prediction by a normal
//! draw with the training mean and deviation (Surprise's `NormalPredictor`). Deterministic for a
//! seed, so a random baseline can be re-scored and saved like any model.

use std::path::Path;

use kindred_core::rng::mix64;
use kindred_core::{Error, FitContext, ItemIdx, Result, SplitMix64, TrainSet, UserIdx};
use serde::{Deserialize, Serialize};

use crate::common::rating_rows::row_values;
use crate::family::{param_infos, Cost, ModelFamily, ParamInfo, Saved, Task};
use crate::model::{Algorithm, Model, UserQuery};
use crate::params::ModelSpec;
use crate::persist::{Fitted, TensorReader, TensorWriter};

/// Hyperparameters.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RandomParams {
    /// Seed of the scores; `None` uses the fit context's seed.
    pub seed: Option<u64>,
}

/// The random algorithm.
#[derive(Debug, Clone, Default)]
pub struct Random {
    pub params: RandomParams,
}

impl Algorithm for Random {
    fn name(&self) -> &'static str {
        "random"
    }

    fn params(&self) -> serde_json::Value {
        serde_json::to_value(&self.params).unwrap_or_default()
    }

    fn fit(&self, data: &TrainSet, _ctx: &FitContext) -> Result<Box<dyn Model>> {
        let values = row_values(data);
        let n = values.len().max(1) as f64;
        let mean = values.iter().sum::<f64>() / n;
        let std = (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt();
        Ok(Box::new(RandomModel {
            seed: self.params.seed.unwrap_or(_ctx.seed),
            mean: mean as f32,
            std: std as f32,
            fitted: Fitted::from_train(data),
        }))
    }
}

/// A fitted random model.
#[derive(Debug, Clone)]
pub struct RandomModel {
    seed: u64,
    mean: f32,
    std: f32,
    fitted: Fitted,
}

impl RandomModel {
    fn stream(&self, user: u32, item: u32) -> SplitMix64 {
        SplitMix64::new(mix64(self.seed ^ ((user as u64) << 32 | item as u64)))
    }

    /// Loads a model saved by [`Model::save`].
    pub fn load(params: serde_json::Value, fitted: Fitted, tensors: &TensorReader) -> Result<Self> {
        let params: RandomParams = serde_json::from_value(params)
            .map_err(|e| Error::InvalidInput(format!("random parameters: {e}")))?;
        let stats = tensors.f32_len("rating_stats", 2)?;
        let seed = tensors
            .u64("seed")?
            .first()
            .copied()
            .or(params.seed)
            .unwrap_or(42);
        Ok(Self {
            seed,
            mean: stats[0],
            std: stats[1],
            fitted,
        })
    }
}

impl Model for RandomModel {
    fn name(&self) -> &'static str {
        "random"
    }

    fn params(&self) -> serde_json::Value {
        serde_json::json!({ "seed": self.seed })
    }

    fn fitted(&self) -> &Fitted {
        &self.fitted
    }

    fn predict(&self, user: UserIdx, item: ItemIdx) -> Option<f32> {
        let draw = self.mean as f64 + self.std as f64 * self.stream(user, item).normal();
        Some(self.fitted.clip(draw as f32))
    }

    fn score(&self, query: &UserQuery<'_>, items: &[ItemIdx], out: &mut [f32]) {
        let user = query.user.unwrap_or(u32::MAX);
        for (o, &i) in out.iter_mut().zip(items) {
            *o = self.stream(user, i).next_f64() as f32;
        }
    }

    fn save(&self, dir: &Path) -> Result<()> {
        let mut t = TensorWriter::new();
        t.f32("rating_stats", &[2], &[self.mean, self.std])
            .u64("seed", &[self.seed]);
        self.fitted.save(dir, "random", Model::params(self), t)
    }
}

/// The `random` family's entry in the model registry.
pub struct RandomFamily;

impl ModelFamily for RandomFamily {
    fn name(&self) -> &'static str {
        "random"
    }

    fn task(&self) -> Task {
        Task::Both
    }

    fn summary(&self) -> &'static str {
        "seeded random scores; ratings drawn from N(mean, std) of training (Surprise NormalPredictor)"
    }

    fn params(&self) -> Vec<ParamInfo> {
        param_infos::<RandomParams>(&[("seed", Some("fit seed (42)"), "seed of the random scores")])
    }

    fn build(&self, spec: &ModelSpec) -> Result<Box<dyn Algorithm>> {
        Ok(Box::new(Random {
            params: spec.typed()?,
        }))
    }

    fn load(&self, saved: Saved<'_>) -> Result<Box<dyn Model>> {
        saved.load_with(RandomModel::load)
    }

    fn cost(&self) -> Cost {
        Cost::Low
    }
}
