//! Top-K lists for many users at once, by external id: what `kindred recommend` prints and the
//! Python package's `Model.recommend` returns, from one function so the two cannot differ.

use kindred_core::topk::top_k;
use kindred_core::Scored;
use rayon::prelude::*;

use crate::model::AllItems;
use crate::{Model, UserQuery};

/// Each user's top `k` (best first), in the order given. A user the model has never seen gets
/// the model's non-personalised ranking, never an empty list. With `exclude_seen`, a known
/// user's training items are left out as the model's `recommend` leaves them out; without it
/// they compete with the rest (a "buy it again" list, or a check of what the model learned).
pub fn recommend_users(
    model: &dyn Model,
    users: &[String],
    k: usize,
    exclude_seen: bool,
) -> Vec<(String, Vec<Scored>)> {
    let ids = &model.fitted().users;
    let n_items = model.fitted().items.len();
    users
        .par_iter()
        .map(|ext| {
            let query = match ids.get(ext) {
                Some(u) => UserQuery::known(u),
                None => UserQuery::default(),
            };
            let list = if exclude_seen {
                model.recommend(&query, k, &AllItems)
            } else {
                let mut scores = vec![0f32; n_items];
                model.score_all(&query, &mut scores);
                top_k(&scores, k, |_| false)
            };
            (ext.clone(), list)
        })
        .collect()
}
