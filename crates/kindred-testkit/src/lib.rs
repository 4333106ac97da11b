//! Test support shared by Kindred's test suites (a dev-dependency only): where the real
//! MovieLens data is, under the policy every real-data test follows. The data is never part of
//! the repository (its licence forbids redistribution); `KINDRED_DATA_DIR` names the folder that
//! holds `ml-100k/` and `ml-1m/`. Without it a test prints that it skipped and why and passes,
//! except under CI (`CI` set), where a skip would hide a broken setup, so it fails instead.
//! Printing and panicking are the point here: this crate only ever runs inside tests.

use std::path::PathBuf;

/// The folder `KINDRED_DATA_DIR` names, or `None` after printing why the test skips (panics
/// under CI).
pub fn data_root() -> Option<PathBuf> {
    let dir = std::env::var_os("KINDRED_DATA_DIR").map(PathBuf::from);
    match dir {
        Some(dir) if dir.is_dir() => Some(dir),
        other => skip(match other {
            Some(dir) => format!("KINDRED_DATA_DIR={} is not a directory", dir.display()),
            None => "KINDRED_DATA_DIR is not set".to_owned(),
        }),
    }
}

/// `KINDRED_DATA_DIR/name` (e.g. `ml-1m`), or `None` after printing why the test skips (panics
/// under CI).
pub fn real_data_dir(name: &str) -> Option<PathBuf> {
    let dir = data_root()?.join(name);
    if dir.is_dir() {
        Some(dir)
    } else {
        skip(format!("{} does not exist", dir.display()))
    }
}

fn skip(why: String) -> Option<PathBuf> {
    if std::env::var_os("CI").is_some() {
        panic!("real-data test cannot run under CI: {why}");
    }
    eprintln!("skipped: {why}");
    None
}
