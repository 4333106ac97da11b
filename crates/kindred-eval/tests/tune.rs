//! `kindred tune` end to end on generated data: nested search on rating and ranking protocols,
//! proof that the outer test rows never influence the search (poisoning them changes nothing
//! but the final test scores), and resumption from a state file.

use kindred_core::{Dataset, Interactions, InteractionsBuilder, Protocol};
use kindred_data::synthetic::{generate, SyntheticConfig};
use kindred_eval::tune::{Method, TuneOptions};
use kindred_eval::{tune, EvalOptions, EvalReport};

fn dataset() -> Dataset {
    generate(&SyntheticConfig::parse("users=300,items=150,seed=5").unwrap())
        .unwrap()
        .dataset
}

/// Cheap final scoring: the tests check the search, not segments or bootstrap intervals.
fn eval_options() -> EvalOptions {
    EvalOptions {
        threads: 2,
        ..EvalOptions::default().headline_only()
    }
}

fn options(family: &str, method: Method, trials: usize) -> TuneOptions {
    TuneOptions {
        method,
        max_trials: Some(trials),
        ..TuneOptions::new(family)
    }
}

/// The search as a comparable value: every trial's fold, number, spec, rung, score and status.
fn trace(report: &EvalReport) -> Vec<(usize, usize, String, usize, Option<f64>, String)> {
    report
        .trials
        .iter()
        .map(|t| {
            (
                t.fold,
                t.trial,
                t.spec.clone(),
                t.rung,
                t.score,
                t.status.clone(),
            )
        })
        .collect()
}

fn check_choice(report: &EvalReport, family: &str, lower_is_better: bool) {
    let tuning = report.tuning.as_ref().unwrap();
    assert_eq!(report.results.len(), 2);
    assert_eq!(report.results[1].spec, family, "results[1] is the defaults");
    for (f, chosen) in tuning.chosen_per_fold.iter().enumerate() {
        let fold_trials: Vec<_> = report.trials.iter().filter(|t| t.fold == f).collect();
        let top = fold_trials.iter().map(|t| t.rung).max().unwrap();
        let scores = fold_trials
            .iter()
            .filter(|t| t.rung == top)
            .filter_map(|t| t.score);
        let best = if lower_is_better {
            scores.fold(f64::INFINITY, f64::min)
        } else {
            scores.fold(f64::NEG_INFINITY, f64::max)
        };
        let chosen_trial = fold_trials
            .iter()
            .find(|t| t.rung == top && t.score == Some(best))
            .unwrap();
        assert_eq!(&chosen_trial.spec, chosen, "fold {f} chose its best trial");
        assert_eq!(
            report.results[0].per_fold[f].spec.as_deref(),
            Some(chosen.as_str()),
            "outer fold {f} is scored with its own choice"
        );
        // Trial 0 is the defaults, so the choice is never worse than them on validation.
        assert!(fold_trials[0].spec.starts_with(&format!("{family}:")));
    }
    assert_eq!(tuning.chosen, tuning.chosen_per_fold[0]);
    assert_eq!(report.results[0].spec, tuning.chosen);
}

#[test]
fn tunes_a_rating_model_on_kfold_with_a_choice_per_outer_fold() {
    let data = dataset();
    let protocol = Protocol::parse("kfold:3").unwrap();
    let opts = TuneOptions {
        outer_folds: Some(2),
        ..options("baseline", Method::Tpe, 6)
    };
    let report = tune(&data, &protocol, &opts, &eval_options()).unwrap();
    assert_eq!(report.trials.len(), 12);
    assert_eq!(report.results[0].per_fold.len(), 2);
    assert_eq!(report.results[1].per_fold.len(), 2);
    let tuning = report.tuning.as_ref().unwrap();
    assert_eq!(tuning.metric, "rmse");
    assert!(tuning.lower_is_better);
    assert_eq!(tuning.validation_protocol, "kfold:3,seed=42");
    assert_eq!(
        report.trials[0].spec,
        "baseline:epochs=10,reg_u=15,reg_i=10"
    );
    check_choice(&report, "baseline", true);
    assert!(report.results[0].metrics["rmse"].is_finite());
    // Same seed, same search.
    let again = tune(&data, &protocol, &opts, &eval_options()).unwrap();
    assert_eq!(trace(&again), trace(&report));
}

#[test]
fn tunes_a_ranking_model_on_temporal_with_halving() {
    let data = dataset();
    let protocol = Protocol::parse("temporal:0.2,positive>=4").unwrap();
    let report = tune(
        &data,
        &protocol,
        &options("als", Method::Halving, 9),
        &eval_options(),
    )
    .unwrap();
    // 9 configurations at 1/9 of their iterations, 3 at 1/3, 1 at full.
    assert_eq!(report.trials.len(), 13);
    assert_eq!(
        report
            .trials
            .iter()
            .filter(|t| t.status == "pruned")
            .count(),
        8
    );
    let tuning = report.tuning.as_ref().unwrap();
    assert_eq!(tuning.metric, "ndcg@10");
    assert_eq!(
        tuning.validation_protocol,
        "temporal:0.2,positive>=4,seed=42"
    );
    check_choice(&report, "als", false);
    assert_eq!(report.trials[12].rung, 2);
}

#[test]
fn a_family_without_a_space_is_a_clear_error() {
    let err = tune(
        &dataset(),
        &Protocol::parse("kfold:3").unwrap(),
        &options("slopeone", Method::Tpe, 2),
        &eval_options(),
    )
    .unwrap_err()
    .to_string();
    let with_space = kindred_models::registry::families_with_space().join(", ");
    assert!(
        with_space.starts_with("baseline, itemknn, svd"),
        "{with_space}"
    );
    assert!(
        err.contains(&format!("families with one: {with_space}")),
        "{err}"
    );
    let err = tune(
        &dataset(),
        &Protocol::parse("kfold:3").unwrap(),
        &TuneOptions {
            metric: Some("ndcg@10".into()),
            ..options("svd", Method::Tpe, 2)
        },
        &eval_options(),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("rmse and mae"), "{err}");
}

/// Rebuilds `data` with the same ids, row order, users and timestamps, but with `poison`
/// applied to the (item, rating) of the rows in `rows`.
fn poisoned(
    data: &Interactions,
    rows: &[usize],
    poison: impl Fn(u32, f32) -> (u32, f32),
) -> Interactions {
    let mut builder = InteractionsBuilder::new();
    for u in data.user_ids().externals() {
        builder.intern_user(u);
    }
    for i in data.item_ids().externals() {
        builder.intern_item(i);
    }
    let mut hit = vec![false; data.len()];
    rows.iter().for_each(|&r| hit[r] = true);
    for (r, &poison_row) in hit.iter().enumerate() {
        let (mut item, mut rating) = (data.items()[r], data.ratings()[r]);
        if poison_row {
            (item, rating) = poison(item, rating);
        }
        builder.push_indexed(
            data.users()[r],
            item,
            (!rating.is_nan()).then_some(rating),
            data.weights()[r],
            data.events()[r],
            Some(data.timestamps()[r]),
        );
    }
    builder.build()
}

/// Tunes on `data`, poisons the outer test rows with `poison`, checks the outer split is
/// unchanged, tunes again and checks the search is identical while the test scores are not.
fn poison_check(
    protocol: &str,
    opts: &TuneOptions,
    metric: &str,
    poison: impl Fn(u32, f32) -> (u32, f32),
) {
    let data = dataset();
    let protocol = Protocol::parse(protocol).unwrap();
    let prepared = protocol.prepare(&data.interactions);
    let splits = protocol.splits(&prepared).unwrap();
    let n_folds = opts.outer_folds.unwrap_or(splits.len());
    // Prepared rows back to the rows of the raw log (the positive filter drops some).
    let raw_rows: Vec<usize> = match protocol.positive_threshold {
        Some(t) => (0..data.interactions.len())
            .filter(|&r| data.interactions.ratings()[r] >= t)
            .collect(),
        None => (0..data.interactions.len()).collect(),
    };
    let test_rows: Vec<usize> = splits[..n_folds]
        .iter()
        .flat_map(|s| s.test.iter().map(|&r| raw_rows[r as usize]))
        .collect();
    let mut bad = data.clone();
    bad.interactions = poisoned(&data.interactions, &test_rows, poison);

    // The poison touched every outer test row and nothing the protocol splits on.
    let bad_prepared = protocol.prepare(&bad.interactions);
    assert_eq!(protocol.splits(&bad_prepared).unwrap(), splits);
    let changed = test_rows
        .iter()
        .filter(|&&r| {
            data.interactions.items()[r] != bad.interactions.items()[r]
                || data.interactions.ratings()[r] != bad.interactions.ratings()[r]
        })
        .count();
    assert_eq!(changed, test_rows.len());

    let clean = tune(&data, &protocol, opts, &eval_options()).unwrap();
    let dirty = tune(&bad, &protocol, opts, &eval_options()).unwrap();
    assert_eq!(trace(&dirty), trace(&clean), "the search saw the test rows");
    let (c, d) = (clean.tuning.unwrap(), dirty.tuning.unwrap());
    assert_eq!(d.chosen_per_fold, c.chosen_per_fold);
    let (before, after) = (
        clean.results[0].metrics[metric],
        dirty.results[0].metrics[metric],
    );
    assert!(
        (before - after).abs() > 1e-3,
        "the poison did not reach the test scores: {before} vs {after}"
    );
}

#[test]
fn poisoned_test_ratings_do_not_change_a_kfold_search() {
    // k-fold's test rows of one fold train the others, so only the first outer fold is searched.
    let opts = TuneOptions {
        outer_folds: Some(1),
        ..options("baseline", Method::Tpe, 6)
    };
    poison_check("kfold:3", &opts, "rmse", |item, rating| {
        (item, if rating >= 3.0 { 1.0 } else { 5.0 })
    });
}

#[test]
fn poisoned_test_items_do_not_change_a_temporal_search() {
    let n_items = dataset().interactions.n_items() as u32;
    poison_check(
        "temporal:0.2,positive>=4",
        &options("itemknn", Method::Tpe, 6),
        "ndcg@10",
        move |item, rating| ((item + 1 + item % 7) % n_items, rating),
    );
}

#[test]
fn an_interrupted_search_resumes_to_the_uninterrupted_trace() {
    let data = dataset();
    let protocol = Protocol::parse("kfold:3").unwrap();
    let dir = std::env::temp_dir().join(format!("kindred-tune-resume-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let state = dir.join("state.jsonl");
    let _ = std::fs::remove_file(&state);
    let base = TuneOptions {
        outer_folds: Some(2),
        ..options("baseline", Method::Tpe, 7)
    };
    let uninterrupted = tune(&data, &protocol, &base, &eval_options()).unwrap();
    // "Interrupted" after 3 trials per fold, then resumed with the full budget.
    let first = TuneOptions {
        max_trials: Some(3),
        state: Some(state.clone()),
        ..base.clone()
    };
    let partial = tune(&data, &protocol, &first, &eval_options()).unwrap();
    assert_eq!(partial.trials.len(), 6);
    let resumed_opts = TuneOptions {
        state: Some(state.clone()),
        ..base.clone()
    };
    let resumed = tune(&data, &protocol, &resumed_opts, &eval_options()).unwrap();
    assert_eq!(trace(&resumed), trace(&uninterrupted));
    assert_eq!(
        resumed.tuning.as_ref().unwrap().chosen_per_fold,
        uninterrupted.tuning.as_ref().unwrap().chosen_per_fold
    );
    // Replayed trials were not refitted: they keep the first run's timings.
    for t in &partial.trials {
        let r = resumed
            .trials
            .iter()
            .find(|r| r.fold == t.fold && r.trial == t.trial)
            .unwrap();
        assert_eq!(r.seconds, t.seconds);
    }
    // The state file now holds a header and every trial once.
    let lines = std::fs::read_to_string(&state).unwrap().lines().count();
    assert_eq!(lines, 1 + 14);
    // A different search refuses the file.
    let other = TuneOptions {
        method: Method::Random,
        ..resumed_opts
    };
    let err = tune(&data, &protocol, &other, &eval_options())
        .unwrap_err()
        .to_string();
    assert!(err.contains("different search"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}
