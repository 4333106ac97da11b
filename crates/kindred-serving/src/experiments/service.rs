//! [`ExperimentService`]: create (as a draft), list, read, start, stop and analyse experiments,
//! and the canary shortcut. Starting or stopping reloads the running set and the snapshot (so
//! the variants' model versions are loaded) before answering.

use std::sync::Arc;

use kindred_store::{ExperimentRecord, ExperimentStatus};
use serde_json::Value;

use super::definition::{
    ExperimentDefinition, VariantDefinition, DEFAULT_ATTRIBUTION_WINDOW_SECONDS,
};
use super::results::experiment_results;
use super::running::parse;
use crate::clock::unix_now;
use crate::error::{Error, Result};
use crate::state::ServingState;

/// The experiments of a running server.
#[derive(Clone)]
pub struct ExperimentService {
    state: Arc<ServingState>,
}

impl ExperimentService {
    pub fn new(state: Arc<ServingState>) -> Self {
        Self { state }
    }

    /// Checks that the variants' model versions are registered and their rank configs
    /// configured.
    async fn check_references(&self, definition: &ExperimentDefinition) -> Result<()> {
        let snapshot = self.state.snapshot();
        for (i, v) in definition.variants.iter().enumerate() {
            if let Some(version) = &v.model_version {
                if self.state.store.get_model(version).await?.is_none() {
                    return Err(Error::invalid(
                        "unknown_model_version",
                        format!(
                            "variants[{i}].model_version: no model version `{version}` is registered"
                        ),
                    ));
                }
            }
            if let Some(rank) = &v.rank {
                if !snapshot.has_rank(rank) {
                    return Err(Error::invalid(
                        "unknown_rank_config",
                        format!(
                            "variants[{i}].rank: unknown rank config `{rank}`; configured: {}",
                            snapshot.rank_names().collect::<Vec<_>>().join(", ")
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Stores `definition` as a draft.
    pub async fn create(&self, definition: ExperimentDefinition) -> Result<ExperimentRecord> {
        definition.validate()?;
        self.check_references(&definition).await?;
        let store = &self.state.store;
        if store.get_experiment(&definition.name).await?.is_some() {
            return Err(Error::conflict(
                "experiment_exists",
                format!("experiment `{}` already exists", definition.name),
            ));
        }
        let value = serde_json::to_value(&definition).map_err(|e| Error::Task(e.to_string()))?;
        Ok(store
            .create_experiment(&definition.name, &value, unix_now())
            .await?)
    }

    /// Every experiment, whatever its status.
    pub async fn list(&self) -> Result<Vec<ExperimentRecord>> {
        Ok(self.state.store.list_experiments().await?)
    }

    /// The experiment called `name`.
    pub async fn get(&self, name: &str) -> Result<ExperimentRecord> {
        kindred_store::check_id("experiment name", name)?;
        self.state
            .store
            .get_experiment(name)
            .await?
            .ok_or_else(|| Error::not_found("experiment", name))
    }

    /// Starts or stops an experiment and reloads the running set.
    pub async fn set_status(
        &self,
        name: &str,
        status: ExperimentStatus,
    ) -> Result<ExperimentRecord> {
        let record = self.get(name).await?;
        if status == ExperimentStatus::Running {
            // A version named at creation may have been deleted since, in principle.
            let definition = parse(&record)?;
            self.check_references(&definition).await?;
        }
        let record = self
            .state
            .store
            .set_experiment_status(name, status, unix_now())
            .await
            .map_err(|e| match e {
                kindred_core::Error::InvalidInput(m) => Error::conflict("invalid_transition", m),
                other => other.into(),
            })?;
        self.state.reload_experiments().await?;
        Ok(record)
    }

    /// The analysis of the experiment called `name` so far.
    pub async fn results(&self, name: &str) -> Result<Value> {
        let record = self.get(name).await?;
        // Exposures still in the writer's queue belong in the answer.
        self.state.flush_exposures().await;
        Ok(experiment_results(&self.state.store, &record, unix_now()).await?)
    }

    /// Creates and starts `canary-<version>`: `percent` % of users get the new version and as
    /// many (up to the rest) the live one as a control, so both arms are the same size; everyone
    /// else keeps the default lists.
    pub async fn canary(
        &self,
        version: &str,
        percent: f64,
        success_metric: Option<String>,
    ) -> Result<ExperimentRecord> {
        kindred_store::check_id("model version", version)?;
        let store = &self.state.store;
        if store.get_model(version).await?.is_none() {
            return Err(Error::not_found("model version", version));
        }
        // 100 % would leave no control group: activating the version is the way to do that.
        if !(percent > 0.0 && percent < 100.0) {
            return Err(Error::invalid(
                "invalid_parameter",
                format!("`percent`: {percent} is outside (0, 100)"),
            ));
        }
        let Some(live) = store.live_model().await? else {
            return Err(Error::conflict(
                "no_live_version",
                "a canary compares a version with the live one, and no version is live",
            ));
        };
        if live.model.version == version {
            return Err(Error::conflict(
                "already_live",
                format!("model version `{version}` is already live"),
            ));
        }
        let control = percent.min(100.0 - percent);
        let variants = vec![
            VariantDefinition {
                name: "control".into(),
                model_version: Some(live.model.version.clone()),
                rank: None,
                weight: control,
            },
            VariantDefinition {
                name: "canary".into(),
                model_version: Some(version.to_owned()),
                rank: None,
                weight: percent,
            },
        ];
        let definition = ExperimentDefinition {
            name: format!("canary-{version}"),
            variants,
            salt: None,
            traffic: ((control + percent) / 100.0).min(1.0),
            success_metric: success_metric.unwrap_or_else(|| "click_any".into()),
            guardrail_metrics: Vec::new(),
            attribution_window_seconds: DEFAULT_ATTRIBUTION_WINDOW_SECONDS,
            pre_period_seconds: None,
            planned_users_per_variant: None,
            alpha: 0.05,
        };
        let record = self.create(definition).await?;
        self.set_status(&record.name, ExperimentStatus::Running)
            .await
    }
}
