//! Interning of external string ids to dense `u32` indices, both ways.
//!
//! Models work on dense indices (`0..n`); users of the library see their own ids. One `IdMap`
//! per entity kind (users, items) is shared by every subset of a dataset, so indices stay
//! comparable between training and test sets.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// Dense index of a user.
pub type UserIdx = u32;
/// Dense index of an item.
pub type ItemIdx = u32;

/// Bidirectional map between external string ids and dense indices in insertion order.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(from = "Vec<String>", into = "Vec<String>")]
pub struct IdMap {
    external: Vec<String>,
    index: HashMap<String, u32>,
}

impl IdMap {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty map with room for `n` ids.
    pub fn with_capacity(n: usize) -> Self {
        Self {
            external: Vec::with_capacity(n),
            index: HashMap::with_capacity(n),
        }
    }

    /// Returns the index of `id`, interning it if it is new.
    pub fn intern(&mut self, id: &str) -> u32 {
        if let Some(&idx) = self.index.get(id) {
            return idx;
        }
        let idx = self.external.len() as u32;
        self.external.push(id.to_owned());
        self.index.insert(id.to_owned(), idx);
        idx
    }

    /// The index of `id`, if known.
    pub fn get(&self, id: &str) -> Option<u32> {
        self.index.get(id).copied()
    }

    /// The external id of `idx`. Panics only on an index this map never issued (a programming error).
    pub fn external(&self, idx: u32) -> &str {
        &self.external[idx as usize]
    }

    /// The external id of `idx`, if it exists.
    pub fn try_external(&self, idx: u32) -> Option<&str> {
        self.external.get(idx as usize).map(String::as_str)
    }

    /// Number of interned ids.
    pub fn len(&self) -> usize {
        self.external.len()
    }

    /// True when no id is interned.
    pub fn is_empty(&self) -> bool {
        self.external.is_empty()
    }

    /// External ids in index order.
    pub fn externals(&self) -> &[String] {
        &self.external
    }
}

impl From<Vec<String>> for IdMap {
    fn from(external: Vec<String>) -> Self {
        let index = external
            .iter()
            .enumerate()
            .map(|(i, s)| (s.clone(), i as u32))
            .collect();
        Self { external, index }
    }
}

impl From<IdMap> for Vec<String> {
    fn from(map: IdMap) -> Self {
        map.external
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interning_is_stable_and_bidirectional() {
        let mut map = IdMap::new();
        assert_eq!(map.intern("b"), 0);
        assert_eq!(map.intern("a"), 1);
        assert_eq!(map.intern("b"), 0);
        assert_eq!(map.get("a"), Some(1));
        assert_eq!(map.get("z"), None);
        assert_eq!(map.external(1), "a");
        assert_eq!(map.len(), 2);
        let json = serde_json::to_string(&map).unwrap();
        assert_eq!(json, r#"["b","a"]"#);
        let back: IdMap = serde_json::from_str(&json).unwrap();
        assert_eq!(back.get("a"), Some(1));
    }
}
