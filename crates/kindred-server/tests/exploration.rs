//! Exploration through the HTTP API: a rank config with an `[exploration]` section fills lists
//! per request, every listed item carries its propensity, the impressions are stored with them
//! and a `version#rank` policy, and the off-policy replay of the logs through the same config
//! gives back exactly what was logged (every weight 1), while a greedy candidate is weighed.

mod common;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use common::{start, Options};
use kindred_rank::exploration::BanditState;
use kindred_rank::RankConfig;
use kindred_serving::clock::unix_now;
use kindred_serving::exploration::replay::{replay, ReplayOptions};
use kindred_serving::exploration::{BanditLearners, PolicyId};
use kindred_store::Feedback;
use serde_json::Value;

/// The off-policy replay of `options`, without progress or cancellation.
async fn replay_quietly(
    store: &kindred_store::Store,
    options: &ReplayOptions,
) -> kindred_serving::error::Result<kindred_serving::exploration::replay::ReplayReport> {
    replay(
        store,
        options,
        Arc::new(|_, _| {}),
        Arc::new(AtomicBool::new(false)),
    )
    .await
}

/// A server whose default rank config is `rank_toml`, and the time just before it started.
async fn start_with_rank(rank_toml: &str) -> (tempfile::TempDir, common::TestServer, i64) {
    let dir = tempfile::tempdir().unwrap();
    let rank = dir.path().join("rank.toml");
    std::fs::write(&rank, rank_toml).unwrap();
    let since = unix_now() - 1;
    let server = start(Options::default().tweak(move |c| c.rank = Some(rank))).await;
    (dir, server, since)
}

const EXPLORE: &str = "[exploration]\npolicy = \"epsilon-greedy\"\nepsilon = 0.5\n\
                       max_explored = 2\npool = 5\nseed = 11\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exploring_lists_log_propensities_and_replay_to_what_was_logged() {
    let (_dir, server, since) = start_with_rank(EXPLORE).await;
    let version = server.version.clone().expect("a published version");
    let c = server.client();
    let users: Vec<String> = server.data.users.iter().map(|u| u.id.clone()).collect();

    // Serve every user a few lists: propensities on every item, some explored, never cached.
    let mut shown: Vec<(String, String, String)> = Vec::new();
    let mut explored = 0;
    let mut lists = std::collections::HashSet::new();
    for round in 0..3 {
        for user in &users {
            let r = c.get(&format!("/v1/recommend/{user}?n=4")).await;
            r.expect_status(200);
            let body = r.json();
            let request_id = body["request_id"].as_str().unwrap().to_owned();
            let items = body["items"].as_array().unwrap();
            assert_eq!(items.len(), 4);
            for item in items {
                let p = item["propensity"].as_f64().expect("a propensity");
                assert!(p > 0.0 && p <= 1.0, "{item}");
                explored += usize::from(item["explored"] == Value::Bool(true));
            }
            let ids: Vec<String> = r.item_ids();
            lists.insert((user.clone(), ids.clone()));
            if round == 0 {
                shown.push((user.clone(), ids[0].clone(), request_id));
            }
        }
    }
    assert!(explored > 0, "epsilon 0.5 explores");
    assert!(
        lists.len() > users.len(),
        "lists are drawn per request, not served from the cache"
    );
    // A later page is the ranking's own: no propensities.
    let page = c
        .get(&format!("/v1/recommend/{}?n=4&offset=4", users[0]))
        .await;
    assert!(page.json()["items"][0].get("propensity").is_none());

    // Clicks after all lists were served (so no list saw them as history).
    let clicks: Vec<Feedback> = shown
        .iter()
        .step_by(3)
        .map(|(user, item, _)| Feedback {
            user: user.clone(),
            item: item.clone(),
            event_type: "click".into(),
            value: None,
            timestamp: unix_now() + 5,
            event_id: None,
        })
        .collect();
    let store = server.state.serving.store();
    store.insert_feedback(&clicks).await.unwrap();
    server.state.serving.state.exposure_log.flush().await;

    let rows = store
        .impressions_between(since, unix_now() + 1, 100_000)
        .await
        .unwrap();
    assert_eq!(
        rows.len(),
        3 * users.len() * 4,
        "every shown item is logged"
    );
    assert!(rows.iter().all(|r| r.propensity.is_some()));
    let policy = PolicyId::parse(&rows[0].policy);
    assert_eq!(policy.version.as_deref(), Some(version.as_str()));
    assert_eq!(policy.rank.as_deref(), Some("default"));

    // Replaying the logs through the logging config itself: every weight is 1, so IPS and
    // SNIPS are the observed click rate (the replay rebuilt every logged list's chances).
    let until = unix_now() + 1;
    let explore_config = RankConfig::from_toml_str(EXPLORE, "explore.toml".as_ref()).unwrap();
    let options = ReplayOptions::new(since, until, explore_config, "explore");
    let report = replay_quietly(store, &options).await.unwrap();
    assert_eq!(report.requests, 3 * users.len());
    assert_eq!(report.rewards, clicks.len());
    let observed = clicks.len() as f64 / rows.len() as f64;
    for (name, e) in [
        ("logged", report.logged),
        ("ips", report.ips),
        ("snips", report.snips),
    ] {
        assert!(
            (e.estimate - observed).abs() < 1e-9,
            "{name}: {} vs {observed}",
            e.estimate
        );
    }
    // Doubly robust adds the reward model's expectation over what the policy could have shown
    // minus its prediction of what it did show: zero on average, not in every sample.
    let dr = report.doubly_robust;
    assert!(
        (dr.estimate - observed).abs() < 0.01,
        "{dr:?} vs {observed}"
    );
    assert!(dr.lower <= observed && observed <= dr.upper, "{dr:?}");
    assert!((report.effective_sample_size - report.requests as f64).abs() < 1e-6);
    assert_eq!(report.top_slot_support, report.requests);

    // A greedy candidate: its lists are among what was logged, so it has support but weights.
    let greedy = ReplayOptions::new(since, until, RankConfig::default(), "greedy");
    let report = replay_quietly(store, &greedy).await.unwrap();
    assert!(report.top_slot_support > 0 && report.top_slot_support < report.requests);
    assert!(report.effective_sample_size < report.requests as f64);
    assert!(report.snips.lower <= report.snips.upper);

    // The same over HTTP for admins, with the server's own rank config as the candidate.
    let r = c
        .post(
            "/v1/offpolicy",
            &serde_json::json!({ "since": since, "until": until }),
        )
        .await;
    r.expect_status(200);
    assert_eq!(r.json()["requests"], 3 * users.len());
    assert_eq!(r.json()["candidate"], "default");
    let estimate = r.json()["snips"]["estimate"].as_f64().unwrap();
    assert!((estimate - observed).abs() < 1e-9);
    for (body, code) in [
        (
            serde_json::json!({ "since": since, "rank": "nope" }),
            "unknown_rank_config",
        ),
        (
            serde_json::json!({ "since": since, "until": since }),
            "bad_window",
        ),
        (
            serde_json::json!({ "since": since - 100, "until": since - 50 }),
            "no_logged_propensities",
        ),
    ] {
        let r = c.post("/v1/offpolicy", &body).await;
        r.expect_status(400);
        assert_eq!(r.error_code(), Some(code), "{body}: {}", r.text());
    }

    // The dashboard's page: counters, the window per policy, a form per rank config, and the
    // estimate an admin asks for.
    let html = c.get("/dashboard/exploration").await;
    html.expect_status(200);
    let text = html.text();
    let lists_line = format!("{} exploring lists served", 3 * users.len());
    assert!(text.contains(&lists_line), "{text}");
    assert!(text.contains(&format!("{version}#default")), "{text}");
    assert!(text.contains("/dashboard/exploration/estimate/default"));
    let marker = "name=\"csrf\" value=\"";
    let token = text.find(marker).map_or("", |at| {
        let rest = &text[at + marker.len()..];
        &rest[..rest.find('"').unwrap_or(0)]
    });
    let form = [("Content-Type", "application/x-www-form-urlencoded")];
    let body = format!("csrf={token}");
    let estimated = c
        .request(
            "POST",
            "/dashboard/exploration/estimate/default",
            &form,
            Some(body.as_bytes()),
        )
        .await;
    estimated.expect_status(200);
    assert!(estimated.text().contains("candidate, doubly robust"));
    let forged = c
        .request(
            "POST",
            "/dashboard/exploration/estimate/default",
            &form,
            Some(b"csrf=wrong"),
        )
        .await;
    forged.expect_status(403);

    // Replays refuse a window with nothing explored in it, naming why.
    let empty = ReplayOptions::new(until + 10, until + 20, RankConfig::default(), "greedy");
    let err = replay_quietly(store, &empty).await.unwrap_err();
    assert!(err.to_string().contains("[exploration]"), "{err}");
    tokio::time::sleep(Duration::from_millis(10)).await;
}

/// A LinUCB rank config with a one-second attribution window, so lists close quickly.
const BANDIT: &str = "[exploration]\npolicy = \"linucb\"\nepsilon = 0.1\npool = 5\n\
                      attribution_window = 1\nseed = 3\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bandit_learns_from_clicks_and_keeps_what_it_learned_in_the_store() {
    let (_dir, server, since) = start_with_rank(BANDIT).await;
    let version = server.version.clone().expect("a published version");
    let c = server.client();
    let users: Vec<String> = server.data.users.iter().map(|u| u.id.clone()).collect();
    let mut clicks = Vec::new();
    for user in &users {
        let r = c.get(&format!("/v1/recommend/{user}?n=4")).await;
        r.expect_status(200);
        for item in r.json()["items"].as_array().unwrap() {
            let p = item["propensity"].as_f64().expect("a propensity");
            assert!(p > 0.0 && p <= 1.0, "{item}");
        }
        let first = r.item_ids()[0].clone();
        let click = serde_json::json!({"user": user, "item": first, "type": "click"});
        // Clicked at once: the one-second window of a list shown early could close before a
        // batch sent after the last list.
        c.post("/v1/feedback", &Value::Array(vec![click.clone()]))
            .await
            .expect_status(200);
        clicks.push(click);
    }

    // The windows close after a second; the next background tick learns and stores.
    let policy = PolicyId {
        version: Some(version),
        rank: Some("default".into()),
    }
    .to_string();
    let store = server.state.serving.store();
    let mut stored = None;
    // A flush is due every `FLUSH_SECONDS` (10 s): wait up to three. The lists were shown over
    // a second boundary or more, so the first flush may hold only the windows that had closed
    // by then: wait for every list's items.
    let shown = (4 * users.len()) as f64;
    for _ in 0..300 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let state = store.bandit_state(&policy).await.unwrap();
        stored = state
            .as_deref()
            .and_then(|s| serde_json::from_str::<BanditState>(s).ok())
            .filter(|s| s.observations > 0.0);
        if stored.as_ref().is_some_and(|s| s.observations >= shown) {
            break;
        }
    }
    let stored = stored.expect("the learned state reaches the store");
    let page = c.get("/dashboard/exploration").await;
    page.expect_status(200);
    let text = page.text();
    assert!(text.contains("Contextual bandits"), "{text}");
    assert!(text.contains(&policy), "{text}");

    // Off-policy replay of the bandit itself uses what it learned, frozen, and says so.
    server.state.serving.state.exposure_log.flush().await;
    let config = RankConfig::from_toml_str(BANDIT, "bandit.toml".as_ref()).unwrap();
    let options = ReplayOptions::new(since, unix_now() + 1, config, "default");
    let report = replay_quietly(store, &options).await.unwrap();
    assert_eq!(report.requests, users.len());
    assert!(
        report
            .warnings
            .iter()
            .any(|w| w.contains("contextual bandit") && w.contains("observations")),
        "{:?}",
        report.warnings
    );
    assert_eq!(stored.observations, (4 * users.len()) as f64);
    assert_eq!(stored.rewards, clicks.len() as f64);

    // A server starting on the same store (or a second one beside it) loads that state on
    // its first tick.
    let fresh = BanditLearners::default();
    let config = RankConfig::from_toml_str(BANDIT, "bandit.toml".as_ref())
        .unwrap()
        .exploration;
    let catalog = Arc::clone(&server.state.serving.state.snapshot().items);
    fresh.posterior(&policy, &config, &catalog, unix_now());
    for flush in fresh.tick(unix_now()) {
        fresh
            .flush(store, flush, unix_now(), Arc::new(|_: &str| false))
            .await
            .unwrap();
    }
    let (_, _, observations, mean) = fresh.summary()[0].clone();
    assert_eq!(observations, stored.observations);
    assert!((mean - stored.rewards / stored.observations).abs() < 1e-12);

    // Erasing an item the bandit learned removes it from the stored state.
    let learned_item = stored.items.keys().next().expect("a learned item").clone();
    c.delete(&format!("/v1/items/{learned_item}?erase=true"))
        .await
        .expect_status(200);
    let after = store.bandit_state(&policy).await.unwrap().unwrap();
    let after: BanditState = serde_json::from_str(&after).unwrap();
    assert!(!after.items.contains_key(&learned_item));
    assert_eq!(after.items.len(), stored.items.len() - 1);
}
