//! Fused CPU tensor operations, each with its gradient, for the passes that dominate SASRec
//! training: the masked attention softmax, the log-sigmoid of gBCE, the sampled softmax
//! cross-entropy and the standardisation inside layer normalisation.
//!
//! Written out of candle's elementwise primitives, each of these takes five to ten passes over
//! its tensor forward and more backward, with a fresh allocation per pass; on the attention
//! scores (batch x len x len) that was most of a training step. Here each is one pass forward and
//! one backward, row by row in parallel. They stay candle operations (custom ops with a backward),
//! so autodiff and the optimiser see them like any other. The tests check values and gradients
//! against the composite formulas.

use std::sync::Arc;

use candle_core::{
    bail, CpuStorage, CustomOp1, CustomOp2, Layout, Result as CandleResult, Shape, Tensor,
};
use rayon::prelude::*;

/// The contiguous f32 values of a custom op's input.
fn values<'a>(storage: &'a CpuStorage, layout: &Layout, op: &str) -> CandleResult<&'a [f32]> {
    let CpuStorage::F32(all) = storage else {
        bail!("{op}: only f32 tensors are supported")
    };
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&all[start..end]),
        None => bail!("{op}: the input must be contiguous"),
    }
}

/// The last dimension of `layout`, the length of the rows an op works on.
fn row_len(layout: &Layout, op: &str) -> CandleResult<usize> {
    match layout.dims().last() {
        Some(&n) if n > 0 => Ok(n),
        _ => bail!("{op}: the input needs a non-empty last dimension"),
    }
}

/// Runs `f` on every row of two same-shaped inputs, writing one output row each.
fn map_rows2(
    (a, la): (&CpuStorage, &Layout),
    (b, lb): (&CpuStorage, &Layout),
    op: &str,
    f: impl Fn(usize, &[f32], &[f32], &mut [f32]) + Sync,
) -> CandleResult<(CpuStorage, Shape)> {
    if la.dims() != lb.dims() {
        bail!("{op}: shapes {:?} and {:?} differ", la.dims(), lb.dims())
    }
    let n = row_len(la, op)?;
    let (a, b) = (values(a, la, op)?, values(b, lb, op)?);
    let mut out = vec![0f32; a.len()];
    out.par_chunks_mut(n)
        .zip(a.par_chunks(n).zip(b.par_chunks(n)))
        .enumerate()
        .for_each(|(row, (o, (x, y)))| f(row, x, y, o));
    Ok((CpuStorage::F32(out), la.shape().clone()))
}

/// Runs `f` on every row of one input, writing one output row each.
fn map_rows1(
    (a, la): (&CpuStorage, &Layout),
    op: &str,
    f: impl Fn(usize, &[f32], &mut [f32]) + Sync,
) -> CandleResult<(CpuStorage, Shape)> {
    let n = row_len(la, op)?;
    let a = values(a, la, op)?;
    let mut out = vec![0f32; a.len()];
    out.par_chunks_mut(n)
        .zip(a.par_chunks(n))
        .enumerate()
        .for_each(|(row, (o, x))| f(row, x, o));
    Ok((CpuStorage::F32(out), la.shape().clone()))
}

/// Softmax over the last dimension of attention scores (batch, heads, len, len) times `scale`,
/// where query `q` may read key `k` only when `k <= q` and key `k` of its sequence is present
/// (not padding). Masked weights are exactly zero; a query that may read nothing (a padded
/// position) gets all zeros.
pub fn masked_softmax(
    scores: &Tensor,
    present: Arc<Vec<bool>>,
    scale: f32,
) -> CandleResult<Tensor> {
    let (batch, heads, len, keys) = scores.dims4()?;
    if len != keys || present.len() != batch * len {
        bail!(
            "masked softmax: scores {:?} do not fit {} presence flags",
            scores.dims(),
            present.len()
        )
    }
    scores.contiguous()?.apply_op1(MaskedSoftmax {
        present,
        heads,
        len,
        scale,
    })
}

struct MaskedSoftmax {
    present: Arc<Vec<bool>>,
    heads: usize,
    len: usize,
    scale: f32,
}

impl MaskedSoftmax {
    /// Whether query row `row` (over batch, heads, queries) may read key `k`.
    fn readable(&self, row: usize) -> impl Fn(usize) -> bool + '_ {
        let query = row % self.len;
        let sequence = row / (self.len * self.heads);
        let present = &self.present[sequence * self.len..(sequence + 1) * self.len];
        move |k| k <= query && present[k]
    }
}

impl CustomOp1 for MaskedSoftmax {
    fn name(&self) -> &'static str {
        "masked-softmax"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> CandleResult<(CpuStorage, Shape)> {
        map_rows1((storage, layout), self.name(), |row, x, out| {
            let readable = self.readable(row);
            let mut max = f32::NEG_INFINITY;
            for (k, &v) in x.iter().enumerate() {
                if readable(k) {
                    max = max.max(v * self.scale);
                }
            }
            if max == f32::NEG_INFINITY {
                return;
            }
            let mut sum = 0.0;
            for (k, (o, &v)) in out.iter_mut().zip(x).enumerate() {
                if readable(k) {
                    *o = (v * self.scale - max).exp();
                    sum += *o;
                }
            }
            let inverse = 1.0 / sum;
            out.iter_mut().for_each(|o| *o *= inverse);
        })
    }

    fn bwd(&self, _arg: &Tensor, res: &Tensor, grad_res: &Tensor) -> CandleResult<Option<Tensor>> {
        let grad =
            res.apply_op2_no_bwd(&grad_res.contiguous()?, &SoftmaxGrad { scale: self.scale })?;
        Ok(Some(grad))
    }
}

/// The gradient of a softmax row `y` of `scale * x`: `scale * y * (g - sum(y * g))`.
struct SoftmaxGrad {
    scale: f32,
}

impl CustomOp2 for SoftmaxGrad {
    fn name(&self) -> &'static str {
        "masked-softmax-grad"
    }

    fn cpu_fwd(
        &self,
        y: &CpuStorage,
        ly: &Layout,
        g: &CpuStorage,
        lg: &Layout,
    ) -> CandleResult<(CpuStorage, Shape)> {
        map_rows2((y, ly), (g, lg), self.name(), |_, y, g, out| {
            let dot: f32 = y.iter().zip(g).map(|(a, b)| a * b).sum();
            for ((o, &y), &g) in out.iter_mut().zip(y).zip(g) {
                *o = self.scale * y * (g - dot);
            }
        })
    }
}

/// `ln sigmoid(x)`, elementwise, computed stably for large `|x|`.
pub fn log_sigmoid(x: &Tensor) -> CandleResult<Tensor> {
    x.contiguous()?.apply_op1(LogSigmoid)
}

struct LogSigmoid;

impl CustomOp1 for LogSigmoid {
    fn name(&self) -> &'static str {
        "log-sigmoid"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> CandleResult<(CpuStorage, Shape)> {
        map_rows1((storage, layout), self.name(), |_, x, out| {
            for (o, &v) in out.iter_mut().zip(x) {
                // ln sigmoid(v) = min(v, 0) - ln(1 + e^-|v|)
                *o = v.min(0.0) - (-v.abs()).exp().ln_1p();
            }
        })
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> CandleResult<Option<Tensor>> {
        let grad = arg.apply_op2_no_bwd(&grad_res.contiguous()?, &LogSigmoidGrad)?;
        Ok(Some(grad))
    }
}

/// d/dx ln sigmoid(x) = sigmoid(-x).
struct LogSigmoidGrad;

impl CustomOp2 for LogSigmoidGrad {
    fn name(&self) -> &'static str {
        "log-sigmoid-grad"
    }

    fn cpu_fwd(
        &self,
        x: &CpuStorage,
        lx: &Layout,
        g: &CpuStorage,
        lg: &Layout,
    ) -> CandleResult<(CpuStorage, Shape)> {
        map_rows2((x, lx), (g, lg), self.name(), |_, x, g, out| {
            for ((o, &x), &g) in out.iter_mut().zip(x).zip(g) {
                *o = g / (1.0 + x.exp());
            }
        })
    }
}

/// The columns of sampled-softmax logits: column 0 is each row's positive and column `1 + j` its
/// score of the shared negative `negatives[j]`; a negative that is the row's own target is left
/// out of its row, and a row whose target is 0 is padding.
#[derive(Clone)]
pub struct SampledColumns {
    pub targets: Arc<Vec<u32>>,
    pub negatives: Arc<Vec<u32>>,
}

impl SampledColumns {
    /// Whether column `c` of `row` takes part.
    fn counts(&self, row: usize, c: usize) -> bool {
        c == 0 || self.negatives[c - 1] != self.targets[row]
    }

    /// The row's softmax over the columns that take part, written into `out` (others 0).
    fn softmax(&self, row: usize, x: &[f32], out: &mut [f32]) {
        let mut max = f32::NEG_INFINITY;
        for (c, &v) in x.iter().enumerate() {
            if self.counts(row, c) {
                max = max.max(v);
            }
        }
        let mut sum = 0.0;
        for (c, (o, &v)) in out.iter_mut().zip(x).enumerate() {
            *o = if self.counts(row, c) {
                (v - max).exp()
            } else {
                0.0
            };
            sum += *o;
        }
        let inverse = 1.0 / sum;
        out.iter_mut().for_each(|o| *o *= inverse);
    }
}

/// Per-row cross-entropy of column 0 against the other columns that take part (`columns` says
/// which): `logits` (rows, 1 + negatives), returns (rows,), 0 on padding rows.
pub fn softmax_cross_entropy(logits: &Tensor, columns: SampledColumns) -> CandleResult<Tensor> {
    let (rows, width) = logits.dims2()?;
    let targets = &columns.targets;
    if rows != targets.len() || width != columns.negatives.len() + 1 {
        bail!(
            "softmax cross-entropy: logits {:?} do not fit {} targets",
            logits.dims(),
            targets.len()
        )
    }
    logits
        .contiguous()?
        .apply_op1(SoftmaxCrossEntropy { columns })
}

struct SoftmaxCrossEntropy {
    columns: SampledColumns,
}

impl CustomOp1 for SoftmaxCrossEntropy {
    fn name(&self) -> &'static str {
        "softmax-cross-entropy"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> CandleResult<(CpuStorage, Shape)> {
        let n = row_len(layout, self.name())?;
        let x = values(storage, layout, self.name())?;
        let rows = self.columns.targets.len();
        let mut out = vec![0f32; rows];
        out.par_iter_mut()
            .zip(x.par_chunks(n))
            .enumerate()
            .for_each_init(
                || vec![0f32; n],
                |probabilities, (row, (o, x))| {
                    if self.columns.targets[row] != 0 {
                        self.columns.softmax(row, x, probabilities);
                        *o = -probabilities[0].max(f32::MIN_POSITIVE).ln();
                    }
                },
            );
        Ok((CpuStorage::F32(out), Shape::from(rows)))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> CandleResult<Option<Tensor>> {
        let grad = arg.apply_op2_no_bwd(
            &grad_res.contiguous()?,
            &SoftmaxCrossEntropyGrad {
                columns: self.columns.clone(),
            },
        )?;
        Ok(Some(grad))
    }
}

/// `g * (softmax - onehot(0))` per row, 0 on padding rows.
struct SoftmaxCrossEntropyGrad {
    columns: SampledColumns,
}

impl CustomOp2 for SoftmaxCrossEntropyGrad {
    fn name(&self) -> &'static str {
        "softmax-cross-entropy-grad"
    }

    fn cpu_fwd(
        &self,
        x: &CpuStorage,
        lx: &Layout,
        g: &CpuStorage,
        lg: &Layout,
    ) -> CandleResult<(CpuStorage, Shape)> {
        let n = row_len(lx, self.name())?;
        let x = values(x, lx, self.name())?;
        let g = values(g, lg, self.name())?;
        let mut out = vec![0f32; x.len()];
        out.par_chunks_mut(n)
            .zip(x.par_chunks(n))
            .enumerate()
            .for_each(|(row, (o, x))| {
                if self.columns.targets[row] != 0 {
                    self.columns.softmax(row, x, o);
                    o[0] -= 1.0;
                    o.iter_mut().for_each(|v| *v *= g[row]);
                }
            });
        Ok((CpuStorage::F32(out), lx.shape().clone()))
    }
}

/// Each row of the last dimension shifted to mean 0 and scaled to variance 1 (`eps` added to
/// the variance): layer normalisation before its gain and bias.
pub fn standardise(x: &Tensor, eps: f32) -> CandleResult<Tensor> {
    x.contiguous()?.apply_op1(Standardise { eps })
}

struct Standardise {
    eps: f32,
}

/// A row's mean and `1 / sqrt(variance + eps)`.
fn moments(x: &[f32], eps: f32) -> (f32, f32) {
    let n = x.len() as f32;
    let mean = x.iter().sum::<f32>() / n;
    let variance = x.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n;
    (mean, 1.0 / (variance + eps).sqrt())
}

impl CustomOp1 for Standardise {
    fn name(&self) -> &'static str {
        "standardise"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> CandleResult<(CpuStorage, Shape)> {
        map_rows1((storage, layout), self.name(), |_, x, out| {
            let (mean, inverse_std) = moments(x, self.eps);
            for (o, &v) in out.iter_mut().zip(x) {
                *o = (v - mean) * inverse_std;
            }
        })
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> CandleResult<Option<Tensor>> {
        let grad =
            arg.apply_op2_no_bwd(&grad_res.contiguous()?, &StandardiseGrad { eps: self.eps })?;
        Ok(Some(grad))
    }
}

/// With `z` the standardised row: `dx = (g - mean(g) - z * mean(g * z)) / std`.
struct StandardiseGrad {
    eps: f32,
}

impl CustomOp2 for StandardiseGrad {
    fn name(&self) -> &'static str {
        "standardise-grad"
    }

    fn cpu_fwd(
        &self,
        x: &CpuStorage,
        lx: &Layout,
        g: &CpuStorage,
        lg: &Layout,
    ) -> CandleResult<(CpuStorage, Shape)> {
        map_rows2((x, lx), (g, lg), self.name(), |_, x, g, out| {
            let n = x.len() as f32;
            let (mean, inverse_std) = moments(x, self.eps);
            let mean_g = g.iter().sum::<f32>() / n;
            let mean_gz = x
                .iter()
                .zip(g)
                .map(|(&v, &g)| g * (v - mean) * inverse_std)
                .sum::<f32>()
                / n;
            for ((o, &v), &g) in out.iter_mut().zip(x).zip(g) {
                let z = (v - mean) * inverse_std;
                *o = (g - mean_g - z * mean_gz) * inverse_std;
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var, D};
    use kindred_core::SplitMix64;

    fn random(rng: &mut SplitMix64, dims: &[usize]) -> Var {
        let n = dims.iter().product();
        let values: Vec<f32> = (0..n).map(|_| rng.normal() as f32 * 2.0).collect();
        Var::from_vec(values, dims, &Device::Cpu).unwrap()
    }

    fn flat(t: &Tensor) -> Vec<f32> {
        t.flatten_all().unwrap().to_vec1().unwrap()
    }

    fn assert_close(a: &[f32], b: &[f32], what: &str) {
        assert_eq!(a.len(), b.len(), "{what}");
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!(
                (x - y).abs() <= 1e-4 * (1.0 + y.abs()),
                "{what}[{i}]: {x} vs {y}"
            );
        }
    }

    /// Compares an op's values and its gradient (under a weighted sum) with a composite twin.
    fn agrees(
        x: &Var,
        fused: impl Fn(&Tensor) -> Tensor,
        composite: impl Fn(&Tensor) -> Tensor,
        rng: &mut SplitMix64,
        what: &str,
    ) {
        let (a, b) = (fused(x.as_tensor()), composite(x.as_tensor()));
        assert_close(&flat(&a), &flat(&b), what);
        let weights = random(rng, a.dims()).as_tensor().clone();
        let grad_of = |t: &Tensor| {
            let grads = (t * &weights)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            flat(grads.get(x.as_tensor()).unwrap())
        };
        assert_close(&grad_of(&a), &grad_of(&b), &format!("{what} gradient"));
    }

    #[test]
    fn masked_softmax_agrees_with_the_composite_formula() {
        let mut rng = SplitMix64::new(3);
        let (batch, heads, len) = (3, 2, 5);
        let x = random(&mut rng, &[batch, heads, len, len]);
        // Sequence 0 full, 1 left-padded by two, 2 all padding but the last.
        let present: Vec<bool> = (0..batch * len)
            .map(|i| match i / len {
                0 => true,
                1 => i % len >= 2,
                _ => i % len == len - 1,
            })
            .collect();
        let bias: Vec<f32> = (0..batch * len * len)
            .map(|i| {
                let (s, q, k) = (i / (len * len), i / len % len, i % len);
                if k <= q && present[s * len + k] {
                    0.0
                } else {
                    -1e9
                }
            })
            .collect();
        let bias = Tensor::from_vec(bias, (batch, 1, len, len), &Device::Cpu).unwrap();
        // Rows that may read nothing are zero in the fused op; the composite spreads them
        // evenly, so both are multiplied by the row's readability.
        let readable: Vec<f32> = (0..batch * len)
            .map(|i| f32::from(u8::from(present[i / len * len..=i].iter().any(|&p| p))))
            .collect();
        let readable = Tensor::from_vec(readable, (batch, 1, len, 1), &Device::Cpu).unwrap();
        let present = Arc::new(present);
        agrees(
            &x,
            |t| {
                masked_softmax(t, present.clone(), 0.5)
                    .unwrap()
                    .broadcast_mul(&readable)
                    .unwrap()
            },
            |t| {
                let scores = (t * 0.5).unwrap().broadcast_add(&bias).unwrap();
                candle_nn::ops::softmax(&scores, D::Minus1)
                    .unwrap()
                    .broadcast_mul(&readable)
                    .unwrap()
            },
            &mut rng,
            "masked softmax",
        );
        let padded = masked_softmax(x.as_tensor(), present, 0.5).unwrap();
        let row = flat(&padded.narrow(0, 2, 1).unwrap().narrow(2, 0, 1).unwrap());
        assert!(
            row.iter().all(|&v| v == 0.0),
            "a padded query reads nothing"
        );
    }

    #[test]
    fn log_sigmoid_agrees_with_the_composite_formula() {
        let mut rng = SplitMix64::new(5);
        let x = random(&mut rng, &[4, 7]);
        agrees(
            &x,
            |t| log_sigmoid(t).unwrap(),
            |t| candle_nn::ops::sigmoid(t).unwrap().log().unwrap(),
            &mut rng,
            "log sigmoid",
        );
        let extreme = Tensor::new(&[-100f32, 100.0], &Device::Cpu).unwrap();
        let values = flat(&log_sigmoid(&extreme).unwrap());
        assert!(
            (values[0] + 100.0).abs() < 1e-4 && values[1].abs() < 1e-6,
            "{values:?}"
        );
    }

    #[test]
    fn softmax_cross_entropy_agrees_with_the_composite_formula() {
        let mut rng = SplitMix64::new(11);
        let targets = Arc::new(vec![4u32, 0, 7, 2]);
        let real = Tensor::new(&[1f32, 0.0, 1.0, 1.0], &Device::Cpu).unwrap();
        // Sampled: column 0 is the positive; row 2's target is negative 7 (column 2), left out.
        let sampled = SampledColumns {
            targets: targets.clone(),
            negatives: Arc::new(vec![1u32, 7, 3]),
        };
        let bias: Vec<f32> = (0..16)
            .map(|i| if i == 2 * 4 + 2 { -1e9 } else { 0.0 })
            .collect();
        let bias = Tensor::from_vec(bias, (4, 4), &Device::Cpu).unwrap();
        let x = random(&mut rng, &[4, 4]);
        agrees(
            &x,
            |t| softmax_cross_entropy(t, sampled.clone()).unwrap(),
            |t| {
                let log_p = candle_nn::ops::log_softmax(&(t + &bias).unwrap(), D::Minus1).unwrap();
                (log_p
                    .narrow(1, 0, 1)
                    .unwrap()
                    .squeeze(1)
                    .unwrap()
                    .neg()
                    .unwrap()
                    * &real)
                    .unwrap()
            },
            &mut rng,
            "sampled softmax",
        );
    }

    #[test]
    fn standardise_agrees_with_the_composite_formula() {
        let mut rng = SplitMix64::new(9);
        let x = random(&mut rng, &[2, 3, 6]);
        let (ones, zeros) = (
            Tensor::ones(6, candle_core::DType::F32, &Device::Cpu).unwrap(),
            Tensor::zeros(6, candle_core::DType::F32, &Device::Cpu).unwrap(),
        );
        agrees(
            &x,
            |t| standardise(t, 1e-8).unwrap(),
            |t| candle_nn::ops::layer_norm_slow(t, &ones, &zeros, 1e-8).unwrap(),
            &mut rng,
            "standardise",
        );
    }
}
