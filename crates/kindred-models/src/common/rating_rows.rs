//! The explicit value of each training row and the order Surprise visits them in: what the
//! rating models (and random's normal draw) train on.

use kindred_core::{Error, Result, TrainSet};

/// Explicit value of each row: the rating, or the implicit weight where there is none.
pub(crate) fn row_values(data: &TrainSet) -> Vec<f64> {
    data.data
        .ratings()
        .iter()
        .zip(data.data.weights())
        .map(|(&r, &w)| if r.is_nan() { w as f64 } else { r as f64 })
        .collect()
}

/// The order in which Surprise visits training ratings (`Trainset.all_ratings`): users in order
/// of their first rating, each user's ratings in log order. SGD results depend on it.
pub(crate) fn surprise_rating_order(users: &[u32]) -> Vec<u32> {
    let n_users = users.iter().map(|&u| u as usize + 1).max().unwrap_or(0);
    let mut rank = vec![u32::MAX; n_users];
    let mut next = 0u32;
    for &u in users {
        if rank[u as usize] == u32::MAX {
            rank[u as usize] = next;
            next += 1;
        }
    }
    // Counting sort by rank: stable, so each user's ratings stay in log order.
    let mut start = vec![0usize; next as usize + 1];
    for &u in users {
        start[rank[u as usize] as usize + 1] += 1;
    }
    for k in 0..next as usize {
        start[k + 1] += start[k];
    }
    let mut order = vec![0u32; users.len()];
    for (r, &u) in users.iter().enumerate() {
        let slot = &mut start[rank[u as usize] as usize];
        order[*slot] = r as u32;
        *slot += 1;
    }
    order
}

/// Global mean and the ratings of a training set, checking there are ratings to learn from.
pub(crate) fn rating_values(model: &str, data: &TrainSet) -> Result<Vec<f64>> {
    if data.data.is_empty() {
        return Err(Error::InvalidInput(format!("{model}: empty training set")));
    }
    Ok(row_values(data))
}
