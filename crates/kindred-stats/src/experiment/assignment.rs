//! Deterministic assignment of users to variants: the user's bucket is a hash of (salt, user)
//! mapped to [0, 1), and the variants own consecutive slices of [0, 1) in proportion to their
//! weights. The same user, salt and weights always give the same variant, on every machine and
//! in every process, with no state to store.
//!
//! When the weights change, a user's bucket does not, only the slice boundaries move: users whose
//! bucket falls between an old and a new boundary switch variant, every other user keeps theirs.
//! Growing the last variant (ramping a treatment placed last from 10% to 50%) therefore moves
//! users only into it, never out of it; changing weights in the middle of the list, reordering
//! variants or changing the salt reshuffles users, and a reshuffled experiment must be analysed
//! as a new one. A new salt per experiment keeps experiments' assignments independent.

use kindred_core::rng::pair_key;
use kindred_core::{Error, Result};

/// The variants of an experiment with their (normalised) weights.
#[derive(Debug, Clone, PartialEq)]
pub struct Allocation {
    variants: Vec<String>,
    /// Upper ends of each variant's slice of [0, 1); the last is 1.
    cumulative: Vec<f64>,
}

impl Allocation {
    /// An allocation from (variant, weight) pairs; weights are positive and need not sum to 1.
    pub fn new(weights: &[(String, f64)]) -> Result<Self> {
        if weights.is_empty() {
            return Err(Error::InvalidInput(
                "an experiment needs at least one variant".into(),
            ));
        }
        if let Some((name, w)) = weights.iter().find(|(_, w)| !(w.is_finite() && *w > 0.0)) {
            return Err(Error::spec(
                "weight",
                format!("{name}={w}"),
                "must be a positive number",
            ));
        }
        let total: f64 = weights.iter().map(|(_, w)| w).sum();
        let mut running = 0.0;
        let mut cumulative: Vec<f64> = weights
            .iter()
            .map(|(_, w)| {
                running += w / total;
                running
            })
            .collect();
        if let Some(last) = cumulative.last_mut() {
            *last = 1.0;
        }
        Ok(Self {
            variants: weights.iter().map(|(v, _)| v.clone()).collect(),
            cumulative,
        })
    }

    /// The variant names in order.
    pub fn variants(&self) -> &[String] {
        &self.variants
    }

    /// The user's bucket in [0, 1): the top 53 bits of `pair_key(0, salt, user)` (FNV-1a, then mix64).
    pub fn bucket(user: &str, salt: &str) -> f64 {
        (pair_key(0, salt, user) >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// The index of the user's variant.
    pub fn assign_index(&self, user: &str, salt: &str) -> usize {
        let bucket = Self::bucket(user, salt);
        self.cumulative
            .partition_point(|&upper| upper <= bucket)
            .min(self.variants.len() - 1)
    }

    /// The user's variant.
    pub fn assign(&self, user: &str, salt: &str) -> &str {
        &self.variants[self.assign_index(user, salt)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::experiment::srm::sample_ratio_check;
    use proptest::prelude::*;

    fn allocation(weights: &[(&str, f64)]) -> Allocation {
        Allocation::new(
            &weights
                .iter()
                .map(|(n, w)| (n.to_string(), *w))
                .collect::<Vec<_>>(),
        )
        .unwrap()
    }

    #[test]
    fn assignment_is_uniform_by_weight() {
        // 100,000 users on a 20/30/50 split: the chi-squared fit against the weights is not rejected.
        let a = allocation(&[("A", 0.2), ("B", 0.3), ("C", 0.5)]);
        let mut counts = [0u64; 3];
        for user in 0..100_000 {
            counts[a.assign_index(&user.to_string(), "exp-1")] += 1;
        }
        let check = sample_ratio_check(&counts, &[0.2, 0.3, 0.5]).unwrap();
        assert!(check.p_value > 0.01, "{check:?}");
        // Buckets themselves are uniform: chi-squared over 20 equal bins.
        let mut bins = [0u64; 20];
        for user in 0..100_000 {
            bins[(Allocation::bucket(&format!("u{user}"), "s") * 20.0) as usize] += 1;
        }
        assert!(sample_ratio_check(&bins, &[1.0; 20]).unwrap().p_value > 0.001);
    }

    #[test]
    fn ramping_the_last_variant_only_moves_users_into_it() {
        let before = allocation(&[("A", 0.9), ("B", 0.1)]);
        let after = allocation(&[("A", 0.5), ("B", 0.5)]);
        for user in 0..10_000 {
            let user = user.to_string();
            if before.assign(&user, "ramp") == "B" {
                assert_eq!(after.assign(&user, "ramp"), "B");
            }
        }
    }

    #[test]
    fn salts_are_independent() {
        let a = allocation(&[("A", 1.0), ("B", 1.0)]);
        let same = (0..10_000)
            .filter(|u| a.assign(&u.to_string(), "x") == a.assign(&u.to_string(), "y"))
            .count();
        // About half agree by chance: 5,000 with sd 50.
        assert!((4_800..5_200).contains(&same), "{same}");
        assert!(Allocation::new(&[]).is_err());
        assert!(Allocation::new(&[("A".into(), 0.0)]).is_err());
    }

    proptest! {
        #[test]
        fn assignment_is_deterministic(user in ".{0,20}", salt in "[a-z0-9]{0,8}", w in 0.01f64..10.0) {
            let a = allocation(&[("A", 1.0), ("B", w), ("C", 2.0)]);
            let first = a.assign(&user, &salt).to_string();
            let again = a.clone();
            prop_assert_eq!(again.assign(&user, &salt), first.as_str());
            let b = Allocation::bucket(&user, &salt);
            prop_assert!((0.0..1.0).contains(&b));
        }
    }
}
