//! SVD++ (Koren 2008): SVD whose user vector is extended by the items the user rated,
//! `pred = mu + b_u + b_i + q_i · (p_u + |N(u)|^-1/2 Σ_{j ∈ N(u)} y_j)`, where `N(u)` is the
//! set of distinct items `u` rated in training. Parameters and defaults are Surprise's `SVDpp`.
//!
//! # What is computed, and why it is fast
//!
//! Surprise visits ratings grouped by user (first-seen order, [`surprise_rating_order`]) and, for
//! every rating `(u, i, r)`, recomputes the implicit sum `s = |N|^-1/2 Σ_j y_j`, takes
//! `err = r - pred`, updates `b_u`, `b_i`, `p_u`, `q_i` like SVD (with `p_u + s` in place of `p_u`
//! in the `q_i` gradient), and then updates **every** `y_j`, `j ∈ N(u)`:
//! `y_j += lr_yj (err q_i / sqrt|N| - reg_yj y_j)` (using `q_i` before its update). That costs
//! `O(|N(u)| f)` per rating, `O(Σ_u |N(u)|² f)` per epoch: minutes per epoch on ML-1M.
//!
//! The `y_j` update is the same affine map for every `j ∈ N(u)`: `y_j ← a y_j + c_t` with
//! `a = 1 - lr_yj reg_yj` and `c_t = lr_yj err_t q_i / sqrt|N|`. Because a user's ratings are
//! consecutive and no other rating touches `y_j` in between, we never materialise the
//! intermediate `y_j`:
//! - the implicit sum follows exactly: `s ← a s + |N|^-1/2 |N| c_t = a s + lr_yj err_t q_i`;
//! - after the user's `k` ratings, every `y_j = a^k y_j + G` with `G ← a G + c_t` accumulated
//!   over the ratings, applied once at the end of the user's block.
//!
//! So this performs Surprise's update sequence exactly (up to floating-point rounding; a test
//! compares it with a literal transcription of Surprise's loop) at `O(f)` per rating plus
//! `O(|N(u)| f)` per user per epoch, i.e. a few times the cost of SVD. Training is sequential:
//! the `y` updates of one user span items of every block, so blocked parallel SGD does not apply.
//!
//! Early stopping (`early_stopping=FRACTION`, `patience`) works as for SVD; held-out ratings
//! still count in `N(u)` (which items a user rated is implicit feedback known at prediction time).
//!
//! Serving: a known user's effective vector `p_u + |N(u)|^-1/2 Σ y_j` is precomputed. An
//! anonymous query is folded in from its history with `p_u = 0` (`mu + b_i + q_i · s`); a known
//! user with a query history uses `N(u) ∪ history`. Unknown users get `mu + b_i`.

use std::path::Path;

use kindred_core::kernels::dot;
use kindred_core::{Error, FitContext, ItemIdx, Result, SplitMix64, TrainSet, UserIdx};
use serde::{Deserialize, Serialize};

use crate::common::early_stop::{holdout, EarlyStop};
use crate::common::normal_init::normal_matrix;
use crate::common::rating_rows::rating_values;
use crate::common::rating_rows::surprise_rating_order;
use crate::family::{param_infos, Applicability, Cost, ModelFamily, ParamInfo, Saved, Task};
use crate::model::{Algorithm, Model, UserQuery};
use crate::params::ModelSpec;
use crate::persist::{Fitted, TensorReader, TensorWriter};
use crate::rating::svd::{check_common, Rating, CANCEL_EVERY};
use crate::space::{Param, Space};

/// Hyperparameters; names and defaults are Surprise's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SvdppParams {
    pub factors: usize,
    pub epochs: usize,
    pub init_mean: f64,
    pub init_std: f64,
    pub lr_all: f64,
    pub reg_all: f64,
    pub lr_bu: Option<f64>,
    pub lr_bi: Option<f64>,
    pub lr_pu: Option<f64>,
    pub lr_qi: Option<f64>,
    pub lr_yj: Option<f64>,
    pub reg_bu: Option<f64>,
    pub reg_bi: Option<f64>,
    pub reg_pu: Option<f64>,
    pub reg_qi: Option<f64>,
    pub reg_yj: Option<f64>,
    /// Seed of the initialisation (and of the early-stopping holdout); `None` uses the fit seed.
    pub seed: Option<u64>,
    /// Fraction of training ratings held out to stop early; `None` trains all `epochs`.
    pub early_stopping: Option<f64>,
    /// Epochs without validation improvement before stopping.
    pub patience: usize,
}

impl Default for SvdppParams {
    fn default() -> Self {
        Self {
            factors: 20,
            epochs: 20,
            init_mean: 0.0,
            init_std: 0.1,
            lr_all: 0.007,
            reg_all: 0.02,
            lr_bu: None,
            lr_bi: None,
            lr_pu: None,
            lr_qi: None,
            lr_yj: None,
            reg_bu: None,
            reg_bi: None,
            reg_pu: None,
            reg_qi: None,
            reg_yj: None,
            seed: None,
            early_stopping: None,
            patience: 2,
        }
    }
}

/// Resolved rates of every term.
#[derive(Debug, Clone, Copy)]
struct Rates {
    lr_bu: f32,
    lr_bi: f32,
    lr_pu: f32,
    lr_qi: f32,
    lr_yj: f32,
    reg_bu: f32,
    reg_bi: f32,
    reg_pu: f32,
    reg_qi: f32,
    reg_yj: f32,
}

impl SvdppParams {
    fn rates(&self) -> Rates {
        let lr = |o: Option<f64>| o.unwrap_or(self.lr_all) as f32;
        let reg = |o: Option<f64>| o.unwrap_or(self.reg_all) as f32;
        Rates {
            lr_bu: lr(self.lr_bu),
            lr_bi: lr(self.lr_bi),
            lr_pu: lr(self.lr_pu),
            lr_qi: lr(self.lr_qi),
            lr_yj: lr(self.lr_yj),
            reg_bu: reg(self.reg_bu),
            reg_bi: reg(self.reg_bi),
            reg_pu: reg(self.reg_pu),
            reg_qi: reg(self.reg_qi),
            reg_yj: reg(self.reg_yj),
        }
    }

    fn validate(&self) -> Result<()> {
        let r = self.rates();
        check_common(
            "svdpp",
            self.factors,
            self.epochs,
            self.init_std,
            self.init_mean,
            &[
                ("lr_all", self.lr_all),
                ("reg_all", self.reg_all),
                ("lr_bu", r.lr_bu as f64),
                ("lr_bi", r.lr_bi as f64),
                ("lr_pu", r.lr_pu as f64),
                ("lr_qi", r.lr_qi as f64),
                ("lr_yj", r.lr_yj as f64),
                ("reg_bu", r.reg_bu as f64),
                ("reg_bi", r.reg_bi as f64),
                ("reg_pu", r.reg_pu as f64),
                ("reg_qi", r.reg_qi as f64),
                ("reg_yj", r.reg_yj as f64),
            ],
            self.early_stopping,
            self.patience,
        )
    }
}

/// The SVD++ algorithm.
#[derive(Debug, Clone, Default)]
pub struct Svdpp {
    pub params: SvdppParams,
}

/// Training state in entity order.
#[derive(Debug, Clone, PartialEq)]
struct State {
    p: Vec<f32>,
    q: Vec<f32>,
    y: Vec<f32>,
    bu: Vec<f32>,
    bi: Vec<f32>,
}

/// `out = |items|^-1/2 Σ_{j ∈ items} y_j` (zero for no items).
fn implicit_sum(y: &[f32], f: usize, items: &[ItemIdx], out: &mut [f32]) {
    out.fill(0.0);
    for &j in items {
        let j = j as usize;
        for (o, v) in out.iter_mut().zip(&y[j * f..(j + 1) * f]) {
            *o += v;
        }
    }
    if !items.is_empty() {
        let inv = 1.0 / (items.len() as f32).sqrt();
        out.iter_mut().for_each(|o| *o *= inv);
    }
}

/// One epoch over the users' blocks of consecutive ratings; returns the summed squared error.
#[allow(clippy::too_many_arguments)]
fn epoch(
    blocks: &[(u32, std::ops::Range<usize>)],
    ratings: &[Rating],
    fitted: &Fitted,
    s: &mut State,
    f: usize,
    mu: f32,
    h: &Rates,
    ctx: &FitContext,
) -> Result<f64> {
    let mut sse = 0f64;
    let mut implicit = vec![0f32; f];
    let mut g = vec![0f32; f];
    let mut zu = vec![0f32; f];
    let a = 1.0 - h.lr_yj * h.reg_yj;
    let mut next_check = 0usize;
    for (u, range) in blocks {
        if range.start >= next_check {
            ctx.cancel.check()?;
            next_check = range.start + CANCEL_EVERY;
        }
        let u = *u as usize;
        let n_u = fitted.seen.items_of(u as UserIdx);
        implicit_sum(&s.y, f, n_u, &mut implicit);
        let inv = if n_u.is_empty() {
            0.0
        } else {
            1.0 / (n_u.len() as f32).sqrt()
        };
        g.fill(0.0);
        let pu = &mut s.p[u * f..(u + 1) * f];
        for r in &ratings[range.clone()] {
            let i = r.i as usize;
            let qi = &mut s.q[i * f..(i + 1) * f];
            for ((zf, p), im) in zu.iter_mut().zip(pu.iter()).zip(&implicit) {
                *zf = p + im;
            }
            let d = dot(&zu, qi);
            let err = r.r - (mu + s.bu[u] + s.bi[i] + d);
            sse += (err as f64) * (err as f64);
            s.bu[u] += h.lr_bu * (err - h.reg_bu * s.bu[u]);
            s.bi[i] += h.lr_bi * (err - h.reg_bi * s.bi[i]);
            let c = h.lr_yj * err * inv;
            for (((pf, qf), im), gf) in pu
                .iter_mut()
                .zip(qi.iter_mut())
                .zip(implicit.iter_mut())
                .zip(g.iter_mut())
            {
                let (puf, qif, sf) = (*pf, *qf, *im);
                *pf = puf + h.lr_pu * (err * qif - h.reg_pu * puf);
                *qf = qif + h.lr_qi * (err * (puf + sf) - h.reg_qi * qif);
                *gf = a * *gf + c * qif;
                *im = a * sf + h.lr_yj * err * qif;
            }
        }
        let ak = a.powi(range.len() as i32);
        for &j in n_u {
            let j = j as usize;
            for (yv, gf) in s.y[j * f..(j + 1) * f].iter_mut().zip(&g) {
                *yv = ak * *yv + gf;
            }
        }
    }
    Ok(sse)
}

/// Effective user vectors `p_u + |N(u)|^-1/2 Σ y_j` of every user.
fn effective_users(p: &[f32], y: &[f32], f: usize, fitted: &Fitted) -> Vec<f32> {
    let mut z = p.to_vec();
    let mut implicit = vec![0f32; f];
    for (u, zu) in z.chunks_exact_mut(f).enumerate() {
        implicit_sum(y, f, fitted.seen.items_of(u as UserIdx), &mut implicit);
        for (zf, im) in zu.iter_mut().zip(&implicit) {
            *zf += im;
        }
    }
    z
}

fn train(
    data: &TrainSet,
    fitted: &Fitted,
    params: &SvdppParams,
    ctx: &FitContext,
    init: Option<State>,
) -> Result<(State, f32)> {
    params.validate()?;
    ctx.cancel.check()?;
    let values = rating_values("svdpp", data)?;
    let seed = params.seed.unwrap_or(ctx.seed);
    let f = params.factors;
    let (n_users, n_items) = (data.n_users(), data.n_items());
    let held = holdout(values.len(), params.early_stopping, seed)?;
    let (users, items) = (data.data.users(), data.data.items());
    let record = |r: u32| Rating {
        u: users[r as usize],
        i: items[r as usize],
        r: values[r as usize] as f32,
    };
    let ratings: Vec<Rating> = surprise_rating_order(users)
        .into_iter()
        .filter(|&r| !held[r as usize])
        .map(record)
        .collect();
    let mu = (ratings.iter().map(|r| r.r as f64).sum::<f64>() / ratings.len() as f64) as f32;
    // Runs of one user's consecutive ratings.
    let mut blocks: Vec<(u32, std::ops::Range<usize>)> = Vec::new();
    for (k, r) in ratings.iter().enumerate() {
        match blocks.last_mut() {
            Some((u, range)) if *u == r.u => range.end = k + 1,
            _ => blocks.push((r.u, k..k + 1)),
        }
    }
    let validation: Vec<Rating> = (0..values.len() as u32)
        .filter(|&r| held[r as usize])
        .map(record)
        .collect();

    let mut s = match init {
        Some(s) => s,
        None => {
            let mut rng = SplitMix64::new(seed);
            let (m, sd) = (params.init_mean, params.init_std);
            State {
                p: normal_matrix(&mut rng, n_users * f, m, sd),
                q: normal_matrix(&mut rng, n_items * f, m, sd),
                y: normal_matrix(&mut rng, n_items * f, m, sd),
                bu: vec![0.0; n_users],
                bi: vec![0.0; n_items],
            }
        }
    };
    let rates = params.rates();
    let range = data.data.rating_range();
    let mut stop = EarlyStop::new(params.patience);
    let mut best: Option<State> = None;
    ctx.progress.begin("svdpp", params.epochs as u64);
    for e in 0..params.epochs {
        ctx.cancel.check()?;
        let sse = epoch(&blocks, &ratings, fitted, &mut s, f, mu, &rates, ctx)?;
        let loss = (sse / ratings.len().max(1) as f64).sqrt();
        ctx.progress.advance(1);
        if validation.is_empty() {
            ctx.progress.epoch(e, loss, None);
            continue;
        }
        let z = effective_users(&s.p, &s.y, f, fitted);
        let mut vse = 0f64;
        for r in &validation {
            let (u, i) = (r.u as usize, r.i as usize);
            let mut est =
                mu + s.bu[u] + s.bi[i] + dot(&z[u * f..(u + 1) * f], &s.q[i * f..(i + 1) * f]);
            if let Some((lo, hi)) = range {
                est = est.clamp(lo, hi);
            }
            vse += ((r.r - est) as f64).powi(2);
        }
        let val = (vse / validation.len() as f64).sqrt();
        ctx.progress.epoch(e, loss, Some(val));
        let (improved, done) = stop.record(e, val);
        if improved {
            best = Some(s.clone());
        }
        if done {
            break;
        }
    }
    ctx.progress.finish();
    Ok((best.unwrap_or(s), mu))
}

impl Algorithm for Svdpp {
    fn name(&self) -> &'static str {
        "svdpp"
    }

    fn params(&self) -> serde_json::Value {
        serde_json::to_value(&self.params).unwrap_or_default()
    }

    fn fit(&self, data: &TrainSet, ctx: &FitContext) -> Result<Box<dyn Model>> {
        let fitted = Fitted::from_train(data);
        let (state, mu) = train(data, &fitted, &self.params, ctx, None)?;
        Ok(Box::new(SvdppModel::new(
            mu,
            state,
            self.params.clone(),
            fitted,
        )))
    }
}

/// A fitted SVD++ model.
#[derive(Debug, Clone)]
pub struct SvdppModel {
    pub global_mean: f32,
    pub user_bias: Vec<f32>,
    pub item_bias: Vec<f32>,
    /// Row-major `n_users × factors`.
    pub user_factors: Vec<f32>,
    /// Row-major `n_items × factors`.
    pub item_factors: Vec<f32>,
    /// Implicit item factors `y`, row-major `n_items × factors`.
    pub implicit_factors: Vec<f32>,
    pub params: SvdppParams,
    /// `p_u + |N(u)|^-1/2 Σ y_j`, derived.
    effective: Vec<f32>,
    fitted: Fitted,
}

impl SvdppModel {
    fn new(global_mean: f32, s: State, params: SvdppParams, fitted: Fitted) -> Self {
        let effective = effective_users(&s.p, &s.y, params.factors, &fitted);
        Self {
            global_mean,
            user_bias: s.bu,
            item_bias: s.bi,
            user_factors: s.p,
            item_factors: s.q,
            implicit_factors: s.y,
            params,
            effective,
            fitted,
        }
    }

    /// Loads a model saved by [`Model::save`].
    pub fn load(params: serde_json::Value, fitted: Fitted, tensors: &TensorReader) -> Result<Self> {
        let params: SvdppParams = serde_json::from_value(params)
            .map_err(|e| Error::InvalidInput(format!("svdpp parameters: {e}")))?;
        let (n_users, n_items, f) = (fitted.users.len(), fitted.items.len(), params.factors);
        let state = State {
            p: tensors.f32_len("user_factors", n_users * f)?,
            q: tensors.f32_len("item_factors", n_items * f)?,
            y: tensors.f32_len("implicit_factors", n_items * f)?,
            bu: tensors.f32_len("user_bias", n_users)?,
            bi: tensors.f32_len("item_bias", n_items)?,
        };
        if (0..n_users as u32)
            .flat_map(|u| fitted.seen.items_of(u))
            .any(|&i| i as usize >= n_items)
        {
            return Err(tensors.error("seen items outside the item catalog"));
        }
        let mu = tensors.f32_len("global_mean", 1)?[0];
        Ok(Self::new(mu, state, params, fitted))
    }

    /// The user vector to score with (`None`: no factor term) and the user bias.
    fn user_vector(&self, query: &UserQuery<'_>) -> (Option<Vec<f32>>, f32) {
        let f = self.params.factors;
        let known = query.user.filter(|&u| self.fitted.knows_user(u));
        let bias = known.map_or(0.0, |u| self.user_bias[u as usize]);
        if query.history.is_empty() {
            let v = known.map(|u| self.effective[u as usize * f..(u as usize + 1) * f].to_vec());
            return (v, bias);
        }
        let mut items: Vec<ItemIdx> = known
            .map(|u| self.fitted.seen.items_of(u).to_vec())
            .unwrap_or_default();
        items.extend(
            query
                .history
                .iter()
                .copied()
                .filter(|&i| self.fitted.knows_item(i)),
        );
        items.sort_unstable();
        items.dedup();
        let mut v = vec![0f32; f];
        implicit_sum(&self.implicit_factors, f, &items, &mut v);
        if let Some(u) = known {
            let u = u as usize;
            for (x, p) in v.iter_mut().zip(&self.user_factors[u * f..(u + 1) * f]) {
                *x += p;
            }
        }
        let has_any = known.is_some() || !items.is_empty();
        (has_any.then_some(v), bias)
    }

    fn raw(&self, z: Option<&[f32]>, bu: f32, item: ItemIdx) -> f32 {
        let mut est = self.global_mean + bu;
        if self.fitted.knows_item(item) {
            let i = item as usize;
            let f = self.params.factors;
            est += self.item_bias[i];
            if let Some(z) = z {
                est += dot(z, &self.item_factors[i * f..(i + 1) * f]);
            }
        }
        est
    }
}

impl Model for SvdppModel {
    fn name(&self) -> &'static str {
        "svdpp"
    }

    fn params(&self) -> serde_json::Value {
        serde_json::to_value(&self.params).unwrap_or_default()
    }

    fn fitted(&self) -> &Fitted {
        &self.fitted
    }

    fn predict(&self, user: UserIdx, item: ItemIdx) -> Option<f32> {
        let known = self.fitted.knows_user(user);
        let f = self.params.factors;
        let (z, bu) = if known {
            let u = user as usize;
            (Some(&self.effective[u * f..(u + 1) * f]), self.user_bias[u])
        } else {
            (None, 0.0)
        };
        Some(self.fitted.clip(self.raw(z, bu, item)))
    }

    fn score(&self, query: &UserQuery<'_>, items: &[ItemIdx], out: &mut [f32]) {
        let (z, bu) = self.user_vector(query);
        for (o, &i) in out.iter_mut().zip(items) {
            *o = self.raw(z.as_deref(), bu, i);
        }
    }

    fn item_embeddings(&self) -> Option<(usize, &[f32])> {
        Some((self.params.factors, &self.item_factors))
    }

    fn user_embeddings(&self) -> Option<(usize, &[f32])> {
        Some((self.params.factors, &self.user_factors))
    }

    fn save(&self, dir: &Path) -> Result<()> {
        let f = self.params.factors;
        let (nu, ni) = (self.user_bias.len(), self.item_bias.len());
        let mut t = TensorWriter::new();
        t.f32("global_mean", &[1], &[self.global_mean])
            .f32("user_bias", &[nu], &self.user_bias)
            .f32("item_bias", &[ni], &self.item_bias)
            .f32("user_factors", &[nu, f], &self.user_factors)
            .f32("item_factors", &[ni, f], &self.item_factors)
            .f32("implicit_factors", &[ni, f], &self.implicit_factors);
        self.fitted.save(dir, "svdpp", Model::params(self), t)
    }
}

/// The `svdpp` family's entry in the model registry.
pub struct SvdppFamily;

impl ModelFamily for SvdppFamily {
    fn name(&self) -> &'static str {
        "svdpp"
    }

    fn task(&self) -> Task {
        Task::Rating
    }

    fn summary(&self) -> &'static str {
        "SVD++ (Koren 2008): SVD plus implicit feedback from the items each user rated (Surprise SVDpp, exact updates, fast)"
    }

    fn params(&self) -> Vec<ParamInfo> {
        param_infos::<SvdppParams>(&[
            ("factors", None, "latent factors"),
            ("epochs", None, "SGD passes over the ratings (the maximum with early_stopping)"),
            ("init_mean", None, "mean of the normal factor initialisation"),
            ("init_std", None, "standard deviation of the normal factor initialisation"),
            ("lr_all", None, "learning rate of every term"),
            ("reg_all", None, "regularisation of every term"),
            ("lr_bu", Some("lr_all"), "learning rate of user biases"),
            ("lr_bi", Some("lr_all"), "learning rate of item biases"),
            ("lr_pu", Some("lr_all"), "learning rate of user factors"),
            ("lr_qi", Some("lr_all"), "learning rate of item factors"),
            ("lr_yj", Some("lr_all"), "learning rate of implicit item factors"),
            ("reg_bu", Some("reg_all"), "regularisation of user biases"),
            ("reg_bi", Some("reg_all"), "regularisation of item biases"),
            ("reg_pu", Some("reg_all"), "regularisation of user factors"),
            ("reg_qi", Some("reg_all"), "regularisation of item factors"),
            ("reg_yj", Some("reg_all"), "regularisation of implicit item factors"),
            ("seed", Some("fit seed (42)"), "seed of the initialisation and of the early-stopping holdout"),
            ("early_stopping", Some("none (off)"), "fraction of training ratings held out; stop when their RMSE stops improving, keep the best epoch"),
            ("patience", None, "early stopping: epochs without improvement before stopping"),
        ])
    }

    fn build(&self, spec: &ModelSpec) -> Result<Box<dyn Algorithm>> {
        Ok(Box::new(Svdpp {
            params: spec.typed()?,
        }))
    }

    fn load(&self, saved: Saved<'_>) -> Result<Box<dyn Model>> {
        saved.load_with(SvdppModel::load)
    }

    fn search_space(&self) -> Option<Space> {
        Some(Space {
            family: "svdpp",
            params: vec![
                Param::int("factors", 5, 100, true, 20),
                Param::int("epochs", 10, 50, false, 20),
                Param::float("lr_all", 0.002, 0.02, true, 0.007),
                Param::float("reg_all", 0.005, 0.2, true, 0.02),
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
        Cost::High
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rating::svd::test_support::*;
    use kindred_core::{Interaction, InteractionsBuilder};
    use std::sync::Arc;

    fn train_set(rows: &[(&str, &str, f32)]) -> TrainSet {
        let mut b = InteractionsBuilder::new();
        for &(u, i, r) in rows {
            b.push(Interaction::rating(u, i, r, None));
        }
        TrainSet::new(b.build())
    }

    /// A literal transcription of Surprise's `SVDpp.sgd` loop, in f64.
    fn surprise_reference(data: &TrainSet, params: &SvdppParams, init: &State) -> State {
        let f = params.factors;
        let h = params.rates();
        let fitted = Fitted::from_train(data);
        let to64 = |v: &[f32]| v.iter().map(|&x| x as f64).collect::<Vec<f64>>();
        let (mut p, mut q, mut y) = (to64(&init.p), to64(&init.q), to64(&init.y));
        let (mut bu, mut bi) = (to64(&init.bu), to64(&init.bi));
        let values = crate::common::rating_rows::row_values(data);
        let mu = values.iter().sum::<f64>() / values.len() as f64;
        let (users, items) = (data.data.users(), data.data.items());
        let order = surprise_rating_order(users);
        for _ in 0..params.epochs {
            for &row in &order {
                let (u, i, r) = (
                    users[row as usize] as usize,
                    items[row as usize] as usize,
                    values[row as usize],
                );
                let iu = fitted.seen.items_of(u as u32);
                let sqrt_iu = (iu.len() as f64).sqrt();
                let mut imp = vec![0f64; f];
                for &j in iu {
                    for k in 0..f {
                        imp[k] += y[j as usize * f + k] / sqrt_iu;
                    }
                }
                let dot: f64 = (0..f).map(|k| q[i * f + k] * (p[u * f + k] + imp[k])).sum();
                let err = r - (mu + bu[u] + bi[i] + dot);
                bu[u] += h.lr_bu as f64 * (err - h.reg_bu as f64 * bu[u]);
                bi[i] += h.lr_bi as f64 * (err - h.reg_bi as f64 * bi[i]);
                for k in 0..f {
                    let puf = p[u * f + k];
                    let qif = q[i * f + k];
                    p[u * f + k] += h.lr_pu as f64 * (err * qif - h.reg_pu as f64 * puf);
                    q[i * f + k] += h.lr_qi as f64 * (err * (puf + imp[k]) - h.reg_qi as f64 * qif);
                    for &j in iu {
                        let yj = &mut y[j as usize * f + k];
                        *yj += h.lr_yj as f64 * (err * qif / sqrt_iu - h.reg_yj as f64 * *yj);
                    }
                }
            }
        }
        let to32 = |v: Vec<f64>| v.into_iter().map(|x| x as f32).collect();
        State {
            p: to32(p),
            q: to32(q),
            y: to32(y),
            bu: to32(bu),
            bi: to32(bi),
        }
    }

    fn max_diff(a: &[f32], b: &[f32]) -> f32 {
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max)
    }

    #[test]
    fn one_step_by_hand() {
        // f = 1, lr 0.1, reg 0 except reg_yj 0.5. First a single rating, by hand; then one user
        // with two ratings (x: a 5, b 1), against the literal transcription of Surprise's loop.
        let data = train_set(&[("x", "a", 5.0), ("x", "b", 1.0)]);
        let params = SvdppParams {
            factors: 1,
            epochs: 1,
            lr_all: 0.1,
            reg_all: 0.0,
            reg_yj: Some(0.5),
            ..Default::default()
        };
        let init = State {
            p: vec![1.0],
            q: vec![1.0, 1.0],
            y: vec![1.0, 1.0],
            bu: vec![0.0],
            bi: vec![0.0; 2],
        };
        let fitted = Fitted::from_train(&data);
        let run = |epochs| {
            let params = SvdppParams {
                epochs,
                ..params.clone()
            };
            train(
                &data,
                &fitted,
                &params,
                &FitContext::default(),
                Some(init.clone()),
            )
            .unwrap()
            .0
        };
        let one = train_set(&[("x", "a", 5.0)]);
        let one_fitted = Fitted::from_train(&one);
        let init1 = State {
            p: vec![1.0],
            q: vec![1.0],
            y: vec![1.0],
            bu: vec![0.0],
            bi: vec![0.0],
        };
        let s = train(
            &one,
            &one_fitted,
            &params,
            &FitContext::default(),
            Some(init1),
        )
        .unwrap()
        .0;
        // mu = 5, N = {a}: s = 1; pred = 5 + 1*(1+1) = 7, e = -2.
        // bu = bi = 0.1 * -2 = -0.2; p = 1 + 0.1(-2*1) = 0.8; q = 1 + 0.1(-2*(1+1)) = 0.6;
        // y = 1 + 0.1(-2*1/1 - 0.5*1) = 0.75.
        let close = |a: f32, b: f64| (a as f64 - b).abs() < 1e-6;
        assert!(close(s.bu[0], -0.2) && close(s.bi[0], -0.2), "{s:?}");
        assert!(
            close(s.p[0], 0.8) && close(s.q[0], 0.6) && close(s.y[0], 0.75),
            "{s:?}"
        );
        // Two ratings of one user: the incremental form equals Surprise's loop.
        let reference = surprise_reference(&data, &params, &init);
        let ours = run(1);
        for (a, b) in [
            (&ours.p, &reference.p),
            (&ours.q, &reference.q),
            (&ours.y, &reference.y),
            (&ours.bu, &reference.bu),
            (&ours.bi, &reference.bi),
        ] {
            assert!(max_diff(a, b) < 1e-6, "{ours:?} vs {reference:?}");
        }
    }

    #[test]
    fn matches_surprise_update_sequence() {
        let (train_data, _) = synthetic_fold("users=60,items=40,seed=8");
        let params = SvdppParams {
            factors: 5,
            epochs: 3,
            ..Default::default()
        };
        let fitted = Fitted::from_train(&train_data);
        let mut rng = SplitMix64::new(1);
        let (nu, ni, f) = (train_data.n_users(), train_data.n_items(), 5);
        let init = State {
            p: normal_matrix(&mut rng, nu * f, 0.0, 0.1),
            q: normal_matrix(&mut rng, ni * f, 0.0, 0.1),
            y: normal_matrix(&mut rng, ni * f, 0.0, 0.1),
            bu: vec![0.0; nu],
            bi: vec![0.0; ni],
        };
        let reference = surprise_reference(&train_data, &params, &init);
        let (ours, _) = train(
            &train_data,
            &fitted,
            &params,
            &FitContext::default(),
            Some(init),
        )
        .unwrap();
        for (a, b) in [
            (&ours.p, &reference.p),
            (&ours.q, &reference.q),
            (&ours.y, &reference.y),
            (&ours.bu, &reference.bu),
            (&ours.bi, &reference.bi),
        ] {
            assert!(max_diff(a, b) < 1e-4, "max diff {}", max_diff(a, b));
        }
    }

    #[test]
    fn learns_planted_structure_and_folds_in() {
        let (train_data, test) = synthetic_fold("users=500,items=300,seed=4");
        let ctx = FitContext::default();
        let baseline = crate::rating::baseline::Baseline::default()
            .fit(&train_data, &ctx)
            .unwrap();
        let model = Svdpp::default().fit(&train_data, &ctx).unwrap();
        let (b, s) = (rmse(baseline.as_ref(), &test), rmse(model.as_ref(), &test));
        assert!(s < b - 0.03, "svdpp {s:.4} baseline {b:.4}");

        // Fold-in: an anonymous user with a known user's training items scores like the
        // user without p_u and b_u; unknown users get mu + b_i.
        let n = train_data.n_items();
        let seen: Vec<u32> = model.fitted().seen.items_of(0).to_vec();
        let (mut anon, mut known) = (vec![0f32; n], vec![0f32; n]);
        model.score_all(&UserQuery::anonymous(&seen), &mut anon);
        model.score_all(&UserQuery::known(0), &mut known);
        assert!(anon.iter().all(|v| v.is_finite()));
        assert_ne!(anon, known);
        let mut nobody = vec![0f32; n];
        model.score_all(&UserQuery::anonymous(&[]), &mut nobody);
        assert_eq!(
            model.predict(u32::MAX, 3).unwrap(),
            model.fitted().clip(nobody[3])
        );
        // A known user whose query history repeats their training items scores as without it.
        let with = UserQuery {
            user: Some(0),
            history: &seen,
        };
        let mut same = vec![0f32; n];
        model.score_all(&with, &mut same);
        for i in 0..n {
            assert!((same[i] - known[i]).abs() < 1e-5);
        }
    }

    #[test]
    fn deterministic_roundtrip_early_stopping_and_cancel() {
        let (train_data, test) = synthetic_fold("users=150,items=80,seed=9");
        let fit = |seed: u64| {
            Svdpp {
                params: SvdppParams {
                    factors: 6,
                    epochs: 4,
                    ..Default::default()
                },
            }
            .fit(&train_data, &ctx_with(seed, 2, Arc::default()))
            .unwrap()
        };
        let preds = |m: &dyn Model| {
            test.iter()
                .map(|&(u, i, _)| m.predict(u, i).unwrap().to_bits())
                .collect::<Vec<_>>()
        };
        let (a, b, c) = (fit(1), fit(1), fit(2));
        assert_eq!(preds(a.as_ref()), preds(b.as_ref()));
        assert_ne!(preds(a.as_ref()), preds(c.as_ref()));

        let dir = std::env::temp_dir().join(format!("kindred-svdpp-{}", std::process::id()));
        a.save(&dir).unwrap();
        let loaded = crate::registry::load_model(&dir).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(loaded.params(), a.params());
        assert_eq!(preds(a.as_ref()), preds(loaded.as_ref()));
        let hist = [1u32, 4, 7];
        let (mut x, mut y) = (vec![0f32; 80], vec![0f32; 80]);
        a.score_all(&UserQuery::anonymous(&hist), &mut x);
        loaded.score_all(&UserQuery::anonymous(&hist), &mut y);
        assert_eq!(x, y);

        // Early stopping with an overfitting learning rate stops and keeps the best epoch.
        let params = SvdppParams {
            factors: 20,
            epochs: 60,
            lr_all: 0.05,
            reg_all: 0.0,
            early_stopping: Some(0.1),
            ..Default::default()
        };
        let fitted = Fitted::from_train(&train_data);
        let epochs = Arc::new(Epochs::default());
        let stopped = train(
            &train_data,
            &fitted,
            &params,
            &ctx_with(3, 1, Arc::clone(&epochs)),
            None,
        )
        .unwrap()
        .0;
        let log = epochs.0.lock().unwrap().clone();
        assert!(log.len() < 60, "did not stop");
        let vals: Vec<f64> = log.iter().map(|e| e.2.unwrap()).collect();
        let best = (0..vals.len())
            .min_by(|&a, &b| vals[a].total_cmp(&vals[b]))
            .unwrap();
        assert_eq!(best + 3, log.len());
        let exact = SvdppParams {
            epochs: best + 1,
            patience: 1000,
            ..params
        };
        let again = train(
            &train_data,
            &fitted,
            &exact,
            &ctx_with(3, 1, Arc::default()),
            None,
        )
        .unwrap()
        .0;
        assert_eq!(stopped, again);

        let ctx = FitContext::default();
        ctx.cancel.cancel();
        assert!(matches!(
            Svdpp::default().fit(&train_data, &ctx),
            Err(Error::Cancelled)
        ));
        assert!(crate::registry::build_algorithm("svdpp:lr_yj=-1")
            .unwrap()
            .fit(&train_data, &FitContext::default())
            .is_err());
    }
}
