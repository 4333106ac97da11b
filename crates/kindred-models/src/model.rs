//! The two traits every algorithm implements: [`Algorithm`] (configuration and training) and
//! [`Model`] (a frozen, servable result).
//!
//! `fit` returns a boxed model rather than an associated type so that the CLI, the evaluation
//! runner and (later) the server can hold heterogeneous lists of algorithms and models.

use std::path::Path;

use kindred_core::{top_k, FeatureTable, FitContext, ItemIdx, Result, Scored, TrainSet, UserIdx};

/// Who recommendations are for: a known user (by dense index) and/or a list of items the user
/// interacted with recently (anonymous or session users, real-time fold-in).
#[derive(Debug, Clone, Copy, Default)]
pub struct UserQuery<'a> {
    pub user: Option<UserIdx>,
    pub history: &'a [ItemIdx],
}

impl<'a> UserQuery<'a> {
    /// A known user.
    pub fn known(user: UserIdx) -> Self {
        Self {
            user: Some(user),
            history: &[],
        }
    }

    /// An anonymous user described by the items they interacted with.
    pub fn anonymous(history: &'a [ItemIdx]) -> Self {
        Self {
            user: None,
            history,
        }
    }
}

/// Decides which items may be recommended (business rules, candidate sets).
pub trait ItemFilter: Sync {
    fn allows(&self, item: ItemIdx) -> bool;
}

/// Allows every item.
#[derive(Debug, Clone, Copy, Default)]
pub struct AllItems;

impl ItemFilter for AllItems {
    fn allows(&self, _item: ItemIdx) -> bool {
        true
    }
}

impl<F: Fn(ItemIdx) -> bool + Sync> ItemFilter for F {
    fn allows(&self, item: ItemIdx) -> bool {
        self(item)
    }
}

/// Hyperparameters plus training.
pub trait Algorithm: Send + Sync {
    /// Registry name, e.g. `baseline`.
    fn name(&self) -> &'static str;
    /// Hyperparameters as JSON (every parameter, defaults included).
    fn params(&self) -> serde_json::Value;
    /// Trains on `data`.
    fn fit(&self, data: &TrainSet, ctx: &FitContext) -> Result<Box<dyn Model>>;
}

/// `Model::score` for models whose natural unit is the whole catalog (item-item products such as
/// EASE and item-kNN): score every item once, then read out the requested ones (0 for indices
/// outside the catalog).
pub fn score_via_all<M: Model + ?Sized>(
    model: &M,
    query: &UserQuery<'_>,
    items: &[ItemIdx],
    out: &mut [f32],
) {
    let mut all = vec![0f32; model.fitted().items.len()];
    model.score_all(query, &mut all);
    for (o, &i) in out.iter_mut().zip(items) {
        *o = all.get(i as usize).copied().unwrap_or(0.0);
    }
}

/// A trained, frozen model.
pub trait Model: Send + Sync {
    /// Registry name of the algorithm that produced it.
    fn name(&self) -> &'static str;

    /// Hyperparameters it was trained with.
    fn params(&self) -> serde_json::Value;

    /// Shared state: id maps, seen items, rating range, training fingerprint.
    fn fitted(&self) -> &crate::persist::Fitted;

    /// Predicted rating, clipped to the training rating range; `None` (the default) when the
    /// model does not predict ratings. Users or items without training data fall back to what the
    /// model knows (biases, global mean), as Surprise does.
    fn predict(&self, _user: UserIdx, _item: ItemIdx) -> Option<f32> {
        None
    }

    /// Relevance scores of `items` for `query` (higher is better), written to `out`.
    fn score(&self, query: &UserQuery<'_>, items: &[ItemIdx], out: &mut [f32]);

    /// Scores of every catalog item for `query`; `out.len()` is the catalog size.
    fn score_all(&self, query: &UserQuery<'_>, out: &mut [f32]) {
        let items: Vec<ItemIdx> = (0..out.len() as ItemIdx).collect();
        self.score(query, &items, out);
    }

    /// The `k` best items for `query` that `filter` allows, excluding what the user has already
    /// interacted with (training data of a known user, and the query's history).
    fn recommend(&self, query: &UserQuery<'_>, k: usize, filter: &dyn ItemFilter) -> Vec<Scored> {
        let fitted = self.fitted();
        let mut scores = vec![0f32; fitted.items.len()];
        self.score_all(query, &mut scores);
        // NaN scores are never selected: masking beats a membership test per candidate.
        let seen = query.user.map(|u| fitted.seen.items_of(u)).unwrap_or(&[]);
        for &item in seen.iter().chain(query.history) {
            if let Some(s) = scores.get_mut(item as usize) {
                *s = f32::NAN;
            }
        }
        top_k(&scores, k, |item| !filter.allows(item))
    }

    /// Item embedding matrix (row-major, one row per item), for models that have one.
    fn item_embeddings(&self) -> Option<(usize, &[f32])> {
        None
    }

    /// User embedding matrix (row-major, one row per training user), for models whose users
    /// have factors in the same space as [`Self::item_embeddings`]. Used for similar users.
    fn user_embeddings(&self) -> Option<(usize, &[f32])> {
        None
    }

    /// How the model was chosen, when a search on its training data chose it (the `auto`
    /// spec's trace; see `Manifest::selection`). None for a model fitted from a fixed spec.
    fn selection(&self) -> Option<&serde_json::Value> {
        None
    }

    /// True when the order of a query's history changes its scores (sequence models): serving
    /// then gives a user's stored items oldest first rather than in catalog order.
    fn reads_order(&self) -> bool {
        false
    }

    /// This model with its catalog grown by the entities of `item_features` it was not trained
    /// on, appended in the table's order and each scored from its features alone, as the model
    /// scores a cold item; items without a usable feature are left out. `None` (the default)
    /// when the model cannot score an item from features, or no new item has a usable feature.
    /// Serving calls it at every catalog rebuild, so an item written after training reaches
    /// model-scored lists before the next version learns it.
    fn with_new_items(&self, _item_features: &FeatureTable) -> Option<Box<dyn Model>> {
        None
    }

    /// Writes `manifest.json` and tensors into `dir` (created if missing).
    fn save(&self, dir: &Path) -> Result<()>;
}
