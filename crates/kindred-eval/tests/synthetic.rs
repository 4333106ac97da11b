//! End-to-end evaluation on generated data: the protocols, models and metrics behave as they
//! must on data whose structure is known (no download needed).

use kindred_core::Protocol;
use kindred_data::synthetic::{generate, SyntheticConfig};
use kindred_eval::{compare_results, evaluate, EvalOptions};

fn dataset() -> kindred_core::Dataset {
    generate(&SyntheticConfig::parse("users=800,items=400,seed=11").unwrap())
        .unwrap()
        .dataset
}

#[test]
fn rating_protocol_orders_baselines() {
    let data = dataset();
    let report = evaluate(
        &data,
        &Protocol::parse("kfold:3").unwrap(),
        &[
            "random".to_owned(),
            "baseline".to_owned(),
            "baseline:method=sgd".to_owned(),
        ],
        &EvalOptions::default(),
    )
    .unwrap();
    let rmse: Vec<f64> = report.results.iter().map(|r| r.metrics["rmse"]).collect();
    assert!(
        rmse[1] < rmse[0] - 0.1,
        "baseline {} vs random {}",
        rmse[1],
        rmse[0]
    );
    assert!(
        rmse[2] < rmse[0] - 0.1,
        "sgd baseline {} vs random {}",
        rmse[2],
        rmse[0]
    );
    let result = &report.results[1];
    assert_eq!(result.per_fold.len(), 3);
    assert!(result.metrics_std.contains_key("rmse"));
    let segments = result.segments.as_ref().unwrap();
    assert!(!segments.user_activity.is_empty());
    assert!(
        segments.user_features.contains_key("segment")
            || segments.user_features.contains_key("age_group")
    );
    // Deterministic for a seed.
    let again = evaluate(
        &data,
        &Protocol::parse("kfold:3").unwrap(),
        &["baseline".to_owned()],
        &EvalOptions::default(),
    )
    .unwrap();
    assert_eq!(again.results[0].metrics["rmse"], result.metrics["rmse"]);
}

#[test]
fn ranking_protocols_order_baselines_and_report_every_metric() {
    let data = dataset();
    for spec in [
        "temporal:0.2,positive>=4",
        "random:0.2,positive>=4",
        "loo,positive>=4",
    ] {
        let report = evaluate(
            &data,
            &Protocol::parse(spec).unwrap(),
            &["random".to_owned(), "popularity".to_owned()],
            &EvalOptions::default(),
        )
        .unwrap();
        let (random, popular) = (&report.results[0].metrics, &report.results[1].metrics);
        for key in [
            "precision@10",
            "recall@10",
            "ndcg@10",
            "map@10",
            "mrr@10",
            "hit@10",
            "auc",
            "coverage@10",
            "novelty@10",
            "diversity@10",
        ] {
            assert!(popular.contains_key(key), "{spec}: missing {key}");
        }
        assert!(
            popular["ndcg@10"] > 1.5 * random["ndcg@10"],
            "{spec}: {popular:?} vs {random:?}"
        );
        assert!(popular["auc"] > random["auc"], "{spec}");
        assert!(
            (random["auc"] - 0.5).abs() < 0.05,
            "{spec}: random AUC {}",
            random["auc"]
        );
        assert!(random["coverage@10"] > popular["coverage@10"], "{spec}");
    }
}

#[test]
fn cold_start_items_rank_only_held_out_items() {
    let data = dataset();
    let export = std::env::temp_dir().join(format!("kindred-cold-{}.csv", std::process::id()));
    let opts = EvalOptions {
        export_recs: Some(export.clone()),
        ..EvalOptions::default()
    };
    let protocol = Protocol::parse("coldstart-items:0.1,positive>=4").unwrap();
    let report = evaluate(&data, &protocol, &["popularity".to_owned()], &opts).unwrap();
    let prepared = protocol.prepare(&data.interactions);
    let split = &protocol.splits(&prepared).unwrap()[0];
    let cold: std::collections::HashSet<String> = split
        .candidates
        .as_ref()
        .unwrap()
        .iter()
        .map(|&i| prepared.item_ids().external(i).to_owned())
        .collect();
    let csv = std::fs::read_to_string(&export).unwrap();
    let _ = std::fs::remove_file(&export);
    assert!(csv.lines().count() > 1);
    for line in csv.lines().skip(1) {
        let item = line.split(',').nth(1).unwrap();
        assert!(cold.contains(item), "{item} is not a held-out item");
    }
    // Popularity knows nothing about items it never saw: no better than chance.
    let auc = report.results[0].metrics["auc"];
    assert!((auc - 0.5).abs() < 0.1, "auc {auc}");
}

#[test]
fn export_requires_single_split_and_k_must_be_positive() {
    let data = dataset();
    let opts = EvalOptions {
        export_recs: Some("x.csv".into()),
        ..EvalOptions::default()
    };
    assert!(evaluate(
        &data,
        &Protocol::parse("kfold:3").unwrap(),
        &["baseline".to_owned()],
        &opts
    )
    .is_err());
    let opts = EvalOptions {
        k: 0,
        ..EvalOptions::default()
    };
    assert!(evaluate(
        &data,
        &Protocol::parse("temporal:0.2").unwrap(),
        &["popularity".to_owned()],
        &opts
    )
    .is_err());
    let err = evaluate(
        &data,
        &Protocol::parse("kfold:3").unwrap(),
        &["popularity".to_owned()],
        &EvalOptions::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("does not predict ratings"), "{err}");
}

#[test]
fn a_personalised_model_beats_popularity_on_synthetic_data() {
    let data = dataset();
    let report = evaluate(
        &data,
        &Protocol::parse("temporal:0.2,positive>=4").unwrap(),
        &[
            "popularity".to_owned(),
            "itemknn".to_owned(),
            "movielens-ranking".to_owned(),
        ],
        &EvalOptions {
            segments: false,
            ..EvalOptions::default()
        },
    )
    .unwrap();
    let ndcg: Vec<f64> = report
        .results
        .iter()
        .map(|r| r.metrics["ndcg@10"])
        .collect();
    assert!(
        ndcg[1] > 1.3 * ndcg[0],
        "itemknn {} vs popularity {}",
        ndcg[1],
        ndcg[0]
    );
    assert!(
        ndcg[2] > 1.3 * ndcg[0],
        "movielens-ranking {} vs popularity {}",
        ndcg[2],
        ndcg[0]
    );
    assert_eq!(
        report.results[2].preset.as_deref(),
        Some("movielens-ranking")
    );
}

#[test]
fn comparisons_intervals_curves_popularity_and_learning_curves() {
    let data = dataset();
    let protocol = Protocol::parse("temporal:0.2,positive>=4").unwrap();
    let opts = EvalOptions {
        segments: false,
        auc: false,
        bootstrap: 500,
        curve_k: 20,
        ..EvalOptions::default()
    };
    let specs = ["popularity", "popularity", "random", "bpr:iterations=5"].map(String::from);
    let report = evaluate(&data, &protocol, &specs, &opts).unwrap();
    assert_eq!(report.comparisons.len(), 3);
    // The same model twice: identical per-user values, a difference of exactly 0.
    let same = &report.comparisons[0];
    assert_eq!(same.metric, "ndcg@10");
    assert_eq!((same.difference, same.ci), (0.0, [0.0, 0.0]));
    assert_eq!(same.p_value, 1.0);
    assert_eq!(same.verdict, "no significant difference");
    // Random against popularity: clearly worse.
    let random = &report.comparisons[1];
    assert!(random.ci[1] < 0.0 && random.p_value < 0.01, "{random:?}");
    assert_eq!(random.verdict, "worse");
    assert_eq!(random.n, report.results[0].per_fold[0].evaluated);
    // The standalone comparison reproduces the report's.
    let again = compare_results(
        &report.results[0],
        &report.results[2],
        "ndcg@10",
        500,
        opts.seed,
    )
    .unwrap();
    assert_eq!((again.ci, again.p_value), (random.ci, random.p_value));
    assert!(compare_results(&report.results[0], &report.results[2], "rmse", 500, 1).is_err());

    for result in &report.results {
        for (metric, ci) in &result.metrics_ci {
            let value = result.metrics[metric];
            assert!(ci[0] <= value && value <= ci[1], "{metric}: {value} {ci:?}");
        }
        assert_eq!(result.metrics_ci.len(), 6);
        // Curves: 20 points per metric, and K = 10 is the headline metric exactly.
        assert_eq!(result.curves.len(), 6);
        for (name, curve) in &result.curves {
            assert_eq!(curve.len(), 20, "{name}");
            assert_eq!(curve[9], result.metrics[&format!("{name}@10")], "{name}");
        }
        assert!(result.curves["recall"].windows(2).all(|w| w[0] <= w[1]));
        let bias = result.popularity_bias.as_ref().unwrap();
        assert_eq!(bias.buckets.len(), 10);
        assert_eq!(bias.buckets[0], "top 10%");
        for shares in [&bias.recommended, &bias.test, &bias.train] {
            assert!(
                (shares.iter().sum::<f64>() - 1.0).abs() < 1e-9,
                "{shares:?}"
            );
        }
    }
    // Popularity recommends only from the head; the training data is head-heavy too.
    let popular = report.results[0].popularity_bias.as_ref().unwrap();
    assert!(popular.recommended[0] > 0.9, "{popular:?}");
    assert!(popular.train[0] > popular.train[9]);
    // An iterative model reports its loss per epoch; the others have no curve.
    let bpr = &report.results[3];
    assert_eq!(bpr.learning_curve.len(), 5, "{:?}", bpr.learning_curve);
    assert!(bpr
        .learning_curve
        .iter()
        .all(|p| p.fold == 0 && p.loss.is_finite()));
    assert!(report.results[0].learning_curve.is_empty());

    // Curves and intervals off: headline metrics unchanged, nothing filled.
    let plain = evaluate(
        &data,
        &protocol,
        &specs[..1],
        &EvalOptions {
            bootstrap: 0,
            curve_k: 0,
            ..opts.clone()
        },
    )
    .unwrap();
    assert_eq!(plain.results[0].metrics, report.results[0].metrics);
    assert!(plain.comparisons.is_empty() && plain.results[0].metrics_ci.is_empty());
    assert!(plain.results[0].curves.is_empty());
}

#[test]
fn rating_comparison_pairs_test_pairs_across_folds() {
    let data = dataset();
    let protocol = Protocol::parse("kfold:3").unwrap();
    let opts = EvalOptions {
        segments: false,
        bootstrap: 300,
        ..EvalOptions::default()
    };
    let specs = ["baseline", "baseline", "random"].map(String::from);
    let report = evaluate(&data, &protocol, &specs, &opts).unwrap();
    let same = &report.comparisons[0];
    assert_eq!(same.metric, "rmse");
    assert!(same.lower_is_better);
    assert_eq!(same.ci, [0.0, 0.0]);
    assert_eq!(same.verdict, "no significant difference");
    let random = &report.comparisons[1];
    assert!(random.difference > 0.1 && random.ci[0] > 0.0, "{random:?}");
    assert_eq!(random.verdict, "worse");
    let baseline = &report.results[0];
    assert_eq!(
        random.n,
        baseline.per_fold.iter().map(|f| f.test).sum::<usize>()
    );
    // Stratified by fold, the interval brackets the fold-averaged headline.
    for metric in ["rmse", "mae"] {
        let ci = baseline.metrics_ci[metric];
        let value = baseline.metrics[metric];
        assert!(ci[0] < value && value < ci[1], "{metric}: {value} {ci:?}");
    }
    assert!(baseline.curves.is_empty() && baseline.popularity_bias.is_none());
}
