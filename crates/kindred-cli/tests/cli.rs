//! The `kindred` binary end to end on generated data: every subcommand, the JSON result form,
//! the CSV recommendation form, `eval --rank` with the shipped example configs, and clear errors
//! on bad input.

use kindred_testkit::TestDir;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const DATA: &str = "synthetic:users=300,items=150,seed=5";

fn kindred(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kindred"))
        .args(args)
        .arg("--quiet")
        .output()
        .expect("run kindred")
}

fn ok(args: &[&str]) -> String {
    let out = kindred(args);
    assert!(
        out.status.success(),
        "kindred {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn temp_dir(name: &str) -> TestDir {
    TestDir::new(&format!("cli-{name}"))
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn eval_writes_the_documented_json_and_exports_lists() {
    let dir = temp_dir("eval");
    let json = dir.join("r.json");
    let recs = dir.join("recs.csv");
    let table = ok(&[
        "eval",
        "--data",
        DATA,
        "--protocol",
        "temporal:0.2,positive>=4",
        "--model",
        "popularity",
        "--json",
        s(&json),
        "--export-recs",
        s(&recs),
    ]);
    assert!(
        table.contains("ndcg@10") && table.contains("popularity"),
        "{table}"
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(report["protocol"], "temporal:0.2,positive>=4");
    let result = &report["results"][0];
    assert_eq!(result["model"], "popularity");
    for key in [
        "ndcg@10",
        "precision@10",
        "recall@10",
        "map@10",
        "mrr@10",
        "hit@10",
        "auc",
        "coverage@10",
    ] {
        assert!(result["metrics"][key].is_f64(), "missing {key}");
    }
    assert!(result["fit_seconds"].is_f64() && result["per_fold"].is_array());
    assert!(
        report["dataset"]["interactions"].is_u64() && report["versions"]["kindred"].is_string()
    );
    let csv = std::fs::read_to_string(&recs).unwrap();
    assert!(csv.starts_with("user,item,rank,score\n"));
    let rating = ok(&[
        "eval",
        "--data",
        DATA,
        "--protocol",
        "kfold:3",
        "--model",
        "baseline",
        "--model",
        "movielens-rating",
    ]);
    assert!(rating.contains("rmse"), "{rating}");
}

#[test]
fn train_recommend_predict_roundtrip() {
    let dir = temp_dir("train");
    let model = dir.join("model");
    ok(&[
        "train",
        "--data",
        DATA,
        "--model",
        "baseline",
        "--out",
        s(&model),
    ]);
    assert!(model.join("manifest.json").is_file() && model.join("model.safetensors").is_file());
    let csv = ok(&[
        "recommend",
        "--model",
        s(&model),
        "--user",
        "u1",
        "--user",
        "nobody",
        "--k",
        "5",
    ]);
    let lines: Vec<&str> = csv.lines().collect();
    // The synthetic catalog has titles, which train keeps and recommend shows.
    assert_eq!(lines[0], "user,item,rank,score,title");
    assert_eq!(
        lines.len(),
        11,
        "five for the known user, five fallbacks for the unknown one: {csv}"
    );
    assert!(lines[1].starts_with("u1,") && lines[6].starts_with("nobody,"));
    let jsonl = ok(&[
        "recommend",
        "--model",
        s(&model),
        "--all-users",
        "--format",
        "jsonl",
        "--k",
        "3",
    ]);
    let first: serde_json::Value = serde_json::from_str(jsonl.lines().next().unwrap()).unwrap();
    assert_eq!(first["items"].as_array().unwrap().len(), 3);
    let pairs = dir.join("pairs.csv");
    std::fs::write(&pairs, "user,item\nu1,i1\nstranger,i2\n").unwrap();
    let predictions = ok(&["predict", "--model", s(&model), "--pairs", s(&pairs)]);
    let rows: Vec<&str> = predictions.lines().collect();
    assert_eq!(rows[0], "user,item,prediction,known");
    assert!(
        rows[1].starts_with("u1,i1,") && rows[1].ends_with(",true"),
        "{predictions}"
    );
    assert!(rows[2].ends_with(",false"));
}

#[test]
fn stats_models_and_quickstart_run() {
    let stats = ok(&["stats", "--data", DATA]);
    assert!(!stats.is_empty());
    let models = ok(&["models"]);
    assert!(models.contains("baseline") && models.contains("movielens-ranking"));
    let dir = temp_dir("quickstart");
    let out = ok(&[
        "quickstart",
        "--data",
        DATA,
        "--dir",
        s(&dir),
        "--folds",
        "2",
        "--budget",
        "2",
        "--listen",
        "127.0.0.1:0",
        "--check",
    ]);
    assert!(out.contains("rmse") && out.contains("ndcg@10"), "{out}");
    // The served examples were printed as curl commands and each answered 2xx.
    assert!(out.contains("curl -s 'http://127.0.0.1:"), "{out}");
    assert!(out.contains("all 8 example requests answered 2xx"), "{out}");
    // The served version is what `auto` chose, and the quick start says what that was.
    assert!(out.contains("auto chose "), "{out}");
    assert!(out.contains("\"source\":\"model:"), "{out}");
    assert!(dir.join("kindred.db").is_file());
    let report = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert!(report.contains("<svg") && report.contains("ndcg@10"));
    assert!(dir.join("rating.json").is_file() && dir.join("ranking.json").is_file());
}

#[test]
fn train_auto_says_what_it_chose_and_records_the_trace() {
    let dir = temp_dir("train-auto");
    let out = ok(&[
        "train",
        "--data",
        DATA,
        "--positive",
        "4",
        "--model",
        "auto:budget=3,families=popularity+itemknn+als",
        "--out",
        s(&dir.join("model")),
    ]);
    assert!(out.contains("auto chose "), "{out}");
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("model/manifest.json")).unwrap())
            .unwrap();
    let selection = &manifest["selection"];
    assert_eq!(selection["validation"], "temporal:0.2");
    assert_eq!(selection["chosen_family"], manifest["algorithm"]);
    assert!(selection["trials"]
        .as_array()
        .is_some_and(|t| !t.is_empty()));
    // The old preset names explain what they became.
    let out = kindred(&[
        "eval",
        "--data",
        DATA,
        "--protocol",
        "temporal:0.2",
        "--model",
        "ranking-best",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("movielens-ranking") && err.contains("auto"),
        "{err}"
    );
}

#[test]
fn bad_input_names_file_line_and_field() {
    let dir = temp_dir("bad");
    let csv = dir.join("ratings.csv");
    std::fs::write(&csv, "user,item,rating\nu1,i1,4\nu2,i2,lots\n").unwrap();
    let out = kindred(&[
        "eval",
        "--data",
        &format!("csv:{}", s(&csv)),
        "--protocol",
        "kfold:2",
        "--model",
        "baseline",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("ratings.csv") && err.contains(":3") && err.contains("rating"),
        "{err}"
    );
    let out = kindred(&[
        "eval",
        "--data",
        DATA,
        "--protocol",
        "sideways",
        "--model",
        "baseline",
    ]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown protocol"));
    let out = kindred(&[
        "eval",
        "--data",
        DATA,
        "--protocol",
        "kfold:2",
        "--model",
        "nosuchmodel",
    ]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown model"));
    let out = kindred(&[
        "recommend",
        "--model",
        s(&dir.join("missing")),
        "--all-users",
    ]);
    assert!(
        !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("manifest.json")
    );
}

#[test]
fn timestamps_outside_the_range_are_refused_or_skipped_and_counted() {
    let dir = temp_dir("range");
    let csv = dir.join("events.csv");
    std::fs::write(
        &csv,
        "user,item,rating,timestamp\nu1,i1,4,1700000000\nu2,i1,5,1700000000123\nu2,i2,3,1700000100\n",
    )
    .unwrap();
    let data = format!("csv:{}", s(&csv));
    let out = kindred(&["stats", "--data", &data]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("events.csv:3") && err.contains("milliseconds"),
        "{err}"
    );
    // Not quiet: the import report (skips by kind) is progress output.
    let out = Command::new(env!("CARGO_BIN_EXE_kindred"))
        .args(["stats", "--data", &data, "--skip-invalid"])
        .output()
        .expect("run kindred");
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("timestamp out of range: 1"), "{err}");
    // A range that takes milliseconds-sized values imports every row.
    let out = kindred(&["stats", "--data", &data, "--timestamps", "0..9999999999999"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = kindred(&["stats", "--data", &data, "--timestamps", "10..5"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("above max"));
}

#[test]
fn split_writes_the_folds_eval_uses() {
    let dir = temp_dir("split");
    ok(&[
        "split",
        "--data",
        DATA,
        "--protocol",
        "kfold:3",
        "--out",
        s(&dir),
    ]);
    let mut total_test = 0;
    for f in 0..3 {
        let train = std::fs::read_to_string(dir.join(format!("fold{f}.train.csv"))).unwrap();
        let test = std::fs::read_to_string(dir.join(format!("fold{f}.test.csv"))).unwrap();
        assert!(train.starts_with("user,item,rating,weight,event,timestamp\n"));
        total_test += test.lines().count() - 1;
        assert!(train.lines().count() > test.lines().count());
    }
    let stats = ok(&[
        "eval",
        "--data",
        DATA,
        "--protocol",
        "kfold:3",
        "--model",
        "baseline",
        "--json",
        s(&dir.join("r.json")),
    ]);
    assert!(stats.contains("rmse"));
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("r.json")).unwrap()).unwrap();
    assert_eq!(
        report["dataset"]["protocol_interactions"].as_u64().unwrap() as usize,
        total_test
    );
}

#[test]
fn split_writes_the_catalog_and_cold_start_candidates() {
    let dir = temp_dir("split-cold");
    ok(&[
        "split",
        "--data",
        DATA,
        "--protocol",
        "coldstart-items:0.1,positive>=4",
        "--out",
        s(&dir),
    ]);
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap();
    let items_of = |text: &str, col: usize| -> std::collections::BTreeSet<String> {
        text.lines()
            .skip(1)
            .map(|l| l.split(',').nth(col).unwrap().to_owned())
            .collect()
    };
    let catalog = read("catalog.csv");
    assert!(catalog.starts_with("item,features\n"), "{catalog}");
    // The catalog is every item of the log before positive>= filtering: 150 synthetic items.
    assert_eq!(catalog.lines().count() - 1, 150);
    let candidates = items_of(&read("fold0.candidates.csv"), 0);
    assert_eq!(candidates.len(), 15);
    assert!(candidates.is_subset(&items_of(&catalog, 0)));
    // Every test row is on a held-out item, and the held-out items are never in training.
    assert_eq!(items_of(&read("fold0.test.csv"), 1), candidates);
    assert!(items_of(&read("fold0.train.csv"), 1).is_disjoint(&candidates));
}

#[test]
fn csv_data_with_item_features_file() {
    let dir = temp_dir("features");
    let csv = dir.join("events.csv");
    let mut rows = String::from("uid,pid,stars,ts\n");
    for u in 0..40 {
        for i in 0..12 {
            if (u + i) % 3 != 0 {
                rows.push_str(&format!(
                    "user{u},p{i},{},{}\n",
                    1 + (u * i) % 5,
                    1000 + u * 20 + i
                ));
            }
        }
    }
    std::fs::write(&csv, rows).unwrap();
    let features = dir.join("items.jsonl");
    let lines: Vec<String> = (0..12)
        .map(|i| {
            format!(
                r#"{{"id": "p{i}", "genres": ["g{}", "g{}"], "price": {i}.5}}"#,
                i % 3,
                i % 4
            )
        })
        .collect();
    std::fs::write(&features, lines.join("\n")).unwrap();
    let out = ok(&[
        "eval",
        "--data",
        &format!("csv:{}", s(&csv)),
        "--columns",
        "user=uid,item=pid,rating=stars,timestamp=ts",
        "--item-features",
        s(&features),
        "--protocol",
        "temporal:0.2",
        "--model",
        "popularity",
        "--k",
        "3",
    ]);
    assert!(out.contains("diversity@3"), "{out}");
}

fn examples() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/rank")
}

fn eval_with_rank(config: &str, json: Option<&str>) -> Output {
    let mut args = vec![
        "eval",
        "--data",
        DATA,
        "--protocol",
        "temporal:0.2,positive>=4",
        "--model",
        "itemknn",
        "--bootstrap",
        "0",
        "--rank",
        config,
    ];
    if let Some(path) = json {
        args.extend(["--json", path]);
    }
    kindred(&args)
}

#[test]
fn example_configs_run_and_are_recorded() {
    let dir = temp_dir("rank-examples");
    let mut n = 0;
    for entry in std::fs::read_dir(examples()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("toml") {
            continue;
        }
        n += 1;
        let json = dir.join("r.json");
        let out = eval_with_rank(path.to_str().unwrap(), json.to_str());
        assert!(
            out.status.success(),
            "{}: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let table = String::from_utf8_lossy(&out.stdout);
        assert!(table.contains("lists re-ranked with {"), "{table}");
        let report: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
        assert!(report["rank"]["candidates"].as_u64().is_some(), "{report}");
        assert!(report["results"][0]["metrics"]["coverage@10"].is_number());
        let shares = report["results"][0]["rank_sources"].as_object().unwrap();
        let total: f64 = shares.values().filter_map(|v| v.as_f64()).sum();
        assert!((total - 1.0).abs() < 1e-9, "{report}");
    }
    assert!(n >= 1, "no example rank configs found");
}

#[test]
fn rules_that_remove_everything_relax_and_say_so() {
    // Only comedies from 2020 on: no synthetic item is that recent (years 1950-2024 drawn at
    // random, few after 2020), so lists relax the date window first and record it.
    let dir = temp_dir("rank-relax");
    let config = dir.join("strict.toml");
    std::fs::write(
        &config,
        "category_column = \"genres\"\n[filters]\ninclude_categories = [\"Comedy\"]\ndate_column = \"year\"\ndate_unit = \"year\"\ndate_after = 2020\n[fallback]\nsegment_column = \"age_group\"\n",
    )
    .unwrap();
    let json = dir.join("r.json");
    let out = eval_with_rank(config.to_str().unwrap(), json.to_str());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("listed items by source: "), "{table}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let shares = report["results"][0]["rank_sources"].as_object().unwrap();
    assert!(shares.contains_key("model:itemknn"), "{shares:?}");
    assert!(
        shares.keys().any(|k| k.starts_with("relaxed:date_window:")),
        "{shares:?}"
    );
    // A column the catalog lacks is an error naming the columns it has.
    std::fs::write(&config, "[filters]\nhide_column = \"hidden\"\n").unwrap();
    let out = eval_with_rank(config.to_str().unwrap(), None);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("filters.hide_column `hidden`") && err.contains("genres, year, title"),
        "{err}"
    );
}

#[test]
fn bad_rank_config_names_file_line_and_key() {
    let dir = temp_dir("rank-bad");
    let config = dir.join("typo.toml");
    std::fs::write(
        &config,
        "candidates = 100\n\n[diversity]\nmmr_lamda = 0.4\n",
    )
    .unwrap();
    let out = eval_with_rank(config.to_str().unwrap(), None);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("typo.toml:4") && err.contains("diversity.mmr_lamda"),
        "{err}"
    );
    let range = dir.join("range.toml");
    std::fs::write(&range, "[calibration]\nweight = 2\n").unwrap();
    let out = eval_with_rank(range.to_str().unwrap(), None);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("range.toml:2") && err.contains("calibration.weight"),
        "{err}"
    );
    let out = eval_with_rank(dir.join("missing.toml").to_str().unwrap(), None);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.toml"));
}

/// The `similar` lines of a JSON Lines output: (entity, [(neighbour, score)]).
fn similar_lines(text: &str, key: &str) -> Vec<(String, Vec<(String, f64)>)> {
    text.lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let list = v["similar"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| {
                    (
                        s[key].as_str().unwrap().to_owned(),
                        s["score"].as_f64().unwrap(),
                    )
                })
                .collect();
            (v[key].as_str().unwrap().to_owned(), list)
        })
        .collect()
}

#[test]
fn similar_items_and_users_by_embeddings_cooccurrence_and_features() {
    let dir = temp_dir("similar");
    let model = dir.join("model");
    ok(&[
        "train",
        "--data",
        DATA,
        "--model",
        "als:factors=8",
        "--out",
        s(&model),
    ]);
    // One item by embeddings: k neighbours, itself excluded, best first.
    let out = ok(&[
        "similar",
        "--model",
        s(&model),
        "--items",
        "--id",
        "i1",
        "--k",
        "5",
    ]);
    let lines = similar_lines(&out, "item");
    assert_eq!(lines.len(), 1);
    let (item, list) = &lines[0];
    assert_eq!(item, "i1");
    assert_eq!(list.len(), 5);
    assert!(list.iter().all(|(other, _)| other != "i1"));
    assert!(list.windows(2).all(|w| w[0].1 >= w[1].1), "{list:?}");
    // Exact and HNSW agree on this small catalog. One thread: a parallel HNSW build depends on
    // how insertions interleave (hnsw.rs, "Concurrency and determinism"), one thread's does not.
    let hnsw = ok(&[
        "--threads",
        "1",
        "similar",
        "--model",
        s(&model),
        "--items",
        "--id",
        "i1",
        "--k",
        "5",
        "--index",
        "hnsw",
    ]);
    let hnsw_items: Vec<String> = similar_lines(&hnsw, "item")[0]
        .1
        .iter()
        .map(|x| x.0.clone())
        .collect();
    let exact_items: Vec<String> = list.iter().map(|x| x.0.clone()).collect();
    assert_eq!(hnsw_items, exact_items);
    // Neighbour lists for every user, written to a file.
    let file = dir.join("users.jsonl");
    ok(&[
        "similar",
        "--model",
        s(&model),
        "--users",
        "--k",
        "3",
        "--index",
        "hnsw",
        "--out",
        s(&file),
    ]);
    let users = similar_lines(&std::fs::read_to_string(&file).unwrap(), "user");
    assert!(users.len() > 250, "{}", users.len());
    assert!(users
        .iter()
        .all(|(u, l)| l.len() == 3 && l.iter().all(|x| &x.0 != u)));
    // Co-occurrence in the data, for users and items.
    let out = ok(&[
        "similar",
        "--items",
        "--method",
        "cooccurrence",
        "--data",
        DATA,
        "--id",
        "i1",
        "--id",
        "i2",
        "--k",
        "4",
    ]);
    let lines = similar_lines(&out, "item");
    assert_eq!(lines.len(), 2);
    assert!(lines
        .iter()
        .all(|(i, l)| l.len() == 4 && l.iter().all(|x| &x.0 != i && x.1 > 0.0)));
    ok(&[
        "similar",
        "--users",
        "--method",
        "cooccurrence",
        "--data",
        DATA,
        "--id",
        "u1",
    ]);
    // Errors name what is wrong.
    let err = kindred(&["similar", "--model", s(&model), "--items", "--id", "nope"]);
    assert!(!err.status.success());
    assert!(String::from_utf8_lossy(&err.stderr).contains("nope"));
    let err = kindred(&["similar", "--items", "--method", "cooccurrence"]);
    assert!(String::from_utf8_lossy(&err.stderr).contains("--data"));
    let err = kindred(&["similar", "--model", s(&model), "--items", "--users"]);
    assert!(!err.status.success());
}

#[test]
fn similar_users_by_shared_features() {
    let dir = temp_dir("similar-user-features");
    let csv = dir.join("events.csv");
    std::fs::write(&csv, "user,item\na,x\nb,x\nc,y\nd,y\n").unwrap();
    let features = dir.join("users.jsonl");
    // a {f, 25-34}; b {f, 35-44}: 1/3; c {m, 25-34}: 1/3; d {f, 25-34}: 1. Ties by table order.
    std::fs::write(
        &features,
        [
            r#"{"id": "a", "gender": ["f"], "age": ["25-34"]}"#,
            r#"{"id": "b", "gender": ["f"], "age": ["35-44"]}"#,
            r#"{"id": "c", "gender": ["m"], "age": ["25-34"]}"#,
            r#"{"id": "d", "gender": ["f"], "age": ["25-34"]}"#,
        ]
        .join("\n"),
    )
    .unwrap();
    let out = ok(&[
        "similar",
        "--users",
        "--method",
        "features",
        "--data",
        &format!("csv:{}", s(&csv)),
        "--user-features",
        s(&features),
        "--id",
        "a",
        "--k",
        "3",
    ]);
    let lines = similar_lines(&out, "user");
    let third = 1.0 / 3.0;
    assert_eq!(lines[0].0, "a");
    let got: Vec<(String, f64)> = lines[0].1.clone();
    assert_eq!(got.len(), 3, "{got:?}");
    assert_eq!(got[0].0, "d");
    assert!((got[0].1 - 1.0).abs() < 1e-6, "{got:?}");
    assert_eq!((got[1].0.as_str(), got[2].0.as_str()), ("b", "c"));
    assert!((got[1].1 - third).abs() < 1e-6 && (got[2].1 - third).abs() < 1e-6);
}

#[test]
fn similar_items_by_shared_features() {
    let dir = temp_dir("similar-features");
    let csv = dir.join("events.csv");
    let mut rows = String::from("user,item\n");
    for u in 0..10 {
        for i in 0..12 {
            if (u + i) % 2 == 0 {
                rows.push_str(&format!("user{u},p{i}\n"));
            }
        }
    }
    std::fs::write(&csv, rows).unwrap();
    let features = dir.join("items.jsonl");
    // p0 has {g0}; p3 {g0,g3}, p4 {g1,g0}, p6 {g0,g2}, p8 {g2,g0}, p9 {g0,g1}: Jaccard 1/2 each,
    // ties broken by the lower index (feature-table order p0..p11): p3, p4, p6.
    let lines: Vec<String> = (0..12)
        .map(|i| {
            format!(
                r#"{{"id": "p{i}", "genres": ["g{}", "g{}"]}}"#,
                i % 3,
                i % 4
            )
        })
        .collect();
    std::fs::write(&features, lines.join("\n")).unwrap();
    let out = ok(&[
        "similar",
        "--items",
        "--method",
        "features",
        "--data",
        &format!("csv:{}", s(&csv)),
        "--item-features",
        s(&features),
        "--id",
        "p0",
        "--k",
        "3",
    ]);
    let lines = similar_lines(&out, "item");
    assert_eq!(
        lines[0].1,
        vec![
            ("p3".to_owned(), 0.5),
            ("p4".to_owned(), 0.5),
            ("p6".to_owned(), 0.5)
        ]
    );
}

#[test]
fn monitor_reports_drift_quality_and_alerts() {
    let dir = temp_dir("monitor");
    let json = dir.join("monitor.json");
    let out = ok(&["monitor", "--data", DATA, "--json", s(&json)]);
    assert!(
        out.contains("item_popularity") && out.contains("alerts:"),
        "{out}"
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let names: Vec<&str> = report["drift"]["distributions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert!(
        names.starts_with(&["item_popularity", "user_activity", "event_type"]),
        "{names:?}"
    );
    assert!(report["current_quality"]["events"].as_u64().is_some());
    assert!(report["alerts"].is_array());
    let bad = kindred(&["monitor", "--data", DATA, "--window-days", "0"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--window-days"));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `kindred train --data ... --pipeline` and `kindred import` + `kindred train --store ...
/// --pipeline` with the same config and seed give the same model, byte for byte. (A CSV, whose
/// ids are numbered in first-seen order both ways; the synthetic generator numbers every id up
/// front, which a store cannot know, and ALS starts from per-index random factors.)
#[test]
fn train_on_a_store_cleans_as_train_on_the_file_does() {
    let dir = temp_dir("train-parity");
    let csv = dir.join("ratings.csv");
    let mut rows = String::from("user,item,rating,timestamp\n");
    let mut state = 7u64;
    for row in 0..4_000u64 {
        // A small LCG: any fixed pseudo-random log will do.
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let (user, item) = ((state >> 33) % 120, (state >> 17) % 90 * (state >> 60) / 8);
        let rating = 1 + (state >> 40) % 5;
        rows.push_str(&format!(
            "u{user},i{item},{rating},{}\n",
            1_600_000_000 + row * 600
        ));
        if row % 97 == 0 {
            // An exact duplicate for the pipeline's dedup step.
            rows.push_str(&format!(
                "u{user},i{item},{rating},{}\n",
                1_600_000_000 + row * 600
            ));
        }
    }
    std::fs::write(&csv, rows).unwrap();
    let data = format!("csv:{}", s(&csv));
    let pipeline = dir.join("clean.toml");
    std::fs::write(
        &pipeline,
        "[dedup]\nexact = true\n[min_counts]\nkcore = 5\n[recency]\nhalf_life_days = 30\n",
    )
    .unwrap();
    let file_model = dir.join("file-model");
    let model = "als:factors=8,iterations=3";
    let common = ["--model", model, "--seed", "3", "--positive", "3"];
    let cleaned = [&common[..], &["--pipeline", s(&pipeline)]].concat();
    let out = ok(&[
        &["train", "--data", &data, "--out", s(&file_model)],
        &cleaned[..],
    ]
    .concat());
    assert!(out.contains("trained als"), "{out}");
    let store = dir.join("store.db");
    ok(&["import", "--data", &data, "--store", s(&store)]);
    let artifact_of = |out: &str| {
        let path = out
            .split("artifact ")
            .nth(1)
            .and_then(|rest| rest.split(';').next())
            .unwrap_or_else(|| panic!("no artifact in {out}"));
        PathBuf::from(path)
    };
    let tensors = |dir: &Path| std::fs::read(dir.join("model.safetensors")).unwrap();
    let train_in_store = |args: &[&str]| {
        let base = ["train", "--store", s(&store), "--no-offline-eval"];
        artifact_of(&ok(&[&base[..], args].concat()))
    };
    assert!(
        tensors(&train_in_store(&cleaned)) == tensors(&file_model),
        "the store-trained model differs from the file-trained one"
    );
    // Without the pipeline the store path trains on other rows, so the check above can fail.
    assert!(tensors(&train_in_store(&common)) != tensors(&file_model));
    let manifest = std::fs::read_to_string(file_model.join("manifest.json")).unwrap();
    assert!(
        manifest.contains("\"kcore\": 5")
            && manifest.contains("\"fingerprint\"")
            && manifest.contains("\"code_version\": \"0."),
        "{manifest}"
    );
}

#[test]
fn eval_compares_on_extra_metrics_when_asked() {
    let args = |extra: &[&'static str]| {
        let mut args = vec![
            "eval",
            "--data",
            DATA,
            "--protocol",
            "temporal:0.2,positive>=4",
            "--model",
            "popularity",
            "--model",
            "itemknn",
            "--bootstrap",
            "200",
        ];
        args.extend_from_slice(extra);
        args
    };
    let out = ok(&args(&[
        "--compare-on",
        "recall@10",
        "--compare-on",
        "ndcg@10",
    ]));
    let lines: Vec<&str> = out
        .lines()
        .filter(|l| l.contains(" vs popularity: "))
        .collect();
    assert_eq!(lines.len(), 2, "ndcg@10 once, recall@10 once: {out}");
    assert!(lines.iter().any(|l| l.contains(": recall@10 ")), "{out}");
    let bad = kindred(&args(&["--compare-on", "recall@5"]));
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("no metric `recall@5`"), "{err}");
}
