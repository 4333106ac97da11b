//! `GET /v1/experiments/{name}/results`: reads the experiment's rows from the store, attributes
//! feedback ([`super::attribution`]) and runs the statistics of `kindred_stats::experiment`.

use kindred_core::Result;
use kindred_stats::experiment::{analyze, AnalysisOptions};
use kindred_store::{ExperimentRecord, Store};
use serde_json::{json, Value};

use super::attribution::{observations, ExperimentRows};
use super::running::parse;

/// The analysis of `record` as of `now` (Unix seconds): the `ExperimentReport` under
/// `report` (null before any user was exposed, or when the data cannot be analysed yet, with
/// the reason under `not_analysed`), plus exposure, impression and attribution counts.
pub async fn experiment_results(
    store: &Store,
    record: &ExperimentRecord,
    now: i64,
) -> Result<Value> {
    let definition = parse(record)?;
    let mut rows = ExperimentRows::default();
    if let Some(start) = record.started_at {
        let window = definition.attribution_window_seconds;
        // Feedback after the stop still counts for lists shown before it, within the window.
        let until = record
            .stopped_at
            .map_or(now, |s| s.saturating_add(window))
            .saturating_add(1);
        rows.exposures = store.exposures(&record.name).await?;
        rows.impressions = store.experiment_impressions(&record.name).await?;
        rows.feedback = store
            .experiment_feedback(&record.name, start, until)
            .await?;
        if let Some(pre) = definition.pre_period_seconds {
            rows.pre_feedback = store
                .experiment_feedback(&record.name, start.saturating_sub(pre), start)
                .await?;
        }
    }
    let (units, counts) = observations(&definition, &rows)?;
    let options = AnalysisOptions {
        control: definition.variants.first().map(|v| v.name.clone()),
        metrics: definition.metrics(),
        alpha: definition.alpha,
        weights: Some(definition.weights()),
        planned_units_per_variant: definition.planned_users_per_variant,
        ..AnalysisOptions::default()
    };
    let (report, not_analysed) = if units.is_empty() {
        (Value::Null, Some("no user has been exposed yet".to_owned()))
    } else {
        match analyze(&units, &options) {
            Ok(report) => (serde_json::to_value(report).unwrap_or(Value::Null), None),
            // Too little data (one variant seen, no variance) is a state, not a server error.
            Err(e) => (Value::Null, Some(e.to_string())),
        }
    };
    Ok(json!({
        "experiment": record.name,
        "status": record.status,
        "started_at": record.started_at,
        "stopped_at": record.stopped_at,
        "users": units.len(),
        "counts": counts,
        "report": report,
        "not_analysed": not_analysed,
    }))
}
