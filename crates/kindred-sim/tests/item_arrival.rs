//! `kindred simulate` in a world where exploration matters: a fifth of the items are left out
//! of the history (`late_items=0.2`) and arrive in the catalog at the run's first step
//! (`--drift item-arrival`). The model was trained without them, so a greedy server never shows
//! them; a server whose rank config is a contextual bandit with `new_items` shows them, learns
//! from the clicks the simulator sends, and its learner holds what it learned.

mod common;

use std::sync::Arc;
use std::time::Duration;

use kindred_sim::{Drift, SimConfig, World};

use common::{run, serve, GOOD, WORLD};

const BANDIT: &str = "[exploration]\npolicy = \"linucb\"\nepsilon = 0.02\nslots = [3, 10]\n\
                      new_items = 30\nattribution_window = 1\nseed = 2\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arriving_items_reach_users_only_through_the_bandit() {
    let world = Arc::new(World::from_spec(&format!("{WORLD},late_items=0.2")).unwrap());
    let late = world.truth().late_items.len() as u64;
    assert!(late > 10, "{late} late items");
    let dir = tempfile::tempdir().unwrap();
    let rank = dir.path().join("bandit.toml");
    std::fs::write(&rank, BANDIT).unwrap();
    let quick = |c: &mut kindred_serving::ServerConfig| {
        c.watch_interval_ms = 100;
        c.catalog_refresh_ms = 50;
    };
    let greedy = serve(&world, &[GOOD], quick).await;
    let bandit = serve(&world, &[GOOD], move |c| {
        quick(c);
        c.rank = Some(rank);
    })
    .await;
    let mut summaries = Vec::new();
    for served in [&greedy, &bandit] {
        let config = SimConfig {
            server: format!("http://{}", served.addr),
            steps: 1_500,
            concurrency: 1,
            seed: 9,
            drift: Drift::ItemArrival,
            drift_start_step: 0,
            run_id: Some("arrival".into()),
            ..SimConfig::default()
        };
        let summary = run(&world, config).await;
        assert_eq!(
            (summary.non_2xx, summary.transport_errors),
            (0, 0),
            "{summary:?}"
        );
        assert_eq!(summary.items_arrived, late);
        summaries.push(summary);
    }
    let (g, b) = (&summaries[0], &summaries[1]);
    println!(
        "late items shown: greedy {} (clicks {}), bandit {} (clicks {}); CTR greedy {:.4}, \
         bandit {:.4}",
        g.late_items_shown,
        g.late_item_clicks,
        b.late_items_shown,
        b.late_item_clicks,
        g.overall.ctr,
        b.overall.ctr
    );
    assert_eq!(
        g.late_items_shown, 0,
        "the model never scores an arrived item"
    );
    assert!(b.late_items_shown >= 100, "{}", b.late_items_shown);
    assert!(b.late_item_clicks > 0);

    // The bandit's learner learned from the simulator's clicks once the windows closed.
    let learners = &bandit.state.serving.state.bandits;
    let mut learned = 0.0;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        learned = learners.summary().first().map_or(0.0, |s| s.2);
        if learned > 0.0 {
            break;
        }
    }
    assert!(learned > 0.0, "the learner saw the lists close");
}
