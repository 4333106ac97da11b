//! Sparse item-item weights by source item (CSR): row `i` lists the items an interaction with
//! `i` adds to, and by how much. Item-kNN's neighbour similarities and SLIM's regression weights
//! are both this matrix, saved and scored the same way: a history's items, newest first, each
//! weighted by its value and its recency, add their rows.

use kindred_core::{ItemIdx, Result};

use crate::common::histories::recency_decay;
use crate::persist::{TensorReader, TensorWriter};

#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct ItemWeights {
    pub indptr: Vec<u64>,
    pub items: Vec<ItemIdx>,
    pub weights: Vec<f32>,
}

impl ItemWeights {
    /// Row `item`: (items, weights); empty for an unknown item.
    pub(crate) fn of(&self, item: ItemIdx) -> (&[ItemIdx], &[f32]) {
        let i = item as usize;
        if i + 1 >= self.indptr.len() {
            return (&[], &[]);
        }
        let range = self.indptr[i] as usize..self.indptr[i + 1] as usize;
        (&self.items[range.clone()], &self.weights[range])
    }

    /// Adds `{prefix}.indptr`, `{prefix}.items` and `{prefix}.sims` (the weights; item-kNN's
    /// similarities gave the name).
    pub(crate) fn save_into(&self, tensors: &mut TensorWriter, prefix: &str) {
        tensors
            .u64(&format!("{prefix}.indptr"), &self.indptr)
            .u32(&format!("{prefix}.items"), &self.items)
            .f32(
                &format!("{prefix}.sims"),
                &[self.weights.len()],
                &self.weights,
            );
    }

    /// Reads what [`Self::save_into`] wrote, for a catalog of `n_items`.
    pub(crate) fn load(tensors: &TensorReader, prefix: &str, n_items: usize) -> Result<Self> {
        let weights = Self {
            indptr: tensors.u64(&format!("{prefix}.indptr"))?,
            items: tensors.u32(&format!("{prefix}.items"))?,
            weights: tensors.f32_shaped(&format!("{prefix}.sims"))?.1,
        };
        tensors.check_csr(
            prefix,
            &weights.indptr,
            n_items,
            &weights.items,
            n_items,
            weights.weights.len(),
        )?;
        Ok(weights)
    }

    /// Scores every item for a history given newest first as (item, value): each history item
    /// adds its row times its value and `recency_decay(age, half_life)`.
    pub(crate) fn score_history(
        &self,
        history: Vec<(ItemIdx, f32)>,
        half_life: f64,
        out: &mut [f32],
    ) {
        out.fill(0.0);
        for (age, (item, value)) in history.into_iter().enumerate() {
            let v = value * recency_decay(age, half_life);
            let (items, weights) = self.of(item);
            for (&j, &w) in items.iter().zip(weights) {
                if let Some(o) = out.get_mut(j as usize) {
                    *o += v * w;
                }
            }
        }
    }
}
