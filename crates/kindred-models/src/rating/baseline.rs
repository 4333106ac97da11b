//! BaselineOnly: rating = global mean + user bias + item bias (Koren 2010, §2.1), fitted by
//! alternating least squares or by SGD exactly as Surprise's `BaselineOnly` does, so results are
//! comparable. For ranking, items are ordered by their bias (a damped, rating-aware popularity).

use std::path::Path;

use kindred_core::{Error, FitContext, ItemIdx, Result, TrainSet, UserIdx};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::common::rating_rows::{row_values, surprise_rating_order};
use crate::family::{param_infos, Applicability, Cost, ModelFamily, ParamInfo, Saved, Task};
use crate::model::{Algorithm, Model, UserQuery};
use crate::params::ModelSpec;
use crate::persist::{Fitted, TensorReader, TensorWriter};
use crate::space::{Param, Space};

/// How biases are fitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BaselineMethod {
    Als,
    Sgd,
}

/// Hyperparameters; defaults are Surprise's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BaselineParams {
    pub method: BaselineMethod,
    /// Epochs; `None` picks the method's default (10 for ALS, 20 for SGD).
    pub epochs: Option<usize>,
    /// ALS: regularisation of user biases.
    pub reg_u: f64,
    /// ALS: regularisation of item biases.
    pub reg_i: f64,
    /// SGD: regularisation of both biases.
    pub reg: f64,
    /// SGD: learning rate.
    pub lr: f64,
}

impl Default for BaselineParams {
    fn default() -> Self {
        Self {
            method: BaselineMethod::Als,
            epochs: None,
            reg_u: 15.0,
            reg_i: 10.0,
            reg: 0.02,
            lr: 0.005,
        }
    }
}

impl BaselineParams {
    fn epochs(&self) -> usize {
        self.epochs.unwrap_or(match self.method {
            BaselineMethod::Als => 10,
            BaselineMethod::Sgd => 20,
        })
    }
}

/// The BaselineOnly algorithm.
#[derive(Debug, Clone, Default)]
pub struct Baseline {
    pub params: BaselineParams,
}

/// Biases fitted on a training set; also the fallback layer of later rating models.
#[derive(Debug, Clone)]
pub struct Biases {
    pub global_mean: f64,
    pub user: Vec<f64>,
    pub item: Vec<f64>,
}

impl Biases {
    /// Fits biases with the given parameters.
    pub fn fit(data: &TrainSet, params: &BaselineParams, ctx: &FitContext) -> Result<Self> {
        if data.data.is_empty() {
            return Err(Error::InvalidInput("baseline: empty training set".into()));
        }
        let values = row_values(data);
        let global_mean = values.iter().sum::<f64>() / values.len() as f64;
        let mut biases = Biases {
            global_mean,
            user: vec![0.0; data.n_users()],
            item: vec![0.0; data.n_items()],
        };
        let sgd_order = match params.method {
            BaselineMethod::Sgd => surprise_rating_order(data.data.users()),
            BaselineMethod::Als => Vec::new(),
        };
        let epochs = params.epochs();
        ctx.progress.begin("baseline", epochs as u64);
        for epoch in 0..epochs {
            ctx.cancel.check()?;
            match params.method {
                BaselineMethod::Als => biases.als_epoch(data, &values, params),
                BaselineMethod::Sgd => biases.sgd_epoch(data, &values, &sgd_order, params),
            }
            ctx.progress.advance(1);
            ctx.progress
                .epoch(epoch, biases.training_rmse(data, &values), None);
        }
        ctx.progress.finish();
        Ok(biases)
    }

    fn als_epoch(&mut self, data: &TrainSet, values: &[f64], params: &BaselineParams) {
        let mu = self.global_mean;
        let user = &self.user;
        self.item.par_iter_mut().enumerate().for_each(|(i, bi)| {
            let rows = data.by_item.row_entries(i);
            let users = data.by_item.row(i);
            let dev: f64 = rows
                .iter()
                .zip(users)
                .map(|(&r, &u)| values[r as usize] - mu - user[u as usize])
                .sum();
            *bi = dev / (params.reg_i + rows.len() as f64);
        });
        let item = &self.item;
        self.user.par_iter_mut().enumerate().for_each(|(u, bu)| {
            let rows = data.by_user.row_entries(u);
            let items = data.by_user.row(u);
            let dev: f64 = rows
                .iter()
                .zip(items)
                .map(|(&r, &i)| values[r as usize] - mu - item[i as usize])
                .sum();
            *bu = dev / (params.reg_u + rows.len() as f64);
        });
    }

    fn sgd_epoch(
        &mut self,
        data: &TrainSet,
        values: &[f64],
        order: &[u32],
        params: &BaselineParams,
    ) {
        // Sequential on purpose, in Surprise's update order, so results match it.
        let (users, items) = (data.data.users(), data.data.items());
        for &r in order {
            let r = r as usize;
            let (u, i) = (users[r] as usize, items[r] as usize);
            let err = values[r] - (self.global_mean + self.user[u] + self.item[i]);
            self.user[u] += params.lr * (err - params.reg * self.user[u]);
            self.item[i] += params.lr * (err - params.reg * self.item[i]);
        }
    }

    fn training_rmse(&self, data: &TrainSet, values: &[f64]) -> f64 {
        let (users, items) = (data.data.users(), data.data.items());
        let sse: f64 = (0..values.len())
            .map(|r| {
                let e = values[r] - self.predict(users[r], items[r]);
                e * e
            })
            .sum();
        (sse / values.len() as f64).sqrt()
    }

    /// Unclipped mean + user bias + item bias; unknown indices contribute no bias.
    pub fn predict(&self, user: UserIdx, item: ItemIdx) -> f64 {
        self.global_mean
            + self.user.get(user as usize).copied().unwrap_or(0.0)
            + self.item.get(item as usize).copied().unwrap_or(0.0)
    }
}

impl Algorithm for Baseline {
    fn name(&self) -> &'static str {
        "baseline"
    }

    fn params(&self) -> serde_json::Value {
        serde_json::to_value(&self.params).unwrap_or_default()
    }

    fn fit(&self, data: &TrainSet, ctx: &FitContext) -> Result<Box<dyn Model>> {
        let biases = Biases::fit(data, &self.params, ctx)?;
        // The frozen model keeps f32 biases, exactly what it saves, so a reloaded model scores
        // bit-for-bit like the one that was trained.
        let to_f32 = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<_>>();
        Ok(Box::new(BaselineModel {
            global_mean: biases.global_mean as f32,
            user_bias: to_f32(&biases.user),
            item_bias: to_f32(&biases.item),
            params: self.params.clone(),
            fitted: Fitted::from_train(data),
        }))
    }
}

/// A fitted BaselineOnly model.
#[derive(Debug, Clone)]
pub struct BaselineModel {
    pub global_mean: f32,
    pub user_bias: Vec<f32>,
    pub item_bias: Vec<f32>,
    pub params: BaselineParams,
    fitted: Fitted,
}

impl BaselineModel {
    /// Loads a model saved by [`Model::save`].
    pub fn load(params: serde_json::Value, fitted: Fitted, tensors: &TensorReader) -> Result<Self> {
        let params: BaselineParams = serde_json::from_value(params)
            .map_err(|e| Error::InvalidInput(format!("baseline parameters: {e}")))?;
        Ok(Self {
            global_mean: tensors.f32_len("global_mean", 1)?[0],
            user_bias: tensors.f32_len("user_bias", fitted.users.len())?,
            item_bias: tensors.f32_len("item_bias", fitted.items.len())?,
            params,
            fitted,
        })
    }

    /// Unclipped mean + user bias + item bias; unknown indices contribute no bias.
    fn raw(&self, user: UserIdx, item: ItemIdx) -> f32 {
        self.global_mean
            + self.user_bias.get(user as usize).copied().unwrap_or(0.0)
            + self.item_bias.get(item as usize).copied().unwrap_or(0.0)
    }
}

impl Model for BaselineModel {
    fn name(&self) -> &'static str {
        "baseline"
    }

    fn params(&self) -> serde_json::Value {
        serde_json::to_value(&self.params).unwrap_or_default()
    }

    fn fitted(&self) -> &Fitted {
        &self.fitted
    }

    fn predict(&self, user: UserIdx, item: ItemIdx) -> Option<f32> {
        Some(self.fitted.clip(self.raw(user, item)))
    }

    fn score(&self, query: &UserQuery<'_>, items: &[ItemIdx], out: &mut [f32]) {
        let user = query.user.unwrap_or(u32::MAX);
        for (o, &i) in out.iter_mut().zip(items) {
            *o = self.raw(user, i);
        }
    }

    fn save(&self, dir: &Path) -> Result<()> {
        let mut t = TensorWriter::new();
        t.f32("global_mean", &[1], &[self.global_mean])
            .f32("user_bias", &[self.user_bias.len()], &self.user_bias)
            .f32("item_bias", &[self.item_bias.len()], &self.item_bias);
        self.fitted.save(dir, "baseline", Model::params(self), t)
    }
}

/// The `baseline` family's entry in the model registry.
pub struct BaselineFamily;

impl ModelFamily for BaselineFamily {
    fn name(&self) -> &'static str {
        "baseline"
    }

    fn task(&self) -> Task {
        Task::Both
    }

    fn summary(&self) -> &'static str {
        "global mean + user bias + item bias (Surprise BaselineOnly), ALS or SGD"
    }

    fn params(&self) -> Vec<ParamInfo> {
        param_infos::<BaselineParams>(&[
            ("method", None, "als | sgd"),
            (
                "epochs",
                Some("10 (als) / 20 (sgd)"),
                "passes over the data",
            ),
            ("reg_u", None, "ALS: user-bias regularisation"),
            ("reg_i", None, "ALS: item-bias regularisation"),
            ("reg", None, "SGD: bias regularisation"),
            ("lr", None, "SGD: learning rate"),
        ])
    }

    fn build(&self, spec: &ModelSpec) -> Result<Box<dyn Algorithm>> {
        Ok(Box::new(Baseline {
            params: spec.typed()?,
        }))
    }

    fn load(&self, saved: Saved<'_>) -> Result<Box<dyn Model>> {
        saved.load_with(BaselineModel::load)
    }

    fn search_space(&self) -> Option<Space> {
        Some(Space {
            family: "baseline",
            params: vec![
                Param::int("epochs", 2, 30, false, 10),
                Param::float("reg_u", 0.5, 50.0, true, 15.0),
                Param::float("reg_i", 0.5, 50.0, true, 10.0),
            ],
            fidelity: Some("epochs"),
            fixed: Vec::new(),
        })
    }

    fn applicability(&self) -> Applicability {
        Applicability {
            needs_ratings: true,
            ..Applicability::default()
        }
    }

    fn cost(&self) -> Cost {
        Cost::Low
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::train;

    #[test]
    fn als_matches_hand_computation() {
        // mu = 3. One ALS epoch, reg_i = reg_u = 1:
        // items: bi(a) = ((5-3)+(3-3))/(1+2) = 2/3; bi(b) = (1-3)/(1+1) = -1
        // users: bu(x) = ((5-3-2/3)+(1-3+1))/(1+2) = (4/3 - 1)/3 = 1/9; bu(y) = (3-3-2/3)/(1+1) = -1/3
        let data = train(&[("x", "a", 5.0), ("x", "b", 1.0), ("y", "a", 3.0)]);
        let params = BaselineParams {
            epochs: Some(1),
            reg_u: 1.0,
            reg_i: 1.0,
            ..Default::default()
        };
        let b = Biases::fit(&data, &params, &FitContext::default()).unwrap();
        assert!((b.global_mean - 3.0).abs() < 1e-12);
        assert!((b.item[0] - 2.0 / 3.0).abs() < 1e-12);
        assert!((b.item[1] + 1.0).abs() < 1e-12);
        assert!((b.user[0] - 1.0 / 9.0).abs() < 1e-12);
        assert!((b.user[1] + 1.0 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn sgd_matches_hand_computation() {
        // mu = 4; row 1: err = 1, bu += 0.5*(1) = 0.5, bi += 0.5; row 2 (y, a): err = 3-4-0.5 = -1.5,
        // bu(y) = -0.75, bi(a) = 0.5 + 0.5*(-1.5) = -0.25 (reg 0).
        let data = train(&[("x", "a", 5.0), ("y", "a", 3.0)]);
        let params = BaselineParams {
            method: BaselineMethod::Sgd,
            epochs: Some(1),
            reg: 0.0,
            lr: 0.5,
            ..Default::default()
        };
        let b = Biases::fit(&data, &params, &FitContext::default()).unwrap();
        assert!((b.user[0] - 0.5).abs() < 1e-12);
        assert!((b.user[1] + 0.75).abs() < 1e-12);
        assert!((b.item[0] + 0.25).abs() < 1e-12);
    }

    #[test]
    fn sgd_visits_ratings_grouped_by_user_in_first_seen_order() {
        // Users by first appearance: 7, 3, 5; within a user, log order.
        let order = surprise_rating_order(&[7, 3, 7, 5, 3, 7]);
        assert_eq!(order, vec![0, 2, 5, 1, 4, 3]);
    }

    #[test]
    fn predictions_clip_and_save_load_roundtrip() {
        let data = train(&[
            ("x", "a", 5.0),
            ("x", "b", 5.0),
            ("y", "a", 5.0),
            ("y", "c", 1.0),
        ]);
        let model = Baseline::default()
            .fit(&data, &FitContext::default())
            .unwrap();
        for u in 0..2 {
            for i in 0..3 {
                let p = model.predict(u, i).unwrap();
                assert!((1.0..=5.0).contains(&p));
            }
        }
        let dir = std::env::temp_dir().join(format!("kindred-baseline-{}", std::process::id()));
        model.save(&dir).unwrap();
        let loaded = crate::registry::load_model(&dir).unwrap();
        for u in 0..2 {
            for i in 0..3 {
                assert_eq!(loaded.predict(u, i), model.predict(u, i));
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
