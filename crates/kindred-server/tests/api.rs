//! The API's happy paths end to end over real HTTP: a server on a loopback port over a SQLite
//! store with seeded synthetic data and a published ALS version (see `common`), exercised route
//! by route as a client would.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{eventually, start, Options, Response, TestServer};
use kindred_server::openapi::ROUTES;
use serde_json::{json, Value};

/// Every list item has an id, a score (number or null) and a non-empty source.
#[track_caller]
fn assert_list_shape(r: &Response) {
    let body = r.json();
    assert!(body["request_id"].is_string(), "{body}");
    for item in body["items"].as_array().expect("items") {
        assert!(item["item"].is_string(), "{item}");
        assert!(
            item["score"].is_number() || item["score"].is_null(),
            "{item}"
        );
        assert!(
            item["source"].as_str().is_some_and(|s| !s.is_empty()),
            "{item}"
        );
    }
}

fn sources(r: &Response) -> Vec<String> {
    r.json()["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["source"].as_str().expect("source").to_owned())
        .collect()
}

#[test]
fn the_test_client_parses_length_and_chunked_answers() {
    let r = common::parse_response(
        b"HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\ncontent-length: 9\r\n\r\n{\"a\": 1}\n",
    );
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["a"], 1);
    let r = common::parse_response(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n{\"b\r\n5\r\n\": 2}\r\n0\r\n\r\n",
    );
    assert_eq!(r.json()["b"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_and_items_crud_and_batches() {
    let server = start(Options::default()).await;
    let c = server.client();

    // Users: put, get, replace, delete, batch.
    let r = c
        .put(
            "/v1/users/alice",
            &json!({ "features": { "age": 31, "city": "Oslo" } }),
        )
        .await;
    r.expect_status(200);
    assert_eq!(r.json()["id"], "alice");
    assert_eq!(r.json()["written"], 1);
    let r = c.get("/v1/users/alice").await;
    r.expect_status(200);
    assert_eq!(r.json()["id"], "alice");
    assert_eq!(r.json()["features"]["city"], "Oslo");
    assert_eq!(r.json()["features"]["age"], 31);
    // The body may repeat the path's id.
    c.put(
        "/v1/users/alice",
        &json!({ "id": "alice", "features": { "city": "Bergen" } }),
    )
    .await
    .expect_status(200);
    let r = c.get("/v1/users/alice").await;
    assert_eq!(r.json()["features"]["city"], "Bergen");
    assert!(r.json()["features"].get("age").is_none(), "PUT replaces");
    // Features of the kinds already stored are accepted (the fixture's `segment` is a list of
    // strings), as are new features and nulls.
    c.put(
        "/v1/users/carol",
        &json!({ "features": { "segment": ["segment2"], "score": 0.5, "note": null } }),
    )
    .await
    .expect_status(200);
    // Ids travel percent-encoded in paths.
    c.put("/v1/users/b%20b", &json!({}))
        .await
        .expect_status(200);
    assert_eq!(c.get("/v1/users/b%20b").await.json()["id"], "b b");
    let r = c.delete("/v1/users/alice").await;
    r.expect_status(204);
    assert!(r.body.is_empty());
    c.get("/v1/users/alice").await.expect_status(404);
    let r = c
        .post(
            "/v1/users",
            &json!([{ "id": "u-new-1", "features": { "tier": "gold" } }, { "id": "u-new-2" }]),
        )
        .await;
    r.expect_status(200);
    assert_eq!(r.json()["written"], 2);
    assert_eq!(
        c.get("/v1/users/u-new-1").await.json()["features"]["tier"],
        "gold"
    );
    c.get("/v1/users/u-new-2").await.expect_status(200);

    // Items: the same, with categories, timestamp and hidden.
    let r = c
        .put(
            "/v1/items/book-1",
            &json!({ "categories": ["Drama", "Comedy"], "timestamp": 1_700_000_123,
                     "features": { "price": 9.5 } }),
        )
        .await;
    r.expect_status(200);
    assert_eq!(r.json()["written"], 1);
    let r = c.get("/v1/items/book-1").await;
    r.expect_status(200);
    let item = r.json();
    assert_eq!(item["id"], "book-1");
    assert_eq!(item["categories"], json!(["Drama", "Comedy"]));
    assert_eq!(item["timestamp"], 1_700_000_123);
    assert_eq!(item["hidden"], false);
    assert_eq!(item["features"]["price"], 9.5);
    let r = c
        .post(
            "/v1/items",
            &json!([{ "id": "book-2", "hidden": true }, { "id": "book-3", "categories": ["X"] }]),
        )
        .await;
    r.expect_status(200);
    assert_eq!(r.json()["written"], 2);
    assert_eq!(c.get("/v1/items/book-2").await.json()["hidden"], true);
    c.delete("/v1/items/book-1").await.expect_status(204);
    c.get("/v1/items/book-1").await.expect_status(404);
    c.delete("/v1/items/book-1").await.expect_status(404);
    // The fixture's own items are there.
    let r = c.get("/v1/items/i3").await;
    r.expect_status(200);
    assert_eq!(
        r.json()["categories"],
        json!(server.data.item("i3").expect("i3").categories)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feedback_is_stored_once_per_event_id() {
    let server = start(Options::default()).await;
    let c = server.client();
    let store = server.state.serving.store();
    let before = store.counts().await.expect("counts").feedback;
    let batch = json!([
        { "user": "u1", "item": "i2", "type": "click", "event_id": "ev-1" },
        { "user": "u1", "item": "i3", "type": "rating", "value": 4.5, "timestamp": 1_700_000_000,
          "event_id": "ev-2" },
        { "user": "u2", "item": "i3", "type": "view" },
    ]);
    let r = c.post("/v1/feedback", &batch).await;
    r.expect_status(200);
    assert_eq!(r.json()["inserted"], 3);
    assert_eq!(r.json()["duplicates"], 0);
    // Resending: the two events with ids are duplicates, the one without is new.
    let r = c.post("/v1/feedback", &batch).await;
    r.expect_status(200);
    assert_eq!(r.json()["inserted"], 1);
    assert_eq!(r.json()["duplicates"], 2);
    // A repeat inside one batch counts too.
    let r = c
        .post(
            "/v1/feedback",
            &json!([
                { "user": "u5", "item": "i5", "type": "click", "event_id": "ev-3" },
                { "user": "u5", "item": "i5", "type": "click", "event_id": "ev-3" },
            ]),
        )
        .await;
    assert_eq!(r.json()["inserted"], 1);
    assert_eq!(r.json()["duplicates"], 1);
    // An empty batch is a no-op.
    let r = c.post("/v1/feedback", &json!([])).await;
    r.expect_status(200);
    assert_eq!(r.json()["inserted"], 0);
    let after = store.counts().await.expect("counts").feedback;
    assert_eq!(after, before + 5);
    let stored = store
        .feedback_for_user("u1", 1000)
        .await
        .expect("u1 feedback");
    let rating = stored
        .iter()
        .find(|f| f.feedback.event_id.as_deref() == Some("ev-2"))
        .expect("ev-2 stored");
    assert_eq!(rating.feedback.value, Some(4.5));
    assert_eq!(rating.feedback.timestamp, 1_700_000_000);
    assert_eq!(rating.feedback.event_type, "rating");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recommend_pages_filters_and_metadata() {
    let server = start(Options::default()).await;
    let c = server.client();
    let version = server.version.clone().expect("published");
    let user = server.data.active_users()[0].clone();
    let seen = server.data.seen_by(&user);

    let full = c.get(&format!("/v1/recommend/{user}?n=10")).await;
    full.expect_status(200);
    assert_list_shape(&full);
    let body = full.json();
    assert_eq!(body["model_version"], version.as_str());
    assert_eq!(body["user"], user.as_str());
    let ids = full.item_ids();
    assert_eq!(ids.len(), 10);
    assert_eq!(
        ids.iter().collect::<BTreeSet<_>>().len(),
        10,
        "distinct items"
    );
    for item in body["items"].as_array().expect("items") {
        assert_eq!(item["source"], "model:als", "{item}");
        assert!(item["score"].is_number(), "{item}");
    }
    let scores: Vec<f64> = body["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["score"].as_f64().expect("score"))
        .collect();
    assert!(
        scores.windows(2).all(|w| w[0] >= w[1]),
        "best first: {scores:?}"
    );
    assert!(
        ids.iter().all(|i| !seen.contains(i)),
        "never an item the user has"
    );

    // Two pages of 5 are the list of 10.
    let first = c.get(&format!("/v1/recommend/{user}?n=5")).await.item_ids();
    let second = c
        .get(&format!("/v1/recommend/{user}?n=5&offset=5"))
        .await
        .item_ids();
    assert_eq!([first, second].concat(), ids);

    // Every answer has its own request id.
    let mut request_ids = BTreeSet::new();
    for _ in 0..5 {
        let r = c.get(&format!("/v1/recommend/{user}?n=3")).await;
        assert!(request_ids.insert(r.json()["request_id"].as_str().expect("id").to_owned()));
    }

    // Exclude: the two best items are left out, the rest moves up.
    let r = c
        .get(&format!(
            "/v1/recommend/{user}?n=8&exclude={},{}",
            ids[0], ids[1]
        ))
        .await;
    r.expect_status(200);
    assert_eq!(r.item_ids(), ids[2..].to_vec());
    let r = c
        .get(&format!(
            "/v1/recommend/{user}?n=8&exclude={}&exclude={}",
            ids[0], ids[1]
        ))
        .await;
    assert_eq!(r.item_ids(), ids[2..].to_vec());

    // Category: every listed item has the category (there are enough of them unseen).
    let category = server.data.item(&ids[9]).expect("listed item").categories[0].clone();
    let in_category = server
        .data
        .items
        .iter()
        .filter(|i| i.categories.contains(&category) && !seen.contains(&i.id))
        .count();
    let n = in_category.min(5);
    assert!(n >= 2, "the fixture has items of {category}");
    let r = c
        .get(&format!("/v1/recommend/{user}?n={n}&category={category}"))
        .await;
    r.expect_status(200);
    assert_list_shape(&r);
    for id in r.item_ids() {
        let item = server.data.item(&id).expect("catalog item");
        assert!(
            item.categories.contains(&category),
            "{id} not in {category}"
        );
        assert!(!seen.contains(&id));
    }
    assert!(sources(&r).iter().all(|s| !s.starts_with("relaxed")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_users_get_a_fallback_list() {
    let server = start(Options::default()).await;
    let c = server.client();
    let r = c.get("/v1/recommend/someone-new?n=7").await;
    r.expect_status(200);
    assert_list_shape(&r);
    assert_eq!(r.item_ids().len(), 7);
    assert!(
        sources(&r).iter().all(|s| !s.starts_with("model:")),
        "{:?}",
        sources(&r)
    );
    // The head of the fallback chain for someone without history: trending.
    let trending = c.get("/v1/trending?n=7").await.item_ids();
    assert_eq!(r.item_ids(), trending);
    assert!(
        sources(&r).iter().all(|s| s == "trending"),
        "{:?}",
        sources(&r)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_time_feedback_changes_the_next_list() {
    let server = start(Options::default()).await;
    let c = server.client();
    let user = server.data.active_users()[3].clone();
    let before = c.get(&format!("/v1/recommend/{user}?n=10")).await;
    before.expect_status(200);
    let before_ids = before.item_ids();
    // Asked twice, the list is the same (cached or not).
    assert_eq!(
        c.get(&format!("/v1/recommend/{user}?n=10"))
            .await
            .item_ids(),
        before_ids
    );
    let liked = &before_ids[..3];
    let events: Vec<Value> = liked
        .iter()
        .map(|i| json!({ "user": user, "item": i, "type": "rating", "value": 5.0 }))
        .collect();
    c.post("/v1/feedback", &Value::Array(events))
        .await
        .expect_status(200);
    let after = c.get(&format!("/v1/recommend/{user}?n=10")).await;
    after.expect_status(200);
    assert_list_shape(&after);
    let after_ids = after.item_ids();
    assert_eq!(after_ids.len(), 10);
    for item in liked {
        assert!(
            !after_ids.contains(item),
            "{item} was just rated and is listed again"
        );
    }
    assert_ne!(
        after_ids[..7],
        before_ids[3..],
        "fold-in re-scored the list"
    );
    assert!(
        sources(&after).iter().any(|s| s.starts_with("fold-in:")),
        "{:?}",
        sources(&after)
    );

    // A user the store has never seen: real-time feedback alone personalises the list.
    let newcomer = "newcomer-1";
    let cold = c
        .get(&format!("/v1/recommend/{newcomer}?n=5"))
        .await
        .item_ids();
    let events: Vec<Value> = ["i1", "i2", "i3"]
        .iter()
        .map(|i| json!({ "user": newcomer, "item": i, "type": "click" }))
        .collect();
    c.post("/v1/feedback", &Value::Array(events))
        .await
        .expect_status(200);
    let warm = c.get(&format!("/v1/recommend/{newcomer}?n=5")).await;
    warm.expect_status(200);
    let warm_ids = warm.item_ids();
    assert_eq!(warm_ids.len(), 5);
    assert!(
        sources(&warm).iter().all(|s| s.starts_with("fold-in:")),
        "{:?}",
        sources(&warm)
    );
    assert!(warm_ids
        .iter()
        .all(|i| !["i1", "i2", "i3"].contains(&i.as_str())));
    assert_ne!(warm_ids, cold);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_lists_from_interactions_or_features() {
    let server = start(Options::default()).await;
    let c = server.client();
    let r = c
        .post(
            "/v1/recommend",
            &json!({ "interactions": ["i1", "i4", "not-an-item"], "n": 6 }),
        )
        .await;
    r.expect_status(200);
    assert_list_shape(&r);
    let ids = r.item_ids();
    assert_eq!(ids.len(), 6);
    assert!(ids.iter().all(|i| i != "i1" && i != "i4"));
    assert!(
        sources(&r).iter().all(|s| s.starts_with("fold-in:")),
        "{:?}",
        sources(&r)
    );
    assert_eq!(r.json()["ignored_interactions"], json!(["not-an-item"]));
    assert_eq!(
        r.json()["model_version"],
        server.version.clone().expect("version").as_str()
    );
    assert!(r.json()["user"].is_null());

    let r = c
        .post(
            "/v1/recommend",
            &json!({ "features": { "segment": "segment1" }, "n": 4, "offset": 2 }),
        )
        .await;
    r.expect_status(200);
    assert_list_shape(&r);
    let trending = c.get("/v1/trending?n=6").await.item_ids();
    assert_eq!(
        r.item_ids(),
        trending[2..].to_vec(),
        "no history: the trending list"
    );

    // A known user plus session interactions, with an exclusion.
    let user = server.data.active_users()[0].clone();
    let r = c
        .post(
            "/v1/recommend",
            &json!({ "user": user, "interactions": ["i7"], "exclude": ["i8"], "n": 5 }),
        )
        .await;
    r.expect_status(200);
    let seen = server.data.seen_by(&user);
    for id in r.item_ids() {
        assert!(id != "i7" && id != "i8" && !seen.contains(&id), "{id}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn similar_items_and_users() {
    let server = start(Options::default()).await;
    let c = server.client();
    let r = c.get("/v1/similar-items/i0?n=5").await;
    r.expect_status(200);
    let body = r.json();
    assert_eq!(body["item"], "i0");
    let items = body["items"].as_array().expect("items");
    assert_eq!(items.len(), 5);
    let scores: Vec<f64> = items
        .iter()
        .map(|i| i["score"].as_f64().expect("score"))
        .collect();
    assert!(scores.windows(2).all(|w| w[0] >= w[1]), "{scores:?}");
    assert!(items
        .iter()
        .all(|i| i["source"] == "embeddings" && i["item"] != "i0"));

    let user = server.data.active_users()[0].clone();
    let r = c.get(&format!("/v1/similar-users/{user}?n=4")).await;
    r.expect_status(200);
    let users = r.json()["users"].as_array().expect("users").clone();
    assert_eq!(users.len(), 4);
    assert!(users
        .iter()
        .all(|u| u["user"].is_string() && u["user"] != user.as_str() && u["score"].is_number()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_personal_lists_drop_hidden_items() {
    let server = start(Options::default()).await;
    let c = server.client();
    for route in ["popular", "trending", "latest"] {
        let r = c.get(&format!("/v1/{route}?n=5")).await;
        r.expect_status(200);
        assert_list_shape(&r);
        assert_eq!(r.item_ids().len(), 5, "{route}");
        assert!(sources(&r).iter().all(|s| s == route), "{route}");
    }
    // Latest follows the item timestamps (i59 is the newest item).
    assert_eq!(
        c.get("/v1/latest?n=3").await.item_ids(),
        ["i59", "i58", "i57"]
    );
    // Popular counts distinct users, best first.
    let popular = c.get("/v1/popular?n=5").await;
    let counts: Vec<f64> = popular.json()["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["score"].as_f64().expect("count"))
        .collect();
    assert!(counts.windows(2).all(|w| w[0] >= w[1]), "{counts:?}");
    let top = popular.item_ids()[0].clone();
    let users_of_top: BTreeSet<&str> = server
        .data
        .feedback
        .iter()
        .filter(|f| f.item == top)
        .map(|f| f.user.as_str())
        .collect();
    assert_eq!(counts[0], users_of_top.len() as f64);

    // Hide the most popular and the newest item; after the catalog refresh neither appears.
    let trending_top = c.get("/v1/trending?n=1").await.item_ids()[0].clone();
    for id in [top.as_str(), "i59", trending_top.as_str()] {
        let mut item = serde_json::to_value(server.data.item(id).expect("item")).expect("json");
        item["hidden"] = json!(true);
        c.put(&format!("/v1/items/{id}"), &item)
            .await
            .expect_status(200);
    }
    let hidden = [top.clone(), "i59".to_owned(), trending_top.clone()];
    let gone = eventually(Duration::from_secs(10), || async {
        let mut clean = true;
        for route in ["popular", "trending", "latest"] {
            let ids = c.get(&format!("/v1/{route}?n=10")).await.item_ids();
            clean &= ids.len() == 10 && ids.iter().all(|i| !hidden.contains(i));
        }
        clean
    })
    .await;
    assert!(gone, "hidden items still listed after the catalog refresh");
    assert_eq!(c.get("/v1/latest?n=2").await.item_ids(), ["i58", "i57"]);
    let anonymous = c.get("/v1/recommend/nobody-at-all?n=20").await.item_ids();
    assert!(anonymous.iter().all(|i| !hidden.contains(i)));
    for user in server.data.active_users().iter().take(5) {
        let ids = c
            .get(&format!("/v1/recommend/{user}?n=20"))
            .await
            .item_ids();
        assert!(ids.iter().all(|i| !hidden.contains(i)), "{user}: {ids:?}");
    }
    let similar = c.get("/v1/similar-items/i0?n=20").await;
    let similar: Vec<&str> = similar.json()["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|i| i["item"].as_str())
        .collect();
    assert!(similar.iter().all(|i| !hidden.iter().any(|h| h == i)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn predict_scores_pairs() {
    let server = start(Options::default()).await;
    let c = server.client();
    let user = server.data.active_users()[0].clone();
    let top = c.get(&format!("/v1/recommend/{user}?n=1")).await;
    let top_item = top.item_ids()[0].clone();
    let top_score = top.json()["items"][0]["score"].as_f64().expect("score");
    let r = c
        .post(
            "/v1/predict",
            &json!({ "pairs": [[user, top_item], [user, "i1"], ["stranger", "i1"]] }),
        )
        .await;
    r.expect_status(200);
    let body = r.json();
    assert_eq!(
        body["model_version"],
        server.version.clone().expect("version").as_str()
    );
    let predictions = body["predictions"].as_array().expect("predictions");
    assert_eq!(predictions.len(), 3);
    assert_eq!(predictions[0]["user"], user.as_str());
    assert_eq!(predictions[0]["item"], top_item.as_str());
    let predicted = predictions[0]["score"].as_f64().expect("a score");
    assert!(
        (predicted - top_score).abs() < 1e-4,
        "{predicted} vs list score {top_score}"
    );
    assert!(predictions[1]["score"].is_number());
    // A user nobody knows and without history cannot be scored.
    assert!(predictions[2]["score"].is_null(), "{}", predictions[2]);
}

async fn serving(server: &TestServer) -> String {
    let r = server.client().get("/v1/recommend/u1?n=1").await;
    r.json()["model_version"].as_str().unwrap_or("").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn models_publish_activate_rollback() {
    // The quality gate would keep the weaker versions trained below inactive; it has its own
    // test (quality_gate.rs), this one is about the registry's routes.
    let server =
        start(Options::keys(None, Some("w"), Some("a")).tweak(|c| c.training.gate.enabled = false))
            .await;
    let reader = server.client();
    let admin = server.client_with_key("a");
    let first = server.version.clone().expect("version");

    let r = reader.get("/v1/models").await;
    r.expect_status(200);
    assert_eq!(r.json()["serving"], first.as_str());
    assert_eq!(r.json()["training"], false);
    let models = r.json()["models"].as_array().expect("models");
    assert_eq!(models.len(), 1);
    assert_eq!(models[0]["version"], first.as_str());
    assert_eq!(models[0]["live"], true);
    let r = reader.get(&format!("/v1/models/{first}")).await;
    r.expect_status(200);
    assert_eq!(r.json()["version"], first.as_str());
    assert_eq!(r.json()["algorithm"], "als");

    // Publish and wait: the new version is live and served by the next request.
    let r = admin
        .post(
            "/v1/models",
            &json!({ "model": "als:factors=4,iterations=2", "seed": 3, "wait": true }),
        )
        .await;
    r.expect_status(201);
    let second = r.json()["version"].as_str().expect("version").to_owned();
    assert_ne!(second, first);
    assert_eq!(r.json()["live"], true);
    assert_eq!(serving(&server).await, second);
    assert_eq!(
        reader.get("/v1/models").await.json()["serving"],
        second.as_str()
    );

    // Registered but not live.
    let r = admin
        .post(
            "/v1/models",
            &json!({ "model": "als:factors=4,iterations=1", "wait": true, "activate": false }),
        )
        .await;
    r.expect_status(201);
    let third = r.json()["version"].as_str().expect("version").to_owned();
    assert_eq!(r.json()["live"], false);
    assert_eq!(serving(&server).await, second);
    assert_eq!(
        reader.get("/v1/models").await.json()["models"]
            .as_array()
            .expect("models")
            .len(),
        3
    );

    // Activate any version; the served version follows at once.
    let r = admin
        .post(&format!("/v1/models/{first}/activate"), &json!({}))
        .await;
    r.expect_status(200);
    assert_eq!(r.json()["version"], first.as_str());
    assert_eq!(r.json()["live"], true);
    assert_eq!(serving(&server).await, first);
    admin
        .request("POST", &format!("/v1/models/{third}/activate"), &[], None)
        .await
        .expect_status(200);
    assert_eq!(serving(&server).await, third);

    // Roll back: the previously live version.
    let r = admin
        .request("POST", "/v1/models/rollback", &[], None)
        .await;
    r.expect_status(200);
    assert_eq!(r.json()["version"], first.as_str());
    assert_eq!(serving(&server).await, first);
    let r = reader.get(&format!("/v1/models/{first}")).await;
    assert_eq!(r.json()["live"], true);

    // Publish without waiting: 202 at once, the version shows up when trained.
    let r = admin
        .post(
            "/v1/models",
            &json!({ "model": "als:factors=4,iterations=1" }),
        )
        .await;
    r.expect_status(202);
    assert_eq!(r.json()["activate"], true);
    assert_eq!(r.json()["training"]["model"], "als:factors=4,iterations=1");
    let published = eventually(Duration::from_secs(30), || async {
        let r = reader.get("/v1/models").await;
        r.json()["models"].as_array().map_or(0, Vec::len) == 4 && r.json()["training"] == false
    })
    .await;
    assert!(
        published,
        "the background training did not register a version"
    );
    let now_serving = serving(&server).await;
    assert!(![first, second, third].contains(&now_serving));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_have_the_expected_series() {
    let server = start(Options::default()).await;
    let c = server.client();
    let user = server.data.active_users()[0].clone();
    c.get(&format!("/v1/recommend/{user}?n=5"))
        .await
        .expect_status(200);
    c.get(&format!("/v1/recommend/{user}?n=5"))
        .await
        .expect_status(200);
    c.get("/v1/recommend/nobody?n=5").await.expect_status(200);
    c.get("/v1/items/missing").await.expect_status(404);
    c.post(
        "/v1/feedback",
        &json!([{ "user": "u1", "item": "i1", "type": "click", "event_id": "m1" }]),
    )
    .await
    .expect_status(200);
    c.post(
        "/v1/feedback",
        &json!([{ "user": "u1", "item": "i1", "type": "click", "event_id": "m1" }]),
    )
    .await
    .expect_status(200);
    let r = c.get("/metrics").await;
    r.expect_status(200);
    assert!(r
        .header("content-type")
        .is_some_and(|t| t.starts_with("text/plain")));
    let text = r.text();
    let version = server.version.clone().expect("version");
    for expected in [
        "kindred_http_requests_total{route=\"/v1/recommend/{user}\",method=\"GET\",status=\"200\"} 3".to_owned(),
        "kindred_http_requests_total{route=\"/v1/items/{id}\",method=\"GET\",status=\"404\"} 1".to_owned(),
        "kindred_http_request_duration_seconds_count{route=\"/v1/recommend/{user}\"} 3".to_owned(),
        "kindred_http_request_duration_seconds_bucket{route=\"/v1/recommend/{user}\",le=\"+Inf\"} 3".to_owned(),
        "kindred_list_items_total{source=\"model\"} 10".to_owned(),
        "kindred_list_items_total{source=\"trending\"} 5".to_owned(),
        "kindred_cache_hits_total 1".to_owned(),
        // `nobody` is not in the catalog: their fallback list is not cached, nor looked up.
        "kindred_cache_misses_total 1".to_owned(),
        "kindred_cache_entries 1".to_owned(),
        "kindred_overlay_users 1".to_owned(),
        "kindred_overlay_evictions 0".to_owned(),
        "kindred_http_requests_shed 0".to_owned(),
        "kindred_writes_refused_by_limits 0".to_owned(),
        "# TYPE kindred_feature_names gauge\nkindred_feature_names{owner=\"user\"}".to_owned(),
        "kindred_feedback_events_total 1".to_owned(),
        "kindred_feedback_duplicates_total 1".to_owned(),
        format!("kindred_model_info{{version=\"{version}\"}} 1"),
        "kindred_catalog_items 60".to_owned(),
        "kindred_training_in_progress 0".to_owned(),
        "# TYPE kindred_snapshot_swaps_total counter".to_owned(),
        "# TYPE kindred_cache_hit_ratio gauge".to_owned(),
    ] {
        assert!(text.contains(&expected), "missing `{expected}` in:\n{text}");
    }
    let cache_bytes: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("kindred_cache_bytes "))
        .and_then(|v| v.parse().ok())
        .expect("kindred_cache_bytes");
    assert!(cache_bytes > 0.0 && cache_bytes < 64_000.0, "{cache_bytes}");
    assert_eq!(
        text.matches("# HELP kindred_feature_names ").count(),
        1,
        "one HELP line per metric"
    );
}

/// Sends a request to `route` that changes little: ids the fixture holds, bodies that are
/// valid or refused (a publish of an unknown model), never a training run.
async fn harmless(
    c: &common::Client,
    route: &kindred_server::openapi::RouteDoc,
    version: &str,
) -> Response {
    let method = route.method.to_ascii_uppercase();
    let path = concrete(route.path, version);
    let body: Option<Value> = match (route.method, route.path) {
        ("post", "/v1/models") => Some(json!({ "model": "no-such-model" })),
        ("post", "/v1/models/{version}/activate") | ("post", "/v1/models/rollback") => None,
        ("post", "/v1/recommend") => Some(json!({ "interactions": ["i1"] })),
        ("post", "/v1/predict") => Some(json!({ "pairs": [["u1", "i1"]] })),
        ("post", _) => Some(json!([])),
        ("put", _) => Some(json!({})),
        _ => None,
    };
    match &body {
        Some(b) => c.json(&method, &path, b).await,
        None => c.request(&method, &path, &[], None).await,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_needs_the_scope_the_openapi_table_names() {
    let server = start(Options::keys(Some("r"), Some("w"), Some("a"))).await;
    let version = server.version.clone().expect("version");
    let anonymous = server.client();
    for route in ROUTES {
        let what = format!("{} {}", route.method, route.path);
        let r = harmless(&anonymous, route, &version).await;
        if route.scope == "open" {
            assert!(
                r.status != 401 && r.status != 403,
                "{what} is open: {}",
                r.text()
            );
            continue;
        }
        assert_eq!(r.status, 401, "{what} without a key: {}", r.text());
        assert_eq!(r.error_code(), Some("missing_api_key"), "{what}");
        let (own, below) = match route.scope {
            "read" => ("r", None),
            "write" => ("w", Some("r")),
            "admin" => ("a", Some("w")),
            other => panic!("{what}: unknown scope {other}"),
        };
        if let Some(key) = below {
            let r = harmless(&server.client_with_key(key), route, &version).await;
            assert_eq!(r.status, 403, "{what} with a lower key: {}", r.text());
            assert_eq!(r.error_code(), Some("forbidden"), "{what}");
        }
        let r = harmless(&server.client_with_key(own), route, &version).await;
        assert!(
            r.status != 401 && r.status != 403 && r.status < 500,
            "{what} with its own key: {}",
            r.text()
        );
    }
}

/// A concrete path for a route template, with ids the fixture holds.
fn concrete(path: &str, version: &str) -> String {
    path.replace("{id}", "i1")
        .replace("{user}", "u1")
        .replace("{item}", "i1")
        .replace("{version}", version)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_lists_every_route_and_every_route_is_served() {
    let server = start(Options::default()).await;
    let c = server.client();
    let r = c.get("/openapi.json").await;
    r.expect_status(200);
    let doc = r.json();
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().expect("paths");
    let documented: usize = paths
        .values()
        .map(|p| p.as_object().map_or(0, |m| m.len()))
        .sum();
    assert_eq!(documented, ROUTES.len(), "one operation per ROUTES entry");
    let version = server.version.clone().expect("version");
    for route in ROUTES {
        let op = &doc["paths"][route.path][route.method];
        assert!(
            op.is_object(),
            "{} {} missing from /openapi.json",
            route.method,
            route.path
        );
        assert_eq!(op["summary"], route.summary);
        if route.scope != "open" {
            assert_eq!(op["x-kindred-scope"], route.scope);
        }
        // A harmless request with the right method: whatever it answers, it is routed.
        let r = harmless(&c, route, &version).await;
        let (method, path) = (route.method, &route.path);
        assert_ne!(r.status, 405, "{method} {path}: {}", r.text());
        assert_ne!(r.error_code(), Some("no_route"), "{method} {path}");
        assert!(r.status < 500, "{method} {path}: {}", r.text());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn impressions_are_written_when_asked() {
    let server = start(Options::default().tweak(|c| c.write_impressions = true)).await;
    let c = server.client();
    let store = server.state.serving.store();
    let r = c.get("/v1/recommend/u1?n=4").await;
    r.expect_status(200);
    let listed = r.item_ids();
    let written = eventually(Duration::from_secs(10), || async {
        store
            .impression_counts("u1")
            .await
            .expect("impressions")
            .len()
            == 4
    })
    .await;
    assert!(written, "four impressions for u1");
    for item in &listed {
        assert_eq!(store.impression_count("u1", item).await.expect("count"), 1);
    }
    // Switched off per request.
    c.get("/v1/recommend/u2?n=4&write_impressions=false")
        .await
        .expect_status(200);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(store
        .impression_counts("u2")
        .await
        .expect("impressions")
        .is_empty());
    // The default server writes none unless asked.
    let plain = start(Options::default()).await;
    let pc = plain.client();
    pc.get("/v1/recommend/u1?n=3").await.expect_status(200);
    pc.get("/v1/recommend/u2?n=3&write_impressions=true")
        .await
        .expect_status(200);
    let u2 = eventually(Duration::from_secs(10), || async {
        plain
            .state
            .serving
            .store()
            .impression_counts("u2")
            .await
            .expect("impressions")
            .len()
            == 3
    })
    .await;
    assert!(u2);
    assert!(plain
        .state
        .serving
        .store()
        .impression_counts("u1")
        .await
        .expect("impressions")
        .is_empty());
    assert_eq!(
        plain
            .state
            .serving
            .store()
            .counts()
            .await
            .expect("counts")
            .impressions,
        3
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_readiness() {
    let server = start(Options::default()).await;
    let c = server.client();
    let r = c.get("/health/live").await;
    r.expect_status(200);
    assert_eq!(r.json()["status"], "ok");
    let r = c.get("/health/ready").await;
    r.expect_status(200);
    assert_eq!(r.json()["status"], "ready");
    assert_eq!(r.json()["store"], "sqlite");
    assert_eq!(r.json()["items"], 60);
    assert_eq!(r.json()["users"], 120);
    assert_eq!(r.json()["mode"], "realtime");
    assert_eq!(
        r.json()["model_version"],
        server.version.clone().expect("version").as_str()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waited_training_that_times_out_still_finishes_and_frees_the_flag() {
    let server = start(Options::default().tweak(|c| c.request_timeout_ms = 300)).await;
    let c = server.client();
    // `auto` with a one-second budget outlives the 300 ms request timeout.
    let r = c
        .post(
            "/v1/models",
            &json!({ "model": "auto:budget=1,families=popularity+als", "wait": true }),
        )
        .await;
    r.expect_status(503);
    assert_eq!(r.error_code(), Some("timeout"));
    // The run goes on without its caller: its version is registered and the flag cleared.
    let finished = eventually(Duration::from_secs(30), || async {
        let models = c.get("/v1/models").await.json().clone();
        models["training"] == false && models["models"].as_array().map_or(0, Vec::len) == 2
    })
    .await;
    assert!(finished, "the timed-out training never finished");
    // And the next request to train is taken, not refused as a conflict forever.
    let r = c
        .post(
            "/v1/models",
            &json!({ "model": "popularity", "wait": false }),
        )
        .await;
    r.expect_status(202);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_ready_until_a_model_is_live_unless_configured() {
    let server = start(Options {
        publish: false,
        ..Options::default()
    })
    .await;
    let r = server.client().get("/health/ready").await;
    r.expect_status(503);
    assert_eq!(r.json()["status"], "no_model");
    let reason = r.json()["error"].as_str().unwrap_or_default().to_owned();
    assert!(reason.contains("--publish"), "{reason}");
    // Lists still answer (from fallbacks) while not ready.
    server.client().get("/v1/popular").await.expect_status(200);

    let allowed = start(Options {
        publish: false,
        ..Options::default().tweak(|c| c.ready_without_model = true)
    })
    .await;
    let r = allowed.client().get("/health/ready").await;
    r.expect_status(200);
    assert_eq!(r.json()["model_version"], serde_json::Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_mode_serves_the_lists_request_time_scoring_would() {
    let server = start(Options::default().tweak(|c| {
        c.mode = kindred_serving::ServeMode::Batch;
        c.batch_size = 20;
        c.cache.ttl_seconds = 0;
    }))
    .await;
    let c = server.client();
    assert_eq!(c.get("/health/ready").await.json()["mode"], "batch");
    for user in server.data.active_users().iter().take(5) {
        let precomputed = c.get(&format!("/v1/recommend/{user}?n=10")).await;
        precomputed.expect_status(200);
        // A filter (here an exclusion of an id nobody has) makes the server score at request time.
        let scored = c
            .get(&format!("/v1/recommend/{user}?n=10&exclude=no-such-item"))
            .await;
        assert_eq!(precomputed.item_ids(), scored.item_ids(), "{user}");
        assert_eq!(
            precomputed.json()["items"],
            scored.json()["items"],
            "{user}"
        );
        // A page past the precomputed length is scored at request time too.
        let deep = c.get(&format!("/v1/recommend/{user}?n=10&offset=15")).await;
        deep.expect_status(200);
        let full = c
            .get(&format!("/v1/recommend/{user}?n=25&exclude=no-such-item"))
            .await
            .item_ids();
        assert_eq!(deep.item_ids(), full[15..].to_vec(), "{user}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_items_reach_the_catalog_after_the_refresh() {
    let server = start(Options::default()).await;
    let c = server.client();
    c.put(
        "/v1/items/fresh-1",
        &json!({ "categories": ["Drama"], "timestamp": common::ITEM_EPOCH + 10_000_000 }),
    )
    .await
    .expect_status(200);
    let listed = eventually(Duration::from_secs(10), || async {
        c.get("/v1/latest?n=1").await.item_ids() == ["fresh-1"]
    })
    .await;
    assert!(listed, "the new item never reached /v1/latest");
    c.get("/v1/items/fresh-1").await.expect_status(200);
    // The model does not know it yet: similar items fall back to co-occurrence, and predict
    // cannot score it.
    let r = c.get("/v1/similar-items/fresh-1?n=3").await;
    r.expect_status(200);
    assert!(r.json()["items"].as_array().expect("items").is_empty());
    let r = c
        .post("/v1/predict", &json!({ "pairs": [["u1", "fresh-1"]] }))
        .await;
    r.expect_status(200);
    assert!(r.json()["predictions"][0]["score"].is_null());
    // Deleting it takes it out again.
    c.delete("/v1/items/fresh-1").await.expect_status(204);
    let gone = eventually(Duration::from_secs(10), || async {
        c.get("/v1/latest?n=1").await.item_ids() != ["fresh-1"]
    })
    .await;
    assert!(gone, "the deleted item is still listed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_during_version_swaps_all_succeed() {
    let server = start(Options::default()).await;
    let admin = server.client();
    let first = server.version.clone().expect("version");
    let r = admin
        .post(
            "/v1/models",
            &json!({ "model": "als:factors=4,iterations=2", "wait": true }),
        )
        .await;
    r.expect_status(201);
    let second = r.json()["version"].as_str().expect("version").to_owned();
    let users = server.data.active_users();
    let mut tasks = Vec::new();
    for t in 0..16 {
        let c = server.client();
        let users = users.clone();
        tasks.push(tokio::spawn(async move {
            let mut statuses = Vec::new();
            for k in 0..8 {
                let user = &users[(t * 8 + k) % users.len()];
                let r = if k % 3 == 0 {
                    c.post(
                        "/v1/feedback",
                        &json!([{ "user": user, "item": format!("i{}", (t + k) % 60), "type": "click" }]),
                    )
                    .await
                } else {
                    c.get(&format!("/v1/recommend/{user}?n=5")).await
                };
                let full_list = r.status != 200
                    || r.json.as_ref().and_then(|b| b.get("items")).is_none()
                    || r.item_ids().len() == 5;
                statuses.push((r.status, full_list));
            }
            statuses
        }));
    }
    // Swap versions back and forth while the requests run.
    for k in 0..6 {
        let version = if k % 2 == 0 { &first } else { &second };
        admin
            .request("POST", &format!("/v1/models/{version}/activate"), &[], None)
            .await
            .expect_status(200);
    }
    for task in tasks {
        for (status, full_list) in task.await.expect("request task") {
            assert_eq!(status, 200);
            assert!(full_list, "a list came back short during a swap");
        }
    }
    assert_eq!(serving(&server).await, second);
    admin.get("/health/live").await.expect_status(200);
}
