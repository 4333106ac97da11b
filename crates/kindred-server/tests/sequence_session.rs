//! `sasrec` in the server: trained from the store through the API, it serves a known user from
//! their history and an anonymous session from the session's items, in the session's order.
#![cfg(feature = "encoder")]

mod common;

use common::{start, Options};
use serde_json::{json, Value};

/// Items and scores of a list response.
fn scored(list: &Value) -> Vec<(String, f64)> {
    list["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| {
            (
                i["item"].as_str().expect("an id").to_owned(),
                i["score"].as_f64().expect("a score"),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sasrec_serves_known_users_and_ordered_sessions() {
    // As the binary does at startup: the neural families join the built-in ones.
    kindred_models::ModelRegistry::install_global(
        kindred_neural::registry_with_neural().expect("the neural families"),
    )
    .expect("installed before any model is built");
    let server = start(Options::keys(None, Some("w"), Some("a")).tweak(|c| {
        c.training.gate.enabled = false;
    }))
    .await;
    let reader = server.client();
    let admin = server.client_with_key("a");
    let r = admin
        .post(
            "/v1/models",
            &json!({
                "model": "sasrec:dim=8,max_len=20,epochs=2,patience=0,negatives=8,batch_size=16",
                "wait": true
            }),
        )
        .await;
    r.expect_status(201);
    assert_eq!(r.json()["live"], true, "{}", r.text());

    let user = server.data.active_users()[0].clone();
    let list = reader.get(&format!("/v1/recommend/{user}?n=10")).await;
    list.expect_status(200);
    let items = list.json()["items"].as_array().expect("items").clone();
    assert_eq!(items.len(), 10);
    assert!(
        items.iter().all(|i| i["source"] == "model:sasrec"),
        "{}",
        list.text()
    );

    // An anonymous session: scored by the model from its items, and their order matters.
    let session = |items: &[&str]| json!({ "interactions": items, "n": 10 });
    let forward = reader
        .post("/v1/recommend", &session(&["i1", "i4", "i9"]))
        .await;
    forward.expect_status(200);
    assert!(
        forward.json()["items"]
            .as_array()
            .expect("items")
            .iter()
            .all(|i| i["source"] == "fold-in:sasrec"),
        "{}",
        forward.text()
    );
    let backward = reader
        .post("/v1/recommend", &session(&["i9", "i4", "i1"]))
        .await;
    backward.expect_status(200);
    assert_ne!(
        scored(forward.json()),
        scored(backward.json()),
        "a sequence model reads the session's order"
    );
}
