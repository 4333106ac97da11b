//! JSON Lines: interactions (one event object per line) and user or item features (one entity
//! object per line).
//!
//! An interaction line looks like
//! `{"user": "u1", "item": "i9", "rating": 4.5, "weight": 2, "event": "purchase",
//! "timestamp": 1700000000, "context": {"device": "mobile"}}`. `user` and `item` are required
//! and may be strings or integers; everything else is optional. Numbers may also be given as
//! numeric strings; `timestamp` is unix seconds or a date string (`YYYY-MM-DD[ HH:MM:SS]`,
//! RFC 3339). Without `event`, a row with a rating is a `rating` event and one without a `view`.
//! A named [`ColumnMapping`](crate::column_mapping::ColumnMapping) (`user=uid,item=sku,context=device`)
//! renames the keys; mapped context keys are read from the top level of the object.
//!
//! Errors name the file, the 1-based line and the JSON path of the culprit (`$.rating`).

use std::path::Path;

use kindred_core::{
    Dataset, Error, FeatureTable, FeatureValue, Interactions, InteractionsBuilder, Result,
    TimestampRange,
};
use serde_json::{Map, Value};

use crate::column_mapping::{ColumnRef, Role};
use crate::delimited::{default_event, timestamp_error};
use crate::import::{
    in_range, name_from_path, parse_timestamp, read_file, ImportOptions, ImportReport, Problem,
    RowError, RowPolicy,
};

/// JSON keys of each role.
struct Keys {
    user: String,
    item: String,
    rating: String,
    weight: String,
    event: String,
    timestamp: String,
    /// Key of a nested object whose entries are all context.
    context_object: String,
    /// Top-level keys read as context (from `context=KEY` mappings).
    context_keys: Vec<String>,
}

impl Keys {
    fn from_options(opts: &ImportOptions, path: &Path) -> Result<Self> {
        let mut keys = Keys {
            user: "user".into(),
            item: "item".into(),
            rating: "rating".into(),
            weight: "weight".into(),
            event: "event".into(),
            timestamp: "timestamp".into(),
            context_object: "context".into(),
            context_keys: Vec::new(),
        };
        let Some(mapping) = &opts.columns else {
            return Ok(keys);
        };
        for (role, column) in mapping.entries() {
            let ColumnRef::Name(key) = column else {
                return Err(Error::spec(
                    "column mapping",
                    mapping.to_string(),
                    format!(
                        "{} is JSON Lines: map roles to keys by name (`user=uid,item=sku`)",
                        path.display()
                    ),
                ));
            };
            let key = key.clone();
            match role {
                Role::User => keys.user = key,
                Role::Item => keys.item = key,
                Role::Rating => keys.rating = key,
                Role::Weight => keys.weight = key,
                Role::Timestamp => keys.timestamp = key,
                Role::Event => keys.event = key,
                Role::Context(_) => keys.context_keys.push(key),
            }
        }
        Ok(keys)
    }
}

/// Loads interactions from a JSON Lines file.
pub fn load_jsonl(path: &Path, opts: &ImportOptions) -> Result<(Dataset, ImportReport)> {
    let bytes = read_file(path)?;
    let (interactions, report) = read_jsonl(&bytes, path, opts)?;
    Ok((Dataset::new(name_from_path(path), interactions), report))
}

/// Reads interactions from JSON Lines text; `source` names the input in errors.
pub fn read_jsonl(
    bytes: &[u8],
    source: &Path,
    opts: &ImportOptions,
) -> Result<(Interactions, ImportReport)> {
    let keys = Keys::from_options(opts, source)?;
    let mut policy = RowPolicy::new(source, opts);
    let mut builder = InteractionsBuilder::new();
    for (line_no, line) in lines(bytes) {
        policy.read();
        match parse_event(line, &keys, &opts.timestamps, &mut builder) {
            Ok(()) => policy.imported(),
            Err(error) => policy.reject(line_no, error)?,
        }
    }
    let report = policy.finish();
    if report.rows_read == 0 {
        return Err(Error::BadFile {
            file: source.to_path_buf(),
            message: "empty file: no JSON lines".into(),
        });
    }
    Ok((builder.build(), report))
}

/// Non-blank lines with their 1-based numbers.
fn lines(bytes: &[u8]) -> impl Iterator<Item = (u64, &[u8])> {
    bytes
        .split(|&b| b == b'\n')
        .enumerate()
        .map(|(i, line)| (i as u64 + 1, line))
        .filter(|(_, line)| !line.iter().all(u8::is_ascii_whitespace))
}

fn parse_object(line: &[u8]) -> Result<Map<String, Value>, RowError> {
    let text = std::str::from_utf8(line)
        .map_err(|e| RowError::new(Problem::InvalidUtf8, "$", format!("invalid UTF-8 ({e})")))?;
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(RowError::new(
            Problem::WrongType,
            "$",
            format!("expected an object, found {}", json_kind(&other)),
        )),
        Err(e) => Err(RowError::new(
            Problem::InvalidJson,
            "$",
            format!("invalid JSON: {e}"),
        )),
    }
}

/// How a JSON value's type is named in error messages (`a number`, `an array`, ...).
pub fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn path_of(key: &str) -> String {
    format!("$.{key}")
}

/// An id given as a non-empty string or an integer.
fn id_of(object: &Map<String, Value>, key: &str) -> Result<String, RowError> {
    match object.get(key) {
        None | Some(Value::Null) => Err(RowError::new(
            Problem::MissingField,
            path_of(key),
            "missing field",
        )),
        Some(Value::String(s)) if s.trim().is_empty() => {
            Err(RowError::new(Problem::EmptyId, path_of(key), "empty id"))
        }
        Some(Value::String(s)) => Ok(s.trim().to_owned()),
        Some(Value::Number(n)) if n.is_i64() || n.is_u64() => Ok(n.to_string()),
        Some(other) => Err(RowError::new(
            Problem::WrongType,
            path_of(key),
            format!(
                "expected a string or integer id, found {}",
                json_kind(other)
            ),
        )),
    }
}

/// An optional finite number, also accepted as a numeric string.
fn number_of(object: &Map<String, Value>, key: &str) -> Result<Option<f32>, RowError> {
    let unparsable = |text: &str| {
        RowError::new(
            Problem::UnparsableNumber,
            path_of(key),
            format!("unparsable number `{text}`"),
        )
    };
    match object.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match n.as_f64() {
            Some(x) if x.is_finite() && (x as f32).is_finite() => Ok(Some(x as f32)),
            _ => Err(unparsable(&n.to_string())),
        },
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => match s.trim().parse::<f32>() {
            Ok(x) if x.is_finite() => Ok(Some(x)),
            _ => Err(unparsable(s)),
        },
        Some(other) => Err(RowError::new(
            Problem::WrongType,
            path_of(key),
            format!("expected a number, found {}", json_kind(other)),
        )),
    }
}

fn timestamp_of(object: &Map<String, Value>, key: &str) -> Result<Option<i64>, RowError> {
    match object.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match (n.as_i64(), n.as_f64()) {
            (Some(secs), _) => Ok(Some(secs)),
            // Fractional seconds (e.g. from JavaScript's Date.now()/1000) are floored.
            (None, Some(x)) if x.is_finite() && x.abs() < 9.0e18 => Ok(Some(x.floor() as i64)),
            _ => Err(timestamp_error(&path_of(key), &n.to_string())),
        },
        Some(Value::String(s)) => parse_timestamp(s)
            .map(Some)
            .ok_or_else(|| timestamp_error(&path_of(key), s)),
        Some(other) => Err(RowError::new(
            Problem::WrongType,
            path_of(key),
            format!(
                "expected unix seconds or a date string, found {}",
                json_kind(other)
            ),
        )),
    }
}

/// A context value as text; `None` for null.
fn context_value(value: &Value, path: impl FnOnce() -> String) -> Result<Option<String>, RowError> {
    match value {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s.clone())),
        Value::Number(n) => Ok(Some(n.to_string())),
        Value::Bool(b) => Ok(Some(b.to_string())),
        other => Err(RowError::new(
            Problem::WrongType,
            path(),
            format!(
                "expected a string, number or boolean, found {}",
                json_kind(other)
            ),
        )),
    }
}

fn parse_event(
    line: &[u8],
    keys: &Keys,
    range: &TimestampRange,
    builder: &mut InteractionsBuilder,
) -> Result<(), RowError> {
    let object = parse_object(line)?;
    let user = id_of(&object, &keys.user)?;
    let item = id_of(&object, &keys.item)?;
    let rating = number_of(&object, &keys.rating)?;
    let weight = number_of(&object, &keys.weight)?.unwrap_or(1.0);
    let timestamp = timestamp_of(&object, &keys.timestamp)?
        .map(|t| in_range(range, &path_of(&keys.timestamp), t))
        .transpose()?;
    let event_name = match object.get(&keys.event) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.trim().is_empty() => None,
        Some(Value::String(s)) => Some(s.as_str()),
        Some(other) => {
            return Err(RowError::new(
                Problem::WrongType,
                path_of(&keys.event),
                format!("expected an event name, found {}", json_kind(other)),
            ))
        }
    };
    let mut context = Vec::new();
    match object.get(&keys.context_object) {
        None | Some(Value::Null) => {}
        Some(Value::Object(entries)) => {
            for (key, value) in entries {
                if let Some(value) =
                    context_value(value, || format!("$.{}.{key}", keys.context_object))?
                {
                    context.push((key.as_str(), value));
                }
            }
        }
        Some(other) => {
            return Err(RowError::new(
                Problem::WrongType,
                path_of(&keys.context_object),
                format!("expected an object, found {}", json_kind(other)),
            ))
        }
    }
    for key in &keys.context_keys {
        if let Some(value) = object.get(key) {
            if let Some(value) = context_value(value, || path_of(key))? {
                context.push((key.as_str(), value));
            }
        }
    }
    // Interning happens only once the whole row is known to be valid.
    let event = event_name.map_or_else(|| default_event(rating), |name| builder.event_type(name));
    let user = builder.intern_user(&user);
    let item = builder.intern_item(&item);
    let row = builder.push_indexed(user, item, rating, weight, event, timestamp);
    for (key, value) in context {
        builder.push_context(row, key, &value);
    }
    Ok(())
}

/// Loads a feature table from JSON Lines, one entity per line: `{"id": "...", "genres": ["a"],
/// "price": 9.5, "title": "text", "embedding": [0.1, 0.2]}`. Arrays of strings become
/// categorical features, numbers numeric ones (booleans as 0/1), strings text, arrays of numbers
/// dense vectors; nulls are skipped. Any problem is an error naming the file, line and JSON path.
pub fn load_features_jsonl(path: &Path) -> Result<FeatureTable> {
    read_features_jsonl(&read_file(path)?, path)
}

/// Reads a feature table from JSON Lines text (see [`load_features_jsonl`]); `path` names the
/// input in errors.
pub fn read_features_jsonl(bytes: &[u8], path: &Path) -> Result<FeatureTable> {
    let mut table = FeatureTable::new();
    let mut any = false;
    for (line_no, line) in lines(bytes) {
        any = true;
        parse_entity(line, &mut table).map_err(|e| Error::Parse {
            file: path.to_path_buf(),
            line: line_no,
            field: e.field,
            message: e.message,
        })?;
    }
    if !any {
        return Err(Error::BadFile {
            file: path.to_path_buf(),
            message: "empty file: no JSON lines".into(),
        });
    }
    Ok(table)
}

fn parse_entity(line: &[u8], table: &mut FeatureTable) -> Result<(), RowError> {
    let object = parse_object(line)?;
    let id = id_of(&object, "id")?;
    table.entity(&id);
    for (key, value) in &object {
        if key == "id" {
            continue;
        }
        let value = match value {
            Value::Null => continue,
            Value::Bool(b) => FeatureValue::Number(f32::from(u8::from(*b))),
            Value::Number(n) => match n.as_f64() {
                Some(x) if x.is_finite() => FeatureValue::Number(x as f32),
                _ => {
                    return Err(RowError::new(
                        Problem::UnparsableNumber,
                        path_of(key),
                        format!("unparsable number `{n}`"),
                    ))
                }
            },
            Value::String(s) => FeatureValue::Text(s.clone()),
            Value::Array(values) => array_feature(values, key)?,
            Value::Object(_) => return Err(RowError::new(
                Problem::WrongType,
                path_of(key),
                "expected a string, number, array of strings or array of numbers, found an object",
            )),
        };
        table
            .set(&id, key, value)
            .map_err(|e| RowError::new(Problem::WrongType, path_of(key), e.to_string()))?;
    }
    Ok(())
}

fn array_feature(values: &[Value], key: &str) -> Result<FeatureValue, RowError> {
    if values.iter().all(Value::is_number) && !values.is_empty() {
        let mut vector = Vec::with_capacity(values.len());
        for (i, value) in values.iter().enumerate() {
            match value.as_f64() {
                Some(x) if x.is_finite() => vector.push(x as f32),
                _ => {
                    return Err(RowError::new(
                        Problem::UnparsableNumber,
                        format!("$.{key}[{i}]"),
                        format!("unparsable number `{value}`"),
                    ))
                }
            }
        }
        return Ok(FeatureValue::Vector(vector));
    }
    let mut categories = Vec::with_capacity(values.len());
    for (i, value) in values.iter().enumerate() {
        match value {
            Value::String(s) => categories.push(s.clone()),
            other => {
                return Err(RowError::new(
                    Problem::WrongType,
                    format!("$.{key}[{i}]"),
                    format!(
                        "expected all strings (categories) or all numbers (a vector), found {}",
                        json_kind(other)
                    ),
                ))
            }
        }
    }
    Ok(FeatureValue::Categories(categories))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::import::test_support::temp_dir;
    use kindred_core::features::ColumnData;
    use kindred_core::interactions::NO_TIMESTAMP;
    use kindred_core::EventType;

    fn write(dir: &Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    #[test]
    fn reads_every_field_kind() {
        let dir = temp_dir("jsonl");
        let path = write(
            &dir,
            "events.jsonl",
            br#"{"user": "u1", "item": "i9", "rating": 4.5, "weight": 2, "event": "purchase", "timestamp": 1700000000, "context": {"device": "mobile", "n": 3}}
{"user": 7, "item": "i9", "timestamp": "2023-11-14T22:13:20Z"}

{"user": "u1", "item": 12, "rating": "3", "event": "wishlist"}
"#,
        );
        let (data, report) = load_jsonl(&path, &ImportOptions::default()).unwrap();
        let log = &data.interactions;
        assert_eq!(report.rows_read, 3);
        assert_eq!(log.user_ids().externals(), &["u1", "7"]);
        assert_eq!(log.item_ids().externals(), &["i9", "12"]);
        assert_eq!(log.events()[0], EventType::Purchase);
        assert_eq!(log.events()[1], EventType::View);
        assert_eq!(log.event_name(log.events()[2]), "wishlist");
        assert_eq!(log.weights(), &[2.0, 1.0, 1.0]);
        assert_eq!(log.ratings()[2], 3.0);
        assert_eq!(
            log.timestamps(),
            &[1_700_000_000, 1_700_000_000, NO_TIMESTAMP]
        );
        assert_eq!(log.context().entries.len(), 2);
    }

    #[test]
    fn mapped_keys() {
        let dir = temp_dir("jsonl-map");
        let path = write(
            &dir,
            "e.jsonl",
            br#"{"uid": "a", "sku": "b", "stars": 5, "device": "tv"}"#,
        );
        let opts = ImportOptions {
            columns: Some(
                "user=uid,item=sku,rating=stars,context=device"
                    .parse()
                    .unwrap(),
            ),
            ..ImportOptions::default()
        };
        let (data, _) = load_jsonl(&path, &opts).unwrap();
        assert_eq!(data.interactions.ratings(), &[5.0]);
        let context = data.interactions.context();
        assert_eq!(context.keys.externals(), &["device"]);
        let positional = ImportOptions {
            columns: Some("user,item".parse().unwrap()),
            ..ImportOptions::default()
        };
        assert!(matches!(
            load_jsonl(&path, &positional),
            Err(Error::Spec { .. })
        ));
    }

    #[test]
    fn errors_name_file_line_and_json_path() {
        let dir = temp_dir("jsonl-errors");
        let cases: &[(&str, &[u8], &[&str])] = &[
            (
                "number.jsonl",
                b"{\"user\":1,\"item\":2}\n{\"user\":1,\"item\":2,\"rating\":\"high\"}\n",
                &["number.jsonl:2:", "`$.rating`", "high"],
            ),
            (
                "missing.jsonl",
                b"{\"user\":1}\n",
                &["missing.jsonl:1:", "`$.item`", "missing"],
            ),
            (
                "utf8.jsonl",
                b"{\"user\":1,\"item\":2}\n{\"user\":\"\xff\",\"item\":2}\n",
                &["utf8.jsonl:2:", "`$`", "UTF-8"],
            ),
            (
                "json.jsonl",
                b"{\"user\":1,\"item\":2\n",
                &["json.jsonl:1:", "`$`", "invalid JSON"],
            ),
            (
                "type.jsonl",
                b"{\"user\":[1],\"item\":2}\n",
                &["type.jsonl:1:", "`$.user`", "an array"],
            ),
            (
                "ctx.jsonl",
                b"{\"user\":1,\"item\":2,\"context\":{\"d\":[1]}}\n",
                &["ctx.jsonl:1:", "`$.context.d`"],
            ),
            ("empty.jsonl", b"\n  \n", &["empty.jsonl", "empty file"]),
        ];
        for (name, bytes, needles) in cases {
            let path = write(&dir, name, bytes);
            let message = load_jsonl(&path, &ImportOptions::default())
                .unwrap_err()
                .to_string();
            for needle in *needles {
                assert!(
                    message.contains(needle),
                    "{name}: `{message}` lacks `{needle}`"
                );
            }
        }
    }

    #[test]
    fn timestamps_outside_the_range_are_counted() {
        let dir = temp_dir("jsonl-range");
        let path = write(
            &dir,
            "range.jsonl",
            b"{\"user\":1,\"item\":2,\"timestamp\":1700000000}\n{\"user\":1,\"item\":3,\"timestamp\":9223372036854775807}\n{\"user\":1,\"item\":4,\"timestamp\":\"2500-01-01\"}\n",
        );
        let strict = load_jsonl(&path, &ImportOptions::default())
            .unwrap_err()
            .to_string();
        assert!(
            strict.contains("range.jsonl:2") && strict.contains("timestamp"),
            "{strict}"
        );
        let opts = ImportOptions {
            skip_invalid: true,
            ..ImportOptions::default()
        };
        let (data, report) = load_jsonl(&path, &opts).unwrap();
        assert_eq!(data.interactions.len(), 1);
        assert_eq!(report.skipped.get("timestamp out of range"), Some(&2));
    }

    #[test]
    fn skip_invalid_counts_by_kind() {
        let dir = temp_dir("jsonl-skip");
        let path = write(
            &dir,
            "mixed.jsonl",
            b"{\"user\":1,\"item\":2}\n[1]\n{\"user\":1}\n{\"user\":1,\"item\":2,\"weight\":\"w\"}\nnot json\n{\"user\":\"\",\"item\":2}\n{\"user\":1,\"item\":3,\"timestamp\":\"soon\"}\n",
        );
        let opts = ImportOptions {
            skip_invalid: true,
            ..ImportOptions::default()
        };
        let (data, report) = load_jsonl(&path, &opts).unwrap();
        assert_eq!(data.interactions.len(), 1);
        assert_eq!(report.rows_read, 7);
        for kind in [
            "wrong type",
            "missing field",
            "unparsable number",
            "invalid json",
            "empty id",
            "invalid timestamp",
        ] {
            assert_eq!(
                report.skipped.get(kind),
                Some(&1),
                "{kind} in {:?}",
                report.skipped
            );
        }
        assert_eq!(
            report.rows_read,
            report.rows_imported + report.skipped_total()
        );
    }

    #[test]
    fn feature_lines_map_to_column_kinds() {
        let dir = temp_dir("jsonl-features");
        let path = write(
            &dir,
            "items.jsonl",
            br#"{"id": "i1", "genres": ["a", "b"], "price": 9.5, "title": "Thing", "embedding": [0.1, 0.2], "promo": true}
{"id": 2, "genres": [], "price": null, "embedding": [1, 2]}
"#,
        );
        let table = load_features_jsonl(&path).unwrap();
        assert_eq!(table.ids().externals(), &["i1", "2"]);
        assert!(
            matches!(&table.column("genres").unwrap().data, ColumnData::Categorical { vocab, .. } if vocab.len() == 2)
        );
        assert!(
            matches!(&table.column("price").unwrap().data, ColumnData::Numeric(v) if v[0] == 9.5 && v[1].is_nan())
        );
        assert!(
            matches!(&table.column("title").unwrap().data, ColumnData::Text(v) if v[0] == "Thing")
        );
        assert!(
            matches!(&table.column("embedding").unwrap().data, ColumnData::Dense { dim: 2, values } if values[1] == Some(vec![1.0, 2.0]))
        );
        assert!(
            matches!(&table.column("promo").unwrap().data, ColumnData::Numeric(v) if v[0] == 1.0)
        );

        let bad = write(
            &dir,
            "bad.jsonl",
            b"{\"id\":1,\"e\":[0.5,0.5]}\n{\"id\":2,\"e\":[0.5]}\n",
        );
        let message = load_features_jsonl(&bad).unwrap_err().to_string();
        assert!(
            message.contains("bad.jsonl:2:")
                && message.contains("`$.e`")
                && message.contains("dimension"),
            "{message}"
        );
        let mixed = write(&dir, "mixed.jsonl", b"{\"id\":1,\"tags\":[\"a\",2]}\n");
        let message = load_features_jsonl(&mixed).unwrap_err().to_string();
        assert!(
            message.contains("mixed.jsonl:1:") && message.contains("`$.tags[1]`"),
            "{message}"
        );
    }
}
