//! Distributed ALS against the single-node fit on the same data and seed (worker threads in one
//! process here; `kindred-cli`'s tests run the same job as separate processes).

mod common;

use std::collections::HashMap;
use std::sync::Arc;

use kindred_cluster::factors::read_factors;
use kindred_cluster::{run_als, AlsJob, Topology};
use kindred_core::{FitContext, TrainSet};
use kindred_data::import::ImportOptions;
use kindred_data::parquet::load_parquet;
use kindred_models::implicit::als::{Als, AlsModel, AlsParams};

fn params() -> AlsParams {
    AlsParams {
        factors: 8,
        iterations: 6,
        ..AlsParams::default()
    }
}

fn single_node(full: &std::path::Path) -> (TrainSet, AlsModel) {
    let (dataset, _) = load_parquet(full, &ImportOptions::default()).unwrap();
    let train = TrainSet::new(dataset.interactions);
    let model = Als { params: params() }
        .fit_model(&train, &FitContext::with_seed(42))
        .unwrap();
    (train, model)
}

/// Largest |distributed - single-node| over every factor value of both sides.
fn max_difference(train: &TrainSet, model: &AlsModel, out: &std::path::Path) -> f32 {
    let mut worst = 0f32;
    for (side, dir) in [("user", "user_factors"), ("item", "item_factors")] {
        let (ids, values, f) = read_factors(&out.join(dir)).unwrap();
        assert_eq!(f, 8);
        let expected_rows = if side == "user" {
            train.n_users()
        } else {
            train.n_items()
        };
        assert_eq!(ids.len(), expected_rows, "{side} rows");
        let rows: HashMap<&str, &[f32]> = ids
            .iter()
            .map(String::as_str)
            .zip(values.chunks_exact(f))
            .collect();
        for (id, got) in rows {
            let want = if side == "user" {
                let idx = train.data.user_ids().get(id).unwrap();
                model.user_vector(idx).unwrap()
            } else {
                let idx = train.data.item_ids().get(id).unwrap();
                model.item_vector(idx).unwrap()
            };
            for (a, b) in got.iter().zip(want) {
                worst = worst.max((a - b).abs());
            }
        }
    }
    worst
}

#[test]
fn threads_match_the_single_node_fit() {
    let dir = tempfile::tempdir().unwrap();
    let log = common::synthetic_log(400, 150, 5);
    let (full, shards) = common::write_shards(&log, dir.path(), 4);
    let (train, model) = single_node(&full);
    for workers in [1, 2, 3] {
        let out = dir.path().join(format!("out-{workers}"));
        let summary = run_als(
            &Topology::local_threads(workers),
            AlsJob {
                inputs: shards.clone(),
                import: ImportOptions::default(),
                params: params(),
                seed: 42,
                checkpoint_dir: None,
                out_dir: Some(out.clone()),
                threads_per_worker: 1,
                lists: None,
            },
            Arc::new(|_| {}),
        )
        .unwrap();
        assert_eq!(summary.users, train.n_users());
        assert_eq!(summary.items, train.n_items());
        assert_eq!(summary.rows, log.len() as u64);
        assert_eq!(summary.iterations.len(), 6);
        if workers == 1 {
            assert_eq!(summary.iterations[0].bytes_to_workers, 0);
        } else {
            assert!(summary.iterations[0].bytes_to_workers > 0);
        }
        let diff = max_difference(&train, &model, &out);
        eprintln!("{workers} worker(s): max |difference| {diff:e}");
        assert!(diff <= 1e-5, "{workers} workers differ by {diff}");
    }
}
