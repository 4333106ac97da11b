//! A scripted walk through README.md as a newcomer takes it. The server example block is run as
//! written (MovieLens swapped for generated data, `kindred.db` for a temporary file, the port for
//! a free one); every subcommand of the README's command synopsis is run once on small data; and
//! the mistakes a newcomer makes are made. No output may hold a panic, an OS error said twice or
//! an escape code, and every subcommand the synopsis lists must be walked here.

mod common;

use std::collections::BTreeSet;
use std::io::BufRead;
use std::process::{Command, Stdio};

use common::{assert_clean, get, kindred, s, serving_address, stderr, stdout, stop, DATA};

const README: &str = include_str!("../../../README.md");

/// The lines of the README's fenced blocks under `heading` (up to the next `## `).
fn block_lines(heading: &str) -> Vec<String> {
    let section = README
        .split("\n## ")
        .find(|s| s.starts_with(heading))
        .unwrap_or_else(|| panic!("README has no section {heading}"));
    let mut inside = false;
    let mut lines = Vec::new();
    for line in section.lines() {
        if line.starts_with("```") {
            inside = !inside;
        } else if inside {
            lines.push(line.to_owned());
        }
    }
    lines
}

/// The subcommands the README's synopsis lists (`kindred eval ...` -> `eval`).
fn synopsis_commands() -> BTreeSet<String> {
    block_lines("The `kindred` command")
        .iter()
        .filter_map(|l| l.strip_prefix("kindred "))
        .filter_map(|rest| rest.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

/// Runs `kindred args`, checks its output is clean and that it succeeded (or failed, for a
/// mistake), and records the subcommand as walked.
fn walk(walked: &mut BTreeSet<String>, args: &[&str], should_succeed: bool) -> String {
    let out = kindred(args);
    let (said, log) = (stdout(&out), stderr(&out));
    assert_clean(&said);
    assert_clean(&log);
    assert_eq!(
        out.status.success(),
        should_succeed,
        "kindred {args:?}: {said}\n{log}"
    );
    walked.insert(args[0].to_owned());
    said
}

/// A README command line as this test runs it: its comment dropped, MovieLens swapped for
/// generated data, the store moved into `dir`, the port made free.
fn as_run(line: &str, dir: &std::path::Path) -> Vec<String> {
    let command = line.split(" #").next().unwrap_or(line);
    command
        .split_whitespace()
        .skip(1)
        .map(|word| match word {
            "movielens:../shared/data/ml-1m" => DATA.to_owned(),
            "kindred.db" => dir.join("kindred.db").display().to_string(),
            "127.0.0.1:8080" => "127.0.0.1:0".to_owned(),
            other => other.to_owned(),
        })
        .collect()
}

#[test]
fn the_readme_walks_without_a_stumble() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut walked = BTreeSet::new();

    // "The server", line by line.
    let lines = block_lines("The server");
    let mut served = false;
    for line in &lines {
        if line.starts_with("curl ") {
            assert!(served, "curl before serve in README");
        } else if line.starts_with("kindred serve") {
            let args = as_run(line, d);
            let mut child = Command::new(env!("CARGO_BIN_EXE_kindred"))
                .args(&args)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            let (addr, rest) = serving_address(&mut child);
            for curl in lines.iter().filter_map(|l| l.strip_prefix("curl -s '")) {
                let path = curl
                    .trim_end_matches('\'')
                    .split_once("8080")
                    .map_or(curl, |(_, path)| path);
                assert_eq!(get(addr, path).0, 200, "{path}");
            }
            // The simulator plays users against the running server.
            let server = format!("http://{addr}");
            // The world of the imported data: the spec without its `synthetic:` kind.
            let world = DATA.strip_prefix("synthetic:").unwrap_or(DATA);
            walk(
                &mut walked,
                &[
                    "simulate", "--server", &server, "--world", world, "--steps", "20", "--quiet",
                ],
                true,
            );
            assert!(stop(&mut child).success());
            let said: Vec<String> = rest.lines().map_while(Result::ok).collect();
            let mut log = String::new();
            std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut log).unwrap();
            assert_clean(&said.join("\n"));
            assert_clean(&log);
            served = true;
            walked.insert("serve".into());
        } else if line.starts_with("kindred ") {
            let args = as_run(line, d);
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            walk(&mut walked, &args, true);
        }
    }
    assert!(served, "README's server block has no `kindred serve`");
    // Off-policy evaluation on that server's store: its default rank config does not explore,
    // so no logged list has propensities, and the command fails saying so.
    let candidate = d.join("candidate.toml");
    std::fs::write(&candidate, "").unwrap();
    let store = d.join("kindred.db").display().to_string();
    let candidate = candidate.display().to_string();
    walk(
        &mut walked,
        &[
            "offpolicy",
            "--store",
            &store,
            "--since",
            "1d",
            "--rank",
            &candidate,
        ],
        false,
    );

    // Every other subcommand of the synopsis, once, on small data.
    let eval_json = d.join("eval.json");
    let model = d.join("model");
    let rating = d.join("rating-model");
    let pairs = d.join("pairs.csv");
    std::fs::write(&pairs, "user,item\nu1,i1\n").unwrap();
    let quick = d.join("quick");
    let steps: Vec<Vec<String>> = vec![
        vec![
            "quickstart",
            "--data",
            "synthetic:users=150,items=80,seed=3",
            "--dir",
            s(&quick),
            "--folds",
            "0",
            "--budget",
            "2",
            "--listen",
            "127.0.0.1:0",
            "--check",
            "--quiet",
        ],
        vec!["stats", "--data", DATA],
        vec![
            "eval",
            "--data",
            DATA,
            "--protocol",
            "temporal:0.2",
            "--model",
            "popularity",
            "--model",
            "als:factors=8",
            "--json",
            s(&eval_json),
            "--bootstrap",
            "100",
            "--quiet",
        ],
        vec![
            "tune",
            "--data",
            DATA,
            "--protocol",
            "temporal:0.2",
            "--model",
            "itemknn",
            "--trials",
            "3",
            "--bootstrap",
            "0",
            "--quiet",
        ],
        vec![
            "report",
            s(&eval_json),
            "--out",
            s(&d.join("report.html")),
            "--quiet",
        ],
        vec![
            "similar",
            "--data",
            DATA,
            "--items",
            "--method",
            "cooccurrence",
            "--k",
            "3",
            "--out",
            s(&d.join("neighbours.jsonl")),
            "--quiet",
        ],
        vec![
            "train",
            "--data",
            DATA,
            "--model",
            "als:factors=8",
            "--out",
            s(&model),
            "--quiet",
        ],
        vec![
            "train",
            "--data",
            DATA,
            "--model",
            "baseline",
            "--out",
            s(&rating),
            "--quiet",
        ],
        vec![
            "recommend",
            "--model",
            s(&model),
            "--user",
            "u1",
            "--k",
            "3",
        ],
        vec!["predict", "--model", s(&rating), "--pairs", s(&pairs)],
        vec![
            "split",
            "--data",
            DATA,
            "--protocol",
            "temporal:0.2",
            "--out",
            s(&d.join("split")),
            "--quiet",
        ],
        vec!["models"],
        // The store the server block filled.
        vec![
            "models",
            "prune",
            "--store",
            s(&d.join("kindred.db")),
            "--keep",
            "1",
            "--dry-run",
        ],
        vec!["experiment", "power", "--baseline", "0.05", "--mde", "0.01"],
        vec!["monitor", "--data", DATA, "--quiet"],
    ]
    .into_iter()
    .map(|step| step.into_iter().map(str::to_owned).collect())
    .collect();
    for step in &steps {
        let args: Vec<&str> = step.iter().map(String::as_str).collect();
        walk(&mut walked, &args, true);
    }
    // `kindred cluster` is a feature of the full build; the lean build says how to get it.
    let shards = d.join("shards");
    let cluster = [
        "cluster",
        "shard",
        "--data",
        "synthetic:users=200,items=100,implicit=true",
        "--out",
        s(&shards),
        "--shards",
        "2",
        "--quiet",
    ];
    let said = walk(&mut walked, &cluster, cfg!(feature = "cluster"));
    if !cfg!(feature = "cluster") {
        assert!(said.is_empty());
    }
    // `kindred embed` needs the `encoder` feature and a model folder (`KINDRED_ENCODER_DIR`, as
    // the encoder tests read it); without either it fails with one clean message.
    let items = d.join("items.jsonl");
    std::fs::write(
        &items,
        "{\"id\": \"a\", \"title\": \"A space adventure\"}\n",
    )
    .expect("write items");
    let encoder = std::env::var_os("KINDRED_ENCODER_DIR")
        .map(std::path::PathBuf::from)
        .filter(|dir| dir.join("model.safetensors").is_file());
    let encoder_dir = encoder.clone().unwrap_or_else(|| d.join("no-encoder"));
    let embedded = d.join("items.embedded.jsonl");
    let embed = [
        "embed",
        "--item-features",
        s(&items),
        "--text",
        "title",
        "--encoder",
        s(&encoder_dir),
        "--out",
        s(&embedded),
        "--quiet",
    ];
    walk(
        &mut walked,
        &embed,
        cfg!(feature = "encoder") && encoder.is_some(),
    );

    // The newcomer's mistakes: each fails with a clean, single message.
    let missing = d.join("missing.csv");
    let mistakes: Vec<Vec<String>> = vec![
        vec![
            "stats".into(),
            "--data".into(),
            format!("csv:{}", s(&missing)),
        ],
        vec![
            "eval".into(),
            "--data".into(),
            DATA.into(),
            "--protocol".into(),
            "temporal:0.2,positive=>4".into(),
            "--model".into(),
            "als".into(),
        ],
        vec![
            "eval".into(),
            "--data".into(),
            DATA.into(),
            "--protocol".into(),
            "temporal:0.2".into(),
            "--model".into(),
            "eaes".into(),
        ],
        vec![
            "eval".into(),
            "--data".into(),
            DATA.into(),
            "--protocol".into(),
            "temporal:0.2".into(),
            "--model".into(),
            "als".into(),
            "--k".into(),
            "-5".into(),
        ],
        vec![
            "stats".into(),
            "--data".into(),
            "movielen:../shared/data/ml-1m".into(),
        ],
        vec![
            "serve".into(),
            "--store".into(),
            s(&d.join("typo.db")).into(),
        ],
        vec![
            "report".into(),
            s(&pairs).into(),
            "--out".into(),
            s(&d.join("r.html")).into(),
        ],
        vec![
            "predict".into(),
            "--model".into(),
            s(&model).into(),
            "--pairs".into(),
            s(&pairs).into(),
        ],
    ];
    for mistake in &mistakes {
        let args: Vec<&str> = mistake.iter().map(String::as_str).collect();
        walk(&mut walked, &args, false);
    }

    let listed = synopsis_commands();
    let missed: Vec<&String> = listed.difference(&walked).collect();
    assert!(
        missed.is_empty(),
        "README lists commands the walk skips: {missed:?}"
    );
}

#[test]
fn the_readme_says_what_the_first_hour_costs_and_how_to_install() {
    let quick_start = README
        .split("\n## ")
        .find(|s| s.starts_with("Quick start"))
        .expect("a Quick start section");
    for needed in [
        "bench/build_times.sh",
        "minutes",
        "cargo install --path crates/kindred-cli",
        "scripts/test",
    ] {
        assert!(quick_start.contains(needed), "Quick start lacks `{needed}`");
    }
    // Every feature README tells a user to install with exists, and the default stays lean.
    let manifest = include_str!("../Cargo.toml");
    let features = manifest
        .split("[features]")
        .nth(1)
        .and_then(|rest| rest.split("\n[").next())
        .expect("a [features] table");
    let defined: BTreeSet<&str> = features
        .lines()
        .filter_map(|l| l.split_once('=').map(|(name, _)| name.trim()))
        .filter(|name| !name.starts_with('#'))
        .collect();
    assert!(features.contains("default = []"), "{features}");
    let named: BTreeSet<&str> = README
        .split("--features ")
        .skip(1)
        .filter_map(|rest| rest.split(|c: char| !c.is_ascii_alphanumeric()).next())
        .collect();
    assert!(!named.is_empty());
    let unknown: Vec<&&str> = named.difference(&defined).collect();
    assert!(
        unknown.is_empty(),
        "README names features kindred-cli lacks: {unknown:?}"
    );
    for part in ["parquet", "png", "postgres", "cluster", "full"] {
        assert!(defined.contains(part), "no `{part}` feature");
    }
}
