//! Test support shared by Kindred's test suites (a dev-dependency only): where the real
//! MovieLens data is, under the policy every real-data test follows. The data is never part of
//! the repository (its licence forbids redistribution); `KINDRED_DATA_DIR` names the folder that
//! holds `ml-100k/` and `ml-1m/`. Without it a test prints that it skipped and why and passes,
//! except under CI (`CI` set), where a skip would hide a broken setup, so it fails instead.
//! Printing and panicking are the point here: this crate only ever runs inside tests.

use std::path::PathBuf;

mod screenshot;
mod webhook;
pub use screenshot::screenshot_ink;
pub use webhook::webhook_listener;

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

/// The headless Chromium the browser tests drive: `KINDRED_CHROMIUM`, else `chromium`,
/// `chromium-browser` or `google-chrome` on `PATH`; `None` after printing why the test skips
/// (panics under CI, where the browser must be installed).
pub fn chromium() -> Option<PathBuf> {
    let found = std::env::var_os("KINDRED_CHROMIUM")
        .map(PathBuf::from)
        .or_else(|| {
            let dirs: Vec<PathBuf> = std::env::split_paths(&std::env::var_os("PATH")?).collect();
            ["chromium", "chromium-browser", "google-chrome"]
                .iter()
                .flat_map(|name| dirs.iter().map(move |d| d.join(name)))
                .find(|p| p.is_file())
        });
    if found.is_none() {
        skip("no Chromium found (install Debian's chromium or set KINDRED_CHROMIUM)".into());
    }
    found
}

/// The longest one browser run may take before the test gives up on it.
pub const BROWSER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// Runs headless `browser` with a fresh `profile` directory and `args` (after the common
/// headless flags) and returns its stdout; panics if it does not finish within
/// [`BROWSER_TIMEOUT`]. Blocking: async tests call it from a blocking thread.
pub fn run_chromium(
    browser: &std::path::Path,
    profile: &std::path::Path,
    args: &[String],
) -> String {
    use std::process::{Command, Stdio};
    let mut child = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--hide-scrollbars",
            "--no-first-run",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", browser.display()));
    let mut stdout = child.stdout.take().expect("piped stdout");
    let reader = std::thread::spawn(move || {
        let mut out = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut out).ok();
        out
    });
    let start = std::time::Instant::now();
    while child.try_wait().expect("browser status").is_none() {
        if start.elapsed() > BROWSER_TIMEOUT {
            child.kill().ok();
            child.wait().ok();
            panic!(
                "{} did not finish within {BROWSER_TIMEOUT:?}",
                browser.display()
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    reader.join().expect("browser output")
}
