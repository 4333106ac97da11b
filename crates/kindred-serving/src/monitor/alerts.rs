//! Where alerts go: every new alert is logged (`tracing::warn!`), kept in an in-memory ring for
//! `/v1/alerts` and the dashboard, counted by kind for Prometheus, and POSTed as JSON to each
//! configured webhook on a task of its own (the monitoring loop never waits for a webhook).
//!
//! The same alert (kind + subject) firing again within the cooldown after it was last seen
//! updates its entry (value, message, `last_seen`, `count`) instead of raising a new one, so a
//! drift that persists for hours is one alert, not one per pass.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kindred_stats::monitoring::{Alert, AlertKind};
use serde::Serialize;

use super::webhook;
use crate::config::MonitoringConfig;
use crate::sync::lock;

/// One alert as kept and shown.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlertRecord {
    /// Increasing id of this server's alerts.
    pub id: u64,
    #[serde(flatten)]
    pub alert: Alert,
    /// Unix seconds of the first and the latest firing.
    pub first_seen: i64,
    pub last_seen: i64,
    /// Firings folded into this entry.
    pub count: u64,
}

/// The snake_case name of an alert kind (labels, logs).
pub fn kind_name(kind: AlertKind) -> &'static str {
    match kind {
        AlertKind::Drift => "drift",
        AlertKind::Quality => "quality",
        AlertKind::ControlChart => "control_chart",
        AlertKind::Online => "online",
        AlertKind::QualityGate => "quality_gate",
        AlertKind::FeatureSkew => "feature_skew",
    }
}

/// Webhook delivery counters, shared with the delivery tasks.
#[derive(Debug, Default)]
pub struct WebhookCounters {
    pub sent: AtomicU64,
    pub failures: AtomicU64,
}

/// The alert ring, its counters and the webhooks.
pub struct AlertSink {
    ring: Mutex<VecDeque<AlertRecord>>,
    capacity: usize,
    cooldown_seconds: i64,
    next_id: AtomicU64,
    totals: Mutex<BTreeMap<&'static str, u64>>,
    webhooks: Vec<String>,
    webhook_timeout: Duration,
    pub webhook_counters: Arc<WebhookCounters>,
}

impl AlertSink {
    pub fn new(config: &MonitoringConfig) -> Self {
        Self {
            ring: Mutex::new(VecDeque::new()),
            capacity: config.alert_history.max(1),
            cooldown_seconds: config.alert_cooldown_seconds,
            next_id: AtomicU64::new(1),
            totals: Mutex::new(BTreeMap::new()),
            webhooks: config.webhooks.clone(),
            webhook_timeout: Duration::from_millis(config.webhook_timeout_ms.max(1)),
            webhook_counters: Arc::new(WebhookCounters::default()),
        }
    }

    /// Takes the alerts of one pass at `now`; returns the ones that are new (not folded into an
    /// entry within the cooldown). New alerts are logged and sent to the webhooks; call from a
    /// tokio runtime when webhooks are configured.
    pub fn raise(&self, alerts: Vec<Alert>, now: i64) -> Vec<AlertRecord> {
        let mut fresh = Vec::new();
        {
            let mut ring = lock(&self.ring);
            for alert in alerts {
                let repeat = ring.iter_mut().rev().find(|r| {
                    r.alert.kind == alert.kind
                        && r.alert.subject == alert.subject
                        && now - r.last_seen <= self.cooldown_seconds
                });
                if let Some(entry) = repeat {
                    tracing::debug!(kind = kind_name(alert.kind), subject = %alert.subject, value = alert.value, "alert still firing");
                    entry.alert = alert;
                    entry.last_seen = now;
                    entry.count += 1;
                    continue;
                }
                let record = AlertRecord {
                    id: self.next_id.fetch_add(1, Ordering::Relaxed),
                    alert,
                    first_seen: now,
                    last_seen: now,
                    count: 1,
                };
                ring.push_back(record.clone());
                if ring.len() > self.capacity {
                    ring.pop_front();
                }
                fresh.push(record);
            }
        }
        for record in &fresh {
            let a = &record.alert;
            tracing::warn!(
                id = record.id,
                kind = kind_name(a.kind),
                subject = %a.subject,
                value = a.value,
                limit = a.limit,
                "alert: {}",
                a.message
            );
            *lock(&self.totals).entry(kind_name(a.kind)).or_default() += 1;
            self.deliver(record);
        }
        fresh
    }

    /// Sends one alert to every webhook, each on a task of its own.
    fn deliver(&self, record: &AlertRecord) {
        if self.webhooks.is_empty() {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!("alert webhooks skipped: no async runtime");
            self.webhook_counters
                .failures
                .fetch_add(self.webhooks.len() as u64, Ordering::Relaxed);
            return;
        };
        let body = match serde_json::to_string(&serde_json::json!({ "alert": record })) {
            Ok(body) => body,
            Err(e) => {
                tracing::warn!(error = %e, "alert could not be serialised for webhooks");
                return;
            }
        };
        for url in &self.webhooks {
            let (url, body) = (url.clone(), body.clone());
            let counters = Arc::clone(&self.webhook_counters);
            let timeout = self.webhook_timeout;
            runtime.spawn(async move {
                match webhook::post_json(&url, body, timeout).await {
                    Ok(_) => {
                        counters.sent.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        counters.failures.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(error = %e, "alert webhook failed");
                    }
                }
            });
        }
    }

    /// The kept alerts, newest first, at most `limit`.
    pub fn recent(&self, limit: usize) -> Vec<AlertRecord> {
        lock(&self.ring).iter().rev().take(limit).cloned().collect()
    }

    /// New alerts raised so far, by kind.
    pub fn totals(&self) -> BTreeMap<&'static str, u64> {
        lock(&self.totals).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(kind: AlertKind, subject: &str, value: f64) -> Alert {
        Alert {
            kind,
            subject: subject.into(),
            value,
            limit: 0.25,
            window: None,
            message: format!("{subject} = {value}"),
        }
    }

    fn sink(capacity: usize) -> AlertSink {
        AlertSink::new(&MonitoringConfig {
            alert_history: capacity,
            alert_cooldown_seconds: 100,
            ..MonitoringConfig::default()
        })
    }

    #[test]
    fn repeats_within_the_cooldown_update_one_entry() {
        let s = sink(10);
        let fresh = s.raise(vec![alert(AlertKind::Drift, "item_popularity", 0.3)], 1_000);
        assert_eq!(fresh.len(), 1);
        // Same kind + subject within 100 s of the last firing: folded, even 150 s after the
        // first one (the cooldown runs from the latest firing).
        assert!(s
            .raise(vec![alert(AlertKind::Drift, "item_popularity", 0.4)], 1_080)
            .is_empty());
        assert!(s
            .raise(vec![alert(AlertKind::Drift, "item_popularity", 0.5)], 1_150)
            .is_empty());
        // Another subject or kind is new.
        let other = s.raise(
            vec![
                alert(AlertKind::Drift, "user_activity", 0.3),
                alert(AlertKind::Quality, "item_popularity", 0.3),
            ],
            1_150,
        );
        assert_eq!(other.len(), 2);
        let recent = s.recent(10);
        assert_eq!(recent.len(), 3);
        let popularity = recent
            .iter()
            .find(|r| r.alert.kind == AlertKind::Drift && r.alert.subject == "item_popularity")
            .unwrap();
        assert_eq!(popularity.count, 3);
        assert_eq!(
            (popularity.first_seen, popularity.last_seen),
            (1_000, 1_150)
        );
        assert_eq!(popularity.alert.value, 0.5);
        // After the cooldown the same alert is new again.
        let again = s.raise(vec![alert(AlertKind::Drift, "item_popularity", 0.3)], 1_251);
        assert_eq!(again.len(), 1);
        assert_eq!(s.totals().get("drift"), Some(&3));
        assert_eq!(s.totals().get("quality"), Some(&1));
        // Newest first.
        assert_eq!(s.recent(1)[0].id, again[0].id);
    }

    #[test]
    fn the_ring_keeps_the_newest_entries() {
        let s = sink(2);
        for i in 0..5 {
            s.raise(vec![alert(AlertKind::Quality, &format!("c{i}"), 1.0)], 0);
        }
        let subjects: Vec<String> = s.recent(10).into_iter().map(|r| r.alert.subject).collect();
        assert_eq!(subjects, ["c4", "c3"]);
        assert_eq!(s.totals().get("quality"), Some(&5));
    }

    #[tokio::test]
    async fn new_alerts_reach_the_webhooks_and_failures_are_counted() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        // A port with nothing listening: bind, note, drop.
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let s = AlertSink::new(&MonitoringConfig {
            webhooks: vec![format!("http://{addr}/alerts"), format!("http://{closed}/")],
            ..MonitoringConfig::default()
        });
        let server = tokio::spawn(crate::monitor::webhook::tests::one_request(
            listener, "200 OK",
        ));
        s.raise(vec![alert(AlertKind::Drift, "item_popularity", 0.3)], 7);
        let raw = tokio::time::timeout(Duration::from_secs(10), server)
            .await
            .unwrap()
            .unwrap();
        assert!(raw.contains("\"subject\":\"item_popularity\""), "{raw}");
        assert!(raw.contains("\"kind\":\"drift\""), "{raw}");
        let counters = Arc::clone(&s.webhook_counters);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while counters.sent.load(Ordering::Relaxed) + counters.failures.load(Ordering::Relaxed) < 2
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(counters.sent.load(Ordering::Relaxed), 1);
        assert_eq!(counters.failures.load(Ordering::Relaxed), 1);
    }
}
