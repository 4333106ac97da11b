//! Fold-in: a user vector for an anonymous query, or a known user with extra history, by one
//! exact solve of the normal equations against the trained item factors.

use std::borrow::Cow;

use kindred_core::ItemIdx;

use super::cholesky::solve_cholesky;
use super::fixed_side::{Fixed, Scratch};
use super::AlsModel;
use crate::model::UserQuery;

impl AlsModel {
    /// Solves a user vector from `items` (repeats summed) against the trained item factors: the
    /// same normal equations as training, one exact solve. Unknown items are ignored; an empty or
    /// unusable history gives the zero vector.
    pub fn fold_in(&self, items: &[(ItemIdx, f32)]) -> Vec<f32> {
        let f = self.params.factors;
        let n_items = self.fitted.items.len();
        let mut merged: Vec<(ItemIdx, f32)> = items
            .iter()
            .copied()
            .filter(|&(i, _)| (i as usize) < n_items)
            .collect();
        merged.sort_by_key(|&(i, _)| i);
        let mut cols: Vec<u32> = Vec::with_capacity(merged.len());
        let mut weights: Vec<f32> = Vec::with_capacity(merged.len());
        for (i, w) in merged {
            match weights.last_mut() {
                Some(last) if cols.last() == Some(&i) => *last += w,
                _ => {
                    cols.push(i);
                    weights.push(w);
                }
            }
        }
        let (cols, conf): (Vec<u32>, Vec<f64>) = cols
            .into_iter()
            .zip(weights)
            .filter(|&(_, w)| w > 0.0)
            .map(|(i, w)| (i, self.params.confidence(w as f64)))
            .unzip();
        if cols.is_empty() {
            return vec![0.0; f];
        }
        let mut g = self.item_gram.clone();
        for k in 0..f {
            g[k * f + k] += self.params.reg;
        }
        let y: Vec<f64> = cols
            .iter()
            .flat_map(|&i| &self.item_factors[i as usize * f..(i as usize + 1) * f])
            .map(|&v| v as f64)
            .collect();
        // The gathered rows are indexed 0..n in the same order as `cols`.
        let local: Vec<u32> = (0..cols.len() as u32).collect();
        let mut x = vec![0.0; f];
        let fixed = Fixed {
            gram: &g,
            other: &y,
            f,
        };
        if solve_cholesky(fixed, &local, &conf, &mut Scratch::new(f), &mut x) {
            x.iter().map(|&v| v as f32).collect()
        } else {
            vec![0.0; f]
        }
    }

    /// The vector a query is scored with: the trained one for a known user without extra
    /// history, else a fold-in of the user's training items plus the query's history.
    pub(super) fn query_vector(&self, query: &UserQuery<'_>) -> Cow<'_, [f32]> {
        let trained = query.user.and_then(|u| self.user_vector(u));
        if query.history.is_empty() {
            return match trained {
                Some(x) => Cow::Borrowed(x),
                None => Cow::Owned(vec![0.0; self.params.factors]),
            };
        }
        let mut items: Vec<(ItemIdx, f32)> = query.history.iter().map(|&i| (i, 1.0)).collect();
        if let Some(u) = query.user.filter(|_| trained.is_some()) {
            let seen = self.fitted.seen.items_of(u);
            let start = self.weight_offsets.get(u as usize).copied().unwrap_or(0);
            if let Some(w) = self.user_weights.get(start..start + seen.len()) {
                items.extend(seen.iter().copied().zip(w.iter().copied()));
            }
        }
        Cow::Owned(self.fold_in(&items))
    }
}
