//! The end-to-end checks of issue 8, with the simulator driving a real server:
//!
//! 1. An experiment between a good model (ALS) and a weak one (popularity): the analysis served
//!    by `GET /v1/experiments/{name}/results` names the good one with a significant lift, SRM is
//!    not flagged, its per-variant CTRs agree with the simulator's own counts, and the oracle
//!    agrees on the order. An A/A run of the same size declares no winner.
//! 2. Drift on a simulated clock: a popularity shift raises a drift alert and a bot wave a
//!    quality alert within one current window after the drift starts (in /v1/alerts, at a
//!    webhook and on /metrics); the control run raises none.
//!
//! Everything is seeded (world, training, simulator) and each simulator run uses one
//! connection, so a run is the same run every time; the margins below are several standard
//! errors wide. Run with `--no-capture` to see the measured figures.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use kindred_core::{CancelFlag, NoProgress};
use kindred_http_client::{get_request_with_key, post_request_with_key, Connection};
use kindred_serving::config::WindowEnd;
use kindred_sim::{simulate, Clock, Drift, SimConfig, SimSummary, World};
use kindred_testkit::webhook_listener;
use serde_json::{json, Value};

use common::{serve, Served, GOOD, WORLD};

const WEAK: &str = "popularity";

/// One request to the server: (status, JSON body or Null).
async fn call(addr: SocketAddr, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
    let mut connection = Connection::connect(addr).await.unwrap();
    let request = match method {
        "GET" => get_request_with_key(path, None),
        _ => post_request_with_key(
            path,
            &serde_json::to_vec(body.unwrap_or(&Value::Null)).unwrap(),
            None,
        ),
    };
    let head = connection
        .exchange(&request)
        .await
        .unwrap_or_else(|e| panic!("{method} {path}: {e:?}"));
    let bytes = connection.body(&head).to_vec();
    let value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (head.status, value)
}

async fn expect(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&Value>,
    status: u16,
) -> Value {
    let (got, value) = call(addr, method, path, body).await;
    assert_eq!(got, status, "{method} {path}: {value}");
    value
}

async fn run(world: &Arc<World>, config: SimConfig) -> SimSummary {
    let summary = simulate(
        Arc::clone(world),
        config,
        Arc::new(NoProgress),
        CancelFlag::new(),
    )
    .await
    .unwrap();
    assert_eq!(
        (
            summary.non_2xx,
            summary.transport_errors,
            summary.duplicates
        ),
        (0, 0, 0),
        "{summary:?}"
    );
    summary
}

// ---------------------------------------------------------------------------------------------
// 1. Experiments

/// Steps of each experiment run: 300 users, ~13 lists of 10 each.
const EXPERIMENT_STEPS: u64 = 4_000;

/// Creates and starts a 50/50 experiment `name` between two versions; drives it with the
/// simulator (server clock, as attribution needs); answers the simulator's summary and the
/// results document.
async fn experiment_run(
    world: &Arc<World>,
    served: &Served,
    name: &str,
    control: &str,
    treatment: &str,
    seed: u64,
) -> (SimSummary, Value) {
    let definition = json!({
        "name": name,
        "variants": [
            { "name": "control", "model_version": control, "weight": 1 },
            { "name": "treatment", "model_version": treatment, "weight": 1 }
        ],
        "success_metric": "ctr=click/impressions",
        "guardrail_metrics": ["click_any"],
        "attribution_window_seconds": 3600
    });
    expect(
        served.addr,
        "POST",
        "/v1/experiments",
        Some(&definition),
        201,
    )
    .await;
    let path = format!("/v1/experiments/{name}/start");
    expect(served.addr, "POST", &path, Some(&json!({})), 200).await;
    let summary = run(
        world,
        SimConfig {
            server: format!("http://{}", served.addr),
            steps: EXPERIMENT_STEPS,
            list_size: 10,
            concurrency: 1,
            seed,
            clock: Clock::Server,
            run_id: Some(format!("{name}-{seed}")),
            ..SimConfig::default()
        },
    )
    .await;
    let path = format!("/v1/experiments/{name}/results");
    let results = expect(served.addr, "GET", &path, None, 200).await;
    (summary, results)
}

fn comparison<'a>(report: &'a Value, metric: &str) -> &'a Value {
    report["comparisons"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["metric"] == metric && c["variant"] == "treatment")
        .unwrap_or_else(|| panic!("no {metric} comparison in {report}"))
}

fn variant_metric(report: &Value, variant: &str, metric: &str) -> f64 {
    let v = report["variants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["variant"] == variant)
        .unwrap_or_else(|| panic!("no variant {variant} in {report}"));
    v["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["metric"] == metric)
        .unwrap_or_else(|| panic!("no {metric} for {variant} in {report}"))["mean"]
        .as_f64()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_experiment_names_the_better_model_and_an_a_a_test_names_none() {
    let started = std::time::Instant::now();
    let world = Arc::new(World::from_spec(WORLD).unwrap());
    // Live: the weak version; the good one is only served to the treatment arm.
    let served = serve(&world, &[WEAK, GOOD], |_| {}).await;
    let (weak, good) = (served.versions[0].clone(), served.versions[1].clone());

    let (sim, results) = experiment_run(&world, &served, "good-vs-weak", &weak, &good, 21).await;
    let report = &results["report"];
    assert!(report.is_object(), "{results}");
    let ctr = comparison(report, "ctr");
    let c = &ctr["comparison"];
    let (lift, p) = (
        c["absolute_lift"].as_f64().unwrap(),
        c["p_value"].as_f64().unwrap(),
    );
    let ci = [
        c["absolute_ci"][0].as_f64().unwrap(),
        c["absolute_ci"][1].as_f64().unwrap(),
    ];
    let alpha = report["alpha"].as_f64().unwrap();
    let verdict = report["verdict"].as_str().unwrap();
    let sim_ctr = |variant: &str| &sim.by_variant[&format!("good-vs-weak/{variant}")];
    let (sim_control, sim_treatment) = (sim_ctr("control"), sim_ctr("treatment"));
    eprintln!(
        "experiment ({:.1}s): users {}, lift {lift:+.4}, CI {ci:?}, p {p:.2e}\n  verdict: {verdict}\n  \
         srm: {}\n  sim control {sim_control:?}\n  sim treatment {sim_treatment:?}\n  counts {}",
        started.elapsed().as_secs_f64(),
        results["users"],
        report["srm"],
        results["counts"],
    );
    // The oracle: what the good model shows is more attractive.
    assert!(
        sim_treatment.expected_ctr > 1.3 * sim_control.expected_ctr,
        "oracle CTR: treatment {} vs control {}",
        sim_treatment.expected_ctr,
        sim_control.expected_ctr
    );
    // The analysis names the treatment with a significant lift.
    assert!(lift > 0.0 && p < alpha, "lift {lift}, p {p}, alpha {alpha}");
    assert!(ci[0] > 0.0, "CI {ci:?} must exclude 0");
    assert!(
        verdict.starts_with("treatment beats control on ctr"),
        "{verdict}"
    );
    assert!(verdict.ends_with("SRM ok"), "{verdict}");
    assert_eq!(report["srm"]["mismatch"], json!(false), "{}", report["srm"]);
    // The dashboard's experiment page shows the same verdict (no keys configured: open).
    let (status, page) = call(
        served.addr,
        "GET",
        "/dashboard/experiments/good-vs-weak",
        None,
    )
    .await;
    let page = page.as_str().unwrap_or_default();
    assert_eq!(status, 200, "{page}");
    let shown = page
        .split("id=\"verdict\"")
        .nth(1)
        .and_then(|rest| rest.split("</p>").next())
        .unwrap_or_else(|| panic!("no #verdict on the experiment page: {page}"));
    assert!(
        shown.contains("treatment beats control on ctr"),
        "dashboard verdict: {shown}"
    );
    assert!(page.contains("id=\"lift-chart\""), "no #lift-chart");
    // The server's per-variant CTRs are the simulator's: every list is an exposure and every
    // click is attributed to a list, so only a click on an item shown again to the same user
    // before (credited to the latest list) could move a count. Both sides count the same
    // impressions and clicks; allow half a point for such re-attribution.
    for (variant, stats) in [("control", sim_control), ("treatment", sim_treatment)] {
        let server_ctr = variant_metric(report, variant, "ctr");
        assert!(
            (server_ctr - stats.ctr).abs() < 0.005,
            "{variant}: server CTR {server_ctr} vs simulator {}",
            stats.ctr
        );
        assert_eq!(
            results["counts"]["impressions"][variant],
            json!(stats.items),
            "{variant}: impressions"
        );
        assert_eq!(
            results["counts"]["attributed"][variant]["click"],
            json!(stats.clicks),
            "{variant}: attributed clicks"
        );
    }
    expect(
        served.addr,
        "POST",
        "/v1/experiments/good-vs-weak/stop",
        Some(&json!({})),
        200,
    )
    .await;

    // A/A: both arms the good version, same size, simulator seed 22. A check that the plumbing
    // (assignment, logging, attribution) favours no arm, not a false-positive rate.
    let (sim, results) = experiment_run(&world, &served, "a-a", &good, &good, 22).await;
    let report = &results["report"];
    let c = &comparison(report, "ctr")["comparison"];
    let p = c["p_value"].as_f64().unwrap();
    let verdict = report["verdict"].as_str().unwrap();
    eprintln!(
        "A/A ({:.1}s total): p {p:.3}, lift {}, verdict: {verdict}\n  by variant {:?}",
        started.elapsed().as_secs_f64(),
        c["absolute_lift"],
        sim.by_variant
    );
    assert!(
        p >= report["alpha"].as_f64().unwrap(),
        "A/A p {p}: {verdict}"
    );
    assert!(
        verdict.starts_with("no significant difference"),
        "{verdict}"
    );
    assert_eq!(report["srm"]["mismatch"], json!(false), "{}", report["srm"]);
    let click_any = &comparison(report, "click_any")["comparison"];
    assert!(
        click_any["p_value"].as_f64().unwrap() >= 0.05,
        "{click_any}"
    );
}

// ---------------------------------------------------------------------------------------------
// 2. Drift on a simulated clock

/// Simulated start (2030), far after the world's history, so the imported events lie outside
/// every window.
const T0: i64 = 1_900_000_000;
const SECONDS_PER_STEP: i64 = 10;
/// The normal phase: 200 steps = 2,000 simulated seconds, filling the reference window.
const DRIFT_START_STEP: u64 = 200;
const REFERENCE_SECONDS: i64 = 2_000;
const CURRENT_SECONDS: i64 = 500;
/// A monitoring pass after every this many steps (100 simulated seconds).
const PASS_EVERY: u64 = 10;
/// Steps after the drift start: one current window and one pass more.
const AFTER_STEPS: u64 = (CURRENT_SECONDS / SECONDS_PER_STEP) as u64 + PASS_EVERY;

/// A new alert of a pass: (kind, subject, end of the current window it measured).
type NewAlert = (String, String, i64);

/// What a drift run observed.
struct DriftRun {
    /// `(latest simulated second posted, new alerts (kind, subject, window end))` per pass.
    passes: Vec<(i64, Vec<NewAlert>)>,
    alerts: Value,
    metrics: String,
    webhooks: Vec<Value>,
    /// The item-popularity PSI of each pass after the drift start.
    psi: Vec<Option<f64>>,
}

/// A server watching short windows on the simulator's clock; the normal phase, then the drift
/// from DRIFT_START_STEP on, with a monitoring pass (POST /v1/monitoring/run) after every
/// PASS_EVERY steps of it.
async fn drift_run(world: &Arc<World>, drift: Drift) -> DriftRun {
    let (url, mut hooks) = webhook_listener().await;
    let served = serve(world, &["popularity"], |c| {
        let m = &mut c.monitoring;
        m.window_end = WindowEnd::LatestEvent;
        m.reference_seconds = REFERENCE_SECONDS;
        m.current_seconds = CURRENT_SECONDS;
        m.min_observations = 200;
        // The loop stays out of the way: passes run through the admin route.
        m.interval_seconds = 3_600;
        m.webhooks = vec![url];
    })
    .await;
    let segment = |first_step, steps| SimConfig {
        server: format!("http://{}", served.addr),
        steps,
        first_step,
        list_size: 10,
        concurrency: 1,
        seed: 31,
        clock: Clock::Simulated {
            start: T0,
            seconds_per_step: SECONDS_PER_STEP as f64,
        },
        organic_per_step: 10.0,
        drift: drift.clone(),
        drift_start_step: DRIFT_START_STEP,
        run_id: Some("drift".into()),
        ..SimConfig::default()
    };
    run(world, segment(0, DRIFT_START_STEP)).await;
    let mut passes = Vec::new();
    let mut psi = Vec::new();
    let mut step = DRIFT_START_STEP;
    while step < DRIFT_START_STEP + AFTER_STEPS {
        run(world, segment(step, PASS_EVERY)).await;
        step += PASS_EVERY;
        let pass = expect(
            served.addr,
            "POST",
            "/v1/monitoring/run",
            Some(&json!(null)),
            200,
        )
        .await;
        psi.push(
            pass["report"]["drift"]["distributions"]
                .as_array()
                .and_then(|d| d.iter().find(|d| d["name"] == "item_popularity"))
                .and_then(|d| d["psi"].as_f64()),
        );
        let ids = pass["new_alert_ids"].as_array().unwrap().clone();
        let listed = expect(served.addr, "GET", "/v1/alerts", None, 200).await;
        let new: Vec<NewAlert> = listed["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| ids.contains(&a["id"]))
            .map(|a| {
                (
                    a["kind"].as_str().unwrap().to_owned(),
                    a["subject"].as_str().unwrap().to_owned(),
                    a["window"]["end"].as_i64().unwrap_or(i64::MAX),
                )
            })
            .collect();
        let latest = T0 + step as i64 * SECONDS_PER_STEP;
        passes.push((latest, new));
    }
    let alerts = expect(served.addr, "GET", "/v1/alerts", None, 200).await;
    let (_, metrics) = call(served.addr, "GET", "/metrics", None).await;
    let metrics = metrics.as_str().unwrap_or_default().to_owned();
    // Webhooks go out on tasks of their own: wait (bounded) for one per alert listed.
    let expected = alerts["alerts"].as_array().map_or(0, Vec::len);
    let mut webhooks = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while webhooks.len() < expected {
        match tokio::time::timeout_at(deadline, hooks.recv()).await {
            Ok(Some(body)) => webhooks.push(serde_json::from_str(&body).unwrap()),
            _ => break,
        }
    }
    drop(served);
    DriftRun {
        passes,
        alerts,
        metrics,
        webhooks,
        psi,
    }
}

/// Asserts an alert `(kind, subject)` was raised by a pass whose current window ended no later
/// than one current window after the drift started (simulated time); answers that delay.
fn raised_in_time(run: &DriftRun, kind: &str, subject: &str) -> i64 {
    let drift_start = T0 + DRIFT_START_STEP as i64 * SECONDS_PER_STEP;
    let first = run
        .passes
        .iter()
        .find_map(|(latest, new)| {
            new.iter()
                .find(|(k, s, _)| k == kind && s == subject)
                .map(|(_, _, end)| (*latest, *end))
        })
        .unwrap_or_else(|| {
            panic!(
                "no {kind}/{subject} alert; passes {:?}\nalerts {}",
                run.passes, run.alerts
            )
        });
    let delay = first.1 - drift_start;
    eprintln!(
        "{kind}/{subject}: first raised by the pass at simulated +{} s (window end +{delay} s) \
         after the drift start; item PSI per pass {:?}",
        first.0 - drift_start,
        run.psi
    );
    assert!(
        delay <= CURRENT_SECONDS,
        "{kind}/{subject} raised {delay} s after the drift, more than one window ({CURRENT_SECONDS} s)"
    );
    assert!(
        run.metrics
            .contains(&format!("kindred_alerts_total{{kind=\"{kind}\"}} ")),
        "{}",
        run.metrics
    );
    assert!(
        run.webhooks
            .iter()
            .any(|w| w["alert"]["kind"] == kind && w["alert"]["subject"] == subject),
        "no webhook for {kind}/{subject}: {:?}",
        run.webhooks
    );
    delay
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_popularity_shift_alerts_within_one_window() {
    let started = std::time::Instant::now();
    let world = Arc::new(World::from_spec(WORLD).unwrap());
    let run = drift_run(&world, Drift::PopularityShift { share: 0.5 }).await;
    raised_in_time(&run, "drift", "item_popularity");
    eprintln!("popularity shift: {:.1}s", started.elapsed().as_secs_f64());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bot_wave_alerts_within_one_window() {
    let started = std::time::Instant::now();
    let world = Arc::new(World::from_spec(WORLD).unwrap());
    let run = drift_run(
        &world,
        Drift::BotWave {
            bots: 3,
            events_per_bot: 200,
            seconds: 60,
            single_item: false,
        },
    )
    .await;
    raised_in_time(&run, "quality", "bot_event_share");
    eprintln!("bot wave: {:.1}s", started.elapsed().as_secs_f64());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_control_run_raises_no_alert() {
    let started = std::time::Instant::now();
    let world = Arc::new(World::from_spec(WORLD).unwrap());
    let run = drift_run(&world, Drift::None).await;
    eprintln!(
        "control: item PSI per pass {:?} ({:.1}s)",
        run.psi,
        started.elapsed().as_secs_f64()
    );
    // Every pass judged item popularity (enough observations), and found no drift.
    assert!(
        run.psi.iter().all(|p| p.is_some_and(|p| p < 0.25)),
        "{:?}",
        run.psi
    );
    assert_eq!(run.alerts["alerts"], json!([]), "{}", run.alerts);
    assert!(run.passes.iter().all(|(_, new)| new.is_empty()));
    assert!(
        !run.metrics.contains("kindred_alerts_total{"),
        "{}",
        run.metrics
    );
    assert!(run.webhooks.is_empty(), "{:?}", run.webhooks);
}

// ---------------------------------------------------------------------------------------------
// 3. Offline control charts after training

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retrain_that_breaks_its_control_chart_raises_an_alert() {
    let world = Arc::new(World::from_spec(WORLD).unwrap());
    let served = serve(&world, &[], |c| c.watch_interval_ms = 50).await;
    let store = served.state.serving.store();
    let now = kindred_serving::unix_now();
    // Five earlier ALS versions with hand-set offline NDCG 0.90..0.98 (centre 0.94, sigma
    // 0.0316: lower limit 0.845), which no ALS on this world reaches.
    let register = |version: String, created_at: i64, ndcg: f64| kindred_store::NewModel {
        version,
        algorithm: "als".into(),
        params: json!({}),
        metrics: json!({"offline": {"ndcg@10": ndcg}}),
        artifact: "/nonexistent".into(),
        created_at,
    };
    for (i, ndcg) in [0.90, 0.92, 0.94, 0.96, 0.98].into_iter().enumerate() {
        store
            .register_model(&register(format!("hand-{i}"), now - 1_000 + i as i64, ndcg))
            .await
            .unwrap();
    }
    // A normal newest version raises nothing; checked once.
    store
        .register_model(&register("hand-ok".into(), now - 500, 0.95))
        .await
        .unwrap();
    assert!(served
        .state
        .serving
        .lifecycle
        .check_offline_charts()
        .await
        .unwrap()
        .is_empty());

    // The API path: an ALS trained by the server is far below the chart.
    let trained = expect(
        served.addr,
        "POST",
        "/v1/models",
        Some(&json!({"model": "als:factors=4,iterations=2", "activate": false, "wait": true})),
        201,
    )
    .await;
    let version = trained["version"]
        .as_str()
        .or_else(|| trained["model"]["version"].as_str())
        .unwrap_or_else(|| panic!("{trained}"))
        .to_owned();
    let alerts = expect(served.addr, "GET", "/v1/alerts", None, 200).await;
    eprintln!("after training {version}: {alerts}");
    let listed = alerts["alerts"].as_array().unwrap();
    let ndcg = listed
        .iter()
        .find(|a| a["kind"] == "control_chart" && a["subject"] == "offline ndcg@10 (als)")
        .unwrap_or_else(|| panic!("no offline ndcg alert: {alerts}"));
    assert!(
        ndcg["message"].as_str().unwrap().contains(&version),
        "{ndcg}"
    );
    assert!(ndcg["value"].as_f64().unwrap() < 0.845, "{ndcg}");
    // Checked once: a second check of the same newest version raises nothing.
    assert!(served
        .state
        .serving
        .lifecycle
        .check_offline_charts()
        .await
        .unwrap()
        .is_empty());
    let (_, metrics) = call(served.addr, "GET", "/metrics", None).await;
    assert!(
        metrics
            .as_str()
            .unwrap()
            .contains("kindred_alerts_total{kind=\"control_chart\"} "),
        "{metrics}"
    );

    // The other path: a version registered by another process (`kindred train --store`) is
    // checked by the background loop. Same chart within the cooldown: the entry is updated.
    let (stop, watch) = tokio::sync::watch::channel(false);
    let background = tokio::spawn(kindred_serving::background::run(
        Arc::clone(&served.state.serving.state),
        Arc::clone(&served.state.serving.lifecycle),
        watch,
    ));
    store
        .register_model(&register("hand-bad".into(), now + 10, 0.5))
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let alerts = expect(served.addr, "GET", "/v1/alerts", None, 200).await;
        let entry = alerts["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["subject"] == "offline ndcg@10 (als)")
            .cloned()
            .unwrap_or_else(|| panic!("{alerts}"));
        if entry["count"] == 2 {
            assert!(
                entry["message"].as_str().unwrap().contains("hand-bad"),
                "{entry}"
            );
            assert_eq!(entry["value"], 0.5, "{entry}");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the background loop did not check hand-bad: {alerts}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.send(true).unwrap();
    background.await.unwrap();
}
