//! `[encoder]`: an item written through the API is stored with the vector of its title (items of
//! one genre closer to each other than to others), a content model trains on that vector column
//! and serves lists from it, and an item written after training is scored from its text at the
//! next catalog refresh. The encoder is all-MiniLM-L6-v2 from the folder
//! `KINDRED_ENCODER_DIR` names (`.ci/fetch-encoder`).
#![cfg(feature = "encoder")]

mod common;

use common::{start, Options};
use serde_json::{json, Value};

/// A title that says the item's genre in words, so items of one genre read alike.
fn title(genre: usize, k: usize) -> String {
    const GENRES: [&str; 6] = [
        "a space adventure among distant stars",
        "a romantic comedy about two neighbours",
        "a crime thriller with a bank heist",
        "an animated family film with talking animals",
        "a war drama on the western front",
        "a horror story in a haunted house",
    ];
    format!("Film {k}: {}", GENRES[genre % GENRES.len()])
}

fn vector(item: &Value) -> Vec<f64> {
    item["features"]["text_embedding"]
        .as_array()
        .expect("a stored vector")
        .iter()
        .map(|x| x.as_f64().expect("a number"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn written_items_get_text_vectors_that_a_content_model_trains_on() {
    let Some(encoder) = kindred_testkit::encoder_dir() else {
        return;
    };
    let server = start(Options::keys(None, Some("w"), Some("a")).tweak(move |c| {
        c.training.gate.enabled = false;
        c.encoder.dir = Some(encoder);
        c.encoder.text = vec!["title".into()];
    }))
    .await;
    let reader = server.client();
    let writer = server.client_with_key("w");
    let admin = server.client_with_key("a");

    // Every item gets a title; the server stores each with its vector.
    let mut genres: Vec<&str> = server
        .data
        .items
        .iter()
        .filter_map(|i| i.categories.first().map(String::as_str))
        .collect();
    genres.sort_unstable();
    genres.dedup();
    let items: Vec<Value> = server
        .data
        .items
        .iter()
        .enumerate()
        .map(|(k, item)| {
            let genre = item
                .categories
                .first()
                .and_then(|g| genres.iter().position(|x| x == g))
                .unwrap_or(0);
            json!({
                "id": item.id,
                "features": { "title": title(genre, k) },
                "categories": item.categories,
                "timestamp": item.timestamp,
            })
        })
        .collect();
    let written = items.clone();
    writer
        .post("/v1/items", &Value::Array(items))
        .await
        .expect_status(200);
    let stored = reader.get("/v1/items/i0").await;
    stored.expect_status(200);
    let v = vector(stored.json());
    assert_eq!(v.len(), 384);
    let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
    assert!((norm - 1.0).abs() < 1e-4, "unit length: {norm}");

    // Titles of one genre are closer than titles of two.
    let cosine = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
    let stored: Vec<Vec<f64>> = stored_vectors(&reader, &server.data.items).await;
    let genre_of = |k: usize| server.data.items[k].categories.first().cloned();
    let (mut same, mut other) = ((0.0, 0), (0.0, 0));
    for a in 0..stored.len() {
        for b in a + 1..stored.len() {
            let c = cosine(&stored[a], &stored[b]);
            if genre_of(a) == genre_of(b) {
                same = (same.0 + c, same.1 + 1);
            } else {
                other = (other.0 + c, other.1 + 1);
            }
        }
    }
    let (same, other) = (same.0 / f64::from(same.1), other.0 / f64::from(other.1));
    assert!(
        same > other + 0.1,
        "same genre {same:.3}, other genres {other:.3}"
    );

    // A content model on the vector column alone trains from the store and serves lists.
    let r = admin
        .post(
            "/v1/models",
            &json!({ "model": "content:columns=text_embedding", "wait": true }),
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
        items.iter().all(|i| i["source"] == "model:content"),
        "{}",
        list.text()
    );

    // An item written after training, which nobody has interacted with, is scored from its
    // text at the next catalog refresh: given the title of a listed item, it gets its score.
    // Rewritten with another item's title, it takes that item's score at the next refresh.
    let title_of = |id: &str| {
        written
            .iter()
            .find(|i| i["id"] == id)
            .map(|i| i["features"]["title"].clone())
            .expect("a written title")
    };
    let listed: Vec<String> = items
        .iter()
        .map(|i| i["item"].as_str().expect("an id").to_owned())
        .collect();
    let score = |k: usize| items[k]["score"].as_f64().expect("a score");
    assert!(score(0) - score(9) > 1e-3, "{}", list.text());
    for twin in [&listed[0], &listed[9]] {
        writer
            .post(
                "/v1/items",
                &json!([{ "id": "brand-new", "features": { "title": title_of(twin) } }]),
            )
            .await
            .expect_status(200);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let list = reader.get(&format!("/v1/recommend/{user}?n=100")).await;
            list.expect_status(200);
            let new = listed_item(list.json(), "brand-new");
            let twin = listed_item(list.json(), twin);
            if let (Some((source, Some(new))), Some((_, Some(twin)))) = (new, twin) {
                assert_eq!(source, "model:content", "{}", list.text());
                if (new - twin).abs() < 1e-4 {
                    break;
                }
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the new item never got its twin's score: {}",
                list.text()
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
}

/// The source and score of item `id` in a list response, if it is listed.
fn listed_item(list: &Value, id: &str) -> Option<(Value, Option<f64>)> {
    list["items"]
        .as_array()?
        .iter()
        .find(|i| i["item"] == id)
        .map(|i| (i["source"].clone(), i["score"].as_f64()))
}

/// The stored vector of every item, in order.
async fn stored_vectors(reader: &common::Client, items: &[kindred_store::Item]) -> Vec<Vec<f64>> {
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let r = reader.get(&format!("/v1/items/{}", item.id)).await;
        r.expect_status(200);
        out.push(vector(r.json()));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_content_model_with_an_encoder_encodes_titles_when_it_trains() {
    let Some(encoder) = kindred_testkit::encoder_dir() else {
        return;
    };
    // `[encoder]` reads descriptions, which these items lack: they are stored as sent, and the
    // model encodes their titles itself.
    let configured = encoder.clone();
    let server = start(Options::keys(None, Some("w"), Some("a")).tweak(move |c| {
        c.training.gate.enabled = false;
        c.encoder.dir = Some(configured);
        c.encoder.text = vec!["description".into()];
    }))
    .await;
    let reader = server.client();
    let writer = server.client_with_key("w");
    let admin = server.client_with_key("a");
    let items: Vec<Value> = server
        .data
        .items
        .iter()
        .enumerate()
        .map(|(k, item)| json!({ "id": item.id, "features": { "title": title(k % 6, k) } }))
        .collect();
    writer
        .post("/v1/items", &Value::Array(items))
        .await
        .expect_status(200);
    let stored = reader.get("/v1/items/i0").await;
    stored.expect_status(200);
    assert!(stored.json()["features"].get("text_embedding").is_none());
    // Only the configured encoder folder may be named through the API.
    let elsewhere = admin
        .post(
            "/v1/models",
            &json!({ "model": "content:text=title,encoder=/etc", "wait": true }),
        )
        .await;
    elsewhere.expect_status(400);
    assert!(
        elsewhere.text().contains("[encoder] dir"),
        "{}",
        elsewhere.text()
    );
    let spec = format!(
        "content:columns=text_embedding,text=title,encoder={}",
        encoder.display()
    );
    let r = admin
        .post("/v1/models", &json!({ "model": spec, "wait": true }))
        .await;
    r.expect_status(201);
    assert_eq!(r.json()["live"], true, "{}", r.text());
    let user = server.data.active_users()[0].clone();
    let list = reader.get(&format!("/v1/recommend/{user}?n=10")).await;
    list.expect_status(200);
    let listed = list.json()["items"].as_array().expect("items").clone();
    assert_eq!(listed.len(), 10);
    assert!(
        listed.iter().all(|i| i["source"] == "model:content"),
        "{}",
        list.text()
    );
}
