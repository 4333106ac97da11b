//! The experiment engine end to end over HTTP: a draft serves nothing, a started experiment
//! assigns each user one variant for good and serves it from the variant's model version,
//! every list served in it is logged (exposure + impressions), clicks on shown items are
//! attributed to the variant that showed them (exact counts), stopping ends assignment, the
//! state survives a restart, and a canary sends about its percentage to the new version.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{start, Options};
use kindred_core::FitContext;
use kindred_server::AppState;
use kindred_serving::TrainSpec;
use serde_json::{json, Value};

const ADMIN: &str = "admin-key";
const READ: &str = "read-key";

/// Registers a popularity version (not live) beside the fixture's live ALS one.
async fn second_version(server: &common::TestServer) -> String {
    let spec = TrainSpec {
        model: "popularity".into(),
        positive: None,
        seed: 1,
        pipeline: None,
    };
    kindred_serving::train_and_register(
        server.state.serving.store(),
        &server.state.serving.config().artifacts_dir(),
        &spec,
        FitContext::with_seed(1),
    )
    .await
    .expect("register the popularity version")
    .model
    .version
}

fn definition(name: &str, treatment_version: &str) -> Value {
    json!({
        "name": name,
        "variants": [
            { "name": "control", "weight": 1 },
            { "name": "treatment", "model_version": treatment_version, "weight": 1 }
        ],
        "success_metric": "click_any",
        "guardrail_metrics": ["ctr=click/impressions"],
        "attribution_window_seconds": 3600
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn experiments_serve_variants_log_exposures_and_attribute_clicks() {
    let server = start(Options::keys(Some(READ), None, Some(ADMIN))).await;
    let live = server.version.clone().expect("a live version");
    let popularity = second_version(&server).await;
    let admin = server.client_with_key(ADMIN);
    let reader = server.client_with_key(READ);

    let created = admin
        .post("/v1/experiments", &definition("als-vs-pop", &popularity))
        .await;
    created.expect_status(201);
    assert_eq!(created.json()["status"], "draft");
    reader
        .post("/v1/experiments", &definition("x", &popularity))
        .await
        .expect_status(403);
    admin
        .post("/v1/experiments", &definition("als-vs-pop", &popularity))
        .await
        .expect_status(409);

    let users: Vec<String> = server.data.active_users().into_iter().take(40).collect();
    let draft = reader.get(&format!("/v1/recommend/{}", users[0])).await;
    draft.expect_status(200);
    assert!(
        draft.json().get("experiment").is_none(),
        "a draft assigns nobody"
    );

    admin
        .post("/v1/experiments/als-vs-pop/start", &json!({}))
        .await
        .expect_status(200);
    admin
        .post("/v1/experiments/als-vs-pop/start", &json!({}))
        .await
        .expect_status(409);

    // Each user twice: the same variant and list both times (the second from the cache, still
    // logged), from the variant's model version.
    let mut variant_of: BTreeMap<String, String> = BTreeMap::new();
    let mut shown: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for user in &users {
        let mut seen = Vec::new();
        for _ in 0..2 {
            let answer = reader.get(&format!("/v1/recommend/{user}?n=5")).await;
            answer.expect_status(200);
            let body = answer.json();
            assert_eq!(body["experiment"]["name"], "als-vs-pop");
            let variant = body["experiment"]["variant"].as_str().unwrap().to_owned();
            let expected = if variant == "treatment" {
                &popularity
            } else {
                &live
            };
            assert_eq!(
                body["model_version"],
                json!(expected),
                "{user} in {variant}"
            );
            seen.push((variant, answer.item_ids()));
        }
        assert_eq!(seen[0], seen[1], "one user, one variant, one list");
        let (variant, items) = seen.swap_remove(0);
        assert_eq!(items.len(), 5);
        variant_of.insert(user.clone(), variant);
        shown.insert(user.clone(), items);
    }
    let treated = variant_of.values().filter(|v| *v == "treatment").count();
    assert!((8..=32).contains(&treated), "{treated} of 40 in treatment");
    // The arms differ: popularity gives (almost) everyone the same top items, ALS does not.
    let sources = |variant: &str| -> Vec<&Vec<String>> {
        users
            .iter()
            .filter(|u| variant_of[*u] == variant)
            .map(|u| &shown[u])
            .collect()
    };
    assert_ne!(sources("control"), sources("treatment"));

    // Treatment users click their first item; control users click an item never shown to them.
    let now = kindred_serving::unix_now();
    let mut events = Vec::new();
    for user in &users {
        let item = if variant_of[user] == "treatment" {
            shown[user][0].clone()
        } else {
            let never = server
                .data
                .items
                .iter()
                .map(|i| i.id.clone())
                .find(|i| !shown[user].contains(i))
                .unwrap();
            never
        };
        events.push(json!({ "user": user, "item": item, "type": "click", "timestamp": now }));
    }
    admin
        .post("/v1/feedback", &json!(events))
        .await
        .expect_status(200);

    let results = reader.get("/v1/experiments/als-vs-pop/results").await;
    results.expect_status(200);
    let r = results.json();
    let control = users.len() - treated;
    assert_eq!(r["users"], json!(users.len()));
    assert_eq!(r["counts"]["exposures"]["treatment"], json!(2 * treated));
    assert_eq!(r["counts"]["exposures"]["control"], json!(2 * control));
    assert_eq!(r["counts"]["impressions"]["treatment"], json!(10 * treated));
    assert_eq!(
        r["counts"]["attributed"]["treatment"]["click"],
        json!(treated)
    );
    assert!(r["counts"]["attributed"].get("control").is_none(), "{r}");
    assert_eq!(r["counts"]["unattributed_events"], json!(control));
    let report = &r["report"];
    assert_eq!(report["control"], "control", "{r}");
    let click_any = report["comparisons"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["metric"] == "click_any")
        .unwrap_or_else(|| panic!("no click_any comparison in {report}"));
    assert_eq!(click_any["variant"], "treatment");
    let stored = server
        .state
        .serving
        .store()
        .experiment_impressions("als-vs-pop")
        .await
        .unwrap();
    assert_eq!(stored.len(), 10 * users.len());
    assert!(stored.iter().all(|i| i.policy
        == if variant_of[&i.user] == "treatment" {
            popularity.as_str()
        } else {
            live.as_str()
        }));

    let metrics = reader.get("/metrics").await.text();
    assert!(
        metrics.contains(&format!(
            "kindred_experiment_exposures_written_total {}",
            2 * users.len()
        )),
        "{metrics}"
    );
    assert!(metrics.contains("kindred_experiments_running 1"));

    // A restart (a new state over the same store) assigns the same way.
    let restarted = AppState::new(
        server.state.serving.config().clone(),
        server.state.serving.store().clone(),
    )
    .await
    .unwrap();
    for user in &users {
        let a = restarted
            .serving
            .state
            .assign(user)
            .expect("still running after a restart");
        assert_eq!(a.variant, variant_of[user]);
    }

    admin
        .post("/v1/experiments/als-vs-pop/stop", &json!({}))
        .await
        .expect_status(200);
    let after = reader.get(&format!("/v1/recommend/{}", users[0])).await;
    assert!(
        after.json().get("experiment").is_none(),
        "stopped: default lists"
    );
    assert_eq!(after.json()["model_version"], json!(live));
    // The other server notices the stop by polling the store.
    let stopped_elsewhere = common::eventually(Duration::from_secs(5), || {
        let restarted = restarted.clone();
        let user = users[0].clone();
        async move {
            let _ = restarted.serving.state.reload_experiments().await;
            restarted.serving.state.assign(&user).is_none()
        }
    })
    .await;
    assert!(stopped_elsewhere);
    let listed = reader.get("/v1/experiments").await;
    assert_eq!(listed.json()["experiments"][0]["status"], "stopped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_sends_about_its_percentage_to_the_new_version() {
    let server = start(Options::default()).await;
    let live = server.version.clone().expect("a live version");
    let popularity = second_version(&server).await;
    let client = server.client();
    let answer = client
        .post(
            &format!("/v1/models/{popularity}/canary"),
            &json!({ "percent": 10 }),
        )
        .await;
    answer.expect_status(201);
    let name = format!("canary-{popularity}");
    assert_eq!(answer.json()["name"], json!(name));
    assert_eq!(answer.json()["status"], "running");

    let n = 5000;
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for u in 0..n {
        let variant = server
            .state
            .serving
            .state
            .assign(&format!("visitor-{u}"))
            .map_or("default".to_owned(), |a| a.variant);
        *counts.entry(variant).or_default() += 1;
    }
    let share = |v: &str| counts.get(v).copied().unwrap_or(0) as f64 / n as f64;
    assert!((share("canary") - 0.10).abs() < 0.02, "{counts:?}");
    assert!((share("control") - 0.10).abs() < 0.02, "{counts:?}");
    assert!((share("default") - 0.80).abs() < 0.03, "{counts:?}");

    // A user in the canary is served by the new version, one in its control by the live one.
    let find = |variant: &str| {
        (0..n)
            .map(|u| format!("visitor-{u}"))
            .find(|u| {
                server
                    .state
                    .serving
                    .state
                    .assign(u)
                    .is_some_and(|a| a.variant == variant)
            })
            .unwrap()
    };
    for (variant, version) in [("canary", &popularity), ("control", &live)] {
        let answer = client
            .get(&format!("/v1/recommend/{}", find(variant)))
            .await;
        answer.expect_status(200);
        assert_eq!(answer.json()["model_version"], json!(version));
        assert_eq!(answer.json()["experiment"]["name"], json!(name));
        // POST /v1/recommend with a user id is assigned the same way.
        let posted = client
            .post("/v1/recommend", &json!({ "user": find(variant), "n": 3 }))
            .await;
        posted.expect_status(200);
        assert_eq!(posted.json()["experiment"]["variant"], json!(variant));
        assert_eq!(posted.json()["model_version"], json!(version));
    }
    // Anonymous requests are in no experiment.
    let anonymous = client.post("/v1/recommend", &json!({ "n": 3 })).await;
    assert!(anonymous.json().get("experiment").is_none());
    client
        .post(
            &format!("/v1/models/{popularity}/canary"),
            &json!({ "percent": 10 }),
        )
        .await
        .expect_status(409);
}
