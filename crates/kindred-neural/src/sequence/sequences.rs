//! Each user's training items in the order they happened: by timestamp, and rows with equal
//! timestamps in the order the source gave them (the order the `loo` protocol uses), every event
//! kept, repeats included. The input of sequence models, saved with them so that a known user is
//! served from the history the model was trained on.

use kindred_core::{ItemIdx, Result, TrainSet, UserIdx};
use kindred_models::persist::{TensorReader, TensorWriter};

/// Per-user item sequences (CSR without values), oldest first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sequences {
    indptr: Vec<u64>,
    items: Vec<ItemIdx>,
}

impl Sequences {
    /// The sequences of a training set.
    pub fn from_train(data: &TrainSet) -> Self {
        let log = &data.data;
        let n_users = data.n_users();
        let mut counts = vec![0u64; n_users + 1];
        for &u in log.users() {
            counts[u as usize + 1] += 1;
        }
        for u in 0..n_users {
            counts[u + 1] += counts[u];
        }
        let indptr = counts;
        let mut rows = vec![0u32; log.len()];
        let mut next: Vec<u64> = indptr[..n_users].to_vec();
        for (r, &u) in log.users().iter().enumerate() {
            rows[next[u as usize] as usize] = r as u32;
            next[u as usize] += 1;
        }
        let ts = log.timestamps();
        for u in 0..n_users {
            let range = indptr[u] as usize..indptr[u + 1] as usize;
            // Rows are already in source order within a user, so a stable sort keeps ties so.
            rows[range].sort_by_key(|&r| ts[r as usize]);
        }
        let items = rows.iter().map(|&r| log.items()[r as usize]).collect();
        Self { indptr, items }
    }

    /// Number of users.
    pub fn n_users(&self) -> usize {
        self.indptr.len().saturating_sub(1)
    }

    /// User `user`'s items, oldest first (empty for an unknown index).
    pub fn of(&self, user: UserIdx) -> &[ItemIdx] {
        let u = user as usize;
        if u + 1 >= self.indptr.len() {
            return &[];
        }
        &self.items[self.indptr[u] as usize..self.indptr[u + 1] as usize]
    }

    /// Adds the `sequence.*` tensors.
    pub fn save_into(&self, tensors: &mut TensorWriter) {
        tensors
            .u64("sequence.indptr", &self.indptr)
            .u32("sequence.items", &self.items);
    }

    /// Reads the `sequence.*` tensors of a model with `users` users and `items` items.
    pub fn load(tensors: &TensorReader, users: usize, items: usize) -> Result<Self> {
        let out = Self {
            indptr: tensors.u64("sequence.indptr")?,
            items: tensors.u32("sequence.items")?,
        };
        tensors.check_csr(
            "sequence",
            &out.indptr,
            users,
            &out.items,
            items,
            out.items.len(),
        )?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use kindred_core::{Interaction, InteractionsBuilder};

    use super::*;

    #[test]
    fn orders_by_time_then_source_row_and_keeps_repeats() {
        let mut b = InteractionsBuilder::new();
        for (u, i, t) in [
            ("u", "c", 5),
            ("v", "a", 1),
            ("u", "a", 2),
            ("u", "b", 5),
            ("u", "a", 9),
        ] {
            b.push(Interaction::rating(u, i, 1.0, Some(t)));
        }
        let train = TrainSet::new(b.build());
        let s = Sequences::from_train(&train);
        let name = |u: &str| -> Vec<&str> {
            let u = train.data.user_ids().get(u).unwrap();
            s.of(u)
                .iter()
                .map(|&i| train.data.item_ids().external(i))
                .collect()
        };
        assert_eq!(name("u"), vec!["a", "c", "b", "a"]);
        assert_eq!(name("v"), vec!["a"]);
        assert!(s.of(99).is_empty());
    }
}
