//! End-to-end evaluation on generated data: the protocols, models and metrics behave as they
//! must on data whose structure is known (no download needed).

use kindred_core::Protocol;
use kindred_data::synthetic::{generate, SyntheticConfig};
use kindred_eval::{evaluate, EvalOptions};

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
            "ranking-best".to_owned(),
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
        "ranking-best {} vs popularity {}",
        ndcg[2],
        ndcg[0]
    );
    assert_eq!(report.results[2].preset.as_deref(), Some("ranking-best"));
}
