//! The running experiments a server assigns users to, reloaded from the store when they change
//! (here or in another process), and the deterministic assignment of a user.
//!
//! A user is in an experiment when their traffic bucket (a hash of the user and `<salt>#traffic`,
//! independent of the variant hash) is below its traffic share; then
//! [`Allocation::assign`](kindred_stats::experiment::Allocation::assign) picks the variant.
//! Experiments are tried in the order they started and the first that takes the user wins, so
//! concurrent experiments never share a user (later ones see the users earlier ones left).

use std::sync::Arc;

use arc_swap::ArcSwap;
use kindred_core::Result;
use kindred_stats::experiment::Allocation;
use kindred_store::{ExperimentRecord, ExperimentStatus, Store};

use super::definition::ExperimentDefinition;

/// A running experiment, parsed once.
#[derive(Debug, Clone)]
pub struct RunningExperiment {
    pub definition: ExperimentDefinition,
    pub allocation: Allocation,
    /// Unix seconds.
    pub started_at: i64,
}

/// Where a request's user falls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    pub experiment: String,
    pub variant: String,
    /// The model version that scores the list (None: the live one).
    pub model_version: Option<String>,
    /// The rank config of the list (None: the request's).
    pub rank: Option<String>,
}

/// Parses a stored definition (written by this server, so a failure means corruption or a
/// definition written by a newer server).
pub fn parse(record: &ExperimentRecord) -> Result<ExperimentDefinition> {
    serde_json::from_value(record.definition.clone()).map_err(|e| {
        kindred_core::Error::InvalidInput(format!(
            "stored definition of experiment {:?} does not parse: {e}",
            record.name
        ))
    })
}

/// The running set, swapped atomically when it changes.
#[derive(Default)]
pub struct Experiments {
    running: ArcSwap<Vec<RunningExperiment>>,
    /// (name, status) of every stored experiment at the last reload: what the poll compares.
    stamp: std::sync::Mutex<Vec<(String, ExperimentStatus)>>,
    /// Held across a whole reload (the store read and the swap), so that a reload that read
    /// the store earlier cannot overwrite the set a later one installed (the background poll
    /// racing a request that just started an experiment).
    reloading: tokio::sync::Mutex<()>,
}

impl Experiments {
    /// The running experiments, in start order.
    pub fn running(&self) -> Arc<Vec<RunningExperiment>> {
        self.running.load_full()
    }

    /// Model versions the running experiments serve (besides the live one).
    pub fn model_versions(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .running()
            .iter()
            .flat_map(|e| e.definition.variants.iter())
            .filter_map(|v| v.model_version.clone())
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// Reads the experiments from the store; returns whether the running set changed.
    pub async fn reload(&self, store: &Store) -> Result<bool> {
        let _reloading = self.reloading.lock().await;
        let records = store.list_experiments().await?;
        let stamp: Vec<(String, ExperimentStatus)> =
            records.iter().map(|r| (r.name.clone(), r.status)).collect();
        {
            let mut current = self.stamp.lock().unwrap_or_else(|p| p.into_inner());
            if *current == stamp {
                return Ok(false);
            }
            *current = stamp;
        }
        let mut running = Vec::new();
        for record in records
            .iter()
            .filter(|r| r.status == ExperimentStatus::Running)
        {
            let definition = parse(record)?;
            running.push(RunningExperiment {
                allocation: definition.allocation()?,
                definition,
                started_at: record.started_at.unwrap_or(record.created_at),
            });
        }
        running.sort_by(|a, b| {
            (a.started_at, &a.definition.name).cmp(&(b.started_at, &b.definition.name))
        });
        self.running.store(Arc::new(running));
        Ok(true)
    }

    /// The experiment and variant `user` is in, if any.
    pub fn assign(&self, user: &str) -> Option<Assignment> {
        let running = self.running.load();
        assign_in(&running, user)
    }
}

/// [`Experiments::assign`] over a given running set.
pub fn assign_in(running: &[RunningExperiment], user: &str) -> Option<Assignment> {
    running.iter().find_map(|e| {
        let d = &e.definition;
        let in_traffic = d.traffic >= 1.0
            || Allocation::bucket(user, &format!("{}#traffic", d.salt())) < d.traffic;
        if !in_traffic {
            return None;
        }
        let variant = e.allocation.assign(user, d.salt());
        let v = d.variant(variant)?;
        Some(Assignment {
            experiment: d.name.clone(),
            variant: v.name.clone(),
            model_version: v.model_version.clone(),
            rank: v.rank.clone(),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn running(name: &str, traffic: f64, weights: [f64; 2], started_at: i64) -> RunningExperiment {
        let definition: ExperimentDefinition = serde_json::from_value(serde_json::json!({
            "name": name,
            "variants": [
                {"name": "control", "weight": weights[0]},
                {"name": "treatment", "model_version": "v2", "weight": weights[1]}
            ],
            "traffic": traffic,
            "success_metric": "click_any"
        }))
        .unwrap();
        RunningExperiment {
            allocation: definition.allocation().unwrap(),
            definition,
            started_at,
        }
    }

    #[test]
    fn assignment_is_stable_and_follows_traffic_and_weights() {
        let set = vec![running("e", 0.2, [1.0, 3.0], 1)];
        let users: Vec<String> = (0..20_000).map(|u| format!("user{u}")).collect();
        let assigned: Vec<Option<Assignment>> = users.iter().map(|u| assign_in(&set, u)).collect();
        for (u, a) in users.iter().zip(&assigned).take(500) {
            assert_eq!(&assign_in(&set, u), a, "same user, same answer");
        }
        let inside = assigned.iter().flatten().count() as f64 / users.len() as f64;
        assert!((inside - 0.2).abs() < 0.015, "traffic share {inside}");
        let treated = assigned
            .iter()
            .flatten()
            .filter(|a| a.variant == "treatment")
            .count() as f64
            / assigned.iter().flatten().count() as f64;
        assert!((treated - 0.75).abs() < 0.03, "treatment share {treated}");
        let t = assigned
            .iter()
            .flatten()
            .find(|a| a.variant == "treatment")
            .unwrap();
        assert_eq!(t.model_version.as_deref(), Some("v2"));
    }

    #[test]
    fn the_first_started_experiment_that_takes_a_user_wins() {
        let set = vec![
            running("first", 1.0, [1.0, 1.0], 1),
            running("second", 1.0, [1.0, 1.0], 2),
        ];
        assert!((0..100).all(|u| assign_in(&set, &format!("u{u}")).unwrap().experiment == "first"));
    }
}
