//! The BERT transformer's forward pass (inference only): token, position and segment
//! embeddings, then layers of multi-head self-attention and a feed-forward block, each followed
//! by a residual connection and layer normalisation. Weights are read under the names Hugging
//! Face's `BertModel` saves (`embeddings.*`, `encoder.layer.N.*`), with or without a `bert.`
//! prefix.

use candle_core::{DType, Device, Module, Tensor, D};
use candle_nn::{embedding, layer_norm, linear, Embedding, LayerNorm, Linear, VarBuilder};

use super::encoder_dir::BertConfig;

/// The feed-forward block's activation.
#[derive(Debug, Clone, Copy)]
enum Activation {
    /// The exact GELU, `x Φ(x)` (BERT's `gelu`).
    GeluErf,
    /// The tanh approximation (`gelu_new`).
    GeluTanh,
    Relu,
}

impl Activation {
    fn apply(self, x: &Tensor) -> candle_core::Result<Tensor> {
        match self {
            Self::GeluErf => x.gelu_erf(),
            Self::GeluTanh => x.gelu(),
            Self::Relu => x.relu(),
        }
    }
}

struct Embeddings {
    words: Embedding,
    positions: Embedding,
    segments: Embedding,
    norm: LayerNorm,
}

struct Layer {
    query: Linear,
    key: Linear,
    value: Linear,
    attention_out: Linear,
    attention_norm: LayerNorm,
    intermediate: Linear,
    output: Linear,
    output_norm: LayerNorm,
}

/// A loaded BERT encoder.
pub struct Bert {
    embeddings: Embeddings,
    layers: Vec<Layer>,
    heads: usize,
    head_size: usize,
    activation: Activation,
    device: Device,
}

impl Bert {
    /// Builds the model from weights in `vb`.
    pub fn load(vb: VarBuilder, config: &BertConfig) -> candle_core::Result<Self> {
        let vb = if vb.contains_tensor("bert.embeddings.word_embeddings.weight") {
            vb.pp("bert")
        } else {
            vb
        };
        let hidden = config.hidden_size;
        let eps = config.layer_norm_eps;
        let emb = vb.pp("embeddings");
        let embeddings = Embeddings {
            words: embedding(config.vocab_size, hidden, emb.pp("word_embeddings"))?,
            positions: embedding(
                config.max_position_embeddings,
                hidden,
                emb.pp("position_embeddings"),
            )?,
            segments: embedding(
                config.type_vocab_size,
                hidden,
                emb.pp("token_type_embeddings"),
            )?,
            norm: layer_norm(hidden, eps, emb.pp("LayerNorm"))?,
        };
        let layers = (0..config.num_hidden_layers)
            .map(|i| {
                let vb = vb.pp(format!("encoder.layer.{i}"));
                let attention = vb.pp("attention");
                Ok(Layer {
                    query: linear(hidden, hidden, attention.pp("self.query"))?,
                    key: linear(hidden, hidden, attention.pp("self.key"))?,
                    value: linear(hidden, hidden, attention.pp("self.value"))?,
                    attention_out: linear(hidden, hidden, attention.pp("output.dense"))?,
                    attention_norm: layer_norm(hidden, eps, attention.pp("output.LayerNorm"))?,
                    intermediate: linear(
                        hidden,
                        config.intermediate_size,
                        vb.pp("intermediate.dense"),
                    )?,
                    output: linear(config.intermediate_size, hidden, vb.pp("output.dense"))?,
                    output_norm: layer_norm(hidden, eps, vb.pp("output.LayerNorm"))?,
                })
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        let activation = match config.hidden_act.as_str() {
            "gelu_new" => Activation::GeluTanh,
            "relu" => Activation::Relu,
            _ => Activation::GeluErf,
        };
        Ok(Self {
            embeddings,
            layers,
            heads: config.num_attention_heads,
            head_size: hidden / config.num_attention_heads,
            activation,
            device: vb.device().clone(),
        })
    }

    /// The last layer's token vectors, `[batch, tokens, hidden]`, for `ids` `[batch, tokens]`
    /// (u32) whose padding is 0 in `mask` `[batch, tokens]` (f32, 1 for real tokens).
    pub fn forward(&self, ids: &Tensor, mask: &Tensor) -> candle_core::Result<Tensor> {
        let (batch, tokens) = ids.dims2()?;
        let positions = Tensor::arange(0u32, tokens as u32, &self.device)?
            .unsqueeze(0)?
            .broadcast_as((batch, tokens))?;
        let segments = Tensor::zeros((batch, tokens), DType::U32, &self.device)?;
        let e = &self.embeddings;
        let mut x = e
            .words
            .forward(ids)?
            .add(&e.positions.forward(&positions)?)?
            .add(&e.segments.forward(&segments)?)?;
        x = e.norm.forward(&x)?;
        // Padding gets a large negative score before the softmax, so its weight is zero.
        let bias = ((mask.ones_like()? - mask)? * -1e9)?
            .reshape((batch, 1, 1, tokens))?
            .to_dtype(x.dtype())?;
        for layer in &self.layers {
            x = self.layer_forward(layer, &x, &bias)?;
        }
        Ok(x)
    }

    fn layer_forward(
        &self,
        layer: &Layer,
        x: &Tensor,
        bias: &Tensor,
    ) -> candle_core::Result<Tensor> {
        let (batch, tokens, hidden) = x.dims3()?;
        let split_heads = |t: Tensor| -> candle_core::Result<Tensor> {
            t.reshape((batch, tokens, self.heads, self.head_size))?
                .transpose(1, 2)?
                .contiguous()
        };
        let q = split_heads(layer.query.forward(x)?)?;
        let k = split_heads(layer.key.forward(x)?)?;
        let v = split_heads(layer.value.forward(x)?)?;
        let scale = 1.0 / (self.head_size as f64).sqrt();
        let scores = (q.matmul(&k.t()?)? * scale)?.broadcast_add(bias)?;
        let weights = candle_nn::ops::softmax_last_dim(&scores)?;
        let context = weights
            .matmul(&v)?
            .transpose(1, 2)?
            .reshape((batch, tokens, hidden))?;
        let attended = layer
            .attention_norm
            .forward(&(layer.attention_out.forward(&context)? + x)?)?;
        let inner = self
            .activation
            .apply(&layer.intermediate.forward(&attended)?)?;
        layer
            .output_norm
            .forward(&(layer.output.forward(&inner)? + &attended)?)
    }
}

/// Sentence vectors `[batch, hidden]` from token vectors `[batch, tokens, hidden]`: the mean over
/// the tokens `mask` `[batch, tokens]` keeps.
pub fn mean_pool(tokens: &Tensor, mask: &Tensor) -> candle_core::Result<Tensor> {
    let mask = mask.to_dtype(tokens.dtype())?.unsqueeze(D::Minus1)?;
    let sum = tokens.broadcast_mul(&mask)?.sum(1)?;
    let count = mask.sum(1)?.clamp(1e-9, f64::MAX)?;
    sum.broadcast_div(&count)
}

/// Sentence vectors from the first token (`[CLS]`).
pub fn cls_pool(tokens: &Tensor) -> candle_core::Result<Tensor> {
    tokens.narrow(1, 0, 1)?.squeeze(1)
}

/// Rows scaled to unit L2 norm (norms below 1e-12 are taken as 1e-12, as PyTorch's `normalize`).
pub fn normalize_rows(x: &Tensor) -> candle_core::Result<Tensor> {
    let norm = x
        .sqr()?
        .sum_keepdim(D::Minus1)?
        .sqrt()?
        .clamp(1e-12, f64::MAX)?;
    x.broadcast_div(&norm)
}
