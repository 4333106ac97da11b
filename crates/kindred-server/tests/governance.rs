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
            seed,
            ..TrainSpec::new("popularity")
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
    // The live version still serves (lists of users outside the canary come from it).
    let registry = admin.get("/v1/models").await;
    registry.expect_status(200);
    assert_eq!(registry.json()["serving"], json!(live));
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

/// The parts of a list answer that say what was served (not the request id).
fn served(answer: &common::Response) -> serde_json::Value {
    answer.expect_status(200);
    json!({
        "model_version": answer.json()["model_version"],
        "items": answer.json()["items"],
        "experiment": answer.json().get("experiment"),
    })
}

const NEVER_SEEN: &str = "someone-never-seen";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erasing_a_user_forgets_them_everywhere_and_training_follows() {
    let server = start(keys()).await;
    let store = server.state.serving.store().clone();
    let admin = server.client_with_key(ADMIN);
    let writer = server.client_with_key(WRITE);
    let reader = server.client_with_key(READ);
    let user = server.data.active_users()[0].clone();
    let their_events = server
        .data
        .feedback
        .iter()
        .filter(|f| f.user == user)
        .count();
    let total = store.counts().await.unwrap().feedback as usize;
    let list = |who: &str| format!("/v1/recommend/{who}?n=10");

    // Before: the model knows them, so their list is not the one of a stranger.
    let theirs = served(&reader.get(&list(&user)).await);
    let strangers = served(&reader.get(&list(NEVER_SEEN)).await);
    assert_ne!(theirs, strangers);
    let remembered = server.state.serving.monitor.online.remembered_users();
    assert!(remembered >= 2);

    let path = format!("/v1/users/{user}?erase=true");
    for client in [&writer, &reader] {
        let answer = client.delete(&path).await;
        answer.expect_status(403);
        assert_eq!(answer.error_code(), Some("forbidden"));
    }
    let answer = admin.delete(&format!("/v1/users/{user}?erase=maybe")).await;
    answer.expect_status(400);
    assert_eq!(answer.error_code(), Some("invalid_parameter"));
    assert!(
        store.get_user(&user).await.unwrap().is_some(),
        "nothing erased yet"
    );

    let answer = admin.delete(&path).await;
    answer.expect_status(200);
    assert_eq!(answer.json()["user"], json!(user));
    assert_eq!(
        answer.json()["removed"],
        json!({"users": 1, "items": 0, "feedback": their_events, "impressions": 0, "exposures": 0})
    );
    assert_eq!(
        store.counts().await.unwrap().feedback as usize,
        total - their_events
    );
    assert_eq!(
        server.state.serving.monitor.online.remembered_users(),
        remembered - 1,
        "their recent lists are forgotten"
    );

    // Served exactly as someone never seen, and nothing about them is kept any more.
    assert_eq!(served(&reader.get(&list(&user)).await), strangers);
    assert_eq!(
        served(
            &writer
                .get(&format!("{}&write_impressions=true", list(&user)))
                .await
        ),
        strangers
    );
    reader
        .get(&format!("/v1/users/{user}"))
        .await
        .expect_status(404);
    let similar = reader.get(&format!("/v1/similar-users/{user}")).await;
    let similar_stranger = reader.get(&format!("/v1/similar-users/{NEVER_SEEN}")).await;
    assert_eq!(similar.status, similar_stranger.status);
    let predicted = reader
        .post(
            "/v1/predict",
            &json!({"pairs": [[user, "i1"], [NEVER_SEEN, "i1"]]}),
        )
        .await;
    predicted.expect_status(200);
    let scores = &predicted.json()["predictions"];
    assert_eq!(scores[0]["score"], scores[1]["score"]);
    // Nobody's similar users name them.
    for other in server.data.active_users().iter().skip(1).take(10) {
        let answer = reader.get(&format!("/v1/similar-users/{other}?n=50")).await;
        answer.expect_status(200);
        assert!(
            !answer.text().contains(&format!("\"{user}\"")),
            "{}",
            answer.text()
        );
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(store.impression_counts(&user).await.unwrap().is_empty());

    // Writes naming them are refused, naming the record.
    let answer = writer
        .post(
            "/v1/feedback",
            &json!([
                {"user": NEVER_SEEN, "item": "i1", "type": "click"},
                {"user": user, "item": "i1", "type": "click"}
            ]),
        )
        .await;
    answer.expect_status(400);
    assert_eq!(answer.error_code(), Some("erased_id"));
    assert!(
        answer.text().contains("record 1: user"),
        "{}",
        answer.text()
    );
    let answer = writer
        .put(&format!("/v1/users/{user}"), &json!({"features": {}}))
        .await;
    answer.expect_status(400);
    assert_eq!(answer.error_code(), Some("erased_id"));
    assert_eq!(
        store.counts().await.unwrap().feedback as usize,
        total - their_events,
        "the refused batch stored nothing"
    );

    // A training run afterwards counts none of their events.
    let trained = admin.post("/v1/models", &json!({"wait": true})).await;
    trained.expect_status(201);
    let metrics = &trained.json()["metrics"];
    let stored = store.counts().await.unwrap().feedback;
    assert_eq!(metrics["store_events"], json!(stored));
    assert_eq!(metrics["interactions"], json!(stored));
    assert_eq!(metrics["interactions"], json!(total - their_events));
    let mut users: Vec<&str> = server
        .data
        .feedback
        .iter()
        .map(|f| f.user.as_str())
        .filter(|u| *u != user)
        .collect();
    users.sort_unstable();
    users.dedup();
    assert_eq!(metrics["users"], json!(users.len()));
    assert_eq!(
        served(&reader.get(&list(&user)).await),
        served(&reader.get(&list(NEVER_SEEN)).await)
    );

    // Erasing again is fine and removes nothing.
    let again = admin.delete(&path).await;
    again.expect_status(200);
    assert_eq!(again.json()["removed"]["feedback"], json!(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erased_item_is_never_listed_again() {
    let server = start(keys()).await;
    let store = server.state.serving.store().clone();
    let admin = server.client_with_key(ADMIN);
    let reader = server.client_with_key(READ);
    let popular = reader.get("/v1/popular?n=5").await;
    popular.expect_status(200);
    let item = popular.item_ids()[0].clone();
    let its_events = server
        .data
        .feedback
        .iter()
        .filter(|f| f.item == item)
        .count();
    assert!(its_events > 0);
    let listed_somewhere = {
        let mut found = false;
        for user in server.data.active_users().iter().take(40) {
            let answer = reader.get(&format!("/v1/recommend/{user}?n=20")).await;
            found |= answer.item_ids().contains(&item);
        }
        found
    };
    assert!(
        listed_somewhere,
        "the most popular item is in someone's list"
    );

    let answer = server
        .client_with_key(WRITE)
        .delete(&format!("/v1/items/{item}?erase=true"))
        .await;
    answer.expect_status(403);
    let answer = admin.delete(&format!("/v1/items/{item}?erase=true")).await;
    answer.expect_status(200);
    assert_eq!(answer.json()["item"], json!(item));
    assert_eq!(answer.json()["removed"]["items"], json!(1));
    assert_eq!(answer.json()["removed"]["feedback"], json!(its_events));

    // The live model still holds the item; no list shows it.
    let mut lists = vec![
        "/v1/popular?n=60".to_owned(),
        "/v1/trending?n=60".to_owned(),
        "/v1/latest?n=60".to_owned(),
        format!("/v1/recommend/{NEVER_SEEN}?n=60"),
    ];
    for user in server.data.active_users().iter().take(40) {
        lists.push(format!("/v1/recommend/{user}?n=60"));
    }
    for other in server.data.items.iter().take(10).filter(|i| i.id != item) {
        lists.push(format!("/v1/similar-items/{}?n=60", other.id));
    }
    for path in &lists {
        let answer = reader.get(path).await;
        answer.expect_status(200);
        assert!(
            !answer.text().contains(&format!("\"{item}\"")),
            "{path} lists the erased item: {}",
            answer.text()
        );
    }
    let described = reader
        .post(
            "/v1/recommend",
            &json!({"interactions": [item, "i1"], "n": 60}),
        )
        .await;
    described.expect_status(200);
    assert!(!described.item_ids().contains(&item));
    assert_eq!(described.json()["ignored_interactions"], json!([item]));
    reader
        .get(&format!("/v1/similar-items/{item}"))
        .await
        .expect_status(404);
    reader
        .get(&format!("/v1/items/{item}"))
        .await
        .expect_status(404);
    let predicted = reader
        .post("/v1/predict", &json!({"pairs": [["u1", item]]}))
        .await;
    predicted.expect_status(404);
    let answer = server
        .client_with_key(WRITE)
        .post(
            "/v1/feedback",
            &json!([{"user": "u1", "item": item, "type": "click"}]),
        )
        .await;
    answer.expect_status(400);
    assert_eq!(answer.error_code(), Some("erased_id"));
    assert!(
        answer.text().contains("record 0: item"),
        "{}",
        answer.text()
    );
    let answer = server
        .client_with_key(WRITE)
        .post("/v1/items", &json!([{"id": "brand-new"}, {"id": item}]))
        .await;
    answer.expect_status(400);
    assert!(
        answer.text().contains("record 1: item"),
        "{}",
        answer.text()
    );
    assert!(store.get_item("brand-new").await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_deletes_keep_their_meaning_and_refuse_unknown_parameters() {
    let server = start(keys()).await;
    let store = server.state.serving.store().clone();
    let writer = server.client_with_key(WRITE);
    let user = server.data.active_users()[0].clone();
    let events = store
        .feedback_for_user(&user, usize::MAX)
        .await
        .unwrap()
        .len();
    let answer = writer.delete(&format!("/v1/users/{user}?purge=1")).await;
    answer.expect_status(400);
    assert_eq!(answer.error_code(), Some("unknown_parameter"));
    writer
        .delete(&format!("/v1/users/{user}?erase=false"))
        .await
        .expect_status(204);
    assert!(store.get_user(&user).await.unwrap().is_none());
    assert_eq!(
        store
            .feedback_for_user(&user, usize::MAX)
            .await
            .unwrap()
            .len(),
        events,
        "a plain delete keeps the feedback"
    );
    assert!(store.erasures().await.unwrap().is_empty());
    writer.delete("/v1/items/i1").await.expect_status(204);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erasure_made_by_another_process_reaches_the_server_on_its_watch() {
    let server = start(keys()).await;
    let reader = server.client_with_key(READ);
    let user = server.data.active_users()[0].clone();
    let list = |who: &str| format!("/v1/recommend/{who}?n=10");
    let strangers = served(&reader.get(&list(NEVER_SEEN)).await);
    assert_ne!(served(&reader.get(&list(&user)).await), strangers);
    // Another process (a second server, a script) erases through the store itself.
    let elsewhere = kindred_store::Store::open(server.state.serving.config().store.as_str())
        .await
        .unwrap();
    elsewhere.erase_user(&user).await.unwrap();
    let caught_up = common::eventually(Duration::from_secs(10), || {
        let (reader, path, strangers) = (reader.clone(), list(&user), strangers.clone());
        async move { served(&reader.get(&path).await) == strangers }
    })
    .await;
    assert!(caught_up, "the watcher rebuilt with the new tombstone");
    let answer = server
        .client_with_key(WRITE)
        .post(
            "/v1/feedback",
            &json!([{"user": user, "item": "i1", "type": "click"}]),
        )
        .await;
    answer.expect_status(400);
    assert_eq!(answer.error_code(), Some("erased_id"));
}
