//! `EvalOptions::rank` end to end on generated data with item genres: the ranking layer changes
//! the lists every metric is computed on, in the direction each re-ranker promises.

use std::sync::Arc;

use kindred_core::Protocol;
use kindred_data::synthetic::{generate, SyntheticConfig};
use kindred_eval::{evaluate, EvalOptions, EvalReport};
use kindred_rank::config::{
    BoostConfig, CalibrationConfig, DiversityConfig, ObjectivesConfig, PopularityConfig,
    SecondStageConfig,
};
use kindred_rank::{FreshnessConfig, RankConfig};

fn run(rank: Option<RankConfig>) -> EvalReport {
    let data = generate(&SyntheticConfig::parse("users=600,items=300,seed=7").unwrap())
        .unwrap()
        .dataset;
    let opts = EvalOptions {
        bootstrap: 0,
        segments: false,
        auc: false,
        curve_k: 20,
        rank: rank.map(Arc::new),
        ..EvalOptions::default()
    };
    evaluate(
        &data,
        &Protocol::parse("temporal:0.2,positive>=4").unwrap(),
        &["itemknn".to_owned()],
        &opts,
    )
    .unwrap()
}

fn metric(report: &EvalReport, name: &str) -> f64 {
    report.results[0].metrics[name]
}

#[test]
fn mmr_raises_diversity_and_coverage() {
    let plain = run(None);
    let mmr = RankConfig {
        candidates: 100,
        category_column: Some("genres".to_owned()),
        diversity: DiversityConfig {
            mmr_lambda: 0.5,
            ..Default::default()
        },
        ..Default::default()
    };
    let ranked = run(Some(mmr.clone()));
    for name in ["diversity@10", "coverage@10"] {
        assert!(
            metric(&ranked, name) > metric(&plain, name),
            "{name}: re-ranked {} vs plain {}",
            metric(&ranked, name),
            metric(&plain, name)
        );
    }
    assert!(plain.rank.is_none());
    let recorded: RankConfig = serde_json::from_value(ranked.rank.clone().unwrap()).unwrap();
    assert_eq!(recorded, mmr);
    // Curves are computed on the re-ranked lists, so their value at K = 10 is the headline.
    let curve = &ranked.results[0].curves["ndcg"];
    assert_eq!(curve.len(), 20);
    assert!((curve[9] - metric(&ranked, "ndcg@10")).abs() < 1e-12);
}

#[test]
fn identity_config_changes_nothing() {
    let plain = run(None);
    let identity = run(Some(RankConfig::default()));
    assert_eq!(plain.results[0].metrics, identity.results[0].metrics);
}

#[test]
fn popularity_penalty_lowers_popularity_and_calibration_runs() {
    let plain = run(None);
    let tail = run(Some(RankConfig {
        popularity: PopularityConfig { penalty: 0.5 },
        calibration: CalibrationConfig {
            weight: 0.3,
            smoothing: 0.01,
        },
        ..Default::default()
    }));
    assert!(metric(&tail, "popularity@10") < metric(&plain, "popularity@10"));
    assert!(metric(&tail, "coverage@10") > metric(&plain, "coverage@10"));
}

#[test]
fn freshness_moves_lists_towards_new_and_towards_popular_items() {
    let plain = run(None);
    // Absent users' personal scores decay towards popularity: a half-life of one hour trusts
    // popularity for anyone who was away for a day or more.
    let returning = run(Some(RankConfig {
        freshness: FreshnessConfig {
            absence_half_life_days: 1.0 / 24.0,
            ..Default::default()
        },
        ..Default::default()
    }));
    assert!(
        metric(&returning, "popularity@10") > metric(&plain, "popularity@10"),
        "returning {} vs plain {}",
        metric(&returning, "popularity@10"),
        metric(&plain, "popularity@10")
    );
    // A strong new-item boost lifts items that entered late, which have had fewer users.
    let fresh = run(Some(RankConfig {
        freshness: FreshnessConfig {
            new_item_boost: 2.0,
            new_item_half_life_days: 1.0,
            ..Default::default()
        },
        ..Default::default()
    }));
    assert_ne!(fresh.results[0].metrics, plain.results[0].metrics);
    assert!(metric(&fresh, "popularity@10") < metric(&plain, "popularity@10"));
}

#[test]
fn unknown_category_column_is_an_error() {
    let data = generate(&SyntheticConfig::parse("users=100,items=50,seed=1").unwrap())
        .unwrap()
        .dataset;
    let opts = EvalOptions {
        bootstrap: 0,
        rank: Some(Arc::new(RankConfig {
            category_column: Some("colour".to_owned()),
            diversity: DiversityConfig {
                mmr_lambda: 0.2,
                ..Default::default()
            },
            ..Default::default()
        })),
        ..EvalOptions::default()
    };
    let err = evaluate(
        &data,
        &Protocol::parse("temporal:0.2").unwrap(),
        &["popularity".to_owned()],
        &opts,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("category_column `colour`"), "{err}");
}

fn second_stage(weight: f64) -> RankConfig {
    RankConfig {
        second_stage: Some(SecondStageConfig {
            epochs: 2,
            factors: 8,
            weight,
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[test]
fn second_stage_at_weight_zero_changes_nothing() {
    // The FM is trained and scores the pool, but the blend keeps the first stage's order.
    let plain = run(None);
    let zero = run(Some(second_stage(0.0)));
    assert_eq!(plain.results[0].metrics, zero.results[0].metrics);
}

#[test]
fn second_stage_reorders_lists_reproducibly() {
    let plain = run(None);
    let fm = run(Some(second_stage(1.0)));
    let again = run(Some(second_stage(1.0)));
    assert_ne!(plain.results[0].metrics, fm.results[0].metrics);
    assert_eq!(fm.results[0].metrics, again.results[0].metrics);
    let recorded: RankConfig = serde_json::from_value(fm.rank.clone().unwrap()).unwrap();
    assert_eq!(recorded, second_stage(1.0));
}

#[test]
fn boost_column_must_be_a_numeric_item_feature() {
    let data = generate(&SyntheticConfig::parse("users=100,items=50,seed=1").unwrap())
        .unwrap()
        .dataset;
    for (column, expected) in [
        ("margin", "`margin` is not an item feature"),
        ("genres", "`genres` is not a numeric item feature"),
    ] {
        let opts = EvalOptions {
            bootstrap: 0,
            rank: Some(Arc::new(RankConfig {
                objectives: ObjectivesConfig {
                    boost: vec![BoostConfig {
                        column: column.to_owned(),
                        weight: 0.2,
                    }],
                    ..Default::default()
                },
                ..Default::default()
            })),
            ..EvalOptions::default()
        };
        let err = evaluate(
            &data,
            &Protocol::parse("temporal:0.2").unwrap(),
            &["popularity".to_owned()],
            &opts,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains(expected), "{err}");
    }
}

#[test]
fn identity_config_changes_nothing_on_cold_start_candidate_sets() {
    // Cold-start items rank a candidate set with seeded tie keys: the pipeline must keep both
    // the candidate restriction and the tie order of the plain path.
    let data = generate(&SyntheticConfig::parse("users=300,items=200,seed=3").unwrap())
        .unwrap()
        .dataset;
    let run = |rank: Option<RankConfig>| {
        let opts = EvalOptions {
            bootstrap: 0,
            segments: false,
            curve_k: 20,
            rank: rank.map(Arc::new),
            ..EvalOptions::default()
        };
        evaluate(
            &data,
            &Protocol::parse("coldstart-items:0.2").unwrap(),
            &["popularity".to_owned(), "content".to_owned()],
            &opts,
        )
        .unwrap()
    };
    let plain = run(None);
    let identity = run(Some(RankConfig::default()));
    for (p, i) in plain.results.iter().zip(&identity.results) {
        assert_eq!(p.metrics, i.metrics, "{}", p.model);
        assert_eq!(p.curves, i.curves, "{}", p.model);
    }
}
