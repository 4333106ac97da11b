//! EASE^R (Steck 2019): a shallow linear item-item autoencoder with a closed-form solution.
//!
//! With `X` the user x item matrix (1 per interacted pair, or the pair's summed implicit weight),
//! the item-item weights `B` minimise `|X - X B|^2 + lambda |B|^2` subject to `diag(B) = 0`:
//! `G = X^T X + lambda I`, `P = G^{-1}`, `B_ij = -P_ij / P_jj` (i != j), `B_jj = 0`. A user is
//! scored by `x_u B`, the sum of the `B` rows of their items, so anonymous and session users are
//! scored from the query's history the same way.
//!
//! `B` is dense (items x items), so memory grows with the square of the catalog: fitting is
//! refused above `max_items`. `G` is accumulated from the sparse rows in parallel by item, and
//! faer's Cholesky factorisation of the symmetric positive definite `G` gives the inverse.
//!
//! The cheaper form, `top_items = M`, fits the same solve on the M items with the most users
//! only (time cubic and memory quadratic in M, not in the catalog): the other items get no
//! weights and score 0, like an item that shares no user with the history. `auto` runs this
//! form when the whole catalog does not fit its budget or the machine
//! ([`ModelFamily::cheaper_form`]).

use std::path::Path;

use faer::dyn_stack::{MemBuffer, MemStack};
use faer::linalg::cholesky::llt;
use faer::{MatMut, Par};
use kindred_core::{Error, FitContext, ItemIdx, Result, TrainSet};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::common::gram::item_gram;
use crate::common::histories::{half_life_param, recency_decay, Histories, HALF_LIFE_HELP};
use crate::common::weighted_rows::WeightedRows;
pub use crate::common::weighting::Weighting;
use crate::family::{
    param_infos, Applicability, CheaperForm, Cost, DataShape, Estimate, ModelFamily, ParamInfo,
    Saved, Task,
};
use crate::model::{Algorithm, Model, UserQuery};
use crate::params::check;
use crate::params::ModelSpec;
use crate::persist::{Fitted, TensorReader, TensorWriter};
use crate::space::{Param, Space};

/// Hyperparameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EaseParams {
    /// L2 regularisation added to the diagonal of `X^T X`.
    pub lambda: f64,
    pub weighting: Weighting,
    /// Largest catalog fitted (the model holds items^2 weights).
    pub max_items: usize,
    /// Half-life in interactions of a history item's weight when scoring (0: off): recent
    /// items count more, as item-kNN's and SLIM's `half_life`.
    pub half_life: f64,
    /// Fit on this many items, those with the most users (0: every item).
    pub top_items: usize,
}

impl Default for EaseParams {
    fn default() -> Self {
        Self {
            lambda: 500.0,
            weighting: Weighting::Binary,
            max_items: 20_000,
            half_life: 0.0,
            top_items: 0,
        }
    }
}

impl EaseParams {
    /// Items the weights cover on a catalog of `n`.
    fn width(&self, n: usize) -> usize {
        if self.top_items == 0 {
            n
        } else {
            self.top_items.min(n)
        }
    }

    fn validate(&self) -> Result<()> {
        if matches!(self.weighting, Weighting::Bm25 | Weighting::Tfidf) {
            return Err(Error::InvalidInput(
                "ease: weighting must be binary or weight (bm25/tfidf apply to itemknn only)"
                    .into(),
            ));
        }
        check::positive("ease", "lambda", self.lambda)?;
        check::non_negative("ease", "half_life", self.half_life)?;
        Ok(())
    }

    fn value(&self, weight: f32) -> f32 {
        match self.weighting {
            Weighting::Weight => weight,
            // Rejected by `validate`: per-item reweighting would need the whole column first.
            Weighting::Binary | Weighting::Bm25 | Weighting::Tfidf => 1.0,
        }
    }
}

/// The EASE^R algorithm.
#[derive(Debug, Clone, Default)]
pub struct Ease {
    pub params: EaseParams,
}

/// `G = X^T X + lambda I` (row-major, n x n).
fn gram(
    by_user: &WeightedRows,
    by_item: &WeightedRows,
    params: &EaseParams,
    ctx: &FitContext,
) -> Result<Vec<f64>> {
    let n = by_item.n_rows();
    let mut g: Vec<f64> = item_gram(by_user, by_item, |w| params.value(w), "ease gram", ctx)?;
    for i in 0..n {
        g[i * n + i] += params.lambda;
    }
    Ok(g)
}

/// `B` from `G`: `P = G^{-1}` by Cholesky, then `B_ij = -P_ij / P_jj` with a zero diagonal.
fn weights_from_gram(mut g: Vec<f64>, n: usize, ctx: &FitContext) -> Result<Vec<f32>> {
    let par = Par::rayon(ctx.threads.max(1));
    let mut buffer = MemBuffer::new(
        llt::factor::cholesky_in_place_scratch::<f64>(n, par, Default::default())
            .or(llt::inverse::inverse_scratch::<f64>(n, par)),
    );
    let stack = MemStack::new(&mut buffer);
    // G is symmetric, so its row-major buffer read column-major is G as well.
    let mut l = MatMut::from_column_major_slice_mut(&mut g, n, n);
    llt::factor::cholesky_in_place(
        l.as_mut(),
        Default::default(),
        par,
        stack,
        Default::default(),
    )
    .map_err(|_| Error::InvalidInput("ease: X^T X + lambda I is not positive definite".into()))?;
    ctx.cancel.check()?;
    let mut p = vec![0.0f64; n * n];
    let mut inverse = MatMut::from_column_major_slice_mut(&mut p, n, n);
    llt::inverse::inverse(inverse.as_mut(), l.as_ref(), par, stack);
    ctx.cancel.check()?;
    // Only the lower triangle (column-major) is written: P_ij for i >= j is p[j * n + i].
    let diag: Vec<f64> = (0..n).map(|j| p[j * n + j]).collect();
    let p = &p;
    let mut b = vec![0f32; n * n];
    b.par_chunks_mut(n.max(1)).enumerate().for_each(|(i, row)| {
        for (j, out) in row.iter_mut().enumerate() {
            if i != j {
                let pij = if i >= j { p[j * n + i] } else { p[i * n + j] };
                *out = (-pij / diag[j]) as f32;
            }
        }
    });
    Ok(b)
}

impl Algorithm for Ease {
    fn name(&self) -> &'static str {
        "ease"
    }

    fn params(&self) -> serde_json::Value {
        serde_json::to_value(&self.params).unwrap_or_default()
    }

    fn fit(&self, data: &TrainSet, ctx: &FitContext) -> Result<Box<dyn Model>> {
        let params = &self.params;
        params.validate()?;
        let n = data.n_items();
        let width = params.width(n);
        if width > params.max_items {
            return Err(Error::InvalidInput(format!(
                "ease: {width} items exceed max_items = {}; the model holds items^2 weights \
                 (about {:.1} GB to fit here), so raise max_items if memory allows, fit the most \
                 popular items only (top_items) or filter the catalog",
                params.max_items,
                (width as f64).powi(2) * 20.0 / 1e9
            )));
        }
        ctx.cancel.check()?;
        let weights = data.data.weights();
        let by_user = WeightedRows::new(&data.by_user, weights);
        let by_item = WeightedRows::new(&data.by_item, weights);
        let kept = if width < n {
            most_used_items(&by_item, width)
        } else {
            Vec::new()
        };
        let positions = positions(&kept, n);
        let b = if kept.is_empty() {
            let g = gram(&by_user, &by_item, params, ctx)?;
            weights_from_gram(g, n, ctx)?
        } else {
            let renumbered: Vec<Option<u32>> = positions
                .iter()
                .map(|&p| (p != NOT_KEPT).then_some(p))
                .collect();
            let g = gram(
                &by_user.renumber_columns(&renumbered),
                &by_item.select_rows(&kept),
                params,
                ctx,
            )?;
            weights_from_gram(g, width, ctx)?
        };
        let fitted = Fitted::from_train(data);
        let user_values = by_user.values().iter().map(|&w| params.value(w)).collect();
        let histories =
            (params.half_life > 0.0).then(|| Histories::new(data, params.weighting, None));
        Ok(Box::new(EaseModel {
            weight_offsets: seen_offsets(&fitted),
            user_values,
            histories,
            b,
            positions,
            kept,
            params: params.clone(),
            fitted,
        }))
    }
}

/// Marks an item outside the fitted subset in [`positions`].
const NOT_KEPT: u32 = u32::MAX;

/// The `count` items with the most users (ties: the lower index), in increasing index order.
fn most_used_items(by_item: &WeightedRows, count: usize) -> Vec<u32> {
    let mut order: Vec<u32> = (0..by_item.n_rows() as u32).collect();
    order.sort_by_key(|&i| (std::cmp::Reverse(by_item.row(i as usize).0.len()), i));
    order.truncate(count);
    order.sort_unstable();
    order
}

/// Moves `values[p]` to `values[kept[p]]` for every position `p` of `kept`, leaving 0 at each
/// index no position moved to. In place: `kept` increases, so `kept[p] >= p`, and walking the
/// positions from the last one never overwrites a value still to be moved.
fn spread_from_head(values: &mut [f32], kept: &[u32]) {
    for (p, &item) in kept.iter().enumerate().rev() {
        let Some(value) = values.get_mut(p).map(std::mem::take) else {
            continue;
        };
        if let Some(slot) = values.get_mut(item as usize) {
            *slot = value;
        }
    }
}

/// Each item's row in the subset's weights, [`NOT_KEPT`] for items outside it (empty when
/// every item is fitted).
fn positions(kept: &[u32], n: usize) -> Vec<u32> {
    if kept.is_empty() {
        return Vec::new();
    }
    let mut positions = vec![NOT_KEPT; n];
    for (p, &item) in kept.iter().enumerate() {
        positions[item as usize] = p as u32;
    }
    positions
}

/// Start of each user's run of seen items (one more entry than users: the total).
fn seen_offsets(fitted: &Fitted) -> Vec<usize> {
    let mut offsets = Vec::with_capacity(fitted.users.len() + 1);
    let mut total = 0;
    offsets.push(0);
    for u in 0..fitted.users.len() as u32 {
        total += fitted.seen.items_of(u).len();
        offsets.push(total);
    }
    offsets
}

/// A fitted EASE^R model.
#[derive(Debug, Clone)]
pub struct EaseModel {
    /// `items x items`, row-major: row `i` is what an interaction with `i` adds to every score
    /// (over the fitted subset's items, in `kept`'s order, when `top_items` left some out).
    b: Vec<f32>,
    /// The fitted subset's items, increasing (empty: every item).
    kept: Vec<u32>,
    /// Each item's row in `b`, or [`NOT_KEPT`] (empty: every item, its own index).
    positions: Vec<u32>,
    /// Each user's value per seen item (1, or the summed weight), aligned with `fitted.seen`.
    user_values: Vec<f32>,
    weight_offsets: Vec<usize>,
    /// Chronological histories, kept when scoring weighs items by recency.
    histories: Option<Histories>,
    pub params: EaseParams,
    fitted: Fitted,
}

impl EaseModel {
    /// Loads a model saved by [`Model::save`].
    pub fn load(params: serde_json::Value, fitted: Fitted, tensors: &TensorReader) -> Result<Self> {
        let params: EaseParams = serde_json::from_value(params)
            .map_err(|e| Error::InvalidInput(format!("ease parameters: {e}")))?;
        let n = fitted.items.len();
        let weight_offsets = seen_offsets(&fitted);
        let n_seen = weight_offsets.last().copied().unwrap_or(0);
        let histories = if params.half_life > 0.0 {
            Some(Histories::load(tensors, fitted.users.len(), n)?)
        } else {
            None
        };
        let width = params.width(n);
        let kept = if width < n {
            let kept = tensors.u32("ease.kept")?;
            let increasing = kept.windows(2).all(|w| w[0] < w[1]);
            if kept.len() != width || !increasing || kept.last().is_some_and(|&i| i as usize >= n) {
                return Err(Error::InvalidInput(format!(
                    "ease: the saved subset `ease.kept` is not {width} increasing item indices \
                     below {n}"
                )));
            }
            kept
        } else {
            Vec::new()
        };
        Ok(Self {
            b: tensors.f32_len("ease.b", width * width)?,
            user_values: tensors.f32_len("ease.user_values", n_seen)?,
            weight_offsets,
            histories,
            positions: positions(&kept, n),
            kept,
            params,
            fitted,
        })
    }

    /// The row of `b` an interaction with `item` adds (None: outside the fitted subset).
    fn row_of(&self, item: ItemIdx) -> Option<&[f32]> {
        let width = self.params.width(self.fitted.items.len());
        let position = if self.positions.is_empty() {
            item as usize
        } else {
            match self.positions.get(item as usize) {
                Some(&p) if p != NOT_KEPT => p as usize,
                _ => return None,
            }
        };
        self.b.get(position * width..(position + 1) * width)
    }

    /// Adds the query's items' rows of `b`, each times its value, to `into` (`b`'s width).
    fn add_rows(&self, query: &UserQuery<'_>, into: &mut [f32]) {
        for (i, v) in self.profile(query) {
            if let Some(row) = self.row_of(i) {
                for (o, &b) in into.iter_mut().zip(row) {
                    *o += v * b;
                }
            }
        }
    }

    /// The (item, value) pairs a query is scored from, each item once (sorted by item, or
    /// newest first with each value decayed by its age when scoring weighs recency).
    fn profile(&self, query: &UserQuery<'_>) -> Vec<(ItemIdx, f32)> {
        if let Some(histories) = &self.histories {
            return histories
                .recent_first(query)
                .into_iter()
                .enumerate()
                .map(|(age, (i, v))| (i, v * recency_decay(age, self.params.half_life)))
                .collect();
        }
        let mut items: Vec<(ItemIdx, f32)> = Vec::new();
        if let Some(u) = query.user {
            let seen = self.fitted.seen.items_of(u);
            let start = self.weight_offsets.get(u as usize).copied().unwrap_or(0);
            if let Some(values) = self.user_values.get(start..start + seen.len()) {
                items.extend(seen.iter().copied().zip(values.iter().copied()));
            }
        }
        items.extend(query.history.iter().map(|&i| (i, 1.0)));
        items.sort_by_key(|&(i, _)| i);
        let mut merged: Vec<(ItemIdx, f32)> = Vec::with_capacity(items.len());
        for (i, v) in items {
            match merged.last_mut() {
                Some(last) if last.0 == i => {
                    if self.params.weighting == Weighting::Weight {
                        last.1 += v;
                    }
                }
                _ => merged.push((i, v)),
            }
        }
        merged
    }
}

impl Model for EaseModel {
    fn name(&self) -> &'static str {
        "ease"
    }

    fn params(&self) -> serde_json::Value {
        serde_json::to_value(&self.params).unwrap_or_default()
    }

    fn fitted(&self) -> &Fitted {
        &self.fitted
    }

    fn score(&self, query: &UserQuery<'_>, items: &[ItemIdx], out: &mut [f32]) {
        crate::model::score_via_all(self, query, items, out);
    }

    fn score_all(&self, query: &UserQuery<'_>, out: &mut [f32]) {
        out.fill(0.0);
        if self.kept.is_empty() {
            self.add_rows(query, out);
            return;
        }
        // The subset's scores are summed in `out`'s head and then moved to their items, so a
        // request allocates nothing the size of the subset.
        let Some(head) = out.get_mut(..self.kept.len()) else {
            return;
        };
        self.add_rows(query, head);
        spread_from_head(out, &self.kept);
    }

    fn save(&self, dir: &Path) -> Result<()> {
        let width = self.params.width(self.fitted.items.len());
        let mut t = TensorWriter::new();
        t.f32("ease.b", &[width, width], &self.b).f32(
            "ease.user_values",
            &[self.user_values.len()],
            &self.user_values,
        );
        if !self.kept.is_empty() {
            t.u32("ease.kept", &self.kept);
        }
        if let Some(h) = &self.histories {
            h.save_into(&mut t);
        }
        self.fitted.save(dir, "ease", Model::params(self), t)
    }
}

/// The `ease` family's entry in the model registry.
pub struct EaseFamily;

impl ModelFamily for EaseFamily {
    fn name(&self) -> &'static str {
        "ease"
    }

    fn task(&self) -> Task {
        Task::Ranking
    }

    fn summary(&self) -> &'static str {
        "EASE^R (Steck 2019): closed-form item-item linear autoencoder; serves anonymous users from their history"
    }

    fn params(&self) -> Vec<ParamInfo> {
        param_infos::<EaseParams>(&[
            (
                "lambda",
                None,
                "L2 regularisation added to the diagonal of X^T X",
            ),
            (
                "weighting",
                None,
                "binary (each user-item pair counts once) | weight (sum of implicit weights)",
            ),
            (
                "max_items",
                None,
                "largest catalog fitted: the model holds items^2 weights",
            ),
            ("half_life", Some("off"), HALF_LIFE_HELP),
            (
                "top_items",
                Some("every item"),
                "fit on this many items, those with the most users; the others score 0",
            ),
        ])
    }

    fn build(&self, spec: &ModelSpec) -> Result<Box<dyn Algorithm>> {
        Ok(Box::new(Ease {
            params: spec.typed()?,
        }))
    }

    fn load(&self, saved: Saved<'_>) -> Result<Box<dyn Model>> {
        saved.load_with(EaseModel::load)
    }

    fn search_space(&self) -> Option<Space> {
        Some(Space {
            family: "ease",
            params: vec![
                Param::float("lambda", 5.0, 5000.0, true, 500.0),
                half_life_param(),
            ],
            fidelity: None,
            fixed: Vec::new(),
        })
    }

    fn applicability(&self) -> Applicability {
        Applicability {
            max_items: Some(EaseParams::default().max_items),
            ..Applicability::default()
        }
    }

    fn cost(&self) -> Cost {
        Cost::High
    }

    fn estimate(&self, shape: &DataShape) -> Estimate {
        estimate_on(shape.items, shape)
    }

    /// `top_items`: the largest subset of the most used items whose fit passes `fits`, when
    /// the whole catalog does not (at least [`MIN_SUBSET`] items, rounded down to a hundred).
    fn cheaper_form(
        &self,
        shape: &DataShape,
        fits: &dyn Fn(&Estimate) -> bool,
    ) -> Option<CheaperForm> {
        let limit = EaseParams::default().max_items;
        if shape.items <= limit && fits(&self.estimate(shape)) {
            return None;
        }
        let most = shape.items.saturating_sub(1).min(limit);
        if most < MIN_SUBSET || !fits(&estimate_on(MIN_SUBSET, shape)) {
            return None;
        }
        // The estimate grows with the subset: the largest that fits, by bisection.
        let (mut lo, mut hi) = (MIN_SUBSET, most);
        while lo < hi {
            let mid = lo + (hi - lo).div_ceil(2);
            if fits(&estimate_on(mid, shape)) {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        let width = (lo / 100 * 100).max(MIN_SUBSET);
        Some(CheaperForm {
            params: vec![("top_items", width.to_string())],
            estimate: estimate_on(width, shape),
            description: format!(
                "the {width} items with the most users of {}; the others score 0",
                shape.items
            ),
        })
    }
}

/// The smallest subset [`EaseFamily::cheaper_form`] offers: below it the model is little more
/// than a popularity list.
const MIN_SUBSET: usize = 1_000;

/// A fit's cost with weights over `width` items: two width x width f64 matrices (the Gram
/// matrix and its inverse) and the f32 weights; time is the dense inversion, cubic in the
/// width (ML-1M's 3,706 items: 1.0 s measured by `bench/linear_scale.sh`, 1.4 s predicted),
/// and the pass over every interaction that accumulates the Gram matrix.
fn estimate_on(width: usize, shape: &DataShape) -> Estimate {
    let width = width as f64;
    Estimate {
        seconds: 2.5e-11 * width.powi(3) + 2e-7 * shape.interactions as f64,
        bytes: 20.0 * width * width + 32.0 * shape.interactions as f64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::implicit::als::test_support::{hit_and_recall, temporal_split};
    use kindred_core::{EventType, Interaction, InteractionsBuilder};

    fn train(rows: &[(&str, &str, f32)]) -> TrainSet {
        let mut b = InteractionsBuilder::new();
        for &(u, i, w) in rows {
            let mut row = Interaction::implicit(u, i, EventType::View, Some(0));
            row.weight = w;
            b.push(row);
        }
        TrainSet::new(b.build())
    }

    #[test]
    fn recency_weighs_the_latest_history_item_most_and_survives_a_reload() {
        // Two clusters, {a, b, c} and {x, y}; the query's latest item is x.
        let mut builder = InteractionsBuilder::new();
        for (u, i) in [
            ("u1", "a"),
            ("u1", "b"),
            ("u2", "a"),
            ("u2", "c"),
            ("u3", "b"),
            ("u3", "c"),
            ("u4", "x"),
            ("u4", "y"),
            ("u5", "x"),
            ("u5", "y"),
            ("u6", "b"),
            ("u6", "x"),
        ] {
            builder.push(Interaction::implicit(u, i, EventType::View, Some(0)));
        }
        let data = TrainSet::new(builder.build());
        let items = data.data.item_ids().clone();
        let id = |s: &str| items.get(s).unwrap();
        let fit = |spec: &str| {
            crate::registry::build_algorithm(spec)
                .unwrap()
                .fit(&data, &FitContext::default())
                .unwrap()
        };
        let query = [id("b"), id("x")];
        let scores = |model: &dyn Model| {
            let mut out = vec![0f32; items.len()];
            model.score_all(&UserQuery::anonymous(&query), &mut out);
            out
        };
        let plain = scores(fit("ease:lambda=1").as_ref());
        let recent = fit("ease:lambda=1,half_life=1");
        let decayed = scores(recent.as_ref());
        // Halving b's weight lowers what b's cluster gets relative to x's.
        let ratio = |s: &[f32]| s[id("a") as usize] / s[id("y") as usize];
        assert!(ratio(&decayed) < ratio(&plain), "{plain:?} vs {decayed:?}");
        let dir = std::env::temp_dir().join(format!("kindred-ease-recency-{}", std::process::id()));
        recent.save(&dir).unwrap();
        let loaded = crate::registry::load_model(&dir).unwrap();
        assert_eq!(scores(loaded.as_ref()), decayed);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Inverse of a small dense matrix by Gauss-Jordan elimination (independent of faer).
    fn invert(a: &[f64], n: usize) -> Vec<f64> {
        let mut m: Vec<f64> = Vec::new();
        for r in 0..n {
            m.extend_from_slice(&a[r * n..(r + 1) * n]);
            m.extend((0..n).map(|c| (c == r) as u8 as f64));
        }
        let w = 2 * n;
        for c in 0..n {
            let pivot = (c..n)
                .max_by(|&x, &y| m[x * w + c].abs().total_cmp(&m[y * w + c].abs()))
                .unwrap();
            for k in 0..w {
                m.swap(c * w + k, pivot * w + k);
            }
            let d = m[c * w + c];
            for k in 0..w {
                m[c * w + k] /= d;
            }
            for r in (0..n).filter(|&r| r != c) {
                let factor = m[r * w + c];
                for k in 0..w {
                    m[r * w + k] -= factor * m[c * w + k];
                }
            }
        }
        (0..n)
            .flat_map(|r| m[r * w + n..(r + 1) * w].to_vec())
            .collect()
    }

    #[test]
    fn weights_match_the_closed_form_by_hand() {
        // u1: a b c, u2: a b, u3: b c (twice c), u4: a d.
        let rows = [
            ("u1", "a", 1.0),
            ("u1", "b", 1.0),
            ("u1", "c", 1.0),
            ("u2", "a", 1.0),
            ("u2", "b", 1.0),
            ("u3", "b", 1.0),
            ("u3", "c", 2.0),
            ("u3", "c", 1.0),
            ("u4", "a", 1.0),
            ("u4", "d", 1.0),
        ];
        let data = train(&rows);
        for (weighting, xs) in [
            // X rows per user over (a, b, c, d).
            (
                Weighting::Binary,
                [
                    [1., 1., 1., 0.],
                    [1., 1., 0., 0.],
                    [0., 1., 1., 0.],
                    [1., 0., 0., 1.],
                ],
            ),
            (
                Weighting::Weight,
                [
                    [1., 1., 1., 0.],
                    [1., 1., 0., 0.],
                    [0., 1., 3., 0.],
                    [1., 0., 0., 1.],
                ],
            ),
        ] {
            let lambda = 0.7;
            let n = 4;
            let mut g = vec![0.0; n * n];
            for x in xs {
                for i in 0..n {
                    for j in 0..n {
                        g[i * n + j] += x[i] * x[j];
                    }
                }
            }
            for i in 0..n {
                g[i * n + i] += lambda;
            }
            let p = invert(&g, n);
            let params = EaseParams {
                lambda,
                weighting,
                ..Default::default()
            };
            let model = Ease { params }.fit(&data, &FitContext::default()).unwrap();
            let mut scores = [0f32; 4];
            for (u, x) in xs.iter().enumerate() {
                model.score_all(&UserQuery::known(u as u32), &mut scores);
                for j in 0..n {
                    let want: f64 = (0..n)
                        .filter(|&i| i != j)
                        .map(|i| x[i] * -p[i * n + j] / p[j * n + j])
                        .sum();
                    assert!(
                        (scores[j] as f64 - want).abs() < 1e-5,
                        "{weighting:?} user {u} item {j}: {} vs {want}",
                        scores[j]
                    );
                }
            }
        }
    }

    #[test]
    fn anonymous_history_scores_like_the_known_user() {
        let (train, _) = temporal_split("users=200,items=100,seed=2");
        let model = Ease::default().fit(&train, &FitContext::default()).unwrap();
        let n = train.n_items();
        for u in [0u32, 7, 31] {
            let seen = model.fitted().seen.items_of(u).to_vec();
            let (mut known, mut anonymous) = (vec![0f32; n], vec![0f32; n]);
            model.score_all(&UserQuery::known(u), &mut known);
            // Repeats in a binary history count once.
            let mut history = seen.clone();
            history.extend_from_slice(&seen[..1]);
            model.score_all(&UserQuery::anonymous(&history), &mut anonymous);
            assert_eq!(known, anonymous);
        }
    }

    #[test]
    fn beats_popularity_on_planted_structure() {
        let (train, relevant) = temporal_split("users=600,items=300,seed=3");
        let ctx = FitContext::default();
        let popularity = crate::simple::popularity::Popularity::default()
            .fit(&train, &ctx)
            .unwrap();
        let (pop_hit, pop_recall) = hit_and_recall(popularity.as_ref(), &relevant);
        let params = EaseParams {
            lambda: 50.0,
            ..Default::default()
        };
        let ease = Ease { params }.fit(&train, &ctx).unwrap();
        let (hit, recall) = hit_and_recall(ease.as_ref(), &relevant);
        assert!(
            hit > 1.3 * pop_hit && recall > 1.3 * pop_recall,
            "ease hit@10 {hit:.4} recall@10 {recall:.4}; popularity {pop_hit:.4} {pop_recall:.4}"
        );
    }

    #[test]
    fn save_load_scores_identically() {
        let (train, _) = temporal_split("users=200,items=100,seed=2");
        let params = EaseParams {
            weighting: Weighting::Weight,
            lambda: 20.0,
            ..Default::default()
        };
        let model = Ease { params }.fit(&train, &FitContext::default()).unwrap();
        let dir = std::env::temp_dir().join(format!("kindred-ease-{}", std::process::id()));
        model.save(&dir).unwrap();
        let loaded = crate::registry::load_model(&dir).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(loaded.params(), model.params());
        let history = [4u32, 9, 4];
        let n = train.n_items();
        for q in [
            UserQuery::known(3),
            UserQuery::anonymous(&history),
            UserQuery {
                user: Some(3),
                history: &history,
            },
        ] {
            let (mut a, mut b) = (vec![0f32; n], vec![0f32; n]);
            model.score_all(&q, &mut a);
            loaded.score_all(&q, &mut b);
            assert_eq!(a, b);
        }
    }

    proptest::proptest! {
        #[test]
        fn spreading_from_the_head_puts_each_value_at_its_item(
            picks in proptest::collection::vec(proptest::bool::ANY, 0..64),
        ) {
            let kept: Vec<u32> = (0..picks.len() as u32).filter(|&i| picks[i as usize]).collect();
            let head: Vec<f32> = (0..kept.len()).map(|p| p as f32 + 1.0).collect();
            let mut values = vec![0f32; picks.len()];
            values[..head.len()].copy_from_slice(&head);
            spread_from_head(&mut values, &kept);
            let mut expected = vec![0f32; picks.len()];
            for (&item, &v) in kept.iter().zip(&head) {
                expected[item as usize] = v;
            }
            proptest::prop_assert_eq!(values, expected);
        }
    }

    #[test]
    fn a_fit_on_the_most_used_items_is_the_exact_fit_on_those_items_alone() {
        // Item i has 30 - 2i users (strictly fewer for each next item), spread over the 30
        // users by a bijection, so the 6 most used items are i0..i5. They are listed last, so
        // their indices (4..10) are not their positions in the subset.
        let mut rows = Vec::new();
        for i in (0..10usize).rev() {
            for k in 0..30 - 2 * i {
                rows.push((format!("u{}", (k * 7 + i * 5) % 30), format!("i{i}")));
            }
        }
        let as_train = |keep: &dyn Fn(&str) -> bool| {
            let kept: Vec<(&str, &str, f32)> = rows
                .iter()
                .filter(|(_, i)| keep(i))
                .map(|(u, i)| (u.as_str(), i.as_str(), 1.0))
                .collect();
            train(&kept)
        };
        let all = as_train(&|_| true);
        let head = as_train(&|i| i[1..].parse::<usize>().unwrap() < 6);
        let fit = |data: &TrainSet, top_items: usize| {
            let params = EaseParams {
                lambda: 5.0,
                top_items,
                ..Default::default()
            };
            Ease { params }.fit(data, &FitContext::default()).unwrap()
        };
        let subset = fit(&all, 6);
        let exact = fit(&head, 0);
        let dir = std::env::temp_dir().join(format!("kindred-ease-top-{}", std::process::id()));
        subset.save(&dir).unwrap();
        let loaded = crate::registry::load_model(&dir).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        let (items, head_items) = (all.data.item_ids(), head.data.item_ids());
        let head_users = head.data.user_ids();
        for (u, user) in all.data.user_ids().externals().iter().enumerate() {
            let mut scores = vec![0f32; items.len()];
            subset.score_all(&UserQuery::known(u as u32), &mut scores);
            let mut reloaded = vec![0f32; items.len()];
            loaded.score_all(&UserQuery::known(u as u32), &mut reloaded);
            assert_eq!(scores, reloaded, "{user}: the reload scores the same");
            let mut reference = vec![0f32; head_items.len()];
            if let Some(hu) = head_users.get(user) {
                exact.score_all(&UserQuery::known(hu), &mut reference);
            }
            for (i, item) in items.externals().iter().enumerate() {
                let expected = head_items.get(item).map_or(0.0, |h| reference[h as usize]);
                assert!(
                    (scores[i] - expected).abs() <= 1e-5 * (1.0 + expected.abs()),
                    "{user} {item}: {} against {expected}",
                    scores[i]
                );
            }
        }
        // The estimate follows the subset, and the family offers it where the catalog is
        // too large for the defaults.
        let shape = DataShape {
            users: 100_000,
            items: 50_000,
            interactions: 2_000_000,
        };
        let form = EaseFamily
            .cheaper_form(&shape, &|e: &Estimate| e.seconds <= 30.0 && e.bytes <= 4e9)
            .unwrap();
        let width: usize = form.params[0].1.parse().unwrap();
        assert!((MIN_SUBSET..=20_000).contains(&width), "{width}");
        assert!(form.estimate.seconds <= 30.0 && form.estimate.bytes <= 4e9);
        assert!(EaseFamily
            .cheaper_form(&shape, &|e: &Estimate| e.seconds <= 0.1)
            .is_none());
        let small = DataShape {
            items: 3_000,
            ..shape
        };
        assert!(EaseFamily.cheaper_form(&small, &|_| true).is_none());
    }

    #[test]
    fn refuses_large_catalogs_and_bad_lambda() {
        let (train, _) = temporal_split("users=50,items=30,seed=1");
        let n = train.n_items();
        let params = EaseParams {
            max_items: n - 1,
            ..Default::default()
        };
        let err = Ease { params }
            .fit(&train, &FitContext::default())
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("max_items") && err.contains(&n.to_string()),
            "{err}"
        );
        for lambda in [0.0, -1.0, f64::NAN] {
            let params = EaseParams {
                lambda,
                ..Default::default()
            };
            assert!(Ease { params }.fit(&train, &FitContext::default()).is_err());
        }
        assert!(crate::registry::build_algorithm("ease:weighting=okapi").is_err());
        let tfidf = crate::registry::build_algorithm("ease:weighting=tfidf").unwrap();
        let err = tfidf.fit(&train, &FitContext::default()).err().unwrap();
        assert!(err.to_string().contains("binary or weight"), "{err}");
    }
}
