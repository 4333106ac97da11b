//! Helpers of the CLI's end-to-end tests: running `kindred`, what no user-facing output may
//! contain, and a server child process (its address, plain GETs, SIGTERM).
#![allow(dead_code)] // each test binary uses part of this module

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// Small generated data: every command finishes in about a second on it.
pub const DATA: &str = "synthetic:users=300,items=150,seed=5";

/// Runs `kindred` with `args` and collects its output.
pub fn kindred(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kindred"))
        .args(args)
        .output()
        .expect("run kindred")
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs `kindred` and asserts it succeeded.
pub fn ok(args: &[&str]) -> Output {
    let out = kindred(args);
    assert!(
        out.status.success(),
        "kindred {args:?} failed: {}",
        stderr(&out)
    );
    out
}

/// Runs `kindred`, asserts it failed without writing to stdout, and returns its stderr.
pub fn fails(args: &[&str]) -> String {
    let out = kindred(args);
    assert!(!out.status.success(), "kindred {args:?} succeeded");
    assert!(
        out.stdout.is_empty(),
        "kindred {args:?} wrote {}",
        stdout(&out)
    );
    stderr(&out)
}

pub fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// What no output a user sees may contain.
pub fn assert_clean(text: &str) {
    assert!(!text.contains("panicked"), "a panic: {text}");
    assert!(!text.contains('\u{1b}'), "an escape code: {text:?}");
    for line in text.lines() {
        assert!(
            line.matches("(os error").count() <= 1,
            "an OS error said twice: {line}"
        );
    }
}

/// Trains `model` on [`DATA`] into a folder of `dir` named after it.
pub fn train(dir: &Path, model: &str) -> PathBuf {
    let out = dir.join(model.replace([':', ','], "-"));
    ok(&[
        "train",
        "--data",
        DATA,
        "--model",
        model,
        "--out",
        s(&out),
        "--quiet",
    ]);
    out
}

/// Reads the server's first stdout line (its address) and hands back the rest of the stream.
pub fn serving_address(
    child: &mut std::process::Child,
) -> (SocketAddr, BufReader<std::process::ChildStdout>) {
    let stdout = child.stdout.take().expect("piped stdout");
    let mut reader = BufReader::new(stdout);
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .parse()
        .unwrap();
    (addr, reader)
}

/// SIGTERM, then waits (at most 15 s) for the exit.
pub fn stop(child: &mut std::process::Child) -> std::process::ExitStatus {
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "no exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A GET over a fresh connection (the project's HTTP client); returns status and body.
pub fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    use kindred_http_client::{get_request, Connection};
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut connection = Connection::connect(addr).await.unwrap();
        let head = connection.exchange(&get_request(path)).await.unwrap();
        let body = String::from_utf8_lossy(connection.body(&head)).into_owned();
        (head.status, body)
    })
}
