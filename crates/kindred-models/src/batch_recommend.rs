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

#[cfg(test)]
mod tests {
    use kindred_core::FitContext;

    use super::*;
    use crate::build_algorithm;
    use crate::testutil::train;

    #[test]
    fn seen_items_are_left_out_unless_asked_for() {
        // a and b are the most popular; u1 has seen both, u3 neither.
        let data = train(&[
            ("u1", "a", 1.0),
            ("u1", "b", 1.0),
            ("u2", "a", 1.0),
            ("u2", "b", 1.0),
            ("u2", "c", 1.0),
            ("u3", "c", 1.0),
            ("u4", "a", 1.0),
        ]);
        let model = build_algorithm("popularity")
            .unwrap()
            .fit(&data, &FitContext::default())
            .unwrap();
        let items = |lists: &[(String, Vec<Scored>)], at: usize| -> Vec<String> {
            lists[at]
                .1
                .iter()
                .map(|s| model.fitted().items.external(s.item).to_owned())
                .collect()
        };
        let users = ["u1".to_owned(), "nobody".to_owned()];
        let excluded = recommend_users(model.as_ref(), &users, 3, true);
        assert_eq!(items(&excluded, 0), ["c"]);
        let included = recommend_users(model.as_ref(), &users, 3, false);
        assert_eq!(items(&included, 0), ["a", "b", "c"]);
        // Someone the model never saw has nothing to leave out either way.
        assert_eq!(items(&excluded, 1), items(&included, 1));
        assert_eq!(included[1].0, "nobody");
    }
}
