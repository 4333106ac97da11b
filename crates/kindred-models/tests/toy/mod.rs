//! A toy model family defined outside the crate, as a new model would be: the algorithm, its
//! frozen model and its registry descriptor in one folder. It scores an item by its interaction
//! count shrunk towards zero, `count / (count + shrink)`.

use std::path::Path;

use kindred_core::{Error, FitContext, ItemIdx, Result, TrainSet};
use kindred_models::family::{param_infos, Cost, ModelFamily, ParamInfo, Saved, Task};
use kindred_models::persist::{Fitted, TensorWriter};
use kindred_models::space::{Param, Space};
use kindred_models::{Algorithm, Model, ModelSpec, UserQuery};
use serde::{Deserialize, Serialize};

/// Hyperparameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ToyParams {
    pub shrink: f64,
}

impl Default for ToyParams {
    fn default() -> Self {
        Self { shrink: 1.0 }
    }
}

pub struct Toy {
    pub params: ToyParams,
}

impl Algorithm for Toy {
    fn name(&self) -> &'static str {
        "toy"
    }

    fn params(&self) -> serde_json::Value {
        serde_json::to_value(&self.params).unwrap_or_default()
    }

    fn fit(&self, data: &TrainSet, _ctx: &FitContext) -> Result<Box<dyn Model>> {
        if self.params.shrink.is_nan() || self.params.shrink < 0.0 {
            return Err(Error::InvalidInput("toy: shrink must be >= 0".into()));
        }
        let mut counts = vec![0f64; data.n_items()];
        for &i in data.data.items() {
            counts[i as usize] += 1.0;
        }
        let scores = counts
            .iter()
            .map(|&c| (c / (c + self.params.shrink)) as f32)
            .collect();
        Ok(Box::new(ToyModel {
            params: self.params.clone(),
            scores,
            fitted: Fitted::from_train(data),
        }))
    }
}

pub struct ToyModel {
    params: ToyParams,
    scores: Vec<f32>,
    fitted: Fitted,
}

impl Model for ToyModel {
    fn name(&self) -> &'static str {
        "toy"
    }

    fn params(&self) -> serde_json::Value {
        serde_json::to_value(&self.params).unwrap_or_default()
    }

    fn fitted(&self) -> &Fitted {
        &self.fitted
    }

    fn score(&self, _query: &UserQuery<'_>, items: &[ItemIdx], out: &mut [f32]) {
        for (o, &i) in out.iter_mut().zip(items) {
            *o = self.scores.get(i as usize).copied().unwrap_or(0.0);
        }
    }

    fn save(&self, dir: &Path) -> Result<()> {
        let mut t = TensorWriter::new();
        t.f32("scores", &[self.scores.len()], &self.scores);
        self.fitted.save(dir, "toy", Model::params(self), t)
    }
}

/// The toy family's descriptor: all the registry needs.
pub struct ToyFamily;

impl ModelFamily for ToyFamily {
    fn name(&self) -> &'static str {
        "toy"
    }

    fn task(&self) -> Task {
        Task::Ranking
    }

    fn summary(&self) -> &'static str {
        "items by interaction count, shrunk towards zero"
    }

    fn params(&self) -> Vec<ParamInfo> {
        param_infos::<ToyParams>(&[("shrink", None, "count / (count + shrink)")])
    }

    fn build(&self, spec: &ModelSpec) -> Result<Box<dyn Algorithm>> {
        Ok(Box::new(Toy {
            params: spec.typed()?,
        }))
    }

    fn load(&self, saved: Saved<'_>) -> Result<Box<dyn Model>> {
        let params: ToyParams = serde_json::from_value(saved.params)
            .map_err(|e| Error::InvalidInput(format!("toy parameters: {e}")))?;
        let scores = saved.tensors.f32_len("scores", saved.fitted.items.len())?;
        Ok(Box::new(ToyModel {
            params,
            scores,
            fitted: saved.fitted,
        }))
    }

    fn search_space(&self) -> Option<Space> {
        Some(Space {
            family: "toy",
            params: vec![Param::float("shrink", 0.0, 10.0, false, 1.0)],
            fidelity: None,
            fixed: Vec::new(),
        })
    }

    fn cost(&self) -> Cost {
        Cost::Low
    }
}
