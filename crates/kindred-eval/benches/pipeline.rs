//! Phase timings of the evaluation pipeline on MovieLens 1M: import, splits, CSR/CSC build,
//! baseline fit, full-catalog top-K for all users, and metric computation.
//!
//! Run with `bench/run.sh` (or `KINDRED_DATA_DIR=... cargo bench -p kindred-eval --bench pipeline`).
//! Each phase runs several times; the median wall time is reported, in a markdown table on
//! stdout and as JSON in `bench/out/pipeline.json`.

use std::path::PathBuf;
use std::time::Instant;

use kindred_core::{top_k, FitContext, Protocol, TrainSet};
use kindred_data::{load, DataSpec, ImportOptions};
use kindred_eval::metrics::{auc, user_ranking};
use kindred_eval::{evaluate, EvalOptions};
use kindred_models::model::AllItems;
use kindred_models::{build_algorithm, UserQuery};
use rayon::prelude::*;

fn median_seconds(runs: usize, mut f: impl FnMut()) -> f64 {
    let mut times: Vec<f64> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

fn main() {
    let Some(dir) = std::env::var_os("KINDRED_DATA_DIR").map(|d| PathBuf::from(d).join("ml-1m"))
    else {
        eprintln!("KINDRED_DATA_DIR is not set: the pipeline benchmark needs MovieLens 1M");
        std::process::exit(2);
    };
    let spec = DataSpec::MovieLens(dir);
    let opts = ImportOptions::default();
    let mut rows: Vec<(String, f64, String)> = Vec::new();
    let mut record = |name: &str, secs: f64, note: String| {
        println!("| {name} | {:.1} | {note} |", secs * 1000.0);
        rows.push((name.to_owned(), secs, note));
    };
    println!("| phase (ML-1M) | median ms | notes |\n|---|---|---|");

    let import = median_seconds(5, || {
        load(&spec, &opts).expect("import ML-1M");
    });
    let (dataset, _) = load(&spec, &opts).expect("import ML-1M");
    let log = &dataset.interactions;
    record(
        "import ratings+movies+users",
        import,
        format!("{} rows", log.len()),
    );

    let probe = kindred_data::preprocess::PipelineConfig::probe();
    let t = median_seconds(5, || {
        kindred_data::preprocess::run(&probe, log).expect("pipeline");
    });
    record(
        "preprocess (dedup, bots, 5-core)",
        t,
        "the probe config of `kindred stats`".into(),
    );
    let synthetic = kindred_data::synthetic::SyntheticConfig::parse(
        "users=10000,items=2000,per_user=50,bots=0.01,dups=0.01",
    )
    .unwrap();
    let t = median_seconds(3, || {
        kindred_data::synthetic::generate(&synthetic).expect("generate");
    });
    record(
        "synthetic: 10k users x 50 (not ML-1M)",
        t,
        "bots and duplicates injected".into(),
    );

    let temporal = Protocol::parse("temporal:0.2,positive>=4").unwrap();
    let t = median_seconds(5, || {
        let prepared = temporal.prepare(log);
        temporal.splits(&prepared).unwrap();
    });
    record(
        "split temporal:0.2,positive>=4",
        t,
        "includes positive filter and leakage guard".into(),
    );
    let kfold = Protocol::parse("kfold:5").unwrap();
    let t = median_seconds(5, || {
        kfold.splits(log).unwrap();
    });
    record("split kfold:5", t, "5 folds".into());

    let prepared = temporal.prepare(log);
    let split = temporal.splits(&prepared).unwrap().remove(0);
    let t = median_seconds(5, || {
        TrainSet::new(prepared.subset(&split.train));
    });
    record(
        "train set (subset + CSR + CSC)",
        t,
        format!("{} rows", split.train.len()),
    );
    let train = TrainSet::new(prepared.subset(&split.train));

    let full = TrainSet::new(log.clone());
    let baseline = build_algorithm("baseline").unwrap();
    let t = median_seconds(5, || {
        baseline.fit(&full, &FitContext::default()).unwrap();
    });
    record("baseline ALS fit (10 epochs)", t, "all 1M ratings".into());

    let popularity = build_algorithm("popularity")
        .unwrap()
        .fit(&train, &FitContext::default())
        .unwrap();
    let users: Vec<u32> = (0..train.n_users() as u32).collect();
    let t = median_seconds(5, || {
        let lists: Vec<_> = users
            .par_iter()
            .map(|&u| popularity.recommend(&UserQuery::known(u), 10, &AllItems))
            .collect();
        assert_eq!(lists.len(), users.len());
    });
    record(
        "top-10 for all users, seen excluded",
        t,
        format!(
            "{} users x {} items, {} threads",
            users.len(),
            train.n_items(),
            rayon::current_num_threads()
        ),
    );
    let bias = baseline.fit(&train, &FitContext::default()).unwrap();
    let t = median_seconds(5, || {
        let lists: Vec<_> = users
            .par_iter()
            .map(|&u| bias.recommend(&UserQuery::known(u), 10, &AllItems))
            .collect();
        assert_eq!(lists.len(), users.len());
    });
    record(
        "top-10 for all users (baseline scores)",
        t,
        "per-user score vector + heap".into(),
    );

    // Metrics on fixed lists.
    let mut relevant: Vec<Vec<u32>> = vec![Vec::new(); prepared.n_users()];
    for &r in &split.test {
        relevant[prepared.users()[r as usize] as usize].push(prepared.items()[r as usize]);
    }
    relevant.iter_mut().for_each(|r| {
        r.sort_unstable();
        r.dedup();
    });
    let lists: Vec<Vec<u32>> = users
        .iter()
        .map(|&u| {
            popularity
                .recommend(&UserQuery::known(u), 10, &AllItems)
                .iter()
                .map(|s| s.item)
                .collect()
        })
        .collect();
    let t = median_seconds(5, || {
        let sum: f64 = users
            .iter()
            .filter(|&&u| !relevant[u as usize].is_empty())
            .map(|&u| user_ranking(&lists[u as usize], &relevant[u as usize], 10).ndcg)
            .sum();
        assert!(sum > 0.0);
    });
    record(
        "ranking metrics@10, all users",
        t,
        "P/R/NDCG/MAP/MRR/hit, one thread".into(),
    );
    let mut scores = vec![0f32; train.n_items()];
    let t = median_seconds(3, || {
        for &u in users.iter().filter(|&&u| !relevant[u as usize].is_empty()) {
            popularity.score_all(&UserQuery::known(u), &mut scores);
            let seen = train.by_user.row(u as usize);
            let rel = &relevant[u as usize];
            let mut cands: Vec<(f32, bool)> = (0..scores.len() as u32)
                .filter(|i| seen.binary_search(i).is_err())
                .map(|i| (scores[i as usize], rel.binary_search(&i).is_ok()))
                .collect();
            auc(&mut cands);
        }
    });
    record("AUC over all candidates, all users", t, "one thread".into());
    let _ = top_k(&scores, 10, |_| false);

    let models = ["popularity".to_owned()];
    let t = median_seconds(3, || {
        evaluate(&dataset, &temporal, &models, &EvalOptions::default()).unwrap();
    });
    record(
        "kindred eval temporal popularity (end to end)",
        t,
        "split, fit, rank, all metrics, segments".into(),
    );
    let models = ["baseline".to_owned()];
    let t = median_seconds(3, || {
        evaluate(
            &dataset,
            &kfold,
            &models,
            &EvalOptions {
                segments: false,
                ..EvalOptions::default()
            },
        )
        .unwrap();
    });
    record(
        "kindred eval kfold:5 baseline (end to end)",
        t,
        "5 fits + 1M predictions".into(),
    );

    let out = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../bench/out");
    let _ = std::fs::create_dir_all(&out);
    let json: Vec<_> = rows
        .iter()
        .map(|(name, secs, note)| serde_json::json!({ "phase": name, "median_seconds": secs, "note": note }))
        .collect();
    let path = out.join("pipeline.json");
    match std::fs::write(
        &path,
        serde_json::to_string_pretty(&json).unwrap_or_default(),
    ) {
        Ok(()) => eprintln!("wrote {}", path.display()),
        Err(e) => eprintln!("cannot write {}: {e}", path.display()),
    }
}
