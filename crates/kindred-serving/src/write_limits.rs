//! The `[limits]` a write of users or items must respect before it is stored: features per user
//! or item, categories per item, and the distinct feature names the catalog may grow to (ids,
//! categories and event types are bounded in length by the store's own checks).
//!
//! Feature names are the one limit across requests: each new name becomes a column of every
//! catalog build, so the names admitted are remembered (seeded from each snapshot's columns) and
//! a write that would take the catalog past `max_feature_names` is refused. What was admitted
//! stays counted until a restart, even if its write failed: the count can only over-estimate.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use kindred_store::{Item, User};
use serde_json::{Map, Value};

use crate::config::LimitsConfig;
use crate::error::{Error, Result};
use crate::sync::lock;

/// Whose features a name belongs to (users and items have separate columns).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeatureOwner {
    User,
    Item,
}

impl FeatureOwner {
    fn noun(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Item => "item",
        }
    }
}

/// Checks writes against the limits; holds the feature names admitted so far.
pub struct WriteLimits {
    limits: LimitsConfig,
    user_names: Mutex<HashSet<String>>,
    item_names: Mutex<HashSet<String>>,
    /// Writes refused by a limit (any kind).
    pub refused: AtomicU64,
}

impl WriteLimits {
    pub fn new(limits: LimitsConfig) -> Self {
        Self {
            limits,
            user_names: Mutex::new(HashSet::new()),
            item_names: Mutex::new(HashSet::new()),
            refused: AtomicU64::new(0),
        }
    }

    fn names(&self, owner: FeatureOwner) -> &Mutex<HashSet<String>> {
        match owner {
            FeatureOwner::User => &self.user_names,
            FeatureOwner::Item => &self.item_names,
        }
    }

    /// Adds the columns a snapshot holds (data written by other processes or before a restart).
    pub fn seed<'a>(&self, owner: FeatureOwner, names: impl IntoIterator<Item = &'a String>) {
        let mut held = lock(self.names(owner));
        for name in names {
            if !held.contains(name) {
                held.insert(name.clone());
            }
        }
    }

    /// Distinct feature names of `owner` known now.
    pub fn feature_names(&self, owner: FeatureOwner) -> usize {
        lock(self.names(owner)).len()
    }

    fn refuse(&self, code: &'static str, message: String) -> Error {
        self.refused.fetch_add(1, Ordering::Relaxed);
        Error::invalid(code, message)
    }

    fn check_features(
        &self,
        owner: FeatureOwner,
        id: &str,
        features: &Map<String, Value>,
    ) -> Result<()> {
        let noun = owner.noun();
        let max = self.limits.max_features_per_entity;
        if features.len() > max {
            return Err(self.refuse(
                "too_many_features",
                format!(
                    "{noun} `{id}` has {} features; the limit is {max} \
                     (limits.max_features_per_entity)",
                    features.len()
                ),
            ));
        }
        for name in features.keys() {
            // Names are ids of columns: the store's rule for ids bounds their length.
            kindred_store::check_id(&format!("{noun} `{id}`: feature name"), name)?;
        }
        Ok(())
    }

    /// Admits the new feature names of a batch, or refuses the whole batch.
    fn admit_names<'a>(
        &self,
        owner: FeatureOwner,
        batch: impl Iterator<Item = &'a Map<String, Value>>,
    ) -> Result<()> {
        let mut held = lock(self.names(owner));
        let mut new: HashSet<&str> = HashSet::new();
        for features in batch {
            new.extend(
                features
                    .keys()
                    .map(String::as_str)
                    .filter(|n| !held.contains(*n)),
            );
        }
        let max = self.limits.max_feature_names;
        if !new.is_empty() && held.len() + new.len() > max {
            drop(held);
            return Err(self.refuse(
                "too_many_feature_names",
                format!(
                    "the write adds {} new {} feature names to the {} known; the limit is {max} \
                     distinct names (limits.max_feature_names)",
                    new.len(),
                    owner.noun(),
                    self.feature_names(owner)
                ),
            ));
        }
        held.extend(new.into_iter().map(str::to_owned));
        Ok(())
    }

    /// Checks a batch of users; admits their new feature names when every check passes.
    pub fn check_users(&self, users: &[User]) -> Result<()> {
        for user in users {
            self.check_features(FeatureOwner::User, &user.id, &user.features)?;
        }
        self.admit_names(FeatureOwner::User, users.iter().map(|u| &u.features))
    }

    /// Checks a batch of items; admits their new feature names when every check passes.
    pub fn check_items(&self, items: &[Item]) -> Result<()> {
        let max = self.limits.max_categories_per_item;
        for item in items {
            self.check_features(FeatureOwner::Item, &item.id, &item.features)?;
            if item.categories.len() > max {
                return Err(self.refuse(
                    "too_many_categories",
                    format!(
                        "item `{}` has {} categories; the limit is {max} \
                         (limits.max_categories_per_item)",
                        item.id,
                        item.categories.len()
                    ),
                ));
            }
        }
        self.admit_names(FeatureOwner::Item, items.iter().map(|i| &i.features))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn limits() -> LimitsConfig {
        LimitsConfig {
            max_features_per_entity: 3,
            max_feature_names: 4,
            max_categories_per_item: 2,
            ..LimitsConfig::default()
        }
    }

    fn user(id: &str, names: &[&str]) -> User {
        User {
            id: id.into(),
            features: names.iter().map(|n| (n.to_string(), json!(1))).collect(),
        }
    }

    #[test]
    fn feature_names_are_bounded_across_writes_and_seeded_from_snapshots() {
        let w = WriteLimits::new(limits());
        w.seed(FeatureOwner::User, &["age".to_string()]);
        w.check_users(&[user("u1", &["age", "a"]), user("u2", &["b"])])
            .unwrap();
        assert_eq!(w.feature_names(FeatureOwner::User), 3);
        // Known names are always fine; two new ones would make 5 > 4.
        w.check_users(&[user("u3", &["age", "a", "b"])]).unwrap();
        let err = w.check_users(&[user("u4", &["c", "d"])]).unwrap_err();
        assert!(
            matches!(&err, Error::Invalid { code: "too_many_feature_names", message } if message.contains("max_feature_names")),
            "{err}"
        );
        assert_eq!(
            w.feature_names(FeatureOwner::User),
            3,
            "a refused batch admits nothing"
        );
        w.check_users(&[user("u4", &["c"])]).unwrap();
        // Items count their own names.
        assert_eq!(w.feature_names(FeatureOwner::Item), 0);
        assert_eq!(w.refused.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn features_and_categories_per_record_are_bounded() {
        let w = WriteLimits::new(limits());
        let code = |r: Result<()>| match r {
            Err(Error::Invalid { code, .. }) => code,
            Err(Error::Core(kindred_core::Error::InvalidInput(_))) => "invalid_input",
            other => panic!("{other:?}"),
        };
        assert_eq!(
            code(w.check_users(&[user("u", &["a", "b", "c", "d"])])),
            "too_many_features"
        );
        let long = "n".repeat(kindred_store::MAX_ID_BYTES + 1);
        assert_eq!(code(w.check_users(&[user("u", &[&long])])), "invalid_input");
        let item = |categories: &[&str]| Item {
            id: "i".into(),
            features: Map::new(),
            categories: categories.iter().map(|c| c.to_string()).collect(),
            timestamp: None,
            hidden: false,
        };
        assert_eq!(
            code(w.check_items(&[item(&["a", "b", "c"])])),
            "too_many_categories"
        );
        w.check_items(&[item(&["a", "b"])]).unwrap();
        assert_eq!(w.refused.load(Ordering::Relaxed), 2);
    }
}
