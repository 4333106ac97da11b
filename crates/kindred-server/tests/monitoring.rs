//! Monitoring inside the server, end to end: a reference window of normal feedback is posted,
//! then a current window with (a) a popularity shift, (b) a bot wave or (c) nothing changed;
//! `POST /v1/monitoring/run` runs a pass. (a) and (b) must raise alerts visible in
//! `/v1/alerts`, on `/metrics` and at a webhook listener; (c) must raise none. Also: lists and
//! an attributed click show up in the online metrics.
//!
//! Timestamps are far after the fixture's (2020) so its feedback lies outside both windows, and
//! the windows end at the latest event (`window_end = "latest_event"`), so no test waits.

mod common;

use std::time::Duration;

use common::{start, Options, TestServer};
use kindred_core::SplitMix64;
use kindred_serving::config::WindowEnd;
use kindred_testkit::webhook_listener;
use serde_json::{json, Value};
use tokio::sync::mpsc;

const T0: i64 = 1_800_000_000;
const REFERENCE: i64 = 4_000;
const CURRENT: i64 = 1_000;
/// One normal event every this many seconds.
const STEP: i64 = 2;
const USERS: u64 = 100;
const ITEMS: u64 = 60;

async fn server(webhook: Option<String>) -> TestServer {
    start(Options::default().tweak(move |c| {
        let m = &mut c.monitoring;
        m.window_end = WindowEnd::LatestEvent;
        m.reference_seconds = REFERENCE;
        m.current_seconds = CURRENT;
        m.min_observations = 50;
        // The loop stays out of the way: passes run through the admin route.
        m.interval_seconds = 3_600;
        m.webhooks = webhook.into_iter().collect();
    }))
    .await
}

fn event(user: u64, item: u64, t: i64) -> Value {
    json!({ "user": format!("m{user}"), "item": format!("i{item}"), "type": "click", "timestamp": t })
}

/// A skewed item draw: item k with weight 1/(k+1) (k = 0 most popular), or the reverse.
fn skewed_item(rng: &mut SplitMix64, reversed: bool) -> u64 {
    let total: f64 = (0..ITEMS).map(|k| 1.0 / (k + 1) as f64).sum();
    let mut x = rng.next_f64() * total;
    for k in 0..ITEMS {
        x -= 1.0 / (k + 1) as f64;
        if x <= 0.0 {
            return if reversed { ITEMS - 1 - k } else { k };
        }
    }
    ITEMS - 1
}

/// Normal traffic over `[start, end)`: one event every STEP seconds, uniform users, skewed items.
fn normal(rng: &mut SplitMix64, start: i64, end: i64, reversed: bool) -> Vec<Value> {
    (start..end)
        .step_by(STEP as usize)
        .map(|t| event(rng.below(USERS), skewed_item(rng, reversed), t))
        .collect()
}

async fn post_all(server: &TestServer, events: &[Value]) {
    for chunk in events.chunks(2_000) {
        let r = server
            .client()
            .post("/v1/feedback", &Value::Array(chunk.to_vec()))
            .await;
        r.expect_status(200);
    }
}

/// Posts the reference window and `current`, runs a pass; answers the pass report.
async fn scenario(server: &TestServer, current: Vec<Value>) -> Value {
    let mut rng = SplitMix64::new(11);
    let reference = normal(&mut rng, T0, T0 + REFERENCE, false);
    post_all(server, &reference).await;
    post_all(server, &current).await;
    let r = server
        .client()
        .post("/v1/monitoring/run", &json!(null))
        .await;
    r.expect_status(200);
    r.json().clone()
}

fn current_start() -> i64 {
    T0 + REFERENCE
}

async fn alerts(server: &TestServer) -> Value {
    let r = server.client().get("/v1/alerts").await;
    r.expect_status(200);
    r.json().clone()
}

fn subjects(alerts: &Value) -> Vec<(String, String)> {
    alerts["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["kind"].as_str().unwrap().to_owned(),
                a["subject"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

async fn metrics(server: &TestServer) -> String {
    let r = server.client().get("/metrics").await;
    r.expect_status(200);
    r.text()
}

/// Waits for a webhook body mentioning `subject`.
async fn webhook_body(rx: &mut mpsc::UnboundedReceiver<String>, subject: &str) -> Value {
    let needle = format!("\"subject\":\"{subject}\"");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let body = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .unwrap_or_else(|_| panic!("no webhook for {subject}"))
            .expect("webhook listener alive");
        if body.contains(&needle) {
            return serde_json::from_str(&body).expect("webhook body is JSON");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_popularity_shift_raises_a_drift_alert_everywhere() {
    let (url, mut hooks) = webhook_listener().await;
    let server = server(Some(url)).await;
    let mut rng = SplitMix64::new(12);
    let current = normal(&mut rng, current_start(), current_start() + CURRENT, true);
    let pass = scenario(&server, current).await;
    assert_eq!(
        pass["events_read"],
        json!((REFERENCE + CURRENT) / STEP),
        "{pass}"
    );
    let drift = &pass["report"]["drift"];
    assert_eq!(drift["current_events"], json!(CURRENT / STEP));
    let psi = drift["distributions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "item_popularity")
        .unwrap()["psi"]
        .as_f64()
        .unwrap();
    assert!(psi > 0.25, "item popularity PSI {psi}");
    assert!(!pass["new_alert_ids"].as_array().unwrap().is_empty());

    let listed = alerts(&server).await;
    assert!(
        subjects(&listed).contains(&("drift".into(), "item_popularity".into())),
        "{listed}"
    );
    let text = metrics(&server).await;
    assert!(
        text.contains("kindred_alerts_total{kind=\"drift\"} "),
        "{text}"
    );
    assert!(text.contains(&format!(
        "kindred_drift_psi{{distribution=\"item_popularity\"}} {psi}"
    )));
    let body = webhook_body(&mut hooks, "item_popularity").await;
    assert_eq!(body["alert"]["kind"], "drift");
    assert_eq!(body["alert"]["count"], 1);

    // A second pass on the same data folds the repeat into the entry (cooldown).
    let again = server
        .client()
        .post("/v1/monitoring/run", &json!(null))
        .await;
    assert!(again.json()["new_alert_ids"].as_array().unwrap().is_empty());
    let listed = alerts(&server).await;
    let entry = listed["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["subject"] == "item_popularity")
        .unwrap();
    assert_eq!(entry["count"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bot_wave_raises_a_quality_alert_everywhere() {
    let (url, mut hooks) = webhook_listener().await;
    let server = server(Some(url)).await;
    let mut rng = SplitMix64::new(12);
    let mut current = normal(&mut rng, current_start(), current_start() + CURRENT, false);
    // Three bots click every 5 seconds through the current window.
    for bot in 0..3u64 {
        for k in 0..(CURRENT / 5) {
            current.push(json!({
                "user": format!("bot{bot}"),
                "item": format!("i{}", (k as u64 + bot) % ITEMS),
                "type": "click",
                "timestamp": current_start() + 5 * k,
            }));
        }
    }
    let pass = scenario(&server, current).await;
    let quality = &pass["report"]["current_quality"];
    assert_eq!(quality["bot_users"], 3, "{quality}");
    let listed = alerts(&server).await;
    assert!(
        subjects(&listed).contains(&("quality".into(), "bot_event_share".into())),
        "{listed}"
    );
    let text = metrics(&server).await;
    assert!(
        text.contains("kindred_alerts_total{kind=\"quality\"} "),
        "{text}"
    );
    assert!(text.contains("kindred_quality_bot_users{window=\"current\"} 3\n"));
    let body = webhook_body(&mut hooks, "bot_event_share").await;
    assert_eq!(body["alert"]["kind"], "quality");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unchanged_traffic_raises_no_alert() {
    let (url, mut hooks) = webhook_listener().await;
    let server = server(Some(url)).await;
    let mut rng = SplitMix64::new(12);
    let current = normal(&mut rng, current_start(), current_start() + CURRENT, false);
    let pass = scenario(&server, current).await;
    let report = &pass["report"];
    // Every watched distribution had enough observations to be judged.
    for name in ["item_popularity", "user_activity", "event_type"] {
        let d = report["drift"]["distributions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["name"] == name)
            .unwrap();
        let psi = d["psi"].as_f64().unwrap_or_else(|| panic!("{name}: {d}"));
        assert!(psi < 0.25, "{name}: PSI {psi}");
    }
    assert_eq!(report["alerts"], json!([]), "{report}");
    assert_eq!(pass["new_alert_ids"], json!([]));
    let listed = alerts(&server).await;
    assert_eq!(listed["alerts"], json!([]));
    assert_eq!(listed["webhooks_sent"], 0);
    let text = metrics(&server).await;
    assert!(!text.contains("kindred_alerts_total{"), "{text}");
    assert!(text.contains("kindred_monitoring_passes_total 1\n"));
    // Nothing was sent (alerts are delivered on tasks spawned by the pass; none were).
    assert!(hooks.try_recv().is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn served_lists_and_attributed_clicks_reach_the_online_metrics() {
    let server = start(Options::default()).await;
    let version = server.version.clone().unwrap();
    let users = server.data.active_users();
    let mut lists = Vec::new();
    for user in &users[..2] {
        let r = server
            .client()
            .get(&format!("/v1/recommend/{user}?n=5"))
            .await;
        r.expect_status(200);
        lists.push(r.item_ids());
    }
    assert_eq!(lists[0].len(), 5);
    // One click on an item of the first user's list; one on an item the second never saw.
    let never_shown = server
        .data
        .items
        .iter()
        .map(|i| i.id.clone())
        .find(|i| !lists[1].contains(i))
        .unwrap();
    let clicks = json!([
        { "user": users[0], "item": lists[0][2], "type": "click" },
        { "user": users[1], "item": never_shown, "type": "click" },
    ]);
    server
        .client()
        .post("/v1/feedback", &clicks)
        .await
        .expect_status(200);
    let r = server.client().get("/v1/monitoring").await;
    r.expect_status(200);
    let online = r.json()["online"].as_array().unwrap().clone();
    assert_eq!(online.len(), 1, "{online:?}");
    let key = &online[0];
    assert_eq!(key["model_version"], json!(version));
    assert_eq!(key["variant"], Value::Null);
    assert_eq!(
        (key["lists"].as_u64(), key["items"].as_u64()),
        (Some(2), Some(10))
    );
    assert_eq!(key["clicks"], 1);
    assert_eq!(key["ctr"], 0.1);
    assert!(key["diversity"].as_f64().is_some(), "{key}");
    let text = metrics(&server).await;
    assert!(
        text.contains(&format!(
            "kindred_online_ctr{{model_version=\"{version}\",variant=\"none\"}} 0.1\n"
        )),
        "{text}"
    );
    assert!(text.contains("kindred_online_list_latency_seconds_count{"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pass_over_max_events_keeps_the_newest_events() {
    let server = start(Options::default().tweak(|c| {
        let m = &mut c.monitoring;
        m.window_end = WindowEnd::LatestEvent;
        m.reference_seconds = REFERENCE;
        m.current_seconds = CURRENT;
        m.interval_seconds = 3_600;
        // The windows hold 2,500 events: the cap cuts into the reference window only.
        m.max_events = 1_000;
    }))
    .await;
    let mut rng = SplitMix64::new(5);
    let current = normal(&mut rng, current_start(), current_start() + CURRENT, false);
    let posted_current = current.len();
    let pass = scenario(&server, current).await;
    assert_eq!(pass["truncated"], json!(true), "{pass}");
    assert_eq!(pass["events_read"], json!(1_000), "{pass}");
    // The current window is read whole; the reference keeps only its newest part.
    let report = &pass["report"];
    assert_eq!(
        report["current_quality"]["events"],
        json!(posted_current),
        "{report}"
    );
    assert_eq!(
        report["reference_quality"]["events"],
        json!(1_000 - posted_current),
        "{report}"
    );
}

/// Feature skew (issue 22): users described with features the live version never saw in that
/// mix raise a `feature_skew` alert in the next pass; users drawn as at training raise none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serving_features_unlike_the_training_ones_raise_the_skew_alert_in_one_pass() {
    const GROUPS: [&str; 5] = ["18-24", "25-34", "35-44", "45-54", "55+"];
    let run = |shifted: bool| async move {
        let server = start(Options::default()).await;
        let mut rng = SplitMix64::new(if shifted { 1 } else { 2 });
        // The server counts one request in four, each user once: 1,200 requests give about
        // 300 users, past the default `min_observations` of 200.
        for u in 0..1_200 {
            let group = if shifted {
                "55+"
            } else {
                GROUPS[rng.below(GROUPS.len() as u64) as usize]
            };
            server
                .client()
                .post(
                    "/v1/recommend",
                    &json!({"user": format!("visitor{u}"), "features": {"age_group": group}, "n": 3}),
                )
                .await
                .expect_status(200);
        }
        let r = server
            .client()
            .post("/v1/monitoring/run", &json!(null))
            .await;
        r.expect_status(200);
        r.json()["skew_alerts"].clone()
    };
    let shifted = run(true).await;
    let subjects: Vec<&str> = shifted
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["subject"].as_str())
        .collect();
    assert_eq!(subjects, ["user_feature:age_group"], "{shifted}");
    assert!(shifted[0]["message"].as_str().unwrap().contains("PSI"));
    let unchanged = run(false).await;
    assert_eq!(unchanged, json!([]), "no skew when drawn as at training");
}
