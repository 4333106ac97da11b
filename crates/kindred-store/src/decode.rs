//! Turning stored text back into records, shared by both backends: both keep features,
//! categories and model parameters as JSON text, so reading them back (and naming what is
//! corrupt) is one piece of code rather than two that could drift apart.

use kindred_core::{Error, Result};
use serde_json::{Map, Value};

use crate::records::{decode_items, ExperimentRecord, ExperimentStatus, ImpressionList, Item};

/// An error about stored data that does not decode, naming the backend and the operation.
pub(crate) fn corrupt(backend: &'static str, operation: &'static str, message: String) -> Error {
    Error::Store {
        backend,
        operation,
        message,
    }
}

/// A JSON object stored as text (`what`: "features of user \"u1\"" in errors).
pub(crate) fn object(
    backend: &'static str,
    operation: &'static str,
    what: &str,
    text: &str,
) -> Result<Map<String, Value>> {
    match serde_json::from_str(text) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(corrupt(
            backend,
            operation,
            format!("{what} are not a JSON object: {text}"),
        )),
    }
}

/// Any JSON value stored as text.
pub(crate) fn json(
    backend: &'static str,
    operation: &'static str,
    what: &str,
    text: &str,
) -> Result<Value> {
    serde_json::from_str(text).map_err(|e| {
        corrupt(
            backend,
            operation,
            format!("{what} are not valid JSON: {e}"),
        )
    })
}

/// An item row: id, features and categories as JSON text, timestamp, hidden flag.
pub(crate) fn item(
    backend: &'static str,
    operation: &'static str,
    (id, features, categories, timestamp, hidden): (String, String, String, Option<i64>, bool),
) -> Result<Item> {
    let features = object(
        backend,
        operation,
        &format!("features of item {id:?}"),
        &features,
    )?;
    let categories = serde_json::from_str(&categories).map_err(|e| {
        corrupt(
            backend,
            operation,
            format!("categories of item {id:?} are not a list of strings: {e}"),
        )
    })?;
    Ok(Item {
        id,
        features,
        categories,
        timestamp,
        hidden,
    })
}

/// An experiment row: name, definition as JSON text, status name, created/started/stopped times.
pub(crate) fn experiment(
    backend: &'static str,
    operation: &'static str,
    (name, definition, status, created_at, started_at, stopped_at): (
        String,
        String,
        String,
        i64,
        Option<i64>,
        Option<i64>,
    ),
) -> Result<ExperimentRecord> {
    let definition = json(
        backend,
        operation,
        &format!("definition of experiment {name:?}"),
        &definition,
    )?;
    let status = ExperimentStatus::parse(&status).ok_or_else(|| {
        corrupt(
            backend,
            operation,
            format!("experiment {name:?} has an unknown status {status:?}"),
        )
    })?;
    Ok(ExperimentRecord {
        name,
        definition,
        status,
        created_at,
        started_at,
        stopped_at,
    })
}

/// A row limit as SQL's signed integer (saturating).
pub(crate) fn limit(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// One stored row of `impression_lists` back as the list it was (without its experiment, which
/// readers select by rather than read).
pub(crate) fn impression_list(
    backend: &'static str,
    operation: &'static str,
    request_id: String,
    user: String,
    policy: String,
    timestamp: i64,
    items: &str,
) -> Result<ImpressionList> {
    let items = decode_items(items).ok_or_else(|| {
        corrupt(
            backend,
            operation,
            format!("the items of list {request_id:?} are not [item, slot, propensity] triples: {items}"),
        )
    })?;
    Ok(ImpressionList {
        request_id,
        user,
        policy,
        timestamp,
        experiment: None,
        items,
    })
}
