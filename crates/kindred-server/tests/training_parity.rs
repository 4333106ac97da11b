//! One training path (issue 22): ML-100K cleaned by one pipeline config gives the same model
//! wherever it is trained. The file path (`kindred train --data movielens:... --pipeline`, which
//! calls [`kindred_serving::fit_version`] on the loaded file), the store path after an import
//! (`kindred train --store`), a `POST /v1/models` run (the lifecycle's `spec` and `train_now`,
//! which the route calls with the request's fields) and a scheduled run (the background loop)
//! must give bit-identical artifacts and identical top-10 lists, on SQLite and PostgreSQL.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use kindred_core::FitContext;
use kindred_data::import::ImportOptions;
use kindred_data::preprocess::PipelineConfig;
use kindred_data::spec::DataSpec;
use kindred_models::model::AllItems;
use kindred_models::{Model, UserQuery};
use kindred_serving::{OfflineEval, ServerConfig, Serving, TrainSpec};
use kindred_store::import::{feedback_from_interactions, items_from_features};
use kindred_store::{ModelRecord, PostgresStore, Store};

const MODEL: &str = "als:factors=16,iterations=4";
const SEED: u64 = 7;
const PIPELINE: &str = "[dedup]\nexact = true\nwindow_seconds = 60\n\
                        [min_counts]\nkcore = 10\n\
                        [recency]\nhalf_life_days = 200\n";

fn spec() -> TrainSpec {
    TrainSpec {
        positive: Some(4.0),
        seed: SEED,
        pipeline: Some(PipelineConfig::from_toml_str(PIPELINE).unwrap()),
        ..TrainSpec::new(MODEL)
    }
}

fn tensors(dir: &Path) -> Vec<u8> {
    std::fs::read(dir.join("model.safetensors")).unwrap()
}

/// The top-10 lists of the first 200 users, by external id.
fn lists(model: &dyn Model) -> Vec<Vec<String>> {
    let fitted = model.fitted();
    (0..200u32.min(fitted.users.len() as u32))
        .map(|u| {
            model
                .recommend(&UserQuery::known(u), 10, &AllItems)
                .iter()
                .map(|s| fitted.items.external(s.item).to_owned())
                .collect()
        })
        .collect()
}

fn training_source(dir: &Path) -> serde_json::Value {
    let manifest = kindred_models::Manifest::read(dir).unwrap();
    manifest
        .training
        .expect("the manifest records how the version was made")["source"]["data"]
        .clone()
}

/// Imports ML-100K into `store` as `kindred import` does, trains it every way and compares
/// each version with the file-trained model. `work` holds the artifacts and the server config.
async fn parity_on(store: Store, work: &Path) {
    let Some(ml) = kindred_testkit::real_data_dir("ml-100k") else {
        return;
    };
    let (dataset, _) = kindred_data::spec::load(
        &DataSpec::parse(&format!("movielens:{}", ml.display())).unwrap(),
        &ImportOptions::default(),
    )
    .unwrap();
    let no_eval = OfflineEval {
        enabled: false,
        ..OfflineEval::default()
    };
    let file_dir = work.join("file-model");
    let file = kindred_serving::fit_version(
        &dataset,
        "movielens",
        &spec(),
        FitContext::with_seed(SEED),
        &no_eval,
    )
    .unwrap();
    kindred_serving::save_version(&file, &file_dir).unwrap();
    let cleaning = file.cleaning.as_ref().expect("the pipeline ran");
    assert!(
        cleaning.steps.iter().any(|s| s.rows_after < s.rows_before),
        "the pipeline should remove rows, or the test proves little: {cleaning}"
    );

    if let Some(items) = dataset.item_features.as_deref() {
        store
            .upsert_items(&items_from_features(items))
            .await
            .unwrap();
    }
    for chunk in feedback_from_interactions(&dataset.interactions).chunks(10_000) {
        store.insert_feedback(chunk).await.unwrap();
    }

    // `kindred train --store S --pipeline clean.toml` (offline metrics on, as by default).
    let artifacts = work.join("models");
    let cli = kindred_serving::train_and_register_with(
        &store,
        &artifacts,
        &spec(),
        FitContext::with_seed(SEED),
        &OfflineEval::default(),
    )
    .await
    .unwrap();

    // The server, configured as the operator would: `[training]` with the same file.
    std::fs::write(work.join("clean.toml"), PIPELINE).unwrap();
    std::fs::write(
        work.join("server.toml"),
        format!(
            "[training]\nmodel = \"{MODEL}\"\npositive = 4.0\nseed = {SEED}\n\
             pipeline = \"clean.toml\"\ninterval_seconds = 1\n"
        ),
    )
    .unwrap();
    let config = ServerConfig {
        models_dir: Some(artifacts.clone()),
        ..ServerConfig::from_file(&work.join("server.toml")).unwrap()
    };
    let serving = Serving::open(config, store.clone()).await.unwrap();
    // `POST /v1/models {"activate": false, "wait": true}` with no model named.
    let lifecycle = Arc::clone(&serving.lifecycle);
    let requested_spec = lifecycle.spec(None, None, None).unwrap();
    assert_eq!(requested_spec, spec(), "the server's spec is the CLI's");
    let requested = lifecycle.train_now(&requested_spec, false).await.unwrap();
    // `POST /v1/models {"like": VERSION}` retrains with the spec the version recorded.
    assert_eq!(lifecycle.spec_of(&cli.model.version).await.unwrap(), spec());

    // The scheduler's run: it trains when there is no live version yet.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let background = tokio::spawn(kindred_serving::background::run(
        Arc::clone(&serving.state),
        Arc::clone(&lifecycle),
        stopped,
    ));
    let mut scheduled: Option<ModelRecord> = None;
    for _ in 0..600 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if let Some(live) = store.live_model().await.unwrap() {
            scheduled = Some(live);
            break;
        }
    }
    let _ = stop.send(true);
    background.await.unwrap();
    let scheduled = scheduled.expect("the scheduler published a version within 60 s");

    let file_tensors = tensors(&file_dir);
    let file_lists = lists(file.model.as_ref());
    for (how, record) in [
        ("kindred train --store", &cli),
        ("POST /v1/models", &requested),
        ("the scheduler", &scheduled),
    ] {
        let dir = Path::new(&record.model.artifact);
        assert!(
            tensors(dir) == file_tensors,
            "{how}: the artifact's tensors differ from the file-trained model's"
        );
        let model = kindred_serving::lifecycle::training::load_version(record).unwrap();
        assert_eq!(
            lists(model.as_ref()),
            file_lists,
            "{how}: top-10 lists differ"
        );
        assert_eq!(
            training_source(dir),
            training_source(&file_dir),
            "{how}: the store's data is not the file's (counts or fingerprint)"
        );
        assert_eq!(record.model.params["spec"], serde_json::json!(spec()));
        assert!(record.model.metrics["cleaning"]["steps"].is_array());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_store_server_and_scheduler_train_what_the_file_path_trains() {
    let work = tempfile::tempdir().unwrap();
    let store = Store::open(&work.path().join("store.db").display().to_string())
        .await
        .unwrap();
    parity_on(store, work.path()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_store_server_and_scheduler_train_what_the_file_path_trains() {
    let Some(url) = kindred_testkit::postgres_url() else {
        return;
    };
    let schema = format!("kindred_parity_test_{}", std::process::id());
    let store = Store::Postgres(PostgresStore::open(&url, Some(&schema)).await.unwrap());
    let work = tempfile::tempdir().unwrap();
    parity_on(store.clone(), work.path()).await;
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
