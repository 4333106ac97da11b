//! Monitoring inside the server (issue 8): online metrics of served lists per (model version,
//! variant), a loop that measures drift and data quality over the stored feedback and judges
//! the online metrics, and alerts (log, ring for `/v1/alerts`, webhooks, Prometheus).
//!
//! [`Monitor`] is shared by the services: lists and feedback feed [`online::OnlineMetrics`], the
//! lifecycle raises offline alerts in [`alerts::AlertSink`]. A pass reads only what it is given,
//! the store and the [`LiveSnapshot`], never the whole serving state; [`Monitor::run_loop`] runs
//! one every `monitoring.interval_seconds` beside the background loop, and
//! `POST /v1/monitoring/run` runs one now.

pub mod alerts;
pub mod drift;
pub mod online;
pub mod prometheus;
pub mod skew;
pub mod webhook;

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kindred_store::{Feedback, Store};

use crate::clock::unix_now;
use crate::config::MonitoringConfig;
use crate::error::{Error, Result};
use crate::live_snapshot::LiveSnapshot;
use crate::sync::lock;
use alerts::AlertSink;
use drift::PassReport;
use online::OnlineMetrics;

/// The server's monitoring state.
pub struct Monitor {
    config: MonitoringConfig,
    pub online: OnlineMetrics,
    pub alerts: Arc<AlertSink>,
    /// Serving-side feature counts for the skew check.
    pub skew: skew::SkewObserver,
    latest: Mutex<Option<Arc<PassReport>>>,
    /// Latest feedback timestamp posted to this server (for `window_end = "latest_event"`).
    latest_posted: AtomicI64,
    pub passes: AtomicU64,
    pub pass_failures: AtomicU64,
    pass_lock: tokio::sync::Mutex<()>,
}

impl Monitor {
    pub fn new(config: &MonitoringConfig) -> Self {
        Self {
            config: config.clone(),
            online: OnlineMetrics::new(config),
            alerts: Arc::new(AlertSink::new(config)),
            skew: skew::SkewObserver::default(),
            latest: Mutex::new(None),
            latest_posted: AtomicI64::new(i64::MIN),
            passes: AtomicU64::new(0),
            pass_failures: AtomicU64::new(0),
            pass_lock: tokio::sync::Mutex::new(()),
        }
    }

    /// Feedback stored by the feedback route: attribution and the latest event time.
    pub fn record_feedback(&self, events: &[Feedback]) {
        if let Some(latest) = events.iter().map(|e| e.timestamp).max() {
            self.latest_posted.fetch_max(latest, Ordering::Relaxed);
        }
        self.online.record_feedback(events);
    }

    /// The latest pass's report.
    pub fn latest(&self) -> Option<Arc<PassReport>> {
        lock(&self.latest).clone()
    }

    /// The monitoring config it runs with.
    pub fn config(&self) -> &MonitoringConfig {
        &self.config
    }

    /// Runs one monitoring pass now over `store` and the served snapshot, and keeps its report.
    pub async fn run_pass(&self, store: &Store, live: &LiveSnapshot) -> Result<Arc<PassReport>> {
        let _guard = self.pass_lock.lock().await;
        let result = self.pass(store, live).await;
        match &result {
            Ok(report) => {
                self.passes.fetch_add(1, Ordering::Relaxed);
                *lock(&self.latest) = Some(Arc::clone(report));
            }
            Err(e) => {
                self.pass_failures.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, "monitoring pass failed");
            }
        }
        result
    }

    async fn pass(&self, store: &Store, live: &LiveSnapshot) -> Result<Arc<PassReport>> {
        let started = Instant::now();
        let config = self.config.clone();
        let now = unix_now();
        let snapshot = live.load();
        let stored_latest = snapshot
            .data
            .interactions
            .timestamps()
            .iter()
            .copied()
            .max();
        let posted = self.latest_posted.load(Ordering::Relaxed);
        let latest = stored_latest.max((posted != i64::MIN).then_some(posted));
        let end = drift::window_end(&config, now, latest);
        let (mut events_read, mut truncated, mut report) = (0, false, None);
        if let Some(end) = end {
            let since = end - config.reference_seconds - config.current_seconds;
            let mut stored = store
                .newest_feedback_between(since, end, config.max_events.saturating_add(1))
                .await?;
            if stored.len() > config.max_events {
                // The store answered the newest events: dropping the oldest keeps the current window
                // whole and cuts only the start of the reference window.
                stored.drain(..stored.len() - config.max_events);
                truncated = true;
                tracing::warn!(
                    max_events = config.max_events,
                    "monitoring read only the newest max_events events of its windows"
                );
            }
            events_read = stored.len();
            let job_config = config.clone();
            let data = std::sync::Arc::clone(&snapshot.data);
            report = tokio::task::spawn_blocking(move || {
                let events = drift::to_events(&stored);
                let mut report = drift::window_report(&events, &job_config, end)?;
                if let Some(report) = report.as_mut() {
                    drift::add_feature_drift(report, &stored, &data, &job_config)?;
                }
                Ok::<_, kindred_core::Error>(report)
            })
            .await
            .map_err(|e| Error::Task(e.to_string()))??;
        }
        let online = self.online.report(snapshot.items.len());
        let online_alerts = drift::online_alerts(&online, &config);
        let skew_alerts = self
            .skew
            .counts()
            .map(|counts| {
                skew::skew_alerts(
                    &counts.version,
                    &counts.columns,
                    config.min_observations,
                    config.psi_max,
                    kindred_stats::monitoring::psi::PSI_EPSILON,
                )
            })
            .unwrap_or_default();
        let mut all = report
            .as_ref()
            .map(|r| r.alerts.clone())
            .unwrap_or_default();
        all.extend(online_alerts.iter().cloned());
        all.extend(skew_alerts.iter().cloned());
        let fresh = self.alerts.raise(all, now);
        let report = PassReport {
            at: now,
            window_end: config.window_end,
            events_read,
            truncated,
            report,
            online_alerts,
            skew_alerts,
            new_alert_ids: fresh.iter().map(|r| r.id).collect(),
            millis: started.elapsed().as_millis() as u64,
        };
        tracing::info!(
            events = report.events_read,
            new_alerts = report.new_alert_ids.len(),
            millis = report.millis,
            "monitoring pass"
        );
        Ok(Arc::new(report))
    }

    /// Runs a pass every `monitoring.interval_seconds` (the first one interval after start) until
    /// `shutdown` fires; returns at once when monitoring is disabled.
    pub async fn run_loop(
        self: Arc<Self>,
        store: Store,
        live: LiveSnapshot,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        if !self.config.enabled {
            return;
        }
        let every = Duration::from_secs(self.config.interval_seconds.max(1));
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = ticker.tick() => {
                    // Errors are counted and logged inside.
                    let _ = self.run_pass(&store, &live).await;
                }
            }
        }
    }
}
