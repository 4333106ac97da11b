//! Erasure of a user or an item ("forget me"): what [`crate::Store::erase_user`] and
//! [`crate::Store::erase_item`] report, and the tombstones they leave behind.
//!
//! A tombstone is a row of `erasures`: the kind (`user` or `item`), the hex SHA-256 of the id and
//! the time of the erasure. It never holds the id itself, so the store keeps no trace of who was
//! erased, yet an id arriving again can be recognised by hashing it: [`crate::Store::load_dataset`]
//! leaves tombstoned ids out of every training set, and [`crate::import::Import`] skips rows
//! naming them. Hashing an id is cheap but not free, so every check first asks whether any
//! tombstone of that kind exists at all.

use std::collections::{HashMap, HashSet};

use kindred_core::{Error, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::records::{self, Feedback};

/// What an erasure is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ErasedKind {
    User,
    Item,
}

impl ErasedKind {
    /// The name stored in the `kind` column.
    pub fn as_str(self) -> &'static str {
        match self {
            ErasedKind::User => "user",
            ErasedKind::Item => "item",
        }
    }
}

/// The hex SHA-256 of an id: what a tombstone holds instead of the id.
pub fn id_hash(id: &str) -> String {
    use std::fmt::Write;
    let digest = Sha256::digest(id.as_bytes());
    let mut hex = String::with_capacity(2 * digest.len());
    for byte in digest.iter() {
        // Writing to a String cannot fail.
        let _ = write!(hex, "{byte:02x}");
    }
    hex
}

/// Rows removed by one erasure, per table. Erasing an id twice is allowed: the second report
/// counts nothing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErasureReport {
    pub users: u64,
    pub items: u64,
    pub feedback: u64,
    pub impressions: u64,
    pub exposures: u64,
}

/// A bandit state (`bandit_states.state`, a JSON document whose `items` object is keyed by item
/// id) without item `id`; None when it does not name the item (or is not such a document).
/// Erasing an item scrubs every state with it in the erasure's transaction.
pub(crate) fn scrub_bandit_item(state: &str, id: &str) -> Option<String> {
    let mut value: serde_json::Value = serde_json::from_str(state).ok()?;
    value.get_mut("items")?.as_object_mut()?.remove(id)?;
    serde_json::to_string(&value).ok()
}

/// A stored list (`impression_lists.items`) without item `id`: how many of its items were
/// `id`, and the items left in the store's encoding (`None` when none are left, so the list
/// goes). `None` when the text is not that encoding.
pub(crate) fn scrub_list_item(items: &str, id: &str) -> Option<(u64, Option<(String, i64)>)> {
    let mut shown = records::decode_items(items)?;
    let before = shown.len();
    shown.retain(|s| s.item != id);
    let removed = (before - shown.len()) as u64;
    let left = (!shown.is_empty()).then(|| (records::encode_items(&shown), shown.len() as i64));
    Some((removed, left))
}

impl ErasureReport {
    /// Rows removed in all.
    pub fn total(&self) -> u64 {
        self.users + self.items + self.feedback + self.impressions + self.exposures
    }
}

/// Every tombstone of a store, as hashes per kind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Erasures {
    users: HashSet<String>,
    items: HashSet<String>,
}

impl Erasures {
    /// Adds a stored tombstone row; a kind this build does not know is a corrupt store.
    pub(crate) fn insert_row(
        &mut self,
        backend: &'static str,
        operation: &'static str,
        kind: &str,
        hash: String,
    ) -> Result<()> {
        match kind {
            "user" => self.users.insert(hash),
            "item" => self.items.insert(hash),
            other => {
                return Err(crate::decode::corrupt(
                    backend,
                    operation,
                    format!("erasure of unknown kind {other:?}"),
                ))
            }
        };
        Ok(())
    }

    /// No tombstone at all (then no id needs hashing).
    pub fn is_empty(&self) -> bool {
        self.users.is_empty() && self.items.is_empty()
    }

    /// Tombstones of both kinds.
    pub fn len(&self) -> usize {
        self.users.len() + self.items.len()
    }

    /// Erased users.
    pub fn users(&self) -> usize {
        self.users.len()
    }

    /// Erased items.
    pub fn items(&self) -> usize {
        self.items.len()
    }

    /// Whether the user `id` was erased.
    pub fn user_erased(&self, id: &str) -> bool {
        !self.users.is_empty() && self.users.contains(&id_hash(id))
    }

    /// Whether the item `id` was erased.
    pub fn item_erased(&self, id: &str) -> bool {
        !self.items.is_empty() && self.items.contains(&id_hash(id))
    }

    /// Whether an id of `kind` was erased.
    pub fn erased(&self, kind: ErasedKind, id: &str) -> bool {
        match kind {
            ErasedKind::User => self.user_erased(id),
            ErasedKind::Item => self.item_erased(id),
        }
    }

    /// Whether the event names an erased user or item.
    pub fn names_erased(&self, event: &Feedback) -> bool {
        self.user_erased(&event.user) || self.item_erased(&event.item)
    }
}

/// [`Erasures`] checks over a long stream of rows that name few distinct ids (the feedback log):
/// each id is hashed once, then looked up.
pub(crate) struct ErasedFilter<'a> {
    erasures: &'a Erasures,
    users: HashMap<String, bool>,
    items: HashMap<String, bool>,
}

impl<'a> ErasedFilter<'a> {
    pub(crate) fn new(erasures: &'a Erasures) -> Self {
        Self {
            erasures,
            users: HashMap::new(),
            items: HashMap::new(),
        }
    }

    fn memo(seen: &mut HashMap<String, bool>, id: &str, erased: impl FnOnce(&str) -> bool) -> bool {
        if let Some(&known) = seen.get(id) {
            return known;
        }
        let answer = erased(id);
        seen.insert(id.to_owned(), answer);
        answer
    }

    pub(crate) fn user(&mut self, id: &str) -> bool {
        let erasures = self.erasures;
        !erasures.users.is_empty() && Self::memo(&mut self.users, id, |i| erasures.user_erased(i))
    }

    pub(crate) fn item(&mut self, id: &str) -> bool {
        let erasures = self.erasures;
        !erasures.items.is_empty() && Self::memo(&mut self.items, id, |i| erasures.item_erased(i))
    }

    pub(crate) fn feedback(&mut self, event: &Feedback) -> bool {
        self.user(&event.user) || self.item(&event.item)
    }
}

/// Refuses an erasure whose id is invalid, with the same checks as every other id.
pub(crate) fn check(kind: ErasedKind, id: &str) -> Result<()> {
    crate::records::check_id(&format!("{} id", kind.as_str()), id)
        .map_err(|e| Error::InvalidInput(format!("erasure: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_is_hex_sha256() {
        // echo -n abc | sha256sum
        assert_eq!(
            id_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(id_hash("").len(), 64);
    }

    #[test]
    fn erasures_answer_per_kind() {
        let mut e = Erasures::default();
        assert!(e.is_empty() && !e.user_erased("u1"));
        e.insert_row("sqlite", "test", "user", id_hash("u1"))
            .unwrap();
        e.insert_row("sqlite", "test", "item", id_hash("i1"))
            .unwrap();
        assert!(e.user_erased("u1") && !e.item_erased("u1"));
        assert!(e.item_erased("i1") && !e.user_erased("i1"));
        assert!(e.erased(ErasedKind::User, "u1") && !e.erased(ErasedKind::User, "u2"));
        let event = |user: &str, item: &str| Feedback {
            user: user.into(),
            item: item.into(),
            event_type: "click".into(),
            value: None,
            timestamp: 0,
            event_id: None,
        };
        assert!(e.names_erased(&event("u1", "i9")));
        assert!(e.names_erased(&event("u9", "i1")));
        assert!(!e.names_erased(&event("u9", "i9")));
        let err = e
            .insert_row("sqlite", "test", "model", "x".into())
            .unwrap_err();
        assert!(err.to_string().contains("unknown kind"), "{err}");
    }

    #[test]
    fn the_filter_agrees_with_the_set() {
        let mut e = Erasures::default();
        e.insert_row("sqlite", "test", "user", id_hash("u1"))
            .unwrap();
        let mut f = ErasedFilter::new(&e);
        for _ in 0..2 {
            assert!(f.user("u1") && !f.user("u2") && !f.item("u1"));
        }
        assert_eq!(f.users.len(), 2, "each id hashed once");
        assert!(f.items.is_empty(), "no item tombstone: nothing hashed");
    }

    #[test]
    fn scrubbing_a_list_keeps_the_other_items_and_their_slots() {
        let items = r#"[["a",0,0.5],["b",1,null],["a",2,0.25]]"#;
        let (removed, left) = scrub_list_item(items, "a").unwrap();
        assert_eq!(removed, 2);
        let (left, n) = left.unwrap();
        assert_eq!((left.as_str(), n), (r#"[["b",1,null]]"#, 1));
        assert_eq!(scrub_list_item(&left, "b").unwrap(), (1, None));
        assert_eq!(scrub_list_item(&left, "zz").unwrap().0, 0);
        assert_eq!(scrub_list_item("{}", "a"), None);
    }

    #[test]
    fn reports_add_up() {
        let r = ErasureReport {
            users: 1,
            items: 0,
            feedback: 5,
            impressions: 3,
            exposures: 2,
        };
        assert_eq!(r.total(), 11);
    }
}
