//! A hybrid factorisation model in the manner of LightFM (Kula 2015, "Metadata embeddings for
//! user and item cold-start recommendations"): users and items are described by sets of
//! features, every feature has an embedding and a bias, and an entity's embedding (bias) is the
//! weighted sum of its features' embeddings (biases). The score of user `u` for item `i` is
//! `e_u . e_i + b_u + b_i`.
//!
//! Features: an identity feature per user (`user_ids=true`) and per item (`item_ids=true`), plus
//! the encoded feature tables ([`crate::content::feature_space`]: categories, bucketed numbers, hashed
//! TF-IDF text, dense vectors): item features by default, user features with
//! `user_features=true`. With `normalize=true` each entity's feature weights are scaled to sum
//! to 1, as LightFM's `Dataset` does. An identity feature exists only for entities with training
//! interactions: a cold item's identity embedding would be untrained noise, so cold items are
//! represented by their features alone, consistently in training (where they are sampled as
//! negatives) and in scoring.
//!
//! Training follows LightFM: per epoch, the distinct (user, item) training pairs in a seeded
//! random order; `loss=warp` samples items uniformly until one scores within a margin of 1 of the
//! positive (skipping the user's own positives) or `max_sampled` trials pass, and updates with
//! weight `ln(max(1, floor((n_items - 1) / trials)))`, which approximates the rank of the
//! positive; `loss=bpr` samples one negative and updates with weight `1 - sigmoid_f32(s_pos - s_neg)`.
//! Updates are per-coordinate Adagrad (accumulators start at 1, as in LightFM) with L2 penalties
//! `user_alpha` / `item_alpha` on the touched embeddings. Embeddings start uniform in
//! `[-0.5, 0.5) / no_components`, biases at 0.
//!
//! Training is sequential: every update reads the item embeddings that the previous one wrote,
//! and Hogwild threads would make runs differ. One thread keeps a fit a pure function of the data
//! and the seed, whatever the thread count.
//!
//! Cold start: items with no interactions are scored from their features; users with no
//! interactions from their features, and anonymous users from the mean embedding of their
//! query history (fold-in). [`Model::item_embeddings`] returns the composed item embeddings.

use std::path::Path;

use kindred_core::kernels::{dot, sigmoid_f32};
use kindred_core::text_encoder::TEXT_VECTOR_FIELD;
use kindred_core::{
    Error, FeatureTable, FitContext, ItemIdx, Result, SplitMix64, TrainSet, UserIdx,
};
use serde::{Deserialize, Serialize};

use crate::content::feature_space::{compact, EncodeOptions, FeatureSpace, SparseRows};
use crate::content::text_vectors::TextSource;
use crate::family::{param_infos, Cost, ModelFamily, ParamInfo, Saved, Task};
use crate::model::{Algorithm, Model, UserQuery};
use crate::params::ModelSpec;
use crate::persist::{Fitted, TensorReader, TensorWriter};
use crate::space::{Param, Space};

const SPACE_FILE: &str = "item_features.json";

/// The ranking loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Loss {
    /// Weighted Approximate-Rank Pairwise (Weston et al. 2011).
    #[default]
    Warp,
    /// Bayesian Personalised Ranking (Rendle et al. 2009).
    Bpr,
}

/// Hyperparameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HybridParams {
    /// Embedding dimension.
    pub no_components: usize,
    /// Passes over the training pairs.
    pub epochs: usize,
    pub loss: Loss,
    /// Adagrad base learning rate.
    pub learning_rate: f32,
    /// L2 penalty on item feature embeddings.
    pub item_alpha: f32,
    /// L2 penalty on user feature embeddings.
    pub user_alpha: f32,
    /// WARP: most negatives sampled per positive.
    pub max_sampled: usize,
    /// An identity feature per item (with training data).
    pub item_ids: bool,
    /// An identity feature per user (with training data).
    pub user_ids: bool,
    /// Use the item feature table when there is one.
    pub item_features: bool,
    /// Scale each entity's feature weights to sum to 1 (LightFM's `Dataset` default); `false`
    /// keeps them as encoded (identity 1, each feature column's block of unit length).
    pub normalize: bool,
    /// Use the user feature table when there is one. Off by default: with each user's weights
    /// summing to 1, demographic features dilute the identity feature, and on MovieLens
    /// (ML-100K temporal:0.2,positive>=4) NDCG@10 fell from 0.1302 to 0.1130 with them; turn it
    /// on to score users who have features but no interactions.
    pub user_features: bool,
    /// Item feature columns to use, joined by `+`; `None` uses all.
    pub columns: Option<String>,
    /// Quantile buckets per numeric column.
    pub buckets: usize,
    /// Text columns hash into `2^hash_bits` slots.
    pub hash_bits: u32,
    /// Seed of the initialisation and sampling; `None` uses the fit seed.
    pub seed: Option<u64>,
    /// Item text columns (joined by `+`) whose sentence-encoder vector becomes one more item
    /// feature column ([`crate::content::text_vectors`]); needs `encoder`.
    pub text: Option<String>,
    /// Folder of the sentence-transformers model that encodes `text`.
    pub encoder: Option<String>,
}

impl Default for HybridParams {
    fn default() -> Self {
        Self {
            no_components: 64,
            epochs: 30,
            loss: Loss::Warp,
            learning_rate: 0.05,
            item_alpha: 0.0,
            user_alpha: 0.0,
            max_sampled: 10,
            item_ids: true,
            user_ids: true,
            item_features: true,
            normalize: true,
            user_features: false,
            columns: None,
            buckets: 10,
            hash_bits: 18,
            seed: None,
            text: None,
            encoder: None,
        }
    }
}

impl HybridParams {
    fn validate(&self) -> Result<(EncodeOptions, Option<TextSource>)> {
        let bad = |m: String| Err(Error::InvalidInput(format!("hybrid: {m}")));
        if self.no_components == 0 {
            return bad("no_components must be at least 1".into());
        }
        if self.max_sampled == 0 {
            return bad("max_sampled must be at least 1".into());
        }
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return bad(format!(
                "learning_rate must be positive, got {}",
                self.learning_rate
            ));
        }
        for (name, alpha) in [
            ("item_alpha", self.item_alpha),
            ("user_alpha", self.user_alpha),
        ] {
            if !(alpha.is_finite() && alpha >= 0.0) {
                return bad(format!("{name} must be a non-negative number, got {alpha}"));
            }
        }
        let options =
            EncodeOptions::from_params(self.columns.as_deref(), self.buckets, self.hash_bits)
                .map_err(|e| Error::InvalidInput(format!("hybrid: {e}")))?;
        let text =
            TextSource::from_params("hybrid", self.text.as_deref(), self.encoder.as_deref())?;
        if text.is_some() && !self.item_features {
            return bad("text= needs item_features=true".into());
        }
        Ok((options, text))
    }
}

/// The hybrid (LightFM-style) algorithm.
#[derive(Debug, Clone, Default)]
pub struct Hybrid {
    pub params: HybridParams,
}

/// One side's feature rows: identity features first (`0..n_ids`), then the compacted encoded
/// features; each row's weights sum to 1.
struct Side {
    rows: SparseRows,
    /// Space index of each compacted encoded feature (sorted).
    feature_ids: Vec<u32>,
    n_ids: usize,
}

impl Side {
    fn build(
        n: usize,
        ids: bool,
        normalize: bool,
        has_data: impl Fn(usize) -> bool,
        encoded: Option<SparseRows>,
    ) -> Self {
        let (mut encoded, feature_ids) = match encoded {
            Some(mut rows) => {
                let used = compact(&mut rows);
                (rows, used)
            }
            None => (SparseRows::default(), Vec::new()),
        };
        if encoded.is_empty() {
            encoded = SparseRows::from_vecs((0..n).map(|_| Vec::new()));
        }
        let n_ids = if ids { n } else { 0 };
        let rows = SparseRows::from_vecs((0..n).map(|r| {
            let mut row: Vec<(u32, f32)> = Vec::new();
            if ids && has_data(r) {
                row.push((r as u32, 1.0));
            }
            let (idx, val) = encoded.row(r);
            row.extend(idx.iter().zip(val).map(|(&i, &v)| (n_ids as u32 + i, v)));
            if normalize {
                normalise_l1(&mut row);
            }
            row
        }));
        Self {
            rows,
            feature_ids,
            n_ids,
        }
    }

    fn n_features(&self) -> usize {
        self.n_ids + self.feature_ids.len()
    }
}

fn normalise_l1(row: &mut [(u32, f32)]) {
    let sum: f32 = row.iter().map(|(_, v)| v.abs()).sum();
    if sum > 0.0 {
        row.iter_mut().for_each(|(_, v)| *v /= sum);
    }
}

/// Feature embeddings and biases of one side with their Adagrad accumulators.
struct Params {
    k: usize,
    emb: Vec<f32>,
    bias: Vec<f32>,
    emb_acc: Vec<f32>,
    bias_acc: Vec<f32>,
}

impl Params {
    fn new(n: usize, k: usize, rng: &mut SplitMix64) -> Self {
        Self {
            k,
            emb: (0..n * k)
                .map(|_| ((rng.next_f64() - 0.5) / k as f64) as f32)
                .collect(),
            bias: vec![0.0; n],
            emb_acc: vec![1.0; n * k],
            bias_acc: vec![1.0; n],
        }
    }

    /// Writes the composed embedding of a row into `out` and returns its bias.
    ///
    /// `compose` and `step` are most of a fit; they run a copy compiled for AVX2 + FMA where the
    /// CPU has them (twice the vector width of the baseline x86-64 build).
    fn compose(&self, row: (&[u32], &[f32]), out: &mut [f32]) -> f32 {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                // SAFETY: the CPU supports AVX2 and FMA (checked just above).
                return unsafe { self.compose_avx2(row, out) };
            }
        }
        self.compose_portable(row, out)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    fn compose_avx2(&self, row: (&[u32], &[f32]), out: &mut [f32]) -> f32 {
        self.compose_portable(row, out)
    }

    #[inline(always)]
    fn compose_portable(&self, (idx, val): (&[u32], &[f32]), out: &mut [f32]) -> f32 {
        out.iter_mut().for_each(|x| *x = 0.0);
        let mut bias = 0.0;
        for (&f, &w) in idx.iter().zip(val) {
            let e = &self.emb[f as usize * self.k..(f as usize + 1) * self.k];
            out.iter_mut().zip(e).for_each(|(o, &x)| *o += w * x);
            bias += w * self.bias[f as usize];
        }
        bias
    }

    /// Adagrad step on every feature of a row, for the gradient `direction` of the composed
    /// embedding and `bias_grad` of the composed bias (`None`: the bias is not updated).
    fn step(
        &mut self,
        row: (&[u32], &[f32]),
        direction: &[f32],
        bias_grad: Option<f32>,
        lr: f32,
        alpha: f32,
    ) {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                // SAFETY: the CPU supports AVX2 and FMA (checked just above).
                return unsafe { self.step_avx2(row, direction, bias_grad, lr, alpha) };
            }
        }
        self.step_portable(row, direction, bias_grad, lr, alpha)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    fn step_avx2(
        &mut self,
        row: (&[u32], &[f32]),
        direction: &[f32],
        bias_grad: Option<f32>,
        lr: f32,
        alpha: f32,
    ) {
        self.step_portable(row, direction, bias_grad, lr, alpha)
    }

    #[inline(always)]
    fn step_portable(
        &mut self,
        (idx, val): (&[u32], &[f32]),
        direction: &[f32],
        bias_grad: Option<f32>,
        lr: f32,
        alpha: f32,
    ) {
        let k = self.k;
        for (&f, &w) in idx.iter().zip(val) {
            let f = f as usize;
            let emb = &mut self.emb[f * k..(f + 1) * k];
            let acc = &mut self.emb_acc[f * k..(f + 1) * k];
            for ((e, a), &g) in emb.iter_mut().zip(acc.iter_mut()).zip(direction) {
                let g = g * w + alpha * *e;
                *a += g * g;
                *e -= lr * g / a.sqrt();
            }
            if let Some(bg) = bias_grad {
                let g = bg * w;
                self.bias_acc[f] += g * g;
                self.bias[f] -= lr * g / self.bias_acc[f].sqrt();
            }
        }
    }

    /// Composed embeddings (row-major) and biases of every row.
    fn compose_all(&self, rows: &SparseRows) -> (Vec<f32>, Vec<f32>) {
        let mut emb = vec![0f32; rows.len() * self.k];
        let bias = emb
            .chunks_exact_mut(self.k)
            .enumerate()
            .map(|(r, out)| self.compose(rows.row(r), out))
            .collect();
        (emb, bias)
    }
}

impl Algorithm for Hybrid {
    fn name(&self) -> &'static str {
        "hybrid"
    }

    fn params(&self) -> serde_json::Value {
        serde_json::to_value(&self.params).unwrap_or_default()
    }

    fn fit(&self, data: &TrainSet, ctx: &FitContext) -> Result<Box<dyn Model>> {
        let p = &self.params;
        let (mut options, text) = p.validate()?;
        let fitted = Fitted::from_train(data);
        let (n_users, n_items) = (data.n_users(), data.n_items());
        let item_table = data
            .item_features
            .as_deref()
            .filter(|t| p.item_features && !t.is_empty());
        let user_table = data
            .user_features
            .as_deref()
            .filter(|t| p.user_features && !t.is_empty());
        if !p.item_ids && item_table.is_none() {
            return Err(Error::InvalidInput(
                "hybrid: item_ids=false needs item features (item_features=true and an item feature table)".into(),
            ));
        }
        if !p.user_ids && user_table.is_none() {
            return Err(Error::InvalidInput(
                "hybrid: user_ids=false needs user features (user_features=true and a user feature table)".into(),
            ));
        }
        let with_text = match (item_table, &text) {
            (Some(table), Some(source)) => Some(source.add_vectors(
                "hybrid",
                table,
                data.data.item_ids(),
                ctx.progress.as_ref(),
                &ctx.cancel,
            )?),
            _ => None,
        };
        if with_text
            .as_ref()
            .is_some_and(|t| t.column(TEXT_VECTOR_FIELD).is_some())
        {
            TextSource::select_vector_column(&mut options);
        }
        let item_table = with_text.as_ref().or(item_table);
        let item_space = item_table
            .map(|t| FeatureSpace::fit(t, &options))
            .transpose()?;
        let user_space = user_table
            .map(|t| FeatureSpace::fit(t, &EncodeOptions::default()))
            .transpose()?;
        let items = Side::build(
            n_items,
            p.item_ids,
            p.normalize,
            |i| fitted.knows_item(i as ItemIdx),
            item_table
                .zip(item_space.as_ref())
                .map(|(t, s)| s.encode_all(t, data.data.item_ids())),
        );
        let users = Side::build(
            n_users,
            p.user_ids,
            p.normalize,
            |u| fitted.knows_user(u as UserIdx),
            user_table
                .zip(user_space.as_ref())
                .map(|(t, s)| s.encode_all(t, data.data.user_ids())),
        );
        let k = p.no_components;
        let seed = p.seed.unwrap_or(ctx.seed);
        let mut rng = SplitMix64::new(seed);
        let mut item_params = Params::new(items.n_features(), k, &mut rng);
        let mut user_params = Params::new(users.n_features(), k, &mut rng);

        let mut pairs: Vec<(UserIdx, ItemIdx)> = (0..n_users as UserIdx)
            .flat_map(|u| fitted.seen.items_of(u).iter().map(move |&i| (u, i)))
            .collect();
        ctx.progress.begin("hybrid epochs", p.epochs as u64);
        let (mut u_emb, mut pos_emb, mut neg_emb) = (vec![0f32; k], vec![0f32; k], vec![0f32; k]);
        let (mut u_dir, mut i_dir) = (vec![0f32; k], vec![0f32; k]);
        for epoch in 0..p.epochs {
            ctx.cancel.check()?;
            rng.shuffle(&mut pairs);
            let mut loss_sum = 0f64;
            for (n, &(u, i)) in pairs.iter().enumerate() {
                if n % 65_536 == 0 {
                    ctx.cancel.check()?;
                }
                let user_row = users.rows.row(u as usize);
                let pos_row = items.rows.row(i as usize);
                user_params.compose(user_row, &mut u_emb);
                let pos_bias = item_params.compose(pos_row, &mut pos_emb);
                let pos_score = pos_bias + dot(&u_emb, &pos_emb);
                let mut update = None;
                match p.loss {
                    Loss::Warp => {
                        for trials in 1..=p.max_sampled {
                            let j = rng.below(n_items as u64) as ItemIdx;
                            let neg_bias =
                                item_params.compose(items.rows.row(j as usize), &mut neg_emb);
                            let neg_score = neg_bias + dot(&u_emb, &neg_emb);
                            if neg_score > pos_score - 1.0 {
                                if fitted.seen.contains(u, j) {
                                    continue;
                                }
                                let rank = ((n_items - 1) / trials) as f32;
                                let weight = rank.max(1.0).ln();
                                loss_sum += (weight * (1.0 - pos_score + neg_score)) as f64;
                                update = Some((j, weight));
                                break;
                            }
                        }
                    }
                    Loss::Bpr => {
                        // A few tries to find a non-positive; a user who has everything has no negative.
                        for _ in 0..16 {
                            let j = rng.below(n_items as u64) as ItemIdx;
                            if fitted.seen.contains(u, j) {
                                continue;
                            }
                            let neg_bias =
                                item_params.compose(items.rows.row(j as usize), &mut neg_emb);
                            let margin = pos_score - neg_bias - dot(&u_emb, &neg_emb);
                            loss_sum += -(sigmoid_f32(margin).max(1e-12).ln()) as f64;
                            update = Some((j, 1.0 - sigmoid_f32(margin)));
                            break;
                        }
                    }
                }
                let Some((j, weight)) = update else {
                    continue;
                };
                // Gradients of weight * (s_neg - s_pos), all from the embeddings before the step.
                for d in 0..k {
                    u_dir[d] = weight * (neg_emb[d] - pos_emb[d]);
                    i_dir[d] = -weight * u_emb[d];
                }
                let lr = p.learning_rate;
                item_params.step(pos_row, &i_dir, Some(-weight), lr, p.item_alpha);
                i_dir.iter_mut().for_each(|g| *g = -*g);
                item_params.step(
                    items.rows.row(j as usize),
                    &i_dir,
                    Some(weight),
                    lr,
                    p.item_alpha,
                );
                user_params.step(user_row, &u_dir, None, lr, p.user_alpha);
            }
            ctx.progress
                .epoch(epoch, loss_sum / pairs.len().max(1) as f64, None);
            ctx.progress.advance(1);
        }
        ctx.progress.finish();
        let (item_emb, item_bias) = item_params.compose_all(&items.rows);
        let (user_emb, user_bias) = user_params.compose_all(&users.rows);
        let n_ids = items.n_ids;
        Ok(Box::new(HybridModel {
            params: p.clone(),
            item_emb,
            item_bias,
            user_emb,
            user_bias,
            feature_emb: item_params.emb[n_ids * k..].to_vec(),
            feature_bias: item_params.bias[n_ids..].to_vec(),
            feature_ids: items.feature_ids,
            item_space,
            fitted,
        }))
    }
}

/// A fitted hybrid model.
#[derive(Debug, Clone)]
pub struct HybridModel {
    pub params: HybridParams,
    /// Composed item embeddings, one row of `no_components` per item.
    item_emb: Vec<f32>,
    item_bias: Vec<f32>,
    /// Composed user embeddings (zero for users with neither data nor features).
    user_emb: Vec<f32>,
    user_bias: Vec<f32>,
    /// Embeddings and biases of the encoded item features (without identity features), to embed
    /// items added after training.
    feature_emb: Vec<f32>,
    feature_bias: Vec<f32>,
    /// Space index of each row of `feature_emb` (sorted).
    feature_ids: Vec<u32>,
    item_space: Option<FeatureSpace>,
    fitted: Fitted,
}

impl HybridModel {
    /// Loads a model saved by [`Model::save`].
    pub fn load(
        params: serde_json::Value,
        fitted: Fitted,
        tensors: &TensorReader,
        dir: &Path,
    ) -> Result<Self> {
        let params: HybridParams = serde_json::from_value(params)
            .map_err(|e| Error::InvalidInput(format!("hybrid parameters: {e}")))?;
        let k = params.no_components;
        let (n_users, n_items) = (fitted.users.len(), fitted.items.len());
        let feature_ids = tensors.u32("feature_ids")?;
        let n_features = feature_ids.len();
        let item_space = if dir.join(SPACE_FILE).exists() {
            Some(FeatureSpace::load(dir, SPACE_FILE)?)
        } else {
            None
        };
        Ok(Self {
            item_emb: tensors.f32_len("item_emb", n_items * k)?,
            item_bias: tensors.f32_len("item_bias", n_items)?,
            user_emb: tensors.f32_len("user_emb", n_users * k)?,
            user_bias: tensors.f32_len("user_bias", n_users)?,
            feature_emb: tensors.f32_len("feature_emb", n_features * k)?,
            feature_bias: tensors.f32_len("feature_bias", n_features)?,
            feature_ids,
            item_space,
            params,
            fitted,
        })
    }

    /// Embedding and bias of an item described by row `id` of `table` (e.g. an item added after
    /// training), from its features alone, as cold items are scored. `None` when the model uses
    /// no item features or none of the item's features were seen in training.
    pub fn embed_item(&self, table: &FeatureTable, id: &str) -> Option<(Vec<f32>, f32)> {
        let space = self.item_space.as_ref()?;
        let mut row: Vec<(u32, f32)> = space
            .encode_entity(table, id)
            .into_iter()
            .filter_map(|(i, v)| {
                self.feature_ids
                    .binary_search(&i)
                    .ok()
                    .map(|f| (f as u32, v))
            })
            .collect();
        if row.is_empty() {
            return None;
        }
        if self.params.normalize {
            normalise_l1(&mut row);
        }
        let k = self.params.no_components;
        let mut emb = vec![0f32; k];
        let mut bias = 0.0;
        for (f, w) in row {
            let f = f as usize;
            emb.iter_mut()
                .zip(&self.feature_emb[f * k..(f + 1) * k])
                .for_each(|(o, &x)| *o += w * x);
            bias += w * self.feature_bias[f];
        }
        Some((emb, bias))
    }

    /// The query's user embedding and bias: the trained (or feature) embedding of a known user;
    /// users without training data add the mean embedding of their query history.
    fn user_vector(&self, query: &UserQuery<'_>) -> (Vec<f32>, f32) {
        let k = self.params.no_components;
        let mut emb = vec![0f32; k];
        let mut bias = 0.0;
        if let Some(u) = query.user.filter(|&u| (u as usize) < self.user_bias.len()) {
            let u = u as usize;
            emb.copy_from_slice(&self.user_emb[u * k..(u + 1) * k]);
            bias = self.user_bias[u];
        }
        let known = query.user.is_some_and(|u| self.fitted.knows_user(u));
        let history: Vec<usize> = query
            .history
            .iter()
            .map(|&i| i as usize)
            .filter(|&i| i < self.item_bias.len())
            .collect();
        if !known && !history.is_empty() {
            let scale = 1.0 / history.len() as f32;
            for i in history {
                emb.iter_mut()
                    .zip(&self.item_emb[i * k..(i + 1) * k])
                    .for_each(|(o, &x)| *o += scale * x);
            }
        }
        (emb, bias)
    }
}

impl Model for HybridModel {
    fn name(&self) -> &'static str {
        "hybrid"
    }

    fn params(&self) -> serde_json::Value {
        serde_json::to_value(&self.params).unwrap_or_default()
    }

    fn fitted(&self) -> &Fitted {
        &self.fitted
    }

    fn score(&self, query: &UserQuery<'_>, items: &[ItemIdx], out: &mut [f32]) {
        let k = self.params.no_components;
        let (user, user_bias) = self.user_vector(query);
        for (o, &i) in out.iter_mut().zip(items) {
            let i = i as usize;
            *o = match self.item_emb.get(i * k..(i + 1) * k) {
                Some(e) => dot(&user, e) + self.item_bias[i] + user_bias,
                None => f32::NAN,
            };
        }
    }

    fn item_embeddings(&self) -> Option<(usize, &[f32])> {
        Some((self.params.no_components, &self.item_emb))
    }

    fn user_embeddings(&self) -> Option<(usize, &[f32])> {
        Some((self.params.no_components, &self.user_emb))
    }

    fn with_new_items(&self, item_features: &FeatureTable) -> Option<Box<dyn Model>> {
        let known = &self.fitted.items;
        let new: Vec<(&str, (Vec<f32>, f32))> = item_features
            .ids()
            .externals()
            .iter()
            .filter(|id| known.get(id).is_none())
            .filter_map(|id| Some((id.as_str(), self.embed_item(item_features, id)?)))
            .collect();
        if new.is_empty() {
            return None;
        }
        let mut model = self.clone();
        for (_, (emb, bias)) in &new {
            model.item_emb.extend_from_slice(emb);
            model.item_bias.push(*bias);
        }
        model.fitted = self.fitted.with_items(new.iter().map(|(id, _)| *id));
        Some(Box::new(model))
    }

    fn save(&self, dir: &Path) -> Result<()> {
        let k = self.params.no_components;
        let mut t = TensorWriter::new();
        t.f32("item_emb", &[self.item_bias.len(), k], &self.item_emb)
            .f32("item_bias", &[self.item_bias.len()], &self.item_bias)
            .f32("user_emb", &[self.user_bias.len(), k], &self.user_emb)
            .f32("user_bias", &[self.user_bias.len()], &self.user_bias)
            .f32(
                "feature_emb",
                &[self.feature_ids.len(), k],
                &self.feature_emb,
            )
            .f32(
                "feature_bias",
                &[self.feature_ids.len()],
                &self.feature_bias,
            )
            .u32("feature_ids", &self.feature_ids);
        self.fitted.save(dir, "hybrid", Model::params(self), t)?;
        match &self.item_space {
            Some(space) => space.save(dir, SPACE_FILE),
            None => Ok(()),
        }
    }
}

/// The `hybrid` family's entry in the model registry.
pub struct HybridFamily;

impl ModelFamily for HybridFamily {
    fn name(&self) -> &'static str {
        "hybrid"
    }

    fn task(&self) -> Task {
        Task::Ranking
    }

    fn summary(&self) -> &'static str {
        "LightFM-style hybrid factorisation: user/item embeddings are sums of their features' embeddings (ids, categories, numbers, text); WARP or BPR; cold users and items from features"
    }

    fn params(&self) -> Vec<ParamInfo> {
        param_infos::<HybridParams>(&[
            ("no_components", None, "embedding dimension"),
            ("epochs", None, "passes over the distinct training pairs"),
            ("loss", None, "warp | bpr"),
            ("learning_rate", None, "Adagrad base learning rate"),
            ("item_alpha", None, "L2 penalty on item feature embeddings"),
            ("user_alpha", None, "L2 penalty on user feature embeddings"),
            ("max_sampled", None, "WARP: most negatives sampled per positive"),
            ("item_ids", None, "an identity feature per item with training data"),
            ("user_ids", None, "an identity feature per user with training data"),
            ("item_features", None, "use the item feature table when there is one"),
            ("normalize", None, "scale each entity's feature weights to sum to 1 (LightFM Dataset default); false keeps identity 1 and unit-length feature blocks"),
            ("user_features", None, "use the user feature table when there is one (needed for cold users without history; diluted warm ranking on MovieLens)"),
            ("columns", Some("all"), "item feature columns to use, joined by + (e.g. genres+year)"),
            ("buckets", None, "quantile buckets per numeric feature column"),
            ("hash_bits", None, "text features hash word unigrams and bigrams into 2^hash_bits slots (TF-IDF)"),
            ("text", Some("none"), "item text columns joined by + (e.g. title+description) whose sentence-encoder vector is added as the item feature text_embedding; needs encoder"),
            ("encoder", Some("none"), "folder of a sentence-transformers model (e.g. all-MiniLM-L6-v2) that encodes text"),
            ("seed", Some("fit seed (42)"), "seed of the initialisation and the sampling (training is sequential: same seed, same model, any thread count)"),
        ])
    }

    fn build(&self, spec: &ModelSpec) -> Result<Box<dyn Algorithm>> {
        Ok(Box::new(Hybrid {
            params: spec.typed()?,
        }))
    }

    fn load(&self, saved: Saved<'_>) -> Result<Box<dyn Model>> {
        Ok(Box::new(HybridModel::load(
            saved.params,
            saved.fitted,
            saved.tensors,
            saved.dir,
        )?))
    }

    fn search_space(&self) -> Option<Space> {
        Some(Space {
            family: "hybrid",
            params: vec![
                Param::int("no_components", 16, 128, true, 64),
                Param::int("epochs", 10, 60, false, 30),
                Param::float("learning_rate", 0.01, 0.2, true, 0.05),
                Param::choice("loss", &["warp", "bpr"], 0),
            ],
            fidelity: Some("epochs"),
            fixed: Vec::new(),
        })
    }

    /// Many sampled (WARP) passes over the log, each touching every feature of both sides.
    fn cost(&self) -> Cost {
        Cost::High
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::content::content_based::test_support::*;
    use crate::simple::popularity::Popularity;
    use crate::simple::random::Random;

    const DATA: &str = "users=400,items=300,per_user=40,seed=5";

    fn small(extra: impl FnOnce(&mut HybridParams)) -> Hybrid {
        let mut params = HybridParams {
            no_components: 16,
            epochs: 15,
            ..HybridParams::default()
        };
        extra(&mut params);
        Hybrid { params }
    }

    #[test]
    fn beats_popularity_and_random_on_cold_items() {
        let (train, tests, cold) = split(DATA, "coldstart-items:0.2,positive>=4");
        let cold = cold.unwrap();
        let ctx = FitContext::default();
        let r = |m: &dyn Model| recall_at_10(m, &train, &tests, Some(&cold));
        let popularity = r(Popularity::default().fit(&train, &ctx).unwrap().as_ref());
        let random = r(Random::default().fit(&train, &ctx).unwrap().as_ref());
        for hybrid in [
            small(|_| ()),
            small(|p| p.item_ids = false),
            small(|p| p.loss = Loss::Bpr),
        ] {
            let h = r(hybrid.fit(&train, &ctx).unwrap().as_ref());
            assert!(
                h > 1.2 * popularity.max(random),
                "{:?}: hybrid {h}, popularity {popularity}, random {random}",
                hybrid.params
            );
        }
    }

    #[test]
    fn an_item_added_after_training_is_scored_like_a_cold_item_with_its_features() {
        let (train, _, cold) = split("users=120,items=80,seed=3", "coldstart-items:0.2");
        let model = small(|p| p.epochs = 3)
            .fit(&train, &FitContext::default())
            .unwrap();
        let table = train.item_features.as_deref().unwrap();
        assert!(model.with_new_items(table).is_none(), "nothing new");
        let cold_item = cold.unwrap()[0];
        let twin = train.data.item_ids().external(cold_item).to_owned();
        let extended = model
            .with_new_items(&with_copy(table, &twin, "brand-new"))
            .expect("one new item");
        let n = train.n_items();
        assert_eq!(extended.fitted().items.get("brand-new"), Some(n as u32));
        let (dim, embeddings) = extended.item_embeddings().unwrap();
        assert_eq!(embeddings.len(), (n + 1) * dim);
        let (mut before, mut after) = (vec![0f32; n], vec![0f32; n + 1]);
        model.score_all(&UserQuery::known(4), &mut before);
        extended.score_all(&UserQuery::known(4), &mut after);
        assert_eq!(before[..], after[..n]);
        let (twin_score, new_score) = (after[cold_item as usize], after[n]);
        assert!(
            (twin_score - new_score).abs() < 1e-5,
            "{twin_score} {new_score}"
        );
    }

    #[test]
    fn warm_beats_popularity() {
        let (train, tests, _) = split(DATA, "temporal:0.2,positive>=4");
        let ctx = FitContext::default();
        let popularity = recall_at_10(
            Popularity::default().fit(&train, &ctx).unwrap().as_ref(),
            &train,
            &tests,
            None,
        );
        let hybrid = recall_at_10(
            small(|_| ()).fit(&train, &ctx).unwrap().as_ref(),
            &train,
            &tests,
            None,
        );
        assert!(
            hybrid > 1.1 * popularity,
            "hybrid {hybrid}, popularity {popularity}"
        );
    }

    #[test]
    fn same_seed_same_model_any_threads_and_reload_embeds_like_training() {
        let (train, _, cold) = split(
            "users=120,items=80,per_user=20,seed=3",
            "coldstart-items:0.2,positive>=4",
        );
        let algo = small(|p| p.epochs = 3);
        let a = algo
            .fit(
                &train,
                &FitContext {
                    threads: 1,
                    ..FitContext::with_seed(9)
                },
            )
            .unwrap();
        let b = algo
            .fit(
                &train,
                &FitContext {
                    threads: 4,
                    ..FitContext::with_seed(9)
                },
            )
            .unwrap();
        let c = algo.fit(&train, &FitContext::with_seed(10)).unwrap();
        assert_eq!(a.item_embeddings(), b.item_embeddings());
        assert_ne!(a.item_embeddings(), c.item_embeddings());
        let dir = std::env::temp_dir().join(format!("kindred-hybrid-{}", std::process::id()));
        a.save(&dir).unwrap();
        let (manifest, fitted, tensors) = Fitted::load(&dir).unwrap();
        let loaded = HybridModel::load(manifest.params, fitted, &tensors, &dir).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(loaded.item_embeddings(), a.item_embeddings());
        // A cold item embedded afresh from its features equals its row in the composed table.
        let table = train.item_features.clone().unwrap();
        let k = algo.params.no_components;
        let (_, all) = loaded.item_embeddings().unwrap();
        for &i in &cold.unwrap() {
            let id = train.data.item_ids().external(i);
            let (emb, bias) = loaded.embed_item(&table, id).unwrap();
            assert_eq!(&emb[..], &all[i as usize * k..(i as usize + 1) * k]);
            assert_eq!(bias, loaded.item_bias[i as usize]);
        }
    }

    #[test]
    fn cold_users_are_scored_from_their_features() {
        use kindred_core::{FeatureValue, Interaction, InteractionsBuilder};
        use std::sync::Arc;
        // Two taste groups: even users like items 0..10, odd users items 10..20.
        let mut b = InteractionsBuilder::new();
        let mut groups = FeatureTable::new();
        for u in 0..40u32 {
            let user = format!("u{u}");
            let base = if u % 2 == 0 { 0 } else { 10 };
            for i in (0..10u32).filter(|i| (i + u) % 3 != 0) {
                b.push(Interaction::rating(
                    &user,
                    &format!("i{}", base + i),
                    5.0,
                    None,
                ));
            }
            let group = if u % 2 == 0 { "even" } else { "odd" };
            groups
                .set(&user, "group", FeatureValue::Categories(vec![group.into()]))
                .unwrap();
        }
        // Users known only from their features.
        let cold_even = b.intern_user("new-even");
        let cold_odd = b.intern_user("new-odd");
        groups
            .set(
                "new-even",
                "group",
                FeatureValue::Categories(vec!["even".into()]),
            )
            .unwrap();
        groups
            .set(
                "new-odd",
                "group",
                FeatureValue::Categories(vec!["odd".into()]),
            )
            .unwrap();
        let train = TrainSet::new(b.build()).with_features(None, Some(Arc::new(groups)));
        let item = |i: u32| train.data.item_ids().get(&format!("i{i}")).unwrap() as usize;
        let ctx = FitContext::default();
        let model = small(|p| {
            p.user_features = true;
            p.epochs = 30;
        })
        .fit(&train, &ctx)
        .unwrap();
        let mut scores = vec![0f32; train.n_items()];
        for (user, liked) in [(cold_even, 0..10u32), (cold_odd, 10..20u32)] {
            model.score_all(&UserQuery::known(user), &mut scores);
            let mean =
                |range: std::ops::Range<u32>| range.map(|i| scores[item(i)]).sum::<f32>() / 10.0;
            let other = if liked.start == 0 { 10..20 } else { 0..10 };
            let (a, b) = (mean(liked), mean(other));
            assert!(
                a > b + 0.5,
                "cold user {user}: liked group {a}, other group {b}"
            );
        }
    }

    #[test]
    fn anonymous_users_fold_in_and_bad_params_fail() {
        let (train, _, _) = split(
            "users=60,items=40,per_user=15,seed=2",
            "temporal:0.2,positive>=4",
        );
        let ctx = FitContext::default();
        let model = small(|p| p.epochs = 2).fit(&train, &ctx).unwrap();
        let mut scores = vec![0f32; train.n_items()];
        model.score_all(&UserQuery::anonymous(&[0, 1]), &mut scores);
        let mut empty = vec![0f32; train.n_items()];
        model.score_all(&UserQuery::anonymous(&[]), &mut empty);
        assert!(scores.iter().all(|s| s.is_finite()));
        assert_ne!(scores, empty, "a history changes the ranking");
        let err = |f: fn(&mut HybridParams)| small(f).fit(&train, &ctx).err().unwrap().to_string();
        assert!(err(|p| p.no_components = 0).contains("no_components"));
        assert!(err(|p| p.learning_rate = -1.0).contains("learning_rate"));
        assert!(err(|p| p.user_ids = false).contains("user features"));
        let bare = TrainSet::new(train.data.clone());
        let e = small(|p| p.item_ids = false)
            .fit(&bare, &ctx)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("item features"), "{e}");
    }
}
