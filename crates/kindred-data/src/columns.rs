//! Interactions handed over as columns in memory (a pandas DataFrame's, through the Python
//! package), checked row by row as the file importers check theirs: ids non-empty and without
//! control characters, ratings and weights finite (a missing one, NaN, means none), timestamps
//! inside the accepted range. The first bad row is an error naming the row and the column.

use kindred_core::{Dataset, Error, Interactions, InteractionsBuilder, Result, TimestampRange};

use crate::delimited::default_event;

/// One column per role; every present column has one entry per row.
#[derive(Debug, Clone, Default)]
pub struct Columns {
    pub user: Vec<String>,
    pub item: Vec<String>,
    /// Explicit values; NaN is "no rating" (an implicit row).
    pub rating: Option<Vec<f32>>,
    /// Implicit weights; NaN is the default weight 1.
    pub weight: Option<Vec<f32>>,
    /// Unix seconds; `None` is "no timestamp".
    pub timestamp: Option<Vec<Option<i64>>>,
    /// Event names (`view`, `click`, `purchase`, `rating` or any custom name); empty is the
    /// default (`rating` for a row with a rating, else `view`).
    pub event: Option<Vec<String>>,
}

/// The dataset `columns` describe, named `name` (which errors name too).
pub fn dataset_from_columns(
    name: &str,
    columns: &Columns,
    range: &TimestampRange,
) -> Result<Dataset> {
    Ok(Dataset::new(name, interactions(name, columns, range)?))
}

fn interactions(name: &str, c: &Columns, range: &TimestampRange) -> Result<Interactions> {
    let rows = c.user.len();
    let check_len = |column: &str, len: Option<usize>| match len {
        Some(len) if len != rows => Err(Error::InvalidInput(format!(
            "{name}: column `{column}` has {len} rows, `user` has {rows}"
        ))),
        _ => Ok(()),
    };
    check_len("item", Some(c.item.len()))?;
    check_len("rating", c.rating.as_ref().map(Vec::len))?;
    check_len("weight", c.weight.as_ref().map(Vec::len))?;
    check_len("timestamp", c.timestamp.as_ref().map(Vec::len))?;
    check_len("event", c.event.as_ref().map(Vec::len))?;
    let bad = |row: usize, column: &str, message: String| {
        Error::InvalidInput(format!("{name}: row {row}: column `{column}`: {message}"))
    };
    let mut builder = InteractionsBuilder::with_capacity(rows);
    for row in 0..rows {
        let id = |column: &str, value: &str| {
            if value.is_empty() {
                Err(bad(row, column, "empty id".into()))
            } else if value.chars().any(char::is_control) {
                Err(bad(
                    row,
                    column,
                    format!("id {value:?} contains a control character"),
                ))
            } else {
                Ok(())
            }
        };
        id("user", &c.user[row])?;
        id("item", &c.item[row])?;
        let number = |column: &str, values: &Option<Vec<f32>>| match values.as_ref().map(|v| v[row])
        {
            Some(x) if x.is_nan() => Ok(None),
            Some(x) if x.is_infinite() => Err(bad(row, column, format!("{x} is not finite"))),
            other => Ok(other),
        };
        let rating = number("rating", &c.rating)?;
        let weight = number("weight", &c.weight)?.unwrap_or(1.0);
        let timestamp = match c.timestamp.as_ref().and_then(|t| t[row]) {
            Some(seconds) => match range.refusal(seconds) {
                None => Some(seconds),
                Some(why) => return Err(bad(row, "timestamp", why)),
            },
            None => None,
        };
        let event_name = c.event.as_ref().map_or("", |e| e[row].as_str());
        let event = if event_name.is_empty() {
            default_event(rating)
        } else {
            builder.event_type(event_name)
        };
        let user = builder.intern_user(&c.user[row]);
        let item = builder.intern_item(&c.item[row]);
        builder.push_indexed(user, item, rating, weight, event, timestamp);
    }
    Ok(builder.build())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kindred_core::EventType;

    fn columns() -> Columns {
        Columns {
            user: vec!["u1".into(), "u2".into(), "u1".into()],
            item: vec!["a".into(), "a".into(), "b".into()],
            rating: Some(vec![4.0, f32::NAN, 2.5]),
            timestamp: Some(vec![Some(1_000), None, Some(3_000)]),
            event: Some(vec![String::new(), "purchase".into(), String::new()]),
            ..Columns::default()
        }
    }

    #[test]
    fn rows_become_interactions_as_an_importer_would_make_them() {
        let data = dataset_from_columns("df", &columns(), &TimestampRange::default()).unwrap();
        let log = &data.interactions;
        assert_eq!((log.len(), log.n_users(), log.n_items()), (3, 2, 2));
        assert_eq!(log.events()[0], EventType::Rating);
        assert_eq!(log.events()[1], EventType::Purchase);
        assert!(log.ratings()[1].is_nan(), "NaN is no rating");
        assert_eq!(log.ratings()[2], 2.5);
        assert_eq!(log.timestamps()[2], 3_000);
        assert_eq!(data.name, "df");
    }

    #[test]
    fn the_first_bad_row_is_named_with_its_column() {
        let range = TimestampRange::default();
        let mut c = columns();
        c.item[2] = String::new();
        let err = dataset_from_columns("df", &c, &range)
            .unwrap_err()
            .to_string();
        assert_eq!(err, "df: row 2: column `item`: empty id");
        let mut c = columns();
        c.rating = Some(vec![4.0, f32::INFINITY, 1.0]);
        let err = dataset_from_columns("df", &c, &range)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("df: row 1: column `rating`"), "{err}");
        let mut c = columns();
        c.timestamp = Some(vec![Some(1_700_000_000_000), None, None]);
        let err = dataset_from_columns("df", &c, &range)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("row 0") && err.contains("milliseconds"),
            "{err}"
        );
        let mut c = columns();
        c.user[1] = "a\nb".into();
        assert!(dataset_from_columns("df", &c, &range).is_err());
        let mut c = columns();
        c.event = Some(vec![String::new()]);
        let err = dataset_from_columns("df", &c, &range)
            .unwrap_err()
            .to_string();
        assert_eq!(err, "df: column `event` has 1 rows, `user` has 3");
    }
}
