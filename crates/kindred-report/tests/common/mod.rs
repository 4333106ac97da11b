//! Shared fixtures of the report tests: a results file with every field filled with plausible
//! values (two ranking models plus a tuning run), and real results from `evaluate` on
//! generated data.

use std::collections::BTreeMap;

use kindred_eval::report::{DatasetSummary, EpochPoint, PopularityBias};
use kindred_eval::segments::{SegmentRow, Segments};
use kindred_eval::{Comparison, EvalReport, FoldResult, ModelResult, TrialRecord, TuningSummary};
use kindred_report::Source;

/// Titles of every chart the full fixture must produce.
pub const FULL_TITLES: [&str; 13] = [
    "ndcg@K",
    "recall@K",
    "ndcg@10 by user activity",
    "recall@10 by item popularity",
    "Share of recommendations by item popularity",
    "ndcg@10 by user gender",
    "Recommended vs actual popularity",
    "coverage@10",
    "diversity@10",
    "novelty@10",
    "Training loss per epoch",
    "Validation metric per epoch",
    "Tuning trace: ndcg@10 per trial",
];

fn row(segment: &str, count: usize, metrics: &[(&str, f64)]) -> SegmentRow {
    SegmentRow {
        segment: segment.to_owned(),
        count,
        metrics: metrics.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
    }
}

fn metrics(pairs: &[(&str, f64)]) -> BTreeMap<String, f64> {
    pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

/// How `auto` would have chosen `spec`: one family tried, one skipped.
fn selection(spec: &str) -> serde_json::Value {
    serde_json::json!({
        "task": "ranking", "metric": "ndcg@10", "lower_is_better": false,
        "budget_seconds": 60.0, "validation": "temporal:0.2,seed=42",
        "users": 700, "items": 300, "interactions": 8000,
        "chosen": spec, "chosen_family": spec.split(':').next().unwrap_or(spec),
        "chosen_score": 0.2, "search_seconds": 41.0, "refit_seconds": 1.5,
        "families": [
            {"family": "als", "status": "tuned", "predicted_seconds": 0.5, "predicted_bytes": 1e6,
             "trials": 4, "seconds": 12.0, "best_spec": spec, "best_score": 0.2},
            {"family": "ease", "status": "skipped", "reason": "60000 items exceed the limit of 20000",
             "predicted_seconds": 90.0, "predicted_bytes": 1e9, "trials": 0, "seconds": 0.0}
        ],
        "trials": [{"family": "als", "phase": "screen", "spec": spec, "score": 0.2, "seconds": 3.0}]
    })
}

/// A ranking result whose quality grows with `strength` (0..1).
fn result(spec: &str, strength: f64, learning: bool) -> ModelResult {
    let ndcg = 0.05 + 0.3 * strength;
    let curve = |scale: f64, grow: f64| -> Vec<f64> {
        (1..=50)
            .map(|k| scale * (1.0 - (-(k as f64) / grow).exp()))
            .collect()
    };
    let m = metrics(&[
        ("ndcg@10", ndcg),
        ("precision@10", ndcg * 0.8),
        ("recall@10", ndcg * 1.2),
        ("coverage@10", 0.6 - 0.4 * strength),
        ("diversity@10", 0.7 + 0.1 * strength),
        ("novelty@10", 9.0 - 2.0 * strength),
    ]);
    let ci = m
        .iter()
        .map(|(k, v)| (k.clone(), [v * 0.95, v * 1.05]))
        .collect();
    let std = m.iter().map(|(k, v)| (k.clone(), v * 0.02)).collect();
    ModelResult {
        model: spec.split(':').next().unwrap_or(spec).to_owned(),
        spec: spec.to_owned(),
        preset: None,
        params: serde_json::json!({"factors": 32}),
        metrics: m.clone(),
        metrics_std: std,
        fit_seconds: 1.5 + strength,
        predict_seconds: 0.3,
        impossible_predictions: None,
        per_fold: vec![FoldResult {
            fold: 0,
            train: 8000,
            test: 2000,
            evaluated: 700,
            metrics: m,
            fit_seconds: 1.5,
            predict_seconds: 0.3,
            impossible_predictions: None,
            spec: None,
            selection: Some(selection(spec)),
        }],
        segments: Some(Segments {
            user_activity: vec![
                row("1-9", 120, &[("ndcg@10", ndcg * 0.6)]),
                row("10-19", 200, &[("ndcg@10", ndcg * 0.9)]),
                row("20-49", 300, &[("ndcg@10", ndcg * 1.1)]),
                row("500+", 10, &[("ndcg@10", ndcg * 1.3)]),
            ],
            item_popularity: vec![
                row(
                    "head",
                    600,
                    &[
                        ("recall@10", 0.3 * strength + 0.1),
                        ("share_of_recommendations", 0.7),
                    ],
                ),
                row(
                    "tail",
                    300,
                    &[
                        ("recall@10", 0.1 * strength),
                        ("share_of_recommendations", 0.29),
                    ],
                ),
                row(
                    "cold",
                    20,
                    &[("recall@10", 0.0), ("share_of_recommendations", 0.01)],
                ),
            ],
            user_features: BTreeMap::from([(
                "gender".to_owned(),
                vec![
                    row("F", 200, &[("ndcg@10", ndcg * 0.9)]),
                    row("M", 500, &[("ndcg@10", ndcg * 1.05)]),
                ],
            )]),
            gaps: BTreeMap::from([("user_activity:ndcg@10".to_owned(), ndcg * 0.7)]),
        }),
        metrics_ci: ci,
        curves: BTreeMap::from([
            ("ndcg".to_owned(), curve(ndcg * 1.4, 8.0)),
            ("recall".to_owned(), curve(0.2 + 0.5 * strength, 15.0)),
        ]),
        popularity_bias: Some(PopularityBias {
            buckets: (0..5)
                .map(|b| format!("{}-{}%", b * 20, b * 20 + 20))
                .collect(),
            recommended: vec![
                0.6 - 0.2 * strength,
                0.2,
                0.1 + 0.1 * strength,
                0.06,
                0.04 + 0.1 * strength,
            ],
            test: vec![0.45, 0.25, 0.15, 0.1, 0.05],
            train: vec![0.5, 0.25, 0.13, 0.08, 0.04],
        }),
        rank_sources: None,
        learning_curve: if learning {
            (0..3)
                .flat_map(|fold| {
                    (1..=12).map(move |epoch| EpochPoint {
                        fold,
                        epoch,
                        loss: 1.0 / epoch as f64 + 0.02 * fold as f64,
                        validation: Some(0.3 - 0.2 / epoch as f64),
                    })
                })
                .collect()
        } else {
            Vec::new()
        },
        recs_file: None,
        per_unit: None,
    }
}

/// A results file with every field filled, including hostile characters in a spec.
pub fn full_report() -> EvalReport {
    let baseline = "popularity";
    let model = "als:factors=64,reg=<0.05>&alpha=\"1\"";
    EvalReport {
        dataset: DatasetSummary {
            name: "synthetic <fixture>".to_owned(),
            interactions: 10_000,
            users: 800,
            items: 400,
            protocol_interactions: 6_000,
        },
        protocol: "temporal:0.2,positive>=4".to_owned(),
        k: 10,
        results: vec![result(baseline, 0.2, false), result(model, 0.8, true)],
        comparisons: vec![Comparison {
            baseline: baseline.to_owned(),
            model: model.to_owned(),
            metric: "ndcg@10".to_owned(),
            lower_is_better: false,
            difference: 0.18,
            ci: [0.15, 0.21],
            level: 0.95,
            p_value: 0.00001,
            test: "paired t-test".to_owned(),
            n: 700,
            verdict: "better".to_owned(),
        }],
        trials: (0..2)
            .flat_map(|fold| {
                (0..20).map(move |trial| TrialRecord {
                    fold,
                    trial,
                    spec: format!("als:factors={}", 8 + trial * 4),
                    params: serde_json::json!({"factors": 8 + trial * 4}),
                    rung: 0,
                    score: (trial != 7).then(|| 0.1 + 0.01 * ((trial * 7 + fold) % 13) as f64),
                    seconds: 0.5,
                    status: if trial == 7 { "failed" } else { "complete" }.to_owned(),
                    error: (trial == 7).then(|| "diverged".to_owned()),
                })
            })
            .collect(),
        tuning: Some(TuningSummary {
            family: "als".to_owned(),
            method: "random".to_owned(),
            metric: "ndcg@10".to_owned(),
            lower_is_better: false,
            validation_protocol: "temporal:0.2".to_owned(),
            max_trials: Some(20),
            max_seconds: None,
            chosen_per_fold: vec!["als:factors=56".to_owned(), "als:factors=64".to_owned()],
            chosen: "als:factors=56".to_owned(),
            seconds: 20.0,
        }),
        rank: None,
        versions: BTreeMap::from([("kindred".to_owned(), "0.1.0".to_owned())]),
    }
}

/// The full fixture as a loaded source named `full.json`.
pub fn full_source() -> Source {
    Source {
        path: "full.json".into(),
        report: full_report(),
    }
}
