//! The background loop that keeps the snapshot current until shutdown: follows a version made
//! live elsewhere, rebuilds the catalog after item writes, picks up experiments started by
//! another process, checks new versions' offline charts and retrains on the configured interval
//! or, with `[training] retrain_on_drift`, when a drift or skew alert fires. On every tick the
//! contextual bandits learn from the lists whose attribution window closed.

use std::sync::Arc;
use std::time::Duration;

use crate::lifecycle::training;
use crate::lifecycle::Lifecycle;
use crate::state::ServingState;

/// Keeps the snapshot current until `shutdown` fires: polls the registry for a version made
/// live elsewhere (`kindred train --publish`, another server), rebuilds the catalog after
/// item writes, and retrains on the configured interval.
pub async fn run(
    state: Arc<ServingState>,
    lifecycle: Arc<Lifecycle>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let watch = Duration::from_millis(state.config.watch_interval_ms.max(10));
    let refresh = Duration::from_millis(state.config.catalog_refresh_ms);
    let retrain = state.config.training.interval_seconds;
    let mut next_train =
        (retrain > 0).then(|| tokio::time::Instant::now() + Duration::from_secs(retrain));
    let mut ticker = tokio::time::interval(watch);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let train_at = next_train;
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = ticker.tick() => {
                if let Err(e) = state.follow_live_version().await {
                    tracing::warn!(error = %e, "checking the live model version failed");
                }
                // Versions registered by another process (`kindred train --store`).
                if let Err(e) = lifecycle.check_offline_charts().await {
                    tracing::warn!(error = %e, "checking the offline control charts failed");
                }
                learn_bandits(&state).await;
                // Experiments started or stopped by another process.
                if let Err(e) = state.reload_experiments().await {
                    tracing::warn!(error = %e, "checking experiments failed");
                }
                if let Some(alert) = lifecycle.drift_retrain_due(crate::clock::unix_now()) {
                    tracing::info!(subject = %alert.alert.subject, "retraining: a drift alert fired");
                    scheduled_training(&state, &lifecycle).await;
                }
            }
            _ = state.catalog_change() => {
                tokio::select! {
                    _ = shutdown.changed() => return,
                    _ = tokio::time::sleep(refresh) => {}
                }
                if let Err(e) = state.rebuild().await {
                    tracing::warn!(error = %e, "catalog rebuild failed");
                }
            }
            _ = async {
                match train_at {
                    Some(t) => tokio::time::sleep_until(t).await,
                    None => std::future::pending().await,
                }
            } => {
                next_train = Some(tokio::time::Instant::now() + Duration::from_secs(retrain));
                scheduled_training(&state, &lifecycle).await;
            }
        }
    }
}

/// Closes the contextual bandits' attribution windows, rebuilds their posteriors and shares
/// what they learned through the store (see `exploration/learner.rs`).
async fn learn_bandits(state: &Arc<ServingState>) {
    if state.bandits.is_empty() {
        return;
    }
    let now = crate::clock::unix_now();
    let flushes = state.bandits.tick(now);
    let refreshing = Arc::clone(state);
    if let Err(e) = tokio::task::spawn_blocking(move || refreshing.bandits.refresh_stale()).await {
        tracing::warn!(error = %e, "rebuilding the bandits' posteriors failed");
    }
    for flush in flushes {
        let policy = flush.policy.clone();
        let tombstones = Arc::clone(state);
        let erased = Arc::new(move |id: &str| {
            let erasures = tombstones.erasures();
            erasures.items() > 0 && erasures.item_erased(id)
        });
        if let Err(e) = state.bandits.flush(&state.store, flush, now, erased).await {
            tracing::warn!(error = %e, policy, "storing a bandit's learned state failed");
        }
    }
}

async fn scheduled_training(state: &ServingState, lifecycle: &Lifecycle) {
    let live = match state.store.live_model().await {
        Ok(live) => live,
        Err(e) => {
            tracing::warn!(error = %e, "scheduled training: registry unavailable");
            return;
        }
    };
    let trained = live.as_ref().and_then(training::trained_events);
    let events = match state.store.counts().await {
        Ok(c) => c.feedback,
        Err(e) => {
            tracing::warn!(error = %e, "scheduled training: store unavailable");
            return;
        }
    };
    let new_events = events.saturating_sub(trained.unwrap_or(0));
    if live.is_some() && new_events < state.config.training.min_new_events {
        tracing::info!(
            new_events,
            "scheduled training skipped: too little new feedback"
        );
        return;
    }
    let spec = match lifecycle.spec(None, None, None) {
        Ok(spec) => spec,
        Err(e) => {
            tracing::error!(error = %e, "scheduled training: the configured spec is invalid");
            return;
        }
    };
    match lifecycle.train(&spec, true).await {
        Ok(Some(record)) => {
            tracing::info!(version = %record.model.version, "scheduled training published")
        }
        Ok(None) => tracing::info!("scheduled training skipped: a run is in progress"),
        Err(e) => tracing::error!(error = %e, "scheduled training failed"),
    }
}
