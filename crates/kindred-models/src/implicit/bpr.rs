//! Bayesian Personalised Ranking (Rendle et al. 2009): matrix factorisation with item biases,
//! trained by SGD on sampled (user, positive, negative) triples, as the `implicit` library's BPR.
//!
//! Score `x_ui = p_u · q_i + b_i`. For a triple (u, i, j) with `x_uij = x_ui - x_uj`, SGD ascends
//! `ln σ(x_uij) - (λ/2)‖θ‖²` (over the parameters the triple touches) with `z = σ(-x_uij)`:
//! `p_u += η (z (q_i - q_j) - λ p_u)`, `q_i += η (z p_u - λ q_i)`, `q_j += η (-z p_u - λ q_j)`,
//! `b_i += η (z - λ b_i)`, `b_j += η (-z - λ b_j)`.
//! The positive pair is drawn uniformly among the distinct training (user, item) pairs and the
//! negative from [`crate::common::negative`] (uniform, or ∝ popularity^beta; `implicit` draws the item of
//! a random interaction, i.e. popularity with beta = 1). One epoch draws as many triples as there
//! are pairs; the reported loss is the epoch's mean `-ln σ(x_uij)`. The default negatives,
//! popularity with beta = 0.5, were the most accurate of the samplers tried on MovieLens
//! (`temporal:0.2,positive>=4`): uniform lags on ML-100K and beta = 1 on ML-1M. Factors start
//! uniform in `±0.5 / factors` as in `implicit`; biases start at 0.
//!
//! Parallel training is deterministic rather than Hogwild: users are cut into `ctx.threads`
//! contiguous shards of about equal pair counts, each thread owns its shard's user rows, its own
//! random stream and a private copy of the item rows. Threads run rounds of at most
//! [`SYNC_SAMPLES`] samples; at the end of a round every item row touched by some thread becomes
//! the shared row plus the sum of every thread's change to it (added in thread order), and the
//! private copies are refreshed. A thread thus sees its own item updates at once and the others'
//! at the next sync point, so results depend only on the seed and the thread count (threads=1 is
//! plain sequential SGD), at the cost of one item-matrix copy per thread.
//!
//! Items without training interactions score `-inf` (the model knows nothing of them); users
//! without training data, and anonymous users with no known history item, are ranked by item
//! bias; an anonymous user's history is folded in as the mean of its items' factors.

use std::ops::Range;
use std::path::Path;

use kindred_core::kernels::dot;
use kindred_core::{Error, FitContext, ItemIdx, Result, SplitMix64, TrainSet, UserIdx};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::common::negative::{NegativeSampler, PositiveSets, Sampling};
use crate::family::{param_infos, Cost, ModelFamily, ParamInfo, Saved, Task};
use crate::model::{Algorithm, Model, UserQuery};
use crate::params::check;
use crate::params::ModelSpec;
use crate::persist::{Fitted, TensorReader, TensorWriter};
use crate::space::{Param, Space};

/// Most samples a thread draws between two merges of the item rows: small enough that a thread
/// sees the others' item updates soon, large enough that merging costs little next to SGD.
pub const SYNC_SAMPLES: usize = 8192;

/// Hyperparameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BprParams {
    /// Latent factors (the item bias comes on top).
    pub factors: usize,
    pub learning_rate: f64,
    /// L2 regularisation of every factor and bias touched by an update.
    pub regularization: f64,
    /// Epochs; each draws as many triples as there are distinct (user, item) pairs.
    pub iterations: usize,
    /// Proposal distribution of negatives.
    pub sampling: Sampling,
    /// Popularity sampling: exponent of the item user-count.
    pub beta: f64,
    /// Redraw negatives the user interacted with (up to 64 draws, then skip the sample).
    pub verify_negative: bool,
    /// Seed of initialisation and sampling; `None` uses the fit seed.
    pub seed: Option<u64>,
}

impl Default for BprParams {
    fn default() -> Self {
        Self {
            factors: 64,
            learning_rate: 0.01,
            regularization: 0.01,
            iterations: 100,
            sampling: Sampling::Popularity,
            beta: 0.5,
            verify_negative: true,
            seed: None,
        }
    }
}

impl BprParams {
    fn validate(&self) -> Result<()> {
        check::at_least_one("bpr", "factors", self.factors)?;
        check::at_least_one("bpr", "iterations", self.iterations)?;
        check::positive("bpr", "learning_rate", self.learning_rate)?;
        check::non_negative("bpr", "regularization", self.regularization)?;
        check::non_negative("bpr", "beta", self.beta)?;
        Ok(())
    }
}

/// The BPR algorithm.
#[derive(Debug, Clone, Default)]
pub struct Bpr {
    pub params: BprParams,
}

/// Learning rate and regularisation in the precision of the parameters.
#[derive(Debug, Clone, Copy)]
struct Step {
    lr: f32,
    reg: f32,
    factors: usize,
}

/// One thread's share of training: its users' rows, its pairs, its random stream and its private
/// copy of the item rows (`factors` weights then the bias, per row).
struct Worker<'a> {
    users: &'a mut [f32],
    first_user: usize,
    pairs: Range<usize>,
    rng: SplitMix64,
    items: Vec<f32>,
    touched: Vec<bool>,
    touched_rows: Vec<u32>,
    loss: f64,
    applied: u64,
}

/// Mutable views of two distinct rows of a row-major matrix.
fn two_rows(m: &mut [f32], a: usize, b: usize, width: usize) -> (&mut [f32], &mut [f32]) {
    if a < b {
        let (lo, hi) = m.split_at_mut(b * width);
        (&mut lo[a * width..(a + 1) * width], &mut hi[..width])
    } else {
        let (lo, hi) = m.split_at_mut(a * width);
        let (b_row, a_row) = (&mut lo[b * width..(b + 1) * width], &mut hi[..width]);
        (a_row, b_row)
    }
}

/// One SGD step on (user row, positive item row, negative item row); returns `-ln σ(x_uij)`.
#[inline]
fn bpr_step(user: &mut [f32], pos: &mut [f32], neg: &mut [f32], step: Step) -> f64 {
    let f = step.factors;
    let (user, pos, neg) = (&mut user[..f], &mut pos[..=f], &mut neg[..=f]);
    let x = dot(user, &pos[..f]) - dot(user, &neg[..f]) + pos[f] - neg[f];
    let e = x.exp();
    let z = 1.0 / (1.0 + e);
    let (lr, reg) = (step.lr, step.reg);
    for k in 0..f {
        let u = user[k];
        user[k] += lr * (z * (pos[k] - neg[k]) - reg * u);
        pos[k] += lr * (z * u - reg * pos[k]);
        neg[k] += lr * (-z * u - reg * neg[k]);
    }
    pos[f] += lr * (z - reg * pos[f]);
    neg[f] += lr * (-z - reg * neg[f]);
    // -ln σ(x) = ln(1 + e^-x), from the e^x already at hand (1/inf = 0 is exact); far below
    // zero e^x underflows, and ln(1 + e^-x) = -x to f32 precision anyway.
    if x > -15.0 {
        (1.0 / e).ln_1p() as f64
    } else {
        -x as f64
    }
}

impl Worker<'_> {
    fn touch(&mut self, item: ItemIdx) {
        let flag = &mut self.touched[item as usize];
        if !*flag {
            *flag = true;
            self.touched_rows.push(item);
        }
    }

    /// Draws and applies `samples` triples.
    fn run(
        &mut self,
        samples: usize,
        positives: &PositiveSets,
        pair_users: &[u32],
        sampler: &NegativeSampler,
        verify_negative: bool,
        step: Step,
    ) {
        let (f, width) = (step.factors, step.factors + 1);
        let n_pairs = self.pairs.len() as u64;
        if n_pairs == 0 {
            return;
        }
        for _ in 0..samples {
            let pair = self.pairs.start + self.rng.below(n_pairs) as usize;
            let user = pair_users[pair];
            let pos = positives.item_of_pair(pair);
            let neg = if verify_negative {
                sampler.sample(&mut self.rng, positives.of(user))
            } else {
                Some(sampler.draw(&mut self.rng))
            };
            // No negative found, or (unverified) the positive itself: nothing to learn.
            let Some(neg) = neg.filter(|&n| n != pos) else {
                continue;
            };
            let u = user as usize - self.first_user;
            let user_row = &mut self.users[u * f..(u + 1) * f];
            let (pos_row, neg_row) = two_rows(&mut self.items, pos as usize, neg as usize, width);
            self.loss += bpr_step(user_row, pos_row, neg_row, step);
            self.applied += 1;
            self.touch(pos);
            self.touch(neg);
        }
    }
}

/// Splits users into `t` contiguous shards of about equal pair counts: (user range, pair range).
fn shards(positives: &PositiveSets, t: usize) -> Vec<(Range<usize>, Range<usize>)> {
    let n_users = positives.n_users();
    let total = positives.n_pairs();
    let mut out = Vec::with_capacity(t);
    let mut user = 0;
    for s in 0..t {
        let target = total * (s + 1) / t;
        let first = user;
        while user < n_users && (s + 1 == t || positives.pair_range(user as UserIdx).end <= target)
        {
            user += 1;
        }
        let start = positives.pair_range(first as UserIdx).start;
        let end = if user > first {
            positives.pair_range(user as UserIdx - 1).end
        } else {
            start
        };
        out.push((first..user, start..end));
    }
    out
}

/// Adds every thread's change of the rows it touched into `shared`, then refreshes the private
/// copies. Rows touched by one thread take its value exactly.
fn merge(shared: &mut [f32], workers: &mut [Worker<'_>], width: usize) {
    let mut rows: Vec<u32> = workers
        .iter()
        .flat_map(|w| w.touched_rows.iter().copied())
        .collect();
    rows.sort_unstable();
    rows.dedup();
    let mut next = vec![0f32; width];
    for &row in &rows {
        let range = row as usize * width..(row as usize + 1) * width;
        let base = &shared[range.clone()];
        let touching: Vec<&Worker<'_>> =
            workers.iter().filter(|w| w.touched[row as usize]).collect();
        if let [only] = touching.as_slice() {
            next.copy_from_slice(&only.items[range.clone()]);
        } else {
            next.copy_from_slice(base);
            for w in &touching {
                for ((n, &b), &local) in next.iter_mut().zip(base).zip(&w.items[range.clone()]) {
                    *n += local - b;
                }
            }
        }
        shared[range.clone()].copy_from_slice(&next);
        for w in workers.iter_mut() {
            w.items[range.clone()].copy_from_slice(&next);
        }
    }
    for w in workers.iter_mut() {
        for &row in &w.touched_rows {
            w.touched[row as usize] = false;
        }
        w.touched_rows.clear();
    }
}

/// Trained parameters: user factors (`n_users × f`) and item rows (`n_items × (f + 1)`, bias last).
struct Trained {
    users: Vec<f32>,
    items: Vec<f32>,
}

fn train(data: &TrainSet, params: &BprParams, ctx: &FitContext) -> Result<Trained> {
    params.validate()?;
    ctx.cancel.check()?;
    let (n_users, n_items, f) = (data.n_users(), data.n_items(), params.factors);
    let width = f + 1;
    let positives = PositiveSets::from_train(data);
    if positives.n_pairs() == 0 {
        return Err(Error::InvalidInput(
            "bpr needs at least one training interaction".into(),
        ));
    }
    let sampler = NegativeSampler::new(params.sampling, params.beta, &positives, n_items)?;
    let seed = params.seed.unwrap_or(ctx.seed);
    let item_counts = positives.item_counts(n_items);

    let mut init = SplitMix64::stream(seed, 0xB9A);
    let scale = 1.0 / f as f64;
    let mut users: Vec<f32> = (0..n_users * f)
        .map(|_| ((init.next_f64() - 0.5) * scale) as f32)
        .collect();
    let mut items = vec![0f32; n_items * width];
    for (row, &count) in items.chunks_exact_mut(width).zip(&item_counts) {
        let draws: Vec<f32> = (0..f)
            .map(|_| ((init.next_f64() - 0.5) * scale) as f32)
            .collect();
        // Items nobody interacted with keep zero factors, as in `implicit`.
        if count > 0 {
            row[..f].copy_from_slice(&draws);
        }
    }
    let pair_users: Vec<u32> = (0..n_users)
        .flat_map(|u| {
            let len = positives.pair_range(u as UserIdx).len();
            std::iter::repeat_n(u as u32, len)
        })
        .collect();

    let t = ctx.threads.max(1);
    let plan = shards(&positives, t);
    let mut workers: Vec<Worker<'_>> = Vec::with_capacity(t);
    let mut rest: &mut [f32] = &mut users;
    for (s, (user_range, pairs)) in plan.into_iter().enumerate() {
        let (mine, tail) = std::mem::take(&mut rest).split_at_mut(user_range.len() * f);
        rest = tail;
        workers.push(Worker {
            users: mine,
            first_user: user_range.start,
            pairs,
            rng: SplitMix64::stream(seed, 1 + s as u64),
            items: items.clone(),
            touched: vec![false; n_items],
            touched_rows: Vec::new(),
            loss: 0.0,
            applied: 0,
        });
    }

    let step = Step {
        lr: params.learning_rate as f32,
        reg: params.regularization as f32,
        factors: f,
    };
    let most = workers.iter().map(|w| w.pairs.len()).max().unwrap_or(0);
    let rounds = most.div_ceil(SYNC_SAMPLES).max(1);
    ctx.progress.begin("bpr", params.iterations as u64);
    for epoch in 0..params.iterations {
        for w in workers.iter_mut() {
            w.loss = 0.0;
            w.applied = 0;
        }
        for round in 0..rounds {
            ctx.cancel.check()?;
            let run = |w: &mut Worker<'_>| {
                let n = w.pairs.len();
                let samples = n * (round + 1) / rounds - n * round / rounds;
                w.run(
                    samples,
                    &positives,
                    &pair_users,
                    &sampler,
                    params.verify_negative,
                    step,
                );
            };
            if workers.len() == 1 {
                workers.iter_mut().for_each(run);
            } else {
                workers.par_iter_mut().for_each(run);
            }
            merge(&mut items, &mut workers, width);
        }
        let applied: u64 = workers.iter().map(|w| w.applied).sum();
        let loss: f64 = workers.iter().map(|w| w.loss).sum();
        ctx.progress.advance(1);
        ctx.progress
            .epoch(epoch, loss / applied.max(1) as f64, None);
    }
    ctx.progress.finish();
    drop(workers);
    Ok(Trained { users, items })
}

impl Algorithm for Bpr {
    fn name(&self) -> &'static str {
        "bpr"
    }

    fn params(&self) -> serde_json::Value {
        serde_json::to_value(&self.params).unwrap_or_default()
    }

    fn fit(&self, data: &TrainSet, ctx: &FitContext) -> Result<Box<dyn Model>> {
        let trained = train(data, &self.params, ctx)?;
        let f = self.params.factors;
        let mut item_factors = Vec::with_capacity(data.n_items() * f);
        let mut item_bias = Vec::with_capacity(data.n_items());
        for row in trained.items.chunks_exact(f + 1) {
            item_factors.extend_from_slice(&row[..f]);
            item_bias.push(row[f]);
        }
        Ok(Box::new(BprModel {
            user_factors: trained.users,
            item_factors,
            item_bias,
            params: self.params.clone(),
            fitted: Fitted::from_train(data),
        }))
    }
}

/// A fitted BPR model.
#[derive(Debug, Clone)]
pub struct BprModel {
    /// Row-major `n_users × factors`.
    pub user_factors: Vec<f32>,
    /// Row-major `n_items × factors`.
    pub item_factors: Vec<f32>,
    pub item_bias: Vec<f32>,
    pub params: BprParams,
    fitted: Fitted,
}

impl BprModel {
    /// Loads a model saved by [`Model::save`].
    pub fn load(params: serde_json::Value, fitted: Fitted, tensors: &TensorReader) -> Result<Self> {
        let params: BprParams = serde_json::from_value(params)
            .map_err(|e| Error::InvalidInput(format!("bpr parameters: {e}")))?;
        let (n_users, n_items, f) = (fitted.users.len(), fitted.items.len(), params.factors);
        Ok(Self {
            user_factors: tensors.f32_len("user_factors", n_users * f)?,
            item_factors: tensors.f32_len("item_factors", n_items * f)?,
            item_bias: tensors.f32_len("item_bias", n_items)?,
            params,
            fitted,
        })
    }

    /// The user vector a query is scored with: the trained row of a known user, else the mean
    /// factors of the query's known history items, else none (item bias alone).
    fn query_vector(&self, query: &UserQuery<'_>) -> Option<Vec<f32>> {
        let f = self.params.factors;
        if let Some(u) = query.user.filter(|&u| self.fitted.knows_user(u)) {
            let u = u as usize;
            return Some(self.user_factors[u * f..(u + 1) * f].to_vec());
        }
        let known: Vec<usize> = query
            .history
            .iter()
            .filter(|&&i| self.fitted.knows_item(i))
            .map(|&i| i as usize)
            .collect();
        if known.is_empty() {
            return None;
        }
        let mut mean = vec![0f32; f];
        for &i in &known {
            for (m, &q) in mean.iter_mut().zip(&self.item_factors[i * f..(i + 1) * f]) {
                *m += q;
            }
        }
        let n = known.len() as f32;
        mean.iter_mut().for_each(|m| *m /= n);
        Some(mean)
    }
}

impl Model for BprModel {
    fn name(&self) -> &'static str {
        "bpr"
    }

    fn params(&self) -> serde_json::Value {
        serde_json::to_value(&self.params).unwrap_or_default()
    }

    fn fitted(&self) -> &Fitted {
        &self.fitted
    }

    fn score(&self, query: &UserQuery<'_>, items: &[ItemIdx], out: &mut [f32]) {
        let f = self.params.factors;
        let user = self.query_vector(query);
        for (o, &item) in out.iter_mut().zip(items) {
            let i = item as usize;
            *o = if !self.fitted.knows_item(item) {
                f32::NEG_INFINITY
            } else {
                let bias = self.item_bias[i];
                match &user {
                    Some(p) => bias + dot(p, &self.item_factors[i * f..(i + 1) * f]),
                    None => bias,
                }
            };
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
        let (n_users, n_items) = (self.user_factors.len() / f, self.item_bias.len());
        let mut t = TensorWriter::new();
        t.f32("user_factors", &[n_users, f], &self.user_factors)
            .f32("item_factors", &[n_items, f], &self.item_factors)
            .f32("item_bias", &[n_items], &self.item_bias);
        self.fitted.save(dir, "bpr", Model::params(self), t)
    }
}

/// The `bpr` family's entry in the model registry.
pub struct BprFamily;

impl ModelFamily for BprFamily {
    fn name(&self) -> &'static str {
        "bpr"
    }

    fn task(&self) -> Task {
        Task::Ranking
    }

    fn summary(&self) -> &'static str {
        "Bayesian Personalised Ranking matrix factorisation with item biases (Rendle 2009; implicit's BPR), deterministic parallel SGD"
    }

    fn params(&self) -> Vec<ParamInfo> {
        param_infos::<BprParams>(&[
            ("factors", None, "latent factors (plus an item bias)"),
            ("learning_rate", None, "SGD learning rate"),
            ("regularization", None, "L2 regularisation of the factors and biases each step touches"),
            ("iterations", None, "epochs; each draws as many (user, positive, negative) triples as there are training pairs"),
            ("sampling", None, "negatives: uniform | popularity (proportional to item user count^beta)"),
            ("beta", None, "popularity sampling exponent (1 = implicit's sampling, 0 = uniform over trained items)"),
            ("verify_negative", None, "redraw negatives the user interacted with (up to 64 draws)"),
            ("seed", Some("fit seed (42)"), "seed of initialisation and sampling; results depend on seed and thread count"),
        ])
    }

    fn build(&self, spec: &ModelSpec) -> Result<Box<dyn Algorithm>> {
        Ok(Box::new(Bpr {
            params: spec.typed()?,
        }))
    }

    fn load(&self, saved: Saved<'_>) -> Result<Box<dyn Model>> {
        saved.load_with(BprModel::load)
    }

    fn search_space(&self) -> Option<Space> {
        Some(Space {
            family: "bpr",
            params: vec![
                Param::int("factors", 16, 256, true, 64),
                Param::float("learning_rate", 0.001, 0.1, true, 0.01),
                Param::float("regularization", 0.0001, 0.1, true, 0.01),
                Param::int("iterations", 20, 200, false, 100),
                Param::float("beta", 0.0, 1.0, false, 0.5),
            ],
            fidelity: Some("iterations"),
            fixed: Vec::new(),
        })
    }

    fn cost(&self) -> Cost {
        Cost::Medium
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    use kindred_core::{Interaction, InteractionsBuilder, SplitMix64, TrainSet};

    /// Planted structure for ranking: user `u` and item `i` belong to groups `u % groups` and
    /// `i % groups`; each user draws `per_user + 2` distinct items, 90% from their own group
    /// (low ids more likely: a popularity gradient), 10% anywhere. The first `per_user` are
    /// training data; the last two are returned, per dense user index, as held-out items.
    pub fn planted(
        users: usize,
        items: usize,
        groups: usize,
        per_user: usize,
        seed: u64,
    ) -> (TrainSet, Vec<Vec<u32>>) {
        let mut rng = SplitMix64::new(seed);
        let mut b = InteractionsBuilder::new();
        let mut held_out = Vec::with_capacity(users);
        for u in 0..users {
            let g = u % groups;
            let mut chosen: Vec<usize> = Vec::new();
            while chosen.len() < per_user + 2 {
                let r = rng.next_f64();
                let k = (r * r * (items / groups) as f64) as usize;
                let i = if rng.next_f64() < 0.9 {
                    (k * groups + g).min(items - 1)
                } else {
                    rng.below(items as u64) as usize
                };
                if !chosen.contains(&i) {
                    chosen.push(i);
                }
            }
            let test = chosen.split_off(per_user);
            for i in chosen {
                b.push(Interaction::rating(
                    &format!("u{u}"),
                    &format!("i{i}"),
                    1.0,
                    None,
                ));
            }
            held_out.push(test);
        }
        let data = TrainSet::new(b.build());
        let (user_ids, item_ids) = (data.data.user_ids(), data.data.item_ids());
        let mut by_dense = vec![Vec::new(); data.n_users()];
        for (u, test) in held_out.iter().enumerate() {
            if let Some(du) = user_ids.get(&format!("u{u}")) {
                // Items nobody trained on cannot be recommended by anyone: dropped.
                by_dense[du as usize] = test
                    .iter()
                    .filter_map(|&i| item_ids.get(&format!("i{i}")))
                    .collect();
            }
        }
        (data, by_dense)
    }

    /// Mean hit rate at `k` of a model's recommendations against held-out items.
    pub fn hit_rate(model: &dyn crate::Model, held_out: &[Vec<u32>], k: usize) -> f64 {
        let mut hits = 0usize;
        let mut total = 0usize;
        for (u, test) in held_out.iter().enumerate() {
            if test.is_empty() {
                continue;
            }
            let recs = model.recommend(
                &crate::UserQuery::known(u as u32),
                k,
                &crate::model::AllItems,
            );
            hits += test
                .iter()
                .filter(|i| recs.iter().any(|s| s.item == **i))
                .count();
            total += test.len();
        }
        hits as f64 / total.max(1) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::*;
    use super::*;
    use crate::rating::svd::test_support::{ctx_with, Epochs};
    use std::sync::Arc;

    fn small(params: BprParams) -> BprParams {
        BprParams {
            factors: 8,
            iterations: 5,
            ..params
        }
    }

    #[test]
    fn one_step_by_hand() {
        let step = Step {
            lr: 0.1,
            reg: 0.01,
            factors: 2,
        };
        let mut user = vec![0.5f32, -0.2];
        let mut pos = vec![0.1f32, 0.3, 0.05];
        let mut neg = vec![-0.2f32, 0.4, -0.1];
        let x = 0.5 * (0.1 + 0.2) + (-0.2) * (0.3 - 0.4) + (0.05 + 0.1);
        let z = 1.0 / (1.0 + f64::exp(x));
        let loss = bpr_step(&mut user, &mut pos, &mut neg, step);
        assert!((loss - (1.0 + (-x).exp()).ln()).abs() < 1e-6);
        let expect_user0 = 0.5 + 0.1 * (z * 0.3 - 0.01 * 0.5);
        let expect_pos0 = 0.1 + 0.1 * (z * 0.5 - 0.01 * 0.1);
        let expect_neg1 = 0.4 + 0.1 * (-z * -0.2 - 0.01 * 0.4);
        let expect_pos_bias = 0.05 + 0.1 * (z - 0.01 * 0.05);
        let expect_neg_bias = -0.1 + 0.1 * (-z + 0.01 * 0.1);
        for (got, want) in [
            (user[0], expect_user0),
            (pos[0], expect_pos0),
            (neg[1], expect_neg1),
            (pos[2], expect_pos_bias),
            (neg[2], expect_neg_bias),
        ] {
            assert!((got as f64 - want).abs() < 1e-6, "{got} vs {want}");
        }
    }

    #[test]
    fn shards_cover_users_and_pairs_once() {
        let lists: Vec<Vec<u32>> = (0..17).map(|u| (0..(u % 5 + 1)).collect()).collect();
        let p = PositiveSets::from_lists(&lists);
        for t in [1, 2, 3, 8, 40] {
            let s = shards(&p, t);
            assert_eq!(s.len(), t);
            let mut next_user = 0;
            let mut pairs = 0;
            for (users, pair_range) in &s {
                assert_eq!(users.start, next_user);
                next_user = users.end;
                if !users.is_empty() {
                    assert_eq!(pair_range.start, p.pair_range(users.start as u32).start);
                    assert_eq!(pair_range.end, p.pair_range(users.end as u32 - 1).end);
                }
                pairs += pair_range.len();
            }
            assert_eq!(next_user, 17, "threads {t}");
            assert_eq!(pairs, p.n_pairs(), "threads {t}");
        }
    }

    #[test]
    fn beats_popularity_on_planted_structure() {
        let (train, held_out) = planted(400, 200, 4, 20, 11);
        let ctx = ctx_with(42, 2, Arc::default());
        let pop = crate::simple::popularity::Popularity::default()
            .fit(&train, &ctx)
            .unwrap();
        let pop_hits = hit_rate(pop.as_ref(), &held_out, 10);
        for sampling in [Sampling::Uniform, Sampling::Popularity] {
            let bpr = Bpr {
                params: BprParams {
                    factors: 16,
                    iterations: 40,
                    learning_rate: 0.05,
                    sampling,
                    ..Default::default()
                },
            }
            .fit(&train, &ctx)
            .unwrap();
            let bpr_hits = hit_rate(bpr.as_ref(), &held_out, 10);
            // Measured hit rates at 10: uniform 0.3475, popularity 0.3488, popularity model 0.0625.
            assert!(
                bpr_hits > pop_hits * 3.0,
                "{sampling:?}: bpr {bpr_hits:.4} popularity {pop_hits:.4}"
            );
        }
    }

    #[test]
    fn loss_is_reported_per_epoch_and_falls() {
        let (train, _) = planted(200, 100, 4, 15, 3);
        let epochs = Arc::new(Epochs::default());
        Bpr {
            params: BprParams {
                factors: 8,
                iterations: 10,
                learning_rate: 0.05,
                ..Default::default()
            },
        }
        .fit(&train, &ctx_with(1, 2, Arc::clone(&epochs)))
        .unwrap();
        let log = epochs.0.lock().unwrap().clone();
        assert_eq!(log.len(), 10);
        assert!((log[0].1 - std::f64::consts::LN_2).abs() < 0.05, "{log:?}");
        assert!(log[9].1 < log[0].1 - 0.1, "{log:?}");
        assert!(log.iter().all(|e| e.2.is_none()));
    }

    #[test]
    fn deterministic_per_seed_and_thread_count() {
        let (train, _) = planted(150, 80, 3, 10, 5);
        let fit = |seed: u64, threads: usize, sampling: Sampling| {
            let model = Bpr {
                params: small(BprParams {
                    sampling,
                    ..Default::default()
                }),
            }
            .fit(&train, &ctx_with(seed, threads, Arc::default()))
            .unwrap();
            let mut all = Vec::new();
            for u in 0..train.n_users() as u32 {
                let mut s = vec![0f32; train.n_items()];
                model.score_all(&UserQuery::known(u), &mut s);
                all.extend(s.iter().map(|v| v.to_bits()));
            }
            all
        };
        for sampling in [Sampling::Uniform, Sampling::Popularity] {
            assert_eq!(fit(1, 1, sampling), fit(1, 1, sampling));
            assert_eq!(fit(1, 2, sampling), fit(1, 2, sampling));
            assert_eq!(fit(1, 3, sampling), fit(1, 3, sampling));
            assert_ne!(fit(1, 2, sampling), fit(2, 2, sampling));
            assert_ne!(fit(1, 1, sampling), fit(1, 2, sampling));
        }
        // An explicit seed overrides the fit seed.
        let seeded = |ctx_seed| {
            Bpr {
                params: small(BprParams {
                    seed: Some(9),
                    ..Default::default()
                }),
            }
            .fit(&train, &ctx_with(ctx_seed, 2, Arc::default()))
            .unwrap()
            .item_embeddings()
            .unwrap()
            .1
            .to_vec()
        };
        assert_eq!(seeded(1), seeded(2));
    }

    #[test]
    fn save_load_roundtrip_is_bit_identical() {
        let (train, _) = planted(60, 40, 2, 8, 7);
        let model = Bpr {
            params: small(BprParams::default()),
        }
        .fit(&train, &FitContext::default())
        .unwrap();
        let dir = std::env::temp_dir().join(format!("kindred-bpr-{}", std::process::id()));
        model.save(&dir).unwrap();
        let loaded = crate::registry::load_model(&dir).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(loaded.name(), "bpr");
        assert_eq!(loaded.params(), model.params());
        let n = train.n_items();
        let history = [0u32, 3, 5];
        for query in [
            UserQuery::known(0),
            UserQuery::known(17),
            UserQuery::known(9999),
            UserQuery::anonymous(&history),
        ] {
            let (mut a, mut b) = (vec![0f32; n], vec![0f32; n]);
            model.score_all(&query, &mut a);
            loaded.score_all(&query, &mut b);
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&a), bits(&b));
        }
        let (f, emb) = loaded.item_embeddings().unwrap();
        assert_eq!((f, emb.len()), (8, n * 8));
    }

    #[test]
    fn anonymous_history_ranks_its_group_first() {
        let (train, _) = planted(300, 120, 3, 15, 13);
        let model = Bpr {
            params: BprParams {
                factors: 16,
                iterations: 30,
                learning_rate: 0.05,
                ..Default::default()
            },
        }
        .fit(&train, &FitContext::default())
        .unwrap();
        let ids = train.data.item_ids();
        // Items i0, i3, i6, ... are group 0 in the planted generator.
        let history: Vec<u32> = [0, 3, 6, 9, 12]
            .iter()
            .filter_map(|i| ids.get(&format!("i{i}")))
            .collect();
        let recs = model.recommend(&UserQuery::anonymous(&history), 10, &crate::model::AllItems);
        let in_group = recs
            .iter()
            .filter(|s| {
                ids.try_external(s.item)
                    .and_then(|id| id[1..].parse::<usize>().ok())
                    .is_some_and(|i| i % 3 == 0)
            })
            .count();
        assert!(in_group >= 7, "{in_group} of 10 in the history's group");
    }

    #[test]
    fn rejects_bad_params_and_honours_cancel() {
        let (train, _) = planted(20, 10, 2, 3, 1);
        for bad in [
            "bpr:factors=0",
            "bpr:iterations=0",
            "bpr:learning_rate=0",
            "bpr:learning_rate=-0.1",
            "bpr:regularization=-1",
            "bpr:beta=-0.5",
        ] {
            let algo = crate::registry::build_algorithm(bad).unwrap();
            let err = algo.fit(&train, &FitContext::default()).err();
            assert!(
                err.as_ref().is_some_and(|e| e.to_string().contains("bpr")),
                "{bad}: {err:?}"
            );
        }
        for bad in ["bpr:sampling=magic", "bpr:lr=0.1"] {
            assert!(crate::registry::build_algorithm(bad).is_err(), "{bad}");
        }
        let ctx = FitContext::default();
        ctx.cancel.cancel();
        let err = Bpr::default()
            .fit(&train, &ctx)
            .err()
            .map(|e| e.to_string());
        assert_eq!(err, Some(Error::Cancelled.to_string()));
    }
}
