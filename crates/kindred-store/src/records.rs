//! The records the store keeps (users, items, feedback, impressions, model versions) and the
//! checks every backend applies to them before anything is written.
//!
//! Validation lives here, once, so SQLite and PostgreSQL reject exactly the same input with the
//! same message.

use kindred_core::{Error, Result};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Longest id (user, item, event id, request id, model version) in bytes. Long enough for UUIDs,
/// URLs and composite keys; short enough that a bad client cannot fill indexes with megabytes.
pub const MAX_ID_BYTES: usize = 256;

/// Longest event type or policy name in bytes.
pub const MAX_NAME_BYTES: usize = 64;

/// A user and the features the models may use (JSON object: numbers, strings, string lists,
/// number lists).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct User {
    pub id: String,
    #[serde(default)]
    pub features: Map<String, Value>,
}

/// An item of the catalog.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Item {
    pub id: String,
    #[serde(default)]
    pub features: Map<String, Value>,
    /// Categories used by filters (`category=...`) and as a categorical feature.
    #[serde(default)]
    pub categories: Vec<String>,
    /// When the item appeared, Unix seconds (freshness, `latest`).
    #[serde(default)]
    pub timestamp: Option<i64>,
    /// Hidden items stay in the store (and in training data) but are never recommended.
    #[serde(default)]
    pub hidden: bool,
}

/// One feedback event as sent by a client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Feedback {
    pub user: String,
    pub item: String,
    /// `rating`, `view`, `click`, `purchase`, ... or any custom name.
    pub event_type: String,
    /// The rating for `rating` events; a weight (count, dwell) for the others.
    #[serde(default)]
    pub value: Option<f32>,
    /// Unix seconds.
    pub timestamp: i64,
    /// Client-chosen id: sending the same event id again is a no-op (counted as a duplicate).
    #[serde(default)]
    pub event_id: Option<String>,
}

/// A feedback event as stored, with its position in the log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredFeedback {
    /// Increasing position in the log: a cursor for [`crate::Store::feedback_after`].
    pub seq: i64,
    #[serde(flatten)]
    pub feedback: Feedback,
}

/// Outcome of a feedback batch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InsertReport {
    /// Events written.
    pub inserted: usize,
    /// Events skipped because their event id was already stored (or repeated in the batch).
    pub duplicates: usize,
}

/// One item shown to a user in answer to a request (for exposure counts and off-policy evaluation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Impression {
    pub request_id: String,
    pub user: String,
    pub item: String,
    /// 0-based position in the list shown.
    pub slot: u32,
    /// Probability that the policy showed this item in this slot, when it knows it.
    #[serde(default)]
    pub propensity: Option<f64>,
    /// The policy (model version, experiment arm) that produced the list.
    pub policy: String,
    /// Unix seconds.
    pub timestamp: i64,
}

/// One list shown to a user in answer to a request: the unit the store writes. A list is one
/// row (its items encoded together), so logging a list of ten costs one row and one index entry
/// instead of ten of each: at thousands of lists a second the per-item rows' index upkeep was
/// most of what logging cost the serving cores.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImpressionList {
    pub request_id: String,
    pub user: String,
    /// The policy (model version, experiment arm) that produced the list.
    pub policy: String,
    /// Unix seconds.
    pub timestamp: i64,
    /// The experiment this list is an exposure of, when it is one.
    #[serde(default)]
    pub experiment: Option<String>,
    /// The items in the order shown.
    pub items: Vec<ShownItem>,
}

/// One item of an [`ImpressionList`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShownItem {
    pub item: String,
    /// 0-based position in the list shown.
    pub slot: u32,
    /// Probability that the policy showed this item in this slot, when it knows it.
    #[serde(default)]
    pub propensity: Option<f64>,
}

impl ImpressionList {
    /// The list as one [`Impression`] per item, in the order shown.
    pub fn impressions(&self) -> impl Iterator<Item = Impression> + '_ {
        self.items.iter().map(|shown| Impression {
            request_id: self.request_id.clone(),
            user: self.user.clone(),
            item: shown.item.clone(),
            slot: shown.slot,
            propensity: shown.propensity,
            policy: self.policy.clone(),
            timestamp: self.timestamp,
        })
    }

    pub(crate) fn check(&self) -> Result<()> {
        check_id("request id", &self.request_id)?;
        check_id("user id", &self.user)?;
        check_name("policy", &self.policy)?;
        if let Some(experiment) = &self.experiment {
            check_id("experiment name", experiment)?;
        }
        for (i, shown) in self.items.iter().enumerate() {
            check_shown(shown).map_err(|e| match e {
                Error::InvalidInput(m) => Error::InvalidInput(format!("items[{i}]: {m}")),
                other => other,
            })?;
        }
        Ok(())
    }

    /// The items in the store's encoding (see [`encode_items`]).
    pub(crate) fn encoded_items(&self) -> String {
        encode_items(&self.items)
    }
}

/// The impressions of `lists` (oldest first), at most the first `limit` of them.
pub(crate) fn first_impressions(lists: &[ImpressionList], limit: usize) -> Vec<Impression> {
    lists
        .iter()
        .flat_map(ImpressionList::impressions)
        .take(limit)
        .collect()
}

/// The impressions of `lists` (oldest first), at most the last `limit` of them.
pub(crate) fn last_impressions(lists: &[ImpressionList], limit: usize) -> Vec<Impression> {
    let total: usize = lists.iter().map(|l| l.items.len()).sum();
    lists
        .iter()
        .flat_map(ImpressionList::impressions)
        .skip(total.saturating_sub(limit))
        .collect()
}

/// A list's items as the store keeps them: a JSON array of `[item, slot, propensity]`.
pub(crate) fn encode_items(items: &[ShownItem]) -> String {
    let triples: Vec<(&str, u32, Option<f64>)> = items
        .iter()
        .map(|s| (s.item.as_str(), s.slot, s.propensity))
        .collect();
    // Strings, integers and finite floats (checked before any write) always serialise.
    serde_json::to_string(&triples).unwrap_or_default()
}

/// Decodes a stored list's items (the inverse of [`encode_items`]); `None` when the text is not
/// that encoding.
pub(crate) fn decode_items(text: &str) -> Option<Vec<ShownItem>> {
    let triples: Vec<(String, u32, Option<f64>)> = serde_json::from_str(text).ok()?;
    Some(
        triples
            .into_iter()
            .map(|(item, slot, propensity)| ShownItem {
                item,
                slot,
                propensity,
            })
            .collect(),
    )
}

fn check_shown(shown: &ShownItem) -> Result<()> {
    check_id("item id", &shown.item)?;
    check_finite("propensity", shown.propensity)?;
    match shown.propensity {
        Some(p) if !(0.0..=1.0).contains(&p) => Err(Error::InvalidInput(format!(
            "propensity {p} is not a probability"
        ))),
        _ => Ok(()),
    }
}

/// A model version to add to the registry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewModel {
    pub version: String,
    pub algorithm: String,
    pub params: Value,
    pub metrics: Value,
    /// Where the saved model lies (a directory with `manifest.json`).
    pub artifact: String,
    /// Unix seconds.
    pub created_at: i64,
}

/// A registered model version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelRecord {
    #[serde(flatten)]
    pub model: NewModel,
    /// True for the one version being served, if any.
    pub live: bool,
}

/// Where an experiment is in its life: created as a draft, started once, stopped once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExperimentStatus {
    Draft,
    Running,
    Stopped,
}

impl ExperimentStatus {
    /// The name stored in the `status` column (and used in the API).
    pub fn as_str(self) -> &'static str {
        match self {
            ExperimentStatus::Draft => "draft",
            ExperimentStatus::Running => "running",
            ExperimentStatus::Stopped => "stopped",
        }
    }

    /// Parses a stored status name.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "draft" => Some(ExperimentStatus::Draft),
            "running" => Some(ExperimentStatus::Running),
            "stopped" => Some(ExperimentStatus::Stopped),
            _ => None,
        }
    }
}

/// A stored experiment. The store keeps the definition as opaque JSON: the server owns its
/// meaning (variants, weights, metrics) and validates it before it gets here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExperimentRecord {
    pub name: String,
    pub definition: Value,
    pub status: ExperimentStatus,
    /// Unix seconds.
    pub created_at: i64,
    /// When it was started (Unix seconds), once it has been.
    pub started_at: Option<i64>,
    /// When it was stopped (Unix seconds), once it has been.
    pub stopped_at: Option<i64>,
}

/// One list served to a user inside an experiment (its items are impressions with the same
/// request id).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Exposure {
    pub experiment: String,
    pub variant: String,
    pub user: String,
    pub request_id: String,
    /// Unix seconds.
    pub timestamp: i64,
}

/// Number of rows per kind, for health checks and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreCounts {
    pub users: u64,
    pub items: u64,
    pub feedback: u64,
    pub impressions: u64,
    pub models: u64,
}

/// Rejects an empty, over-long or control-character id; `what` names the field in the message.
pub fn check_id(what: &str, id: &str) -> Result<()> {
    if id.is_empty() {
        return Err(Error::InvalidInput(format!("{what} is empty")));
    }
    if id.len() > MAX_ID_BYTES {
        return Err(Error::InvalidInput(format!(
            "{what} is {} bytes long; the limit is {MAX_ID_BYTES}",
            id.len()
        )));
    }
    if id.chars().any(char::is_control) {
        return Err(Error::InvalidInput(format!(
            "{what} {id:?} contains a control character"
        )));
    }
    Ok(())
}

fn check_name(what: &str, name: &str) -> Result<()> {
    if name.trim().is_empty() {
        return Err(Error::InvalidInput(format!("{what} is empty")));
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(Error::InvalidInput(format!(
            "{what} is {} bytes long; the limit is {MAX_NAME_BYTES}",
            name.len()
        )));
    }
    Ok(())
}

fn check_finite(what: &str, value: Option<f64>) -> Result<()> {
    match value {
        Some(v) if !v.is_finite() => Err(Error::InvalidInput(format!("{what} is {v}"))),
        _ => Ok(()),
    }
}

/// Validates one element of a batch; errors say which element (0-based) was wrong.
pub(crate) fn at<T>(index: usize, result: Result<T>) -> Result<T> {
    result.map_err(|e| match e {
        Error::InvalidInput(msg) => Error::InvalidInput(format!("element {index}: {msg}")),
        other => other,
    })
}

impl User {
    /// A user without features.
    pub fn new(id: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            features: Map::new(),
        }
    }

    pub(crate) fn check(&self) -> Result<()> {
        check_id("user id", &self.id)
    }
}

impl Item {
    /// A visible item without features, categories or date.
    pub fn new(id: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            features: Map::new(),
            categories: Vec::new(),
            timestamp: None,
            hidden: false,
        }
    }

    pub(crate) fn check(&self) -> Result<()> {
        check_id("item id", &self.id)?;
        for category in &self.categories {
            check_id(&format!("category of item {:?}", self.id), category)?;
        }
        Ok(())
    }
}

impl Feedback {
    pub(crate) fn check(&self) -> Result<()> {
        check_id("user id", &self.user)?;
        check_id("item id", &self.item)?;
        check_name("event type", &self.event_type)?;
        check_finite("value", self.value.map(f64::from))?;
        // The log's "no timestamp" marker: stored, it would read back as an undated event.
        if self.timestamp == kindred_core::interactions::NO_TIMESTAMP {
            return Err(Error::InvalidInput(
                "timestamp i64::MIN is reserved (it marks an event without a timestamp)".into(),
            ));
        }
        if let Some(event_id) = &self.event_id {
            check_id("event id", event_id)?;
        }
        Ok(())
    }
}

impl Exposure {
    pub(crate) fn check(&self) -> Result<()> {
        check_id("experiment name", &self.experiment)?;
        check_id("variant name", &self.variant)?;
        check_id("user id", &self.user)?;
        check_id("request id", &self.request_id)
    }
}

/// The status change `from -> to` is allowed: draft -> running -> stopped, nothing else (a
/// stopped experiment is not restarted: its exposures would mix two periods; create a new one).
pub(crate) fn check_transition(
    name: &str,
    from: ExperimentStatus,
    to: ExperimentStatus,
) -> Result<()> {
    match (from, to) {
        (ExperimentStatus::Draft, ExperimentStatus::Running)
        | (ExperimentStatus::Running, ExperimentStatus::Stopped) => Ok(()),
        _ => Err(Error::InvalidInput(format!(
            "experiment {name:?} is {}; it cannot become {}",
            from.as_str(),
            to.as_str()
        ))),
    }
}

impl NewModel {
    pub(crate) fn check(&self) -> Result<()> {
        check_id("model version", &self.version)?;
        check_name("algorithm", &self.algorithm)?;
        if self.artifact.is_empty() {
            return Err(Error::InvalidInput("model artifact path is empty".into()));
        }
        Ok(())
    }
}

/// Keeps the last record of each id (a batch upsert where an id repeats means "the latest wins",
/// and PostgreSQL refuses to update one row twice in one statement).
pub(crate) fn last_per_id<T: Clone>(records: &[T], id: impl Fn(&T) -> &str) -> Vec<T> {
    let mut position = std::collections::HashMap::with_capacity(records.len());
    let mut out: Vec<T> = Vec::with_capacity(records.len());
    for record in records {
        match position.get(id(record)) {
            Some(&i) => out[i] = record.clone(),
            None => {
                position.insert(id(record).to_owned(), out.len());
                out.push(record.clone());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_checked() {
        assert!(check_id("user id", "u1").is_ok());
        assert!(check_id("user id", "").is_err());
        assert!(check_id("user id", &"x".repeat(MAX_ID_BYTES)).is_ok());
        let long = check_id("user id", &"x".repeat(MAX_ID_BYTES + 1)).unwrap_err();
        assert!(long.to_string().contains("257 bytes"), "{long}");
        assert!(check_id("user id", "a\nb").is_err());
    }

    #[test]
    fn feedback_and_impressions_are_checked() {
        let ok = Feedback {
            user: "u".into(),
            item: "i".into(),
            event_type: "click".into(),
            value: Some(1.0),
            timestamp: 0,
            event_id: None,
        };
        assert!(ok.check().is_ok());
        let nan = Feedback {
            value: Some(f32::NAN),
            ..ok.clone()
        };
        assert!(nan.check().is_err());
        let no_type = Feedback {
            event_type: " ".into(),
            ..ok.clone()
        };
        assert!(no_type.check().is_err());
        let shown = |propensity| ShownItem {
            item: "i".into(),
            slot: 0,
            propensity,
        };
        let list = ImpressionList {
            request_id: "r".into(),
            user: "u".into(),
            policy: "als".into(),
            timestamp: 0,
            experiment: None,
            items: vec![shown(Some(0.5)), shown(Some(1.5))],
        };
        let err = list.check().unwrap_err().to_string();
        assert!(
            err.contains("items[1]") && err.contains("probability"),
            "{err}"
        );
        let nan = ImpressionList {
            items: vec![shown(Some(f64::NAN))],
            ..list.clone()
        };
        assert!(nan.check().is_err());
        let no_experiment = ImpressionList {
            experiment: Some(String::new()),
            items: vec![shown(None)],
            ..list
        };
        assert!(no_experiment.check().is_err());
    }

    #[test]
    fn a_lists_items_survive_their_encoding_exactly() {
        let list = ImpressionList {
            request_id: "r".into(),
            user: "u".into(),
            policy: "p".into(),
            timestamp: 7,
            experiment: None,
            items: vec![
                ShownItem {
                    item: "with \"quotes\", commas and ünïcode".into(),
                    slot: 0,
                    propensity: Some(0.1 + 0.2),
                },
                ShownItem {
                    item: "42".into(),
                    slot: 3,
                    propensity: None,
                },
                ShownItem {
                    item: "tiny".into(),
                    slot: 4,
                    propensity: Some(5e-324),
                },
            ],
        };
        let decoded = decode_items(&list.encoded_items()).unwrap();
        assert_eq!(decoded, list.items);
        assert_eq!(decode_items("[[\"a\", 1]]"), None);
        assert_eq!(decode_items("not json"), None);
        let rows: Vec<Impression> = list.impressions().collect();
        assert_eq!(rows.len(), 3);
        assert_eq!((rows[1].item.as_str(), rows[1].slot), ("42", 3));
        assert_eq!(rows[2].request_id, "r");
    }

    #[test]
    fn batch_errors_name_the_element() {
        let err = at(3, check_id("item id", "")).unwrap_err();
        assert_eq!(err.to_string(), "element 3: item id is empty");
    }

    #[test]
    fn last_record_per_id_wins_in_first_position() {
        let rows = vec![("a", 1), ("b", 2), ("a", 3)];
        assert_eq!(last_per_id(&rows, |r| r.0), vec![("a", 3), ("b", 2)]);
    }
}
