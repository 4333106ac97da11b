//! The value of a contextual bandit in a world where exploration matters: a fifth of the items
//! arrive after the model was trained, so the model cannot score them and greedy ranking never
//! shows them. Every policy runs the same seeded stream of users through the rank pipeline the
//! server uses (`RankPipeline` with an `[exploration]` section) over the same ALS model; clicks
//! come from the world's click model (position bias x attraction), and the bandits learn online
//! from them as the server's learner does.
//!
//! The issue asks that the bandit's long-run click rate (second half of the run) beat greedy's by
//! a margin the experiment engine's two-proportion test calls significant, and that it find the
//! good new items (top decile of new items by the oracle's mean attraction, shown at least 100
//! times) at least twice as often as greedy. Both are asserted for LinUCB; linear Thompson
//! sampling is held to the second and to no significant loss (its lift is significant in two of
//! the three seeds of the table). `BENCHMARKS.md` ("Bandit value") records
//! the printed table; `value_table` (ignored) reruns it over more seeds.

use std::sync::Arc;

use kindred_core::features::FeatureValue;
use kindred_core::{FitContext, IdMap, SplitMix64, TrainSet};
use kindred_models::registry::build_algorithm;
use kindred_models::UserQuery;
use kindred_rank::config::FallbackConfig;
use kindred_rank::exploration::bandit::BanditState;
use kindred_rank::exploration::{ExplorationConfig, ExplorationKind};
use kindred_rank::{CatalogData, RankConfig, RankPipeline, RankRequest, ScoreSource, TrainingLog};
use kindred_sim::World;
use kindred_stats::experiment::proportions::{two_proportion_z, Proportion};

const LIST: usize = 10;
/// Lists between two refreshes of the bandit's posterior (the server refreshes on a timer).
const REFRESH_EVERY: usize = 100;
/// Shows that count an item as found.
const FOUND_AFTER: u32 = 100;

struct Setup {
    world: World,
    /// Catalog ids (the dataset's item ids) and the world's index of each.
    items: Arc<IdMap>,
    world_item: Vec<u32>,
    /// Per catalog item: true when it arrives after training.
    new: Vec<bool>,
    /// Per human user (world index): the dataset's user index, training items, model scores.
    users: Vec<(u32, u32, Vec<u32>, Vec<f32>)>,
    pipeline_data: PipelineData,
}

struct PipelineData {
    user_ids: IdMap,
    features: kindred_core::FeatureTable,
    train_users: Vec<u32>,
    train_items: Vec<u32>,
    train_times: Vec<i64>,
}

fn setup(seed: u64) -> Setup {
    let world = World::from_spec(&format!(
        "users=800,items=500,seed={seed},implicit=true,per_user=25"
    ))
    .unwrap();
    let data = &world.dataset().interactions;
    let items = Arc::clone(data.item_ids());
    let world_item: Vec<u32> = items
        .externals()
        .iter()
        .map(|id| world.item_index(id).unwrap())
        .collect();
    let mut rng = SplitMix64::new(seed ^ 0xA11_1FE5);
    let new: Vec<bool> = (0..items.len()).map(|_| rng.next_f64() < 0.2).collect();
    let rows: Vec<u32> = (0..data.len() as u32)
        .filter(|&r| !new[data.items()[r as usize] as usize])
        .collect();
    let train = data.subset(&rows);
    let model = build_algorithm("als:factors=16,iterations=10")
        .unwrap()
        .fit(&TrainSet::new(train.clone()), &FitContext::default())
        .unwrap();
    let by_user = train.by_user();
    let users = world
        .humans()
        .iter()
        .filter_map(|&u| {
            let index = data.user_ids().get(&World::user_id(u))?;
            let mut scores = vec![f32::NAN; items.len()];
            model.score_all(&UserQuery::known(index), &mut scores);
            for (s, &is_new) in scores.iter_mut().zip(&new) {
                if is_new {
                    // Unknown to a model trained before the item arrived.
                    *s = f32::NAN;
                }
            }
            let seen = by_user.row(index as usize).to_vec();
            Some((u, index, seen, scores))
        })
        .collect();
    // New items carry the later date, so they lead the catalog's `latest` order.
    let mut features = world.dataset().item_features.as_deref().cloned().unwrap();
    for (i, id) in items.externals().iter().enumerate() {
        let date = if new[i] { 2.0 } else { 1.0 };
        features
            .set(id, "timestamp", FeatureValue::Number(date))
            .unwrap();
    }
    let pipeline_data = PipelineData {
        user_ids: IdMap::clone(data.user_ids()),
        features,
        train_users: train.users().to_vec(),
        train_items: train.items().to_vec(),
        train_times: train.timestamps().to_vec(),
    };
    Setup {
        world,
        items,
        world_item,
        new,
        users,
        pipeline_data,
    }
}

fn pipeline(setup: &Setup, exploration: ExplorationConfig) -> RankPipeline {
    let d = &setup.pipeline_data;
    let config = RankConfig {
        exploration,
        fallback: FallbackConfig {
            latest_column: Some("timestamp".into()),
            ..FallbackConfig::default()
        },
        ..RankConfig::default()
    };
    RankPipeline::new(
        config,
        CatalogData {
            item_ids: &setup.items,
            item_features: Some(&d.features),
            user_ids: &d.user_ids,
            user_features: None,
            train: TrainingLog {
                users: &d.train_users,
                items: &d.train_items,
                timestamps: &d.train_times,
            },
        },
    )
    .unwrap()
}

struct Outcome {
    /// Clicks and shown items in the second half of the run.
    late_clicks: u64,
    late_shown: u64,
    /// Share of the top-decile new items shown at least `FOUND_AFTER` times.
    found: f64,
    /// Share of all impressions that went to new items.
    new_share: f64,
}

fn run(setup: &Setup, exploration: ExplorationConfig, lists: usize, seed: u64) -> Outcome {
    let pipeline = pipeline(setup, exploration.clone());
    let bandit = exploration.policy.is_bandit();
    let mut state = BanditState::new(exploration.feature_names(), 0);
    let mut posterior = state.posterior(exploration.ridge, &setup.items);
    let appeal = setup.world.appeal();
    let mut shows = vec![0u32; setup.items.len()];
    let mut rng = SplitMix64::new(seed);
    let (mut late_clicks, mut late_shown, mut new_shown, mut all_shown) = (0, 0, 0u64, 0u64);
    for step in 0..lists {
        if bandit && step % REFRESH_EVERY == 0 {
            posterior = state.posterior(exploration.ridge, &setup.items);
        }
        let (u, index, seen, scores) = &setup.users[rng.below(setup.users.len() as u64) as usize];
        let request = RankRequest {
            user: Some(*index),
            seen,
            primary: Some(ScoreSource {
                name: "als",
                scores,
            }),
            exploration_seed: Some(rng.next_u64()),
            bandit: Some(&posterior),
            ..RankRequest::new(0)
        };
        let list = pipeline.rank(&request, LIST).unwrap();
        for (slot, shown) in list.iter().enumerate() {
            let world_item = setup.world_item[shown.item as usize];
            let p = setup.world.click_probability(appeal, *u, world_item, slot);
            let click = rng.next_f64() < p;
            shows[shown.item as usize] += 1;
            all_shown += 1;
            new_shown += u64::from(setup.new[shown.item as usize]);
            if step >= lists / 2 {
                late_shown += 1;
                late_clicks += u64::from(click);
            }
            if bandit {
                let row = &shown.features;
                let (correction, _) = posterior.correction(shown.item);
                state.observe(
                    row,
                    &setup.items.externals()[shown.item as usize],
                    f64::from(u8::from(click)),
                    posterior.shared(row),
                    correction,
                );
            }
        }
    }
    let good = good_new_items(setup);
    let found = good
        .iter()
        .filter(|&&i| shows[i as usize] >= FOUND_AFTER)
        .count() as f64
        / good.len().max(1) as f64;
    Outcome {
        late_clicks,
        late_shown,
        found,
        new_share: new_shown as f64 / all_shown.max(1) as f64,
    }
}

/// The top decile of new items by the oracle's mean attraction over the simulated users.
fn good_new_items(setup: &Setup) -> Vec<u32> {
    let appeal = setup.world.appeal();
    let mut scored: Vec<(f64, u32)> = (0..setup.items.len() as u32)
        .filter(|&i| setup.new[i as usize])
        .map(|i| {
            let w = setup.world_item[i as usize];
            let mean = setup
                .users
                .iter()
                .map(|(u, ..)| setup.world.attraction(appeal, *u, w))
                .sum::<f64>()
                / setup.users.len() as f64;
            (mean, i)
        })
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    let decile = scored.len().div_ceil(10);
    scored.into_iter().take(decile).map(|(_, i)| i).collect()
}

fn policies() -> Vec<(&'static str, ExplorationConfig)> {
    let bandit = |policy| ExplorationConfig {
        policy,
        epsilon: 0.02,
        features: Some(
            [
                "bias",
                "score",
                "unscored",
                "popularity",
                "category_affinity",
                "position",
            ]
            .iter()
            .map(|s| (*s).to_owned())
            .collect(),
        ),
        new_items: 100,
        samples: 32,
        // Below the top two positions, as a production config would explore.
        slots: Some([3, LIST]),
        ..ExplorationConfig::default()
    };
    vec![
        ("greedy", ExplorationConfig::default()),
        (
            "epsilon-greedy(0.1)",
            ExplorationConfig {
                policy: ExplorationKind::EpsilonGreedy,
                epsilon: 0.1,
                ..ExplorationConfig::default()
            },
        ),
        ("linucb", bandit(ExplorationKind::Linucb)),
        ("linear-thompson", bandit(ExplorationKind::LinearThompson)),
    ]
}

fn table(seeds: &[u64], lists: usize) -> Vec<(String, Vec<Outcome>)> {
    let mut out: Vec<(String, Vec<Outcome>)> = policies()
        .into_iter()
        .map(|(name, _)| (name.to_owned(), Vec::new()))
        .collect();
    for &seed in seeds {
        let setup = setup(seed);
        for (k, (_, config)) in policies().into_iter().enumerate() {
            out[k].1.push(run(&setup, config, lists, seed ^ 0x5EED));
        }
    }
    for (name, outcomes) in &out {
        for (k, (seed, o)) in seeds.iter().zip(outcomes).enumerate() {
            let test = lift(&out[0].1[k], o);
            println!(
                "seed {seed} {name:>20}: late CTR {:.4} ({} / {}), vs greedy {:+.2}% (p {:.3}), \
                 new-item share {:.3}, good new items found {:.2}",
                o.late_clicks as f64 / o.late_shown as f64,
                o.late_clicks,
                o.late_shown,
                100.0 * test.relative_lift.unwrap_or(0.0),
                test.p_value,
                o.new_share,
                o.found
            );
        }
    }
    out
}

/// The experiment engine's two-proportion test of `treatment`'s late click rate against
/// `control`'s.
fn lift(
    control: &Outcome,
    treatment: &Outcome,
) -> kindred_stats::experiment::comparison::Comparison {
    let arm = |o: &Outcome| Proportion {
        successes: o.late_clicks,
        trials: o.late_shown,
    };
    two_proportion_z(arm(control), arm(treatment), 0.05).unwrap()
}

#[test]
fn a_contextual_bandit_lifts_click_rate_and_finds_the_good_new_items() {
    // A seed the settings were not chosen on (the fresh-seed table's first).
    let results = table(&[21], 30_000);
    let greedy = &results[0].1[0];
    assert_eq!(greedy.new_share, 0.0, "greedy never shows an unscored item");
    for (name, outcomes) in &results[2..] {
        let o = &outcomes[0];
        let test = lift(greedy, o);
        if name == "linucb" {
            assert!(
                test.absolute_lift > 0.0 && test.p_value < 0.05,
                "{name}: lift {} (p {})",
                test.absolute_lift,
                test.p_value
            );
        } else {
            // Linear Thompson's lift is significant in 2 of 3 seeds (BENCHMARKS.md): hold it
            // to no significant loss.
            assert!(
                !(test.absolute_lift < 0.0 && test.p_value < 0.05),
                "{name}: significant loss {} (p {})",
                test.absolute_lift,
                test.p_value
            );
        }
        assert!(
            o.found >= 2.0 * greedy.found && o.found > 0.0,
            "{name}: found {} vs greedy {}",
            o.found,
            greedy.found
        );
    }
}

#[test]
#[ignore = "the BENCHMARKS table: three seeds, 30,000 lists each (minutes)"]
fn value_table() {
    table(&[11, 12, 13], 30_000);
}

/// Worlds never looked at while the bandit's settings (the `position` feature among them) were
/// chosen: the check that those choices hold beyond the seeds they were made on.
#[test]
#[ignore = "the BENCHMARKS confirmation on fresh seeds (minutes)"]
fn value_table_fresh_seeds() {
    table(&[21, 22, 23], 30_000);
}
