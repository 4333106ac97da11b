//! The quality gate (issue 22): a retrain the server makes live goes live only when it scores
//! within the tolerance of the live version on the live version's own holdout. A retrain on
//! deliberately corrupted data (every event's item shuffled) is kept inactive with an alert
//! naming the metric and both values; a good retrain goes live.

use std::sync::Arc;

use kindred_data::import::ImportOptions;
use kindred_data::spec::DataSpec;
use kindred_serving::lifecycle::gate;
use kindred_serving::{ServerConfig, Serving};
use kindred_store::import::{feedback_from_interactions, items_from_features};
use kindred_store::Store;

const MODEL: &str = "als:factors=16,iterations=6";

async fn serving(dir: &std::path::Path) -> (Serving, String) {
    let location = dir.join("store.db").display().to_string();
    let store = Store::open(&location).await.unwrap();
    let (dataset, _) = kindred_data::spec::load(
        &DataSpec::parse("synthetic:users=400,items=200,seed=11").unwrap(),
        &ImportOptions::default(),
    )
    .unwrap();
    if let Some(items) = dataset.item_features.as_deref() {
        store
            .upsert_items(&items_from_features(items))
            .await
            .unwrap();
    }
    store
        .insert_feedback(&feedback_from_interactions(&dataset.interactions))
        .await
        .unwrap();
    let mut config = ServerConfig {
        store: location.clone(),
        models_dir: Some(dir.join("models")),
        ..ServerConfig::default()
    };
    config.training.model = MODEL.into();
    config.training.eval_users = 200;
    config.validate().unwrap();
    (Serving::open(config, store).await.unwrap(), location)
}

/// Gives every feedback row the item of another row (a seeded permutation): the same
/// popularity and volume, no relation between a user and what they did.
fn shuffle_items(location: &str) {
    let conn = rusqlite::Connection::open(location).unwrap();
    let rows: Vec<(i64, String)> = conn
        .prepare("SELECT seq, item_id FROM feedback ORDER BY seq")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let mut items: Vec<&String> = rows.iter().map(|(_, item)| item).collect();
    let mut state = 99u64;
    for i in (1..items.len()).rev() {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        items.swap(i, (state >> 33) as usize % (i + 1));
    }
    let tx = conn.unchecked_transaction().unwrap();
    for ((seq, _), item) in rows.iter().zip(items) {
        tx.execute(
            "UPDATE feedback SET item_id = ?1 WHERE seq = ?2",
            rusqlite::params![item, seq],
        )
        .unwrap();
    }
    tx.commit().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupted_retrain_stays_inactive_and_a_good_one_goes_live() {
    let dir = tempfile::tempdir().unwrap();
    let (serving, location) = serving(dir.path()).await;
    let lifecycle = Arc::clone(&serving.lifecycle);
    let spec = lifecycle.spec(None, None, None).unwrap();

    // The first version has nothing to be compared with.
    let first = lifecycle.train_now(&spec, true).await.unwrap();
    assert!(first.live && first.model.metrics.get("gate").is_none());
    let first_ndcg = first.model.metrics["offline"]["ndcg@10"].as_f64().unwrap();
    assert!(
        first_ndcg > 0.05,
        "the data should be learnable: {first_ndcg}"
    );

    // A good retrain (the same data, another seed) goes live.
    let reseeded = kindred_serving::TrainSpec {
        seed: 5,
        ..spec.clone()
    };
    let good = lifecycle.train_now(&reseeded, true).await.unwrap();
    let verdict = gate::recorded_verdict(&good).expect("the retrain was gated");
    assert!(verdict.passed, "{}", verdict.reason);
    assert!(good.live, "a retrain that passed the gate is live");
    assert_eq!(verdict.live_version, first.model.version);
    assert_eq!(
        serving.snapshot().version(),
        Some(good.model.version.as_str())
    );

    // The same store with every item shuffled: the retrain is kept inactive.
    shuffle_items(&location);
    let corrupted = lifecycle.train_now(&spec, true).await.unwrap();
    let verdict = gate::recorded_verdict(&corrupted).expect("the retrain was gated");
    assert!(!verdict.passed, "{verdict:?}");
    assert!(!corrupted.live);
    let live = serving.store().live_model().await.unwrap().unwrap();
    assert_eq!(
        live.model.version, good.model.version,
        "the live version did not change"
    );
    assert_eq!(
        serving.snapshot().version(),
        Some(good.model.version.as_str())
    );
    let candidate = verdict.candidate.unwrap();
    assert!(candidate < verdict.live * 0.95, "{verdict:?}");
    let alerts = serving.monitor.alerts.recent(10);
    let alert = alerts
        .iter()
        .find(|a| a.alert.kind == kindred_stats::monitoring::alerts::AlertKind::QualityGate)
        .expect("a quality-gate alert");
    let message = &alert.alert.message;
    assert!(
        message.contains(&corrupted.model.version)
            && message.contains("ndcg@10")
            && message.contains(&format!("{candidate:.4}"))
            && message.contains(&format!("{:.4}", verdict.live)),
        "the alert names the version, the metric and both values: {message}"
    );
    // Its own holdout (drawn from the corrupted data) would not have caught it as surely:
    // the gate's number is measured on the live version's events.
    assert!(
        corrupted.model.metrics["gate_measure"]["users"]
            .as_u64()
            .unwrap()
            > 0
    );

    // Gate off: the same corrupted retrain goes live (the gate is what stopped it).
    let mut config = serving.config().clone();
    config.training.gate.enabled = false;
    let ungated = Serving::open(config, serving.store().clone())
        .await
        .unwrap();
    let forced = ungated.lifecycle.train_now(&spec, true).await.unwrap();
    assert!(forced.live && forced.model.metrics.get("gate").is_none());
}
