//! Distributed batch top-K against the single-node run: identical lists for 1, 2 and 3 workers,
//! no seen or disallowed item recommended, no item its own neighbour, and the Parquet parts
//! holding exactly the single-node lists.

use std::sync::Arc;

use kindred_cluster::topk::{
    distributed_top_k, shard_rows, shard_seen, single_node_top_k, BatchLists, BatchSettings,
    WorkerLists, WorkerShard,
};
use kindred_cluster::topk_parquet::{part_path, read_lists};
use kindred_cluster::{run, Topology};
use kindred_core::topk::Scored;
use kindred_core::{CsMatrix, FitContext, SplitMix64};

/// A seeded instance: Gaussian factors, ~`seen_per_user` distinct seen items per user, and
/// every seventh item disallowed.
struct Instance {
    dim: usize,
    users: Vec<f32>,
    items: Vec<f32>,
    seen: CsMatrix,
    allowed: Vec<bool>,
}

fn instance(n_users: usize, n_items: usize, dim: usize, seen_per_user: usize) -> Instance {
    let mut rng = SplitMix64::new(20_261_129);
    let mut gaussian = |len: usize| -> Vec<f32> { (0..len).map(|_| rng.normal() as f32).collect() };
    let users = gaussian(n_users * dim);
    let items = gaussian(n_items * dim);
    let mut rows = Vec::new();
    let mut cols = Vec::new();
    for u in 0..n_users {
        let mut draw = SplitMix64::stream(7, u as u64);
        let mut mine: Vec<u32> = (0..seen_per_user)
            .map(|_| draw.below(n_items as u64) as u32)
            .collect();
        mine.sort_unstable();
        mine.dedup();
        for i in mine {
            rows.push(u as u32);
            cols.push(i);
        }
    }
    let seen = CsMatrix::build(n_users, n_items, &rows, &cols);
    let allowed = (0..n_items).map(|i| i % 7 != 3).collect();
    Instance {
        dim,
        users,
        items,
        seen,
        allowed,
    }
}

fn distributed(
    instance: &Arc<Instance>,
    workers: usize,
    settings: BatchSettings,
) -> Vec<WorkerLists> {
    let shared = Arc::clone(instance);
    run(&Topology::local_threads(workers), 9, move |ex| {
        let (w, p) = (ex.index(), ex.peers());
        let d = &shared;
        let users = shard_rows(&d.users, d.dim, w, p);
        let seen = shard_seen(&d.seen, w, p);
        let items = shard_rows(&d.items, d.dim, w, p);
        let shard = WorkerShard {
            dim: d.dim,
            user_factors: &users,
            seen: &seen,
            item_factors: &items,
        };
        distributed_top_k(
            ex,
            &shard,
            Some(&d.allowed),
            &settings,
            &FitContext::default(),
        )
    })
    .unwrap()
}

/// Reassembles worker lists into global order.
fn merge(parts: &[WorkerLists], n_users: usize, n_items: usize) -> BatchLists {
    let mut merged = BatchLists {
        users: vec![Vec::new(); n_users],
        neighbours: vec![Vec::new(); n_items],
    };
    for part in parts {
        for (r, list) in part.users.iter().enumerate() {
            merged.users[part.global_index(r)] = list.clone();
        }
        for (r, list) in part.neighbours.iter().enumerate() {
            merged.neighbours[part.global_index(r)] = list.clone();
        }
    }
    merged
}

/// Lists as (item, score bits), so that equality is bit-for-bit.
fn bits(lists: &[Vec<Scored>]) -> Vec<Vec<(u32, u32)>> {
    lists
        .iter()
        .map(|l| l.iter().map(|s| (s.item, s.score.to_bits())).collect())
        .collect()
}

#[test]
fn distributed_lists_equal_single_node_lists_for_one_two_and_three_workers() {
    let (n_users, n_items, dim, k) = (2_000, 500, 16, 10);
    let data = Arc::new(instance(n_users, n_items, dim, 20));
    let settings = BatchSettings { k, neighbours: 8 };
    let single = single_node_top_k(
        dim,
        &data.users,
        &data.seen,
        &data.items,
        Some(&data.allowed),
        &settings,
        &FitContext::default(),
    )
    .unwrap();
    assert_eq!(single.users.len(), n_users);
    assert_eq!(single.neighbours.len(), n_items);
    for (u, list) in single.users.iter().enumerate() {
        assert_eq!(list.len(), k, "user {u}");
        for s in list {
            assert!(
                !data.seen.contains(u, s.item),
                "user {u} got seen item {}",
                s.item
            );
            assert!(
                data.allowed[s.item as usize],
                "user {u} got disallowed item {}",
                s.item
            );
        }
        assert!(
            list.windows(2).all(|w| w[0].score >= w[1].score),
            "user {u} unsorted"
        );
    }
    for (i, list) in single.neighbours.iter().enumerate() {
        assert_eq!(list.len(), 8, "item {i}");
        assert!(
            list.iter().all(|s| s.item as usize != i),
            "item {i} is its own neighbour"
        );
        assert!(list.iter().all(|s| data.allowed[s.item as usize]));
    }
    for workers in 1..=3 {
        let parts = distributed(&data, workers, settings);
        assert_eq!(parts.len(), workers);
        let merged = merge(&parts, n_users, n_items);
        assert_eq!(
            bits(&merged.users),
            bits(&single.users),
            "{workers} workers: users"
        );
        assert_eq!(
            bits(&merged.neighbours),
            bits(&single.neighbours),
            "{workers} workers: neighbours"
        );
    }
}

#[test]
fn worker_parquet_parts_hold_the_single_node_lists() {
    let (n_users, n_items, dim) = (300, 120, 8);
    let data = Arc::new(instance(n_users, n_items, dim, 10));
    let settings = BatchSettings {
        k: 5,
        neighbours: 4,
    };
    let single = single_node_top_k(
        dim,
        &data.users,
        &data.seen,
        &data.items,
        Some(&data.allowed),
        &settings,
        &FitContext::default(),
    )
    .unwrap();
    let user_ids: Vec<String> = (0..n_users).map(|u| format!("user-{u}")).collect();
    let item_ids: Vec<String> = (0..n_items).map(|i| format!("item-{i}")).collect();
    let dir = tempfile::tempdir().unwrap();
    let users_dir = dir.path().join("users");
    let neighbours_dir = dir.path().join("neighbours");
    let parts = distributed(&data, 2, settings);
    for part in &parts {
        let own_ids: Vec<&str> = (0..part.users.len())
            .map(|r| user_ids[part.global_index(r)].as_str())
            .collect();
        part.write_parquet(&users_dir, Some(&neighbours_dir), &own_ids, &item_ids)
            .unwrap();
    }
    let mut from_files: Vec<(String, String, i32, u32)> = Vec::new();
    let mut neighbour_rows: Vec<(String, String, i32, u32)> = Vec::new();
    for w in 0..2 {
        for row in read_lists(&part_path(&users_dir, w)).unwrap() {
            from_files.push((row.query, row.item, row.rank, row.score.to_bits()));
        }
        for row in read_lists(&part_path(&neighbours_dir, w)).unwrap() {
            neighbour_rows.push((row.query, row.item, row.rank, row.score.to_bits()));
        }
    }
    let expected = |lists: &[Vec<Scored>], query_ids: &[String]| {
        let mut rows: Vec<(String, String, i32, u32)> = Vec::new();
        for (q, list) in lists.iter().enumerate() {
            for (r, s) in list.iter().enumerate() {
                rows.push((
                    query_ids[q].clone(),
                    item_ids[s.item as usize].clone(),
                    r as i32 + 1,
                    s.score.to_bits(),
                ));
            }
        }
        rows.sort();
        rows
    };
    from_files.sort();
    neighbour_rows.sort();
    assert_eq!(from_files.len(), n_users * 5);
    assert_eq!(from_files, expected(&single.users, &user_ids));
    assert_eq!(neighbour_rows, expected(&single.neighbours, &item_ids));
}

#[test]
fn workers_with_mismatched_shards_fail_with_a_clear_error() {
    let data = Arc::new(instance(10, 9, 4, 2));
    let shared = Arc::clone(&data);
    let err = run(&Topology::local_threads(2), 9, move |ex| {
        let d = &shared;
        let users = shard_rows(&d.users, d.dim, ex.index(), 2);
        let seen = shard_seen(&d.seen, ex.index(), 2);
        // Worker 1 wrongly holds every item: the gathered rows do not fit index sharding.
        let items = if ex.index() == 1 {
            d.items.clone()
        } else {
            shard_rows(&d.items, d.dim, 0, 2)
        };
        let shard = WorkerShard {
            dim: d.dim,
            user_factors: &users,
            seen: &seen,
            item_factors: &items,
        };
        distributed_top_k(
            ex,
            &shard,
            None,
            &BatchSettings {
                k: 3,
                neighbours: 0,
            },
            &FitContext::default(),
        )
    })
    .unwrap_err()
    .to_string();
    // 14 rows gathered: worker 0 should hold 7 (it holds 5), worker 1 also 7 (it holds 9).
    assert!(
        err.contains("holds") && err.contains("it should hold 7"),
        "{err}"
    );
}

/// A random instance: small sizes, random seen sets and filters.
fn random_instance(
    seed: u64,
    n_users: usize,
    n_items: usize,
    dim: usize,
    max_seen: usize,
) -> Instance {
    let mut rng = SplitMix64::new(seed);
    let users = (0..n_users * dim).map(|_| rng.normal() as f32).collect();
    let items = (0..n_items * dim).map(|_| rng.normal() as f32).collect();
    let mut rows = Vec::new();
    let mut cols = Vec::new();
    for u in 0..n_users {
        let count = rng.below(max_seen as u64 + 1);
        let mut mine: Vec<u32> = (0..count)
            .map(|_| rng.below(n_items as u64) as u32)
            .collect();
        mine.sort_unstable();
        mine.dedup();
        for i in mine {
            rows.push(u as u32);
            cols.push(i);
        }
    }
    let allowed = (0..n_items).map(|_| rng.below(4) != 0).collect();
    Instance {
        dim,
        users,
        items,
        seen: CsMatrix::build(n_users, n_items, &rows, &cols),
        allowed,
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(16))]
    /// Any worker count gives the single-node lists, and every list is as long as the eligible
    /// items allow, sorted, free of seen and disallowed items (and, for neighbours, of itself).
    #[test]
    fn distributed_equals_single_node_and_lists_obey_the_filters(
        seed in proptest::prelude::any::<u64>(),
        n_users in 0usize..150,
        n_items in 1usize..120,
        dim in 1usize..12,
        k in 0usize..15,
        neighbours in 0usize..6,
        workers in 1usize..5,
    ) {
        let data = Arc::new(random_instance(seed, n_users, n_items, dim, 30));
        let settings = BatchSettings { k, neighbours };
        let single = single_node_top_k(
            dim, &data.users, &data.seen, &data.items, Some(&data.allowed), &settings,
            &FitContext::default(),
        ).unwrap();
        let allowed_count = data.allowed.iter().filter(|&&a| a).count();
        for (u, list) in single.users.iter().enumerate() {
            let eligible = allowed_count
                - data.seen.row(u).iter().filter(|&&i| data.allowed[i as usize]).count();
            proptest::prop_assert_eq!(list.len(), k.min(eligible));
            for s in list {
                proptest::prop_assert!(!data.seen.contains(u, s.item));
                proptest::prop_assert!(data.allowed[s.item as usize]);
            }
            proptest::prop_assert!(list.windows(2).all(|w| w[0].score >= w[1].score));
        }
        for (i, list) in single.neighbours.iter().enumerate() {
            let eligible = allowed_count - usize::from(data.allowed[i]);
            proptest::prop_assert_eq!(list.len(), neighbours.min(eligible));
            proptest::prop_assert!(list.iter().all(|s| s.item as usize != i && data.allowed[s.item as usize]));
        }
        let merged = merge(&distributed(&data, workers, settings), n_users, n_items);
        proptest::prop_assert_eq!(bits(&merged.users), bits(&single.users));
        proptest::prop_assert_eq!(bits(&merged.neighbours), bits(&single.neighbours));
    }
}

/// Counts progress units and phases.
#[derive(Default)]
struct Count {
    phases: std::sync::Mutex<Vec<(String, u64)>>,
    done: std::sync::atomic::AtomicU64,
}

impl kindred_core::Progress for Count {
    fn begin(&self, task: &str, total: u64) {
        if let Ok(mut phases) = self.phases.lock() {
            phases.push((task.to_string(), total));
        }
    }
    fn advance(&self, n: u64) {
        self.done.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
    }
}

#[test]
fn progress_counts_every_user_and_item_and_a_raised_cancel_flag_stops_the_run() {
    let data = instance(40_000, 50, 4, 3);
    let settings = BatchSettings {
        k: 2,
        neighbours: 2,
    };
    let count = Arc::new(Count::default());
    let ctx = FitContext {
        threads: 2,
        progress: count.clone(),
        ..FitContext::default()
    };
    single_node_top_k(
        4,
        &data.users,
        &data.seen,
        &data.items,
        None,
        &settings,
        &ctx,
    )
    .unwrap();
    let phases = count.phases.lock().unwrap().clone();
    assert_eq!(
        phases,
        vec![
            ("top-K lists".to_string(), 40_000),
            ("item neighbour lists".to_string(), 50)
        ]
    );
    assert_eq!(
        count.done.load(std::sync::atomic::Ordering::Relaxed),
        40_050
    );
    let cancelled = FitContext::default();
    cancelled.cancel.cancel();
    let err = single_node_top_k(
        4,
        &data.users,
        &data.seen,
        &data.items,
        None,
        &settings,
        &cancelled,
    )
    .unwrap_err()
    .to_string();
    assert!(err.to_lowercase().contains("cancel"), "{err}");
}
