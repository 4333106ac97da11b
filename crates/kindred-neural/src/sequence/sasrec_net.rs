//! The SASRec network (Kang and McAuley, "Self-Attentive Sequential Recommendation", 2018): item
//! and position embeddings, blocks of causal self-attention and a position-wise feed-forward
//! layer, and a final layer norm; the hidden state at a position scores the next item by its dot
//! product with the item's (shared input) embedding.
//!
//! Layout as in the reference PyTorch port the gSASRec authors build on: each block normalises
//! the queries (not the keys and values) before attention and adds the attention output to the
//! normalised queries; the feed-forward layer reads the normalised sum and adds its input back;
//! padded positions are zeroed after every block. Sequences are left-padded with item 0 to the
//! longest of their batch (at most `max_len`), and positions count back from the latest item, so
//! the latest always has position `max_len - 1`. Attention never reads a padded position (a key
//! mask beside the causal one), so a sequence's states do not depend on how much padding its
//! batch needed: batches of similar lengths train faster, and one sequence is served unpadded.
//!
//! Weights are initialised from the fit's seed (Xavier normal), and dropout masks are drawn from
//! the same generator, so a fit is a function of the data and the seed.

use std::sync::Arc;

use candle_core::{Device, Tensor, Var};
use kindred_core::{Error, Result, SplitMix64};

use super::fused_ops::{masked_softmax, standardise};

/// The network's dimensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetShape {
    /// Catalog items; embedding row 0 is the padding item, so item `i` is row `i + 1`.
    pub n_items: usize,
    pub dim: usize,
    pub max_len: usize,
    pub blocks: usize,
    pub heads: usize,
}

/// A learned affine map `x W + b`, `W` stored as (inputs, outputs).
struct Dense {
    weight: Var,
    bias: Var,
}

/// Layer normalisation over the last dimension.
struct Norm {
    gain: Var,
    bias: Var,
}

struct Block {
    attention_norm: Norm,
    query: Dense,
    key: Dense,
    value: Dense,
    feed_forward_norm: Norm,
    inner: Dense,
    outer: Dense,
}

/// The parameters and the forward pass.
pub struct SasRecNet {
    shape: NetShape,
    items: Var,
    positions: Var,
    blocks: Vec<Block>,
    last_norm: Norm,
}

/// Dropout for one forward pass: the rate and the generator of its masks.
pub struct Dropout<'r> {
    pub rate: f32,
    pub rng: &'r mut SplitMix64,
}

fn candle(e: candle_core::Error) -> Error {
    Error::InvalidInput(format!("sasrec: tensor operation failed: {e}"))
}

fn xavier(rng: &mut SplitMix64, rows: usize, cols: usize, device: &Device) -> Result<Var> {
    let std = (2.0 / (rows + cols) as f64).sqrt();
    let values: Vec<f32> = (0..rows * cols)
        .map(|_| (rng.normal() * std) as f32)
        .collect();
    Var::from_vec(values, (rows, cols), device).map_err(candle)
}

fn constant(value: f32, len: usize, device: &Device) -> Result<Var> {
    Var::from_vec(vec![value; len], len, device).map_err(candle)
}

impl Dense {
    fn new(rng: &mut SplitMix64, inputs: usize, outputs: usize, device: &Device) -> Result<Self> {
        Ok(Self {
            weight: xavier(rng, inputs, outputs, device)?,
            bias: constant(0.0, outputs, device)?,
        })
    }

    /// `x` of shape (.., inputs) to (.., outputs).
    fn apply(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let dims = x.dims().to_vec();
        let inputs = dims[dims.len() - 1];
        let rows = x.elem_count() / inputs;
        let out = x
            .reshape((rows, inputs))?
            .matmul(self.weight.as_tensor())?
            .broadcast_add(self.bias.as_tensor())?;
        let mut shape = dims;
        let last = shape.len() - 1;
        shape[last] = out.dim(1)?;
        out.reshape(shape)
    }
}

impl Norm {
    fn new(dim: usize, device: &Device) -> Result<Self> {
        Ok(Self {
            gain: constant(1.0, dim, device)?,
            bias: constant(0.0, dim, device)?,
        })
    }

    fn apply(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        standardise(x, 1e-8)?
            .broadcast_mul(self.gain.as_tensor())?
            .broadcast_add(self.bias.as_tensor())
    }
}

fn dropout(x: &Tensor, dropout: &mut Option<Dropout<'_>>) -> candle_core::Result<Tensor> {
    let Some(d) = dropout.as_mut().filter(|d| d.rate > 0.0) else {
        return Ok(x.clone());
    };
    let keep = 1.0 - d.rate;
    let scale = 1.0 / keep;
    // Two 32-bit uniform draws from every 64-bit one: the masks are the largest random draws of
    // a training step.
    let threshold = (f64::from(keep) * 4_294_967_296.0) as u64;
    let n = x.elem_count();
    let mut mask = Vec::with_capacity(n + 1);
    while mask.len() < n {
        let bits = d.rng.next_u64();
        for half in [bits & 0xffff_ffff, bits >> 32] {
            mask.push(if half < threshold { scale } else { 0.0 });
        }
    }
    mask.truncate(n);
    x.mul(&Tensor::from_vec(mask, x.shape(), x.device())?)
}

impl SasRecNet {
    /// A network with weights drawn from `seed`.
    pub fn new(shape: NetShape, seed: u64) -> Result<Self> {
        if shape.heads == 0 || !shape.dim.is_multiple_of(shape.heads) {
            return Err(Error::InvalidInput(format!(
                "sasrec: dim ({}) must be a multiple of heads ({})",
                shape.dim, shape.heads
            )));
        }
        let device = Device::Cpu;
        let mut rng = SplitMix64::new(seed);
        let d = shape.dim;
        let items = xavier(&mut rng, shape.n_items + 1, d, &device)?;
        let positions = xavier(&mut rng, shape.max_len, d, &device)?;
        let blocks = (0..shape.blocks)
            .map(|_| {
                Ok(Block {
                    attention_norm: Norm::new(d, &device)?,
                    query: Dense::new(&mut rng, d, d, &device)?,
                    key: Dense::new(&mut rng, d, d, &device)?,
                    value: Dense::new(&mut rng, d, d, &device)?,
                    feed_forward_norm: Norm::new(d, &device)?,
                    inner: Dense::new(&mut rng, d, d, &device)?,
                    outer: Dense::new(&mut rng, d, d, &device)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            shape,
            items,
            positions,
            blocks,
            last_norm: Norm::new(d, &device)?,
        })
    }

    pub fn shape(&self) -> NetShape {
        self.shape
    }

    /// Every parameter with a stable name, for the optimiser and for saving.
    pub fn named_vars(&self) -> Vec<(String, &Var)> {
        let mut out = vec![
            ("items".to_owned(), &self.items),
            ("positions".to_owned(), &self.positions),
        ];
        for (b, block) in self.blocks.iter().enumerate() {
            let norms = [
                ("attention_norm", &block.attention_norm),
                ("feed_forward_norm", &block.feed_forward_norm),
            ];
            for (name, norm) in norms {
                out.push((format!("block{b}.{name}.gain"), &norm.gain));
                out.push((format!("block{b}.{name}.bias"), &norm.bias));
            }
            let denses = [
                ("query", &block.query),
                ("key", &block.key),
                ("value", &block.value),
                ("inner", &block.inner),
                ("outer", &block.outer),
            ];
            for (name, dense) in denses {
                out.push((format!("block{b}.{name}.weight"), &dense.weight));
                out.push((format!("block{b}.{name}.bias"), &dense.bias));
            }
        }
        out.push(("last_norm.gain".to_owned(), &self.last_norm.gain));
        out.push(("last_norm.bias".to_owned(), &self.last_norm.bias));
        out
    }

    /// The item embedding table, padding row first: (n_items + 1, dim).
    pub fn item_table(&self) -> &Tensor {
        self.items.as_tensor()
    }

    /// Hidden states (batch, len, dim) of `batch` sequences of `len` positions (at most
    /// `max_len`), left-padded and laid end to end in `ids` (embedding rows: item + 1, 0 for
    /// padding).
    pub fn forward(
        &self,
        ids: &[u32],
        batch: usize,
        mut drop: Option<Dropout<'_>>,
    ) -> Result<Tensor> {
        let len = ids.len() / batch.max(1);
        if batch == 0 || len == 0 || len > self.shape.max_len || len * batch != ids.len() {
            return Err(Error::InvalidInput(format!(
                "sasrec: {} ids do not make {batch} sequences of at most {} positions",
                ids.len(),
                self.shape.max_len
            )));
        }
        self.forward_inner(ids, batch, len, &mut drop)
            .map_err(candle)
    }

    fn forward_inner(
        &self,
        ids: &[u32],
        batch: usize,
        l: usize,
        drop: &mut Option<Dropout<'_>>,
    ) -> candle_core::Result<Tensor> {
        let (d, h) = (self.shape.dim, self.shape.heads);
        let device = Device::Cpu;
        let id_tensor = Tensor::from_slice(ids, batch * l, &device)?;
        let keys: Arc<Vec<bool>> = Arc::new(ids.iter().map(|&i| i != 0).collect());
        let present: Vec<f32> = keys.iter().map(|&p| f32::from(u8::from(p))).collect();
        let present = Tensor::from_vec(present, (batch, l, 1), &device)?;
        let positions = self
            .positions
            .as_tensor()
            .narrow(0, self.shape.max_len - l, l)?;
        let mut x = (self
            .items
            .as_tensor()
            .index_select(&id_tensor, 0)?
            .reshape((batch, l, d))?
            * (d as f64).sqrt())?
        .broadcast_add(&positions)?;
        x = dropout(&x, drop)?.broadcast_mul(&present)?;
        let head = d / h;
        let split = |t: Tensor| -> candle_core::Result<Tensor> {
            t.reshape((batch, l, h, head))?
                .transpose(1, 2)?
                .contiguous()
        };
        for block in &self.blocks {
            let queries_in = block.attention_norm.apply(&x)?;
            let q = split(block.query.apply(&queries_in)?)?;
            let k = split(block.key.apply(&x)?)?;
            let v = split(block.value.apply(&x)?)?;
            let scores = q.matmul(&k.t()?.contiguous()?)?;
            let scale = 1.0 / (head as f32).sqrt();
            let weights = dropout(&masked_softmax(&scores, keys.clone(), scale)?, drop)?;
            let attended = weights
                .matmul(&v)?
                .transpose(1, 2)?
                .contiguous()?
                .reshape((batch, l, d))?;
            let y = block.feed_forward_norm.apply(&(queries_in + attended)?)?;
            let inner = dropout(&block.inner.apply(&y)?.relu()?, drop)?;
            let outer = dropout(&block.outer.apply(&inner)?, drop)?;
            x = (y + outer)?.broadcast_mul(&present)?;
        }
        self.last_norm.apply(&x)
    }

    /// Replaces every parameter's values (e.g. the best epoch's, or a saved model's), checking
    /// names and shapes.
    pub fn set_all(&self, values: &[(String, Tensor)]) -> Result<()> {
        let vars = self.named_vars();
        if vars.len() != values.len() {
            return Err(Error::InvalidInput(format!(
                "sasrec: {} parameter tensors where the network has {}",
                values.len(),
                vars.len()
            )));
        }
        for ((name, var), (given, value)) in vars.iter().zip(values) {
            if name != given || var.dims() != value.dims() {
                return Err(Error::InvalidInput(format!(
                    "sasrec: parameter `{given}` {:?} does not fit `{name}` {:?}",
                    value.dims(),
                    var.dims()
                )));
            }
            var.set(value).map_err(candle)?;
        }
        Ok(())
    }

    /// A copy of every parameter's current values.
    pub fn snapshot(&self) -> Result<Vec<(String, Tensor)>> {
        self.named_vars()
            .into_iter()
            .map(|(name, var)| Ok((name, var.as_tensor().copy().map_err(candle)?)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padding_does_not_change_a_sequence_s_states() {
        let shape = NetShape {
            n_items: 20,
            dim: 8,
            max_len: 10,
            blocks: 2,
            heads: 2,
        };
        let net = SasRecNet::new(shape, 7).unwrap();
        let last = |ids: &[u32], batch: usize| -> Vec<f32> {
            let len = ids.len() / batch;
            net.forward(ids, batch, None)
                .unwrap()
                .narrow(1, len - 1, 1)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap()
        };
        let exact = last(&[3, 9, 4], 1);
        let padded = last(&[0, 0, 0, 0, 3, 9, 4], 1);
        // In a batch beside a longer sequence.
        let batched = last(&[0, 0, 3, 9, 4, 1, 2, 5, 6, 7], 2);
        for (a, b) in exact
            .iter()
            .zip(&padded)
            .chain(exact.iter().zip(&batched[..8]))
        {
            assert!((a - b).abs() < 1e-5, "{exact:?} {padded:?} {batched:?}");
        }
        assert!(
            net.forward(&[1; 11], 1, None).is_err(),
            "longer than max_len"
        );
        assert!(net.forward(&[1; 5], 2, None).is_err(), "not a whole batch");
    }
}
