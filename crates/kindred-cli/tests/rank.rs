//! `kindred eval --rank CONFIG` end to end: the shipped example configs run, the JSON result
//! records the config, and a bad config fails with the file, line and key path.

use std::path::PathBuf;
use std::process::{Command, Output};

const DATA: &str = "synthetic:users=300,items=150,seed=5";

fn kindred(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kindred"))
        .args(args)
        .arg("--quiet")
        .output()
        .expect("run kindred")
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kindred-rank-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
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
    let dir = temp_dir("examples");
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
    }
    assert!(n >= 1, "no example rank configs found");
}

#[test]
fn bad_rank_config_names_file_line_and_key() {
    let dir = temp_dir("bad");
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
