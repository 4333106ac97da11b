//! The server flow exactly as README writes it: `kindred import`, `kindred train --store
//! --publish`, `kindred serve`, a request, a version published while it runs, and a clean exit on
//! SIGTERM.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::get;

const DATA: &str = "synthetic:users=200,items=120,seed=9";

fn kindred(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_kindred"))
        .args(args)
        .arg("--quiet")
        .output()
        .expect("run kindred");
    assert!(
        out.status.success(),
        "kindred {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Kills the server if the test fails before stopping it.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn version_of(body: &str) -> String {
    let json: serde_json::Value = serde_json::from_str(body).unwrap();
    json["model_version"].as_str().unwrap().to_owned()
}

#[test]
fn import_train_publish_serve_swap_and_stop_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("kindred.db");
    let store = store.to_str().unwrap();
    let out = kindred(&["import", "--data", DATA, "--store", store]);
    assert!(out.contains("imported"), "{out}");
    // A second import would duplicate the log: refused without --append.
    let again = Command::new(env!("CARGO_BIN_EXE_kindred"))
        .args(["import", "--data", DATA, "--store", store, "--quiet"])
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("--append"));
    let out = kindred(&[
        "train",
        "--store",
        store,
        "--model",
        "als:factors=8,iterations=3",
        "--publish",
    ]);
    assert!(out.contains("live now"), "{out}");

    let mut child = Command::new(env!("CARGO_BIN_EXE_kindred"))
        .args(["serve", "--store", store, "--listen", "127.0.0.1:0"])
        .args(["--log-format", "json", "--log-level", "warn"])
        .env("KINDRED_CACHE_TTL_SECONDS", "0")
        .env_remove("MIMALLOC_PAGE_RECLAIM_ON_FREE")
        .env_remove("MIMALLOC_ALLOW_THP")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (addr, _stdout) = common::serving_address(&mut child);
    let mut server = Server(child);
    // The server executed itself again with its allocator options set (same process id).
    #[cfg(target_os = "linux")]
    {
        let environ = std::fs::read(format!("/proc/{}/environ", server.0.id())).unwrap();
        for option in [
            &b"MIMALLOC_PAGE_RECLAIM_ON_FREE=1"[..],
            b"MIMALLOC_ALLOW_THP=0",
        ] {
            assert!(
                environ.split(|&b| b == 0).any(|var| var == option),
                "kindred serve runs without {}",
                String::from_utf8_lossy(option)
            );
        }
    }

    let (status, body) = get(addr, "/v1/recommend/u1?n=5");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"source\":\"model:als\""), "{body}");
    let first = version_of(&body);

    // Publishing from another process (a version `auto` chose): the running server swaps it in.
    let out = kindred(&[
        "train",
        "--store",
        store,
        "--model",
        "auto:families=popularity+als,trials=2,budget=60",
        "--publish",
    ]);
    assert!(
        out.contains("live now") && out.contains("auto chose "),
        "{out}"
    );
    let start = Instant::now();
    let mut current = first.clone();
    while current == first && start.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(100));
        let (status, body) = get(addr, "/v1/recommend/u1?n=5");
        assert_eq!(status, 200, "{body}");
        current = version_of(&body);
    }
    assert_ne!(current, first, "the published version was not swapped in");

    // SIGTERM: a graceful stop with exit status 0.
    let status = common::stop(&mut server.0);
    assert!(status.success(), "{status:?}");
}

/// A model saved as a directory (`kindred train --out`, which writes what the Python package's
/// `Model.save` writes) registered in a store with `kindred models register --publish`: the
/// server on that store answers the lists `kindred recommend` reads from the directory.
#[test]
fn a_saved_model_directory_registered_in_a_store_is_served_with_the_same_lists() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("kindred.db");
    let store = store.to_str().unwrap();
    let saved = dir.path().join("saved");
    let saved = saved.to_str().unwrap();
    kindred(&["import", "--data", DATA, "--store", store]);
    kindred(&[
        "train",
        "--data",
        DATA,
        "--model",
        "als:factors=8,iterations=3",
        "--out",
        saved,
    ]);
    let missing = Command::new(env!("CARGO_BIN_EXE_kindred"))
        .args([
            "models",
            "register",
            "--store",
            "no-such.db",
            "--artifact",
            saved,
            "--quiet",
        ])
        .output()
        .unwrap();
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("does not exist"));
    let out = kindred(&[
        "models",
        "register",
        "--store",
        store,
        "--artifact",
        saved,
        "--publish",
    ]);
    assert!(
        out.contains("registered als") && out.contains("live now"),
        "{out}"
    );

    let mut child = Command::new(env!("CARGO_BIN_EXE_kindred"))
        .args(["serve", "--store", store, "--listen", "127.0.0.1:0"])
        .args(["--log-format", "json", "--log-level", "warn"])
        .env("KINDRED_CACHE_TTL_SECONDS", "0")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (addr, _stdout) = common::serving_address(&mut child);
    let mut server = Server(child);
    for user in ["u1", "u7", "u42"] {
        let (status, body) = get(addr, &format!("/v1/recommend/{user}?n=5"));
        assert_eq!(status, 200, "{body}");
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        let served: Vec<&str> = json["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["item"].as_str().unwrap())
            .collect();
        let listed = kindred(&["recommend", "--model", saved, "--user", user, "--k", "5"]);
        let expected: Vec<&str> = listed
            .lines()
            .skip(1)
            .map(|line| line.split(',').nth(1).unwrap())
            .collect();
        assert_eq!(expected.len(), 5, "{listed}");
        assert_eq!(served, expected, "user {user}");
    }
    let status = common::stop(&mut server.0);
    assert!(status.success(), "{status:?}");
}
