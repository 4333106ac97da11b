//! The item-item Gram matrix `X^T X` of the user x item matrix (dense, row-major), accumulated
//! per item from the sparse rows in parallel: the normal equations of EASE and SLIM.

use std::ops::{AddAssign, Mul};

use kindred_core::{FitContext, Result};
use rayon::prelude::*;

use crate::common::weighted_rows::WeightedRows;

/// `G[i][j] = sum over users of value(x_ui) value(x_uj)`, n x n row-major, where `value` maps a
/// pair's summed weight to what it contributes (1 for binary data). `T` is f64 where `G` is
/// inverted (EASE) and f32 where only neighbourhoods of it are read (SLIM: half the memory).
pub(crate) fn item_gram<T>(
    by_user: &WeightedRows,
    by_item: &WeightedRows,
    value: impl Fn(f32) -> f32 + Sync,
    label: &str,
    ctx: &FitContext,
) -> Result<Vec<T>>
where
    T: Copy + Default + Send + Sync + AddAssign + Mul<Output = T> + From<f32>,
{
    let n = by_item.n_rows();
    let mut g = vec![T::default(); n * n];
    ctx.progress.begin(label, n as u64);
    g.par_chunks_mut(n.max(1))
        .enumerate()
        .with_min_len(8)
        .try_for_each(|(i, row)| -> Result<()> {
            ctx.cancel.check()?;
            let (users, weights) = by_item.row(i);
            for (&u, &wi) in users.iter().zip(weights) {
                let vi = T::from(value(wi));
                let (items, wj) = by_user.row(u as usize);
                for (&j, &wj) in items.iter().zip(wj) {
                    row[j as usize] += vi * T::from(value(wj));
                }
            }
            ctx.progress.advance(1);
            Ok(())
        })?;
    ctx.progress.finish();
    Ok(g)
}
