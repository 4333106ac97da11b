//! The server's life between requests: batch mode's precomputed lists, the scheduler retraining
//! and swapping versions, the watcher picking up a version published by another process, and the
//! whole flow on PostgreSQL. These drive `AppState` directly; the HTTP surface has its own tests.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::fill_store;
use kindred_core::FitContext;
use kindred_rank::RequestFilters;
use kindred_server::AppState;
use kindred_serving::snapshot::ListRequest;
use kindred_serving::{ServeMode, ServerConfig, TrainSpec};
use kindred_store::{PostgresStore, Store};

const MODEL: &str = "als:factors=8,iterations=3";

fn spec(model: &str) -> TrainSpec {
    TrainSpec {
        model: model.to_owned(),
        positive: None,
        seed: 7,
        pipeline: None,
    }
}

struct Sqlite {
    dir: tempfile::TempDir,
}

impl Sqlite {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn location(&self) -> String {
        self.dir.path().join("store.db").display().to_string()
    }

    fn config(&self) -> ServerConfig {
        ServerConfig {
            store: self.location(),
            models_dir: Some(self.dir.path().join("models")),
            ..ServerConfig::default()
        }
    }

    async fn store(&self) -> Store {
        Store::open(&self.location()).await.unwrap()
    }
}

/// A click by `user` on `item` at a fixed time after the synthetic data.
fn click(user: &str, item: &str) -> kindred_store::Feedback {
    kindred_store::Feedback {
        user: user.to_owned(),
        item: item.to_owned(),
        event_type: "click".into(),
        value: None,
        timestamp: 1_900_000_000,
        event_id: None,
    }
}

/// Trains and registers a version and makes it live.
async fn publish(store: &Store, config: &ServerConfig, model: &str) -> String {
    let version = register(store, config, model).await;
    store.activate_model(&version).await.unwrap();
    version
}

/// Trains and registers a version without making it live.
async fn register(store: &Store, config: &ServerConfig, model: &str) -> String {
    kindred_serving::train_and_register(
        store,
        &config.artifacts_dir(),
        &spec(model),
        FitContext::with_seed(7),
    )
    .await
    .unwrap()
    .model
    .version
}

/// Waits until `done` holds, polling; false after `limit`.
async fn eventually(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if done() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    done()
}

/// Runs the server's background loop (the scheduler among it) until a version other than
/// `first` is live, at most `limit`; true when one is.
async fn scheduler_replaces(state: &AppState, first: &str, limit: Duration) -> bool {
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let background = tokio::spawn(kindred_serving::background::run(
        Arc::clone(&state.serving.state),
        Arc::clone(&state.serving.lifecycle),
        stopped,
    ));
    let swapped = eventually(limit, || serves_other_than(state, first)).await;
    let _ = stop.send(true);
    background.await.unwrap();
    swapped
}

/// Whether a version other than `version` is live.
fn serves_other_than(state: &AppState, version: &str) -> bool {
    state
        .serving
        .snapshot()
        .version()
        .is_some_and(|v| v != version)
}

fn request(user: &str, n: usize) -> ListRequest<'_> {
    ListRequest {
        user: Some(user),
        n,
        now: 2_000_000_000,
        ..ListRequest::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_mode_serves_the_lists_realtime_scoring_gives() {
    let db = Sqlite::new();
    let store = db.store().await;
    fill_store(&store).await;
    let config = ServerConfig {
        mode: ServeMode::Batch,
        batch_size: 20,
        ..db.config()
    };
    publish(&store, &config, MODEL).await;
    let state = AppState::new(config, store).await.unwrap();
    let snapshot = state.serving.snapshot();
    assert!(snapshot.is_batch());
    for u in 0..snapshot.users.len() as u32 {
        let user = snapshot.users.external(u).to_owned();
        for (offset, n) in [(0, 10), (5, 10), (0, 20)] {
            let mut req = request(&user, n);
            req.offset = offset;
            let pre = snapshot.precomputed(&req).expect("a precomputed page");
            let now = snapshot.rank_now(&req).unwrap();
            let ids = |l: &[kindred_rank::RankedItem]| l.iter().map(|r| r.item).collect::<Vec<_>>();
            assert_eq!(ids(pre), ids(&now), "user {user} page {offset}+{n}");
        }
        // Deeper than precomputed, filtered, or with new history: scored at request time.
        assert!(snapshot.precomputed(&request(&user, 21)).is_none());
        let mut filtered = request(&user, 5);
        filtered.filters = RequestFilters {
            categories: Vec::new(),
            exclude: vec!["i1".into()],
        };
        assert!(snapshot.precomputed(&filtered).is_none());
        let mut with_history = request(&user, 5);
        with_history.history = vec![0];
        assert!(snapshot.precomputed(&with_history).is_none());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduler_retrains_publishes_and_swaps_without_blocking_lists() {
    let db = Sqlite::new();
    let store = db.store().await;
    fill_store(&store).await;
    let mut config = db.config();
    config.training.model = MODEL.into();
    config.training.interval_seconds = 1;
    let first = publish(&store, &config, MODEL).await;
    // Feedback after the first version, so the scheduler has something new to learn.
    store.insert_feedback(&[click("u1", "i2")]).await.unwrap();
    let state = AppState::new(config, store.clone()).await.unwrap();
    assert_eq!(state.serving.snapshot().version(), Some(first.as_str()));
    let swapped = scheduler_replaces(&state, &first, Duration::from_secs(30)).await;
    assert!(swapped, "the scheduler did not publish a new version");
    // Lists keep coming after it swaps.
    let list = state
        .serving
        .snapshot()
        .rank_now(&request("u1", 5))
        .unwrap();
    assert_eq!(list.len(), 5);
    let models = store.list_models().await.unwrap();
    assert!(models.len() >= 2);
    let live: Vec<_> = models.iter().filter(|m| m.live).collect();
    assert_eq!(live.len(), 1);
    assert_eq!(
        state.serving.snapshot().version(),
        Some(live[0].model.version.as_str())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_auto_training_selects_again_on_the_new_data_within_its_budget() {
    const AUTO: &str = "auto:families=popularity+itemknn+als,trials=2,budget=20";
    let db = Sqlite::new();
    let store = db.store().await;
    fill_store(&store).await;
    let mut config = db.config();
    config.training.model = AUTO.into();
    config.training.interval_seconds = 1;
    let first = publish(&store, &config, AUTO).await;
    store
        .insert_feedback(&[click("u1", "i2"), click("u2", "i3"), click("u3", "i4")])
        .await
        .unwrap();
    let state = AppState::new(config, store.clone()).await.unwrap();
    let swapped = scheduler_replaces(&state, &first, Duration::from_secs(90)).await;
    assert!(swapped, "the scheduler did not publish an auto version");
    let models = store.list_models().await.unwrap();
    let selection_of = |version: &str| {
        let record = models
            .iter()
            .find(|m| m.model.version == version)
            .expect("a registered version");
        let selection = record.model.metrics["selection"].clone();
        assert_eq!(
            selection["chosen_family"],
            record.model.algorithm.as_str(),
            "{version} serves the family it chose"
        );
        selection
    };
    let before = selection_of(&first);
    let live = state.serving.snapshot().version().unwrap().to_owned();
    let after = selection_of(&live);
    assert!(live.starts_with("auto-"), "{live}");
    // The retrain searched again, on the data as it is now (the three new clicks), not
    // reusing the first version's choice.
    assert_eq!(
        after["interactions"].as_u64(),
        before["interactions"].as_u64().map(|n| n + 3),
        "{after}"
    );
    assert!(!after["trials"].as_array().unwrap().is_empty());
    // Within the budget (the final refit comes on top of it).
    let search = after["search_seconds"].as_f64().unwrap();
    assert!(search <= 20.0 * 1.1, "searched {search} s on a 20 s budget");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduler_skips_when_no_feedback_arrived() {
    let db = Sqlite::new();
    let store = db.store().await;
    fill_store(&store).await;
    let mut config = db.config();
    config.training.model = MODEL.into();
    config.training.interval_seconds = 1;
    let first = publish(&store, &config, MODEL).await;
    let state = AppState::new(config, store.clone()).await.unwrap();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let background = tokio::spawn(kindred_serving::background::run(
        Arc::clone(&state.serving.state),
        Arc::clone(&state.serving.lifecycle),
        stopped,
    ));
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let _ = stop.send(true);
    background.await.unwrap();
    assert_eq!(store.list_models().await.unwrap().len(), 1);
    assert_eq!(state.serving.snapshot().version(), Some(first.as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_published_elsewhere_is_swapped_in() {
    let db = Sqlite::new();
    let store = db.store().await;
    fill_store(&store).await;
    let config = ServerConfig {
        watch_interval_ms: 100,
        ..db.config()
    };
    let state = AppState::new(config.clone(), store).await.unwrap();
    assert_eq!(
        state.serving.snapshot().version(),
        None,
        "nothing published yet"
    );
    // Before any model: the fallback chain still fills lists.
    let list = state
        .serving
        .snapshot()
        .rank_now(&request("u1", 5))
        .unwrap();
    assert_eq!(list.len(), 5);
    assert!(list
        .iter()
        .all(|r| !r.source.to_string().starts_with("model")));
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let background = tokio::spawn(kindred_serving::background::run(
        Arc::clone(&state.serving.state),
        Arc::clone(&state.serving.lifecycle),
        stopped,
    ));
    // Another process (here: another connection) trains and publishes, as
    // `kindred train --store ... --publish` does.
    let other = db.store().await;
    let version = publish(&other, &config, MODEL).await;
    let swapped = eventually(Duration::from_secs(20), || {
        state.serving.snapshot().version() == Some(version.as_str())
    })
    .await;
    let _ = stop.send(true);
    background.await.unwrap();
    assert!(swapped);
    let list = state
        .serving
        .snapshot()
        .rank_now(&request("u1", 5))
        .unwrap();
    assert!(list.iter().all(|r| r.source.to_string() == "model:als"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_store_serves_folds_in_and_swaps_versions() {
    let Some(url) = kindred_testkit::postgres_url() else {
        return;
    };
    let schema = format!("kindred_server_test_{}", std::process::id());
    let store = Store::Postgres(PostgresStore::open(&url, Some(&schema)).await.unwrap());
    fill_store(&store).await;
    let dir = tempfile::tempdir().unwrap();
    let config = ServerConfig {
        store: url.clone(),
        models_dir: Some(dir.path().to_path_buf()),
        ..ServerConfig::default()
    };
    let first = publish(&store, &config, MODEL).await;
    let second = register(&store, &config, "als:factors=4,iterations=2").await;
    let state = AppState::new(config, store.clone()).await.unwrap();
    assert_eq!(state.serving.snapshot().version(), Some(first.as_str()));
    let before = state
        .serving
        .snapshot()
        .rank_now(&request("u1", 5))
        .unwrap();
    assert!(before.iter().all(|r| r.source.to_string() == "model:als"));
    // Real-time feedback: stored, then folded in on the next list.
    let event = kindred_store::Feedback {
        user: "u1".into(),
        item: kindred_store::import::feedback_from_interactions(
            &store.load_dataset("x").await.unwrap().interactions,
        )[0]
        .item
        .clone(),
        event_type: "click".into(),
        value: None,
        timestamp: 1_900_000_000,
        event_id: Some("pg-e1".into()),
    };
    store
        .insert_feedback(std::slice::from_ref(&event))
        .await
        .unwrap();
    state
        .serving
        .state
        .record_feedback(std::slice::from_ref(&event));
    let snapshot = state.serving.snapshot();
    let history = state.serving.state.overlay_items("u1", &snapshot);
    assert_eq!(history.len(), 1);
    let mut req = request("u1", 5);
    req.history = history.clone();
    let after = snapshot.rank_now(&req).unwrap();
    assert!(
        after.iter().all(|r| r.item != history[0]),
        "the new item is excluded"
    );
    assert!(after.iter().all(|r| r.source.to_string() == "fold-in:als"));
    // Activate the other version: swapped in, and the overlay survives until it is stored data.
    store.activate_model(&second).await.unwrap();
    state.serving.state.rebuild().await.unwrap();
    assert_eq!(state.serving.snapshot().version(), Some(second.as_str()));
    let rolled = store.rollback_model().await.unwrap();
    assert_eq!(rolled.model.version, first);
    state.serving.state.rebuild().await.unwrap();
    assert_eq!(state.serving.snapshot().version(), Some(first.as_str()));
    drop(state);
    drop(store);
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
        .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rank_configs_are_served_and_an_unservable_one_is_refused() {
    let db = Sqlite::new();
    let store = db.store().await;
    fill_store(&store).await;
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/rank");
    let config = ServerConfig {
        rank: Some(examples.join("diverse.toml")),
        rank_named: [("business".to_owned(), examples.join("business.toml"))].into(),
        ..db.config()
    };
    publish(&store, &config, MODEL).await;
    let state = AppState::new(config.clone(), store.clone()).await.unwrap();
    let snapshot = state.serving.snapshot();
    assert!(snapshot.has_rank("default") && snapshot.has_rank("business"));
    let mut req = request("u1", 10);
    assert_eq!(snapshot.rank_now(&req).unwrap().len(), 10);
    req.rank = Some("business");
    assert_eq!(snapshot.rank_now(&req).unwrap().len(), 10);
    req.rank = Some("nope");
    assert!(snapshot.rank_now(&req).is_err());
    let refused = ServerConfig {
        rank: Some(examples.join("second_stage.toml")),
        ..config
    };
    let Err(err) = AppState::new(refused, store).await else {
        panic!("a config with [second_stage] must be refused");
    };
    let err = err.to_string();
    assert!(err.contains("second_stage"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_snapshot_is_rebuilt_once_feedback_arrived() {
    let db = Sqlite::new();
    let store = db.store().await;
    fill_store(&store).await;
    let config = ServerConfig {
        watch_interval_ms: 100,
        refresh_interval_seconds: 1,
        ..db.config()
    };
    publish(&store, &config, MODEL).await;
    let state = AppState::new(config, store.clone()).await.unwrap();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let background = tokio::spawn(kindred_serving::background::run(
        Arc::clone(&state.serving.state),
        Arc::clone(&state.serving.lifecycle),
        stopped,
    ));
    // No feedback: old but unchanged data is not reloaded.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let first = state.serving.snapshot().id;
    assert_eq!(first, 1, "rebuilt without new feedback");
    let event = click("brand-new-user", state.serving.snapshot().items.external(0));
    store
        .insert_feedback(std::slice::from_ref(&event))
        .await
        .unwrap();
    state
        .serving
        .state
        .record_feedback(std::slice::from_ref(&event));
    let rebuilt = eventually(Duration::from_secs(10), || {
        state.serving.snapshot().id > first
    })
    .await;
    let _ = stop.send(true);
    background.await.unwrap();
    assert!(rebuilt);
    let snapshot = state.serving.snapshot();
    assert!(
        snapshot.users.get("brand-new-user").is_some(),
        "the stored event is in the data"
    );
    assert!(
        state
            .serving
            .state
            .overlay_items("brand-new-user", &snapshot)
            .is_empty(),
        "the overlay no longer repeats what the snapshot holds"
    );
}

/// A served SQLite store with two ALS versions, the first live and the second registered.
async fn two_versions() -> (Sqlite, Store, Arc<AppState>, String, String) {
    let db = Sqlite::new();
    let store = db.store().await;
    fill_store(&store).await;
    let config = db.config();
    let first = publish(&store, &config, MODEL).await;
    let second = register(&store, &config, "als:factors=4,iterations=2").await;
    let state = AppState::new(config, store.clone()).await.unwrap();
    (db, store, state, first, second)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_swap_reuses_the_data_unless_it_changed_here_or_elsewhere() {
    let (db, store, state, first, second) = two_versions().await;
    let data = Arc::clone(&state.serving.snapshot().data);
    store.activate_model(&second).await.unwrap();
    state.serving.state.rebuild().await.unwrap();
    assert_eq!(state.serving.snapshot().version(), Some(second.as_str()));
    assert!(
        Arc::ptr_eq(&data, &state.serving.snapshot().data),
        "nothing changed: data reused"
    );
    // Written by another process: the row counts differ, so the data is read again.
    let other = db.store().await;
    other
        .insert_feedback(&[click("elsewhere", "i1")])
        .await
        .unwrap();
    store.activate_model(&first).await.unwrap();
    state.serving.state.rebuild().await.unwrap();
    let snapshot = state.serving.snapshot();
    assert_eq!(snapshot.version(), Some(first.as_str()));
    assert!(!Arc::ptr_eq(&data, &snapshot.data));
    assert!(snapshot.users.get("elsewhere").is_some());
    // Written here (an item): read again too.
    let data = Arc::clone(&snapshot.data);
    state.serving.state.catalog_changed();
    state.serving.state.rebuild().await.unwrap();
    assert!(!Arc::ptr_eq(&data, &state.serving.snapshot().data));
}

/// Switching back to a recently live version on unchanged data swaps its kept snapshot in again
/// (no model load, no build); after a data change the kept snapshots are dropped and the same
/// switch builds afresh.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switching_back_reuses_the_kept_snapshot_until_the_data_changes() {
    let (_db, store, state, first, second) = two_versions().await;
    let first_snapshot = state.serving.snapshot();
    let swap_to = |version: String| {
        let (store, state) = (store.clone(), state.clone());
        async move {
            store.activate_model(&version).await.unwrap();
            state.serving.state.rebuild().await.unwrap();
            state.serving.snapshot()
        }
    };
    let second_snapshot = swap_to(second.clone()).await;
    assert_eq!(second_snapshot.version(), Some(second.as_str()));
    let again = swap_to(first.clone()).await;
    assert!(
        Arc::ptr_eq(&again, &first_snapshot),
        "the kept snapshot is swapped back in"
    );
    assert!(Arc::ptr_eq(
        &swap_to(second.clone()).await,
        &second_snapshot
    ));
    let live = state.serving.snapshot();
    let served = live.rank_now(&request(live.users.external(0), 3)).unwrap();
    assert!(!served.is_empty(), "the swapped-back snapshot serves");

    // New feedback here: the data is read again and the kept snapshots cannot serve it.
    state.serving.state.catalog_changed();
    let rebuilt = swap_to(first.clone()).await;
    assert_eq!(rebuilt.version(), Some(first.as_str()));
    assert!(!Arc::ptr_eq(&rebuilt, &first_snapshot));
    assert!(!Arc::ptr_eq(&rebuilt.data, &first_snapshot.data));
    let back = swap_to(second.clone()).await;
    assert!(
        !Arc::ptr_eq(&back, &second_snapshot),
        "built on the new data"
    );
    assert!(Arc::ptr_eq(&back.data, &rebuilt.data));
}

/// A rebuild that read new data and then failed (here the version's files are gone, so its
/// model cannot load) serves nothing of that read: the next rebuild reads the data again
/// instead of taking the old snapshot's data as current.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_rebuild_after_new_data_reads_the_data_again_next_time() {
    let (_db, store, state, first, second) = two_versions().await;
    let before = state.serving.snapshot();
    let record = store.get_model(&second).await.unwrap().unwrap();
    std::fs::remove_dir_all(&record.model.artifact).unwrap();
    state.serving.state.catalog_changed();
    store.activate_model(&second).await.unwrap();
    assert!(state.serving.state.rebuild().await.is_err());
    assert!(
        Arc::ptr_eq(&state.serving.snapshot(), &before),
        "still serving"
    );

    store.activate_model(&first).await.unwrap();
    state.serving.state.rebuild().await.unwrap();
    let after = state.serving.snapshot();
    assert_eq!(after.version(), Some(first.as_str()));
    assert!(
        !Arc::ptr_eq(&after.data, &before.data),
        "the data is read again"
    );
}

/// `[training] retrain_on_drift` (issue 22): a drift alert starts a retrain, and a second one
/// within `drift_retrain_min_seconds` does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drift_alert_schedules_one_rate_limited_retrain() {
    use kindred_stats::monitoring::alerts::{Alert, AlertKind};
    let db = Sqlite::new();
    let store = db.store().await;
    fill_store(&store).await;
    let mut config = db.config();
    config.training.model = MODEL.into();
    config.training.retrain_on_drift = true;
    config.training.drift_retrain_min_seconds = 3_600;
    config.watch_interval_ms = 50;
    let first = publish(&store, &config, MODEL).await;
    store.insert_feedback(&[click("u1", "i2")]).await.unwrap();
    let state = AppState::new(config, store.clone()).await.unwrap();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let background = tokio::spawn(kindred_serving::background::run(
        Arc::clone(&state.serving.state),
        Arc::clone(&state.serving.lifecycle),
        stopped,
    ));
    let drift = |subject: &str| Alert {
        kind: AlertKind::Drift,
        subject: subject.into(),
        value: 0.5,
        limit: 0.25,
        window: None,
        message: "test drift".into(),
    };
    // No alert, no retrain.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(store.list_models().await.unwrap().len(), 1);
    let now = kindred_serving::unix_now();
    state
        .serving
        .monitor
        .alerts
        .raise(vec![drift("item_popularity")], now);
    let retrained = eventually(Duration::from_secs(30), || {
        serves_other_than(&state, &first)
    })
    .await;
    assert!(retrained, "a drift alert did not start a retrain");
    store.insert_feedback(&[click("u2", "i3")]).await.unwrap();
    state
        .serving
        .monitor
        .alerts
        .raise(vec![drift("user_activity")], now);
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let _ = stop.send(true);
    background.await.unwrap();
    assert_eq!(
        store.list_models().await.unwrap().len(),
        2,
        "the second alert came within drift_retrain_min_seconds"
    );
}
