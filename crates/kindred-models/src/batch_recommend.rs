//! Top-K lists for many users at once, by external id: what `kindred recommend` prints and the
//! Python package's `Model.recommend` returns, from one function so the two cannot differ.

use kindred_core::Scored;
use rayon::prelude::*;

use crate::model::AllItems;
use crate::{Model, UserQuery};

/// Each user's top `k` (best first), in the order given. A user the model has never seen gets
/// the model's non-personalised ranking, never an empty list; a known user's training items are
/// left out as the model's `recommend` leaves them out.
pub fn recommend_users(
    model: &dyn Model,
    users: &[String],
    k: usize,
) -> Vec<(String, Vec<Scored>)> {
    let ids = &model.fitted().users;
    users
        .par_iter()
        .map(|ext| {
            let query = match ids.get(ext) {
                Some(u) => UserQuery::known(u),
                None => UserQuery::default(),
            };
            (ext.clone(), model.recommend(&query, k, &AllItems))
        })
        .collect()
}
