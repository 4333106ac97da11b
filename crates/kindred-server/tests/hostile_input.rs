//! The findings of an attack on the server, replayed: request data a stranger controls must
//! never grow a structure without bound, and each hostile request gets its 4xx. (Issue 21's
//! suite; the remaining findings join it as they are fixed.)

mod common;

use common::{start, Options};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invented_methods_share_one_metrics_label_and_are_not_echoed_whole() {
    let server = start(Options::default()).await;
    let c = server.client();
    let before = c.get("/metrics").await.text().len();
    for n in 0..200 {
        // Valid HTTP tokens of 2 KB each, all different: once, each became a label forever.
        let method = format!("M{n}{}", "X".repeat(2_000));
        let r = c.request(&method, "/v1/popular", &[], None).await;
        assert!(
            matches!(r.status, 400 | 404 | 405),
            "{method:.20}...: {}",
            r.status
        );
        assert!(r.text().len() < 1_000, "the answer echoes the method");
        let path = format!("/{}", "p".repeat(5_000 + n));
        let r = c.request("GET", &path, &[], None).await;
        r.expect_status(404);
        assert!(r.text().len() < 1_000, "the answer echoes the whole path");
    }
    let metrics = c.get("/metrics").await.text();
    assert!(
        !metrics.contains("XXXX"),
        "a request's method became a label"
    );
    assert!(metrics.contains("method=\"OTHER\""), "{metrics}");
    assert!(
        metrics.len() < before + 5_000,
        "/metrics grew from {before} to {} bytes",
        metrics.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beyond_loopback_nothing_but_health_answers_without_a_key() {
    // Only write and admin keys, on a public address: reads need a key too.
    let server = start(
        Options::keys(None, Some("w-key"), Some("a-key"))
            .tweak(|c| c.listen = "0.0.0.0:8080".parse().expect("address")),
    )
    .await;
    let stranger = server.client();
    for path in [
        "/v1/users/u1",
        "/v1/recommend/u1",
        "/v1/popular",
        "/v1/models",
        "/metrics",
    ] {
        let r = stranger.get(path).await;
        r.expect_status(401);
        assert_eq!(r.error_code(), Some("missing_api_key"), "{path}");
    }
    // The dashboard asks for a login instead of showing a user's history.
    let r = stranger.get("/dashboard/users?user=u1").await;
    assert_eq!(r.status, 401, "{}", r.text());
    // Health: live answers; ready says only whether it is ready.
    stranger.get("/health/live").await.expect_status(200);
    let r = stranger.get("/health/ready").await;
    r.expect_status(200);
    assert_eq!(r.json(), &serde_json::json!({ "status": "ready" }));
    // A key of a higher scope reads, and sees the details.
    let reader = server.client_with_key("w-key");
    reader.get("/v1/popular").await.expect_status(200);
    assert!(reader.get("/health/ready").await.json()["model_version"].is_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_key_cannot_write_impressions() {
    let server = start(Options::keys(Some("r-key"), Some("w-key"), Some("a-key"))).await;
    let reader = server.client_with_key("r-key");
    reader.get("/v1/recommend/u1?n=5").await.expect_status(200);
    let r = reader
        .get("/v1/recommend/u1?n=5&write_impressions=true")
        .await;
    r.expect_status(403);
    assert_eq!(r.error_code(), Some("forbidden"));
    server
        .client_with_key("w-key")
        .get("/v1/recommend/u1?n=5&write_impressions=true")
        .await
        .expect_status(200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timestamps_outside_the_sane_range_are_refused() {
    let server = start(Options::default()).await;
    let c = server.client();
    let trending_before = c.get("/v1/trending?n=10").await.json()["items"].clone();
    for (timestamp, hint) in [
        (i64::MAX, "outside the accepted range"),
        (i64::MIN, "outside the accepted range"),
        (-5, "outside the accepted range"),
        (1_700_000_000_000, "looks like milliseconds"),
    ] {
        let r = c
            .post(
                "/v1/feedback",
                &serde_json::json!([
                    {"user": "u1", "item": "i1", "type": "click", "timestamp": 1_700_000_000},
                    {"user": "u2", "item": "i2", "type": "click", "timestamp": timestamp},
                ]),
            )
            .await;
        r.expect_status(400);
        assert_eq!(r.error_code(), Some("invalid_timestamp"));
        let message = r.json()["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(
            message.contains("record 1") && message.contains(hint),
            "{message}"
        );
    }
    // Nothing of a refused batch was stored: trending is what it was.
    assert_eq!(
        c.get("/v1/trending?n=10").await.json()["items"],
        trending_before
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_timestamp_range_is_configurable() {
    let server = start(Options::default().tweak(|c| {
        c.timestamps = kindred_core::TimestampRange {
            min: 1_000,
            max: 2_000,
        }
    }))
    .await;
    let c = server.client();
    let event =
        |t: i64| serde_json::json!([{"user": "u1", "item": "i1", "type": "click", "timestamp": t}]);
    c.post("/v1/feedback", &event(1_500))
        .await
        .expect_status(200);
    c.post("/v1/feedback", &event(2_001))
        .await
        .expect_status(400);
}
