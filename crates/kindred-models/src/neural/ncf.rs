//! Neural Collaborative Filtering (He et al. 2017), the NeuMF model: a generalised matrix
//! factorisation (GMF) branch and a multi-layer perceptron (MLP) branch joined by a logistic
//! output layer, trained on implicit feedback with sampled negatives. Gradients are derived by
//! hand (no ML crate).
//!
//! For user `u` and item `i`, with GMF embeddings `p_u, q_i` (`factors` wide) and MLP embeddings
//! `p'_u, q'_i` (`layers[0] / 2` wide each):
//! `g = p_u ⊙ q_i`, `a_0 = [p'_u; q'_i]`, `a_l = ReLU(W_l a_{l-1} + b_l)` for the hidden sizes
//! `layers[1..]`, and the logit `s = h · [g; a_L] + c`. Training minimises the binary
//! cross-entropy `softplus(s) - y s` over every training pair (y = 1) and `negatives` uniformly
//! drawn non-interacted items per pair (y = 0), averaged over minibatches of about `batch_size`
//! examples, plus `reg/2 ‖θ‖²` on the parameters a batch touches. Backpropagation:
//! `ds = σ(s) - y`; `dh = ds [g; a_L]`, `dc = ds`; `dp_u = ds h_g ⊙ q_i`, `dq_i = ds h_g ⊙ p_u`;
//! `da_L = ds h_mlp`; per layer `dz_l = da_l ⊙ [a_l > 0]`, `dW_l = dz_l a_{l-1}ᵀ`, `db_l = dz_l`,
//! `da_{l-1} = W_lᵀ dz_l`; `da_0` splits into `dp'_u, dq'_i`.
//! Updates are Adam (Kingma & Ba) — lazy for embeddings: a row's moments move only in batches
//! that touch it. Embeddings start N(0, 0.01²) as in the paper, ReLU layers He-normal.
//!
//! Each minibatch (negatives drawn sequentially from the seeded stream) is cut into
//! `ctx.threads` contiguous chunks whose gradients are computed in parallel into per-thread
//! buffers and summed in thread order, so training is reproducible per seed and thread count.
//!
//! Scoring uses the logit. The first MLP layer is linear in `[p'_u; q'_i]`, so its item half is
//! precomputed for every item and a user's ranking costs the upper layers only. Items without
//! training interactions score `-inf`; users unknown to the model (and anonymous queries) are
//! scored with zero user embeddings, which leaves the item-only part of the network.

use std::path::Path;

use kindred_core::kernels::{dot, sigmoid};
use kindred_core::{Error, FitContext, ItemIdx, Result, SplitMix64, TrainSet};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::common::negative::{NegativeSampler, PositiveSets};
use crate::family::{param_infos, Cost, DataShape, Estimate, ModelFamily, ParamInfo, Saved, Task};
use crate::model::{Algorithm, Model, UserQuery};
use crate::params::check;
use crate::params::ModelSpec;
use crate::persist::{Fitted, TensorReader, TensorWriter};
use crate::space::{Param, Space};

/// MLP sizes, written `64-32-16` in a spec (commas separate parameters): the first is the
/// concatenated embedding width (half user, half item), the rest hidden ReLU layers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "serde_json::Value", into = "String")]
pub struct Layers(pub Vec<usize>);

impl TryFrom<serde_json::Value> for Layers {
    type Error = String;

    fn try_from(value: serde_json::Value) -> std::result::Result<Self, String> {
        let text = match value {
            serde_json::Value::String(s) => s,
            serde_json::Value::Number(n) => n.to_string(),
            other => return Err(format!("layers must look like 64-32-16, got {other}")),
        };
        text.split('-')
            .map(|part| {
                part.trim()
                    .parse::<usize>()
                    .map_err(|_| format!("layers must look like 64-32-16, got `{text}`"))
            })
            .collect::<std::result::Result<Vec<_>, _>>()
            .map(Layers)
    }
}

impl From<Layers> for String {
    fn from(layers: Layers) -> String {
        layers
            .0
            .iter()
            .map(|l| l.to_string())
            .collect::<Vec<_>>()
            .join("-")
    }
}

/// Hyperparameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NcfParams {
    /// GMF embedding width.
    pub factors: usize,
    pub layers: Layers,
    pub epochs: usize,
    /// Adam step size.
    pub lr: f64,
    /// L2 regularisation of the parameters each batch touches.
    pub reg: f64,
    /// Sampled negatives per training pair and epoch.
    pub negatives: usize,
    /// Training examples (positives with their negatives) per Adam step, about.
    pub batch_size: usize,
    /// Seed of initialisation, shuffling and sampling; `None` uses the fit seed.
    pub seed: Option<u64>,
}

impl Default for NcfParams {
    fn default() -> Self {
        Self {
            factors: 16,
            layers: Layers(vec![64, 32, 16]),
            epochs: 20,
            lr: 0.001,
            reg: 0.0,
            negatives: 4,
            batch_size: 256,
            seed: None,
        }
    }
}

impl NcfParams {
    fn validate(&self) -> Result<()> {
        check::at_least_one("ncf", "factors", self.factors)?;
        let layers = &self.layers.0;
        if layers.is_empty() || layers.contains(&0) || !layers[0].is_multiple_of(2) {
            return Err(Error::InvalidInput(format!(
                "ncf: layers must be positive sizes with an even first one (split between user and item), got {}",
                String::from(self.layers.clone())
            )));
        }
        check::at_least_one("ncf", "epochs", self.epochs)?;
        check::positive("ncf", "lr", self.lr)?;
        check::non_negative("ncf", "reg", self.reg)?;
        check::at_least_one("ncf", "negatives", self.negatives)?;
        check::at_least_one("ncf", "batch_size", self.batch_size)?;
        Ok(())
    }
}

/// The NCF algorithm.
#[derive(Debug, Clone, Default)]
pub struct Ncf {
    pub params: NcfParams,
}

/// Where each dense parameter lives in the flat dense vector.
#[derive(Debug, Clone, PartialEq)]
struct Shape {
    gmf: usize,
    /// Layer sizes, `sizes[0]` the MLP input.
    sizes: Vec<usize>,
    /// (weights offset, bias offset) of hidden layer `l` (1-based: entry `l - 1`).
    layer_offsets: Vec<(usize, usize)>,
    out_offset: usize,
    out_bias: usize,
    len: usize,
}

impl Shape {
    fn new(gmf: usize, sizes: &[usize]) -> Self {
        let mut at = 0;
        let mut layer_offsets = Vec::new();
        for l in 1..sizes.len() {
            let w = at;
            at += sizes[l] * sizes[l - 1];
            layer_offsets.push((w, at));
            at += sizes[l];
        }
        let out_offset = at;
        at += gmf + sizes[sizes.len() - 1];
        Self {
            gmf,
            sizes: sizes.to_vec(),
            layer_offsets,
            out_offset,
            out_bias: at,
            len: at + 1,
        }
    }

    /// Embedding row width: GMF then half of the MLP input.
    fn embedding(&self) -> usize {
        self.gmf + self.sizes[0] / 2
    }

    fn half(&self) -> usize {
        self.sizes[0] / 2
    }

    fn last(&self) -> usize {
        self.sizes[self.sizes.len() - 1]
    }
}

/// The network's parameters: embedding rows `[p | p']` per user and `[q | q']` per item, and the
/// dense layers flattened as [`Shape`] says.
#[derive(Debug, Clone, PartialEq)]
struct Net {
    shape: Shape,
    users: Vec<f32>,
    items: Vec<f32>,
    dense: Vec<f32>,
}

/// Where one example's gradient is added: the dense vector and the example's two embedding rows.
struct GradOut<'a> {
    dense: &'a mut [f32],
    user: &'a mut [f32],
    item: &'a mut [f32],
}

/// Activations of one forward pass.
struct Scratch {
    gmf: Vec<f32>,
    /// `acts[l]` = a_l (post-ReLU; a_0 the concatenated MLP embeddings).
    acts: Vec<Vec<f32>>,
    /// Gradients with respect to `acts`.
    grads: Vec<Vec<f32>>,
}

impl Scratch {
    fn new(shape: &Shape) -> Self {
        Self {
            gmf: vec![0.0; shape.gmf],
            acts: shape.sizes.iter().map(|&s| vec![0.0; s]).collect(),
            grads: shape.sizes.iter().map(|&s| vec![0.0; s]).collect(),
        }
    }
}

/// `ln(1 + e^x)` without overflow.
fn softplus(x: f64) -> f64 {
    if x > 0.0 {
        x + (-x).exp().ln_1p()
    } else {
        x.exp().ln_1p()
    }
}

impl Net {
    fn init(shape: Shape, n_users: usize, n_items: usize, rng: &mut SplitMix64) -> Self {
        let e = shape.embedding();
        let mut normal = |std: f64| (rng.normal() * std) as f32;
        let users = (0..n_users * e).map(|_| normal(0.01)).collect();
        let items = (0..n_items * e).map(|_| normal(0.01)).collect();
        let mut dense = vec![0f32; shape.len];
        for (l, &(w, b)) in shape.layer_offsets.iter().enumerate() {
            let fan_in = shape.sizes[l];
            let std = (2.0 / fan_in as f64).sqrt();
            for v in &mut dense[w..b] {
                *v = normal(std);
            }
        }
        let out_in = shape.gmf + shape.last();
        let std = (1.0 / out_in as f64).sqrt();
        for v in &mut dense[shape.out_offset..shape.out_bias] {
            *v = normal(std);
        }
        Self {
            shape,
            users,
            items,
            dense,
        }
    }

    fn user_row(&self, u: usize) -> &[f32] {
        let e = self.shape.embedding();
        &self.users[u * e..(u + 1) * e]
    }

    fn item_row(&self, i: usize) -> &[f32] {
        let e = self.shape.embedding();
        &self.items[i * e..(i + 1) * e]
    }

    /// The logit of (user row, item row), filling `s` with the activations.
    fn forward(&self, user: &[f32], item: &[f32], s: &mut Scratch) -> f32 {
        let sh = &self.shape;
        let (g, half) = (sh.gmf, sh.half());
        for ((o, &p), &q) in s.gmf.iter_mut().zip(&user[..g]).zip(&item[..g]) {
            *o = p * q;
        }
        s.acts[0][..half].copy_from_slice(&user[g..g + half]);
        s.acts[0][half..].copy_from_slice(&item[g..g + half]);
        for (l, &(w, b)) in sh.layer_offsets.iter().enumerate() {
            let (before, after) = s.acts.split_at_mut(l + 1);
            let (input, output) = (&before[l], &mut after[0]);
            let n_in = sh.sizes[l];
            for (o, out) in output.iter_mut().enumerate() {
                let z =
                    self.dense[b + o] + dot(&self.dense[w + o * n_in..w + (o + 1) * n_in], input);
                *out = z.max(0.0);
            }
        }
        let h = &self.dense[sh.out_offset..sh.out_bias];
        dot(&h[..g], &s.gmf) + dot(&h[g..], &s.acts[sh.sizes.len() - 1]) + self.dense[sh.out_bias]
    }

    /// Adds `dlogit ×` the gradient of the logit (after [`Self::forward`] on the same rows) to
    /// `out`.
    fn backward(&self, dlogit: f32, user: &[f32], item: &[f32], s: &mut Scratch, out: GradOut<'_>) {
        let GradOut {
            dense,
            user: d_user,
            item: d_item,
        } = out;
        let sh = &self.shape;
        let (g, half, depth) = (sh.gmf, sh.half(), sh.sizes.len() - 1);
        let h = &self.dense[sh.out_offset..sh.out_bias];
        {
            let dh = &mut dense[sh.out_offset..sh.out_bias];
            for (d, &x) in dh.iter_mut().zip(s.gmf.iter().chain(&s.acts[depth])) {
                *d += dlogit * x;
            }
        }
        dense[sh.out_bias] += dlogit;
        for k in 0..g {
            d_user[k] += dlogit * h[k] * item[k];
            d_item[k] += dlogit * h[k] * user[k];
        }
        for (d, &hk) in s.grads[depth].iter_mut().zip(&h[g..]) {
            *d = dlogit * hk;
        }
        for l in (1..=depth).rev() {
            let (w, b) = sh.layer_offsets[l - 1];
            let n_in = sh.sizes[l - 1];
            let (lower, upper) = s.grads.split_at_mut(l);
            let (d_in, d_out) = (&mut lower[l - 1], &mut upper[0]);
            for (d, &a) in d_out.iter_mut().zip(&s.acts[l]) {
                if a <= 0.0 {
                    *d = 0.0;
                }
            }
            d_in.iter_mut().for_each(|d| *d = 0.0);
            let input = &s.acts[l - 1];
            for (o, &dz) in d_out.iter().enumerate() {
                if dz == 0.0 {
                    continue;
                }
                dense[b + o] += dz;
                let row = w + o * n_in..w + (o + 1) * n_in;
                for ((dw, &x), (di, &wv)) in dense[row.clone()]
                    .iter_mut()
                    .zip(input)
                    .zip(d_in.iter_mut().zip(&self.dense[row]))
                {
                    *dw += dz * x;
                    *di += dz * wv;
                }
            }
        }
        for (d, &x) in d_user[g..g + half].iter_mut().zip(&s.grads[0][..half]) {
            *d += x;
        }
        for (d, &x) in d_item[g..g + half].iter_mut().zip(&s.grads[0][half..]) {
            *d += x;
        }
    }
}

/// Binary cross-entropy of a logit against label `y`, and its derivative `σ(s) - y`.
fn bce(logit: f32, y: f32) -> (f64, f32) {
    let s = logit as f64;
    (softplus(s) - y as f64 * s, (sigmoid(s) - y as f64) as f32)
}

/// One thread's gradient buffers: dense, and embedding rows with the lists of rows touched.
struct Grads {
    dense: Vec<f32>,
    users: Vec<f32>,
    items: Vec<f32>,
    user_touched: Vec<bool>,
    item_touched: Vec<bool>,
    user_rows: Vec<u32>,
    item_rows: Vec<u32>,
    loss: f64,
    scratch: Scratch,
}

impl Grads {
    fn new(shape: &Shape, n_users: usize, n_items: usize) -> Self {
        let e = shape.embedding();
        Self {
            dense: vec![0.0; shape.len],
            users: vec![0.0; n_users * e],
            items: vec![0.0; n_items * e],
            user_touched: vec![false; n_users],
            item_touched: vec![false; n_items],
            user_rows: Vec::new(),
            item_rows: Vec::new(),
            loss: 0.0,
            scratch: Scratch::new(shape),
        }
    }

    /// Accumulates the mean-loss gradient (`scale` = 1 / batch size) of `examples`.
    fn accumulate(&mut self, net: &Net, examples: &[(u32, u32, f32)], scale: f32) {
        let e = net.shape.embedding();
        for &(u, i, y) in examples {
            let (u, i) = (u as usize, i as usize);
            let (user, item) = (net.user_row(u), net.item_row(i));
            let logit = net.forward(user, item, &mut self.scratch);
            let (loss, dlogit) = bce(logit, y);
            self.loss += loss;
            if !self.user_touched[u] {
                self.user_touched[u] = true;
                self.user_rows.push(u as u32);
            }
            if !self.item_touched[i] {
                self.item_touched[i] = true;
                self.item_rows.push(i as u32);
            }
            net.backward(
                dlogit * scale,
                user,
                item,
                &mut self.scratch,
                GradOut {
                    dense: &mut self.dense,
                    user: &mut self.users[u * e..(u + 1) * e],
                    item: &mut self.items[i * e..(i + 1) * e],
                },
            );
        }
    }
}

/// Adam moments and step count.
struct Adam {
    lr: f32,
    reg: f32,
    step: i32,
    dense: (Vec<f32>, Vec<f32>),
    users: (Vec<f32>, Vec<f32>),
    items: (Vec<f32>, Vec<f32>),
}

const BETA1: f32 = 0.9;
const BETA2: f32 = 0.999;
const EPSILON: f32 = 1e-8;

/// One Adam update of `params` from `grad` (plus `reg × params`), with bias-corrected rate `rate`.
fn adam_update(
    params: &mut [f32],
    grad: &[f32],
    m: &mut [f32],
    v: &mut [f32],
    rate: f32,
    reg: f32,
) {
    for (((p, &g), m), v) in params.iter_mut().zip(grad).zip(m).zip(v) {
        let g = g + reg * *p;
        *m = BETA1 * *m + (1.0 - BETA1) * g;
        *v = BETA2 * *v + (1.0 - BETA2) * g * g;
        *p -= rate * *m / (v.sqrt() + EPSILON);
    }
}

impl Adam {
    fn new(net: &Net, lr: f64, reg: f64) -> Self {
        let zeros = |n: usize| (vec![0f32; n], vec![0f32; n]);
        Self {
            lr: lr as f32,
            reg: reg as f32,
            step: 0,
            dense: zeros(net.dense.len()),
            users: zeros(net.users.len()),
            items: zeros(net.items.len()),
        }
    }

    /// Sums the threads' gradients (in thread order), applies one step and clears the buffers.
    fn apply(&mut self, net: &mut Net, grads: &mut [Grads]) {
        self.step += 1;
        let rate = self.lr * (1.0 - BETA2.powi(self.step)).sqrt() / (1.0 - BETA1.powi(self.step));
        let e = net.shape.embedding();
        let mut total = vec![0f32; net.dense.len()];
        for g in grads.iter_mut() {
            for (t, d) in total.iter_mut().zip(g.dense.iter_mut()) {
                *t += *d;
                *d = 0.0;
            }
        }
        adam_update(
            &mut net.dense,
            &total,
            &mut self.dense.0,
            &mut self.dense.1,
            rate,
            self.reg,
        );
        let mut row = vec![0f32; e];
        for items in [false, true] {
            let mut rows: Vec<u32> = grads
                .iter()
                .flat_map(|g| {
                    if items { &g.item_rows } else { &g.user_rows }
                        .iter()
                        .copied()
                })
                .collect();
            rows.sort_unstable();
            rows.dedup();
            let (params, (m, v)) = if items {
                (&mut net.items, &mut self.items)
            } else {
                (&mut net.users, &mut self.users)
            };
            for &r in &rows {
                let range = r as usize * e..(r as usize + 1) * e;
                row.iter_mut().for_each(|x| *x = 0.0);
                for g in grads.iter_mut() {
                    let (buffer, touched) = if items {
                        (&mut g.items, &g.item_touched)
                    } else {
                        (&mut g.users, &g.user_touched)
                    };
                    if touched[r as usize] {
                        for (x, d) in row.iter_mut().zip(&mut buffer[range.clone()]) {
                            *x += *d;
                            *d = 0.0;
                        }
                    }
                }
                adam_update(
                    &mut params[range.clone()],
                    &row,
                    &mut m[range.clone()],
                    &mut v[range],
                    rate,
                    self.reg,
                );
            }
        }
        for g in grads.iter_mut() {
            for &r in &g.user_rows {
                g.user_touched[r as usize] = false;
            }
            for &r in &g.item_rows {
                g.item_touched[r as usize] = false;
            }
            g.user_rows.clear();
            g.item_rows.clear();
        }
    }
}

fn train(data: &TrainSet, params: &NcfParams, ctx: &FitContext) -> Result<Net> {
    params.validate()?;
    ctx.cancel.check()?;
    let (n_users, n_items) = (data.n_users(), data.n_items());
    let positives = PositiveSets::from_train(data);
    if positives.n_pairs() == 0 {
        return Err(Error::InvalidInput(
            "ncf needs at least one training interaction".into(),
        ));
    }
    let sampler = NegativeSampler::uniform(n_items)?;
    let seed = params.seed.unwrap_or(ctx.seed);
    let shape = Shape::new(params.factors, &params.layers.0);
    let mut net = Net::init(
        shape,
        n_users,
        n_items,
        &mut SplitMix64::stream(seed, 0x9CF),
    );
    let mut adam = Adam::new(&net, params.lr, params.reg);
    let threads = ctx.threads.max(1);
    let mut grads: Vec<Grads> = (0..threads)
        .map(|_| Grads::new(&net.shape, n_users, n_items))
        .collect();
    let mut rng = SplitMix64::stream(seed, 0x5A3);
    let mut pairs: Vec<(u32, u32)> = (0..n_users as u32)
        .flat_map(|u| positives.of(u).iter().map(move |&i| (u, i)))
        .collect();
    let per_batch = (params.batch_size / (1 + params.negatives)).max(1);
    let mut examples: Vec<(u32, u32, f32)> = Vec::new();

    ctx.progress.begin("ncf", params.epochs as u64);
    for epoch in 0..params.epochs {
        rng.shuffle(&mut pairs);
        let mut loss = 0.0;
        let mut count = 0usize;
        for (b, batch) in pairs.chunks(per_batch).enumerate() {
            if b % 64 == 0 {
                ctx.cancel.check()?;
            }
            examples.clear();
            for &(u, i) in batch {
                examples.push((u, i, 1.0));
                for _ in 0..params.negatives {
                    if let Some(j) = sampler.sample(&mut rng, positives.of(u)) {
                        examples.push((u, j, 0.0));
                    }
                }
            }
            let scale = 1.0 / examples.len() as f32;
            let chunk = examples.len().div_ceil(threads);
            let net_ref = &net;
            let work = |(g, part): (&mut Grads, &[(u32, u32, f32)])| {
                g.accumulate(net_ref, part, scale);
            };
            if threads == 1 {
                work((&mut grads[0], &examples));
            } else {
                grads
                    .par_iter_mut()
                    .zip(examples.par_chunks(chunk))
                    .for_each(work);
            }
            adam.apply(&mut net, &mut grads);
            count += examples.len();
        }
        for g in grads.iter_mut() {
            loss += g.loss;
            g.loss = 0.0;
        }
        ctx.progress.advance(1);
        ctx.progress.epoch(epoch, loss / count.max(1) as f64, None);
    }
    ctx.progress.finish();
    Ok(net)
}

impl Algorithm for Ncf {
    fn name(&self) -> &'static str {
        "ncf"
    }

    fn params(&self) -> serde_json::Value {
        serde_json::to_value(&self.params).unwrap_or_default()
    }

    fn fit(&self, data: &TrainSet, ctx: &FitContext) -> Result<Box<dyn Model>> {
        let net = train(data, &self.params, ctx)?;
        Ok(Box::new(NcfModel::new(
            net,
            self.params.clone(),
            Fitted::from_train(data),
        )))
    }
}

/// A fitted NeuMF model.
#[derive(Debug, Clone)]
pub struct NcfModel {
    net: Net,
    /// First-layer pre-activations of every item's half of the MLP input (`n_items × sizes[1]`),
    /// derived from the parameters; empty without hidden layers.
    item_projection: Vec<f32>,
    pub params: NcfParams,
    fitted: Fitted,
}

impl NcfModel {
    fn new(net: Net, params: NcfParams, fitted: Fitted) -> Self {
        let sh = &net.shape;
        let mut item_projection = Vec::new();
        if let Some(&(w, _)) = sh.layer_offsets.first() {
            let (g, half, n_in) = (sh.gmf, sh.half(), sh.sizes[0]);
            let n_items = net.items.len() / sh.embedding();
            item_projection.reserve(n_items * sh.sizes[1]);
            for i in 0..n_items {
                let q = &net.item_row(i)[g..g + half];
                for o in 0..sh.sizes[1] {
                    let row = w + o * n_in + half..w + (o + 1) * n_in;
                    item_projection.push(dot(&net.dense[row], q));
                }
            }
        }
        Self {
            net,
            item_projection,
            params,
            fitted,
        }
    }

    /// Loads a model saved by [`Model::save`].
    pub fn load(params: serde_json::Value, fitted: Fitted, tensors: &TensorReader) -> Result<Self> {
        let params: NcfParams = serde_json::from_value(params)
            .map_err(|e| Error::InvalidInput(format!("ncf parameters: {e}")))?;
        params.validate()?;
        let shape = Shape::new(params.factors, &params.layers.0);
        let e = shape.embedding();
        let net = Net {
            users: tensors.f32_len("user_embeddings", fitted.users.len() * e)?,
            items: tensors.f32_len("item_embeddings", fitted.items.len() * e)?,
            dense: tensors.f32_len("dense", shape.len)?,
            shape,
        };
        Ok(Self::new(net, params, fitted))
    }

    /// Logits of `items` for one user embedding row.
    fn logits(&self, user: &[f32], items: &[ItemIdx], out: &mut [f32]) {
        let sh = &self.net.shape;
        let (g, half) = (sh.gmf, sh.half());
        let h = &self.net.dense[sh.out_offset..sh.out_bias];
        let out_bias = self.net.dense[sh.out_bias];
        let mut scratch = Scratch::new(sh);
        // The user's half of the first layer, with its bias, once for all items.
        let user_projection: Vec<f32> = match sh.layer_offsets.first() {
            Some(&(w, b)) => (0..sh.sizes[1])
                .map(|o| {
                    let row = w + o * sh.sizes[0]..w + o * sh.sizes[0] + half;
                    self.net.dense[b + o] + dot(&self.net.dense[row], &user[g..g + half])
                })
                .collect(),
            None => Vec::new(),
        };
        for (o, &item) in out.iter_mut().zip(items) {
            if !self.fitted.knows_item(item) {
                *o = f32::NEG_INFINITY;
                continue;
            }
            let i = item as usize;
            let q = self.net.item_row(i);
            for ((x, &p), &qk) in scratch.gmf.iter_mut().zip(&user[..g]).zip(&q[..g]) {
                *x = p * qk;
            }
            if sh.layer_offsets.is_empty() {
                scratch.acts[0][..half].copy_from_slice(&user[g..g + half]);
                scratch.acts[0][half..].copy_from_slice(&q[g..g + half]);
            } else {
                let width = sh.sizes[1];
                let projected = &self.item_projection[i * width..(i + 1) * width];
                for ((a, &up), &ip) in scratch.acts[1]
                    .iter_mut()
                    .zip(&user_projection)
                    .zip(projected)
                {
                    *a = (up + ip).max(0.0);
                }
                for (l, &(w, b)) in sh.layer_offsets.iter().enumerate().skip(1) {
                    let (before, after) = scratch.acts.split_at_mut(l + 1);
                    let n_in = sh.sizes[l];
                    for (k, a) in after[0].iter_mut().enumerate() {
                        let z = self.net.dense[b + k]
                            + dot(
                                &self.net.dense[w + k * n_in..w + (k + 1) * n_in],
                                &before[l],
                            );
                        *a = z.max(0.0);
                    }
                }
            }
            *o = dot(&h[..g], &scratch.gmf)
                + dot(&h[g..], &scratch.acts[sh.sizes.len() - 1])
                + out_bias;
        }
    }
}

impl Model for NcfModel {
    fn name(&self) -> &'static str {
        "ncf"
    }

    fn params(&self) -> serde_json::Value {
        serde_json::to_value(&self.params).unwrap_or_default()
    }

    fn fitted(&self) -> &Fitted {
        &self.fitted
    }

    fn score(&self, query: &UserQuery<'_>, items: &[ItemIdx], out: &mut [f32]) {
        let unknown = vec![0f32; self.net.shape.embedding()];
        let user = match query.user.filter(|&u| self.fitted.knows_user(u)) {
            Some(u) => self.net.user_row(u as usize),
            None => &unknown,
        };
        self.logits(user, items, out);
    }

    fn item_embeddings(&self) -> Option<(usize, &[f32])> {
        Some((self.net.shape.embedding(), &self.net.items))
    }

    fn user_embeddings(&self) -> Option<(usize, &[f32])> {
        Some((self.net.shape.embedding(), &self.net.users))
    }

    fn save(&self, dir: &Path) -> Result<()> {
        let e = self.net.shape.embedding();
        let mut t = TensorWriter::new();
        t.f32(
            "user_embeddings",
            &[self.net.users.len() / e, e],
            &self.net.users,
        )
        .f32(
            "item_embeddings",
            &[self.net.items.len() / e, e],
            &self.net.items,
        )
        .f32("dense", &[self.net.dense.len()], &self.net.dense);
        self.fitted.save(dir, "ncf", Model::params(self), t)
    }
}

/// The `ncf` family's entry in the model registry.
pub struct NcfFamily;

impl ModelFamily for NcfFamily {
    fn name(&self) -> &'static str {
        "ncf"
    }

    fn task(&self) -> Task {
        Task::Ranking
    }

    fn summary(&self) -> &'static str {
        "Neural Collaborative Filtering, NeuMF = GMF + MLP (He et al. 2017), BCE with sampled negatives, Adam"
    }

    fn params(&self) -> Vec<ParamInfo> {
        param_infos::<NcfParams>(&[
            ("factors", None, "GMF embedding width"),
            ("layers", None, "MLP sizes joined by '-': input width (half user, half item embedding), then hidden ReLU layers"),
            ("epochs", None, "passes over the training pairs"),
            ("lr", None, "Adam step size"),
            ("reg", None, "L2 regularisation of the parameters each batch touches"),
            ("negatives", None, "uniformly sampled negatives per training pair and epoch"),
            ("batch_size", None, "examples (positives with their negatives) per Adam step, about"),
            ("seed", Some("fit seed (42)"), "seed of initialisation, shuffling and sampling; results depend on seed and thread count"),
        ])
    }

    fn build(&self, spec: &ModelSpec) -> Result<Box<dyn Algorithm>> {
        Ok(Box::new(Ncf {
            params: spec.typed()?,
        }))
    }

    fn load(&self, saved: Saved<'_>) -> Result<Box<dyn Model>> {
        saved.load_with(NcfModel::load)
    }

    fn search_space(&self) -> Option<Space> {
        Some(Space {
            family: "ncf",
            params: vec![
                Param::int("factors", 8, 64, true, 16),
                Param::int("epochs", 5, 40, false, 20),
                Param::float("lr", 0.0003, 0.01, true, 0.001),
                Param::int("negatives", 1, 10, false, 4),
            ],
            fidelity: Some("epochs"),
            fixed: Vec::new(),
        })
    }

    fn cost(&self) -> Cost {
        Cost::High
    }

    /// Each epoch trains an MLP on every positive and its sampled negatives: about 55 s for
    /// 370,000 interactions at the defaults on two cores (ML-1M's validation training rows).
    fn estimate(&self, shape: &DataShape) -> Estimate {
        Estimate {
            seconds: 1.5e-4 * shape.interactions as f64,
            ..Estimate::from_class(Cost::High, shape)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::implicit::bpr::test_support::{hit_rate, planted};
    use crate::rating::svd::test_support::{ctx_with, Epochs};
    use std::sync::Arc;

    fn tiny_net(seed: u64) -> Net {
        let shape = Shape::new(3, &[4, 3, 2]);
        let mut rng = SplitMix64::new(seed);
        let mut net = Net::init(shape, 2, 3, &mut rng);
        // Embeddings far from zero so that no ReLU sits within the finite-difference step of its kink.
        for v in net.users.iter_mut().chain(net.items.iter_mut()) {
            *v = (rng.normal() * 0.8) as f32;
        }
        net
    }

    /// Parameter `index` of the user table (0), item table (1) or dense vector (2).
    fn param(net: &mut Net, which: usize, index: usize) -> &mut f32 {
        match which {
            0 => &mut net.users[index],
            1 => &mut net.items[index],
            _ => &mut net.dense[index],
        }
    }

    /// Loss of one example, in f64 from the f32 logit.
    fn example_loss(net: &Net, u: usize, i: usize, y: f32) -> f64 {
        let mut s = Scratch::new(&net.shape);
        bce(net.forward(net.user_row(u), net.item_row(i), &mut s), y).0
    }

    #[test]
    fn gradients_match_finite_differences() {
        let mut checked = 0;
        for seed in 0..4 {
            let net = tiny_net(seed);
            for (u, i, y) in [(0usize, 1usize, 1.0f32), (1, 2, 0.0), (1, 0, 1.0)] {
                let e = net.shape.embedding();
                let mut s = Scratch::new(&net.shape);
                let mut dense = vec![0f32; net.dense.len()];
                let (mut du, mut di) = (vec![0f32; e], vec![0f32; e]);
                let logit = net.forward(net.user_row(u), net.item_row(i), &mut s);
                let dlogit = bce(logit, y).1;
                // A ReLU within the step of its kink makes the finite difference meaningless.
                let near_kink = s.acts[1..].iter().flatten().any(|&a| a > 0.0 && a < 0.02);
                if near_kink {
                    continue;
                }
                net.backward(
                    dlogit,
                    net.user_row(u),
                    net.item_row(i),
                    &mut s,
                    GradOut {
                        dense: &mut dense,
                        user: &mut du,
                        item: &mut di,
                    },
                );
                let h = 1e-3f32;
                let offset = |which: usize| match which {
                    0 => u * e,
                    1 => i * e,
                    _ => 0,
                };
                let numeric = |which: usize, k: usize| {
                    let (mut plus, mut minus) = (net.clone(), net.clone());
                    *param(&mut plus, which, offset(which) + k) += h;
                    *param(&mut minus, which, offset(which) + k) -= h;
                    (example_loss(&plus, u, i, y) - example_loss(&minus, u, i, y))
                        / (2.0 * h as f64)
                };
                let analytic = [(0usize, du.clone()), (1, di.clone()), (2, dense.clone())];
                for (which, grad) in analytic {
                    for (k, &a) in grad.iter().enumerate() {
                        let n = numeric(which, k);
                        assert!(
                            (a as f64 - n).abs() <= 2e-3 + 2e-2 * n.abs(),
                            "seed {seed} example ({u},{i},{y}) param {which}/{k}: analytic {a} numeric {n}"
                        );
                        checked += 1;
                    }
                }
            }
        }
        assert!(checked > 200, "only {checked} derivatives checked");
    }

    #[test]
    fn scoring_shortcut_matches_the_forward_pass() {
        let (data, _) = planted(40, 30, 2, 6, 2);
        for layers in [vec![8], vec![8, 6], vec![8, 6, 3]] {
            let params = NcfParams {
                factors: 4,
                layers: Layers(layers),
                epochs: 2,
                ..Default::default()
            };
            let net = train(&data, &params, &ctx_with(5, 2, Arc::default())).unwrap();
            let model = NcfModel::new(net, params, Fitted::from_train(&data));
            let items: Vec<u32> = (0..data.n_items() as u32).collect();
            let mut fast = vec![0f32; items.len()];
            model.score(&UserQuery::known(3), &items, &mut fast);
            let mut s = Scratch::new(&model.net.shape);
            for &i in &items {
                let (user, item) = (model.net.user_row(3), model.net.item_row(i as usize));
                let slow = model.net.forward(user, item, &mut s);
                assert!(
                    (slow - fast[i as usize]).abs() < 1e-5,
                    "{slow} vs {}",
                    fast[i as usize]
                );
            }
        }
    }

    #[test]
    fn beats_popularity_on_planted_structure() {
        let (data, held_out) = planted(400, 200, 4, 20, 11);
        let ctx = ctx_with(42, 2, Arc::default());
        let pop = crate::simple::popularity::Popularity::default()
            .fit(&data, &ctx)
            .unwrap();
        let ncf = Ncf {
            params: NcfParams {
                factors: 8,
                layers: Layers(vec![16, 8]),
                epochs: 15,
                lr: 0.01,
                ..Default::default()
            },
        }
        .fit(&data, &ctx)
        .unwrap();
        let (p, n) = (
            hit_rate(pop.as_ref(), &held_out, 10),
            hit_rate(ncf.as_ref(), &held_out, 10),
        );
        // Measured hit rates at 10: ncf 0.3000, popularity 0.0625.
        assert!(n > p * 3.0, "ncf {n:.4} popularity {p:.4}");
    }

    #[test]
    fn loss_falls_and_training_is_deterministic() {
        let (data, _) = planted(100, 60, 3, 8, 4);
        let params = NcfParams {
            factors: 4,
            layers: Layers(vec![8, 4]),
            epochs: 4,
            lr: 0.01,
            ..Default::default()
        };
        let epochs = Arc::new(Epochs::default());
        let a = train(&data, &params, &ctx_with(3, 2, Arc::clone(&epochs))).unwrap();
        let log = epochs.0.lock().unwrap().clone();
        assert_eq!(log.len(), 4);
        // Untrained, every logit is about 0: BCE ln 2.
        assert!((log[0].1 - std::f64::consts::LN_2).abs() < 0.1, "{log:?}");
        assert!(log[3].1 < log[0].1 - 0.05, "{log:?}");
        assert_eq!(
            a,
            train(&data, &params, &ctx_with(3, 2, Arc::default())).unwrap()
        );
        assert_eq!(
            train(&data, &params, &ctx_with(3, 1, Arc::default())).unwrap(),
            train(&data, &params, &ctx_with(3, 1, Arc::default())).unwrap()
        );
        assert_ne!(
            a,
            train(&data, &params, &ctx_with(4, 2, Arc::default())).unwrap()
        );
    }

    #[test]
    fn save_load_roundtrip_is_bit_identical() {
        let (data, _) = planted(50, 30, 2, 6, 8);
        let model = Ncf {
            params: NcfParams {
                factors: 4,
                layers: Layers(vec![6, 5, 3]),
                epochs: 2,
                ..Default::default()
            },
        }
        .fit(&data, &FitContext::default())
        .unwrap();
        let dir = std::env::temp_dir().join(format!("kindred-ncf-{}", std::process::id()));
        model.save(&dir).unwrap();
        let loaded = crate::registry::load_model(&dir).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(loaded.name(), "ncf");
        assert_eq!(loaded.params(), model.params());
        let n = data.n_items();
        let history = [1u32, 2];
        for query in [
            UserQuery::known(0),
            UserQuery::known(7),
            UserQuery::anonymous(&history),
        ] {
            let (mut a, mut b) = (vec![0f32; n], vec![0f32; n]);
            model.score_all(&query, &mut a);
            loaded.score_all(&query, &mut b);
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&a), bits(&b));
        }
        assert_eq!(loaded.item_embeddings().unwrap().0, 4 + 3);
    }

    #[test]
    fn rejects_bad_params_and_honours_cancel() {
        let (data, _) = planted(20, 10, 2, 3, 1);
        for bad in [
            "ncf:factors=0",
            "ncf:layers=7-4",
            "ncf:layers=8-0",
            "ncf:epochs=0",
            "ncf:lr=0",
            "ncf:reg=-1",
            "ncf:negatives=0",
            "ncf:batch_size=0",
        ] {
            let algo = crate::registry::build_algorithm(bad).unwrap();
            let err = algo.fit(&data, &FitContext::default()).err();
            assert!(
                err.as_ref().is_some_and(|e| e.to_string().contains("ncf")),
                "{bad}: {err:?}"
            );
        }
        for bad in ["ncf:layers=a-b", "ncf:layer=8", "ncf:layers=8-x"] {
            assert!(crate::registry::build_algorithm(bad).is_err(), "{bad}");
        }
        let ok = crate::registry::build_algorithm("ncf:layers=32-16-8").unwrap();
        assert_eq!(ok.params()["layers"], "32-16-8");
        assert!(crate::registry::build_algorithm("ncf:layers=8").is_ok());
        let ctx = FitContext::default();
        ctx.cancel.cancel();
        let err = Ncf::default().fit(&data, &ctx).err().map(|e| e.to_string());
        assert_eq!(err, Some(Error::Cancelled.to_string()));
    }
}
