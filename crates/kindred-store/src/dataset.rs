//! Turns what the store holds into a [`kindred_core::Dataset`], so a model is trained on the same
//! interactions and the same user and item features that the server later serves it with.
//!
//! Mapping (the same for every backend):
//! - each feedback event is one interaction, in log order; `rating` events carry their value as
//!   the rating, other events carry it as the implicit weight (1 when absent);
//! - user and item feature objects become feature-table columns: a number is numeric, a string is
//!   text, a list of strings is categorical, a list of numbers is a dense vector, a boolean is
//!   numeric 0/1, `null` means "not set";
//! - item categories become the categorical column `categories`, the hidden flag the numeric
//!   column `hidden` (0/1) and the item date the numeric column `timestamp` (Unix seconds, kept
//!   as `f32`, so exact to about two minutes).

use std::sync::Arc;

use kindred_core::{
    Dataset, Error, EventType, FeatureTable, FeatureValue, Interaction, InteractionsBuilder, Result,
};
use serde_json::{Map, Value};

use crate::records::{Feedback, Item, User};

/// Collects rows from a backend and builds the dataset.
pub(crate) struct DatasetBuilder {
    interactions: InteractionsBuilder,
    users: FeatureTable,
    items: FeatureTable,
}

impl DatasetBuilder {
    pub(crate) fn new() -> Self {
        Self {
            interactions: InteractionsBuilder::new(),
            users: FeatureTable::new(),
            items: FeatureTable::new(),
        }
    }

    pub(crate) fn push_feedback(&mut self, row: &Feedback) {
        let event = self.interactions.event_type(&row.event_type);
        let (rating, weight) = match event {
            EventType::Rating => (row.value, 1.0),
            _ => (None, row.value.unwrap_or(1.0)),
        };
        self.interactions.push(Interaction {
            user: &row.user,
            item: &row.item,
            rating,
            weight,
            event,
            timestamp: Some(row.timestamp),
        });
    }

    pub(crate) fn push_user(&mut self, user: &User) -> Result<()> {
        self.users.entity(&user.id);
        set_features(&mut self.users, "user", &user.id, &user.features)
    }

    pub(crate) fn push_item(&mut self, item: &Item) -> Result<()> {
        let table = &mut self.items;
        table.entity(&item.id);
        set_features(table, "item", &item.id, &item.features)?;
        if !item.categories.is_empty() {
            table.set(
                &item.id,
                "categories",
                FeatureValue::Categories(item.categories.clone()),
            )?;
        }
        table.set(
            &item.id,
            "hidden",
            FeatureValue::Number(if item.hidden { 1.0 } else { 0.0 }),
        )?;
        if let Some(ts) = item.timestamp {
            table.set(&item.id, "timestamp", FeatureValue::Number(ts as f32))?;
        }
        Ok(())
    }

    pub(crate) fn build(self, name: &str) -> Dataset {
        let mut dataset = Dataset::new(name, self.interactions.build());
        if !self.users.is_empty() {
            dataset.user_features = Some(Arc::new(self.users));
        }
        if !self.items.is_empty() {
            dataset.item_features = Some(Arc::new(self.items));
        }
        dataset
    }
}

/// Sets each JSON feature of one entity; a value of no usable kind is an error naming the entity
/// and the feature.
fn set_features(
    table: &mut FeatureTable,
    kind: &str,
    id: &str,
    features: &Map<String, Value>,
) -> Result<()> {
    for (name, value) in features {
        let bad =
            |why: &str| Error::InvalidInput(format!("{kind} {id:?}, feature `{name}`: {why}"));
        let feature = match value {
            Value::Null => continue,
            Value::Bool(b) => FeatureValue::Number(if *b { 1.0 } else { 0.0 }),
            Value::Number(n) => match n.as_f64() {
                Some(x) => FeatureValue::Number(x as f32),
                None => return Err(bad("number out of range")),
            },
            Value::String(s) => FeatureValue::Text(s.clone()),
            Value::Array(values) if values.iter().all(Value::is_string) => {
                FeatureValue::Categories(
                    values
                        .iter()
                        .filter_map(|v| v.as_str().map(str::to_owned))
                        .collect(),
                )
            }
            Value::Array(values) if values.iter().all(Value::is_number) => FeatureValue::Vector(
                values
                    .iter()
                    .filter_map(|v| v.as_f64().map(|x| x as f32))
                    .collect(),
            ),
            Value::Array(_) => {
                return Err(bad(
                    "a list must hold only strings (categories) or only numbers (a vector)",
                ))
            }
            Value::Object(_) => return Err(bad("nested objects are not features")),
        };
        // The table says which feature kind clashed; add which entity kind it was.
        table
            .set(id, name, feature)
            .map_err(|e| Error::InvalidInput(format!("{kind} features: {e}")))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kindred_core::features::ColumnData;
    use serde_json::json;

    fn features(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => Map::new(),
        }
    }

    #[test]
    fn ratings_and_implicit_events_map_to_rating_and_weight() {
        let mut b = DatasetBuilder::new();
        let event = |user: &str, event_type: &str, value| Feedback {
            user: user.into(),
            item: "i1".into(),
            event_type: event_type.into(),
            value,
            timestamp: 7,
            event_id: None,
        };
        b.push_feedback(&event("u1", "rating", Some(4.0)));
        b.push_feedback(&event("u2", "click", None));
        b.push_feedback(&event("u2", "dwell", Some(30.0)));
        let data = b.build("store");
        let log = &data.interactions;
        assert_eq!(log.len(), 3);
        assert_eq!(log.ratings()[0], 4.0);
        assert!(log.ratings()[1].is_nan() && log.ratings()[2].is_nan());
        assert_eq!(log.weights(), &[1.0, 1.0, 30.0]);
        assert_eq!(log.events()[1], EventType::Click);
        assert_eq!(log.event_name(log.events()[2]), "dwell");
        assert_eq!(log.timestamps(), &[7, 7, 7]);
        assert!(data.user_features.is_none() && data.item_features.is_none());
    }

    #[test]
    fn json_features_become_typed_columns() {
        let mut b = DatasetBuilder::new();
        b.push_user(&User {
            id: "u1".into(),
            features: features(json!({"age": 31, "city": "Lyon", "tags": ["a", "b"],
                "emb": [0.5, 1.5], "vip": true, "gone": null})),
        })
        .unwrap();
        let mut item = Item::new("i1");
        item.categories = vec!["Drama".into()];
        item.timestamp = Some(1_000);
        item.hidden = true;
        b.push_item(&item).unwrap();
        b.push_item(&Item::new("i2")).unwrap();
        let data = b.build("store");
        let users = data.user_features.as_deref().unwrap();
        let numeric = |t: &FeatureTable, c: &str| match &t.column(c).unwrap().data {
            ColumnData::Numeric(v) => v.clone(),
            other => panic!("{c}: {other:?}"),
        };
        assert_eq!(numeric(users, "age"), vec![31.0]);
        assert_eq!(numeric(users, "vip"), vec![1.0]);
        assert!(
            matches!(&users.column("city").unwrap().data, ColumnData::Text(t) if t == &["Lyon"])
        );
        assert!(matches!(
            &users.column("emb").unwrap().data,
            ColumnData::Dense { dim: 2, .. }
        ));
        assert!(matches!(&users.column("tags").unwrap().data,
            ColumnData::Categorical { vocab, values } if vocab.len() == 2 && values[0] == [0, 1]));
        assert!(users.column("gone").is_none());
        let items = data.item_features.as_deref().unwrap();
        assert_eq!(items.ids().len(), 2, "items without features still exist");
        assert_eq!(numeric(items, "hidden"), vec![1.0, 0.0]);
        let ts = numeric(items, "timestamp");
        assert_eq!(ts[0], 1_000.0);
        assert!(ts[1].is_nan());
    }

    #[test]
    fn unusable_features_name_entity_and_feature() {
        let mut b = DatasetBuilder::new();
        let err = b
            .push_user(&User {
                id: "u9".into(),
                features: features(json!({"mixed": ["a", 1]})),
            })
            .unwrap_err();
        assert!(
            err.to_string().contains("user \"u9\", feature `mixed`"),
            "{err}"
        );
        let err = b
            .push_user(&User {
                id: "u8".into(),
                features: features(json!({"deep": {"x": 1}})),
            })
            .unwrap_err();
        assert!(err.to_string().contains("nested"), "{err}");
        b.push_user(&User {
            id: "u1".into(),
            features: features(json!({"age": 3})),
        })
        .unwrap();
        let clash = b
            .push_user(&User {
                id: "u2".into(),
                features: features(json!({"age": "old"})),
            })
            .unwrap_err();
        assert!(
            clash.to_string().contains("feature `age` of `u2`"),
            "{clash}"
        );
    }
}
