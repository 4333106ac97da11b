//! `auto` end to end on generated data: the choice is made on the training rows only (poisoning
//! the outer test rows changes the test scores and nothing of the choice), the budget holds, the
//! trace says what was tried and skipped, and the chosen model saves with its trace.

use kindred_core::{Dataset, FitContext, Interactions, InteractionsBuilder, Protocol, TrainSet};
use kindred_data::synthetic::{generate, SyntheticConfig};
use kindred_eval::auto::Selection;
use kindred_eval::{build_algorithm, evaluate, EvalOptions, EvalReport};

fn dataset() -> Dataset {
    generate(&SyntheticConfig::parse("users=300,items=150,seed=5").unwrap())
        .unwrap()
        .dataset
}

fn eval_options() -> EvalOptions {
    EvalOptions {
        threads: 2,
        ..EvalOptions::default().headline_only()
    }
}

/// The selections of every fold of the (single) result.
fn selections(report: &EvalReport) -> Vec<Selection> {
    report.results[0]
        .per_fold
        .iter()
        .map(|f| serde_json::from_value(f.selection.clone().expect("a selection trace")).unwrap())
        .collect()
}

/// What a selection chose and how it got there, without its timings.
fn choice(selection: &Selection) -> (String, Vec<(String, String, Option<f64>)>) {
    (
        selection.chosen.clone(),
        selection
            .trials
            .iter()
            .map(|t| (t.family.clone(), t.spec.clone(), t.score))
            .collect(),
    )
}

/// Rebuilds `data` with the same ids, users and timestamps, moving the rows in `rows` to another
/// item.
fn poisoned(data: &Interactions, rows: &[usize]) -> Interactions {
    let n_items = data.n_items() as u32;
    let mut builder = InteractionsBuilder::new();
    for u in data.user_ids().externals() {
        builder.intern_user(u);
    }
    for i in data.item_ids().externals() {
        builder.intern_item(i);
    }
    let mut hit = vec![false; data.len()];
    rows.iter().for_each(|&r| hit[r] = true);
    for (r, &poison) in hit.iter().enumerate() {
        let item = data.items()[r];
        let item = if poison {
            (item + 1 + item % 7) % n_items
        } else {
            item
        };
        let rating = data.ratings()[r];
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

#[test]
fn poisoned_test_rows_do_not_change_the_choice() {
    // A budget that never binds and a cap on fits per family: the selection is reproducible,
    // so any difference could only come from the test rows.
    let spec = "auto:families=popularity+itemknn+als,trials=4,budget=600".to_owned();
    let data = dataset();
    let protocol = Protocol::parse("temporal:0.2,positive>=4").unwrap();
    let prepared = protocol.prepare(&data.interactions);
    let split = protocol.splits(&prepared).unwrap().remove(0);
    let raw_rows: Vec<usize> = (0..data.interactions.len())
        .filter(|&r| data.interactions.ratings()[r] >= 4.0)
        .collect();
    let test_rows: Vec<usize> = split.test.iter().map(|&r| raw_rows[r as usize]).collect();
    let mut bad = data.clone();
    bad.interactions = poisoned(&data.interactions, &test_rows);
    assert_eq!(
        protocol
            .splits(&protocol.prepare(&bad.interactions))
            .unwrap()[0],
        split,
        "the poison moved the split"
    );

    let clean = evaluate(
        &data,
        &protocol,
        std::slice::from_ref(&spec),
        &eval_options(),
    )
    .unwrap();
    let dirty = evaluate(&bad, &protocol, &[spec], &eval_options()).unwrap();
    let (c, d) = (selections(&clean), selections(&dirty));
    assert_eq!(c.len(), 1);
    assert_eq!(choice(&d[0]), choice(&c[0]), "the choice saw the test rows");
    // Every candidate was screened, and the families with a space were searched further.
    let families: Vec<&str> = c[0].trials.iter().map(|t| t.family.as_str()).collect();
    for family in ["popularity", "itemknn", "als"] {
        assert!(
            families.contains(&family),
            "{family} never ran: {families:?}"
        );
    }
    assert_eq!(families.iter().filter(|f| **f == "als").count(), 4);
    assert_eq!(c[0].validation, "temporal:0.2,positive>=4,seed=42");
    // The fold records the spec it fitted, the result stays named `auto`.
    assert_eq!(
        clean.results[0].per_fold[0].spec.as_deref(),
        Some(c[0].chosen.as_str())
    );
    assert_eq!(clean.results[0].model, "auto");
    let (before, after) = (
        clean.results[0].metrics["ndcg@10"],
        dirty.results[0].metrics["ndcg@10"],
    );
    assert!(
        (before - after).abs() > 1e-3,
        "the poison did not reach the test scores: {before} vs {after}"
    );
}

#[test]
fn the_winner_has_the_best_validation_score_of_all_trials() {
    let data = dataset();
    let protocol = Protocol::parse("random:0.2,positive>=4").unwrap();
    let spec = "auto:families=popularity+itemknn+ease,trials=3,budget=600".to_owned();
    let report = evaluate(&data, &protocol, &[spec], &eval_options()).unwrap();
    let selection = &selections(&report)[0];
    let best = selection
        .trials
        .iter()
        .filter_map(|t| t.score)
        .fold(f64::NEG_INFINITY, f64::max);
    assert_eq!(selection.chosen_score, best);
    assert!(selection.trials.iter().any(|t| t.spec == selection.chosen));
    for family in &selection.families {
        assert!(
            family.status != "skipped" || family.reason.is_some(),
            "{family:?}"
        );
    }
}

#[test]
fn rating_protocols_select_among_rating_models_by_rmse() {
    let data = dataset();
    let protocol = Protocol::parse("kfold:3").unwrap();
    let opts = EvalOptions {
        max_folds: Some(1),
        ..eval_options()
    };
    let spec = "auto:families=baseline+svd,trials=3,budget=600".to_owned();
    let report = evaluate(&data, &protocol, &[spec], &opts).unwrap();
    let selection = &selections(&report)[0];
    assert_eq!(selection.task, "rating");
    assert_eq!(selection.metric, "rmse");
    assert!(selection.lower_is_better);
    let best = selection
        .trials
        .iter()
        .filter_map(|t| t.score)
        .fold(f64::INFINITY, f64::min);
    assert_eq!(selection.chosen_score, best);
    let err = evaluate(&data, &protocol, &["auto:task=ranking".to_owned()], &opts)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("task=ranking under a rating protocol"),
        "{err}"
    );
}

#[test]
fn tune_with_auto_reports_each_fold_choice_beside_the_baseline() {
    let data = dataset();
    let protocol = Protocol::parse("temporal:0.2,positive>=4").unwrap();
    let opts = kindred_eval::TuneOptions {
        max_trials: Some(2),
        ..kindred_eval::TuneOptions::new("auto:families=popularity+itemknn,budget=600")
    };
    let report = kindred_eval::tune(&data, &protocol, &opts, &eval_options()).unwrap();
    let tuning = report.tuning.as_ref().unwrap();
    assert_eq!(tuning.family, "auto");
    assert_eq!(
        tuning.validation_protocol,
        "temporal:0.2,positive>=4,seed=42"
    );
    assert_eq!(report.results[1].spec, "popularity");
    // --trials became the cap on fits per family: popularity once, itemknn twice.
    assert_eq!(report.trials.len(), 3);
    assert_eq!(selections(&report)[0].chosen, tuning.chosen);
}

#[test]
fn the_budget_holds() {
    // A larger world, so the search has more to do than the budget allows.
    let data = generate(&SyntheticConfig::parse("users=2000,items=800,seed=9").unwrap())
        .unwrap()
        .dataset;
    let train = TrainSet::new(data.interactions.positives(4.0));
    let budget = 2.0;
    let algorithm = build_algorithm(&format!("auto:budget={budget}")).unwrap();
    let ctx = FitContext {
        threads: 2,
        ..FitContext::default()
    };
    let model = algorithm.fit(&train, &ctx).unwrap();
    let selection: Selection = serde_json::from_value(model.selection().unwrap().clone()).unwrap();
    // A trial that starts inside the budget may run past it by its own length, no more.
    let longest = selection
        .trials
        .iter()
        .map(|t| t.seconds)
        .fold(0.0, f64::max);
    assert!(
        selection.search_seconds <= budget * 1.1 + longest,
        "search took {} s for a {budget} s budget (longest trial {longest} s)",
        selection.search_seconds
    );
    assert!(selection.refit_seconds > 0.0);
    assert_eq!(model.name(), selection.chosen_family);
}

#[test]
fn a_saved_auto_model_keeps_its_trace_and_loads_as_the_winner() {
    let data = dataset();
    let train = TrainSet::new(data.interactions.positives(4.0));
    let algorithm =
        build_algorithm("auto:families=popularity+itemknn,trials=2,budget=600").unwrap();
    let model = algorithm.fit(&train, &FitContext::default()).unwrap();
    let dir = std::env::temp_dir().join(format!("kindred-auto-save-{}", std::process::id()));
    model.save(&dir).unwrap();
    let manifest = kindred_models::Manifest::read(&dir).unwrap();
    let selection: Selection = serde_json::from_value(manifest.selection.unwrap()).unwrap();
    assert_eq!(manifest.algorithm, selection.chosen_family);
    let loaded = kindred_models::load_model(&dir).unwrap();
    assert_eq!(loaded.name(), model.name());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_catalog_too_large_for_the_budget_runs_ease_in_its_cheaper_form() {
    // 3,000 items: a whole-catalog EASE is predicted at about 0.7 s, more than the budget, so
    // `auto` fits it on the most used items only, sized to a quarter of the budget.
    let data = generate(&SyntheticConfig::parse("users=1500,items=3000,seed=4").unwrap())
        .unwrap()
        .dataset;
    let train = TrainSet::new(data.interactions.positives(4.0));
    assert!(train.n_items() > 2_000, "{} items", train.n_items());
    let algorithm = build_algorithm("auto:families=ease,budget=0.4").unwrap();
    let model = algorithm.fit(&train, &FitContext::default()).unwrap();
    let selection: Selection = serde_json::from_value(model.selection().unwrap().clone()).unwrap();
    let ease = &selection.families[0];
    assert_eq!(ease.family, "ease");
    let reason = ease.reason.as_deref().unwrap_or_default();
    assert!(reason.contains("cheaper form"), "{reason}");
    assert!(ease.trials >= 1, "{ease:?}");
    let top_items = selection
        .chosen
        .split([':', ','])
        .find_map(|p| p.strip_prefix("top_items="))
        .unwrap_or_else(|| panic!("{} carries no top_items", selection.chosen));
    let top_items: usize = top_items.parse().unwrap();
    assert!((1_000..train.n_items()).contains(&top_items), "{top_items}");
    // The refit is the same form.
    assert_eq!(model.params()["top_items"], top_items);
}
