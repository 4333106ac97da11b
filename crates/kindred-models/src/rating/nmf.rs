//! Non-negative matrix factorisation for rating prediction, exactly as Surprise's `NMF`
//! (Luo et al. 2014 multiplicative updates; Surprise 1.1 `matrix_factorization.pyx`).
//!
//! Unbiased (the default): `r̂ = p_u · q_i`, with `p_u, q_i >= 0`. Biased: `r̂ = mu + b_u + b_i + p_u · q_i`.
//! Factors start uniform in `[init_low, init_high)`. Each epoch makes one pass that computes every
//! training estimate `est_ui` from the factors of the previous epoch (when biased, the biases are
//! updated by SGD during that pass, in Surprise's rating order, and each estimate uses the biases
//! as they stand when its rating is visited). From those estimates, with the *same* old factors:
//!
//! ```text
//! p_uf *= sum_{i in R(u)} q_if r_ui / (sum_{i in R(u)} q_if est_ui + |R(u)| reg_pu p_uf)
//! q_if *= sum_{u in R(i)} p_uf r_ui / (sum_{u in R(i)} p_uf est_ui + |R(i)| reg_qi q_if)
//! ```
//!
//! Surprise accumulates the item numerators and denominators in the same pass as the users', so
//! the item update uses the user factors from before this epoch's user update; so does this.
//! The user and item updates run in parallel over users and items, each recomputing `p_u · q_i`
//! from the old factors in its own CSR/CSC order (ratings gathered once into that order, so the
//! hot loop reads memory sequentially); only the biased model's SGD pass is sequential. Every sum
//! has a fixed order, so results do not depend on the thread count.
//! Unknown users or items: unbiased falls back to the global mean (Surprise's default prediction
//! when an estimate is impossible); biased drops the unknown side's bias and the factor term.

use std::path::Path;

use kindred_core::kernels::{dot, dot_f64};
use kindred_core::{CsMatrix, Error, FitContext, ItemIdx, Result, SplitMix64, TrainSet, UserIdx};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::common::rating_rows::{row_values, surprise_rating_order};
use crate::family::{param_infos, Applicability, Cost, ModelFamily, ParamInfo, Saved, Task};
use crate::model::{Algorithm, Model, UserQuery};
use crate::params::ModelSpec;
use crate::persist::{Fitted, TensorReader, TensorWriter};
use crate::space::{Param, Space};

/// Hyperparameters; defaults are Surprise's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NmfParams {
    pub factors: usize,
    pub epochs: usize,
    pub biased: bool,
    pub reg_pu: f64,
    pub reg_qi: f64,
    pub reg_bu: f64,
    pub reg_bi: f64,
    pub lr_bu: f64,
    pub lr_bi: f64,
    pub init_low: f64,
    pub init_high: f64,
    /// Seed of the initial factors; `None` uses the fit context's seed.
    pub seed: Option<u64>,
}

impl Default for NmfParams {
    fn default() -> Self {
        Self {
            factors: 15,
            epochs: 50,
            biased: false,
            reg_pu: 0.06,
            reg_qi: 0.06,
            reg_bu: 0.02,
            reg_bi: 0.02,
            lr_bu: 0.005,
            lr_bi: 0.005,
            init_low: 0.0,
            init_high: 1.0,
            seed: None,
        }
    }
}

impl NmfParams {
    fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidInput(format!("nmf: {m}")));
        if self.factors == 0 {
            return bad("factors must be at least 1".into());
        }
        if !(self.init_low >= 0.0 && self.init_high >= self.init_low && self.init_high.is_finite())
        {
            return bad(format!(
                "need 0 <= init_low <= init_high, got {} and {}",
                self.init_low, self.init_high
            ));
        }
        for (name, v) in [
            ("reg_pu", self.reg_pu),
            ("reg_qi", self.reg_qi),
            ("reg_bu", self.reg_bu),
            ("reg_bi", self.reg_bi),
            ("lr_bu", self.lr_bu),
            ("lr_bi", self.lr_bi),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return bad(format!("{name} must be a non-negative number, got {v}"));
            }
        }
        Ok(())
    }
}

/// The NMF algorithm.
#[derive(Debug, Clone, Default)]
pub struct Nmf {
    pub params: NmfParams,
}

/// Training state in f64 (as Surprise), frozen to f32 at the end.
struct State {
    k: usize,
    global_mean: f64,
    pu: Vec<f64>,
    qi: Vec<f64>,
    bu: Vec<f64>,
    bi: Vec<f64>,
}

/// One multiplicative update of a row of factors: `x_f *= num_f / (den_f + n reg x_f)`, skipping
/// zero factors as Surprise does (they stay zero) and guarding an empty denominator.
fn multiplicative(x: &mut [f64], num: &[f64], den: &[f64], n: f64, reg: f64) {
    for ((x, &num), &den) in x.iter_mut().zip(num).zip(den) {
        if *x != 0.0 {
            let den = den + n * reg * *x;
            if den != 0.0 {
                *x *= num / den;
            }
        }
    }
}

/// One side (users or items) laid out for the hot loop: the view's minor indices, and the
/// ratings in the view's entry order (gathered once, so no scattered reads per epoch).
struct Side<'a> {
    view: &'a CsMatrix,
    values: Vec<f64>,
    reg: f64,
}

/// New factors for every row of `side` from the factors of the previous epoch. `bias_est`, when
/// biased, holds the bias part of each estimate in the view's entry order; the factor part
/// `own · other` is recomputed here with the old factors (what Surprise's single pass uses).
fn update_side(
    own: &[f64],
    other: &[f64],
    side: &Side<'_>,
    bias_est: Option<&[f64]>,
    k: usize,
) -> Vec<f64> {
    let view = side.view;
    let mut out = own.to_vec();
    out.par_chunks_mut(k).enumerate().for_each_init(
        || (vec![0.0; k], vec![0.0; k]),
        |(num, den), (r, x)| {
            num.iter_mut().for_each(|v| *v = 0.0);
            den.iter_mut().for_each(|v| *v = 0.0);
            let start = view.indptr()[r];
            let own_row = &own[r * k..(r + 1) * k];
            for (pos, &c) in view.row(r).iter().enumerate() {
                let y = &other[c as usize * k..(c as usize + 1) * k];
                let rating = side.values[start + pos];
                let est = dot_f64(own_row, y) + bias_est.map_or(0.0, |b| b[start + pos]);
                for ((n, d), &y) in num.iter_mut().zip(den.iter_mut()).zip(y) {
                    *n += y * rating;
                    *d += y * est;
                }
            }
            multiplicative(x, num, den, view.row_len(r) as f64, side.reg);
        },
    );
    out
}

impl State {
    fn epoch(
        &mut self,
        data: &TrainSet,
        sides: &[Side<'_>; 2],
        values: &[f64],
        order: &[u32],
        p: &NmfParams,
    ) {
        let k = self.k;
        let (users, items) = (data.data.users(), data.data.items());
        let (pu, qi) = (&self.pu, &self.qi);
        let bias_est = if p.biased {
            // Sequential on purpose: Surprise updates biases rating by rating in this order, each
            // estimate using the biases as they stand when its rating is visited.
            let mut bias_part = vec![0.0; values.len()];
            for &r in order {
                let r = r as usize;
                let (u, i) = (users[r] as usize, items[r] as usize);
                let b = self.global_mean + self.bu[u] + self.bi[i];
                bias_part[r] = b;
                let est = b + dot_f64(&pu[u * k..(u + 1) * k], &qi[i * k..(i + 1) * k]);
                let err = values[r] - est;
                self.bu[u] += p.lr_bu * (err - p.reg_bu * self.bu[u]);
                self.bi[i] += p.lr_bi * (err - p.reg_bi * self.bi[i]);
            }
            Some([
                sides[0].view.gather(&bias_part),
                sides[1].view.gather(&bias_part),
            ])
        } else {
            None
        };
        let new_pu = update_side(
            pu,
            qi,
            &sides[0],
            bias_est.as_ref().map(|b| b[0].as_slice()),
            k,
        );
        let new_qi = update_side(
            qi,
            pu,
            &sides[1],
            bias_est.as_ref().map(|b| b[1].as_slice()),
            k,
        );
        self.pu = new_pu;
        self.qi = new_qi;
    }

    /// Training RMSE of the current factors (unclipped), reported as the epoch's loss.
    fn training_rmse(&self, data: &TrainSet, values: &[f64]) -> f64 {
        let k = self.k;
        let (users, items) = (data.data.users(), data.data.items());
        let sse: f64 = (0..values.len())
            .into_par_iter()
            .map(|r| {
                let (u, i) = (users[r] as usize, items[r] as usize);
                let est = self.global_mean
                    + self.bu[u]
                    + self.bi[i]
                    + dot_f64(&self.pu[u * k..(u + 1) * k], &self.qi[i * k..(i + 1) * k]);
                (values[r] - est).powi(2)
            })
            .sum();
        (sse / values.len().max(1) as f64).sqrt()
    }
}

impl Algorithm for Nmf {
    fn name(&self) -> &'static str {
        "nmf"
    }

    fn params(&self) -> serde_json::Value {
        serde_json::to_value(&self.params).unwrap_or_default()
    }

    fn fit(&self, data: &TrainSet, ctx: &FitContext) -> Result<Box<dyn Model>> {
        Ok(Box::new(self.fit_model(data, ctx)?))
    }
}

impl Nmf {
    /// Trains and returns the concrete model.
    pub fn fit_model(&self, data: &TrainSet, ctx: &FitContext) -> Result<NmfModel> {
        let p = &self.params;
        p.validate()?;
        if data.data.is_empty() {
            return Err(Error::InvalidInput("nmf: empty training set".into()));
        }
        let seed = p.seed.unwrap_or(ctx.seed);
        let values = row_values(data);
        let mean = values.iter().sum::<f64>() / values.len() as f64;
        let k = p.factors;
        let mut rng = SplitMix64::new(seed);
        let mut uniform = |n: usize| -> Vec<f64> {
            (0..n)
                .map(|_| p.init_low + (p.init_high - p.init_low) * rng.next_f64())
                .collect()
        };
        let pu = uniform(data.n_users() * k);
        let qi = uniform(data.n_items() * k);
        let mut state = State {
            k,
            // Surprise's unbiased NMF estimates `p_u · q_i` alone.
            global_mean: if p.biased { mean } else { 0.0 },
            pu,
            qi,
            bu: vec![0.0; data.n_users()],
            bi: vec![0.0; data.n_items()],
        };
        let order = if p.biased {
            surprise_rating_order(data.data.users())
        } else {
            Vec::new()
        };
        let sides = [
            Side {
                view: &data.by_user,
                values: data.by_user.gather(&values),
                reg: p.reg_pu,
            },
            Side {
                view: &data.by_item,
                values: data.by_item.gather(&values),
                reg: p.reg_qi,
            },
        ];
        ctx.progress.begin("nmf", p.epochs as u64);
        for epoch in 0..p.epochs {
            ctx.cancel.check()?;
            state.epoch(data, &sides, &values, &order, p);
            ctx.progress.advance(1);
            ctx.progress
                .epoch(epoch, state.training_rmse(data, &values), None);
        }
        ctx.progress.finish();
        let to_f32 = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<_>>();
        Ok(NmfModel {
            global_mean: mean as f32,
            user_factors: to_f32(&state.pu),
            item_factors: to_f32(&state.qi),
            user_bias: to_f32(&state.bu),
            item_bias: to_f32(&state.bi),
            factors: k,
            params: p.clone(),
            fitted: Fitted::from_train(data),
        })
    }
}

/// A fitted NMF model (f32 parameters, exactly what it saves).
#[derive(Debug, Clone)]
pub struct NmfModel {
    /// Mean training rating: the biased model's offset and the fallback for unknown pairs.
    pub global_mean: f32,
    pub user_factors: Vec<f32>,
    pub item_factors: Vec<f32>,
    pub user_bias: Vec<f32>,
    pub item_bias: Vec<f32>,
    pub factors: usize,
    pub params: NmfParams,
    fitted: Fitted,
}

impl NmfModel {
    /// Loads a model saved by [`Model::save`].
    pub fn load(params: serde_json::Value, fitted: Fitted, tensors: &TensorReader) -> Result<Self> {
        let params: NmfParams = serde_json::from_value(params)
            .map_err(|e| Error::InvalidInput(format!("nmf parameters: {e}")))?;
        let (nu, ni, k) = (fitted.users.len(), fitted.items.len(), params.factors);
        Ok(Self {
            global_mean: tensors.f32_len("global_mean", 1)?[0],
            user_factors: tensors.f32_len("user_factors", nu * k)?,
            item_factors: tensors.f32_len("item_factors", ni * k)?,
            user_bias: tensors.f32_len("user_bias", nu)?,
            item_bias: tensors.f32_len("item_bias", ni)?,
            factors: k,
            params,
            fitted,
        })
    }

    fn user_row(&self, user: UserIdx) -> Option<&[f32]> {
        let k = self.factors;
        self.user_factors
            .get(user as usize * k..(user as usize + 1) * k)
    }

    fn item_row(&self, item: ItemIdx) -> Option<&[f32]> {
        let k = self.factors;
        self.item_factors
            .get(item as usize * k..(item as usize + 1) * k)
    }

    /// Unclipped estimate with Surprise's fallbacks for unknown users or items.
    fn raw(&self, user: UserIdx, item: ItemIdx) -> f32 {
        let term = match (self.user_row(user), self.item_row(item)) {
            (Some(p), Some(q)) => Some(dot(p, q)),
            _ => None,
        };
        if self.params.biased {
            self.global_mean
                + self.user_bias.get(user as usize).copied().unwrap_or(0.0)
                + self.item_bias.get(item as usize).copied().unwrap_or(0.0)
                + term.unwrap_or(0.0)
        } else {
            term.unwrap_or(self.global_mean)
        }
    }
}

impl Model for NmfModel {
    fn name(&self) -> &'static str {
        "nmf"
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

    fn item_embeddings(&self) -> Option<(usize, &[f32])> {
        Some((self.factors, &self.item_factors))
    }

    fn user_embeddings(&self) -> Option<(usize, &[f32])> {
        Some((self.factors, &self.user_factors))
    }

    fn save(&self, dir: &Path) -> Result<()> {
        let mut t = TensorWriter::new();
        let (nu, ni, k) = (self.user_bias.len(), self.item_bias.len(), self.factors);
        t.f32("global_mean", &[1], &[self.global_mean])
            .f32("user_factors", &[nu, k], &self.user_factors)
            .f32("item_factors", &[ni, k], &self.item_factors)
            .f32("user_bias", &[nu], &self.user_bias)
            .f32("item_bias", &[ni], &self.item_bias);
        self.fitted.save(dir, "nmf", Model::params(self), t)
    }
}

/// The `nmf` family's entry in the model registry.
pub struct NmfFamily;

impl ModelFamily for NmfFamily {
    fn name(&self) -> &'static str {
        "nmf"
    }

    fn task(&self) -> Task {
        Task::Rating
    }

    fn summary(&self) -> &'static str {
        "non-negative matrix factorisation by multiplicative updates (Surprise NMF)"
    }

    fn params(&self) -> Vec<ParamInfo> {
        param_infos::<NmfParams>(&[
            ("factors", None, "latent factors"),
            ("epochs", None, "multiplicative-update epochs"),
            ("biased", None, "add mean + user/item biases fitted by SGD"),
            ("reg_pu", None, "user-factor regularisation"),
            ("reg_qi", None, "item-factor regularisation"),
            ("reg_bu", None, "user-bias regularisation (biased)"),
            ("reg_bi", None, "item-bias regularisation (biased)"),
            ("lr_bu", None, "user-bias learning rate (biased)"),
            ("lr_bi", None, "item-bias learning rate (biased)"),
            (
                "init_low",
                None,
                "lower bound of the uniform initial factors (>= 0)",
            ),
            (
                "init_high",
                None,
                "upper bound of the uniform initial factors",
            ),
            ("seed", Some("fit seed (42)"), "seed of the initial factors"),
        ])
    }

    fn build(&self, spec: &ModelSpec) -> Result<Box<dyn Algorithm>> {
        Ok(Box::new(Nmf {
            params: spec.typed()?,
        }))
    }

    fn load(&self, saved: Saved<'_>) -> Result<Box<dyn Model>> {
        saved.load_with(NmfModel::load)
    }

    fn search_space(&self) -> Option<Space> {
        Some(Space {
            family: "nmf",
            params: vec![
                Param::int("factors", 5, 100, true, 15),
                Param::int("epochs", 20, 150, false, 50),
                Param::float("reg_pu", 0.01, 0.5, true, 0.06),
                Param::float("reg_qi", 0.01, 0.5, true, 0.06),
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
        Cost::Medium
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{rmse, synthetic_split, train};

    #[test]
    fn one_update_matches_hand_computation() {
        // Users x, y; items a, b. Ratings: x-a 4, x-b 2, y-a 3. All factors start at 1 (k = 1),
        // so every estimate is 1. reg = 0.5.
        // p_x: num = 1*4 + 1*2 = 6; den = 1*1 + 1*1 + 2*0.5*1 = 3; p_x = 2.
        // p_y: num = 3; den = 1 + 1*0.5 = 1.5; p_y = 2.
        // q_a (old p): num = 4 + 3 = 7; den = 1 + 1 + 2*0.5 = 3; q_a = 7/3.
        // q_b: num = 2; den = 1 + 0.5 = 1.5; q_b = 4/3.
        let data = train(&[("x", "a", 4.0), ("x", "b", 2.0), ("y", "a", 3.0)]);
        let params = NmfParams {
            factors: 1,
            epochs: 1,
            reg_pu: 0.5,
            reg_qi: 0.5,
            init_low: 1.0,
            init_high: 1.0,
            ..Default::default()
        };
        let model = Nmf { params }
            .fit_model(&data, &FitContext::default())
            .unwrap();
        let close = |got: f32, want: f32| assert!((got - want).abs() < 1e-6, "{got} vs {want}");
        close(model.user_factors[0], 2.0);
        close(model.user_factors[1], 2.0);
        close(model.item_factors[0], 7.0 / 3.0);
        close(model.item_factors[1], 4.0 / 3.0);
        close(model.raw(0, 1), 8.0 / 3.0);
        // Clipped to the rating range, and the global mean 3 for an unknown user.
        close(model.predict(0, 0).unwrap(), 4.0);
        close(model.predict(9, 0).unwrap(), 3.0);
    }

    fn fit_nmf(data: &TrainSet, params: NmfParams, seed: u64) -> NmfModel {
        let model = Nmf { params }
            .fit(data, &FitContext::with_seed(seed))
            .unwrap();
        let dir = std::env::temp_dir().join(format!(
            "kindred-nmf-{}-{seed}-{}",
            std::process::id(),
            model.params()["biased"]
        ));
        model.save(&dir).unwrap();
        let (_, fitted, tensors) = Fitted::load(&dir).unwrap();
        let loaded = NmfModel::load(model.params(), fitted, &tensors).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        loaded
    }

    #[test]
    fn factors_stay_non_negative_and_seed_determines_the_model() {
        let (train, _) = synthetic_split("users=120,items=60,seed=5");
        for seed in 0..6u64 {
            for biased in [false, true] {
                let params = NmfParams {
                    epochs: 8,
                    factors: 4,
                    biased,
                    ..Default::default()
                };
                let m = fit_nmf(&train, params.clone(), seed);
                assert!(m
                    .user_factors
                    .iter()
                    .chain(&m.item_factors)
                    .all(|&x| x >= 0.0 && x.is_finite()));
                let again = fit_nmf(&train, params, seed);
                assert_eq!(m.user_factors, again.user_factors);
                assert_eq!(m.item_bias, again.item_bias);
            }
        }
    }

    #[test]
    fn save_load_gives_identical_predictions() {
        let (train, test) = synthetic_split("users=150,items=80,seed=2");
        for spec in ["nmf:epochs=10", "nmf:epochs=10,biased=true"] {
            let model = crate::registry::build_algorithm(spec)
                .unwrap()
                .fit(&train, &FitContext::default())
                .unwrap();
            let dir = std::env::temp_dir().join(format!(
                "kindred-nmf-save-{}-{}",
                std::process::id(),
                spec.len()
            ));
            model.save(&dir).unwrap();
            let loaded = crate::registry::load_model(&dir).unwrap();
            let _ = std::fs::remove_dir_all(&dir);
            for &(u, i, _) in &test {
                assert_eq!(model.predict(u, i), loaded.predict(u, i));
            }
            assert_eq!(model.predict(10_000, 0), loaded.predict(10_000, 0));
        }
    }

    #[test]
    fn beats_the_global_mean_on_synthetic_data() {
        let (train, test) = synthetic_split("users=400,items=200,seed=9");
        let mean = row_values(&train).iter().sum::<f64>() / train.data.len() as f64;
        let mean_rmse = rmse(&test, |_, _| mean as f32);
        for biased in [false, true] {
            let model = Nmf {
                params: NmfParams {
                    biased,
                    ..Default::default()
                },
            }
            .fit(&train, &FitContext::default())
            .unwrap();
            let got = rmse(&test, |u, i| model.predict(u, i).unwrap());
            assert!(
                got < mean_rmse,
                "nmf biased={biased} rmse {got} vs mean {mean_rmse}"
            );
        }
    }
}
