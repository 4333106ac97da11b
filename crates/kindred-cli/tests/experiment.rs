//! `kindred experiment analyze` and `kindred experiment power` end to end: the verdict line, the
//! JSON report, and errors that name the file, line and field of a bad row.

use std::path::PathBuf;
use std::process::{Command, Output};

fn kindred(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kindred"))
        .args(args)
        .arg("--quiet")
        .output()
        .expect("run kindred")
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kindred-exp-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// 1,000 users per variant; A converts 100 of them, B 130 (z = 2.105, p = 0.0353); a ratio
/// metric clicks/views and two segments.
fn write_experiment(dir: &std::path::Path) -> PathBuf {
    let mut csv = String::from("user,variant,segment,converted,clicks,views\n");
    for i in 0..1000 {
        let segment = if i % 2 == 0 { "web" } else { "ios" };
        csv += &format!("a{i},A,{segment},{},{},10\n", u8::from(i < 100), i % 4);
        csv += &format!("b{i},B,{segment},{},{},10\n", u8::from(i < 130), i % 5);
    }
    let path = dir.join("exp.csv");
    std::fs::write(&path, csv).unwrap();
    path
}

#[test]
fn analyze_prints_a_verdict_and_writes_json() {
    let dir = temp_dir("analyze");
    let data = write_experiment(&dir);
    let json = dir.join("report.json");
    let out = kindred(&[
        "experiment",
        "analyze",
        "--data",
        data.to_str().unwrap(),
        "--metric",
        "converted",
        "--metric",
        "ctr=clicks/views",
        "--weights",
        "A=0.5,B=0.5",
        "--json",
        json.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        stdout.contains("verdict: B beats A on converted: +3.00 pts (+30.0%), 95% CI [+0.21 pts, +5.79 pts], p = 0.035"),
        "{stdout}"
    );
    assert!(stdout.contains("segments (Holm-adjusted p)"), "{stdout}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(report["control"], "A");
    assert_eq!(report["comparisons"][0]["kind"], "proportion");
    assert_eq!(report["comparisons"][1]["kind"], "ratio");
    assert_eq!(report["srm"]["mismatch"], false);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn analyze_names_the_bad_row() {
    let dir = temp_dir("bad");
    let path = dir.join("bad.csv");
    std::fs::write(&path, "user,variant,converted\nu1,A,1\nu2,B,maybe\n").unwrap();
    let out = kindred(&["experiment", "analyze", "--data", path.to_str().unwrap()]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("bad.csv:3: field `converted`: `maybe` is not a number"),
        "{stderr}"
    );
    let out = kindred(&[
        "experiment",
        "analyze",
        "--data",
        path.to_str().unwrap(),
        "--weights",
        "A=x",
    ]);
    assert!(!out.status.success());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn power_matches_the_hand_computed_sample_size() {
    // (1.959964 + 0.841621)^2 * (0.05*0.95 + 0.06*0.94) / 0.01^2 = 8154.99 -> 8155 (power.rs).
    let out = kindred(&["experiment", "power", "--baseline", "0.05", "--mde", "0.01"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.contains("8155 users per variant"), "{stdout}");
    let out = kindred(&[
        "experiment",
        "power",
        "--std-dev",
        "1",
        "--mde",
        "0.2",
        "--units",
        "393",
    ]);
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        stdout.contains("power 80.1% with 393 users per variant"),
        "{stdout}"
    );
    let out = kindred(&["experiment", "power", "--baseline", "0.05", "--mde", "0"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("mde"));
}
