//! Drives a running server: each step picks a user (seeded), asks `GET /v1/recommend/{user}`,
//! draws clicks and purchases from the world's click model, and posts them (with the step's
//! organic events) to `POST /v1/feedback`. Workers share a step counter; each owns one
//! keep-alive connection. All randomness of step `s` comes from its own seeded stream, so a
//! run with one connection against a deterministic server is reproducible.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use kindred_core::{CancelFlag, Error, Progress, SplitMix64};
use kindred_http_client::{get_request_with_key, post_request_with_key, Connection, HttpError};
use serde_json::{json, Value};

use crate::config::{Clock, Drift, SimConfig};
use crate::summary::{GroupStats, Origin, SentEvent, SimSummary};
use crate::world::{Appeal, World};

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// A bad config, or cancellation ([`Error::Cancelled`]).
    #[error(transparent)]
    Core(#[from] Error),
    /// The server's address does not resolve or parse.
    #[error("server address `{address}`: {message}")]
    Address { address: String, message: String },
    /// No connection to the server could be opened.
    #[error("cannot connect to {addr}")]
    Connect {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// A worker task failed unexpectedly.
    #[error("simulation worker failed: {0}")]
    Worker(String),
}

/// Bot events per feedback request.
const BOT_BATCH: usize = 1000;
/// Stream ids of the seeded generators (per step: `STEP_STREAM + step`).
const STEP_STREAM: u64 = 1 << 32;
const BOT_STREAM: u64 = 7;

/// Runs `config` against its server with users of `world`, reporting steps to `progress` and
/// stopping with [`Error::Cancelled`] once `cancel` is raised.
pub async fn simulate(
    world: Arc<World>,
    config: SimConfig,
    progress: Arc<dyn Progress>,
    cancel: CancelFlag,
) -> Result<SimSummary, SimError> {
    config.validate()?;
    let addr = resolve(&config.server).await?;
    let players: Vec<u32> = match config.users {
        0 => world.humans().to_vec(),
        n => world.humans().iter().copied().take(n).collect(),
    };
    let shifted = match config.drift {
        Drift::PopularityShift { share } => {
            Some(Arc::new(world.appeal().shifted(share, config.seed)))
        }
        _ => None,
    };
    let run_id = config.run_id.clone().unwrap_or_else(|| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        format!("{nanos:x}")
    });
    let drifted = match config.drift {
        Drift::TasteDrift { share } => {
            Some(Arc::new(world.with_drifted_tastes(share, config.seed)))
        }
        _ => None,
    };
    let config_first_step = config.first_step;
    let shared = Arc::new(Shared {
        world,
        drifted,
        run_id,
        config,
        players,
        shifted,
        next_step: AtomicU64::new(config_first_step),
        started: Instant::now(),
        progress,
        cancel,
    });
    shared.progress.begin("simulating", shared.config.steps);
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..shared.config.concurrency {
        let connection = Connection::connect(addr)
            .await
            .map_err(|source| SimError::Connect { addr, source })?;
        let shared = Arc::clone(&shared);
        workers.spawn(async move { shared.work(addr, connection).await });
    }
    let mut summary = SimSummary::default();
    let mut failure = None;
    while let Some(joined) = workers.join_next().await {
        match joined {
            Ok(Ok(part)) => summary.merge(part),
            Ok(Err(e)) => {
                shared.cancel_workers();
                failure.get_or_insert(e);
            }
            Err(e) => {
                shared.cancel_workers();
                failure.get_or_insert(SimError::Worker(e.to_string()));
            }
        }
    }
    shared.progress.finish();
    if let Some(e) = failure {
        return Err(e);
    }
    shared.cancel.check()?;
    summary.elapsed_seconds = shared.started.elapsed().as_secs_f64();
    summary.finish();
    Ok(summary)
}

/// `http://host:port[/]` or `host:port` to a socket address.
async fn resolve(server: &str) -> Result<SocketAddr, SimError> {
    let bad = |message: &str| SimError::Address {
        address: server.to_owned(),
        message: message.to_owned(),
    };
    if server.starts_with("https://") {
        return Err(bad(
            "https is not supported (the simulator speaks plain HTTP/1.1)",
        ));
    }
    let host_port = server
        .strip_prefix("http://")
        .unwrap_or(server)
        .trim_end_matches('/');
    if host_port.contains('/') {
        return Err(bad(
            "give the server's root URL (http://HOST:PORT), without a path",
        ));
    }
    let mut addrs = tokio::net::lookup_host(host_port)
        .await
        .map_err(|e| bad(&e.to_string()))?;
    addrs.next().ok_or_else(|| bad("resolves to no address"))
}

struct Shared {
    world: Arc<World>,
    /// The world after a taste drift.
    drifted: Option<Arc<World>>,
    run_id: String,
    config: SimConfig,
    players: Vec<u32>,
    /// The appeal after a popularity shift.
    shifted: Option<Arc<Appeal>>,
    next_step: AtomicU64,
    started: Instant,
    progress: Arc<dyn Progress>,
    cancel: CancelFlag,
}

/// A worker's connection, reopened after a transport error.
struct Link {
    addr: SocketAddr,
    connection: Connection,
    key: Option<String>,
}

impl Link {
    /// One exchange: `Some((status, body))`, or None after a transport error (counted, and the
    /// connection reopened).
    async fn exchange(
        &mut self,
        request: &[u8],
        summary: &mut SimSummary,
    ) -> Result<Option<(u16, Vec<u8>)>, SimError> {
        match self.connection.exchange(request).await {
            Ok(head) => {
                let body = self.connection.body(&head).to_vec();
                if self.connection.must_close() {
                    self.reopen().await?;
                }
                Ok(Some((head.status, body)))
            }
            Err(HttpError::Io(_) | HttpError::Closed | HttpError::Malformed(_)) => {
                summary.transport_errors += 1;
                self.reopen().await?;
                Ok(None)
            }
        }
    }

    async fn reopen(&mut self) -> Result<(), SimError> {
        let addr = self.addr;
        self.connection = Connection::connect(addr)
            .await
            .map_err(|source| SimError::Connect { addr, source })?;
        Ok(())
    }

    async fn post_feedback(
        &mut self,
        events: &[Value],
        summary: &mut SimSummary,
    ) -> Result<(), SimError> {
        let body = serde_json::to_vec(events).map_err(|e| SimError::Worker(e.to_string()))?;
        let request = post_request_with_key("/v1/feedback", &body, self.key.as_deref());
        summary.feedback_requests += 1;
        if let Some((status, body)) = self.exchange(&request, summary).await? {
            if (200..300).contains(&status) {
                let answer: Value = serde_json::from_slice(&body).unwrap_or_default();
                summary.duplicates += answer["duplicates"].as_u64().unwrap_or(0);
            } else {
                summary.non_2xx += 1;
            }
        }
        Ok(())
    }
}

/// Events of one step, as JSON for the server and (optionally) as records for the summary.
struct Batch<'a> {
    run_id: &'a str,
    step: u64,
    keep: bool,
    json: Vec<Value>,
    sent: &'a mut Vec<SentEvent>,
}

impl Batch<'_> {
    fn push(&mut self, origin: Origin, user: &str, item: &str, kind: &str, time: Option<i64>) {
        let event_id = format!("sim-{}-{}-{}", self.run_id, self.step, self.json.len());
        let mut event = json!({"user": user, "item": item, "type": kind, "event_id": event_id});
        if let Some(t) = time {
            event["timestamp"] = json!(t);
        }
        self.json.push(event);
        if self.keep {
            self.sent.push(SentEvent {
                step: self.step,
                origin,
                user: user.to_owned(),
                item: item.to_owned(),
                event_type: kind.to_owned(),
                timestamp: time,
            });
        }
    }
}

impl Shared {
    fn cancel_workers(&self) {
        self.next_step.store(u64::MAX / 2, Ordering::Relaxed);
    }

    /// Unix time of `step` plus `offset` seconds on the simulated clock; None on the server's.
    fn time(&self, step: u64, offset: f64) -> Option<i64> {
        match self.config.clock {
            Clock::Server => None,
            Clock::Simulated {
                start,
                seconds_per_step,
            } => Some(start + (step as f64 * seconds_per_step + offset).floor() as i64),
        }
    }

    /// The world as it is at `step` (its users' tastes after a taste drift's start).
    fn world_at(&self, step: u64) -> &World {
        match &self.drifted {
            Some(drifted) if step >= self.config.drift_start_step => drifted,
            _ => &self.world,
        }
    }

    /// Whether `item` is in the server's catalog at `step`: late items only after they arrived.
    fn available(&self, item: u32, step: u64) -> bool {
        !self.world.is_late(item)
            || (self.config.drift == Drift::ItemArrival && step >= self.config.drift_start_step)
    }

    fn appeal(&self, step: u64) -> &Arc<Appeal> {
        match &self.shifted {
            Some(shifted) if step >= self.config.drift_start_step => shifted,
            _ => self.world.appeal(),
        }
    }

    async fn work(
        self: Arc<Self>,
        addr: SocketAddr,
        connection: Connection,
    ) -> Result<SimSummary, SimError> {
        let mut link = Link {
            addr,
            connection,
            key: self.config.api_key.clone(),
        };
        let mut summary = SimSummary::default();
        loop {
            if self.cancel.is_cancelled()
                || self
                    .config
                    .duration
                    .is_some_and(|d| self.started.elapsed() >= d)
            {
                break;
            }
            let step = self.next_step.fetch_add(1, Ordering::Relaxed);
            if step >= self.config.first_step.saturating_add(self.config.steps) {
                break;
            }
            self.step(step, &mut link, &mut summary).await?;
            summary.steps += 1;
            self.progress.advance(1);
        }
        Ok(summary)
    }

    async fn step(
        &self,
        step: u64,
        link: &mut Link,
        summary: &mut SimSummary,
    ) -> Result<(), SimError> {
        let mut rng = SplitMix64::stream(self.config.seed, STEP_STREAM + step);
        let appeal = Arc::clone(self.appeal(step));
        let user = self.players[rng.below(self.players.len() as u64) as usize];
        let user_id = World::user_id(user);
        let mut sent = Vec::new();
        let mut batch = Batch {
            run_id: &self.run_id,
            step,
            keep: self.config.keep_events,
            json: Vec::new(),
            sent: &mut sent,
        };

        let path = format!("/v1/recommend/{user_id}?n={}", self.config.list_size);
        let request = get_request_with_key(&path, link.key.as_deref());
        summary.recommend_requests += 1;
        if let Some((status, body)) = link.exchange(&request, summary).await? {
            if (200..300).contains(&status) {
                self.react(step, user, &body, &appeal, &mut rng, &mut batch, summary);
            } else {
                summary.non_2xx += 1;
            }
        }

        let organic = self.config.organic_per_step;
        let n_organic =
            organic.floor() as u64 + u64::from(rng.next_f64() < organic - organic.floor());
        for k in 0..n_organic {
            let who = self.players[rng.below(self.players.len() as u64) as usize];
            let item = self.world_at(step).organic_item(&appeal, who, &mut rng);
            if !self.available(item, step) {
                // Nobody finds an item before it exists.
                continue;
            }
            let time = self.time(step, 0.5 + k as f64 * 0.01);
            batch.push(
                Origin::Organic,
                &World::user_id(who),
                &World::item_id(item),
                &self.config.organic_event_type,
                time,
            );
            summary.organic_events += 1;
        }
        if !batch.json.is_empty() {
            let events = std::mem::take(&mut batch.json);
            link.post_feedback(&events, summary).await?;
        }
        if step == self.config.drift_start_step {
            match self.config.drift {
                Drift::BotWave { .. } => self.bot_wave(step, link, &mut sent, summary).await?,
                Drift::ItemArrival => self.arrive(step, link, summary).await?,
                _ => {}
            }
        }
        summary.events.append(&mut sent);
        Ok(())
    }

    /// Reads a list answer, draws clicks and purchases, and counts them.
    #[allow(clippy::too_many_arguments)]
    fn react(
        &self,
        step: u64,
        user: u32,
        body: &[u8],
        appeal: &Appeal,
        rng: &mut SplitMix64,
        batch: &mut Batch<'_>,
        summary: &mut SimSummary,
    ) {
        let Ok(answer) = serde_json::from_slice::<Value>(body) else {
            summary.non_2xx += 1;
            return;
        };
        let shown: Vec<&str> = answer["items"]
            .as_array()
            .map(|items| items.iter().filter_map(|i| i["item"].as_str()).collect())
            .unwrap_or_default();
        let version = answer["model_version"]
            .as_str()
            .unwrap_or("none")
            .to_owned();
        let variant = match (
            answer["experiment"]["name"].as_str(),
            answer["experiment"]["variant"].as_str(),
        ) {
            (Some(name), Some(variant)) => Some(format!("{name}/{variant}")),
            _ => None,
        };
        let mut group = GroupStats {
            lists: 1,
            items: shown.len() as u64,
            ..GroupStats::default()
        };
        let user_id = World::user_id(user);
        for (slot, item_id) in shown.iter().enumerate() {
            let Some(item) = self.world.item_index(item_id) else {
                continue;
            };
            let world = self.world_at(step);
            let p = world.click_probability(appeal, user, item, slot);
            group.expected_clicks += p;
            let late = world.is_late(item);
            summary.late_items_shown += u64::from(late);
            if rng.next_f64() < p {
                group.clicks += 1;
                summary.late_item_clicks += u64::from(late);
                let time = self.time(step, slot as f64 * 0.01);
                batch.push(Origin::Recommended, &user_id, item_id, "click", time);
                if rng.next_f64() < world.purchase_probability(user, item) {
                    group.purchases += 1;
                    let time = self.time(step, 0.2 + slot as f64 * 0.01);
                    batch.push(Origin::Recommended, &user_id, item_id, "purchase", time);
                }
            }
        }
        summary.items_shown += group.items;
        summary.clicks += group.clicks;
        summary.purchases += group.purchases;
        summary.overall.add(&group);
        summary
            .by_model_version
            .entry(version)
            .or_default()
            .add(&group);
        if let Some(variant) = variant {
            summary.by_variant.entry(variant).or_default().add(&group);
        }
    }

    /// The item arrival: the world's late items join the catalog, dated now.
    async fn arrive(
        &self,
        step: u64,
        link: &mut Link,
        summary: &mut SimSummary,
    ) -> Result<(), SimError> {
        // Dated even on the server's clock: the catalog's `latest` order is how an arrived item
        // the model does not know reaches a list.
        let time = self.time(step, 0.0).unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64)
        });
        let items: Vec<Value> = self
            .world
            .truth()
            .late_items
            .iter()
            .map(|late| {
                json!({"id": late.id, "features": {"genres": late.genres}, "timestamp": time})
            })
            .collect();
        for chunk in items.chunks(BOT_BATCH) {
            let body = serde_json::to_vec(chunk).map_err(|e| SimError::Worker(e.to_string()))?;
            let request = post_request_with_key("/v1/items", &body, link.key.as_deref());
            match link.exchange(&request, summary).await? {
                Some((status, _)) if (200..300).contains(&status) => {
                    summary.items_arrived += chunk.len() as u64;
                }
                Some(_) => summary.non_2xx += 1,
                None => {}
            }
        }
        Ok(())
    }

    /// The bot wave: each bot's events spread evenly over the configured seconds.
    async fn bot_wave(
        &self,
        step: u64,
        link: &mut Link,
        sent: &mut Vec<SentEvent>,
        summary: &mut SimSummary,
    ) -> Result<(), SimError> {
        let Drift::BotWave {
            bots,
            events_per_bot,
            seconds,
            single_item,
        } = self.config.drift
        else {
            return Ok(());
        };
        let mut rng = SplitMix64::stream(self.config.seed, BOT_STREAM);
        let n_items = self.world.n_items() as u64;
        let mut events = Vec::new();
        for b in 0..bots {
            let bot = format!("simbot{b}");
            let target = rng.below(n_items) as u32;
            for k in 0..events_per_bot {
                let item = if single_item {
                    target
                } else {
                    rng.below(n_items) as u32
                };
                let offset = seconds as f64 * k as f64 / events_per_bot as f64;
                let mut batch = Batch {
                    run_id: &self.run_id,
                    step,
                    keep: self.config.keep_events,
                    json: Vec::new(),
                    sent,
                };
                batch.push(
                    Origin::Bot,
                    &bot,
                    &World::item_id(item),
                    "click",
                    self.time(step, offset),
                );
                // Ids unique across bots (the step's own events use `sim-{run}-{step}-{k}`).
                batch.json[0]["event_id"] = json!(format!("sim-{}-{step}-{bot}-{k}", self.run_id));
                events.append(&mut batch.json);
                summary.bot_events += 1;
            }
        }
        for chunk in events.chunks(BOT_BATCH) {
            link.post_feedback(chunk, summary).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A scripted server: every GET gets the same list answer (with an experiment), every
    /// POST `{"inserted": 0, "duplicates": 1}`. Returns its address and the POST bodies.
    async fn fake_server(list: &'static str) -> (SocketAddr, Arc<std::sync::Mutex<Vec<String>>>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let posts = Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = Arc::clone(&posts);
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let seen = Arc::clone(&seen);
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    loop {
                        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                            let mut chunk = [0u8; 4096];
                            match socket.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                            }
                            continue;
                        };
                        let head = String::from_utf8_lossy(&buf[..end]).to_string();
                        let length: usize = head
                            .lines()
                            .find_map(|l| l.strip_prefix("Content-Length: "))
                            .map_or(0, |v| v.trim().parse().unwrap());
                        while buf.len() < end + 4 + length {
                            let mut chunk = [0u8; 4096];
                            let n = socket.read(&mut chunk).await.unwrap();
                            buf.extend_from_slice(&chunk[..n]);
                        }
                        let body = String::from_utf8_lossy(&buf[end + 4..end + 4 + length]);
                        let answer = if head.starts_with("POST") {
                            assert!(head.contains("Authorization: Bearer sekrit"), "{head}");
                            seen.lock().unwrap().push(body.to_string());
                            r#"{"inserted": 0, "duplicates": 1}"#
                        } else {
                            list
                        };
                        let response = format!(
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{answer}",
                            answer.len()
                        );
                        socket.write_all(response.as_bytes()).await.unwrap();
                        buf.drain(..end + 4 + length);
                    }
                });
            }
        });
        (addr, posts)
    }

    /// Groups come from the answers' `model_version` and `experiment`; foreign item ids count
    /// as shown but never clicked; the key is sent; server-reported duplicates are counted.
    #[tokio::test]
    async fn reads_versions_variants_and_keys() {
        let list = r#"{"request_id": "r1", "model_version": "v9",
            "experiment": {"name": "exp", "variant": "b"},
            "items": [{"item": "i1"}, {"item": "i2"}, {"item": "other"}]}"#;
        let (addr, posts) = fake_server(list).await;
        let mut world = World::from_spec("users=50,items=20,per_user=5,seed=1").unwrap();
        // Everything examined is clicked: 2 clicks per list.
        world.click_model.base = 50.0;
        world.click_model.position_decay = 0.0;
        let config = SimConfig {
            server: format!("http://{addr}"),
            api_key: Some("sekrit".into()),
            steps: 5,
            concurrency: 2,
            keep_events: true,
            ..SimConfig::default()
        };
        let summary = simulate(
            Arc::new(world),
            config,
            Arc::new(kindred_core::NoProgress),
            CancelFlag::new(),
        )
        .await
        .unwrap();
        assert_eq!((summary.steps, summary.recommend_requests), (5, 5));
        assert_eq!((summary.items_shown, summary.clicks), (15, 10));
        let v9 = &summary.by_model_version["v9"];
        assert_eq!((v9.lists, v9.items, v9.clicks), (5, 15, 10));
        assert!((v9.expected_ctr - 10.0 / 15.0).abs() < 1e-9, "{v9:?}");
        assert_eq!(summary.by_variant["exp/b"], *v9);
        assert_eq!(summary.feedback_requests, 5);
        assert_eq!(summary.duplicates, 5);
        let posts = posts.lock().unwrap();
        assert_eq!(posts.len(), 5);
        assert!(posts
            .iter()
            .all(|p| p.contains(r#""type":"click""#) && !p.contains("other")));
        assert!(summary
            .events
            .iter()
            .all(|e| e.origin == Origin::Recommended));
    }

    /// A run split at a step (`first_step`) sends exactly the events of the whole run.
    #[tokio::test]
    async fn segments_continue_a_run() {
        let list = r#"{"model_version": "v1", "items": [{"item": "i1"}, {"item": "i2"}]}"#;
        let (addr, _) = fake_server(list).await;
        let mut world = World::from_spec("users=50,items=20,per_user=5,seed=1").unwrap();
        world.click_model.base = 1.0;
        let world = Arc::new(world);
        let config = |first_step, steps| SimConfig {
            server: format!("http://{addr}"),
            steps,
            first_step,
            concurrency: 1,
            keep_events: true,
            organic_per_step: 2.0,
            clock: Clock::Simulated {
                start: 1_000,
                seconds_per_step: 3.0,
            },
            drift: Drift::PopularityShift { share: 0.5 },
            drift_start_step: 6,
            ..SimConfig::default()
        };
        let go = |c| {
            simulate(
                Arc::clone(&world),
                c,
                Arc::new(kindred_core::NoProgress),
                CancelFlag::new(),
            )
        };
        let whole = go(config(0, 10)).await.unwrap();
        let first = go(config(0, 4)).await.unwrap();
        let second = go(config(4, 6)).await.unwrap();
        assert_eq!((first.steps, second.steps), (4, 6));
        assert_eq!(second.events.first().map(|e| e.step), Some(4));
        assert!(whole.events.len() > 20, "{}", whole.events.len());
        let joined: Vec<SentEvent> = first.events.into_iter().chain(second.events).collect();
        assert_eq!(joined, whole.events);
    }

    #[tokio::test]
    async fn cancelled_and_unreachable_runs_are_errors() {
        let world = Arc::new(World::from_spec("users=50,items=20,per_user=5,seed=1").unwrap());
        let (addr, _) = fake_server(r#"{"items": []}"#).await;
        let cancel = CancelFlag::new();
        cancel.cancel();
        let config = SimConfig {
            server: addr.to_string(),
            steps: 5,
            ..SimConfig::default()
        };
        let err = simulate(
            Arc::clone(&world),
            config,
            Arc::new(kindred_core::NoProgress),
            cancel,
        )
        .await
        .unwrap_err();
        assert!(matches!(err, SimError::Core(Error::Cancelled)), "{err}");
        // A port nobody listens on (bound, then dropped).
        let free = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let config = SimConfig {
            server: free.to_string(),
            ..SimConfig::default()
        };
        let err = simulate(
            world,
            config,
            Arc::new(kindred_core::NoProgress),
            CancelFlag::new(),
        )
        .await
        .unwrap_err();
        assert!(matches!(err, SimError::Connect { .. }), "{err}");
    }

    #[tokio::test]
    async fn addresses() {
        assert_eq!(
            resolve("http://127.0.0.1:8080/").await.unwrap(),
            "127.0.0.1:8080".parse().unwrap()
        );
        assert_eq!(
            resolve("127.0.0.1:9").await.unwrap(),
            "127.0.0.1:9".parse().unwrap()
        );
        for bad in ["https://127.0.0.1:1", "http://127.0.0.1:1/v1", "no-port"] {
            let err = resolve(bad).await.unwrap_err().to_string();
            assert!(err.contains(bad), "{err}");
        }
    }
}
