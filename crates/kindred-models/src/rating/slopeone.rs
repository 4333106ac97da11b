//! Slope One (Lemire & Maclachlan 2005), as Surprise's `SlopeOne` implements it:
//!
//! `r̂(u, i) = μ_u + (1 / |R_i(u)|) Σ_{j ∈ R_i(u)} dev(i, j)`, where `dev(i, j)` is the mean over
//! the users who rated both of `r_ui - r_uj`, and `R_i(u)` the items `u` rated that share at
//! least one rater with `i`. With `R_i(u)` empty the prediction is `μ_u`; unknown users or items
//! get the global mean (Surprise's `PredictionImpossible`).
//!
//! Fitting computes the dense item × item deviation matrix in parallel (each pair once, then
//! mirrored with the opposite sign), with sums in f64 in a fixed order. Pairs without a common
//! rater are stored as NaN, which is how prediction tells them apart (Surprise keeps a separate
//! count matrix for that alone). The frozen model keeps the deviations and user means in f32
//! (saved as the upper triangle), so a reloaded model predicts bit for bit like the trained one.

use std::path::Path;

use kindred_core::{Error, FitContext, ItemIdx, Result, TrainSet, UserIdx};
use serde::{Deserialize, Serialize};

use crate::common::rating_rows::row_values;
use crate::common::similarity::{from_upper_triangle, pair_matrix, row_moments, upper_triangle};
use crate::family::{
    param_infos, Applicability, Cost, DataShape, Estimate, ModelFamily, ParamInfo, Saved, Task,
};
use crate::model::{Algorithm, Model, UserQuery};
use crate::params::ModelSpec;
use crate::persist::{Fitted, TensorReader, TensorWriter};

/// Hyperparameters (Surprise's SlopeOne has none).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SlopeOneParams {}

/// The Slope One algorithm.
#[derive(Debug, Clone, Default)]
pub struct SlopeOne {
    pub params: SlopeOneParams,
}

fn negate(d: f32) -> f32 {
    -d
}

impl Algorithm for SlopeOne {
    fn name(&self) -> &'static str {
        "slopeone"
    }

    fn params(&self) -> serde_json::Value {
        serde_json::to_value(&self.params).unwrap_or_default()
    }

    fn fit(&self, data: &TrainSet, ctx: &FitContext) -> Result<Box<dyn Model>> {
        if data.data.is_empty() {
            return Err(Error::InvalidInput("slopeone: empty training set".into()));
        }
        ctx.cancel.check()?;
        let values = row_values(data);
        let global_mean = values.iter().sum::<f64>() / values.len() as f64;
        let (xs, ys) = (&data.by_item, &data.by_user);
        let (xv, yv) = (xs.gather(&values), ys.gather(&values));
        let dev = pair_matrix(
            xs,
            &xv,
            ys,
            &yv,
            |a, ri, rj| a[0] += ri - rj,
            |freq, a| {
                if freq == 0 {
                    f32::NAN
                } else {
                    (a[0] / freq as f64) as f32
                }
            },
            0.0,
            negate,
            "slopeone deviations",
            ctx,
        )?;
        let (user_mean, _) = row_moments(&data.by_user, &data.by_user.gather(&values));
        let (item_mean, _) = row_moments(xs, &xv);
        let to_f32 = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<_>>();
        Ok(Box::new(SlopeOneModel::new(
            self.params.clone(),
            dev,
            to_f32(&user_mean),
            to_f32(&item_mean),
            global_mean as f32,
            Fitted::from_train(data),
        )))
    }
}

/// A fitted Slope One model.
#[derive(Debug, Clone)]
pub struct SlopeOneModel {
    pub params: SlopeOneParams,
    /// Dense `n_items × n_items` mean deviations `dev[i][j]`; NaN where no user rated both.
    dev: Vec<f32>,
    user_mean: Vec<f32>,
    item_mean: Vec<f32>,
    global_mean: f32,
    fitted: Fitted,
}

impl SlopeOneModel {
    fn new(
        params: SlopeOneParams,
        dev: Vec<f32>,
        user_mean: Vec<f32>,
        item_mean: Vec<f32>,
        global_mean: f32,
        fitted: Fitted,
    ) -> Self {
        Self {
            params,
            dev,
            user_mean,
            item_mean,
            global_mean,
            fitted,
        }
    }

    /// Loads a model saved by [`Model::save`].
    pub fn load(params: serde_json::Value, fitted: Fitted, tensors: &TensorReader) -> Result<Self> {
        let params: SlopeOneParams = serde_json::from_value(params)
            .map_err(|e| Error::InvalidInput(format!("slopeone parameters: {e}")))?;
        let (n_users, n) = (fitted.users.len(), fitted.items.len());
        let upper = tensors.f32_len("slopeone.dev_upper", n * n.saturating_sub(1) / 2)?;
        Ok(Self::new(
            params,
            from_upper_triangle(&upper, n, 0.0, negate),
            tensors.f32_len("slopeone.user_mean", n_users)?,
            tensors.f32_len("slopeone.item_mean", n)?,
            tensors.f32_len("slopeone.global_mean", 1)?[0],
            fitted,
        ))
    }

    /// Surprise's estimate, unclipped.
    fn estimate(&self, user: UserIdx, item: ItemIdx) -> f64 {
        if !(self.fitted.knows_user(user) && self.fitted.knows_item(item)) {
            return self.global_mean as f64;
        }
        let n = self.item_mean.len();
        let row = &self.dev[item as usize * n..(item as usize + 1) * n];
        let (mut sum, mut count) = (0f64, 0usize);
        for &j in self.fitted.seen.items_of(user) {
            let d = row[j as usize];
            if !d.is_nan() {
                sum += d as f64;
                count += 1;
            }
        }
        let mut est = self.user_mean[user as usize] as f64;
        if count > 0 {
            est += sum / count as f64;
        }
        est
    }
}

impl Model for SlopeOneModel {
    fn name(&self) -> &'static str {
        "slopeone"
    }

    fn params(&self) -> serde_json::Value {
        serde_json::to_value(&self.params).unwrap_or_default()
    }

    fn fitted(&self) -> &Fitted {
        &self.fitted
    }

    fn predict(&self, user: UserIdx, item: ItemIdx) -> Option<f32> {
        Some(self.fitted.clip(self.estimate(user, item) as f32))
    }

    fn score(&self, query: &UserQuery<'_>, items: &[ItemIdx], out: &mut [f32]) {
        let user = query.user.filter(|&u| self.fitted.knows_user(u));
        for (o, &i) in out.iter_mut().zip(items) {
            *o = if !self.fitted.knows_item(i) {
                self.global_mean
            } else if let Some(u) = user {
                self.estimate(u, i) as f32
            } else {
                self.item_mean[i as usize]
            };
        }
    }

    fn save(&self, dir: &Path) -> Result<()> {
        let upper = upper_triangle(&self.dev, self.item_mean.len());
        let mut t = TensorWriter::new();
        t.f32("slopeone.dev_upper", &[upper.len()], &upper)
            .f32(
                "slopeone.user_mean",
                &[self.user_mean.len()],
                &self.user_mean,
            )
            .f32(
                "slopeone.item_mean",
                &[self.item_mean.len()],
                &self.item_mean,
            )
            .f32("slopeone.global_mean", &[1], &[self.global_mean]);
        self.fitted.save(dir, "slopeone", Model::params(self), t)
    }
}

/// The `slopeone` family's entry in the model registry.
pub struct SlopeOneFamily;

impl ModelFamily for SlopeOneFamily {
    fn name(&self) -> &'static str {
        "slopeone"
    }

    fn task(&self) -> Task {
        Task::Both
    }

    fn summary(&self) -> &'static str {
        "Slope One: user mean + mean item-item rating deviation (Surprise SlopeOne)"
    }

    fn params(&self) -> Vec<ParamInfo> {
        param_infos::<SlopeOneParams>(&[])
    }

    fn build(&self, spec: &ModelSpec) -> Result<Box<dyn Algorithm>> {
        Ok(Box::new(SlopeOne {
            params: spec.typed()?,
        }))
    }

    fn load(&self, saved: Saved<'_>) -> Result<Box<dyn Model>> {
        saved.load_with(SlopeOneModel::load)
    }

    fn applicability(&self) -> Applicability {
        Applicability {
            needs_ratings: true,
            ..Applicability::default()
        }
    }

    fn cost(&self) -> Cost {
        Cost::High
    }

    /// Deviations and counts over the upper triangle of items x items, filled from every pair
    /// of items a user rated.
    fn estimate(&self, shape: &DataShape) -> Estimate {
        let items = shape.items as f64;
        let per_user = shape.interactions as f64 / (shape.users as f64).max(1.0);
        Estimate {
            seconds: 4e-9 * shape.interactions as f64 * per_user,
            bytes: 4.0 * items * items + 32.0 * shape.interactions as f64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kindred_core::{Interaction, InteractionsBuilder};

    /// Users a b c d e (0-4), items x y z w v (0-4); v's only rater is e.
    fn toy() -> TrainSet {
        let mut b = InteractionsBuilder::new();
        for (u, i, r) in [
            ("a", "x", 5.0),
            ("a", "y", 3.0),
            ("a", "z", 4.0),
            ("b", "x", 3.0),
            ("b", "y", 1.0),
            ("b", "z", 2.0),
            ("b", "w", 3.0),
            ("c", "x", 4.0),
            ("c", "y", 3.0),
            ("c", "w", 5.0),
            ("d", "y", 2.0),
            ("d", "z", 5.0),
            ("d", "w", 1.0),
            ("e", "v", 2.0),
        ] {
            b.push(Interaction::rating(u, i, r, None));
        }
        TrainSet::new(b.build())
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-5
    }

    #[test]
    fn deviations_and_predictions_match_hand_computation() {
        let data = toy();
        let model = SlopeOne::default()
            .fit(&data, &FitContext::default())
            .unwrap();
        let dir = std::env::temp_dir().join(format!("kindred-slopeone-{}", std::process::id()));
        model.save(&dir).unwrap();
        let (_, f, t) = Fitted::load(&dir).unwrap();
        let m = SlopeOneModel::load(serde_json::json!({}), f, &t).unwrap();
        let loaded = crate::registry::load_model(&dir).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        let dev = |i: usize, j: usize| m.dev[i * 5 + j] as f64;
        // dev(x, y) over a, b, c: (2 + 2 + 1) / 3; dev(x, z) over a, b: (1 + 1) / 2;
        // dev(x, w) over b, c: (0 - 1) / 2; antisymmetric, 0 on the diagonal, NaN without co-raters.
        assert!(close(dev(0, 1), 5.0 / 3.0));
        assert!(close(dev(1, 0), -5.0 / 3.0));
        assert!(close(dev(0, 2), 1.0));
        assert!(close(dev(0, 3), -0.5));
        assert!(close(dev(3, 2), -1.5)); // w - z over b, d: (1 - 4) / 2
        assert_eq!(dev(2, 2), 0.0);
        assert!(dev(4, 0).is_nan() && dev(0, 4).is_nan());
        // (d, x): mean(d) = 8/3, plus the mean of dev(x, y), dev(x, z), dev(x, w).
        let p = |u, i| model.predict(u, i).unwrap() as f64;
        assert!(close(p(3, 0), 8.0 / 3.0 + (5.0 / 3.0 + 1.0 - 0.5) / 3.0));
        // (a, w): 4 + (dev(w, x) + dev(w, y) + dev(w, z)) / 3 = 4 + (0.5 + 1 - 1.5) / 3.
        assert!(close(p(0, 3), 4.0));
        // (a, v): no item of a shares a rater with v, so a's mean.
        assert!(close(p(0, 4), 4.0));
        // Unknown user: the global mean, 43 / 14.
        assert!(close(p(9, 0), 43.0 / 14.0));
        for u in 0..6 {
            for i in 0..6 {
                assert_eq!(
                    model.predict(u, i).map(f32::to_bits),
                    loaded.predict(u, i).map(f32::to_bits)
                );
            }
        }
    }
}
