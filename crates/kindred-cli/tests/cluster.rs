//! `kindred cluster als` as separate processes on localhost: the factors match the single-node
//! fit within 1e-5 and rank held-out items the same; killing a process fails the job loudly and
//! a restart resumes from the checkpoint with the factors an uninterrupted run gives.
#![cfg(feature = "cluster")]

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kindred_cluster::factors::read_factors;
use kindred_cluster::topk::single_node_top_k;
use kindred_cluster::topk_parquet::read_lists;
use kindred_cluster::BatchSettings;
use kindred_core::kernels::dot;
use kindred_core::rng::mix64;
use kindred_core::topk::top_k;
use kindred_core::{FitContext, Interactions, TrainSet};
use kindred_data::import::ImportOptions;
use kindred_data::parquet::{load_parquet, write_parquet};
use kindred_data::synthetic::{generate, SyntheticConfig};
use kindred_eval::metrics::user_ranking;
use kindred_models::implicit::als::{Als, AlsParams};

const KINDRED: &str = env!("CARGO_BIN_EXE_kindred");

fn synthetic(users: usize, items: usize) -> Interactions {
    let cfg = SyntheticConfig {
        users,
        items,
        seed: 11,
        interactions_per_user: 25.0,
        duplicate_fraction: 0.05,
        implicit: true,
        ..SyntheticConfig::default()
    };
    generate(&cfg).unwrap().dataset.interactions
}

/// Writes `log` whole and as `shards` ordered pieces; returns (whole file, shard directory).
fn write_shards(log: &Interactions, dir: &Path, shards: usize) -> (PathBuf, PathBuf) {
    let full = dir.join("train.parquet");
    write_parquet(log, &full).unwrap();
    let shard_dir = dir.join("shards");
    kindred_cluster::shard::write_shards(log, &shard_dir, shards).unwrap();
    (full, shard_dir)
}

fn cluster_als(args: &[&str]) -> std::process::Output {
    Command::new(KINDRED)
        .args(["cluster", "als"])
        .args(args)
        .output()
        .unwrap()
}

type Factors = HashMap<String, Vec<f32>>;

fn factors(out: &Path, side: &str) -> Factors {
    let (ids, values, f) = read_factors(&out.join(side)).unwrap();
    ids.into_iter()
        .zip(values.chunks_exact(f).map(<[f32]>::to_vec))
        .collect()
}

/// Top-10 of every test user (train items excluded) from user and item factors by id, and the
/// mean NDCG@10 and recall@10 against the held-out items.
fn rank(
    train: &TrainSet,
    test: &HashMap<String, HashSet<String>>,
    users: &Factors,
    items: &Factors,
) -> (Vec<Vec<u32>>, f64, f64) {
    let item_ids = train.data.item_ids();
    let item_vectors: Vec<&[f32]> = (0..train.n_items() as u32)
        .map(|i| items[item_ids.external(i)].as_slice())
        .collect();
    let mut test_users: Vec<&String> = test.keys().collect();
    test_users.sort();
    let (mut lists, mut ndcg, mut recall, mut n) = (Vec::new(), 0.0, 0.0, 0usize);
    for user in test_users {
        let Some(u) = train.data.user_ids().get(user) else {
            continue;
        };
        let x = &users[user];
        let scores: Vec<f32> = item_vectors.iter().map(|y| dot(x, y)).collect();
        let seen: HashSet<u32> = train.by_user.row(u as usize).iter().copied().collect();
        let list: Vec<u32> = top_k(&scores, 10, |i| seen.contains(&i))
            .into_iter()
            .map(|s| s.item)
            .collect();
        let mut relevant: Vec<u32> = test[user].iter().filter_map(|i| item_ids.get(i)).collect();
        relevant.sort_unstable();
        relevant.dedup();
        if relevant.is_empty() {
            continue;
        }
        let r = user_ranking(&list, &relevant, 10);
        ndcg += r.ndcg;
        recall += r.recall;
        n += 1;
        lists.push(list);
    }
    (lists, ndcg / n as f64, recall / n as f64)
}

#[test]
fn two_and_three_processes_match_the_single_node_fit() {
    let dir = tempfile::tempdir().unwrap();
    let log = synthetic(1500, 400);
    // A random fifth of the events is held out for the ranking comparison.
    let (mut train_rows, mut test) = (Vec::new(), HashMap::<String, HashSet<String>>::new());
    for row in 0..log.len() as u32 {
        if mix64(row as u64 ^ 0x5EED).is_multiple_of(5) {
            test.entry(
                log.user_ids()
                    .external(log.users()[row as usize])
                    .to_owned(),
            )
            .or_default()
            .insert(
                log.item_ids()
                    .external(log.items()[row as usize])
                    .to_owned(),
            );
        } else {
            train_rows.push(row);
        }
    }
    let (full, shards) = write_shards(&log.subset(&train_rows), dir.path(), 5);
    let model_spec = "als:factors=16,iterations=8";
    let (dataset, _) = load_parquet(&full, &ImportOptions::default()).unwrap();
    let train = TrainSet::new(dataset.interactions);
    let params = AlsParams {
        factors: 16,
        iterations: 8,
        ..AlsParams::default()
    };
    let model = Als { params }
        .fit_model(&train, &FitContext::with_seed(42))
        .unwrap();
    let f = 16;
    let single_users: Factors = (0..train.n_users() as u32)
        .map(|u| {
            let id = train.data.user_ids().external(u).to_owned();
            (id, model.user_vector(u).unwrap().to_vec())
        })
        .collect();
    let single_items: Factors = (0..train.n_items() as u32)
        .map(|i| {
            let id = train.data.item_ids().external(i).to_owned();
            (id, model.item_vector(i).unwrap().to_vec())
        })
        .collect();
    let (single_lists, single_ndcg, single_recall) =
        rank(&train, &test, &single_users, &single_items);
    assert!(
        single_ndcg > 0.05,
        "the fit learned something: ndcg {single_ndcg}"
    );

    for processes in [2, 3] {
        let out = dir.path().join(format!("out-{processes}"));
        let run = cluster_als(&[
            "--input",
            shards.to_str().unwrap(),
            "--model",
            model_spec,
            "--out",
            out.to_str().unwrap(),
            "--local",
            &processes.to_string(),
            "--topk",
            "10",
            "--neighbours",
            "5",
            "--quiet",
        ]);
        assert!(
            run.status.success(),
            "{}",
            String::from_utf8_lossy(&run.stderr)
        );
        let stdout = String::from_utf8_lossy(&run.stdout);
        assert!(
            stdout.contains(&format!("on {processes} process(es)")),
            "{stdout}"
        );
        let (users, items) = (factors(&out, "user_factors"), factors(&out, "item_factors"));
        assert_eq!(users.len(), train.n_users());
        assert_eq!(items.len(), train.n_items());
        let mut worst = 0f32;
        for (got, want) in [(&users, &single_users), (&items, &single_items)] {
            for (id, v) in got.iter() {
                assert_eq!(v.len(), f);
                for (a, b) in v.iter().zip(&want[id]) {
                    worst = worst.max((a - b).abs());
                }
            }
        }
        let (lists, ndcg, recall) = rank(&train, &test, &users, &items);
        let same = lists
            .iter()
            .zip(&single_lists)
            .filter(|(a, b)| a == b)
            .count();
        eprintln!(
            "{processes} processes: max |factor difference| {worst:e}; ndcg@10 {ndcg:.6} vs \
             {single_ndcg:.6}, recall@10 {recall:.6} vs {single_recall:.6}; {same}/{} lists identical",
            lists.len()
        );
        assert!(worst <= 1e-5, "factors differ by {worst}");
        assert!((ndcg - single_ndcg).abs() <= 1e-4 && (recall - single_recall).abs() <= 1e-4);
        assert!(
            same * 100 >= lists.len() * 99,
            "{same} of {} lists identical",
            lists.len()
        );
        batch_lists_match_the_single_node_kernel(&train, &users, &items, &out);
    }
}

/// The job's Parquet lists are exactly what the single-node batch kernel gives for its factors.
fn batch_lists_match_the_single_node_kernel(
    train: &TrainSet,
    users: &Factors,
    items: &Factors,
    out: &Path,
) {
    let by_index = |ids: &kindred_core::IdMap, factors: &Factors| -> Vec<f32> {
        (0..ids.len() as u32)
            .flat_map(|i| factors[ids.external(i)].clone())
            .collect()
    };
    let user_factors = by_index(train.data.user_ids(), users);
    let item_factors = by_index(train.data.item_ids(), items);
    let expected = single_node_top_k(
        16,
        &user_factors,
        &train.by_user,
        &item_factors,
        None,
        &BatchSettings {
            k: 10,
            neighbours: 5,
        },
        &FitContext::default(),
    )
    .unwrap();
    for (dir, lists, ids) in [
        ("topk", &expected.users, train.data.user_ids()),
        ("neighbours", &expected.neighbours, train.data.item_ids()),
    ] {
        let mut rows = Vec::new();
        for entry in std::fs::read_dir(out.join(dir)).unwrap() {
            rows.extend(read_lists(&entry.unwrap().path()).unwrap());
        }
        let mut got: HashMap<String, Vec<(String, f32)>> = HashMap::new();
        rows.sort_by_key(|r| (r.query.clone(), r.rank));
        for r in rows {
            got.entry(r.query).or_default().push((r.item, r.score));
        }
        assert_eq!(got.len(), lists.len(), "{dir}: one list per row");
        for (q, list) in lists.iter().enumerate() {
            let want: Vec<(String, f32)> = list
                .iter()
                .map(|s| (train.data.item_ids().external(s.item).to_owned(), s.score))
                .collect();
            let id = ids.external(q as u32);
            assert_eq!(got[id], want, "{dir} of {id}");
        }
    }
}

#[test]
fn killing_a_process_fails_loudly_and_a_restart_resumes_from_the_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let (_, shards) = write_shards(&synthetic(3000, 600), dir.path(), 4);
    let (shards, ck) = (shards.to_str().unwrap(), dir.path().join("ck"));
    let out = dir.path().join("out");
    let model = "als:factors=16,iterations=60";
    let args = |out: &Path| -> Vec<String> {
        [
            "cluster", "als", "--input", shards, "--model", model, "--out",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain([out.to_str().unwrap().to_owned()])
        .collect()
    };
    let mut job = Command::new(KINDRED)
        .args(args(&out))
        .args(["--checkpoint", ck.to_str().unwrap(), "--local", "3"])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(job.stderr.take().unwrap());
    // The children share this stderr, so the launcher's line may come after theirs.
    let mut line = String::new();
    while !line.contains("pids ") {
        line.clear();
        assert!(stderr.read_line(&mut line).unwrap() > 0, "no pids line");
    }
    let pids: Vec<u32> = line
        .split("pids ")
        .nth(1)
        .expect(&line)
        .split(')')
        .next()
        .expect(&line)
        .split(", ")
        .map(|p| p.parse().expect(&line))
        .collect();
    assert_eq!(pids.len(), 3, "{line}");
    let started = Instant::now();
    while !ck.join("iter-000003").exists() {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no checkpoint appeared"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let killed = Command::new("kill")
        .args(["-9", &pids[2].to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    let status = job.wait().unwrap();
    assert!(!status.success(), "the job must fail: {rest}");
    assert!(
        rest.contains("process 2 of 3 failed")
            && rest.contains("processes 0, 1 failed after it")
            && rest.contains("resume from the last checkpoint"),
        "{rest}"
    );
    assert!(
        !out.join("summary.json").exists(),
        "a failed job wrote no summary"
    );

    let resumed = Command::new(KINDRED)
        .args(args(&out))
        .args([
            "--checkpoint",
            ck.to_str().unwrap(),
            "--local",
            "3",
            "--quiet",
        ])
        .output()
        .unwrap();
    assert!(
        resumed.status.success(),
        "{}",
        String::from_utf8_lossy(&resumed.stderr)
    );
    let stdout = String::from_utf8_lossy(&resumed.stdout);
    let at: usize = stdout
        .split("after resuming at ")
        .nth(1)
        .and_then(|s| s.split(':').next())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or_else(|| panic!("no resume in {stdout}"));
    // The kill came once some worker had started iteration 3's checkpoint, so every worker
    // holds at least iteration 2 (parts are kept for two iterations).
    assert!((2..60).contains(&at), "resumed at {at}");

    let whole = dir.path().join("whole");
    let uninterrupted = Command::new(KINDRED)
        .args(args(&whole))
        .args(["--local", "3", "--quiet"])
        .output()
        .unwrap();
    assert!(uninterrupted.status.success());
    for side in ["user_factors", "item_factors"] {
        assert_eq!(
            factors(&out, side),
            factors(&whole, side),
            "{side}: resuming must give exactly the uninterrupted run's factors"
        );
    }
}

#[test]
fn published_factors_serve_the_lists_the_factors_give() {
    let dir = tempfile::tempdir().unwrap();
    let spec = "synthetic:users=600,items=200,seed=9,implicit=true";
    let store = dir.path().join("s.db");
    let (shards, out) = (dir.path().join("shards"), dir.path().join("out"));
    let kindred = |args: &[&str]| {
        let run = Command::new(KINDRED).args(args).output().unwrap();
        assert!(
            run.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&run.stderr)
        );
        String::from_utf8_lossy(&run.stdout).into_owned()
    };
    let path = |p: &Path| p.to_str().unwrap().to_owned();
    kindred(&["import", "--data", spec, "--store", &path(&store), "-q"]);
    kindred(&[
        "cluster",
        "shard",
        "--data",
        spec,
        "--out",
        &path(&shards),
        "--shards",
        "3",
        "-q",
    ]);
    kindred(&[
        "cluster",
        "als",
        "--input",
        &path(&shards),
        "--model",
        "als:factors=8,iterations=4",
        "--out",
        &path(&out),
        "--local",
        "2",
        "-q",
    ]);
    let published = kindred(&[
        "cluster",
        "publish",
        "--factors",
        &path(&out),
        "--store",
        &path(&store),
        "--activate",
    ]);
    assert!(published.contains("live now"), "{published}");
    let artifact = published
        .split("artifact ")
        .nth(1)
        .unwrap()
        .trim()
        .to_owned();

    // The served model ranks a user's unseen items by the job's factors.
    let (users, items) = (factors(&out, "user_factors"), factors(&out, "item_factors"));
    let log =
        generate(&SyntheticConfig::parse("users=600,items=200,seed=9,implicit=true").unwrap())
            .unwrap()
            .dataset
            .interactions;
    for user in ["u1", "u17", "u420"] {
        let u = log.user_ids().get(user).unwrap();
        let seen: HashSet<&str> = log
            .users()
            .iter()
            .zip(log.items())
            .filter(|(&x, _)| x == u)
            .map(|(_, &i)| log.item_ids().external(i))
            .collect();
        let mut scored: Vec<(f32, &str)> = items
            .iter()
            .filter(|(id, _)| !seen.contains(id.as_str()))
            .map(|(id, v)| (dot(&users[user], v), id.as_str()))
            .collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0));
        let expected: Vec<&str> = scored.iter().take(5).map(|s| s.1).collect();
        let served = kindred(&[
            "recommend",
            "--model",
            &artifact,
            "--user",
            user,
            "--k",
            "5",
            "--format",
            "csv",
        ]);
        let got: Vec<&str> = served
            .lines()
            .skip(1)
            .filter_map(|l| l.split(',').nth(1))
            .collect();
        assert_eq!(got, expected, "{user}");
    }
}

#[test]
fn a_failing_process_stops_its_peers_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let (_, shards) = write_shards(&synthetic(400, 100), dir.path(), 2);
    // Process 1 (of 2, one worker each) reads shard 1.
    let broken = shards.join("shard-00001.parquet");
    std::fs::write(&broken, b"not parquet").unwrap();
    let ports: Vec<u16> = (0..2)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
        .collect::<Vec<_>>()
        .iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect();
    let hosts = dir.path().join("hosts.txt");
    std::fs::write(
        &hosts,
        format!("127.0.0.1:{}\n127.0.0.1:{}\n", ports[0], ports[1]),
    )
    .unwrap();
    let started = Instant::now();
    let children: Vec<_> = (0..2)
        .map(|i| {
            Command::new(KINDRED)
                .args(["cluster", "als", "--input", shards.to_str().unwrap()])
                .args(["--out", dir.path().join("out").to_str().unwrap()])
                .args([
                    "--hosts",
                    hosts.to_str().unwrap(),
                    "--process",
                    &i.to_string(),
                ])
                .arg("--quiet")
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outputs: Vec<_> = children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect();
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "the job must not hang"
    );
    let stderr: Vec<String> = outputs
        .iter()
        .map(|o| String::from_utf8_lossy(&o.stderr).into_owned())
        .collect();
    assert!(outputs.iter().all(|o| !o.status.success()), "{stderr:?}");
    assert!(
        stderr[1].contains("shard-00001.parquet")
            && stderr[1].contains("not a readable Parquet file"),
        "{}",
        stderr[1]
    );
    assert!(
        stderr[0].contains("process 0: a peer process failed"),
        "{}",
        stderr[0]
    );
}
