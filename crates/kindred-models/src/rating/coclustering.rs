//! Co-clustering (George & Merugu 2005), as Surprise's `CoClustering` implements it.
//!
//! Users and items are assigned to `n_cltr_u` and `n_cltr_i` clusters (randomly at first, from
//! the seed); the prediction is
//! `r̂(u, i) = C̄(c_u, c_i) + (μ_u - C̄_u(c_u)) + (μ_i - C̄_i(c_i))`,
//! with `C̄` the mean rating of a co-cluster, user cluster or item cluster (the global mean for
//! an empty one). Each epoch recomputes the averages, moves every user to the cluster that
//! minimises the squared error of the user's ratings (with the items' current clusters), then
//! every item likewise (with the users' new clusters); ties go to the lower cluster, as with
//! numpy's `argmin`. Averages are computed once more at the end. Unknown users or items get the
//! global mean (Surprise's `PredictionImpossible`).
//!
//! Users (then items) are reassigned in parallel; each assignment depends only on the previous
//! state, so results depend on the seed alone, not on the thread count.

use std::path::Path;

use kindred_core::{Error, FitContext, ItemIdx, Result, SplitMix64, TrainSet, UserIdx};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::common::rating_rows::row_values;
use crate::common::similarity::row_moments;
use crate::family::{param_infos, Applicability, Cost, ModelFamily, ParamInfo, Saved, Task};
use crate::model::{Algorithm, Model, UserQuery};
use crate::params::ModelSpec;
use crate::persist::{Fitted, TensorReader, TensorWriter};
use crate::space::{Param, Space};

/// Hyperparameters; defaults are Surprise's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CoClusteringParams {
    /// Number of user clusters.
    pub n_cltr_u: usize,
    /// Number of item clusters.
    pub n_cltr_i: usize,
    /// Assignment passes.
    pub epochs: usize,
    /// Seed of the initial assignment; `None` uses the fit context's seed.
    pub seed: Option<u64>,
}

impl Default for CoClusteringParams {
    fn default() -> Self {
        Self {
            n_cltr_u: 3,
            n_cltr_i: 3,
            epochs: 20,
            seed: None,
        }
    }
}

/// The co-clustering algorithm.
#[derive(Debug, Clone, Default)]
pub struct CoClustering {
    pub params: CoClusteringParams,
}

/// Cluster averages for one assignment.
#[derive(Debug, Clone, PartialEq)]
struct Averages {
    user: Vec<f64>,
    item: Vec<f64>,
    /// Row-major `n_cltr_u × n_cltr_i`.
    co: Vec<f64>,
}

fn averages(
    data: &TrainSet,
    values: &[f64],
    cu: &[u32],
    ci: &[u32],
    (ku, ki): (usize, usize),
    global_mean: f64,
) -> Averages {
    let (mut su, mut nu) = (vec![0f64; ku], vec![0u64; ku]);
    let (mut si, mut ni) = (vec![0f64; ki], vec![0u64; ki]);
    let (mut sc, mut nc) = (vec![0f64; ku * ki], vec![0u64; ku * ki]);
    let (users, items) = (data.data.users(), data.data.items());
    for (r, &v) in values.iter().enumerate() {
        let (uc, ic) = (
            cu[users[r] as usize] as usize,
            ci[items[r] as usize] as usize,
        );
        su[uc] += v;
        nu[uc] += 1;
        si[ic] += v;
        ni[ic] += 1;
        sc[uc * ki + ic] += v;
        nc[uc * ki + ic] += 1;
    }
    let avg = |s: Vec<f64>, n: Vec<u64>| -> Vec<f64> {
        s.iter()
            .zip(&n)
            .map(|(&s, &n)| if n > 0 { s / n as f64 } else { global_mean })
            .collect()
    };
    Averages {
        user: avg(su, nu),
        item: avg(si, ni),
        co: avg(sc, nc),
    }
}

/// Index of the smallest error, the first among equals.
fn argmin(errors: &[f64]) -> u32 {
    let mut best = 0;
    for (c, &e) in errors.iter().enumerate() {
        if e < errors[best] {
            best = c;
        }
    }
    best as u32
}

impl Algorithm for CoClustering {
    fn name(&self) -> &'static str {
        "coclustering"
    }

    fn params(&self) -> serde_json::Value {
        serde_json::to_value(&self.params).unwrap_or_default()
    }

    fn fit(&self, data: &TrainSet, ctx: &FitContext) -> Result<Box<dyn Model>> {
        let p = &self.params;
        if p.n_cltr_u == 0 || p.n_cltr_i == 0 {
            return Err(Error::InvalidInput(
                "coclustering: n_cltr_u and n_cltr_i must be at least 1".into(),
            ));
        }
        if data.data.is_empty() {
            return Err(Error::InvalidInput(
                "coclustering: empty training set".into(),
            ));
        }
        let k = (p.n_cltr_u, p.n_cltr_i);
        let values = row_values(data);
        let global_mean = values.iter().sum::<f64>() / values.len() as f64;
        let (by_user, by_item) = (&data.by_user, &data.by_item);
        let (uv, iv) = (by_user.gather(&values), by_item.gather(&values));
        let (user_mean, _) = row_moments(by_user, &uv);
        let (item_mean, _) = row_moments(by_item, &iv);

        let mut rng = SplitMix64::new(p.seed.unwrap_or(ctx.seed));
        let mut cu: Vec<u32> = (0..data.n_users())
            .map(|_| rng.below(k.0 as u64) as u32)
            .collect();
        let mut ci: Vec<u32> = (0..data.n_items())
            .map(|_| rng.below(k.1 as u64) as u32)
            .collect();

        ctx.progress.begin("coclustering", p.epochs as u64);
        for epoch in 0..p.epochs {
            ctx.cancel.check()?;
            let a = averages(data, &values, &cu, &ci, k, global_mean);
            let est = |uc: usize, ic: usize, u: usize, i: usize| {
                a.co[uc * k.1 + ic] + user_mean[u] - a.user[uc] + item_mean[i] - a.item[ic]
            };
            let ptr = by_user.indptr();
            let ci_now = &ci;
            cu.par_iter_mut().enumerate().for_each(|(u, c)| {
                let (items, vals) = (by_user.row(u), &uv[ptr[u]..ptr[u + 1]]);
                let errors: Vec<f64> = (0..k.0)
                    .map(|uc| {
                        items
                            .iter()
                            .zip(vals)
                            .map(|(&i, &r)| {
                                let e = r - est(uc, ci_now[i as usize] as usize, u, i as usize);
                                e * e
                            })
                            .sum()
                    })
                    .collect();
                *c = argmin(&errors);
            });
            let ptr = by_item.indptr();
            let cu_now = &cu;
            // The item step's chosen errors sum to the training SSE of this epoch's assignment.
            let sse: f64 = ci
                .par_iter_mut()
                .enumerate()
                .map(|(i, c)| {
                    let (users, vals) = (by_item.row(i), &iv[ptr[i]..ptr[i + 1]]);
                    let errors: Vec<f64> = (0..k.1)
                        .map(|ic| {
                            users
                                .iter()
                                .zip(vals)
                                .map(|(&u, &r)| {
                                    let e = r - est(cu_now[u as usize] as usize, ic, u as usize, i);
                                    e * e
                                })
                                .sum()
                        })
                        .collect();
                    *c = argmin(&errors);
                    errors[*c as usize]
                })
                .sum();
            ctx.progress.advance(1);
            ctx.progress
                .epoch(epoch, (sse / values.len().max(1) as f64).sqrt(), None);
        }
        ctx.progress.finish();
        let a = averages(data, &values, &cu, &ci, k, global_mean);
        let to_f32 = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<_>>();
        Ok(Box::new(CoClusteringModel::new(
            p.clone(),
            Parts {
                cltr_u: cu,
                cltr_i: ci,
                user_mean: to_f32(&user_mean),
                item_mean: to_f32(&item_mean),
                avg_u: to_f32(&a.user),
                avg_i: to_f32(&a.item),
                avg_co: to_f32(&a.co),
                global_mean: global_mean as f32,
            },
            Fitted::from_train(data),
        )))
    }
}

#[derive(Debug, Clone)]
struct Parts {
    cltr_u: Vec<u32>,
    cltr_i: Vec<u32>,
    user_mean: Vec<f32>,
    item_mean: Vec<f32>,
    avg_u: Vec<f32>,
    avg_i: Vec<f32>,
    avg_co: Vec<f32>,
    global_mean: f32,
}

/// A fitted co-clustering model.
#[derive(Debug, Clone)]
pub struct CoClusteringModel {
    pub params: CoClusteringParams,
    parts: Parts,
    fitted: Fitted,
}

impl CoClusteringModel {
    fn new(params: CoClusteringParams, parts: Parts, fitted: Fitted) -> Self {
        Self {
            params,
            parts,
            fitted,
        }
    }

    /// Loads a model saved by [`Model::save`].
    pub fn load(params: serde_json::Value, fitted: Fitted, tensors: &TensorReader) -> Result<Self> {
        let params: CoClusteringParams = serde_json::from_value(params)
            .map_err(|e| Error::InvalidInput(format!("coclustering parameters: {e}")))?;
        let (n_users, n_items) = (fitted.users.len(), fitted.items.len());
        let (ku, ki) = (params.n_cltr_u, params.n_cltr_i);
        let cltr_u = tensors.u32("coclustering.cltr_u")?;
        let cltr_i = tensors.u32("coclustering.cltr_i")?;
        if cltr_u.len() != n_users
            || cltr_i.len() != n_items
            || cltr_u.iter().any(|&c| c as usize >= ku)
            || cltr_i.iter().any(|&c| c as usize >= ki)
        {
            return Err(tensors.error("cluster assignments do not match the model"));
        }
        let parts = Parts {
            cltr_u,
            cltr_i,
            user_mean: tensors.f32_len("coclustering.user_mean", n_users)?,
            item_mean: tensors.f32_len("coclustering.item_mean", n_items)?,
            avg_u: tensors.f32_len("coclustering.avg_u", ku)?,
            avg_i: tensors.f32_len("coclustering.avg_i", ki)?,
            avg_co: tensors.f32_len("coclustering.avg_co", ku * ki)?,
            global_mean: tensors.f32_len("coclustering.global_mean", 1)?[0],
        };
        Ok(Self::new(params, parts, fitted))
    }

    /// Surprise's estimate, unclipped.
    fn estimate(&self, user: UserIdx, item: ItemIdx) -> f64 {
        let p = &self.parts;
        if !(self.fitted.knows_user(user) && self.fitted.knows_item(item)) {
            return p.global_mean as f64;
        }
        let (u, i) = (user as usize, item as usize);
        let (uc, ic) = (p.cltr_u[u] as usize, p.cltr_i[i] as usize);
        p.avg_co[uc * self.params.n_cltr_i + ic] as f64 + p.user_mean[u] as f64 - p.avg_u[uc] as f64
            + p.item_mean[i] as f64
            - p.avg_i[ic] as f64
    }
}

impl Model for CoClusteringModel {
    fn name(&self) -> &'static str {
        "coclustering"
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
                self.parts.global_mean
            } else if let Some(u) = user {
                self.estimate(u, i) as f32
            } else {
                self.parts.item_mean[i as usize]
            };
        }
    }

    fn save(&self, dir: &Path) -> Result<()> {
        let p = &self.parts;
        let mut t = TensorWriter::new();
        t.u32("coclustering.cltr_u", &p.cltr_u)
            .u32("coclustering.cltr_i", &p.cltr_i)
            .f32("coclustering.user_mean", &[p.user_mean.len()], &p.user_mean)
            .f32("coclustering.item_mean", &[p.item_mean.len()], &p.item_mean)
            .f32("coclustering.avg_u", &[p.avg_u.len()], &p.avg_u)
            .f32("coclustering.avg_i", &[p.avg_i.len()], &p.avg_i)
            .f32("coclustering.avg_co", &[p.avg_co.len()], &p.avg_co)
            .f32("coclustering.global_mean", &[1], &[p.global_mean]);
        self.fitted
            .save(dir, "coclustering", Model::params(self), t)
    }
}

/// The `coclustering` family's entry in the model registry.
pub struct CoClusteringFamily;

impl ModelFamily for CoClusteringFamily {
    fn name(&self) -> &'static str {
        "coclustering"
    }

    fn task(&self) -> Task {
        Task::Both
    }

    fn summary(&self) -> &'static str {
        "co-clustering of users and items (George & Merugu; Surprise CoClustering)"
    }

    fn params(&self) -> Vec<ParamInfo> {
        param_infos::<CoClusteringParams>(&[
            ("n_cltr_u", None, "user clusters"),
            ("n_cltr_i", None, "item clusters"),
            ("epochs", None, "assignment passes"),
            (
                "seed",
                Some("fit seed (42)"),
                "seed of the initial random assignment",
            ),
        ])
    }

    fn build(&self, spec: &ModelSpec) -> Result<Box<dyn Algorithm>> {
        Ok(Box::new(CoClustering {
            params: spec.typed()?,
        }))
    }

    fn load(&self, saved: Saved<'_>) -> Result<Box<dyn Model>> {
        saved.load_with(CoClusteringModel::load)
    }

    fn search_space(&self) -> Option<Space> {
        Some(Space {
            family: "coclustering",
            params: vec![
                Param::int("n_cltr_u", 1, 20, false, 3),
                Param::int("n_cltr_i", 1, 20, false, 3),
                Param::int("epochs", 5, 60, false, 20),
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
    use kindred_core::{Interaction, InteractionsBuilder, Protocol};
    use kindred_data::synthetic::{generate, SyntheticConfig};

    fn fit(data: &TrainSet, spec: &str) -> Box<dyn Model> {
        crate::registry::build_algorithm(spec)
            .unwrap()
            .fit(data, &FitContext::default())
            .unwrap()
    }

    #[test]
    fn one_cluster_is_user_mean_plus_item_mean_minus_global_mean() {
        let mut b = InteractionsBuilder::new();
        for (u, i, r) in [
            ("a", "x", 5.0),
            ("a", "y", 3.0),
            ("b", "x", 2.0),
            ("b", "z", 1.0),
        ] {
            b.push(Interaction::rating(u, i, r, None));
        }
        let data = TrainSet::new(b.build());
        let m = fit(&data, "coclustering:n_cltr_u=1,n_cltr_i=1");
        // mu = 11/4, mu_b = 3/2, mu_y = 3.
        let p = m.predict(1, 1).unwrap() as f64;
        assert!((p - (1.5 + 3.0 - 2.75)).abs() < 1e-5, "{p}");
        assert!((m.predict(7, 0).unwrap() as f64 - 2.75).abs() < 1e-5);
    }

    #[test]
    fn deterministic_by_seed_and_beats_the_global_mean_on_planted_structure() {
        let synthetic =
            generate(&SyntheticConfig::parse("users=400,items=200,seed=9").unwrap()).unwrap();
        let data = &synthetic.dataset.interactions;
        let split = &Protocol::parse("kfold:5").unwrap().splits(data).unwrap()[0];
        let train = TrainSet::new(data.subset(&split.train));
        let preds = |m: &dyn Model| -> Vec<f32> {
            split
                .test
                .iter()
                .map(|&r| {
                    m.predict(data.users()[r as usize], data.items()[r as usize])
                        .unwrap()
                })
                .collect()
        };
        let a = preds(fit(&train, "coclustering:seed=5").as_ref());
        let b = preds(fit(&train, "coclustering:seed=5").as_ref());
        assert_eq!(a, b);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        let c = pool.install(|| preds(fit(&train, "coclustering:seed=5").as_ref()));
        assert_eq!(a, c, "independent of the thread count");
        let truth: Vec<f64> = split
            .test
            .iter()
            .map(|&r| data.ratings()[r as usize] as f64)
            .collect();
        let mu =
            train.data.ratings().iter().map(|&r| r as f64).sum::<f64>() / train.data.len() as f64;
        let rmse = |p: &mut dyn Iterator<Item = f64>| {
            let sse: f64 = p.zip(&truth).map(|(p, t)| (p - t).powi(2)).sum();
            (sse / truth.len() as f64).sqrt()
        };
        let cc = rmse(&mut a.iter().map(|&p| p as f64));
        let global = rmse(&mut truth.iter().map(|_| mu));
        assert!(
            cc < global - 0.05,
            "coclustering {cc} vs global mean {global}"
        );
    }

    #[test]
    fn save_load_round_trip() {
        let synthetic =
            generate(&SyntheticConfig::parse("users=60,items=30,seed=3").unwrap()).unwrap();
        let train = TrainSet::new(synthetic.dataset.interactions.clone());
        let model = fit(&train, "coclustering:n_cltr_u=4,n_cltr_i=2,epochs=5");
        let dir = std::env::temp_dir().join(format!("kindred-cocl-{}", std::process::id()));
        model.save(&dir).unwrap();
        let loaded = crate::registry::load_model(&dir).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        for u in 0..61 {
            for i in 0..31 {
                assert_eq!(
                    model.predict(u, i).map(f32::to_bits),
                    loaded.predict(u, i).map(f32::to_bits)
                );
            }
        }
    }
}
