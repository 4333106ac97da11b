//! Shared by the simulator's integration tests: a world imported into a SQLite store, versions
//! trained from it, a server on a free loopback port, and a simulator run to the end.
#![allow(dead_code)] // each test binary uses its own subset

use std::net::SocketAddr;
use std::sync::Arc;

use kindred_core::{CancelFlag, FitContext, NoProgress};
use kindred_server::AppState;
use kindred_serving::{ServerConfig, TrainSpec};
use kindred_sim::{simulate, SimConfig, SimSummary, World};
use kindred_store::import::{feedback_from_interactions, items_from_features, users_from_features};
use kindred_store::Store;

pub const WORLD: &str = "users=300,items=120,per_user=25,seed=5,implicit=true";
pub const GOOD: &str = "als:factors=16,iterations=10";

pub struct Served {
    pub addr: SocketAddr,
    pub state: Arc<AppState>,
    pub store: Store,
    pub versions: Vec<String>,
    _shutdown: tokio::sync::oneshot::Sender<()>,
    _dir: tempfile::TempDir,
}

/// Imports the world's history into a SQLite store in a tempdir, registers one version per
/// model spec (the first made live) and serves it on a free loopback port.
pub async fn serve(
    world: &World,
    models: &[&str],
    tweak: impl FnOnce(&mut ServerConfig),
) -> Served {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("store.db").to_str().unwrap().to_owned();
    let store = Store::open(&db).await.unwrap();
    let data = world.dataset();
    store
        .upsert_users(&users_from_features(data.user_features.as_deref().unwrap()))
        .await
        .unwrap();
    store
        .upsert_items(&items_from_features(data.item_features.as_deref().unwrap()))
        .await
        .unwrap();
    store
        .insert_feedback(&feedback_from_interactions(&data.interactions))
        .await
        .unwrap();
    let mut config = ServerConfig {
        store: db,
        models_dir: Some(dir.path().join("models")),
        ..ServerConfig::default()
    };
    tweak(&mut config);
    let mut versions = Vec::new();
    for model in models {
        let spec = TrainSpec {
            model: (*model).into(),
            positive: None,
            seed: 42,
            pipeline: None,
        };
        let record = kindred_serving::train_and_register(
            &store,
            &config.artifacts_dir(),
            &spec,
            FitContext::with_seed(42),
        )
        .await
        .unwrap();
        versions.push(record.model.version);
    }
    if let Some(first) = versions.first() {
        store.activate_model(first).await.unwrap();
    }
    let state = AppState::new(config, store.clone()).await.unwrap();
    let listener = kindred_server::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(kindred_server::serve(Arc::clone(&state), listener, async {
        let _ = rx.await;
    }));
    Served {
        addr,
        state,
        store,
        versions,
        _shutdown: tx,
        _dir: dir,
    }
}

/// Runs the simulator to the end (no progress, never cancelled).
pub async fn run(world: &Arc<World>, config: SimConfig) -> SimSummary {
    simulate(
        Arc::clone(world),
        config,
        Arc::new(NoProgress),
        CancelFlag::new(),
    )
    .await
    .unwrap()
}
