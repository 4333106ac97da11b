//! Data governance over HTTP: model retention (`DELETE /v1/models/{version}`, `[retention] keep`
//! after a training run) and erasure of users and items (`DELETE /v1/users/{id}?erase=true`,
//! `DELETE /v1/items/{id}?erase=true`).

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::{start, Options, TestServer};
use kindred_core::FitContext;
use kindred_serving::TrainSpec;
use serde_json::json;

const ADMIN: &str = "admin-key";
const WRITE: &str = "write-key";
const READ: &str = "read-key";

fn keys() -> Options {
    Options::keys(Some(READ), Some(WRITE), Some(ADMIN))
}

/// Registers a popularity version (not live) and answers its name.
async fn register(server: &TestServer, seed: u64) -> String {
    kindred_serving::train_and_register(
        server.state.serving.store(),
        &server.state.serving.config().artifacts_dir(),
        &TrainSpec {
            model: "popularity".into(),
            positive: None,
            seed,
        },
        FitContext::with_seed(seed),
    )
    .await
    .expect("register a popularity version")
    .model
    .version
}

async fn artifact(server: &TestServer, version: &str) -> PathBuf {
    let record = server
        .state
        .serving
        .store()
        .get_model(version)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("{version} is registered"));
    PathBuf::from(record.model.artifact)
}

async fn registered(server: &TestServer) -> Vec<String> {
    let mut versions: Vec<String> = server
        .state
        .serving
        .store()
        .list_models()
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.model.version)
        .collect();
    versions.sort();
    versions
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_version_spares_the_live_one_and_experiment_versions() {
    let server = start(keys()).await;
    let live = server.version.clone().expect("a live version");
    let admin = server.client_with_key(ADMIN);
    let canary = register(&server, 1).await;
    let old = register(&server, 2).await;
    admin
        .post(
            &format!("/v1/models/{canary}/canary"),
            &json!({ "percent": 10 }),
        )
        .await
        .expect_status(201);

    let answer = admin.delete(&format!("/v1/models/{live}")).await;
    answer.expect_status(409);
    assert_eq!(answer.error_code(), Some("version_live"));
    let answer = admin.delete(&format!("/v1/models/{canary}")).await;
    answer.expect_status(409);
    assert_eq!(answer.error_code(), Some("version_in_experiment"));
    assert!(answer.text().contains(&format!("canary-{canary}")));
    let answer = admin.delete("/v1/models/no-such-version").await;
    answer.expect_status(404);
    assert_eq!(answer.error_code(), Some("not_found"));
    for key in [WRITE, READ] {
        let answer = server
            .client_with_key(key)
            .delete(&format!("/v1/models/{old}"))
            .await;
        answer.expect_status(403);
    }
    let bad = admin
        .delete(&format!("/v1/models/{}", "x".repeat(300)))
        .await;
    bad.expect_status(400);

    let dir = artifact(&server, &old).await;
    assert!(dir.join("manifest.json").is_file());
    let answer = admin.delete(&format!("/v1/models/{old}")).await;
    answer.expect_status(204);
    assert!(!dir.exists(), "{} was removed", dir.display());
    admin
        .get(&format!("/v1/models/{old}"))
        .await
        .expect_status(404);
    admin
        .delete(&format!("/v1/models/{old}"))
        .await
        .expect_status(404);
    let mut left = vec![live.clone(), canary.clone()];
    left.sort();
    assert_eq!(registered(&server).await, left);
    // The live version still serves.
    let list = admin.get("/v1/recommend/u1?n=3").await;
    list.expect_status(200);
    assert_eq!(list.json()["model_version"], json!(live));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_after_training_keeps_the_newest_the_live_and_the_canary() {
    let server = start(keys().tweak(|c| c.retention.keep = 1)).await;
    let live = server.version.clone().expect("a live version");
    let admin = server.client_with_key(ADMIN);
    let canary = register(&server, 1).await;
    let old = [register(&server, 2).await, register(&server, 3).await];
    admin
        .post(
            &format!("/v1/models/{canary}/canary"),
            &json!({ "percent": 10 }),
        )
        .await
        .expect_status(201);
    let old_dirs = [
        artifact(&server, &old[0]).await,
        artifact(&server, &old[1]).await,
    ];
    let kept_dirs = [
        artifact(&server, &live).await,
        artifact(&server, &canary).await,
    ];
    // Versions are ordered by creation second: the next one is strictly the newest.
    tokio::time::sleep(Duration::from_millis(1100)).await;

    let trained = admin
        .post(
            "/v1/models",
            &json!({ "model": "popularity", "wait": true, "activate": false }),
        )
        .await;
    trained.expect_status(201);
    let newest = trained.json()["version"]
        .as_str()
        .expect("a version")
        .to_owned();
    let mut expected = vec![live.clone(), canary.clone(), newest.clone()];
    expected.sort();
    assert_eq!(registered(&server).await, expected);
    for dir in &old_dirs {
        assert!(!dir.exists(), "{} was pruned", dir.display());
    }
    for dir in &kept_dirs {
        assert!(
            dir.join("manifest.json").is_file(),
            "{} kept",
            dir.display()
        );
    }
    assert!(artifact(&server, &newest)
        .await
        .join("manifest.json")
        .is_file());
}
