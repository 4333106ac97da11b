//! `recommend` mode: `GET /v1/recommend/{user}?n=N` (or `POST` of given bodies, e.g. anonymous
//! sessions) over keep-alive connections, either open
//! loop at a target rate or closed loop as fast as the server answers, optionally swapping the
//! live model version on a separate connection meanwhile.
//!
//! Open loop: request `i` is due at `start + i / rate` and goes out on connection `i mod C`;
//! its latency is measured from that due time, not from when it was actually sent, so a server
//! (or generator) that falls behind is charged for the wait (no coordinated omission). The
//! time from actual send to answer is reported beside it as `service_ms`.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::time::Instant;

use crate::stats::{round3, Latencies, StatusCounts};
use crate::{LoadError, SplitMix64};
use kindred_http_client::{get_request, post_request, Connection};

/// An answer slower than this is counted as a connection error and the connection replaced.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Open loop: requests not yet sent this long after the planned end are abandoned (and counted),
/// so that a server far too slow for the rate cannot make the run unbounded.
const OVERRUN_GRACE: Duration = Duration::from_secs(10);

pub struct RecommendPlan {
    pub addr: SocketAddr,
    pub connections: usize,
    /// Requests per second (open loop), `None` for closed loop.
    pub rate: Option<f64>,
    pub duration: Duration,
    /// Open loop: stop after this many requests instead of `rate * duration`.
    pub requests: Option<u64>,
    pub users: Vec<String>,
    /// JSON bodies to `POST` to `path` instead of asking for `users` (empty: `GET` per user).
    pub bodies: Vec<String>,
    pub n: usize,
    /// Request path; `{user}` and `{n}` are replaced per request (default
    /// `/v1/recommend/{user}?n={n}`). Another path measures the cost of other routes.
    pub path: String,
    pub seed: u64,
    pub swap_versions: Vec<String>,
    pub swap_every: Duration,
}

/// What one connection saw.
#[derive(Default)]
struct WorkerResult {
    latency: Latencies,
    service: Latencies,
    statuses: StatusCounts,
    errors: u64,
    abandoned: u64,
    /// `model_version` values in the answers and how often each came back.
    versions: Vec<(Vec<u8>, u64)>,
    last_done: Option<Instant>,
}

/// The `model_version` value of a recommendation answer (its raw JSON text).
fn model_version(body: &[u8]) -> Option<&[u8]> {
    const KEY: &[u8] = b"\"model_version\":";
    let start = body.windows(KEY.len()).position(|w| w == KEY)? + KEY.len();
    let rest = &body[start..];
    let end = rest.iter().position(|&b| b == b',' || b == b'}')?;
    Some(&rest[..end])
}

fn tally(versions: &mut Vec<(Vec<u8>, u64)>, version: &[u8]) {
    match versions.iter_mut().find(|(v, _)| v == version) {
        Some((_, count)) => *count += 1,
        None => versions.push((version.to_vec(), 1)),
    }
}

/// Sends one request on `slot`, (re)connecting first when needed; `None` on any failure.
async fn exchange(
    addr: SocketAddr,
    slot: &mut Option<Connection>,
    request: &[u8],
    result: &mut WorkerResult,
) -> Option<u16> {
    if slot.is_none() {
        match Connection::connect(addr).await {
            Ok(c) => *slot = Some(c),
            Err(_) => {
                result.errors += 1;
                return None;
            }
        }
    }
    let connection = slot.as_mut()?;
    match tokio::time::timeout(REQUEST_TIMEOUT, connection.exchange(request)).await {
        Ok(Ok(head)) => {
            if let Some(version) = model_version(connection.body(&head)) {
                tally(&mut result.versions, version);
            }
            if connection.must_close() {
                *slot = None;
            }
            Some(head.status)
        }
        _ => {
            result.errors += 1;
            *slot = None;
            None
        }
    }
}

async fn open_loop_worker(
    plan: Arc<RecommendPlan>,
    requests: Arc<Vec<Vec<u8>>>,
    mut connection: Option<Connection>,
    index: usize,
    total: u64,
    rate: f64,
    start: Instant,
) -> WorkerResult {
    let mut rng = SplitMix64::new(plan.seed ^ (index as u64).wrapping_mul(0x9E37_79B9));
    let mut result = WorkerResult {
        latency: Latencies::with_capacity((total / plan.connections as u64 + 1) as usize),
        service: Latencies::with_capacity((total / plan.connections as u64 + 1) as usize),
        ..WorkerResult::default()
    };
    let give_up = start + Duration::from_secs_f64(total as f64 / rate) + OVERRUN_GRACE;
    let mut i = index as u64;
    while i < total {
        let due = start + Duration::from_secs_f64(i as f64 / rate);
        i += plan.connections as u64;
        if Instant::now() > give_up {
            result.abandoned += 1;
            continue;
        }
        tokio::time::sleep_until(due).await;
        let request = &requests[rng.below(requests.len())];
        let sent = Instant::now();
        if let Some(status) = exchange(plan.addr, &mut connection, request, &mut result).await {
            let done = Instant::now();
            result.statuses.add(status);
            result.latency.record(done - due);
            result.service.record(done - sent);
            result.last_done = Some(done);
        }
    }
    result
}

async fn closed_loop_worker(
    plan: Arc<RecommendPlan>,
    requests: Arc<Vec<Vec<u8>>>,
    mut connection: Option<Connection>,
    index: usize,
    start: Instant,
) -> WorkerResult {
    let mut rng = SplitMix64::new(plan.seed ^ (index as u64).wrapping_mul(0x9E37_79B9));
    let mut result = WorkerResult::default();
    let end = start + plan.duration;
    while Instant::now() < end {
        let request = &requests[rng.below(requests.len())];
        let sent = Instant::now();
        match exchange(plan.addr, &mut connection, request, &mut result).await {
            Some(status) => {
                let done = Instant::now();
                result.statuses.add(status);
                result.latency.record(done - sent);
                result.last_done = Some(done);
            }
            // Do not spin on a refused connection.
            None => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
    result
}

/// Alternates the live version every `swap_every` until `stop`.
async fn swapper(plan: Arc<RecommendPlan>, stop: Arc<AtomicBool>) -> Value {
    let mut statuses = StatusCounts::default();
    let mut latency = Latencies::default();
    let mut errors = 0u64;
    let mut connection: Option<Connection> = None;
    let mut turn = 0usize;
    loop {
        tokio::time::sleep(plan.swap_every).await;
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let version = &plan.swap_versions[turn % plan.swap_versions.len()];
        turn += 1;
        let request = post_request(&format!("/v1/models/{version}/activate"), b"");
        // The server closes a keep-alive connection left idle past its header-read timeout, and
        // swaps are seconds apart: a kept connection that fails is retried once on a new one
        // (activation is idempotent), so only a failure on a fresh connection counts.
        let mut fresh = connection.is_none();
        loop {
            if connection.is_none() {
                connection = Connection::connect(plan.addr).await.ok();
            }
            let Some(c) = connection.as_mut() else {
                errors += 1;
                break;
            };
            let sent = Instant::now();
            match tokio::time::timeout(Duration::from_secs(60), c.exchange(&request)).await {
                Ok(Ok(head)) => {
                    statuses.add(head.status);
                    latency.record(sent.elapsed());
                    if c.must_close() {
                        connection = None;
                    }
                    break;
                }
                Ok(Err(_)) if !fresh => {
                    connection = None;
                    fresh = true;
                }
                _ => {
                    connection = None;
                    errors += 1;
                    break;
                }
            }
        }
    }
    json!({
        "versions": plan.swap_versions,
        "every_ms": plan.swap_every.as_millis() as u64,
        "attempted": turn,
        "statuses": statuses.all(),
        "non_2xx": statuses.non_2xx(),
        "connection_errors": errors,
        "latency_ms": latency.summary(),
    })
}

pub async fn run(plan: RecommendPlan) -> Result<Value, LoadError> {
    let requests: Arc<Vec<Vec<u8>>> = Arc::new(if plan.bodies.is_empty() {
        plan.users
            .iter()
            .map(|u| {
                get_request(
                    &plan
                        .path
                        .replace("{user}", u)
                        .replace("{n}", &plan.n.to_string()),
                )
            })
            .collect()
    } else {
        plan.bodies
            .iter()
            .map(|body| post_request(&plan.path, body.as_bytes()))
            .collect()
    });
    let mut connections = Vec::with_capacity(plan.connections);
    for _ in 0..plan.connections {
        connections.push(
            Connection::connect(plan.addr)
                .await
                .map_err(|e| LoadError(format!("connecting to {}: {e}", plan.addr)))?,
        );
    }
    let plan = Arc::new(plan);
    let total = match (plan.rate, plan.requests) {
        (Some(_), Some(r)) => r,
        (Some(rate), None) => (rate * plan.duration.as_secs_f64()).round() as u64,
        (None, _) => 0,
    };
    let stop = Arc::new(AtomicBool::new(false));
    let swaps = (!plan.swap_versions.is_empty())
        .then(|| tokio::spawn(swapper(Arc::clone(&plan), Arc::clone(&stop))));
    let cpu_before = crate::stats::process_cpu_seconds();
    // A little slack so every worker is waiting before the first request is due.
    let start = Instant::now() + Duration::from_millis(20);
    let mut workers = Vec::with_capacity(plan.connections);
    for (index, connection) in connections.into_iter().enumerate() {
        let (plan, requests) = (Arc::clone(&plan), Arc::clone(&requests));
        workers.push(match plan.rate {
            Some(rate) => tokio::spawn(open_loop_worker(
                plan,
                requests,
                Some(connection),
                index,
                total,
                rate,
                start,
            )),
            None => tokio::spawn(closed_loop_worker(
                plan,
                requests,
                Some(connection),
                index,
                start,
            )),
        });
    }
    let mut all = WorkerResult::default();
    for worker in workers {
        let r = worker
            .await
            .map_err(|e| LoadError(format!("worker: {e}")))?;
        all.latency.merge(r.latency);
        all.service.merge(r.service);
        all.statuses.merge(&r.statuses);
        all.errors += r.errors;
        all.abandoned += r.abandoned;
        for (version, count) in r.versions {
            match all.versions.iter_mut().find(|(v, _)| *v == version) {
                Some((_, c)) => *c += count,
                None => all.versions.push((version, count)),
            }
        }
        all.last_done = all.last_done.max(r.last_done);
    }
    let finished = Instant::now();
    stop.store(true, Ordering::Relaxed);
    let swaps = match swaps {
        Some(handle) => handle
            .await
            .map_err(|e| LoadError(format!("swapper: {e}")))?,
        None => Value::Null,
    };
    let generator_cpu_s = crate::stats::process_cpu_seconds()
        .zip(cpu_before)
        .map(|(after, before)| round3(after - before));
    let completed = all.latency.len() as u64;
    let elapsed = all
        .last_done
        .unwrap_or(finished)
        .saturating_duration_since(start);
    let versions: serde_json::Map<String, Value> = all
        .versions
        .iter()
        .map(|(v, c)| (String::from_utf8_lossy(v).into_owned(), json!(c)))
        .collect();
    let mut report = json!({
        "mode": if plan.rate.is_some() { "recommend-open-loop" } else { "recommend-closed-loop" },
        "addr": plan.addr.to_string(),
        "connections": plan.connections,
        "n": plan.n,
        "path": plan.path,
        "method": if plan.bodies.is_empty() { "GET" } else { "POST" },
        "users": plan.users.len(),
        "bodies": plan.bodies.len(),
        "target_rate": plan.rate,
        "planned_requests": plan.rate.map(|_| total),
        "completed": completed,
        "elapsed_s": round3(elapsed.as_secs_f64()),
        "achieved_rate": round3(completed as f64 / elapsed.as_secs_f64().max(1e-9)),
        "ok_2xx": all.statuses.ok(),
        "non_2xx": all.statuses.non_2xx(),
        "connection_errors": all.errors,
        "abandoned": all.abandoned,
        "latency_ms": all.latency.summary(),
        "model_versions_seen": versions,
        "generator_cpu_s": generator_cpu_s,
        "swaps": swaps,
    });
    if plan.rate.is_some() {
        report["service_ms"] = all.service.summary();
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_model_version_in_an_answer() {
        let body = br#"{"items":[{"item":"1","score":0.5,"source":"als"}],"model_version":"als-2","request_id":"x"}"#;
        assert_eq!(model_version(body), Some(&b"\"als-2\""[..]));
        assert_eq!(
            model_version(br#"{"model_version":null}"#),
            Some(&b"null"[..])
        );
        assert_eq!(model_version(br#"{"items":[]}"#), None);
        let mut versions = Vec::new();
        tally(&mut versions, b"a");
        tally(&mut versions, b"b");
        tally(&mut versions, b"a");
        assert_eq!(versions, vec![(b"a".to_vec(), 2), (b"b".to_vec(), 1)]);
    }

    /// A server that, like `kindred serve` past its header-read timeout, closes every keep-alive
    /// connection after one answer without saying so: each swap finds its kept connection dead.
    async fn one_answer_per_connection(listener: tokio::net::TcpListener) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match socket.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            let _ = socket
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}")
                .await;
            drop(socket);
        }
    }

    #[test]
    fn a_swap_on_a_connection_the_server_closed_is_retried_on_a_new_one() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let report = runtime.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            tokio::spawn(one_answer_per_connection(listener));
            let plan = Arc::new(RecommendPlan {
                addr,
                connections: 1,
                rate: None,
                duration: Duration::from_secs(1),
                requests: None,
                users: vec!["1".into()],
                bodies: Vec::new(),
                n: 10,
                path: "/v1/recommend/{user}?n={n}".into(),
                seed: 1,
                swap_versions: vec!["a".into(), "b".into()],
                swap_every: Duration::from_millis(20),
            });
            let stop = Arc::new(AtomicBool::new(false));
            let swaps = tokio::spawn(swapper(Arc::clone(&plan), Arc::clone(&stop)));
            tokio::time::sleep(Duration::from_millis(150)).await;
            stop.store(true, Ordering::Relaxed);
            swaps.await.unwrap()
        });
        let attempted = report["attempted"].as_u64().unwrap();
        assert!(attempted >= 3, "{report}");
        assert_eq!(report["connection_errors"], 0, "{report}");
        assert_eq!(
            report["statuses"]["200"].as_u64(),
            Some(attempted),
            "{report}"
        );
    }
}
