//! Neighbourhood rating prediction: Surprise's `KNNBasic`, `KNNWithMeans`, `KNNWithZScore` and
//! `KNNBaseline` in one model (`variant = basic | means | zscore | baseline`).
//!
//! The similarity side `x` is users (`user_based = true`, Surprise's default) or items; `y` is
//! the other side. Fitting computes the dense `x × x` similarity matrix exactly as Surprise
//! defines it, over the co-ratings of each pair (the `y`s both rated):
//!
//! * `cosine`: `Σ r_x r_x' / sqrt(Σ r_x² · Σ r_x'²)`;
//! * `msd`: `1 / (Σ (r_x - r_x')² / n + 1)`;
//! * `pearson`: Pearson correlation centred on each entity's mean over the common `y`s;
//! * `pearson_baseline`: the same on baseline residuals `r - (μ + b_u + b_i)`, not centred,
//!   shrunk by `(n - 1) / (n - 1 + shrinkage)`;
//!
//! and 0 for pairs with fewer than `min_support` co-ratings (the diagonal is 1). Rows are computed
//! in parallel, each pair once (upper triangle) then mirrored, with sums in f64 in a fixed order,
//! so the matrix is the same for any thread count.
//!
//! Prediction for `(u, i)` takes, among the `x'` that rated `y`, the `k` most similar to `x` with
//! a positive similarity (ties: lower index first, where Surprise's order is its trainset order),
//! and averages, weighted by similarity, their ratings (`basic`), their deviations from their
//! means added to `x`'s mean (`means`), their z-scores scaled back by `x`'s deviation
//! (`zscore`), or their residuals from the baseline added to the baseline of `(u, i)`
//! (`baseline`). With fewer than `min_k` such neighbours, `basic` predicts the global mean
//! (Surprise's `PredictionImpossible`) and the others `x`'s mean or the baseline; unknown users or
//! items get the global mean (`baseline`: the baseline with the known biases).
//!
//! The frozen model keeps the whole similarity matrix in f32 (saved as its upper triangle), the
//! training ratings grouped by `y`, and the means, deviations and biases, all f32, so a reloaded
//! model predicts bit for bit like the trained one.

use std::path::Path;

use kindred_core::{CsMatrix, Error, FitContext, ItemIdx, Result, TrainSet, UserIdx};
use serde::{Deserialize, Serialize};

use crate::common::rating_rows::row_values;
use crate::common::similarity::{
    from_upper_triangle, pair_matrix, row_moments, upper_triangle, Acc,
};
use crate::family::{
    param_infos, Applicability, Cost, DataShape, Estimate, ModelFamily, ParamInfo, Saved, Task,
};
use crate::model::{Algorithm, Model, UserQuery};
use crate::params::check;
use crate::params::ModelSpec;
use crate::persist::{Fitted, TensorReader, TensorWriter};
use crate::rating::baseline::{BaselineMethod, BaselineParams, Biases};
use crate::space::{Param, Space};

/// How neighbours' ratings are combined (Surprise's four KNN classes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KnnVariant {
    /// `KNNBasic`: weighted mean of ratings.
    #[default]
    Basic,
    /// `KNNWithMeans`: weighted mean of deviations from each neighbour's mean.
    Means,
    /// `KNNWithZScore`: weighted mean of z-scores.
    Zscore,
    /// `KNNBaseline`: weighted mean of residuals from the baseline.
    Baseline,
}

/// Similarity measure (Surprise's `sim_options['name']`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Similarity {
    Cosine,
    #[default]
    Msd,
    Pearson,
    PearsonBaseline,
}

/// Hyperparameters; defaults are Surprise's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KnnParams {
    pub variant: KnnVariant,
    /// Similarities between users (true) or between items (false).
    pub user_based: bool,
    pub similarity: Similarity,
    /// Most neighbours aggregated per prediction.
    pub k: usize,
    /// Fewest neighbours for a neighbourhood prediction; fewer fall back (see module docs).
    pub min_k: usize,
    /// Fewest common co-ratings for a non-zero similarity.
    pub min_support: usize,
    /// `pearson_baseline` only: shrinkage of similarities backed by few co-ratings.
    pub shrinkage: f64,
    /// Baselines (variant `baseline`, similarity `pearson_baseline`): als | sgd.
    pub method: BaselineMethod,
    /// Baseline epochs; `None`: 10 for ALS, 20 for SGD.
    pub epochs: Option<usize>,
    /// Baseline ALS regularisation of user biases.
    pub reg_u: f64,
    /// Baseline ALS regularisation of item biases.
    pub reg_i: f64,
    /// Baseline SGD regularisation.
    pub reg: f64,
    /// Baseline SGD learning rate.
    pub lr: f64,
}

impl Default for KnnParams {
    fn default() -> Self {
        let b = BaselineParams::default();
        Self {
            variant: KnnVariant::Basic,
            user_based: true,
            similarity: Similarity::Msd,
            k: 40,
            min_k: 1,
            min_support: 1,
            shrinkage: 100.0,
            method: b.method,
            epochs: b.epochs,
            reg_u: b.reg_u,
            reg_i: b.reg_i,
            reg: b.reg,
            lr: b.lr,
        }
    }
}

impl KnnParams {
    fn validate(&self) -> Result<()> {
        if self.k == 0 {
            return Err(Error::InvalidInput("knn: k must be at least 1".into()));
        }
        check::non_negative("knn", "shrinkage", self.shrinkage)?;
        Ok(())
    }

    /// The baseline options as the baseline model's parameters.
    pub fn baseline(&self) -> BaselineParams {
        BaselineParams {
            method: self.method,
            epochs: self.epochs,
            reg_u: self.reg_u,
            reg_i: self.reg_i,
            reg: self.reg,
            lr: self.lr,
        }
    }
}

/// The KNN rating-prediction algorithm.
#[derive(Debug, Clone, Default)]
pub struct Knn {
    pub params: KnnParams,
}

/// Maps non-finite similarities (0/0 on degenerate pairs) to 0: no evidence.
fn finite(s: f64) -> f32 {
    if s.is_finite() {
        s as f32
    } else {
        0.0
    }
}

fn identity(s: f32) -> f32 {
    s
}

/// [`pair_matrix`] with Surprise's `min_support` rule and a diagonal of 1 (monomorphised per
/// kernel so the inner loop inlines it).
#[allow(clippy::too_many_arguments)]
fn similarity_run<A, F>(
    xs: &CsMatrix,
    xv: &[f64],
    ys: &CsMatrix,
    yv: &[f64],
    min_support: u32,
    add: A,
    finish: F,
    ctx: &FitContext,
) -> Result<Vec<f32>>
where
    A: Fn(&mut Acc, f64, f64) + Sync,
    F: Fn(f64, &Acc) -> f64 + Sync,
{
    pair_matrix(
        xs,
        xv,
        ys,
        yv,
        add,
        |freq, a| {
            if freq < min_support {
                0.0
            } else {
                finite(finish(freq as f64, a))
            }
        },
        1.0,
        identity,
        "knn similarities",
        ctx,
    )
}

/// The similarity matrix of `params.similarity` over the rows of `xs`.
fn similarity_matrix(
    xs: &CsMatrix,
    ys: &CsMatrix,
    vals: &[f64],
    params: &KnnParams,
    ctx: &FitContext,
) -> Result<Vec<f32>> {
    let (xv, yv) = (xs.gather(vals), ys.gather(vals));
    let min_support = params.min_support.min(u32::MAX as usize) as u32;
    match params.similarity {
        Similarity::Cosine => similarity_run(
            xs,
            &xv,
            ys,
            &yv,
            min_support,
            |a: &mut Acc, ri: f64, rj: f64| {
                a[0] += ri * rj;
                a[1] += ri * ri;
                a[2] += rj * rj;
            },
            |_, a: &Acc| a[0] / (a[1] * a[2]).sqrt(),
            ctx,
        ),
        Similarity::Msd => similarity_run(
            xs,
            &xv,
            ys,
            &yv,
            min_support,
            |a: &mut Acc, ri: f64, rj: f64| a[0] += (ri - rj) * (ri - rj),
            |n, a: &Acc| 1.0 / (a[0] / n + 1.0),
            ctx,
        ),
        Similarity::Pearson => similarity_run(
            xs,
            &xv,
            ys,
            &yv,
            min_support,
            |a: &mut Acc, ri: f64, rj: f64| {
                a[0] += ri * rj;
                a[1] += ri * ri;
                a[2] += rj * rj;
                a[3] += ri;
                a[4] += rj;
            },
            |n: f64, a: &Acc| {
                let num = n * a[0] - a[3] * a[4];
                let den = ((n * a[1] - a[3] * a[3]) * (n * a[2] - a[4] * a[4])).sqrt();
                if den == 0.0 {
                    0.0
                } else {
                    num / den
                }
            },
            ctx,
        ),
        Similarity::PearsonBaseline => {
            let shrinkage = params.shrinkage;
            similarity_run(
                xs,
                &xv,
                ys,
                &yv,
                min_support,
                |a: &mut Acc, ri: f64, rj: f64| {
                    a[0] += ri * rj;
                    a[1] += ri * ri;
                    a[2] += rj * rj;
                },
                move |n: f64, a: &Acc| {
                    a[0] / (a[1] * a[2]).sqrt() * ((n - 1.0) / (n - 1.0 + shrinkage))
                },
                ctx,
            )
        }
    }
}

impl Algorithm for Knn {
    fn name(&self) -> &'static str {
        "knn"
    }

    fn params(&self) -> serde_json::Value {
        serde_json::to_value(&self.params).unwrap_or_default()
    }

    fn fit(&self, data: &TrainSet, ctx: &FitContext) -> Result<Box<dyn Model>> {
        let p = &self.params;
        p.validate()?;
        if data.data.is_empty() {
            return Err(Error::InvalidInput("knn: empty training set".into()));
        }
        ctx.cancel.check()?;
        let values = row_values(data);
        let n_ratings = values.len() as f64;
        let global_mean = values.iter().sum::<f64>() / n_ratings;
        let needs_biases =
            p.variant == KnnVariant::Baseline || p.similarity == Similarity::PearsonBaseline;
        let biases = if needs_biases {
            Some(Biases::fit(data, &p.baseline(), ctx)?)
        } else {
            None
        };
        let (xs, ys) = if p.user_based {
            (&data.by_user, &data.by_item)
        } else {
            (&data.by_item, &data.by_user)
        };
        let sim = if let (Similarity::PearsonBaseline, Some(b)) = (p.similarity, biases.as_ref()) {
            let (users, items) = (data.data.users(), data.data.items());
            let residuals: Vec<f64> = values
                .iter()
                .enumerate()
                .map(|(r, v)| v - b.predict(users[r], items[r]))
                .collect();
            similarity_matrix(xs, ys, &residuals, p, ctx)?
        } else {
            similarity_matrix(xs, ys, &values, p, ctx)?
        };
        ctx.cancel.check()?;

        let (means, sigmas) = row_moments(xs, &xs.gather(&values));
        let overall_sigma = (values
            .iter()
            .map(|v| (v - global_mean).powi(2))
            .sum::<f64>()
            / n_ratings)
            .sqrt();
        let sigmas = sigmas
            .into_iter()
            .map(|s| if s == 0.0 { overall_sigma } else { s });
        let (item_mean, _) = row_moments(&data.by_item, &data.by_item.gather(&values));
        let to_f32 = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<_>>();
        let (global_mean, user_bias, item_bias) = match (&biases, p.variant) {
            (Some(b), KnnVariant::Baseline) => (b.global_mean, to_f32(&b.user), to_f32(&b.item)),
            _ => (global_mean, Vec::new(), Vec::new()),
        };
        let fitted = Fitted::from_train(data);
        Ok(Box::new(KnnModel::new(
            p.clone(),
            Parts {
                n: xs.n_rows(),
                sim,
                y_indptr: ys.indptr().iter().map(|&q| q as u64).collect(),
                y_x: ys.indices().to_vec(),
                y_r: ys.gather(&values).iter().map(|&v| v as f32).collect(),
                x_mean: to_f32(&means),
                x_sigma: sigmas.map(|s| s as f32).collect(),
                item_mean: to_f32(&item_mean),
                global_mean: global_mean as f32,
                user_bias,
                item_bias,
            },
            fitted,
        )))
    }
}

/// The arrays a fitted KNN model predicts from.
#[derive(Debug, Clone)]
struct Parts {
    /// Entities on the similarity side.
    n: usize,
    /// Dense `n × n` similarities.
    sim: Vec<f32>,
    /// Training ratings grouped by the other side `y`: the `x`s that rated it and their ratings.
    y_indptr: Vec<u64>,
    y_x: Vec<u32>,
    y_r: Vec<f32>,
    /// Mean and (z-score) deviation of each `x`'s ratings.
    x_mean: Vec<f32>,
    x_sigma: Vec<f32>,
    /// Mean rating of each item (anonymous scoring).
    item_mean: Vec<f32>,
    /// Global mean (the baselines' for variant `baseline`).
    global_mean: f32,
    /// Baseline biases (variant `baseline` only, else empty).
    user_bias: Vec<f32>,
    item_bias: Vec<f32>,
}

/// A fitted KNN model.
#[derive(Debug, Clone)]
pub struct KnnModel {
    pub params: KnnParams,
    parts: Parts,
    fitted: Fitted,
}

impl KnnModel {
    fn new(params: KnnParams, parts: Parts, fitted: Fitted) -> Self {
        Self {
            params,
            parts,
            fitted,
        }
    }

    /// Loads a model saved by [`Model::save`].
    pub fn load(params: serde_json::Value, fitted: Fitted, tensors: &TensorReader) -> Result<Self> {
        let params: KnnParams = serde_json::from_value(params)
            .map_err(|e| Error::InvalidInput(format!("knn parameters: {e}")))?;
        let (n_users, n_items) = (fitted.users.len(), fitted.items.len());
        let (n, n_y) = if params.user_based {
            (n_users, n_items)
        } else {
            (n_items, n_users)
        };
        let upper = tensors.f32_len("knn.sim_upper", n * n.saturating_sub(1) / 2)?;
        let y_indptr = tensors.u64("knn.y_indptr")?;
        let y_x = tensors.u32("knn.y_x")?;
        let y_r = tensors.f32_len("knn.y_ratings", y_x.len())?;
        let well_formed = y_indptr.len() == n_y + 1
            && y_indptr.first() == Some(&0)
            && y_indptr.windows(2).all(|w| w[0] <= w[1])
            && y_indptr.last().copied() == Some(y_x.len() as u64)
            && y_x.iter().all(|&x| (x as usize) < n);
        if !well_formed {
            return Err(tensors.error("tensors `knn.y_*` do not form a valid sparse matrix"));
        }
        let (user_bias, item_bias) = if params.variant == KnnVariant::Baseline {
            (
                tensors.f32_len("knn.user_bias", n_users)?,
                tensors.f32_len("knn.item_bias", n_items)?,
            )
        } else {
            (Vec::new(), Vec::new())
        };
        let parts = Parts {
            n,
            sim: from_upper_triangle(&upper, n, 1.0, identity),
            y_indptr,
            y_x,
            y_r,
            x_mean: tensors.f32_len("knn.x_mean", n)?,
            x_sigma: tensors.f32_len("knn.x_sigma", n)?,
            item_mean: tensors.f32_len("knn.item_mean", n_items)?,
            global_mean: tensors.f32_len("knn.global_mean", 1)?[0],
            user_bias,
            item_bias,
        };
        Ok(Self::new(params, parts, fitted))
    }

    fn knows(&self, user: UserIdx, item: ItemIdx) -> bool {
        self.fitted.knows_user(user) && self.fitted.knows_item(item)
    }

    /// Baseline estimate with the biases of known entities (variant `baseline`).
    fn baseline(&self, user: UserIdx, item: ItemIdx) -> f64 {
        let p = &self.parts;
        p.global_mean as f64
            + p.user_bias.get(user as usize).copied().unwrap_or(0.0) as f64
            + p.item_bias.get(item as usize).copied().unwrap_or(0.0) as f64
    }

    /// Surprise's estimate, unclipped.
    fn estimate(&self, user: UserIdx, item: ItemIdx) -> f64 {
        let p = &self.parts;
        let variant = self.params.variant;
        if !self.knows(user, item) {
            return match variant {
                KnnVariant::Baseline => self.baseline(user, item),
                _ => p.global_mean as f64,
            };
        }
        let (x, y) = if self.params.user_based {
            (user as usize, item as usize)
        } else {
            (item as usize, user as usize)
        };
        let sims = &p.sim[x * p.n..(x + 1) * p.n];
        let range = p.y_indptr[y] as usize..p.y_indptr[y + 1] as usize;
        // Raters of y with a positive similarity to x: the k best (similarity descending, then
        // neighbour index, then position) are exactly what Surprise's nlargest keeps and uses.
        let mut cand: Vec<(f32, u32, u32)> = range
            .filter_map(|q| {
                let x2 = p.y_x[q];
                let s = sims[x2 as usize];
                (s > 0.0).then_some((s, x2, q as u32))
            })
            .collect();
        let order = |a: &(f32, u32, u32), b: &(f32, u32, u32)| {
            b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2))
        };
        let k = self.params.k;
        if cand.len() > k {
            cand.select_nth_unstable_by(k - 1, order);
            cand.truncate(k);
        }
        cand.sort_unstable_by(order);
        let enough = cand.len() >= self.params.min_k;
        let (mut sum_sim, mut sum) = (0f64, 0f64);
        for &(s, x2, q) in &cand {
            let (s, r, x2) = (s as f64, p.y_r[q as usize] as f64, x2 as usize);
            sum_sim += s;
            sum += s * match variant {
                KnnVariant::Basic => r,
                KnnVariant::Means => r - p.x_mean[x2] as f64,
                KnnVariant::Zscore => (r - p.x_mean[x2] as f64) / p.x_sigma[x2] as f64,
                KnnVariant::Baseline => {
                    let (u2, i2) = if self.params.user_based {
                        (x2 as UserIdx, item)
                    } else {
                        (user, x2 as ItemIdx)
                    };
                    r - self.baseline(u2, i2)
                }
            };
        }
        let weighted = if enough && sum_sim > 0.0 {
            Some(sum / sum_sim)
        } else {
            None
        };
        match variant {
            KnnVariant::Basic => weighted.unwrap_or(p.global_mean as f64),
            KnnVariant::Means => p.x_mean[x] as f64 + weighted.unwrap_or(0.0),
            KnnVariant::Zscore => {
                p.x_mean[x] as f64 + weighted.map_or(0.0, |w| w * p.x_sigma[x] as f64)
            }
            KnnVariant::Baseline => self.baseline(user, item) + weighted.unwrap_or(0.0),
        }
    }

    /// Score of an item for a user the model cannot personalise for.
    fn anonymous(&self, item: ItemIdx) -> f32 {
        let p = &self.parts;
        if !self.fitted.knows_item(item) {
            return p.global_mean;
        }
        match self.params.variant {
            KnnVariant::Baseline => self.baseline(UserIdx::MAX, item) as f32,
            _ => p.item_mean[item as usize],
        }
    }
}

impl Model for KnnModel {
    fn name(&self) -> &'static str {
        "knn"
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
            *o = match user {
                Some(u) if self.fitted.knows_item(i) => self.estimate(u, i) as f32,
                _ => self.anonymous(i),
            };
        }
    }

    fn save(&self, dir: &Path) -> Result<()> {
        let p = &self.parts;
        let upper = upper_triangle(&p.sim, p.n);
        let mut t = TensorWriter::new();
        t.f32("knn.sim_upper", &[upper.len()], &upper)
            .u64("knn.y_indptr", &p.y_indptr)
            .u32("knn.y_x", &p.y_x)
            .f32("knn.y_ratings", &[p.y_r.len()], &p.y_r)
            .f32("knn.x_mean", &[p.x_mean.len()], &p.x_mean)
            .f32("knn.x_sigma", &[p.x_sigma.len()], &p.x_sigma)
            .f32("knn.item_mean", &[p.item_mean.len()], &p.item_mean)
            .f32("knn.global_mean", &[1], &[p.global_mean]);
        if self.params.variant == KnnVariant::Baseline {
            t.f32("knn.user_bias", &[p.user_bias.len()], &p.user_bias)
                .f32("knn.item_bias", &[p.item_bias.len()], &p.item_bias);
        }
        self.fitted.save(dir, "knn", Model::params(self), t)
    }
}

/// The `knn` family's entry in the model registry.
pub struct KnnFamily;

impl ModelFamily for KnnFamily {
    fn name(&self) -> &'static str {
        "knn"
    }

    fn task(&self) -> Task {
        Task::Both
    }

    fn summary(&self) -> &'static str {
        "k-nearest-neighbour rating prediction (Surprise KNNBasic / KNNWithMeans / KNNWithZScore / KNNBaseline)"
    }

    fn params(&self) -> Vec<ParamInfo> {
        param_infos::<KnnParams>(&[
            (
                "variant",
                None,
                "basic | means | zscore | baseline (how neighbours' ratings are combined)",
            ),
            (
                "user_based",
                None,
                "similarities between users (true) or items (false)",
            ),
            (
                "similarity",
                None,
                "cosine | msd | pearson | pearson_baseline",
            ),
            ("k", None, "most neighbours aggregated per prediction"),
            (
                "min_k",
                None,
                "fewest neighbours, else the mean / baseline / global mean",
            ),
            (
                "min_support",
                None,
                "fewest common co-ratings for a non-zero similarity",
            ),
            (
                "shrinkage",
                None,
                "pearson_baseline: similarity scaled by (n-1)/(n-1+shrinkage)",
            ),
            (
                "method",
                None,
                "baselines (variant baseline, pearson_baseline): als | sgd",
            ),
            ("epochs", Some("10 (als) / 20 (sgd)"), "baseline passes"),
            ("reg_u", None, "baseline ALS: user-bias regularisation"),
            ("reg_i", None, "baseline ALS: item-bias regularisation"),
            ("reg", None, "baseline SGD: bias regularisation"),
            ("lr", None, "baseline SGD: learning rate"),
        ])
    }

    fn build(&self, spec: &ModelSpec) -> Result<Box<dyn Algorithm>> {
        Ok(Box::new(Knn {
            params: spec.typed()?,
        }))
    }

    fn load(&self, saved: Saved<'_>) -> Result<Box<dyn Model>> {
        saved.load_with(KnnModel::load)
    }

    fn search_space(&self) -> Option<Space> {
        Some(Space {
            family: "knn",
            params: vec![
                Param::choice("variant", &["basic", "means", "zscore", "baseline"], 0),
                Param::choice("user_based", &["true", "false"], 0),
                Param::choice(
                    "similarity",
                    &["msd", "cosine", "pearson", "pearson_baseline"],
                    0,
                ),
                Param::int("k", 5, 200, true, 40),
                Param::int("min_k", 1, 10, false, 1),
            ],
            fidelity: None,
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
        Cost::High
    }

    /// The upper triangle of a users x users similarity matrix (Surprise's default is user
    /// based), filled by one pass over each pair of co-rating users.
    fn estimate(&self, shape: &DataShape) -> Estimate {
        let users = shape.users as f64;
        let per_user = shape.interactions as f64 / users.max(1.0);
        Estimate {
            seconds: 4e-9 * users * users + 2e-8 * shape.interactions as f64 * per_user,
            bytes: 2.0 * users * users + 32.0 * shape.interactions as f64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::train;

    /// Users a b c d (indices 0-3), items x y z w (0-3).
    fn toy() -> TrainSet {
        train(&[
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
        ])
    }

    fn fit(data: &TrainSet, spec: &str) -> Box<dyn Model> {
        crate::registry::build_algorithm(spec)
            .unwrap()
            .fit(data, &FitContext::default())
            .unwrap()
    }

    fn sims(data: &TrainSet, params: &KnnParams) -> Vec<f32> {
        let values = row_values(data);
        let (xs, ys) = if params.user_based {
            (&data.by_user, &data.by_item)
        } else {
            (&data.by_item, &data.by_user)
        };
        similarity_matrix(xs, ys, &values, params, &FitContext::default()).unwrap()
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-5
    }

    #[test]
    fn user_similarities_match_hand_computation() {
        let data = toy();
        let p = |similarity, min_support| KnnParams {
            similarity,
            min_support,
            ..Default::default()
        };
        let at = |m: &[f32], a: usize, b: usize| {
            assert_eq!(m[a * 4 + b], m[b * 4 + a], "symmetric");
            m[a * 4 + b] as f64
        };
        // a-b share x, y, z: (5,3) (3,1) (4,2); a-c share x, y: (5,4) (3,3); b-c share x, y, w:
        // (3,4) (1,3) (3,5); b-d share y, z, w: (1,2) (2,5) (3,1); c-d share y, w: (3,2) (5,1).
        let cos = sims(&data, &p(Similarity::Cosine, 1));
        assert!(close(at(&cos, 0, 1), 26.0 / (50.0f64 * 14.0).sqrt()));
        assert!(close(at(&cos, 0, 2), 29.0 / (34.0f64 * 25.0).sqrt()));
        assert!(close(at(&cos, 1, 2), 30.0 / (19.0f64 * 50.0).sqrt()));
        assert_eq!(at(&cos, 3, 3), 1.0);
        let msd = sims(&data, &p(Similarity::Msd, 1));
        assert!(close(at(&msd, 0, 1), 1.0 / (12.0 / 3.0 + 1.0)));
        assert!(close(at(&msd, 0, 2), 1.0 / (1.0 / 2.0 + 1.0)));
        assert!(close(at(&msd, 1, 3), 1.0 / (14.0 / 3.0 + 1.0)));
        assert!(close(at(&msd, 2, 3), 1.0 / (17.0 / 2.0 + 1.0)));
        let pearson = sims(&data, &p(Similarity::Pearson, 1));
        assert!(close(at(&pearson, 0, 1), 1.0)); // centred: (1,-1,0) and (1,-1,0)
                                                 // b-c: n=3, Σxy=30, Σx=7, Σy=12, Σx²=19, Σy²=50: (90-84)/sqrt((57-49)(150-144)).
        assert!(close(at(&pearson, 1, 2), 6.0 / 48.0f64.sqrt()));
        assert!(close(at(&pearson, 2, 3), -1.0));
        // b-d: n=3, Σxy=15, Σx=6, Σy=8, Σx²=14, Σy²=30: (45-48)/sqrt((42-36)(90-64)).
        assert!(close(at(&pearson, 1, 3), -3.0 / (6.0f64 * 26.0).sqrt()));
        // min_support 3: only a-b and b-d keep a similarity.
        let msd3 = sims(&data, &p(Similarity::Msd, 3));
        assert!(close(at(&msd3, 0, 1), 0.2));
        assert!(close(at(&msd3, 1, 3), 1.0 / (14.0 / 3.0 + 1.0)));
        assert_eq!(at(&msd3, 0, 2), 0.0);
        assert_eq!(at(&msd3, 2, 3), 0.0);
    }

    #[test]
    fn pearson_baseline_uses_residuals_and_shrinkage() {
        let data = toy();
        let params = KnnParams {
            user_based: false,
            similarity: Similarity::PearsonBaseline,
            shrinkage: 1.0,
            reg_u: 2.0,
            reg_i: 3.0,
            ..Default::default()
        };
        let b = Biases::fit(&data, &params.baseline(), &FitContext::default()).unwrap();
        let model = Knn {
            params: params.clone(),
        };
        let values = row_values(&data);
        let (users, items) = (data.data.users(), data.data.items());
        let residuals: Vec<f64> = (0..values.len())
            .map(|r| values[r] - b.predict(users[r], items[r]))
            .collect();
        let m = similarity_matrix(
            &data.by_item,
            &data.by_user,
            &residuals,
            &model.params,
            &FitContext::default(),
        )
        .unwrap();
        let res = |u: u32, i: u32| {
            let r = (0..values.len())
                .find(|&r| users[r] == u && items[r] == i)
                .unwrap();
            values[r] - (b.global_mean + b.user[u as usize] + b.item[i as usize])
        };
        // Items x (0) and y (1) share users a, b, c; y and w (3) share b, c, d.
        for (i, j, common) in [(0u32, 1u32, [0u32, 1, 2]), (1, 3, [1, 2, 3])] {
            let (mut p, mut si, mut sj) = (0.0, 0.0, 0.0);
            for u in common {
                p += res(u, i) * res(u, j);
                si += res(u, i).powi(2);
                sj += res(u, j).powi(2);
            }
            let expected = p / (si * sj).sqrt() * (2.0 / (2.0 + 1.0));
            assert!(close(m[(i * 4 + j) as usize] as f64, expected), "{i} {j}");
        }
        // x and w share only b, c: shrinkage (2-1)/(2-1+1) = 1/2.
        let (mut p, mut si, mut sj) = (0.0, 0.0, 0.0);
        for u in [1u32, 2] {
            p += res(u, 0) * res(u, 3);
            si += res(u, 0).powi(2);
            sj += res(u, 3).powi(2);
        }
        assert!(close(m[3] as f64, p / (si * sj).sqrt() * 0.5));
        // The fitted model's similarity matrix is the one computed here.
        let fitted = model.fit(&data, &FitContext::default()).unwrap();
        let dir = std::env::temp_dir().join(format!("kindred-knn-pb-{}", std::process::id()));
        fitted.save(&dir).unwrap();
        let (_, f, t) = Fitted::load(&dir).unwrap();
        let loaded = KnnModel::load(serde_json::to_value(&params).unwrap(), f, &t).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(loaded.parts.sim, m);
    }

    #[test]
    fn predictions_match_surprise_formulas() {
        let data = toy();
        let (a, w) = (0u32, 3u32);
        // User-based msd similarities of a with the raters of w: b 0.2, c 2/3, d 0.5.
        let (sb, sc, sd) = (0.2, 2.0 / 3.0, 0.5);
        let basic = fit(&data, "knn").predict(a, w).unwrap() as f64;
        assert!(close(
            basic,
            (sb * 3.0 + sc * 5.0 + sd * 1.0) / (sb + sc + sd)
        ));
        // k = 2 keeps c and d.
        let basic2 = fit(&data, "knn:k=2").predict(a, w).unwrap() as f64;
        assert!(close(basic2, (sc * 5.0 + sd * 1.0) / (sc + sd)));
        // Means: a 4, c 4, d 8/3.
        let means = fit(&data, "knn:variant=means,k=2").predict(a, w).unwrap() as f64;
        let dev = (sc * (5.0 - 4.0) + sd * (1.0 - 8.0 / 3.0)) / (sc + sd);
        assert!(close(means, 4.0 + dev));
        // Z-scores: sigma(a) = sigma(c) = sqrt(2/3), sigma(d) = sqrt(26/9).
        let zscore = fit(&data, "knn:variant=zscore,k=2").predict(a, w).unwrap() as f64;
        let (s_a, s_c, s_d) = (
            (2.0f64 / 3.0).sqrt(),
            (2.0f64 / 3.0).sqrt(),
            (26.0f64 / 9.0).sqrt(),
        );
        let z = (sc * (5.0 - 4.0) / s_c + sd * (1.0 - 8.0 / 3.0) / s_d) / (sc + sd);
        assert!(close(zscore, 4.0 + z * s_a));
        // Baseline (user-based msd, ALS baselines).
        let b = Biases::fit(&data, &BaselineParams::default(), &FitContext::default()).unwrap();
        let bsl = fit(&data, "knn:variant=baseline,k=2")
            .predict(a, w)
            .unwrap() as f64;
        let r = (sc * (5.0 - b.predict(2, w)) + sd * (1.0 - b.predict(3, w))) / (sc + sd);
        assert!(close(bsl, b.predict(a, w) + r));
        // Too few neighbours (min_k 4 > 3 raters): global mean 41/13, a's mean, the baseline.
        let gm = 41.0 / 13.0;
        assert!(close(
            fit(&data, "knn:min_k=4").predict(a, w).unwrap() as f64,
            gm
        ));
        let m4 = fit(&data, "knn:variant=means,min_k=4");
        assert!(close(m4.predict(a, w).unwrap() as f64, 4.0));
        let b4 = fit(&data, "knn:variant=baseline,min_k=4");
        assert!(close(b4.predict(a, w).unwrap() as f64, b.predict(a, w)));
        // Item-based cosine, basic: w's similarities with a's items x, y, z.
        // x-w share b, c: (3,3) (4,5); y-w share b, c, d: (1,3) (3,5) (2,1); z-w share b, d: (2,3) (5,1).
        let cxw = 29.0 / (25.0f64 * 34.0).sqrt();
        let cyw = 20.0 / (14.0f64 * 35.0).sqrt();
        let czw = 11.0 / (29.0f64 * 10.0).sqrt();
        let item = fit(&data, "knn:user_based=false,similarity=cosine")
            .predict(a, w)
            .unwrap() as f64;
        assert!(close(
            item,
            (cxw * 5.0 + cyw * 3.0 + czw * 4.0) / (cxw + cyw + czw)
        ));
        // Unknown user: global mean (basic), baseline without the user bias (baseline).
        assert!(close(fit(&data, "knn").predict(99, w).unwrap() as f64, gm));
        assert!(close(
            b4.predict(99, w).unwrap() as f64,
            b.global_mean + b.item[w as usize]
        ));
    }

    #[test]
    fn negative_similarities_are_ignored_and_ties_go_to_lower_index() {
        // Pearson: d is anti-correlated with c. Predict (c, z): raters of z are a, b, d.
        let data = toy();
        let m = fit(&data, "knn:similarity=pearson");
        // sim(c, a) = 1, sim(c, b) = 6/sqrt(48), sim(c, d) = -1: d does not count.
        let s = 6.0 / 48.0f64.sqrt();
        assert!(close(
            m.predict(2, 2).unwrap() as f64,
            (4.0 + s * 2.0) / (1.0 + s)
        ));
        // Cosine on a pair without common raters (and pearson on one) is 0, never NaN.
        let p = KnnParams {
            similarity: Similarity::Pearson,
            min_support: 0,
            ..Default::default()
        };
        assert!(sims(&data, &p).iter().all(|s| s.is_finite()));
        // Ties: b and c are both at msd 1/(0+1) = 1 from a in this data; k = 1 keeps b.
        let tie = train(&[
            ("a", "x", 4.0),
            ("b", "x", 4.0),
            ("c", "x", 4.0),
            ("b", "y", 2.0),
            ("c", "y", 5.0),
        ]);
        assert!(close(
            fit(&tie, "knn:k=1").predict(0, 1).unwrap() as f64,
            2.0
        ));
    }

    #[test]
    fn baseline_variant_beats_the_baseline_model_on_synthetic_data() {
        use kindred_core::Protocol;
        use kindred_data::synthetic::{generate, SyntheticConfig};
        let synthetic =
            generate(&SyntheticConfig::parse("users=400,items=200,seed=9").unwrap()).unwrap();
        let data = &synthetic.dataset.interactions;
        let split = &Protocol::parse("kfold:5").unwrap().splits(data).unwrap()[0];
        let train = TrainSet::new(data.subset(&split.train));
        let rmse = |m: &dyn Model| {
            let sse: f64 = split
                .test
                .iter()
                .map(|&r| {
                    let (u, i) = (data.users()[r as usize], data.items()[r as usize]);
                    (m.predict(u, i).unwrap() as f64 - data.ratings()[r as usize] as f64).powi(2)
                })
                .sum();
            (sse / split.test.len() as f64).sqrt()
        };
        let baseline = fit(&train, "baseline");
        let knn = fit(
            &train,
            "knn:variant=baseline,user_based=false,similarity=pearson_baseline",
        );
        let (b, k) = (rmse(baseline.as_ref()), rmse(knn.as_ref()));
        assert!(k < b - 0.005, "knn {k} vs baseline {b}");
    }

    #[test]
    fn save_load_round_trips_every_variant() {
        let data = toy();
        for spec in [
            "knn",
            "knn:variant=means,similarity=cosine,user_based=false",
            "knn:variant=zscore,similarity=pearson",
            "knn:variant=baseline,similarity=pearson_baseline,method=sgd",
        ] {
            let model = fit(&data, spec);
            let dir = std::env::temp_dir().join(format!(
                "kindred-knn-{}-{}",
                std::process::id(),
                spec.replace([':', '=', ','], "_")
            ));
            model.save(&dir).unwrap();
            let loaded = crate::registry::load_model(&dir).unwrap();
            let _ = std::fs::remove_dir_all(&dir);
            for u in 0..5 {
                for i in 0..5 {
                    let (a, b) = (model.predict(u, i).unwrap(), loaded.predict(u, i).unwrap());
                    assert_eq!(a.to_bits(), b.to_bits(), "{spec} ({u}, {i})");
                }
                let (mut a, mut b) = (vec![0f32; 4], vec![0f32; 4]);
                model.score_all(&UserQuery::known(u), &mut a);
                loaded.score_all(&UserQuery::known(u), &mut b);
                assert_eq!(a, b);
            }
        }
    }
}
