//! `sasrec`: a sequence model that reads each user's items in the order they happened and scores
//! the next one ([`crate::sequence::sasrec_net`]). Every position of a training sequence predicts
//! its next item, under one of three losses (`loss`):
//! - `gbce`, as gSASRec trains it (Petrov and Macdonald, "gSASRec: Reducing Overconfidence in
//!   Sequential Recommendation Trained with Negative Sampling", 2023): against `negatives` items
//!   drawn uniformly per batch (shared by its positions, so one matrix product scores them all),
//!   the generalised binary cross-entropy
//!   `-(beta * ln sigmoid(s+) + sum ln sigmoid(-s-))`, `beta = alpha * (t * (1 - 1/alpha) + 1/alpha)`,
//!   `alpha = negatives / (items - 1)`, which undoes the overconfidence that sampled negatives
//!   teach (`t = 0` is plain BCE, `t = 1` calibrated);
//! - `softmax`: the cross-entropy of the next item's softmax over itself and the same shared
//!   negatives (sampled softmax);
//! - `full`: the cross-entropy of the softmax over the whole catalog.
//!
//! With negatives shared by a batch, gBCE pushes down only the few hundred items drawn for it,
//! and Adam moves each of them a full step: on MovieLens 1M its validation NDCG@10 stayed near
//! zero for eight epochs and was 0.011 after twelve, where the catalog softmax, which a shift of
//! every score leaves unchanged, reached 0.12 in eight (BENCHMARKS.md, "Sequence model").
//!
//! Early stopping on validation carved from the training rows: the latest item of up to
//! `validation_users` users (drawn from the seed) is held out of their training sequence; after
//! each epoch those users' held-out items are ranked among all items (their other items
//! excluded), and training stops once NDCG@10 has not improved for `patience` epochs, keeping the
//! best epoch's weights.
//!
//! Serving: a known user is scored from their training sequence followed by the query's items
//! (real-time feedback), an anonymous session from the query's items alone; the latest
//! `max_len` items count.

use std::path::Path;
use std::sync::Arc;

use candle_core::backprop::GradStore;
use candle_core::Tensor;
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use kindred_core::kernels::dot;
use kindred_core::{Error, FitContext, ItemIdx, Result, SplitMix64, TrainSet};
use kindred_models::family::param_infos;
use kindred_models::persist::{TensorReader, TensorWriter};
use kindred_models::{
    Algorithm, Applicability, Cost, Fitted, Model, ModelFamily, ModelSpec, ParamInfo, Saved, Task,
    UserQuery,
};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::sequence::catalog_softmax::CatalogSoftmax;
use crate::sequence::fused_ops::{log_sigmoid, softmax_cross_entropy, SampledColumns};
use crate::sequence::sasrec_net::{Dropout, NetShape, SasRecNet};
use crate::sequence::sequences::Sequences;

/// The training loss of each position, over its next item and the batch's negatives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SequenceLoss {
    /// gSASRec's generalised binary cross-entropy (`gbce_t` sets its calibration).
    Gbce,
    /// Cross-entropy of the next item's softmax over itself and the negatives (sampled
    /// softmax, as eSASRec); a negative that is the position's own next item is left out.
    Softmax,
    /// Cross-entropy of the next item's softmax over the whole catalog (no negatives drawn):
    /// the default, the fastest to learn; its step costs grow with the catalog, where
    /// `softmax` does not.
    #[default]
    Full,
}

/// Hyperparameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SasRecParams {
    /// Embedding and hidden width.
    pub dim: usize,
    /// Self-attention blocks.
    pub blocks: usize,
    /// Attention heads per block (`dim` must be a multiple).
    pub heads: usize,
    /// Latest items of a sequence the model reads.
    pub max_len: usize,
    pub dropout: f32,
    /// Adam learning rate.
    pub learning_rate: f64,
    /// Sequences per optimisation step.
    pub batch_size: usize,
    /// Negatives per batch (`gbce` and `softmax`).
    pub negatives: usize,
    /// What each position's score of its next item is trained against.
    pub loss: SequenceLoss,
    /// gBCE calibration `t` in [0, 1].
    pub gbce_t: f64,
    /// Most passes over the training sequences.
    pub epochs: usize,
    /// Epochs without a better validation NDCG@10 before stopping (0: no validation, train all
    /// `epochs`).
    pub patience: usize,
    /// Users whose latest training item is held out for validation.
    pub validation_users: usize,
    /// Seed of the weights, batches, negatives and dropout; `None` uses the fit seed.
    pub seed: Option<u64>,
}

impl Default for SasRecParams {
    fn default() -> Self {
        Self {
            dim: 64,
            blocks: 2,
            heads: 1,
            max_len: 200,
            dropout: 0.2,
            learning_rate: 1e-3,
            batch_size: 128,
            negatives: 256,
            loss: SequenceLoss::Full,
            gbce_t: 0.75,
            epochs: 200,
            patience: 10,
            validation_users: 512,
            seed: None,
        }
    }
}

impl SasRecParams {
    fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidInput(format!("sasrec: {m}")));
        for (name, value) in [
            ("dim", self.dim),
            ("blocks", self.blocks),
            ("heads", self.heads),
            ("max_len", self.max_len),
            ("batch_size", self.batch_size),
            ("negatives", self.negatives),
            ("epochs", self.epochs),
        ] {
            if value == 0 {
                return bad(format!("{name} must be at least 1"));
            }
        }
        // Bounds keep a spec sent to the server from asking for memory it does not have: the
        // causal mask alone holds max_len^2 numbers, a batch's attention batch * max_len^2.
        for (name, value, most) in [
            ("dim", self.dim, 1024),
            ("blocks", self.blocks, 16),
            ("max_len", self.max_len, 1000),
            ("batch_size", self.batch_size, 4096),
            ("negatives", self.negatives, 100_000),
        ] {
            if value > most {
                return bad(format!("{name} must be at most {most}, got {value}"));
            }
        }
        if !self.dim.is_multiple_of(self.heads) {
            return bad(format!(
                "dim ({}) must be a multiple of heads ({})",
                self.dim, self.heads
            ));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return bad(format!("dropout must be in [0, 1), got {}", self.dropout));
        }
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return bad(format!(
                "learning_rate must be positive, got {}",
                self.learning_rate
            ));
        }
        if !(0.0..=1.0).contains(&self.gbce_t) {
            return bad(format!("gbce_t must be in [0, 1], got {}", self.gbce_t));
        }
        Ok(())
    }
}

/// The `sasrec` algorithm.
#[derive(Debug, Clone, Default)]
pub struct SasRec {
    pub params: SasRecParams,
}

fn candle(e: candle_core::Error) -> Error {
    Error::InvalidInput(format!("sasrec: tensor operation failed: {e}"))
}

/// Embedding rows (item + 1) of the latest `out.len()` items of `items`, left-padded with 0.
fn window(items: &[ItemIdx], out: &mut [u32]) {
    out.fill(0);
    let take = &items[items.len().saturating_sub(out.len())..];
    let start = out.len() - take.len();
    for (o, &i) in out[start..].iter_mut().zip(take) {
        *o = i + 1;
    }
}

/// `users` cut into batches of at most `size` whose sequences (`len_of`) are of similar length,
/// so that little is padded: runs of `size * 16` users sorted by length, then cut.
fn length_batches(users: &[u32], size: usize, len_of: impl Fn(u32) -> usize) -> Vec<Vec<u32>> {
    let mut out = Vec::with_capacity(users.len().div_ceil(size));
    for run in users.chunks(size * 16) {
        let mut run = run.to_vec();
        run.sort_by_key(|&u| len_of(u));
        out.extend(run.chunks(size).map(<[u32]>::to_vec));
    }
    out
}

impl Algorithm for SasRec {
    fn name(&self) -> &'static str {
        "sasrec"
    }

    fn params(&self) -> serde_json::Value {
        serde_json::to_value(&self.params).unwrap_or_default()
    }

    fn fit(&self, data: &TrainSet, ctx: &FitContext) -> Result<Box<dyn Model>> {
        let p = &self.params;
        p.validate()?;
        let n_items = data.n_items();
        if n_items < 2 {
            return Err(Error::InvalidInput(
                "sasrec needs at least two items".into(),
            ));
        }
        let sequences = Sequences::from_train(data);
        let mut rng = SplitMix64::new(p.seed.unwrap_or(ctx.seed));
        // Validation: the latest item of some users with at least three.
        let mut eligible: Vec<u32> = (0..sequences.n_users() as u32)
            .filter(|&u| sequences.of(u).len() >= 3)
            .collect();
        rng.shuffle(&mut eligible);
        let n_validation = if p.patience == 0 {
            0
        } else {
            p.validation_users.min(eligible.len())
        };
        let mut held_out = vec![false; sequences.n_users()];
        for &u in &eligible[..n_validation] {
            held_out[u as usize] = true;
        }
        let validation: Vec<u32> = eligible[..n_validation].to_vec();
        let training_part = |u: u32| -> &[ItemIdx] {
            let s = sequences.of(u);
            if held_out[u as usize] {
                &s[..s.len() - 1]
            } else {
                s
            }
        };
        let mut users: Vec<u32> = (0..sequences.n_users() as u32)
            .filter(|&u| training_part(u).len() >= 2)
            .collect();
        if users.is_empty() {
            return Err(Error::InvalidInput(
                "sasrec needs users with at least two training interactions".into(),
            ));
        }
        let shape = NetShape {
            n_items,
            dim: p.dim,
            max_len: p.max_len,
            blocks: p.blocks,
            heads: p.heads,
        };
        let net = SasRecNet::new(shape, rng.next_u64())?;
        let vars = net
            .named_vars()
            .into_iter()
            .map(|(_, v)| v.clone())
            .collect();
        let mut optimiser = AdamW::new(
            vars,
            ParamsAdamW {
                lr: p.learning_rate,
                weight_decay: 0.0,
                ..ParamsAdamW::default()
            },
        )
        .map_err(candle)?;
        let loss = match p.loss {
            SequenceLoss::Gbce => {
                let alpha = p.negatives as f64 / (n_items - 1) as f64;
                Loss::Gbce {
                    beta: alpha * (p.gbce_t * (1.0 - 1.0 / alpha) + 1.0 / alpha),
                }
            }
            SequenceLoss::Softmax => Loss::Softmax,
            SequenceLoss::Full => Loss::Full,
        };
        let mut best: Option<(f64, Vec<(String, Tensor)>)> = None;
        let mut since_best = 0;
        let batches = users.len().div_ceil(p.batch_size);
        // One bar over every batch of every epoch; each epoch's loss and validation NDCG become
        // its message.
        ctx.progress.begin("sasrec", (batches * p.epochs) as u64);
        for epoch in 0..p.epochs {
            rng.shuffle(&mut users);
            let mut batched = length_batches(&users, p.batch_size, |u| training_part(u).len());
            rng.shuffle(&mut batched);
            let mut loss_sum = 0.0;
            for batch in &batched {
                ctx.cancel.check()?;
                // Drawn under every loss (`full` reads none), so that a seed's batches and dropout
                // masks do not depend on the loss.
                let negatives: Vec<u32> = (0..p.negatives)
                    .map(|_| rng.below(n_items as u64) as u32 + 1)
                    .collect();
                let (grads, batch_loss) =
                    batch_gradients(&net, batch, &training_part, &negatives, &loss, p, &mut rng)?;
                optimiser.step(&grads).map_err(candle)?;
                loss_sum += batch_loss;
                ctx.progress.advance(1);
            }
            let mean_loss = loss_sum / batches as f64;
            if validation.is_empty() {
                ctx.progress.epoch(epoch, mean_loss, None);
                continue;
            }
            let ndcg = validation_ndcg(&net, &sequences, &validation, n_items)?;
            ctx.progress.epoch(epoch, mean_loss, Some(ndcg));
            if best.as_ref().is_none_or(|(b, _)| ndcg > *b) {
                best = Some((ndcg, net.snapshot()?));
                since_best = 0;
            } else {
                since_best += 1;
                if since_best >= p.patience {
                    break;
                }
            }
        }
        ctx.progress.finish();
        if let Some((_, weights)) = &best {
            net.set_all(weights)?;
        }
        Ok(Box::new(SasRecModel::new(
            p.clone(),
            net,
            sequences,
            Fitted::from_train(data),
        )?))
    }
}

/// Sequences per shard of a batch. candle runs most operations on one thread, so the shards'
/// forward and backward passes run side by side on the thread pool; their losses are weighted by
/// their share of the batch's positions, so the summed gradients are the whole batch's. The
/// split depends on the batch alone, never on the number of threads, so a fit is the same on any
/// machine.
const SHARD_SEQUENCES: usize = 32;

/// The gradient of one batch's mean loss with respect to every parameter, and that loss. Draws
/// one dropout seed per shard from `rng`.
fn batch_gradients<'s>(
    net: &SasRecNet,
    batch: &[u32],
    training_part: &(dyn Fn(u32) -> &'s [ItemIdx] + Sync),
    negatives: &[u32],
    loss: &Loss,
    p: &SasRecParams,
    rng: &mut SplitMix64,
) -> Result<(GradStore, f64)> {
    let shards = batch.len().div_ceil(SHARD_SEQUENCES);
    // Rows s, s + shards, ...: each shard holds sequences of every length the batch has, so the
    // shards take about equal time.
    let shard_rows: Vec<Vec<u32>> = (0..shards)
        .map(|s| batch.iter().skip(s).step_by(shards).copied().collect())
        .collect();
    // Positions with a next item: a sequence of n training items has min(n - 1, max_len).
    let positions = |rows: &[u32]| -> usize {
        rows.iter()
            .map(|&u| (training_part(u).len() - 1).min(p.max_len))
            .sum()
    };
    let total = positions(batch).max(1) as f64;
    let seeds: Vec<u64> = (0..shards).map(|_| rng.next_u64()).collect();
    let results: Vec<Result<(GradStore, f64)>> = shard_rows
        .par_iter()
        .zip(&seeds)
        .map(|(rows, &seed)| {
            let b = rows.len();
            let len = rows
                .iter()
                .map(|&u| training_part(u).len() - 1)
                .max()
                .unwrap_or(1)
                .min(p.max_len);
            let mut inputs = vec![0u32; b * len];
            let mut targets = vec![0u32; b * len];
            for (row, &u) in rows.iter().enumerate() {
                let s = training_part(u);
                let span = row * len..(row + 1) * len;
                window(&s[..s.len() - 1], &mut inputs[span.clone()]);
                window(&s[1..], &mut targets[span]);
            }
            let mut shard_rng = SplitMix64::new(seed);
            let hidden = net.forward(
                &inputs,
                b,
                Some(Dropout {
                    rate: p.dropout,
                    rng: &mut shard_rng,
                }),
            )?;
            let share = positions(rows) as f64 / total;
            let (objective, shard_loss) =
                step_loss(net, &hidden, targets, negatives.to_vec(), loss, p.dim)
                    .map_err(candle)?;
            let grads = (objective * share)
                .and_then(|weighted| weighted.backward())
                .map_err(candle)?;
            Ok((grads, shard_loss * share))
        })
        .collect();
    let mut results = results.into_iter();
    let Some(first) = results.next() else {
        return Err(Error::InvalidInput("sasrec: an empty batch".into()));
    };
    let (mut grads, mut batch_loss) = first?;
    for result in results {
        let (shard, shard_loss) = result?;
        batch_loss += shard_loss;
        for (_, var) in net.named_vars() {
            let Some(g) = shard.get(var.as_tensor()) else {
                continue;
            };
            let sum = match grads.get(var.as_tensor()) {
                Some(acc) => (acc + g).map_err(candle)?,
                None => g.clone(),
            };
            grads.insert(var.as_tensor(), sum);
        }
    }
    Ok((grads, batch_loss))
}

/// The tensor whose gradient trains the network, and the batch's mean loss over the positions
/// that have a next item (`targets` 0 marks padding).
fn step_loss(
    net: &SasRecNet,
    hidden: &Tensor,
    targets: Vec<u32>,
    negatives: Vec<u32>,
    loss: &Loss,
    dim: usize,
) -> candle_core::Result<(Tensor, f64)> {
    let device = hidden.device();
    let rows = targets.len();
    let h = hidden.reshape((rows, dim))?;
    let table = net.item_table();
    let beta = match *loss {
        Loss::Full => {
            let items = table.narrow(0, 1, table.dim(0)? - 1)?;
            let catalog = CatalogSoftmax::compute(&h, &items, &targets)?;
            return Ok((catalog.surrogate(&h, &items)?, catalog.loss));
        }
        Loss::Gbce { beta } => Some(beta),
        Loss::Softmax => None,
    };
    let target_ids = Tensor::from_slice(&targets, rows, device)?;
    let positive = (h.clone() * table.index_select(&target_ids, 0)?)?.sum(1)?;
    let negative_ids = Tensor::from_slice(&negatives, negatives.len(), device)?;
    let negative = h.matmul(&table.index_select(&negative_ids, 0)?.t()?)?;
    let count = targets.iter().filter(|&&t| t != 0).count().max(1) as f64;
    let per_position = match beta {
        Some(beta) => {
            let present: Vec<f32> = targets
                .iter()
                .map(|&t| f32::from(u8::from(t != 0)))
                .collect();
            let present = Tensor::from_vec(present, rows, device)?;
            (((log_sigmoid(&positive)? * beta)? + log_sigmoid(&negative.neg()?)?.sum(1)?)?
                .neg()?
                * present)?
        }
        None => {
            let logits = Tensor::cat(&[positive.unsqueeze(1)?, negative], 1)?;
            let columns = SampledColumns {
                targets: Arc::new(targets),
                negatives: Arc::new(negatives),
            };
            softmax_cross_entropy(&logits, columns)?
        }
    };
    let mean = (per_position.sum_all()? / count)?;
    let value = f64::from(mean.to_scalar::<f32>()?);
    Ok((mean, value))
}

/// The training loss with its constants.
enum Loss {
    Gbce { beta: f64 },
    Softmax,
    Full,
}

/// NDCG@10 of the held-out items of `users`, ranked among all items minus the user's others.
fn validation_ndcg(
    net: &SasRecNet,
    sequences: &Sequences,
    users: &[u32],
    n_items: usize,
) -> Result<f64> {
    let shape = net.shape();
    let (l, d) = (shape.max_len, shape.dim);
    let table = item_matrix(net)?;
    let batches = length_batches(users, 128, |u| sequences.of(u).len());
    let per_batch = batches
        .par_iter()
        .map(|batch| -> Result<f64> {
            let len = batch
                .iter()
                .map(|&u| sequences.of(u).len() - 1)
                .max()
                .unwrap_or(1)
                .min(l);
            let mut ids = vec![0u32; batch.len() * len];
            for (row, &u) in batch.iter().enumerate() {
                let s = sequences.of(u);
                window(&s[..s.len() - 1], &mut ids[row * len..(row + 1) * len]);
            }
            let last = last_states(net, &ids, batch.len())?;
            let mut total = 0.0;
            for (row, &u) in batch.iter().enumerate() {
                let s = sequences.of(u);
                let (history, target) = (&s[..s.len() - 1], s[s.len() - 1] as usize);
                let h = &last[row * d..(row + 1) * d];
                let target_score = dot(h, &table[target * d..(target + 1) * d]);
                let mut seen = history.to_vec();
                seen.sort_unstable();
                let better = (0..n_items)
                    .filter(|&i| i != target && seen.binary_search(&(i as u32)).is_err())
                    .filter(|&i| dot(h, &table[i * d..(i + 1) * d]) > target_score)
                    .take(10)
                    .count();
                if better < 10 {
                    total += 1.0 / ((better + 2) as f64).log2();
                }
            }
            Ok(total)
        })
        .collect::<Result<Vec<f64>>>()?;
    Ok(per_batch.iter().sum::<f64>() / users.len() as f64)
}

/// The item embeddings without the padding row, row-major (n_items, dim).
fn item_matrix(net: &SasRecNet) -> Result<Vec<f32>> {
    let shape = net.shape();
    net.item_table()
        .narrow(0, 1, shape.n_items)
        .and_then(|t| t.flatten_all())
        .and_then(|t| t.to_vec1::<f32>())
        .map_err(candle)
}

/// The hidden state at the last position of each sequence, row-major (batch, dim).
fn last_states(net: &SasRecNet, ids: &[u32], batch: usize) -> Result<Vec<f32>> {
    let len = ids.len() / batch.max(1);
    net.forward(ids, batch, None)?
        .narrow(1, len.saturating_sub(1), 1)
        .and_then(|t| t.flatten_all())
        .and_then(|t| t.to_vec1::<f32>())
        .map_err(candle)
}

/// A fitted `sasrec` model.
pub struct SasRecModel {
    pub params: SasRecParams,
    net: SasRecNet,
    /// Item embeddings (n_items, dim), copied out of the network for scoring.
    item_matrix: Vec<f32>,
    sequences: Sequences,
    fitted: Fitted,
}

impl SasRecModel {
    fn new(
        params: SasRecParams,
        net: SasRecNet,
        sequences: Sequences,
        fitted: Fitted,
    ) -> Result<Self> {
        Ok(Self {
            item_matrix: item_matrix(&net)?,
            params,
            net,
            sequences,
            fitted,
        })
    }

    /// Loads a model saved by [`Model::save`].
    pub fn load(params: serde_json::Value, fitted: Fitted, tensors: &TensorReader) -> Result<Self> {
        let params: SasRecParams = serde_json::from_value(params)
            .map_err(|e| Error::InvalidInput(format!("sasrec parameters: {e}")))?;
        params.validate()?;
        let n_items = fitted.items.len();
        let shape = NetShape {
            n_items,
            dim: params.dim,
            max_len: params.max_len,
            blocks: params.blocks,
            heads: params.heads,
        };
        let net = SasRecNet::new(shape, 0)?;
        let values = net
            .named_vars()
            .into_iter()
            .map(|(name, _)| {
                let (dims, values) = tensors.f32_shaped(&format!("net.{name}"))?;
                let tensor =
                    Tensor::from_vec(values, dims, &candle_core::Device::Cpu).map_err(candle)?;
                Ok((name, tensor))
            })
            .collect::<Result<Vec<_>>>()?;
        net.set_all(&values)?;
        let sequences = Sequences::load(tensors, fitted.users.len(), n_items)?;
        Self::new(params, net, sequences, fitted)
    }

    /// The sequence a query is scored from: the known user's training items, then the query's.
    /// Only the latest `max_len` items are read, so only those are copied: a long history
    /// costs a request nothing extra.
    fn sequence(&self, query: &UserQuery<'_>) -> Vec<ItemIdx> {
        let n = self.fitted.items.len() as u32;
        let recent: Vec<ItemIdx> = query.history.iter().copied().filter(|&i| i < n).collect();
        let stored = query.user.map_or(&[][..], |u| self.sequences.of(u));
        let room = self.params.max_len.saturating_sub(recent.len());
        let mut items = stored[stored.len().saturating_sub(room)..].to_vec();
        items.extend(&recent[recent.len().saturating_sub(self.params.max_len)..]);
        items
    }
}

impl Model for SasRecModel {
    fn name(&self) -> &'static str {
        "sasrec"
    }

    fn params(&self) -> serde_json::Value {
        serde_json::to_value(&self.params).unwrap_or_default()
    }

    fn fitted(&self) -> &Fitted {
        &self.fitted
    }

    fn score(&self, query: &UserQuery<'_>, items: &[ItemIdx], out: &mut [f32]) {
        let sequence = self.sequence(query);
        let d = self.params.dim;
        let state = if sequence.is_empty() {
            None
        } else {
            let mut ids = vec![0u32; sequence.len().min(self.params.max_len)];
            window(&sequence, &mut ids);
            last_states(&self.net, &ids, 1).ok()
        };
        for (o, &i) in out.iter_mut().zip(items) {
            let row = self.item_matrix.get(i as usize * d..(i as usize + 1) * d);
            *o = match (&state, row) {
                (Some(h), Some(e)) => dot(h, e),
                // No history to read, or a failed pass: no opinion, which the rank pipeline's
                // fallback fills.
                _ => f32::NAN,
            };
        }
    }

    fn reads_order(&self) -> bool {
        true
    }

    fn save(&self, dir: &Path) -> Result<()> {
        let mut t = TensorWriter::new();
        for (name, var) in self.net.named_vars() {
            let tensor = var.as_tensor();
            let values = tensor
                .flatten_all()
                .and_then(|x| x.to_vec1::<f32>())
                .map_err(candle)?;
            t.f32(&format!("net.{name}"), tensor.dims(), &values);
        }
        self.sequences.save_into(&mut t);
        self.fitted.save(dir, "sasrec", Model::params(self), t)
    }
}

/// The `sasrec` family's entry in the model registry.
pub struct SasRecFamily;

impl ModelFamily for SasRecFamily {
    fn name(&self) -> &'static str {
        "sasrec"
    }

    fn task(&self) -> Task {
        Task::Ranking
    }

    fn summary(&self) -> &'static str {
        "SASRec sequence model: causal self-attention over each user's items in time order, trained on the softmax over every item (or gBCE, as gSASRec); serves sessions from their items"
    }

    fn params(&self) -> Vec<ParamInfo> {
        param_infos::<SasRecParams>(&[
            ("dim", None, "embedding and hidden width"),
            ("blocks", None, "self-attention blocks"),
            (
                "heads",
                None,
                "attention heads per block (dim must be a multiple)",
            ),
            (
                "max_len",
                None,
                "latest items of a sequence the model reads",
            ),
            ("dropout", None, "dropout rate"),
            ("learning_rate", None, "Adam learning rate"),
            ("batch_size", None, "sequences per step"),
            ("negatives", None, "negatives sampled per batch (gbce, softmax)"),
            (
                "loss",
                None,
                "gbce (gSASRec), softmax (sampled softmax over the negatives) or full (softmax over every item)",
            ),
            (
                "gbce_t",
                None,
                "gBCE calibration t in [0, 1] (0: plain BCE)",
            ),
            ("epochs", None, "most passes over the training sequences"),
            (
                "patience",
                None,
                "epochs without a better validation NDCG@10 before stopping (0: no validation)",
            ),
            (
                "validation_users",
                None,
                "users whose latest training item is held out for early stopping",
            ),
            (
                "seed",
                Some("the fit seed"),
                "seed of weights, batches, negatives and dropout",
            ),
        ])
    }

    fn build(&self, spec: &ModelSpec) -> Result<Box<dyn Algorithm>> {
        let params: SasRecParams = spec.typed()?;
        params.validate()?;
        Ok(Box::new(SasRec { params }))
    }

    fn load(&self, saved: Saved<'_>) -> Result<Box<dyn Model>> {
        Ok(Box::new(SasRecModel::load(
            saved.params,
            saved.fitted,
            saved.tensors,
        )?))
    }

    fn applicability(&self) -> Applicability {
        Applicability {
            named_only: true,
            ..Applicability::default()
        }
    }

    fn cost(&self) -> Cost {
        Cost::High
    }
}

#[cfg(test)]
mod tests {
    use kindred_core::{Interaction, InteractionsBuilder};
    use kindred_models::ItemFilter;

    use super::*;
    use crate::sequence::test_support::gradient_values;

    const ITEMS: u32 = 30;

    /// Users walk a cycle of items one step at a time from a random start, so the next item is
    /// the one after the latest; popularity cannot tell it.
    fn cyclic_world(users: u32, seed: u64) -> TrainSet {
        let mut rng = SplitMix64::new(seed);
        let mut b = InteractionsBuilder::new();
        for u in 0..users {
            let start = rng.below(u64::from(ITEMS)) as u32;
            let len = 6 + rng.below(8) as u32;
            for step in 0..len {
                let item = (start + step) % ITEMS;
                b.push(Interaction::rating(
                    &format!("u{u}"),
                    &format!("i{item}"),
                    1.0,
                    Some(i64::from(step)),
                ));
            }
        }
        TrainSet::new(b.build())
    }

    fn small() -> SasRec {
        SasRec {
            params: SasRecParams {
                dim: 16,
                max_len: 12,
                batch_size: 16,
                negatives: 8,
                epochs: 40,
                patience: 10,
                validation_users: 40,
                dropout: 0.1,
                learning_rate: 5e-3,
                ..SasRecParams::default()
            },
        }
    }

    #[test]
    fn a_batch_cut_into_shards_has_the_whole_batch_s_gradient() {
        let train = cyclic_world(100, 3);
        let sequences = Sequences::from_train(&train);
        // Sequences of 6 to 13 items, some longer than max_len.
        let params = SasRecParams {
            dim: 8,
            heads: 2,
            max_len: 10,
            dropout: 0.0,
            negatives: 8,
            ..SasRecParams::default()
        };
        let shape = NetShape {
            n_items: train.n_items(),
            dim: 8,
            max_len: 10,
            blocks: 2,
            heads: 2,
        };
        let net = SasRecNet::new(shape, 5).unwrap();
        let part = |u: u32| sequences.of(u);
        // Three shards, of 24, 23 and 23 sequences.
        let batch: Vec<u32> = (0..70).collect();
        let negatives: Vec<u32> = (1..=8).collect();
        for loss in [Loss::Full, Loss::Softmax, Loss::Gbce { beta: 0.4 }] {
            let (sharded, sharded_loss) = batch_gradients(
                &net,
                &batch,
                &part,
                &negatives,
                &loss,
                &params,
                &mut SplitMix64::new(1),
            )
            .unwrap();
            let len = batch
                .iter()
                .map(|&u| part(u).len() - 1)
                .max()
                .unwrap()
                .min(10);
            let mut inputs = vec![0u32; batch.len() * len];
            let mut targets = vec![0u32; batch.len() * len];
            for (row, &u) in batch.iter().enumerate() {
                let s = part(u);
                window(&s[..s.len() - 1], &mut inputs[row * len..(row + 1) * len]);
                window(&s[1..], &mut targets[row * len..(row + 1) * len]);
            }
            let hidden = net.forward(&inputs, batch.len(), None).unwrap();
            let (objective, whole_loss) =
                step_loss(&net, &hidden, targets, negatives.clone(), &loss, 8).unwrap();
            let whole = objective.backward().unwrap();
            assert!((sharded_loss - whole_loss).abs() < 1e-5);
            for (name, var) in net.named_vars() {
                let (got, expected) =
                    (gradient_values(&sharded, var), gradient_values(&whole, var));
                for (a, b) in got.iter().zip(expected) {
                    assert!((a - b).abs() < 1e-5 + 1e-4 * b.abs(), "{name}: {a} vs {b}");
                }
            }
        }
    }

    struct All;
    impl ItemFilter for All {
        fn allows(&self, _item: ItemIdx) -> bool {
            true
        }
    }

    fn item(train: &TrainSet, k: u32) -> ItemIdx {
        train
            .data
            .item_ids()
            .get(&format!("i{}", k % ITEMS))
            .expect("an item")
    }

    #[test]
    fn learns_what_comes_next_and_serves_a_session() {
        let train = cyclic_world(300, 1);
        let model = small().fit(&train, &FitContext::default()).unwrap();
        // Known users: the item after their latest is first.
        let sequences = Sequences::from_train(&train);
        let mut hits = 0;
        for u in 0..100u32 {
            let last = sequences.of(u).last().copied().unwrap();
            let name = train.data.item_ids().external(last);
            let k: u32 = name[1..].parse().unwrap();
            let top = model.recommend(&UserQuery::known(u), 1, &All);
            hits += usize::from(top.first().map(|s| s.item) == Some(item(&train, k + 1)));
        }
        assert!(hits >= 80, "next item first for {hits} of 100 users");
        // An anonymous session of three steps: the fourth is first.
        let session = [item(&train, 7), item(&train, 8), item(&train, 9)];
        let top = model.recommend(&UserQuery::anonymous(&session), 1, &All);
        assert_eq!(top[0].item, item(&train, 10));
        // No history: no opinion.
        let mut out = vec![0f32; ITEMS as usize];
        model.score_all(&UserQuery::default(), &mut out);
        assert!(out.iter().all(|s| s.is_nan()));
    }

    #[test]
    fn every_loss_learns_what_comes_next() {
        let train = cyclic_world(300, 3);
        let sequences = Sequences::from_train(&train);
        for loss in [
            SequenceLoss::Gbce,
            SequenceLoss::Softmax,
            SequenceLoss::Full,
        ] {
            let mut algorithm = small();
            algorithm.params.loss = loss;
            let model = algorithm.fit(&train, &FitContext::default()).unwrap();
            let hits = (0..100u32)
                .filter(|&u| {
                    let last = sequences.of(u).last().copied().unwrap();
                    let k: u32 = train.data.item_ids().external(last)[1..].parse().unwrap();
                    let top = model.recommend(&UserQuery::known(u), 1, &All);
                    top.first().map(|s| s.item) == Some(item(&train, k + 1))
                })
                .count();
            assert!(
                hits >= 80,
                "{loss:?}: next item first for {hits} of 100 users"
            );
        }
    }

    #[test]
    fn a_fit_is_a_function_of_the_seed_and_reloads_bit_identically() {
        let train = cyclic_world(60, 2);
        let quick = SasRec {
            params: SasRecParams {
                epochs: 3,
                ..small().params
            },
        };
        let a = quick.fit(&train, &FitContext::default()).unwrap();
        let b = quick.fit(&train, &FitContext::default()).unwrap();
        let dir = std::env::temp_dir().join(format!("kindred-sasrec-{}", std::process::id()));
        a.save(&dir).unwrap();
        let registry = crate::registry_with_neural().unwrap();
        let loaded = registry.load(&dir).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        for u in 0..10 {
            let scores = |m: &dyn Model| {
                let mut out = vec![0f32; ITEMS as usize];
                m.score_all(&UserQuery::known(u), &mut out);
                out
            };
            assert_eq!(scores(a.as_ref()), scores(b.as_ref()));
            assert_eq!(scores(a.as_ref()), scores(loaded.as_ref()));
        }
    }

    #[test]
    fn bad_parameters_are_named() {
        let err = |spec: &str| {
            SasRecFamily
                .build(&ModelSpec::parse(spec).unwrap())
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        assert!(err("sasrec:dim=10,heads=3").contains("multiple of heads"));
        assert!(err("sasrec:dropout=1").contains("dropout"));
        assert!(err("sasrec:gbce_t=2").contains("gbce_t"));
        assert!(err("sasrec:epochs=0").contains("epochs"));
        assert!(err("sasrec:max_len=100000").contains("max_len must be at most 1000"));
    }

    #[test]
    fn cancelling_stops_training() {
        let ctx = FitContext::default();
        ctx.cancel.cancel();
        let err = small().fit(&cyclic_world(20, 3), &ctx).err().unwrap();
        assert!(matches!(err, Error::Cancelled), "{err}");
    }
}
