//! Criterion: one `RankPipeline::rank` call for a list of 10, greedy against the exploring
//! configs `bench/explore_load.sh` serves (epsilon-greedy and LinUCB, pool 50), on a catalog of
//! ML-1M's size (3,706 items, 6,040 users, 1,000,000 training interactions with a long tail)
//! with 165 seen items per user (ML-1M's mean). Scores are fixed per user, so the figures are
//! the pipeline's cost alone: what exploration adds per request before the server's share.

use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use kindred_core::{IdMap, SplitMix64};
use kindred_rank::exploration::bandit::BanditState;
use kindred_rank::exploration::config::DEFAULT_FEATURES;
use kindred_rank::fallback::TrainingLog;
use kindred_rank::{CatalogData, RankConfig, RankPipeline, RankRequest, ScoreSource};

const ITEMS: usize = 3_706;
const USERS: usize = 6_040;
const SEEN: usize = 165;
/// Users the benchmark cycles through (each with its own scores and history).
const SAMPLED: usize = 64;

/// An item drawn with probability falling off as 1 / (rank + 10): a long tail.
fn long_tail_item(rng: &mut SplitMix64, cumulative: &[f64]) -> u32 {
    let total = cumulative.last().copied().unwrap_or(1.0);
    let u = rng.next_f64() * total;
    cumulative.partition_point(|&c| c < u).min(ITEMS - 1) as u32
}

fn ranking(c: &mut Criterion) {
    let mut items = IdMap::new();
    (0..ITEMS).for_each(|i| {
        items.intern(&format!("i{i}"));
    });
    let mut users = IdMap::new();
    (0..USERS).for_each(|u| {
        users.intern(&format!("u{u}"));
    });
    let items = Arc::new(items);
    let mut weight = 0.0;
    let cumulative: Vec<f64> = (0..ITEMS)
        .map(|i| {
            weight += 1.0 / (i as f64 + 10.0);
            weight
        })
        .collect();
    let mut rng = SplitMix64::new(7);
    let interactions = 1_000_000;
    let train_users: Vec<u32> = (0..interactions).map(|k| (k % USERS) as u32).collect();
    let train_items: Vec<u32> = (0..interactions)
        .map(|_| long_tail_item(&mut rng, &cumulative))
        .collect();
    let timestamps: Vec<i64> = (0..interactions as i64).collect();
    let pipeline = |text: &str| {
        let config = RankConfig::from_toml_str(text, Path::new("bench.toml")).expect("config");
        RankPipeline::new(
            config,
            CatalogData {
                item_ids: &items,
                item_features: None,
                user_ids: &users,
                user_features: None,
                train: TrainingLog {
                    users: &train_users,
                    items: &train_items,
                    timestamps: &timestamps,
                },
            },
        )
        .expect("pipeline")
    };
    let greedy = pipeline("");
    let epsilon = pipeline(
        "[exploration]\npolicy = \"epsilon-greedy\"\nepsilon = 0.1\npool = 50\nmax_explored = 2\n",
    );
    let linucb = pipeline(
        "[exploration]\npolicy = \"linucb\"\nepsilon = 0.02\nslots = [3, 10]\npool = 50\n\
         max_explored = 2\n",
    );
    // A posterior that has seen traffic: 20,000 shown items, one click in 20.
    let features: Vec<String> = DEFAULT_FEATURES.iter().map(|s| (*s).to_owned()).collect();
    let mut state = BanditState::new(features, 0);
    for n in 0..20_000 {
        let item = long_tail_item(&mut rng, &cumulative);
        let row = [
            1.0,
            rng.next_f64(),
            0.0,
            rng.next_f64(),
            1.0 / (1.0 + (n % 10) as f64),
        ];
        let reward = f64::from(u8::from(rng.next_f64() < 0.05));
        state.observe(&row, &format!("i{item}"), reward, 0.0, 0.0);
    }
    let posterior = state.posterior(1.0, &items);
    let requests: Vec<(Vec<f32>, Vec<u32>)> = (0..SAMPLED)
        .map(|_| {
            let scores = (0..ITEMS).map(|_| rng.next_f64() as f32).collect();
            let seen = (0..SEEN)
                .map(|_| long_tail_item(&mut rng, &cumulative))
                .collect();
            (scores, seen)
        })
        .collect();
    let mut group = c.benchmark_group("rank_10_of_3706");
    let cases: [(&str, &RankPipeline, bool); 3] = [
        ("greedy", &greedy, false),
        ("epsilon_greedy_pool_50", &epsilon, false),
        ("linucb_pool_50", &linucb, true),
    ];
    for (name, pipeline, bandit) in cases {
        let mut next = 0usize;
        group.bench_function(name, |b| {
            b.iter(|| {
                next = (next + 1) % SAMPLED;
                let (scores, seen) = &requests[next];
                let request = RankRequest {
                    user: Some(next as u32),
                    seen,
                    primary: Some(ScoreSource {
                        name: "als",
                        scores,
                    }),
                    exploration_seed: Some(next as u64),
                    bandit: bandit.then_some(&posterior),
                    ..RankRequest::new(1_000)
                };
                black_box(pipeline.rank(&request, 10).expect("rank"))
            })
        });
    }
    group.finish();
}

criterion_group!(benches, ranking);
criterion_main!(benches);
