//! SLIM (Ning & Karypis 2011): sparse linear item-item weights learned by elastic-net
//! regression, `min |X - X W|^2 + l1 |W|_1 + l2 |W|^2` subject to `W >= 0` and `diag(W) = 0`,
//! one column (target item) at a time, each restricted to the target's most co-occurring items
//! (SLIM with feature selection). A user is scored by `x_u W`, the sum of the `W` rows of their
//! history, each history item weighted by its recency when `half_life` is set; anonymous and
//! session users are scored from the query's history the same way.
//!
//! Memory is the dense f32 Gram matrix while fitting (items^2 x 4 bytes, refused above
//! `max_items`) and `items x neighbors` weights afterwards; time is the Gram matrix plus
//! `items x neighbors^2` per coordinate-descent sweep. With `l1=0,non_negative=false` the
//! same solve is EASE restricted to each item's neighbourhood (`ease` at catalog sizes where
//! its exact items^3 inverse does not fit).

use std::path::Path;

use kindred_core::{Error, FitContext, ItemIdx, Result, TrainSet};
use serde::{Deserialize, Serialize};

use crate::common::gram::item_gram;
use crate::common::histories::{half_life_param, Histories, HALF_LIFE_HELP};
use crate::common::item_regression::{neighbourhood_weights, ItemWeights, RegressionSettings};
use crate::common::weighted_rows::WeightedRows;
use crate::common::weighting::Weighting;
use crate::family::{
    param_infos, Applicability, Cost, DataShape, Estimate, ModelFamily, ParamInfo, Saved, Task,
};
use crate::model::{Algorithm, Model, UserQuery};
use crate::params::{check, ModelSpec};
use crate::persist::{Fitted, TensorReader, TensorWriter};
use crate::space::{Param, Space};

/// Hyperparameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SlimParams {
    /// L1 penalty (sparsity of each item's weights).
    pub l1: f64,
    /// L2 penalty.
    pub l2: f64,
    /// Candidate items per target: its most co-occurring ones.
    pub neighbors: usize,
    /// Keep weights >= 0 (SLIM's constraint; false with l1 = 0 is a neighbourhood EASE).
    pub non_negative: bool,
    /// Half-life in interactions of a history item's weight when scoring (0: off).
    pub half_life: f64,
    /// binary (each pair counts once) or weight (summed implicit weights).
    pub weighting: Weighting,
    /// Coordinate-descent sweeps at most per item.
    pub sweeps: usize,
    /// Largest catalog fitted (the Gram matrix holds items^2 values while fitting).
    pub max_items: usize,
}

impl Default for SlimParams {
    fn default() -> Self {
        Self {
            l1: 1.0,
            l2: 50.0,
            neighbors: 100,
            non_negative: true,
            half_life: 0.0,
            weighting: Weighting::Binary,
            sweeps: 50,
            max_items: 30_000,
        }
    }
}

impl SlimParams {
    fn validate(&self) -> Result<()> {
        if matches!(self.weighting, Weighting::Bm25 | Weighting::Tfidf) {
            return Err(Error::InvalidInput(
                "slim: weighting must be binary or weight (bm25/tfidf apply to itemknn only)"
                    .into(),
            ));
        }
        check::non_negative("slim", "l1", self.l1)?;
        check::positive("slim", "l2", self.l2)?;
        check::at_least_one("slim", "neighbors", self.neighbors)?;
        check::at_least_one("slim", "sweeps", self.sweeps)?;
        check::non_negative("slim", "half_life", self.half_life)?;
        Ok(())
    }

    fn value(&self, weight: f32) -> f32 {
        match self.weighting {
            Weighting::Weight => weight,
            Weighting::Binary | Weighting::Bm25 | Weighting::Tfidf => 1.0,
        }
    }
}

/// The SLIM algorithm.
#[derive(Debug, Clone, Default)]
pub struct Slim {
    pub params: SlimParams,
}

impl Algorithm for Slim {
    fn name(&self) -> &'static str {
        "slim"
    }

    fn params(&self) -> serde_json::Value {
        serde_json::to_value(&self.params).unwrap_or_default()
    }

    fn fit(&self, data: &TrainSet, ctx: &FitContext) -> Result<Box<dyn Model>> {
        let params = &self.params;
        params.validate()?;
        let n = data.n_items();
        if n > params.max_items {
            return Err(Error::InvalidInput(format!(
                "slim: {n} items exceed max_items = {}; fitting holds an items^2 Gram matrix \
                 (about {:.1} GB here), so raise max_items if memory allows or filter the catalog",
                params.max_items,
                (n as f64).powi(2) * 4.0 / 1e9
            )));
        }
        ctx.cancel.check()?;
        let weights = data.data.weights();
        let by_user = WeightedRows::new(&data.by_user, weights);
        let by_item = WeightedRows::new(&data.by_item, weights);
        let g: Vec<f32> = item_gram(&by_user, &by_item, |w| params.value(w), "slim gram", ctx)?;
        let settings = RegressionSettings {
            neighbors: params.neighbors,
            l1: params.l1,
            l2: params.l2,
            non_negative: params.non_negative,
            sweeps: params.sweeps,
            tolerance: 1e-4,
        };
        let item_weights = neighbourhood_weights(&g, n, &settings, ctx)?;
        drop(g);
        Ok(Box::new(SlimModel {
            weights: item_weights,
            histories: Histories::new(data, params.weighting, None),
            params: params.clone(),
            fitted: Fitted::from_train(data),
        }))
    }
}

/// A fitted SLIM model.
#[derive(Debug, Clone)]
pub struct SlimModel {
    weights: ItemWeights,
    histories: Histories,
    pub params: SlimParams,
    fitted: Fitted,
}

impl SlimModel {
    /// Loads a model saved by [`Model::save`].
    pub fn load(params: serde_json::Value, fitted: Fitted, tensors: &TensorReader) -> Result<Self> {
        let params: SlimParams = serde_json::from_value(params)
            .map_err(|e| Error::InvalidInput(format!("slim parameters: {e}")))?;
        let (n_users, n_items) = (fitted.users.len(), fitted.items.len());
        let weights = ItemWeights::load(tensors, "slim", n_items)?;
        let histories = Histories::load(tensors, n_users, n_items)?;
        Ok(Self {
            weights,
            histories,
            params,
            fitted,
        })
    }
}

impl Model for SlimModel {
    fn name(&self) -> &'static str {
        "slim"
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
        let history = self.histories.recent_first(query);
        self.weights
            .score_history(history, self.params.half_life, out);
    }

    fn save(&self, dir: &Path) -> Result<()> {
        let mut t = TensorWriter::new();
        self.weights.save_into(&mut t, "slim");
        self.histories.save_into(&mut t);
        self.fitted.save(dir, "slim", Model::params(self), t)
    }
}

/// The `slim` family's entry in the model registry.
pub struct SlimFamily;

impl ModelFamily for SlimFamily {
    fn name(&self) -> &'static str {
        "slim"
    }

    fn task(&self) -> Task {
        Task::Ranking
    }

    fn summary(&self) -> &'static str {
        "SLIM (Ning & Karypis 2011): sparse non-negative item-item weights by elastic-net regression on each item's neighbourhood"
    }

    fn params(&self) -> Vec<ParamInfo> {
        param_infos::<SlimParams>(&[
            ("l1", None, "L1 penalty: sparsity of each item's weights"),
            ("l2", None, "L2 penalty"),
            (
                "neighbors",
                None,
                "candidate items per target item (its most co-occurring ones)",
            ),
            (
                "non_negative",
                None,
                "keep weights >= 0 (false with l1=0: EASE on each item's neighbourhood)",
            ),
            ("half_life", Some("off"), HALF_LIFE_HELP),
            (
                "weighting",
                None,
                "binary (each user-item pair counts once) | weight (sum of implicit weights)",
            ),
            ("sweeps", None, "coordinate-descent sweeps at most per item"),
            (
                "max_items",
                None,
                "largest catalog fitted: fitting holds an items^2 Gram matrix",
            ),
        ])
    }

    fn build(&self, spec: &ModelSpec) -> Result<Box<dyn Algorithm>> {
        let params: SlimParams = spec.typed()?;
        params.validate()?;
        Ok(Box::new(Slim { params }))
    }

    fn load(&self, saved: Saved<'_>) -> Result<Box<dyn Model>> {
        saved.load_with(SlimModel::load)
    }

    fn search_space(&self) -> Option<Space> {
        let defaults = SlimParams::default();
        Some(Space {
            family: "slim",
            params: vec![
                Param::float("l1", 0.01, 100.0, true, defaults.l1),
                Param::float("l2", 1.0, 5000.0, true, defaults.l2),
                Param::int("neighbors", 20, 500, true, defaults.neighbors as i64),
                half_life_param(),
            ],
            fidelity: None,
            fixed: Vec::new(),
        })
    }

    fn applicability(&self) -> Applicability {
        Applicability {
            max_items: Some(SlimParams::default().max_items),
            ..Applicability::default()
        }
    }

    fn cost(&self) -> Cost {
        Cost::High
    }

    /// The f32 Gram matrix (items^2) and one pass over each user's item pairs, then
    /// `neighbors^2` per item for each of a few sweeps.
    fn estimate(&self, shape: &DataShape) -> Estimate {
        let items = shape.items as f64;
        let per_user = shape.interactions as f64 / (shape.users as f64).max(1.0);
        let neighbors = SlimParams::default().neighbors as f64;
        Estimate {
            seconds: 2e-9 * shape.interactions as f64 * per_user
                + 1e-9 * items * items
                + 5e-9 * items * neighbors * neighbors * 10.0,
            bytes: 4.0 * items * items + 32.0 * shape.interactions as f64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::AllItems;
    use kindred_core::{EventType, Interaction, InteractionsBuilder};

    fn train(rows: &[(&str, &str, i64)]) -> TrainSet {
        let mut b = InteractionsBuilder::new();
        for &(u, i, t) in rows {
            b.push(Interaction::implicit(u, i, EventType::View, Some(t)));
        }
        TrainSet::new(b.build())
    }

    /// Two clusters: {a, b, c} and {x, y}.
    fn clusters() -> TrainSet {
        train(&[
            ("u1", "a", 1),
            ("u1", "b", 2),
            ("u1", "c", 3),
            ("u2", "a", 1),
            ("u2", "b", 2),
            ("u3", "b", 1),
            ("u3", "c", 2),
            ("u4", "x", 1),
            ("u4", "y", 2),
            ("u5", "x", 1),
            ("u5", "y", 2),
            ("u6", "a", 1),
            ("u6", "c", 2),
        ])
    }

    fn fit(spec: &str, data: &TrainSet) -> Box<dyn Model> {
        crate::registry::build_algorithm(spec)
            .unwrap()
            .fit(data, &FitContext::default())
            .unwrap()
    }

    #[test]
    fn recommends_within_the_cluster_of_the_history() {
        let data = clusters();
        let model = fit("slim:l1=0.1,l2=1", &data);
        let items = &model.fitted().items;
        let a = items.get("a").unwrap();
        let recs = model.recommend(&UserQuery::anonymous(&[a]), 2, &AllItems);
        let names: Vec<&str> = recs.iter().map(|r| items.external(r.item)).collect();
        assert_eq!(names.len(), 2);
        assert!(names.iter().all(|n| ["b", "c"].contains(n)), "{names:?}");
        // Nothing links the clusters, so x and y score 0 for a history of a.
        let mut scores = vec![0f32; items.len()];
        model.score_all(&UserQuery::anonymous(&[a]), &mut scores);
        assert_eq!(scores[items.get("x").unwrap() as usize], 0.0);
    }

    #[test]
    fn recency_weights_the_latest_history_item_most() {
        let data = clusters();
        let items = data.data.item_ids().clone();
        let (b, x) = (items.get("b").unwrap(), items.get("x").unwrap());
        let model = fit("slim:l1=0.1,l2=1,half_life=1", &data);
        let mut scores = vec![0f32; items.len()];
        // x is the most recent: its cluster outranks b's.
        model.score_all(&UserQuery::anonymous(&[b, x]), &mut scores);
        let y = scores[items.get("y").unwrap() as usize];
        let a = scores[items.get("a").unwrap() as usize];
        assert!(y > a, "y {y} vs a {a}");
    }

    #[test]
    fn save_and_load_give_the_same_scores() {
        let data = clusters();
        let model = fit("slim:l1=0.1,l2=1,half_life=2", &data);
        let dir = std::env::temp_dir().join(format!("kindred-slim-{}", std::process::id()));
        model.save(&dir).unwrap();
        let loaded = crate::registry::load_model(&dir).unwrap();
        for u in 0..data.n_users() as u32 {
            let q = UserQuery::known(u);
            let (mut s1, mut s2) = (vec![0f32; 5], vec![0f32; 5]);
            model.score_all(&q, &mut s1);
            loaded.score_all(&q, &mut s2);
            assert_eq!(s1, s2);
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn bad_parameters_are_refused_with_the_name() {
        for spec in [
            "slim:l2=0",
            "slim:l1=-1",
            "slim:neighbors=0",
            "slim:weighting=tfidf",
        ] {
            let err = crate::registry::build_algorithm(spec)
                .err()
                .unwrap()
                .to_string();
            assert!(err.contains("slim"), "{spec}: {err}");
        }
        let data = clusters();
        let err = crate::registry::build_algorithm("slim:max_items=2")
            .unwrap()
            .fit(&data, &FitContext::default())
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("exceed max_items"), "{err}");
    }
}
