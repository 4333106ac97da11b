//! What a training run records about its version: offline ranking metrics on a holdout of recent
//! events and the learning curve of iterative models, through the one training path the CLI, the
//! API and the scheduler share; and the control charts built from those records.

mod common;

use common::fill_store;
use kindred_core::FitContext;
use kindred_serving::{OfflineEval, ServerConfig, TrainSpec};
use kindred_store::{ModelRecord, Store};
use serde_json::Value;

/// A store filled with a small seeded synthetic dataset, and where artifacts go.
async fn filled_store(dir: &tempfile::TempDir) -> (Store, std::path::PathBuf) {
    let location = dir.path().join("store.db").display().to_string();
    let store = Store::open(&location).await.unwrap();
    fill_store(&store).await;
    (store, dir.path().join("models"))
}

async fn train(
    store: &Store,
    artifacts: &std::path::Path,
    model: &str,
    eval: &OfflineEval,
) -> ModelRecord {
    let spec = TrainSpec {
        model: model.to_owned(),
        positive: None,
        seed: 7,
        pipeline: None,
    };
    kindred_serving::train_and_register_with(
        store,
        artifacts,
        &spec,
        FitContext::with_seed(7),
        eval,
    )
    .await
    .unwrap()
}

fn assert_offline_metrics(metrics: &Value, max_users: u64) {
    let offline = &metrics["offline"];
    assert!(offline.get("error").is_none(), "{offline}");
    for name in kindred_serving::lifecycle::OFFLINE_METRICS {
        let v = offline[name]
            .as_f64()
            .unwrap_or_else(|| panic!("{name} in {offline}"));
        assert!((0.0..=1.0).contains(&v), "{name} = {v}");
    }
    let users = offline["users"].as_u64().unwrap();
    assert!(users > 0 && users <= max_users, "users = {users}");
    assert!(offline["protocol"]
        .as_str()
        .unwrap()
        .starts_with("temporal:0.2"));
    assert!(offline["test_interactions"].as_u64().unwrap() >= users);
    // The served model is fitted on everything.
    assert_eq!(
        offline["train_interactions"].as_u64().unwrap()
            + offline["test_interactions"].as_u64().unwrap(),
        metrics["interactions"].as_u64().unwrap()
    );
}

#[tokio::test]
async fn iterative_models_record_metrics_and_a_curve() {
    let dir = tempfile::tempdir().unwrap();
    let (store, artifacts) = filled_store(&dir).await;
    let eval = OfflineEval {
        users: 50,
        ..OfflineEval::default()
    };
    for (model, epochs) in [
        ("als:factors=8,iterations=4,training_loss=true", 4),
        ("bpr:factors=8,iterations=5", 5),
    ] {
        let record = train(&store, &artifacts, model, &eval).await;
        let metrics = &record.model.metrics;
        assert_offline_metrics(metrics, 50);
        let curve = metrics["curve"]
            .as_array()
            .unwrap_or_else(|| panic!("{model}: {metrics}"));
        assert_eq!(curve.len(), epochs, "{model}: one point per epoch");
        for (e, point) in curve.iter().enumerate() {
            assert_eq!(point["epoch"].as_u64(), Some(e as u64));
            assert!(point["loss"].as_f64().unwrap().is_finite());
        }
        // The registry holds what was returned (to the last bit or so: serde_json's default
        // float parsing may round the last digit).
        let stored = store
            .get_model(&record.model.version)
            .await
            .unwrap()
            .unwrap();
        for name in kindred_serving::lifecycle::OFFLINE_METRICS {
            let (a, b) = (
                stored.model.metrics["offline"][name].as_f64().unwrap(),
                metrics["offline"][name].as_f64().unwrap(),
            );
            assert!((a - b).abs() < 1e-12, "{name}: {a} vs {b}");
        }
        assert_eq!(
            stored.model.metrics["curve"].as_array().map(Vec::len),
            Some(epochs)
        );
    }
}

#[tokio::test]
async fn non_iterative_models_record_metrics_without_a_curve() {
    let dir = tempfile::tempdir().unwrap();
    let (store, artifacts) = filled_store(&dir).await;
    let record = train(&store, &artifacts, "popularity", &OfflineEval::default()).await;
    assert_offline_metrics(&record.model.metrics, 500);
    assert!(record.model.metrics.get("curve").is_none());
}

#[tokio::test]
async fn evaluation_off_records_no_offline_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let (store, artifacts) = filled_store(&dir).await;
    let off = OfflineEval {
        enabled: false,
        ..OfflineEval::default()
    };
    let record = train(
        &store,
        &artifacts,
        "als:factors=8,iterations=2,training_loss=true",
        &off,
    )
    .await;
    assert!(record.model.metrics.get("offline").is_none());
    assert_eq!(
        record.model.metrics["curve"].as_array().map(Vec::len),
        Some(2)
    );
    // The config key reaches the same settings.
    let config: ServerConfig =
        ServerConfig::from_toml_str("[training]\nevaluate = false\neval_users = 7\n", "t.toml")
            .unwrap();
    assert_eq!(
        config.training.offline_eval(),
        OfflineEval {
            enabled: false,
            users: 7,
            ..OfflineEval::default()
        }
    );
}

#[tokio::test]
async fn the_same_data_and_seed_give_the_same_offline_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let (store, artifacts) = filled_store(&dir).await;
    let eval = OfflineEval {
        users: 40,
        ..OfflineEval::default()
    };
    let a = train(&store, &artifacts, "popularity", &eval).await;
    let b = train(&store, &artifacts, "popularity", &eval).await;
    for name in kindred_serving::lifecycle::OFFLINE_METRICS {
        assert_eq!(
            a.model.metrics["offline"][name], b.model.metrics["offline"][name],
            "{name}"
        );
    }
    // Three retrains of one algorithm make a control chart; identical values stay in control.
    let c = train(&store, &artifacts, "popularity", &eval).await;
    let records = [a, b, c];
    let charts = kindred_serving::offline_control_charts(&records);
    assert!(charts
        .iter()
        .any(|c| c.metric == "ndcg@10" && c.points.len() == 3));
    assert!(kindred_serving::offline_alerts(&records).is_empty());
}

#[tokio::test]
async fn an_auto_version_records_its_selection_and_serves_the_winner() {
    let dir = tempfile::tempdir().unwrap();
    let (store, artifacts) = filled_store(&dir).await;
    let eval = OfflineEval {
        users: 50,
        ..OfflineEval::default()
    };
    let record = train(
        &store,
        &artifacts,
        "auto:families=popularity+itemknn+als,trials=2,budget=600",
        &eval,
    )
    .await;
    let metrics = &record.model.metrics;
    let selection = &metrics["selection"];
    // The version is named by the spec, recorded as the family it chose.
    assert!(record.model.version.starts_with("auto-"));
    assert_eq!(selection["chosen_family"], record.model.algorithm.as_str());
    assert_eq!(selection["validation"], "temporal:0.2");
    assert_eq!(selection["trials"].as_array().unwrap().len(), 5);
    // The offline holdout measured auto as a process (choice included), like any spec.
    assert_offline_metrics(metrics, 50);
    // The artifact loads as the winner's family, with the trace in its manifest.
    let manifest_path = std::path::Path::new(&record.model.artifact).join("manifest.json");
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(manifest_path).unwrap()).unwrap();
    assert_eq!(manifest["algorithm"], record.model.algorithm.as_str());
    // The same trace (compared by what it says: floats may differ in their last digit after
    // the store's JSON round trip).
    assert_eq!(manifest["selection"]["chosen"], selection["chosen"]);
    assert_eq!(
        manifest["selection"]["trials"].as_array().map(Vec::len),
        Some(5)
    );
    let loaded = kindred_serving::lifecycle::training::load_version(&record).unwrap();
    assert_eq!(loaded.name(), record.model.algorithm);
    // A bad auto spec is refused before any training starts.
    let spec = TrainSpec {
        model: "auto:budget=0".into(),
        positive: None,
        seed: 7,
        pipeline: None,
    };
    let err = kindred_serving::train_and_register(&store, &artifacts, &spec, FitContext::default())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("positive number of seconds"), "{err}");
}
