//! Which model versions may be deleted from the registry: never the live one, never one that an
//! experiment still serves (a draft or running experiment, canaries included, whose variants
//! name it). Both backends apply [`blocker`] inside the deleting transaction; the serving
//! lifecycle and `kindred models prune` apply it beforehand to plan and to answer precisely.

use serde_json::Value;

use crate::records::{ExperimentRecord, ExperimentStatus, ModelRecord};

/// Why a version cannot be deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeletionBlocker {
    /// It is the version being served.
    Live,
    /// An experiment that is not stopped names it in one of its variants.
    Experiment {
        name: String,
        status: ExperimentStatus,
    },
}

impl DeletionBlocker {
    /// The refusal, naming the version and what to do about it.
    pub fn describe(&self, version: &str) -> String {
        match self {
            DeletionBlocker::Live => format!(
                "model version {version:?} is live; activate another version before deleting it"
            ),
            DeletionBlocker::Experiment { name, status } => format!(
                "model version {version:?} is served by experiment {name:?} ({}); stop the \
                 experiment before deleting it",
                status.as_str()
            ),
        }
    }
}

/// The model versions an experiment definition's variants name (`variants[].model_version`).
/// The store keeps definitions as opaque JSON; this is the one field of it retention reads.
pub fn versions_named(definition: &Value) -> impl Iterator<Item = &str> {
    definition
        .get("variants")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|variant| variant.get("model_version").and_then(Value::as_str))
}

/// What keeps `model` from being deleted, given every experiment of the store.
pub fn blocker(model: &ModelRecord, experiments: &[ExperimentRecord]) -> Option<DeletionBlocker> {
    if model.live {
        return Some(DeletionBlocker::Live);
    }
    experiments
        .iter()
        .filter(|e| e.status != ExperimentStatus::Stopped)
        .find(|e| versions_named(&e.definition).any(|v| v == model.model.version))
        .map(|e| DeletionBlocker::Experiment {
            name: e.name.clone(),
            status: e.status,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::NewModel;
    use serde_json::json;

    fn model(version: &str, live: bool) -> ModelRecord {
        ModelRecord {
            model: NewModel {
                version: version.into(),
                algorithm: "als".into(),
                params: json!({}),
                metrics: json!({}),
                artifact: format!("/m/{version}"),
                created_at: 1,
            },
            live,
        }
    }

    fn experiment(name: &str, status: ExperimentStatus, versions: &[&str]) -> ExperimentRecord {
        let variants: Vec<Value> = versions
            .iter()
            .map(|v| json!({"name": v, "model_version": v, "weight": 1}))
            .chain([json!({"name": "live", "weight": 1})])
            .collect();
        ExperimentRecord {
            name: name.into(),
            definition: json!({ "name": name, "variants": variants }),
            status,
            created_at: 1,
            started_at: None,
            stopped_at: None,
        }
    }

    #[test]
    fn live_and_unstopped_experiment_versions_are_blocked() {
        let experiments = [
            experiment("old", ExperimentStatus::Stopped, &["v1"]),
            experiment("canary-v2", ExperimentStatus::Running, &["v2"]),
            experiment("draft", ExperimentStatus::Draft, &["v3"]),
        ];
        assert_eq!(
            blocker(&model("v0", true), &experiments),
            Some(DeletionBlocker::Live)
        );
        assert_eq!(blocker(&model("v1", false), &experiments), None);
        assert_eq!(
            blocker(&model("v2", false), &experiments),
            Some(DeletionBlocker::Experiment {
                name: "canary-v2".into(),
                status: ExperimentStatus::Running
            })
        );
        let draft = blocker(&model("v3", false), &experiments).unwrap();
        assert!(
            draft.describe("v3").contains("\"draft\" (draft)"),
            "{draft:?}"
        );
        assert_eq!(blocker(&model("v4", false), &experiments), None);
    }

    #[test]
    fn definitions_without_variants_name_nothing() {
        assert_eq!(versions_named(&json!({})).count(), 0);
        assert_eq!(versions_named(&json!({"variants": "x"})).count(), 0);
        assert_eq!(
            versions_named(&json!({"variants": [{"model_version": 3}, {"model_version": "v"}]}))
                .collect::<Vec<_>>(),
            ["v"]
        );
    }
}
