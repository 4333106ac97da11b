//! `feedback` mode: `POST /v1/feedback` batches of unique events over a few connections, as
//! fast as the server acknowledges them. Request bodies are built before the clock starts.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::time::Instant;

use crate::stats::{round3, Latencies, StatusCounts};
use crate::{LoadError, SplitMix64};
use kindred_http_client::{post_request, Connection};

pub struct FeedbackPlan {
    pub addr: SocketAddr,
    pub connections: usize,
    pub events: usize,
    pub batch: usize,
    pub users: Vec<String>,
    pub items: Vec<String>,
    /// Prefix of every event id, so that runs against one store do not collide.
    pub run_id: String,
    pub seed: u64,
}

/// The `POST /v1/feedback` request for events `first..first + count`.
pub fn batch_request(
    plan: &FeedbackPlan,
    rng: &mut SplitMix64,
    first: usize,
    count: usize,
    timestamp: i64,
) -> Vec<u8> {
    let events: Vec<Value> = (first..first + count)
        .map(|n| {
            json!({
                "user": plan.users[rng.below(plan.users.len())],
                "item": plan.items[rng.below(plan.items.len())],
                "type": "rating",
                "value": 1 + rng.below(5),
                "timestamp": timestamp,
                "event_id": format!("{}-{n}", plan.run_id),
            })
        })
        .collect();
    let body = serde_json::to_vec(&events).unwrap_or_default();
    post_request("/v1/feedback", &body)
}

#[derive(Default)]
struct WorkerResult {
    statuses: StatusCounts,
    latency: Latencies,
    errors: u64,
    acknowledged_events: u64,
    inserted: u64,
    duplicates: u64,
}

async fn worker(
    addr: SocketAddr,
    batches: Arc<Vec<(usize, Vec<u8>)>>,
    next: Arc<AtomicUsize>,
    mut connection: Option<Connection>,
) -> WorkerResult {
    let mut result = WorkerResult::default();
    loop {
        let index = next.fetch_add(1, Ordering::Relaxed);
        let Some((count, request)) = batches.get(index) else {
            break;
        };
        if connection.is_none() {
            connection = Connection::connect(addr).await.ok();
        }
        let Some(c) = connection.as_mut() else {
            result.errors += 1;
            continue;
        };
        let sent = Instant::now();
        match tokio::time::timeout(Duration::from_secs(30), c.exchange(request)).await {
            Ok(Ok(head)) => {
                result.latency.record(sent.elapsed());
                result.statuses.add(head.status);
                if (200..300).contains(&head.status) {
                    result.acknowledged_events += *count as u64;
                    if let Ok(answer) = serde_json::from_slice::<Value>(c.body(&head)) {
                        result.inserted += answer["inserted"].as_u64().unwrap_or(0);
                        result.duplicates += answer["duplicates"].as_u64().unwrap_or(0);
                    }
                }
                if c.must_close() {
                    connection = None;
                }
            }
            _ => {
                result.errors += 1;
                connection = None;
            }
        }
    }
    result
}

pub async fn run(plan: FeedbackPlan) -> Result<Value, LoadError> {
    let timestamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let mut rng = SplitMix64::new(plan.seed);
    let batches: Vec<(usize, Vec<u8>)> = (0..plan.events)
        .step_by(plan.batch)
        .map(|first| {
            let count = plan.batch.min(plan.events - first);
            (
                count,
                batch_request(&plan, &mut rng, first, count, timestamp),
            )
        })
        .collect();
    let batches = Arc::new(batches);
    let next = Arc::new(AtomicUsize::new(0));
    let mut connections = Vec::with_capacity(plan.connections);
    for _ in 0..plan.connections {
        connections.push(
            Connection::connect(plan.addr)
                .await
                .map_err(|e| LoadError(format!("connecting to {}: {e}", plan.addr)))?,
        );
    }
    let cpu_before = crate::stats::process_cpu_seconds();
    let start = Instant::now();
    let workers: Vec<_> = connections
        .into_iter()
        .map(|c| {
            tokio::spawn(worker(
                plan.addr,
                Arc::clone(&batches),
                Arc::clone(&next),
                Some(c),
            ))
        })
        .collect();
    let mut all = WorkerResult::default();
    for w in workers {
        let r = w.await.map_err(|e| LoadError(format!("worker: {e}")))?;
        all.statuses.merge(&r.statuses);
        all.latency.merge(r.latency);
        all.errors += r.errors;
        all.acknowledged_events += r.acknowledged_events;
        all.inserted += r.inserted;
        all.duplicates += r.duplicates;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let generator_cpu_s = crate::stats::process_cpu_seconds()
        .zip(cpu_before)
        .map(|(after, before)| round3(after - before));
    Ok(json!({
        "mode": "feedback",
        "addr": plan.addr.to_string(),
        "connections": plan.connections,
        "events": plan.events,
        "batch": plan.batch,
        "batches": batches.len(),
        "elapsed_s": round3(elapsed),
        "acknowledged_events": all.acknowledged_events,
        "events_per_s": round3(all.acknowledged_events as f64 / elapsed.max(1e-9)),
        "inserted": all.inserted,
        "duplicates": all.duplicates,
        "ok_2xx": all.statuses.ok(),
        "non_2xx": all.statuses.non_2xx(),
        "connection_errors": all.errors,
        "batch_latency_ms": all.latency.summary(),
        "generator_cpu_s": generator_cpu_s,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_are_valid_json_with_unique_ids() {
        let plan = FeedbackPlan {
            addr: "127.0.0.1:1".parse().unwrap(),
            connections: 1,
            events: 5,
            batch: 3,
            users: vec!["u1".into()],
            items: vec!["i1".into(), "i2".into()],
            run_id: "r".into(),
            seed: 1,
        };
        let mut rng = SplitMix64::new(1);
        let request = batch_request(&plan, &mut rng, 3, 2, 100);
        let text = String::from_utf8(request).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("Content-Length: {}", body.len())));
        let events: Vec<Value> = serde_json::from_str(body).unwrap();
        assert_eq!(events.len(), 2);
        assert_eq!(events[0]["event_id"], "r-3");
        assert_eq!(events[1]["event_id"], "r-4");
        assert_eq!(events[0]["user"], "u1");
        let value = events[0]["value"].as_u64().unwrap();
        assert!((1..=5).contains(&value));
    }
}
