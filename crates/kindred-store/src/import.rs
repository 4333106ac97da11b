//! The way into the store from a loaded [`Dataset`] (what `kindred import --store` will use): the
//! inverse of [`crate::dataset`]'s mapping, so importing a dataset and loading it back gives the
//! same interactions and features.
//!
//! Where the round trip loses something, it is on purpose and documented here: a row without a
//! timestamp is stored at time 0 (the store's log is ordered in time), the implicit weight of a
//! `rating` event is not kept (feedback has one value), and imported events carry no event id.
//!
//! [`Import`] is the bulk import itself (`kindred import`): it drops every row that names a user
//! or item the store has erased (see [`crate::erasure`]) and counts what it dropped, so an
//! erased id never comes back through a re-import and the caller can say how many rows it left
//! out.

use kindred_core::features::ColumnData;
use kindred_core::interactions::NO_TIMESTAMP;
use kindred_core::{Dataset, EventType, FeatureTable, Interactions, Result};
use serde::Serialize;
use serde_json::{Map, Number, Value};

use crate::erasure::Erasures;
use crate::records::{Feedback, InsertReport, Item, User};
use crate::Store;

/// Rows of an import left out because they name an erased user or item.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SkippedRows {
    /// User records of erased users.
    pub users: usize,
    /// Item records of erased items.
    pub items: usize,
    /// Feedback events naming an erased user or item.
    pub feedback: usize,
}

impl SkippedRows {
    /// Rows left out in all.
    pub fn total(&self) -> usize {
        self.users + self.items + self.feedback
    }
}

/// What an import wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ImportSummary {
    /// User records written.
    pub users: usize,
    /// Item records written.
    pub items: usize,
    /// Feedback events written and duplicates (imported events carry no event id, so there are
    /// none unless the store already held the same ids).
    pub feedback: InsertReport,
    /// Rows left out because they name an erased id.
    pub skipped: SkippedRows,
}

/// A dataset as store records, without the rows naming erased ids.
#[derive(Debug, Clone, Default)]
pub struct Import {
    pub users: Vec<User>,
    pub items: Vec<Item>,
    pub feedback: Vec<Feedback>,
    pub skipped: SkippedRows,
}

impl Import {
    /// The records of `dataset` minus those naming an id in `erasures`.
    pub fn from_dataset(dataset: &Dataset, erasures: &Erasures) -> Self {
        let mut skipped = SkippedRows::default();
        let mut users = dataset
            .user_features
            .as_deref()
            .map(users_from_features)
            .unwrap_or_default();
        let mut items = dataset
            .item_features
            .as_deref()
            .map(items_from_features)
            .unwrap_or_default();
        let mut feedback = feedback_from_interactions(&dataset.interactions);
        if !erasures.is_empty() {
            let before = (users.len(), items.len(), feedback.len());
            users.retain(|u| !erasures.user_erased(&u.id));
            items.retain(|i| !erasures.item_erased(&i.id));
            // The log names few distinct ids many times: hash each once.
            let mut filter = crate::erasure::ErasedFilter::new(erasures);
            feedback.retain(|f| !filter.feedback(f));
            skipped = SkippedRows {
                users: before.0 - users.len(),
                items: before.1 - items.len(),
                feedback: before.2 - feedback.len(),
            };
        }
        Self {
            users,
            items,
            feedback,
            skipped,
        }
    }

    /// The records of `dataset` minus those naming an id `store` has erased.
    pub async fn prepare(store: &Store, dataset: &Dataset) -> Result<Self> {
        let erasures = store.erasures().await?;
        Ok(Self::from_dataset(dataset, &erasures))
    }

    /// Writes the users, the items, then the feedback in transactions of `batch` events,
    /// calling `after_batch` with each batch's size once it is stored (progress; an error from
    /// it stops the import there, with the batches before it stored). An id erased while this
    /// runs may still be written; [`Store::load_dataset`] leaves it out of training all the same.
    pub async fn write(
        &self,
        store: &Store,
        batch: usize,
        mut after_batch: impl FnMut(usize) -> Result<()>,
    ) -> Result<ImportSummary> {
        if batch == 0 {
            return Err(kindred_core::Error::InvalidInput(
                "an import batch holds at least one event".into(),
            ));
        }
        if !self.users.is_empty() {
            store.upsert_users(&self.users).await?;
        }
        if !self.items.is_empty() {
            store.upsert_items(&self.items).await?;
        }
        let mut feedback = InsertReport::default();
        for chunk in self.feedback.chunks(batch) {
            let written = store.insert_feedback(chunk).await?;
            feedback.inserted += written.inserted;
            feedback.duplicates += written.duplicates;
            after_batch(chunk.len())?;
        }
        Ok(ImportSummary {
            users: self.users.len(),
            items: self.items.len(),
            feedback,
            skipped: self.skipped,
        })
    }
}

/// One feedback event per interaction, in log order.
pub fn feedback_from_interactions(log: &Interactions) -> Vec<Feedback> {
    let (users, items) = (log.user_ids(), log.item_ids());
    (0..log.len())
        .map(|row| {
            let event = log.events()[row];
            let value = match event {
                EventType::Rating => Some(log.ratings()[row]).filter(|r| !r.is_nan()),
                _ => Some(log.weights()[row]).filter(|w| *w != 1.0),
            };
            let timestamp = log.timestamps()[row];
            Feedback {
                user: users.external(log.users()[row]).to_owned(),
                item: items.external(log.items()[row]).to_owned(),
                event_type: log.event_name(event),
                value,
                timestamp: if timestamp == NO_TIMESTAMP {
                    0
                } else {
                    timestamp
                },
                event_id: None,
            }
        })
        .collect()
}

/// The features of each row of `table` as a JSON object (unset values left out).
fn feature_objects(table: &FeatureTable) -> Vec<Map<String, Value>> {
    let mut objects = vec![Map::new(); table.ids().len()];
    for column in table.columns() {
        for (row, object) in objects.iter_mut().enumerate() {
            let value = match &column.data {
                ColumnData::Categorical { vocab, values } => {
                    let categories = &values[row];
                    if categories.is_empty() {
                        continue;
                    }
                    Value::from(
                        categories
                            .iter()
                            .map(|&c| vocab.external(c).to_owned())
                            .collect::<Vec<_>>(),
                    )
                }
                ColumnData::Numeric(values) => match Number::from_f64(f64::from(values[row])) {
                    Some(n) => Value::Number(n),
                    None => continue, // NaN: not set
                },
                ColumnData::Text(values) if values[row].is_empty() => continue,
                ColumnData::Text(values) => Value::from(values[row].clone()),
                ColumnData::Dense { values, .. } => match &values[row] {
                    Some(v) => Value::from(v.iter().map(|&x| f64::from(x)).collect::<Vec<_>>()),
                    None => continue,
                },
            };
            object.insert(column.name.clone(), value);
        }
    }
    objects
}

/// One user per row of `table`.
pub fn users_from_features(table: &FeatureTable) -> Vec<User> {
    table
        .ids()
        .externals()
        .iter()
        .zip(feature_objects(table))
        .map(|(id, features)| User {
            id: id.clone(),
            features,
        })
        .collect()
}

/// One item per row of `table`; the columns `categories`, `hidden` and `timestamp` fill the
/// item's own fields, as [`crate::Store::load_dataset`] writes them.
pub fn items_from_features(table: &FeatureTable) -> Vec<Item> {
    table
        .ids()
        .externals()
        .iter()
        .zip(feature_objects(table))
        .map(|(id, mut features)| {
            let categories = match features.remove("categories") {
                Some(Value::Array(values)) => values
                    .into_iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect(),
                Some(other) => {
                    // Not a category list: keep it as an ordinary feature.
                    features.insert("categories".into(), other);
                    Vec::new()
                }
                None => Vec::new(),
            };
            let hidden = match features.remove("hidden") {
                Some(Value::Number(n)) => n.as_f64().is_some_and(|x| x != 0.0),
                Some(other) => {
                    features.insert("hidden".into(), other);
                    false
                }
                None => false,
            };
            let timestamp = match features.remove("timestamp") {
                Some(Value::Number(n)) => n.as_f64().map(|x| x as i64),
                Some(other) => {
                    features.insert("timestamp".into(), other);
                    None
                }
                None => None,
            };
            Item {
                id: id.clone(),
                features,
                categories,
                timestamp,
                hidden,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use kindred_core::{FeatureValue, Interaction, InteractionsBuilder};
    use serde_json::json;

    #[test]
    fn interactions_become_feedback() {
        let mut b = InteractionsBuilder::new();
        b.push(Interaction::rating("u1", "i1", 4.5, Some(10)));
        b.push(Interaction::implicit("u2", "i1", EventType::Click, None));
        let mut heavy = Interaction::implicit("u2", "i2", EventType::View, Some(3));
        heavy.weight = 2.5;
        b.push(heavy);
        let events = feedback_from_interactions(&b.build());
        let got: Vec<_> = events
            .iter()
            .map(|f| {
                (
                    f.user.as_str(),
                    f.item.as_str(),
                    f.event_type.as_str(),
                    f.value,
                    f.timestamp,
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("u1", "i1", "rating", Some(4.5), 10),
                ("u2", "i1", "click", None, 0),
                ("u2", "i2", "view", Some(2.5), 3),
            ]
        );
    }

    #[test]
    fn rows_naming_erased_ids_are_skipped_and_counted() {
        let mut b = InteractionsBuilder::new();
        for (user, item) in [
            ("u1", "i1"),
            ("u2", "i1"),
            ("u2", "i2"),
            ("u1", "i2"),
            ("u3", "i3"),
        ] {
            b.push(Interaction::implicit(user, item, EventType::Click, Some(1)));
        }
        let mut dataset = Dataset::new("d", b.build());
        let mut users = FeatureTable::new();
        let mut items = FeatureTable::new();
        for id in ["u1", "u2", "u3"] {
            users.set(id, "age", FeatureValue::Number(30.0)).unwrap();
        }
        for id in ["i1", "i2", "i3"] {
            items.set(id, "year", FeatureValue::Number(1999.0)).unwrap();
        }
        dataset.user_features = Some(std::sync::Arc::new(users));
        dataset.item_features = Some(std::sync::Arc::new(items));

        let none = Import::from_dataset(&dataset, &Erasures::default());
        assert_eq!(
            (none.feedback.len(), none.skipped),
            (5, SkippedRows::default())
        );

        let mut erasures = Erasures::default();
        erasures
            .insert_row("sqlite", "test", "user", crate::id_hash("u1"))
            .unwrap();
        erasures
            .insert_row("sqlite", "test", "item", crate::id_hash("i3"))
            .unwrap();
        let import = Import::from_dataset(&dataset, &erasures);
        assert_eq!(
            import.skipped,
            SkippedRows {
                users: 1,
                items: 1,
                // u1's two events and u3's event on i3.
                feedback: 3,
            }
        );
        assert_eq!(import.skipped.total(), 5);
        let kept: Vec<_> = import
            .feedback
            .iter()
            .map(|f| (f.user.as_str(), f.item.as_str()))
            .collect();
        assert_eq!(kept, [("u2", "i1"), ("u2", "i2")]);
        assert!(import.users.iter().all(|u| u.id != "u1"));
        assert!(import.items.iter().all(|i| i.id != "i3"));
    }

    #[test]
    fn feature_tables_become_records() {
        let mut t = FeatureTable::new();
        t.set(
            "i1",
            "genres",
            FeatureValue::Categories(vec!["A".into(), "B".into()]),
        )
        .unwrap();
        t.set("i1", "year", FeatureValue::Number(1995.0)).unwrap();
        t.set(
            "i1",
            "categories",
            FeatureValue::Categories(vec!["C".into()]),
        )
        .unwrap();
        t.set("i2", "title", FeatureValue::Text("Two".into()))
            .unwrap();
        t.set("i2", "hidden", FeatureValue::Number(1.0)).unwrap();
        t.set("i2", "timestamp", FeatureValue::Number(86_400.0))
            .unwrap();
        t.set("i2", "emb", FeatureValue::Vector(vec![0.5, 1.0]))
            .unwrap();
        let items = items_from_features(&t);
        assert_eq!(
            items[0].features,
            Map::from_iter([
                ("genres".to_string(), json!(["A", "B"])),
                ("year".to_string(), json!(1995.0)),
            ])
        );
        assert_eq!(
            (
                items[0].categories.clone(),
                items[0].hidden,
                items[0].timestamp
            ),
            (vec!["C".to_string()], false, None)
        );
        assert_eq!(
            items[1].features,
            Map::from_iter([
                ("title".to_string(), json!("Two")),
                ("emb".to_string(), json!([0.5, 1.0])),
            ])
        );
        assert!(
            items[1].hidden && items[1].timestamp == Some(86_400) && items[1].categories.is_empty()
        );
        let users = users_from_features(&t);
        assert_eq!(
            users[1].features["hidden"],
            json!(1.0),
            "users have no special columns"
        );
    }
}
