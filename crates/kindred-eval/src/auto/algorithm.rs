//! `auto` as an [`Algorithm`]: fitting it selects a family and configuration on validation rows
//! carved from the training rows it is given ([`super::select`]), then refits the winner on all
//! of them. The result is the winner's own model, wrapped so that its selection trace travels
//! with it (into the manifest on save, and to whoever asks through [`Model::selection`]).
//! Because the whole choice happens inside `fit`, an evaluation of `auto` scores the process
//! (choice included) on test rows the choice never saw, and the server trains it exactly as
//! `kindred train` does.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use kindred_core::{
    Dataset, Error, FitContext, ItemIdx, Protocol, Result, Scored, TrainSet, UserIdx,
};
use kindred_models::{
    Algorithm, DataShape, Fitted, ItemFilter, Manifest, Model, ModelRegistry, UserQuery,
};

use super::candidates::{available_memory, candidates, DataTraits};
use super::select::{select, SelectSettings};
use super::spec::{metric_cutoff, AutoSpec, AutoTask};
use crate::runner::lower_is_better;

/// The `auto` algorithm: a parsed spec plus the validation protocol, when the caller knows
/// the outer one (an evaluation carves validation rows the way its own protocol carves test
/// rows; `kindred train` and the server carve the most recent 20% where there are timestamps).
pub struct AutoAlgorithm {
    spec: String,
    parsed: AutoSpec,
    task: AutoTask,
    metric: String,
    validation: Option<Protocol>,
}

impl AutoAlgorithm {
    /// `auto` as `kindred train` and the server fit it: the task is the spec's (ranking when
    /// it names none), validated on a holdout of the training rows.
    pub fn new(spec: &str) -> Result<Self> {
        let parsed = AutoSpec::parse(spec, ModelRegistry::global())?;
        let task = parsed.task.unwrap_or(AutoTask::Ranking);
        Self::with(spec, parsed, task, None)
    }

    /// `auto` as an evaluation under `outer` fits it: the task follows the protocol and the
    /// validation rows are carved from each training set by a protocol of the same kind.
    pub fn for_protocol(spec: &str, outer: &Protocol) -> Result<Self> {
        let parsed = AutoSpec::parse(spec, ModelRegistry::global())?;
        let task = parsed.task_under(outer.is_rating_prediction(), spec)?;
        let validation = crate::tune::validation_protocol(outer)?;
        Self::with(spec, parsed, task, Some(validation))
    }

    fn with(
        spec: &str,
        parsed: AutoSpec,
        task: AutoTask,
        validation: Option<Protocol>,
    ) -> Result<Self> {
        Ok(Self {
            spec: spec.trim().to_owned(),
            metric: parsed.metric_for(task, spec)?,
            parsed,
            task,
            validation,
        })
    }

    /// The validation protocol for training rows without an outer protocol: ratings are
    /// predicted on a fifth of them (k-fold's first fold); lists are judged on the most recent
    /// fifth where the rows carry times, on a random fifth otherwise.
    fn default_validation(&self, train: &TrainSet) -> Result<Protocol> {
        let spec = match self.task {
            AutoTask::Rating => "kfold:5",
            AutoTask::Ranking if train.data.has_timestamps() => "temporal:0.2",
            AutoTask::Ranking => "random:0.2",
        };
        Protocol::parse(spec)
    }
}

impl Algorithm for AutoAlgorithm {
    fn name(&self) -> &'static str {
        super::spec::AUTO
    }

    fn params(&self) -> serde_json::Value {
        serde_json::json!({
            "spec": self.spec,
            "task": self.task.name(),
            "metric": self.metric,
            "budget": self.parsed.budget_seconds,
            "families": self.parsed.families,
            "trials": self.parsed.trials,
        })
    }

    fn fit(&self, train: &TrainSet, ctx: &FitContext) -> Result<Box<dyn Model>> {
        if train.data.is_empty() {
            return Err(Error::InvalidInput("auto: no training rows".into()));
        }
        if self.task == AutoTask::Rating && !train.data.has_ratings() {
            return Err(Error::InvalidInput(
                "auto: task=rating needs explicit ratings, and these rows have none; use task=ranking".into(),
            ));
        }
        let validation = match &self.validation {
            Some(p) => p.clone(),
            None => self.default_validation(train)?,
        };
        let registry = ModelRegistry::global();
        let shape = DataShape {
            users: train.data.n_users(),
            items: train.data.n_items(),
            interactions: train.data.len(),
        };
        let traits = DataTraits {
            has_ratings: train.data.has_ratings(),
            has_item_features: train.item_features.is_some(),
        };
        let (tried, skipped) = candidates(
            registry,
            self.task,
            self.parsed.families.as_deref(),
            &shape,
            traits,
            self.parsed.budget_seconds,
            available_memory(),
        );
        let dataset = Dataset {
            name: "auto: training rows".to_owned(),
            interactions: train.data.clone(),
            item_features: train.item_features.clone(),
            user_features: train.user_features.clone(),
        };
        let settings = SelectSettings {
            task: self.task.name(),
            metric: self.metric.clone(),
            k: metric_cutoff(&self.metric).unwrap_or(10),
            lower_is_better: lower_is_better(&self.metric),
            budget_seconds: self.parsed.budget_seconds,
            max_trials_per_family: self.parsed.trials,
            seed: ctx.seed,
            threads: ctx.threads.max(1),
            cancel: ctx.cancel.clone(),
            progress: Arc::clone(&ctx.progress),
        };
        let mut selection = select(&dataset, &validation, tried, skipped, &settings)?;
        ctx.cancel.check()?;
        let winner = registry.build(&selection.chosen)?;
        ctx.progress
            .begin(&format!("auto: refit {} on all rows", selection.chosen), 0);
        let started = Instant::now();
        let model = winner.fit(train, ctx)?;
        ctx.progress.finish();
        selection.refit_seconds = started.elapsed().as_secs_f64();
        let trace = serde_json::to_value(&selection)
            .map_err(|e| Error::InvalidInput(format!("auto: selection trace as JSON: {e}")))?;
        Ok(Box::new(SelectedModel {
            inner: model,
            selection: trace,
        }))
    }
}

/// The winner's model with the trace of how it was chosen. Everything else is the winner's:
/// name, parameters, scores, and the saved artifact (which loads back as the winner's family).
pub struct SelectedModel {
    inner: Box<dyn Model>,
    selection: serde_json::Value,
}

impl Model for SelectedModel {
    fn name(&self) -> &'static str {
        self.inner.name()
    }
    fn params(&self) -> serde_json::Value {
        self.inner.params()
    }
    fn fitted(&self) -> &Fitted {
        self.inner.fitted()
    }
    fn predict(&self, user: UserIdx, item: ItemIdx) -> Option<f32> {
        self.inner.predict(user, item)
    }
    fn score(&self, query: &UserQuery<'_>, items: &[ItemIdx], out: &mut [f32]) {
        self.inner.score(query, items, out)
    }
    fn score_all(&self, query: &UserQuery<'_>, out: &mut [f32]) {
        self.inner.score_all(query, out)
    }
    fn recommend(&self, query: &UserQuery<'_>, k: usize, filter: &dyn ItemFilter) -> Vec<Scored> {
        self.inner.recommend(query, k, filter)
    }
    fn item_embeddings(&self) -> Option<(usize, &[f32])> {
        self.inner.item_embeddings()
    }
    fn user_embeddings(&self) -> Option<(usize, &[f32])> {
        self.inner.user_embeddings()
    }
    fn selection(&self) -> Option<&serde_json::Value> {
        Some(&self.selection)
    }
    fn save(&self, dir: &Path) -> Result<()> {
        self.inner.save(dir)?;
        Manifest::record_selection(dir, self.selection.clone())
    }
}
