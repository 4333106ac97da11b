//! Retention of model versions: deleting one version (`DELETE /v1/models/{version}`) and pruning
//! the registry down to the newest few (`kindred models prune`, and `[retention] keep` after
//! every training run of a server). One function deletes a version whatever asked for it:
//! the registry row first (the store refuses the live version and versions a draft or running
//! experiment serves), then the artifact directory, so a failure never leaves a registered
//! version without its artifact.
//!
//! The artifact is removed only when its recorded path is an absolute path to a real directory
//! (not a link) holding a `manifest.json`, and inside the optional `fence` directory: a bad or
//! foreign path in the registry never deletes anything else. A missing directory is fine
//! (another machine's disk, or removed by hand).

use std::path::{Path, PathBuf};

use kindred_store::retention::blocker;
use kindred_store::{DeletionBlocker, ExperimentRecord, ModelRecord, Store};
use serde::Serialize;

use crate::error::{Error, Result};

/// What happened to a deleted version's artifact directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum ArtifactOutcome {
    /// The directory was removed.
    Removed { path: String },
    /// Nothing is at the recorded path.
    Missing { path: String },
    /// Left in place, and why (not a model directory, outside the fence, removal failed).
    Kept { path: String, reason: String },
}

/// A version deleted from the registry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeletedVersion {
    pub version: String,
    pub artifact: ArtifactOutcome,
}

/// Why a prune keeps a version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum KeepReason {
    /// Among the `keep` newest.
    Newest,
    /// The version whose training run triggered the prune (a version registered in the same
    /// second may sort after it, and must not push it out).
    JustTrained,
    /// The live version.
    Live,
    /// A draft or running experiment serves it.
    Experiment { experiment: String },
}

/// A version a prune keeps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeptVersion {
    pub version: String,
    #[serde(flatten)]
    pub reason: KeepReason,
}

/// What a prune keeps and deletes (or, dry, would delete).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PrunePlan {
    pub keep: Vec<KeptVersion>,
    pub delete: Vec<ModelRecord>,
}

/// The outcome of a prune.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PruneReport {
    pub dry_run: bool,
    pub kept: Vec<KeptVersion>,
    /// Deleted versions (dry run: none).
    pub deleted: Vec<DeletedVersion>,
    /// Dry run: what a real run would delete.
    pub would_delete: Vec<String>,
    /// Versions the plan chose but the store refused at deletion time (made live, or named by
    /// an experiment, in between), with the reason.
    pub refused: Vec<(String, String)>,
}

/// Keeps the `keep` newest versions (by `created_at`, then version name), the live one, every
/// one a draft or running experiment serves and `spare`; deletes the rest. `keep` counts
/// versions, not reasons: the live version among the newest takes one of the places.
pub fn plan(
    models: &[ModelRecord],
    experiments: &[ExperimentRecord],
    keep: usize,
    spare: Option<&str>,
) -> PrunePlan {
    let mut newest_first: Vec<&ModelRecord> = models.iter().collect();
    newest_first.sort_by(|a, b| {
        (b.model.created_at, &b.model.version).cmp(&(a.model.created_at, &a.model.version))
    });
    let mut out = PrunePlan {
        keep: Vec::new(),
        delete: Vec::new(),
    };
    for (rank, model) in newest_first.into_iter().enumerate() {
        let version = model.model.version.clone();
        let reason = if rank < keep {
            Some(KeepReason::Newest)
        } else if spare == Some(version.as_str()) {
            Some(KeepReason::JustTrained)
        } else {
            blocker(model, experiments).map(|b| match b {
                DeletionBlocker::Live => KeepReason::Live,
                DeletionBlocker::Experiment { name, .. } => {
                    KeepReason::Experiment { experiment: name }
                }
            })
        };
        match reason {
            Some(reason) => out.keep.push(KeptVersion { version, reason }),
            None => out.delete.push(model.clone()),
        }
    }
    out
}

/// The conflict a blocker makes (`version_live`, `version_in_experiment`).
fn conflict(version: &str, blocker: &DeletionBlocker) -> Error {
    let code = match blocker {
        DeletionBlocker::Live => "version_live",
        DeletionBlocker::Experiment { .. } => "version_in_experiment",
    };
    Error::conflict(code, blocker.describe(version))
}

/// Deletes `version` from the registry, then its artifact directory (see the module doc):
/// [`Error::NotFound`] for an unknown version, [`Error::Conflict`] (`version_live`,
/// `version_in_experiment`) for one that must stay.
pub async fn delete_version(
    store: &Store,
    version: &str,
    fence: Option<&Path>,
) -> Result<DeletedVersion> {
    kindred_store::check_id("model version", version)?;
    let Some(record) = store.get_model(version).await? else {
        return Err(Error::not_found("model version", version));
    };
    let experiments = store.list_experiments().await?;
    if let Some(b) = blocker(&record, &experiments) {
        return Err(conflict(version, &b));
    }
    let deleted = match store.delete_model(version).await {
        Ok(Some(deleted)) => deleted,
        // Deleted by someone else since the read above.
        Ok(None) => return Err(Error::not_found("model version", version)),
        Err(kindred_core::Error::InvalidInput(message)) => {
            // Made live or named by an experiment since the read above: say which it is now.
            let now = store.get_model(version).await?;
            let experiments = store.list_experiments().await?;
            return Err(match now.and_then(|r| blocker(&r, &experiments)) {
                Some(b) => conflict(version, &b),
                None => Error::conflict("version_in_experiment", message),
            });
        }
        Err(other) => return Err(other.into()),
    };
    let artifact = remove_artifact(&deleted.model.artifact, fence);
    if let ArtifactOutcome::Kept { path, reason } = &artifact {
        tracing::warn!(%version, %path, %reason, "deleted model version's artifact left in place");
    }
    Ok(DeletedVersion {
        version: version.to_owned(),
        artifact,
    })
}

/// Removes a model artifact directory when it is safe to (see the module doc).
pub fn remove_artifact(recorded: &str, fence: Option<&Path>) -> ArtifactOutcome {
    let path = PathBuf::from(recorded);
    let kept = |reason: String| ArtifactOutcome::Kept {
        path: recorded.to_owned(),
        reason,
    };
    if !path.is_absolute() {
        return kept("the recorded path is not absolute".into());
    }
    let metadata = match std::fs::symlink_metadata(&path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return ArtifactOutcome::Missing {
                path: recorded.to_owned(),
            }
        }
        Err(e) => return kept(format!("cannot inspect it: {e}")),
    };
    if !metadata.is_dir() {
        return kept("not a directory (or a link to one)".into());
    }
    if !path.join("manifest.json").is_file() {
        return kept("holds no manifest.json, so it is not a model artifact".into());
    }
    if let Some(fence) = fence {
        // Compared resolved, so `..` or a linked parent cannot lead outside.
        let inside = match (path.canonicalize(), fence.canonicalize()) {
            (Ok(p), Ok(f)) => p.starts_with(&f) && p != f,
            _ => false,
        };
        if !inside {
            return kept(format!("outside the models directory {}", fence.display()));
        }
    }
    match std::fs::remove_dir_all(&path) {
        Ok(()) => ArtifactOutcome::Removed {
            path: recorded.to_owned(),
        },
        Err(e) => kept(format!("removing it failed: {e}")),
    }
}

/// Applies [`plan`] to the store: deletes every version it does not keep (dry run: deletes
/// nothing and lists them), each through [`delete_version`].
pub async fn prune(
    store: &Store,
    keep: usize,
    dry_run: bool,
    fence: Option<&Path>,
    spare: Option<&str>,
) -> Result<PruneReport> {
    let models = store.list_models().await?;
    let experiments = store.list_experiments().await?;
    let plan = plan(&models, &experiments, keep, spare);
    let mut report = PruneReport {
        dry_run,
        kept: plan.keep,
        deleted: Vec::new(),
        would_delete: Vec::new(),
        refused: Vec::new(),
    };
    for record in plan.delete {
        let version = record.model.version;
        if dry_run {
            report.would_delete.push(version);
            continue;
        }
        match delete_version(store, &version, fence).await {
            Ok(deleted) => report.deleted.push(deleted),
            Err(Error::Conflict { message, .. }) => report.refused.push((version, message)),
            // Gone already: nothing left to delete.
            Err(Error::NotFound(_)) => {}
            Err(other) => return Err(other),
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kindred_store::{ExperimentStatus, NewModel};
    use serde_json::json;

    fn model(version: &str, created_at: i64, live: bool) -> ModelRecord {
        ModelRecord {
            model: NewModel {
                version: version.into(),
                algorithm: "als".into(),
                params: json!({}),
                metrics: json!({}),
                artifact: format!("/nowhere/{version}"),
                created_at,
            },
            live,
        }
    }

    #[test]
    fn the_plan_keeps_the_newest_the_live_and_experiment_versions() {
        let models = [
            model("a", 1, true),
            model("b", 2, false),
            model("c", 3, false),
            model("d", 4, false),
            // Same second as d: the name breaks the tie.
            model("e", 4, false),
        ];
        let experiments = [ExperimentRecord {
            name: "canary-b".into(),
            definition: json!({"variants": [{"name": "canary", "model_version": "b"}]}),
            status: ExperimentStatus::Running,
            created_at: 1,
            started_at: Some(2),
            stopped_at: None,
        }];
        let p = plan(&models, &experiments, 2, None);
        let kept: Vec<(&str, &KeepReason)> = p
            .keep
            .iter()
            .map(|k| (k.version.as_str(), &k.reason))
            .collect();
        assert_eq!(
            kept,
            [
                ("e", &KeepReason::Newest),
                ("d", &KeepReason::Newest),
                (
                    "b",
                    &KeepReason::Experiment {
                        experiment: "canary-b".into()
                    }
                ),
                ("a", &KeepReason::Live),
            ]
        );
        let deleted: Vec<&str> = p.delete.iter().map(|m| m.model.version.as_str()).collect();
        assert_eq!(deleted, ["c"]);
        // keep = 0 keeps only what must stay.
        assert_eq!(plan(&models, &experiments, 0, None).delete.len(), 3);
        assert!(plan(&models, &experiments, 9, None).delete.is_empty());
        // A spared version stays whatever its rank.
        let spared = plan(&models, &experiments, 1, Some("c"));
        assert!(spared
            .keep
            .iter()
            .any(|k| k.version == "c" && k.reason == KeepReason::JustTrained));
        let deleted: Vec<&str> = spared
            .delete
            .iter()
            .map(|m| m.model.version.as_str())
            .collect();
        assert_eq!(deleted, ["d"]);
    }

    fn artifact_dir(root: &Path, name: &str, manifest: bool) -> PathBuf {
        let dir = root.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("factors.bin"), b"x").unwrap();
        if manifest {
            std::fs::write(dir.join("manifest.json"), b"{}").unwrap();
        }
        dir
    }

    #[test]
    fn only_model_directories_are_removed() {
        let root = std::env::temp_dir().join(format!("kindred-retention-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let models = root.join("models");
        let model_dir = artifact_dir(&models, "v1", true);
        let other = artifact_dir(&root, "not-a-model", false);
        let outside = artifact_dir(&root, "elsewhere", true);
        let text = |p: &Path| p.display().to_string();

        assert!(matches!(
            remove_artifact(&text(&other), None),
            ArtifactOutcome::Kept { reason, .. } if reason.contains("manifest.json")
        ));
        assert!(other.join("factors.bin").exists());
        assert!(matches!(
            remove_artifact("relative/v1", None),
            ArtifactOutcome::Kept { reason, .. } if reason.contains("absolute")
        ));
        let file = other.join("factors.bin");
        assert!(matches!(
            remove_artifact(&text(&file), None),
            ArtifactOutcome::Kept { reason, .. } if reason.contains("not a directory")
        ));
        assert!(matches!(
            remove_artifact(&text(&outside), Some(&models)),
            ArtifactOutcome::Kept { reason, .. } if reason.contains("outside")
        ));
        assert!(outside.exists());
        // The fence itself is never an artifact, even holding a manifest.
        std::fs::write(models.join("manifest.json"), b"{}").unwrap();
        assert!(matches!(
            remove_artifact(&text(&models), Some(&models)),
            ArtifactOutcome::Kept { .. }
        ));
        assert_eq!(
            remove_artifact(&text(&model_dir), Some(&models)),
            ArtifactOutcome::Removed {
                path: text(&model_dir)
            }
        );
        assert!(!model_dir.exists());
        assert_eq!(
            remove_artifact(&text(&model_dir), None),
            ArtifactOutcome::Missing {
                path: text(&model_dir)
            }
        );
        std::fs::remove_dir_all(&root).unwrap();
    }
}
