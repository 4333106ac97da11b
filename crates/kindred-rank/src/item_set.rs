//! A set of item indices as one bit per item: what a request tests for every candidate it
//! scans (seen, excluded, already listed), where a sorted list's binary search or a hash set's
//! hashing would cost more than the test itself. One allocation of `items / 8` bytes.

/// Item indices, one bit each.
#[derive(Debug, Clone, Default)]
pub struct ItemSet {
    words: Vec<u64>,
}

impl ItemSet {
    /// An empty set sized for items `0..items` (it grows for larger ones).
    pub fn with_items(items: usize) -> Self {
        Self {
            words: vec![0; items.div_ceil(64)],
        }
    }

    /// Adds `item`; true when it was not in the set.
    pub fn insert(&mut self, item: u32) -> bool {
        let (word, bit) = (item as usize / 64, 1u64 << (item % 64));
        if word >= self.words.len() {
            self.words.resize(word + 1, 0);
        }
        let fresh = self.words[word] & bit == 0;
        self.words[word] |= bit;
        fresh
    }

    /// Whether `item` is in the set.
    #[inline]
    pub fn contains(&self, item: u32) -> bool {
        self.words
            .get(item as usize / 64)
            .is_some_and(|w| w & (1u64 << (item % 64)) != 0)
    }
}

impl FromIterator<u32> for ItemSet {
    fn from_iter<I: IntoIterator<Item = u32>>(items: I) -> Self {
        let mut set = Self::default();
        for item in items {
            set.insert(item);
        }
        set
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashSet;

    proptest! {
        #[test]
        fn behaves_as_a_hash_set(
            sized_for in 0usize..300,
            inserts in proptest::collection::vec(0u32..400, 0..60),
            probes in proptest::collection::vec(0u32..500, 0..60),
        ) {
            let mut bits = ItemSet::with_items(sized_for);
            let mut reference = HashSet::new();
            for &i in &inserts {
                prop_assert_eq!(bits.insert(i), reference.insert(i));
            }
            for &i in probes.iter().chain(&inserts) {
                prop_assert_eq!(bits.contains(i), reference.contains(&i));
            }
            let collected: ItemSet = inserts.iter().copied().collect();
            for &i in &probes {
                prop_assert_eq!(collected.contains(i), reference.contains(&i));
            }
        }
    }
}
