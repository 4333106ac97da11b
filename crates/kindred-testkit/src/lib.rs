//! Test support shared by Kindred's test suites (a dev-dependency only): where the real
//! MovieLens data is, under the policy every real-data test follows. The data is never part of
//! the repository (its licence forbids redistribution); `KINDRED_DATA_DIR` names the folder that
//! holds `ml-100k/` and `ml-1m/`. Without it a test prints that it skipped and why and passes,
//! except under CI (`CI` set), where a skip would hide a broken setup, so it fails instead.
//! The same policy covers the sentence encoder's model folder ([`encoder_dir`]). Every skip
//! (data, PostgreSQL, browser, encoder) goes through [`skip_test`], which also records it for the
//! summary the README's test command prints.
//! [`TestDir`] gives a test a scratch directory that is deleted when the test ends.
//! Printing and panicking are the point here: this crate only ever runs inside tests.

use std::path::PathBuf;

mod screenshot;
mod test_dir;
mod webhook;
pub use screenshot::screenshot_ink;
pub use test_dir::TestDir;
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

/// The sentence-encoder model directory `KINDRED_ENCODER_DIR` names (all-MiniLM-L6-v2 as
/// `.ci/fetch-encoder` unpacks it), or `None` after printing why the test skips (panics under
/// CI).
pub fn encoder_dir() -> Option<PathBuf> {
    match std::env::var_os("KINDRED_ENCODER_DIR").map(PathBuf::from) {
        Some(dir) if dir.join("model.safetensors").is_file() => Some(dir),
        Some(dir) => skip(format!(
            "KINDRED_ENCODER_DIR={} holds no model.safetensors",
            dir.display()
        )),
        None => skip(
            "KINDRED_ENCODER_DIR is not set (bash .ci/fetch-encoder prints a directory to set it to)"
                .to_owned(),
        ),
    }
}

fn skip(why: String) -> Option<PathBuf> {
    skip_test(why);
    None
}

/// The environment variable naming the file where skipped tests are recorded; the README's
/// test command (`scripts/test`) sets it and prints the list at the end, because a test runner
/// counts a test that returned early as passed and hides what it printed.
pub const SKIP_LOG_VAR: &str = "KINDRED_SKIP_LOG";

/// Declares that the running test skips itself because `why`: prints it, appends
/// `test name: why` to the file [`SKIP_LOG_VAR`] names (when set), and panics instead under CI,
/// where a skip would hide a broken setup. The caller returns right after.
pub fn skip_test(why: impl Into<String>) {
    let why = why.into();
    if std::env::var_os("CI").is_some() {
        panic!("this test cannot run under CI: {why}");
    }
    let name = current_test_name();
    eprintln!("{name}: skipped: {why}");
    if let Some(log) = std::env::var_os(SKIP_LOG_VAR) {
        let log = PathBuf::from(log);
        if let Err(e) = record_skip(&log, &name, &why) {
            eprintln!("cannot record the skip in {}: {e}", log.display());
        }
    }
}

/// Appends `name: why` as one line to `log`. One short append per skip, so that the lines of
/// test processes running at once do not interleave.
fn record_skip(log: &std::path::Path, name: &str, why: &str) -> std::io::Result<()> {
    use std::io::Write;
    let line = format!("{name}: {}\n", why.replace('\n', " "));
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)?
        .write_all(line.as_bytes())
}

/// The running test as `binary::test` (libtest names each test's thread after the test; the
/// binary says which crate's suite it is).
fn current_test_name() -> String {
    let binary = std::env::current_exe()
        .ok()
        .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .map(|stem| match stem.rsplit_once('-') {
            // Cargo appends `-<hash>` to test binaries.
            Some((name, hash)) if hash.chars().all(|c| c.is_ascii_hexdigit()) => name.to_owned(),
            _ => stem,
        })
        .unwrap_or_else(|| "test".to_owned());
    match std::thread::current().name() {
        Some(test) if test != "main" => format!("{binary}::{test}"),
        _ => binary,
    }
}

/// The PostgreSQL URL the store and server tests run against (`KINDRED_TEST_POSTGRES`), or
/// `None` after [`skip_test`] said why (panics under CI).
pub fn postgres_url() -> Option<String> {
    match std::env::var("KINDRED_TEST_POSTGRES") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            skip_test(
                "set KINDRED_TEST_POSTGRES to a postgres:// URL of a database where tests may \
                 create schemas (`bash .ci/start-postgres` starts one) to run the PostgreSQL tests",
            );
            None
        }
    }
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

#[cfg(test)]
mod tests {
    use super::{current_test_name, record_skip};

    #[test]
    fn skips_are_recorded_one_line_each_under_the_test_name() {
        let dir = std::env::temp_dir().join(format!("kindred-skiplog-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("skips.txt");
        record_skip(&log, "suite::a", "no data").unwrap();
        record_skip(&log, "suite::b", "no\nserver").unwrap();
        let text = std::fs::read_to_string(&log).unwrap();
        assert_eq!(text, "suite::a: no data\nsuite::b: no server\n");
        std::fs::remove_dir_all(&dir).unwrap();
        let name = current_test_name();
        assert!(name.starts_with("kindred_testkit"), "{name}");
        // libtest names the thread after the test, except when it runs tests on the main thread.
        assert!(
            name.ends_with("skips_are_recorded_one_line_each_under_the_test_name")
                || name == "kindred_testkit",
            "{name}"
        );
    }
}
