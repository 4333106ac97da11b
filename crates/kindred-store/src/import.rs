//! The way into the store from a loaded [`Dataset`] (what `kindred import --store` will use): the
//! inverse of [`crate::dataset`]'s mapping, so importing a dataset and loading it back gives the
//! same interactions and features.
//!
//! Where the round trip loses something, it is on purpose and documented here: a row without a
//! timestamp is stored at time 0 (the store's log is ordered in time), the implicit weight of a
//! `rating` event is not kept (feedback has one value), and imported events carry no event id.

use kindred_core::features::ColumnData;
use kindred_core::interactions::NO_TIMESTAMP;
use kindred_core::{EventType, FeatureTable, Interactions};
use serde_json::{Map, Number, Value};

use crate::records::{Feedback, Item, User};

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
