//! A set of item indices as one bit per catalog item: what a request tests for every candidate
//! it scans (seen, excluded, already listed), where a sorted list's binary search or a hash set's
//! hashing would cost more than the test itself. One allocation of `items / 8` bytes, sized for
//! the catalog once: an index past it is never a member, so no index can make the set grow.

/// Item indices below a catalog size, one bit each.
#[derive(Debug, Clone, Default)]
pub struct ItemSet {
    words: Vec<u64>,
    items: usize,
}

impl ItemSet {
    /// An empty set for items `0..items`.
    pub fn with_items(items: usize) -> Self {
        Self {
            words: vec![0; items.div_ceil(64)],
            items,
        }
    }

    /// Adds `item`; true when it was added (false when it was a member already, or is not
    /// below the set's size and so can never be one).
    pub fn insert(&mut self, item: u32) -> bool {
        if item as usize >= self.items {
            return false;
        }
        let (word, bit) = (item as usize / 64, 1u64 << (item % 64));
        match self.words.get_mut(word) {
            Some(w) if *w & bit == 0 => {
                *w |= bit;
                true
            }
            _ => false,
        }
    }

    /// Whether `item` is in the set.
    #[inline]
    pub fn contains(&self, item: u32) -> bool {
        self.words
            .get(item as usize / 64)
            .is_some_and(|w| w & (1u64 << (item % 64)) != 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashSet;

    proptest! {
        #[test]
        fn behaves_as_a_hash_set_of_the_items_below_its_size(
            size in 0usize..300,
            inserts in proptest::collection::vec(0u32..400, 0..60),
            probes in proptest::collection::vec(0u32..500, 0..60),
        ) {
            let mut bits = ItemSet::with_items(size);
            let mut reference = HashSet::new();
            for &i in &inserts {
                let expected = (i as usize) < size && reference.insert(i);
                prop_assert_eq!(bits.insert(i), expected);
            }
            for &i in probes.iter().chain(&inserts) {
                prop_assert_eq!(bits.contains(i), reference.contains(&i));
            }
        }
    }
}
