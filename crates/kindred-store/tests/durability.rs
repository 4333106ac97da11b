//! Acknowledged feedback survives the process being killed.
//!
//! The durability test runs this test executable again as a child (the ignored test
//! `durability_child`), which ingests batches into a SQLite store and prints each acknowledged
//! batch's last event id; the parent SIGKILLs it mid-ingest, reopens the store and resends every
//! acknowledged batch: each event must come back as a duplicate, i.e. it was stored.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use common::{feedback_batch as batch, FEEDBACK_BATCH as BATCH};
use kindred_store::Store;

/// The store path the child writes to; set only for the child.
const CHILD_VAR: &str = "KINDRED_STORE_DURABILITY_CHILD";
/// Acknowledged batches to wait for before killing the child.
const KILL_AFTER: usize = 25;
/// The child stops by itself after this many batches, in case nobody kills it.
const CHILD_MAX_BATCHES: usize = 5_000;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

#[test]
#[ignore = "child process of acknowledged_feedback_survives_sigkill, which runs it"]
fn durability_child() {
    let path = std::env::var(CHILD_VAR).expect("run by acknowledged_feedback_survives_sigkill");
    runtime().block_on(async {
        let store = Store::open(&path).await.expect("child opens the store");
        let mut out = std::io::stdout().lock();
        for number in 0..CHILD_MAX_BATCHES {
            let events = batch(number);
            let report = store.insert_feedback(&events).await.expect("insert batch");
            assert_eq!(report.inserted, BATCH);
            let last = events
                .last()
                .and_then(|e| e.event_id.clone())
                .unwrap_or_default();
            writeln!(out, "acked {number} {last}").expect("write ack");
            out.flush().expect("flush ack");
        }
    });
}

#[test]
fn acknowledged_feedback_survives_sigkill() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("store.db");
    let exe = std::env::current_exe().expect("test executable");
    let mut child = Command::new(exe)
        .args([
            "durability_child",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_VAR, &path)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start child");
    let stdout = child.stdout.take().expect("child stdout");
    let mut acked: Vec<(usize, String)> = Vec::new();
    let mut killed = false;
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("read child output");
        let Some(rest) = line.strip_prefix("acked ") else {
            continue;
        };
        let (number, last) = rest.split_once(' ').expect("ack line: number and event id");
        acked.push((number.parse().expect("batch number"), last.to_owned()));
        if acked.len() == KILL_AFTER && !killed {
            child.kill().expect("SIGKILL the child"); // std's kill is SIGKILL on Unix
            killed = true;
        }
        // Lines after the kill were acknowledged before it and sit in the pipe: keep reading.
    }
    let status = child.wait().expect("reap child");
    assert!(
        killed,
        "child stopped before {KILL_AFTER} acknowledgements: {status}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(
            status.signal(),
            Some(9),
            "child was killed, not finished: {status}"
        );
    }
    assert!(acked.len() >= KILL_AFTER);

    runtime().block_on(async {
        let store = Store::open(path.to_str().expect("utf-8 path"))
            .await
            .expect("reopen after kill");
        let stored = store.counts().await.expect("counts").feedback;
        assert!(
            stored >= (acked.len() * BATCH) as u64,
            "{stored} events for {} acked batches",
            acked.len()
        );
        for (number, last) in &acked {
            let events = batch(*number);
            assert_eq!(
                events.last().and_then(|e| e.event_id.as_deref()),
                Some(last.as_str())
            );
            let report = store.insert_feedback(&events).await.expect("resend");
            assert_eq!(
                report.duplicates, BATCH,
                "batch {number} was acknowledged but not all of it was stored"
            );
        }
        eprintln!(
            "{} acknowledged batches ({stored} events stored) all survived SIGKILL",
            acked.len()
        );
    });
}
