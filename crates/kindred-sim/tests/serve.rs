//! End to end: a world imported into a SQLite store, models trained on its history, a real
//! server, and the simulator driving it. The simulator must tell a good model from a weak one,
//! be reproducible under a seed, and send the events its drift scenarios promise.

mod common;

use std::sync::Arc;

use kindred_sim::{Appeal, Clock, Drift, Origin, SimConfig, SimSummary, World};

use common::{run, serve, Served, GOOD, WORLD};

const WEAK: &str = "random";

fn config(served: &Served, steps: u64) -> SimConfig {
    SimConfig {
        server: format!("http://{}", served.addr),
        steps,
        list_size: 10,
        concurrency: 1,
        seed: 11,
        clock: Clock::Simulated {
            start: 1_700_000_000,
            seconds_per_step: 10.0,
        },
        ..SimConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn good_model_earns_more_clicks_than_a_weak_one() {
    let world = Arc::new(World::from_spec(WORLD).unwrap());
    let first = serve(&world, &[GOOD], |_| {}).await;
    let a = run(&world, config(&first, 400)).await;
    let served = serve(&world, &[GOOD, WEAK], |_| {}).await;
    let b = run(&world, config(&served, 400)).await;

    // Same seed, same world, same training seed: the same run.
    assert_eq!(
        (a.items_shown, a.clicks, a.purchases),
        (b.items_shown, b.clicks, b.purchases)
    );
    assert!((a.overall.expected_ctr - b.overall.expected_ctr).abs() < 1e-9);
    assert_eq!((a.non_2xx, a.transport_errors, a.duplicates), (0, 0, 0));
    assert_eq!(a.recommend_requests, 400);
    assert_eq!(a.items_shown, 4000);
    let good_version = &served.versions[0];
    assert_eq!(
        b.by_model_version.keys().collect::<Vec<_>>(),
        vec![good_version]
    );
    // Every posted event was stored.
    let stored_before = served.store.counts().await.unwrap().feedback;

    served
        .store
        .activate_model(&served.versions[1])
        .await
        .unwrap();
    served.state.serving.state.rebuild().await.unwrap();
    let weak = run(
        &world,
        SimConfig {
            seed: 12,
            ..config(&served, 400)
        },
    )
    .await;
    let weak_version = &served.versions[1];
    assert_eq!(
        weak.by_model_version.keys().collect::<Vec<_>>(),
        vec![weak_version]
    );
    let stored_after = served.store.counts().await.unwrap().feedback;
    assert_eq!(stored_after - stored_before, weak.clicks + weak.purchases);

    let (good, bad) = (&b.overall, &weak.overall);
    // Shown with --no-capture: the measured figures behind the assertions.
    eprintln!("good ({GOOD}): {good:?}\nweak ({WEAK}): {bad:?}");
    assert!(
        good.expected_ctr > 1.5 * bad.expected_ctr,
        "oracle CTR: good {} vs weak {}",
        good.expected_ctr,
        bad.expected_ctr
    );
    assert!(
        good.ctr > 1.3 * bad.ctr,
        "measured CTR: good {} vs weak {}",
        good.ctr,
        bad.ctr
    );
    // Measured CTR tracks the oracle's (4000 items: a few points of noise at most).
    for s in [good, bad] {
        assert!((s.ctr - s.expected_ctr).abs() < 0.03, "{s:?}");
    }
}

/// Mean over the organic events of steps in `range` of `before - after`: each event's item's
/// log popularity before a shift minus after it. Positive while users follow the old
/// popularity, negative once they follow the new one.
fn popularity_lean(
    summary: &SimSummary,
    range: std::ops::Range<u64>,
    before: &Appeal,
    after: &Appeal,
) -> f64 {
    let items: Vec<usize> = summary
        .events
        .iter()
        .filter(|e| e.origin == Origin::Organic && range.contains(&e.step))
        .map(|e| e.item[1..].parse().unwrap())
        .collect();
    assert!(items.len() > 1000, "{} organic events", items.len());
    items
        .iter()
        .map(|&i| before.log_popularity[i] - after.log_popularity[i])
        .sum::<f64>()
        / items.len() as f64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drift_scenarios_change_the_events_sent() {
    let world = Arc::new(World::from_spec(WORLD).unwrap());
    let served = serve(&world, &["popularity"], |_| {}).await;
    let drifting = |drift| SimConfig {
        organic_per_step: 15.0,
        drift,
        drift_start_step: 100,
        keep_events: true,
        concurrency: 2,
        ..config(&served, 200)
    };
    // The shift the run will apply (same share, same seed).
    let old = world.appeal();
    let new = old.shifted(0.5, config(&served, 0).seed);
    let control = run(&world, drifting(Drift::None)).await;
    let (first, second) = (
        popularity_lean(&control, 0..100, old, &new),
        popularity_lean(&control, 100..200, old, &new),
    );
    assert!(first > 0.3 && second > 0.3, "control: {first}, {second}");
    let shifted = run(&world, drifting(Drift::PopularityShift { share: 0.5 })).await;
    let (first, second) = (
        popularity_lean(&shifted, 0..100, old, &new),
        popularity_lean(&shifted, 100..200, old, &new),
    );
    assert!(first > 0.3 && second < -0.3, "shift: {first}, {second}");

    let stored_before = served.store.counts().await.unwrap().feedback;
    let bots = run(
        &world,
        drifting(Drift::BotWave {
            bots: 3,
            events_per_bot: 250,
            seconds: 60,
            single_item: false,
        }),
    )
    .await;
    assert_eq!(bots.non_2xx, 0);
    assert_eq!(bots.bot_events, 750);
    let stored_after = served.store.counts().await.unwrap().feedback;
    assert_eq!(
        stored_after - stored_before,
        bots.clicks + bots.purchases + bots.organic_events + bots.bot_events
    );
    let start = 1_700_000_000 + 100 * 10;
    for b in 0..3 {
        let bot = format!("simbot{b}");
        let times: Vec<i64> = bots
            .events
            .iter()
            .filter(|e| e.user == bot)
            .map(|e| e.timestamp.unwrap())
            .collect();
        assert_eq!(times.len(), 250);
        assert!(
            times.iter().all(|t| (start..start + 60).contains(t)),
            "{bot}"
        );
        assert!(bots
            .events
            .iter()
            .filter(|e| e.user == bot)
            .all(|e| e.origin == Origin::Bot && e.step == 100));
    }
    assert!(bots
        .events
        .iter()
        .filter(|e| e.origin == Origin::Bot)
        .all(|e| e.user.starts_with("simbot")));
}
