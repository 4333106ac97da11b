//! Popularity: items ranked by how often they were interacted with, all-time or with an
//! exponential time decay (recent interactions count more), summing implicit weights.

use std::path::Path;

use kindred_core::interactions::NO_TIMESTAMP;
use kindred_core::{Error, FitContext, ItemIdx, Result, TrainSet};
use serde::{Deserialize, Serialize};

use crate::family::{param_infos, Cost, ModelFamily, ParamInfo, Saved, Task};
use crate::model::{Algorithm, Model, UserQuery};
use crate::params::ModelSpec;
use crate::persist::{Fitted, TensorReader, TensorWriter};

/// Hyperparameters.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PopularityParams {
    /// Half-life of an interaction's weight in days, counted back from the latest training
    /// timestamp; `None` counts all interactions equally.
    pub half_life_days: Option<f64>,
}

/// The popularity algorithm.
#[derive(Debug, Clone, Default)]
pub struct Popularity {
    pub params: PopularityParams,
}

impl Algorithm for Popularity {
    fn name(&self) -> &'static str {
        "popularity"
    }

    fn params(&self) -> serde_json::Value {
        serde_json::to_value(&self.params).unwrap_or_default()
    }

    fn fit(&self, data: &TrainSet, ctx: &FitContext) -> Result<Box<dyn Model>> {
        ctx.cancel.check()?;
        let log = &data.data;
        let mut scores = vec![0f64; data.n_items()];
        match self.params.half_life_days {
            None => {
                for (&i, &w) in log.items().iter().zip(log.weights()) {
                    scores[i as usize] += w as f64;
                }
            }
            Some(h) if h > 0.0 => {
                let latest = log
                    .timestamps()
                    .iter()
                    .copied()
                    .filter(|&t| t != NO_TIMESTAMP)
                    .max();
                let Some(latest) = latest else {
                    return Err(Error::InvalidInput(
                        "popularity with half_life_days needs timestamps".into(),
                    ));
                };
                let half_life = h * 86_400.0;
                for r in 0..log.len() {
                    let t = log.timestamps()[r];
                    let age = if t == NO_TIMESTAMP {
                        0.0
                    } else {
                        (latest - t) as f64
                    };
                    scores[log.items()[r] as usize] +=
                        log.weights()[r] as f64 * 0.5f64.powf(age / half_life);
                }
            }
            Some(h) => {
                return Err(Error::InvalidInput(format!(
                    "popularity: half_life_days must be positive, got {h}"
                )))
            }
        }
        Ok(Box::new(PopularityModel {
            scores: scores.into_iter().map(|s| s as f32).collect(),
            params: self.params.clone(),
            fitted: Fitted::from_train(data),
        }))
    }
}

/// A fitted popularity model.
#[derive(Debug, Clone)]
pub struct PopularityModel {
    /// Popularity score per item.
    pub scores: Vec<f32>,
    pub params: PopularityParams,
    fitted: Fitted,
}

impl PopularityModel {
    /// Loads a model saved by [`Model::save`].
    pub fn load(params: serde_json::Value, fitted: Fitted, tensors: &TensorReader) -> Result<Self> {
        let params = serde_json::from_value(params)
            .map_err(|e| Error::InvalidInput(format!("popularity parameters: {e}")))?;
        let scores = tensors.f32_len("item_score", fitted.items.len())?;
        Ok(Self {
            scores,
            params,
            fitted,
        })
    }
}

impl Model for PopularityModel {
    fn name(&self) -> &'static str {
        "popularity"
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

    fn score_all(&self, _query: &UserQuery<'_>, out: &mut [f32]) {
        out.copy_from_slice(&self.scores[..out.len()]);
    }

    fn save(&self, dir: &Path) -> Result<()> {
        let mut t = TensorWriter::new();
        t.f32("item_score", &[self.scores.len()], &self.scores);
        self.fitted.save(dir, "popularity", Model::params(self), t)
    }
}

/// The `popularity` family's entry in the model registry.
pub struct PopularityFamily;

impl ModelFamily for PopularityFamily {
    fn name(&self) -> &'static str {
        "popularity"
    }

    fn task(&self) -> Task {
        Task::Ranking
    }

    fn summary(&self) -> &'static str {
        "items by (optionally time-decayed) interaction weight"
    }

    fn params(&self) -> Vec<ParamInfo> {
        param_infos::<PopularityParams>(&[(
            "half_life_days",
            Some("none (all-time)"),
            "half-life of an interaction's weight, counted back from the latest training timestamp",
        )])
    }

    fn build(&self, spec: &ModelSpec) -> Result<Box<dyn Algorithm>> {
        Ok(Box::new(Popularity {
            params: spec.typed()?,
        }))
    }

    fn load(&self, saved: Saved<'_>) -> Result<Box<dyn Model>> {
        saved.load_with(PopularityModel::load)
    }

    fn cost(&self) -> Cost {
        Cost::Low
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kindred_core::{EventType, Interaction, InteractionsBuilder};

    #[test]
    fn counts_and_decays() {
        let mut b = InteractionsBuilder::new();
        let day = 86_400;
        b.push(Interaction::implicit("u1", "old", EventType::View, Some(0)));
        b.push(Interaction::implicit("u2", "old", EventType::View, Some(0)));
        b.push(Interaction::implicit(
            "u1",
            "new",
            EventType::View,
            Some(10 * day),
        ));
        let data = TrainSet::new(b.build());
        let ctx = FitContext::default();
        let all = Popularity::default().fit(&data, &ctx).unwrap();
        let recs = all.recommend(&UserQuery::known(2), 2, &crate::model::AllItems);
        assert_eq!(recs[0].item, 0);
        assert_eq!(recs[0].score, 2.0);
        let decayed = Popularity {
            params: PopularityParams {
                half_life_days: Some(5.0),
            },
        }
        .fit(&data, &ctx)
        .unwrap();
        let mut out = [0f32; 2];
        decayed.score(&UserQuery::default(), &[0, 1], &mut out);
        assert!(
            (out[0] - 0.5).abs() < 1e-6,
            "two views two half-lives ago: 2 * 0.25"
        );
        assert!((out[1] - 1.0).abs() < 1e-6);
        // A known user's seen items are excluded.
        let recs = decayed.recommend(&UserQuery::known(0), 5, &crate::model::AllItems);
        assert!(recs.is_empty());
    }
}
