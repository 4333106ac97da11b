//! Test harness for the HTTP API: a real server on `127.0.0.1:0` over a temporary SQLite store
//! filled with a small seeded synthetic dataset and one published ALS version, and a tiny
//! HTTP/1.1 client over a raw `TcpStream` (no client crate: the tests see exactly the bytes the
//! server sends, and can send bytes no well-behaved client would).

#![allow(dead_code)] // each test binary uses part of this module

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use kindred_core::FitContext;
use kindred_data::synthetic::{generate, SyntheticConfig};
use kindred_server::AppState;
use kindred_serving::config::KeysConfig;
use kindred_serving::{ServerConfig, TrainSpec};
use kindred_store::import::{feedback_from_interactions, items_from_features, users_from_features};
use kindred_store::{Feedback, Item, Store, User};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The model every fixture publishes: small enough to train in well under a second in debug.
pub const MODEL_SPEC: &str = "als:factors=8,iterations=3";

/// Timestamp of item `i{k}` in the fixture: one hour apart, so `latest` has a strict order.
pub const ITEM_EPOCH: i64 = 1_700_000_000;

/// How a test wants its server.
pub struct Options {
    pub keys: KeysConfig,
    /// Applied last, to any config field.
    pub tweak: Box<dyn FnOnce(&mut ServerConfig) + Send>,
    /// Publish a model version before starting (false: the server starts with none live).
    pub publish: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            keys: KeysConfig::default(),
            tweak: Box::new(|_| {}),
            publish: true,
        }
    }
}

impl Options {
    pub fn keys(read: Option<&str>, write: Option<&str>, admin: Option<&str>) -> Self {
        Self {
            keys: KeysConfig {
                read: read.map(str::to_owned),
                write: write.map(str::to_owned),
                admin: admin.map(str::to_owned),
                ..KeysConfig::default()
            },
            ..Self::default()
        }
    }

    pub fn tweak(mut self, f: impl FnOnce(&mut ServerConfig) + Send + 'static) -> Self {
        self.tweak = Box::new(f);
        self
    }
}

/// What the store was filled with.
pub struct Data {
    pub users: Vec<User>,
    pub items: Vec<Item>,
    pub feedback: Vec<Feedback>,
}

impl Data {
    /// Items each user has feedback on.
    pub fn seen_by(&self, user: &str) -> BTreeSet<String> {
        self.feedback
            .iter()
            .filter(|f| f.user == user)
            .map(|f| f.item.clone())
            .collect()
    }

    pub fn item(&self, id: &str) -> Option<&Item> {
        self.items.iter().find(|i| i.id == id)
    }

    /// Users ordered by number of events, most active first.
    pub fn active_users(&self) -> Vec<String> {
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for f in &self.feedback {
            *counts.entry(f.user.as_str()).or_default() += 1;
        }
        let mut users: Vec<(&str, usize)> = counts.into_iter().collect();
        users.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        users.into_iter().map(|(u, _)| u.to_owned()).collect()
    }
}

/// A running server and what it serves.
pub struct TestServer {
    pub addr: SocketAddr,
    pub state: Arc<AppState>,
    pub data: Data,
    /// The version published at start (None when `publish` was false).
    pub version: Option<String>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    _dir: tempfile::TempDir,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// The seeded synthetic data: 120 users, 60 items in 6 genres (as categories), ratings.
/// Fills `store` with the seeded synthetic dataset `users=120,items=80,seed=3` (users and items
/// with features, feedback), for tests that drive the state or training without HTTP.
pub async fn fill_store(store: &Store) {
    let cfg = SyntheticConfig::parse("users=120,items=80,seed=3").expect("synthetic spec");
    let data = generate(&cfg).expect("synthetic data").dataset;
    if let Some(t) = &data.user_features {
        store.upsert_users(&users_from_features(t)).await.unwrap();
    }
    if let Some(t) = &data.item_features {
        store.upsert_items(&items_from_features(t)).await.unwrap();
    }
    store
        .insert_feedback(&feedback_from_interactions(&data.interactions))
        .await
        .unwrap();
}

pub fn fixture_data() -> Data {
    let cfg = SyntheticConfig {
        users: 120,
        items: 60,
        seed: 7,
        interactions_per_user: 12.0,
        genres: 6,
        ..SyntheticConfig::default()
    };
    let synthetic = generate(&cfg).expect("synthetic data");
    let dataset = synthetic.dataset;
    let feedback = feedback_from_interactions(&dataset.interactions);
    let users = users_from_features(dataset.user_features.as_deref().expect("user features"));
    let items = items_from_features(dataset.item_features.as_deref().expect("item features"))
        .into_iter()
        .map(|mut item| {
            if let Some(Value::Array(genres)) = item.features.remove("genres") {
                item.categories = genres
                    .iter()
                    .filter_map(|g| g.as_str().map(str::to_owned))
                    .collect();
            }
            let k: i64 = item.id[1..].parse().expect("item ids are i<number>");
            item.timestamp = Some(ITEM_EPOCH + 3600 * k);
            item
        })
        .collect();
    Data {
        users,
        items,
        feedback,
    }
}

/// Starts a server with `options` over a fresh store holding [`fixture_data`].
pub async fn start(options: Options) -> TestServer {
    let dir = tempfile::tempdir().expect("temporary directory");
    let db = dir.path().join("store.db");
    let db = db.to_str().expect("utf-8 temp path").to_owned();
    let store = Store::open(&db).await.expect("open store");
    let data = fixture_data();
    store.upsert_users(&data.users).await.expect("users");
    store.upsert_items(&data.items).await.expect("items");
    store
        .insert_feedback(&data.feedback)
        .await
        .expect("feedback");
    let mut config = ServerConfig {
        store: db,
        models_dir: Some(dir.path().join("models")),
        keys: options.keys,
        watch_interval_ms: 100,
        catalog_refresh_ms: 50,
        ..ServerConfig::default()
    };
    config.training.model = MODEL_SPEC.into();
    (options.tweak)(&mut config);
    let version = if options.publish {
        let spec = TrainSpec {
            model: MODEL_SPEC.into(),
            positive: None,
            seed: 42,
            pipeline: None,
        };
        let record = kindred_serving::train_and_publish(
            &store,
            &config.artifacts_dir(),
            &spec,
            FitContext::with_seed(42),
        )
        .await
        .expect("publish the fixture model");
        Some(record.model.version)
    } else {
        None
    };
    config.validate().expect("valid test config");
    let state = AppState::new(config, store).await.expect("app state");
    let listener = kindred_server::bind("127.0.0.1:0".parse().expect("address"))
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("local address");
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(kindred_server::serve(Arc::clone(&state), listener, async {
        let _ = rx.await;
    }));
    TestServer {
        addr,
        state,
        data,
        version,
        shutdown: Some(tx),
        _dir: dir,
    }
}

impl TestServer {
    /// A client without an API key.
    pub fn client(&self) -> Client {
        Client {
            addr: self.addr,
            key: None,
        }
    }

    /// A client sending `Authorization: Bearer key`.
    pub fn client_with_key(&self, key: &str) -> Client {
        Client {
            addr: self.addr,
            key: Some(key.to_owned()),
        }
    }
}

/// One HTTP answer.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    /// Header names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The body parsed as JSON, when it is JSON.
    pub json: Option<Value>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The JSON body; panics (naming the status and body) when there is none.
    pub fn json(&self) -> &Value {
        self.json
            .as_ref()
            .unwrap_or_else(|| panic!("status {}: body is not JSON: {}", self.status, self.text()))
    }

    /// `error.code` of an error body.
    pub fn error_code(&self) -> Option<&str> {
        self.json.as_ref()?.get("error")?.get("code")?.as_str()
    }

    /// Panics unless the status is `status`, showing the body.
    #[track_caller]
    pub fn expect_status(&self, status: u16) -> &Self {
        assert_eq!(
            self.status,
            status,
            "unexpected status; body: {}",
            self.text()
        );
        self
    }

    /// The `item` ids of a list answer, in order.
    pub fn item_ids(&self) -> Vec<String> {
        self.json()["items"]
            .as_array()
            .unwrap_or_else(|| panic!("no `items` array in {}", self.text()))
            .iter()
            .map(|i| i["item"].as_str().expect("item id").to_owned())
            .collect()
    }
}

/// A minimal HTTP/1.1 client: one connection per request (`Connection: close`).
#[derive(Debug, Clone)]
pub struct Client {
    pub addr: SocketAddr,
    pub key: Option<String>,
}

impl Client {
    pub async fn get(&self, path: &str) -> Response {
        self.request("GET", path, &[], None).await
    }

    pub async fn delete(&self, path: &str) -> Response {
        self.request("DELETE", path, &[], None).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Response {
        self.json("POST", path, body).await
    }

    pub async fn put(&self, path: &str, body: &Value) -> Response {
        self.json("PUT", path, body).await
    }

    pub async fn json(&self, method: &str, path: &str, body: &Value) -> Response {
        let bytes = serde_json::to_vec(body).expect("serialise");
        self.request(
            method,
            path,
            &[("Content-Type", "application/json")],
            Some(&bytes),
        )
        .await
    }

    /// A request with extra headers and a raw body (sent with its `Content-Length`). The
    /// client's key, if any, is sent unless `headers` holds an `Authorization` of its own.
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Response {
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n",
            self.addr
        );
        let has_auth = headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("authorization"));
        if let (Some(key), false) = (&self.key, has_auth) {
            head.push_str(&format!("Authorization: Bearer {key}\r\n"));
        }
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        if let Some(body) = body {
            head.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        head.push_str("\r\n");
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(body.unwrap_or_default());
        self.raw(&bytes).await
    }

    /// Sends `bytes` as they are and reads the answer to the end of the connection.
    pub async fn raw(&self, bytes: &[u8]) -> Response {
        let io = async {
            let mut stream = TcpStream::connect(self.addr).await?;
            // The server may answer (413) and stop reading before the body is all sent.
            let _ = stream.write_all(bytes).await;
            let mut out = Vec::new();
            match stream.read_to_end(&mut out).await {
                Ok(_) => {}
                Err(e) if !out.is_empty() => eprintln!("read ended early: {e}"),
                Err(e) => return Err(e),
            }
            Ok::<_, std::io::Error>(out)
        };
        let answer = tokio::time::timeout(Duration::from_secs(30), io)
            .await
            .expect("the server answered within 30 s")
            .expect("connection to the test server");
        if answer.is_empty() {
            // The connection closed without an answer (a handler that panicked does this).
            return Response {
                status: 0,
                headers: Vec::new(),
                body: Vec::new(),
                json: None,
            };
        }
        parse_response(&answer)
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Parses a whole HTTP/1.1 answer (`Content-Length`, chunked, or to the end).
pub fn parse_response(bytes: &[u8]) -> Response {
    let end = find(bytes, b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {:?}", String::from_utf8_lossy(bytes)));
    let head = std::str::from_utf8(&bytes[..end]).expect("ascii headers");
    let mut lines = head.split("\r\n");
    let status_line = lines.next().expect("status line");
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let rest = &bytes[end + 4..];
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    let length = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse::<usize>().ok());
    let body = if chunked {
        dechunk(rest)
    } else if let Some(n) = length {
        assert!(rest.len() >= n, "body shorter than its Content-Length");
        rest[..n].to_vec()
    } else {
        rest.to_vec()
    };
    let json = serde_json::from_slice(&body).ok();
    Response {
        status,
        headers,
        body,
        json,
    }
}

fn dechunk(mut rest: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(line_end) = find(rest, b"\r\n") {
        let size_text = std::str::from_utf8(&rest[..line_end]).expect("chunk size");
        let size_text = size_text.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16).expect("hex chunk size");
        rest = &rest[line_end + 2..];
        if size == 0 {
            break;
        }
        out.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
    out
}

/// Retries `check` every 25 ms for up to `within`; true once it returns true.
pub async fn eventually<F, Fut>(within: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Name of the dashboard fixture's experiment: HTML characters check the pages' escaping.
pub const DASH_EXPERIMENT: &str = "als<vs>&pop";
/// [`DASH_EXPERIMENT`] percent-encoded for a path.
pub const DASH_EXPERIMENT_PATH: &str = "als%3Cvs%3E%26pop";

/// A server for the dashboard's experiments and monitoring pages: a popularity version beside
/// the live ALS one, the running experiment [`DASH_EXPERIMENT`] (control: live, treatment:
/// popularity) with 40 users exposed, clicks from every treatment user and every other control
/// user, and one monitoring pass whose online CTR floor (0.99) raises alerts. `admin` is the
/// admin key `options` configures, if any.
pub async fn experiment_fixture(mut options: Options, admin: Option<&str>) -> TestServer {
    let prior = options.tweak;
    options.tweak = Box::new(move |c: &mut ServerConfig| {
        prior(c);
        let m = &mut c.monitoring;
        m.window_end = kindred_serving::config::WindowEnd::LatestEvent;
        m.interval_seconds = 3_600;
        m.ctr_min = Some(0.99);
        m.min_items = 1;
        // The reference window gets a few dozen events (below): enough for a PSI.
        m.min_observations = 5;
    });
    let server = start(options).await;
    let popularity = kindred_serving::train_and_register(
        server.state.serving.store(),
        &server.state.serving.config().artifacts_dir(),
        &TrainSpec {
            model: "popularity".into(),
            positive: None,
            seed: 1,
            pipeline: None,
        },
        FitContext::with_seed(1),
    )
    .await
    .expect("register the popularity version")
    .model
    .version;
    let client = match admin {
        Some(key) => server.client_with_key(key),
        None => server.client(),
    };
    let definition = serde_json::json!({
        "name": DASH_EXPERIMENT,
        "variants": [
            { "name": "control", "weight": 1 },
            { "name": "treatment", "model_version": popularity, "weight": 1 }
        ],
        "success_metric": "click_any",
        "guardrail_metrics": ["ctr=click/impressions"],
        "attribution_window_seconds": 3600
    });
    client
        .post("/v1/experiments", &definition)
        .await
        .expect_status(201);
    client
        .post(
            &format!("/v1/experiments/{DASH_EXPERIMENT_PATH}/start"),
            &serde_json::json!({}),
        )
        .await
        .expect_status(200);
    let mut events = Vec::new();
    for (n, user) in server.active_users_for_fixture().into_iter().enumerate() {
        let answer = client.get(&format!("/v1/recommend/{user}?n=5")).await;
        answer.expect_status(200);
        let treated = answer.json()["experiment"]["variant"] == "treatment";
        let items = answer.item_ids();
        if treated || n % 2 == 0 {
            // Server-stamped (no timestamp): attribution compares with the exposure's time.
            events.push(serde_json::json!({ "user": user, "item": items[0], "type": "click" }));
        }
    }
    client
        .post("/v1/feedback", &Value::Array(events))
        .await
        .expect_status(200);
    // Reference-window traffic two days back (before the experiment, so not attributed to
    // it): the pass then has both windows and measures drift.
    let past = now_for_fixture() - 2 * 86_400;
    let reference: Vec<Value> = server
        .active_users_for_fixture()
        .iter()
        .zip(server.data.items.iter().cycle())
        .map(|(user, item)| {
            serde_json::json!({ "user": user, "item": item.id, "type": "click", "timestamp": past })
        })
        .collect();
    client
        .post("/v1/feedback", &Value::Array(reference))
        .await
        .expect_status(200);
    client
        .post("/v1/monitoring/run", &serde_json::json!(null))
        .await
        .expect_status(200);
    server
}

/// Unix seconds now.
pub fn now_for_fixture() -> i64 {
    kindred_serving::unix_now()
}

impl TestServer {
    fn active_users_for_fixture(&self) -> Vec<String> {
        self.data.active_users().into_iter().take(40).collect()
    }
}
