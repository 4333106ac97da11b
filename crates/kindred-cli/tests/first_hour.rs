//! A newcomer's first hour, one test per stumble a fresh user met following README.md: every
//! written file is named, an OS error is said once, a closed pipe is a normal exit, no colour
//! codes off a terminal, specs and flags are checked before the data loads (with "did you
//! mean"), `serve` refuses a missing store and says when it stops, no `-wal`/`-shm` files are
//! left, summaries are sentences, titles stand beside ids, and counts are in good English.

mod common;

use std::io::BufRead;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use common::{assert_clean, fails, get, ok, s, serving_address, stderr, stdout, stop, train, DATA};

#[test]
fn export_recs_for_several_models_names_every_file_written() {
    let dir = tempfile::tempdir().unwrap();
    let recs = dir.path().join("recs.csv");
    let out = ok(&[
        "eval",
        "--data",
        DATA,
        "--protocol",
        "temporal:0.2",
        "--model",
        "popularity",
        "--model",
        "itemknn",
        "--export-recs",
        s(&recs),
        "--bootstrap",
        "0",
    ]);
    let said = stderr(&out);
    for (index, name) in [(0, "popularity"), (1, "itemknn")] {
        let file = dir.path().join(format!("recs.{index}-{name}.csv"));
        assert!(file.is_file(), "{} missing", file.display());
        assert!(
            said.contains(&format!("of {name} to {}", file.display())),
            "{} not named in: {said}",
            file.display()
        );
    }
    assert!(!recs.exists(), "with two models each gets its own file");
    assert_clean(&said);
}

#[test]
fn a_missing_file_says_its_os_error_once() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing");
    let missing = s(&missing);
    let cases: Vec<Vec<String>> = vec![
        vec![
            "stats".into(),
            "--data".into(),
            format!("csv:{missing}.csv"),
        ],
        vec![
            "stats".into(),
            "--data".into(),
            DATA.into(),
            "--pipeline".into(),
            format!("{missing}.toml"),
        ],
        vec![
            "report".into(),
            format!("{missing}.json"),
            "--out".into(),
            format!("{missing}.html"),
        ],
        vec![
            "predict".into(),
            "--model".into(),
            missing.into(),
            "--pairs".into(),
            "p.csv".into(),
        ],
    ];
    for args in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let err = fails(&args);
        assert!(err.contains(missing), "{args:?}: {err}");
        assert_eq!(
            err.matches("No such file or directory").count(),
            1,
            "{args:?}: {err}"
        );
        assert_clean(&err);
    }
    // A port in use: the bind error is said once too.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().to_string();
    let store = dir.path().join("s.db");
    let err = fails(&[
        "serve",
        "--store",
        s(&store),
        "--allow-empty",
        "--listen",
        &port,
    ]);
    assert_eq!(err.matches("Address already in use").count(), 1, "{err}");
    assert_clean(&err);
}

#[test]
fn a_closed_pipe_ends_the_command_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let model = train(dir.path(), "popularity");
    for args in [
        vec!["models", "--json"],
        vec![
            "recommend",
            "--model",
            s(&model),
            "--all-users",
            "--k",
            "50",
        ],
    ] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_kindred"))
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // The reader goes away at once, as `| head -1` does after its line.
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {:?} {}",
            out.status,
            stderr(&out)
        );
        assert!(out.stderr.is_empty(), "{args:?}: {}", stderr(&out));
    }
}

#[test]
fn specs_and_flags_are_checked_before_the_data_loads_with_suggestions() {
    // The data file does not exist: an error about the model proves it was checked first.
    let err = fails(&[
        "eval",
        "--data",
        "csv:/nonexistent/ratings.csv",
        "--protocol",
        "kfold:5",
        "--model",
        "eaes",
    ]);
    assert!(
        err.contains("unknown model `eaes` (did you mean `ease`?)") && !err.contains("ratings.csv"),
        "{err}"
    );
    let err = fails(&[
        "train",
        "--data",
        "csv:/nonexistent/ratings.csv",
        "--model",
        "atuo:budget=5",
        "--out",
        "/tmp/never",
    ]);
    assert!(err.contains("(did you mean `auto`?)"), "{err}");
    let err = fails(&[
        "tune",
        "--data",
        "csv:/nonexistent/ratings.csv",
        "--protocol",
        "temporal:0.2",
        "--model",
        "alss",
    ]);
    assert!(err.contains("(did you mean `als`?)"), "{err}");
    let err = fails(&[
        "eval",
        "--data",
        DATA,
        "--protocol",
        "temporal:0.2,positive=>4",
        "--model",
        "als",
    ]);
    assert!(
        err.contains("(did you mean `positive>=4`?)") && err.contains("options are positive>=4"),
        "{err}"
    );
    let err = fails(&[
        "eval",
        "--data",
        DATA,
        "--protocol",
        "temporal:0.2",
        "--model",
        "als",
        "--k",
        "-5",
    ]);
    assert!(err.contains("must be at least 1 (got -5)"), "{err}");
    let err = fails(&[
        "eval",
        "--data",
        "movielen:/data/ml-1m",
        "--protocol",
        "temporal:0.2",
        "--model",
        "als",
    ]);
    assert!(
        err.contains("unknown kind `movielen:` (did you mean `movielens`?)"),
        "{err}"
    );
    let dir = tempfile::tempdir().unwrap();
    let pipeline = dir.path().join("clean.toml");
    std::fs::write(&pipeline, "not = [toml\n").unwrap();
    let err = fails(&[
        "stats",
        "--data",
        "csv:/nonexistent/ratings.csv",
        "--pipeline",
        s(&pipeline),
    ]);
    assert!(
        err.contains("clean.toml") && !err.contains("ratings.csv"),
        "the pipeline is read before the data: {err}"
    );
}

#[test]
fn serve_refuses_a_missing_store_and_says_when_it_stops() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("typo.db");
    let err = fails(&["serve", "--store", s(&store), "--listen", "127.0.0.1:0"]);
    assert!(
        err.contains("does not exist")
            && err.contains("kindred import")
            && err.contains("--allow-empty"),
        "{err}"
    );
    assert!(!store.exists(), "the refused store was created");

    // Allowed: it starts, warns on its log (without colour: stderr is not a terminal), reports
    // ready without a model, and stops with a line and no WAL files.
    let mut child = Command::new(env!("CARGO_BIN_EXE_kindred"))
        .args([
            "serve",
            "--store",
            s(&store),
            "--allow-empty",
            "--listen",
            "127.0.0.1:0",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (addr, rest) = serving_address(&mut child);
    assert_eq!(get(addr, "/health/ready").0, 200);
    let status = stop(&mut child);
    assert!(status.success(), "{status:?}");
    let said: String = rest
        .lines()
        .map_while(Result::ok)
        .collect::<Vec<_>>()
        .join("\n");
    assert!(said.contains("kindred stopped; store"), "{said}");
    let mut log = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut log).unwrap();
    assert!(
        log.contains("holds no feedback") && log.contains("no model version is live"),
        "{log}"
    );
    assert_clean(&log);
    for suffix in ["-wal", "-shm"] {
        let file = PathBuf::from(format!("{}{suffix}", store.display()));
        assert!(!file.exists(), "{} left behind", file.display());
    }

    // Without --allow-empty on the (now existing, model-less) store: not ready.
    let mut child = Command::new(env!("CARGO_BIN_EXE_kindred"))
        .args(["serve", "--store", s(&store), "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (addr, _rest) = serving_address(&mut child);
    assert_eq!(get(addr, "/health/ready").0, 503);
    assert!(stop(&mut child).success());
}

#[test]
fn quickstart_check_says_it_stops_and_leaves_no_wal_files() {
    let dir = tempfile::tempdir().unwrap();
    let out = ok(&[
        "quickstart",
        "--data",
        "synthetic:users=150,items=80,seed=3",
        "--dir",
        s(dir.path()),
        "--folds",
        "0",
        "--budget",
        "2",
        "--listen",
        "127.0.0.1:0",
        "--check",
        "--quiet",
    ]);
    let said = stdout(&out);
    assert!(
        !said.contains("Ctrl-C") && said.contains("--check runs these examples, then stops"),
        "{said}"
    );
    assert!(said.contains("== server stopped; store"), "{said}");
    assert_clean(&said);
    assert_clean(&stderr(&out));
    let left: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with("-wal") || name.ends_with("-shm"))
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn train_in_a_store_summarises_in_words() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("k.db");
    ok(&["import", "--data", DATA, "--store", s(&store), "--quiet"]);
    let out = ok(&[
        "train",
        "--store",
        s(&store),
        "--model",
        "als:factors=8,iterations=3",
        "--quiet",
    ]);
    let said = stdout(&out);
    assert!(!said.contains('{'), "a raw JSON blob: {said}");
    assert!(said.contains("interactions (300 users, "), "{said}");
    assert!(
        said.contains("learning curve: none (als computes its training loss only when asked: als:training_loss=true)"),
        "{said}"
    );
}

#[test]
fn predict_with_a_ranking_model_fails_before_any_output() {
    let dir = tempfile::tempdir().unwrap();
    let model = train(dir.path(), "popularity");
    let pairs = dir.path().join("pairs.csv");
    std::fs::write(&pairs, "u1,i1\n").unwrap();
    let err = fails(&["predict", "--model", s(&model), "--pairs", s(&pairs)]);
    assert!(
        err.contains("ranks items and does not predict ratings")
            && err.contains("kindred recommend"),
        "{err}"
    );
}

#[test]
fn recommend_shows_titles_beside_ids() {
    let dir = tempfile::tempdir().unwrap();
    // The synthetic catalog has a `title` feature; train keeps it beside the model.
    let model = train(dir.path(), "popularity");
    assert!(model.join("titles.json").is_file());
    let csv = stdout(&ok(&[
        "recommend",
        "--model",
        s(&model),
        "--user",
        "u1",
        "--k",
        "3",
    ]));
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("user,item,rank,score,title"));
    let row = lines.next().expect("a row");
    let title = row.rsplit(',').next().unwrap_or_default();
    assert!(!title.is_empty(), "no title in {row}");
    let jsonl = stdout(&ok(&[
        "recommend",
        "--model",
        s(&model),
        "--user",
        "u1",
        "--k",
        "2",
        "--format",
        "jsonl",
    ]));
    let first: serde_json::Value = serde_json::from_str(jsonl.lines().next().unwrap()).unwrap();
    assert!(
        first["items"][0]["title"]
            .as_str()
            .is_some_and(|t| !t.is_empty()),
        "{jsonl}"
    );
}

#[test]
fn report_on_a_file_that_is_not_a_result_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "hello world\n").unwrap();
    let out = dir.path().join("r.html");
    let err = fails(&["report", s(&text), "--out", s(&out)]);
    assert!(
        err.contains("notes.txt: not valid JSON at line 1")
            && err.contains("kindred eval --json")
            && !err.contains("column"),
        "{err}"
    );
    let json = dir.path().join("other.json");
    std::fs::write(&json, "{\"results\": []}").unwrap();
    let err = fails(&["report", s(&json), "--out", s(&out)]);
    assert!(
        err.contains("other.json:1: field `(top level)`: missing field `dataset`"),
        "{err}"
    );
}

#[test]
fn counts_are_in_good_english_and_presets_keep_their_names() {
    let out = ok(&[
        "eval",
        "--data",
        "synthetic:users=120,items=60,seed=2",
        "--protocol",
        "temporal:0.2",
        "--model",
        "popularity",
        "--model",
        "movielens-ranking",
        "--bootstrap",
        "50",
        "--quiet",
    ]);
    let said = stdout(&out);
    assert!(said.contains(", 1 fold;"), "{said}");
    assert!(
        !said.contains("1 folds") && !said.contains(" 1 users"),
        "{said}"
    );
    let comparison = said
        .lines()
        .find(|l| l.contains(" vs popularity:"))
        .unwrap_or_else(|| panic!("no comparison in {said}"));
    assert!(
        comparison.starts_with("movielens-ranking (itemknn"),
        "named as in the table: {comparison}"
    );
}
