//! Every feedback batch `POST /v1/feedback` acknowledged survives the server being SIGKILLed
//! mid-ingest, and a batch in flight at the kill is stored whole or not at all.
//!
//! The test runs this test executable again as a child (the ignored test
//! `durability_server_child`), which serves a SQLite store on a loopback port. The parent posts
//! batches with unique event ids over HTTP from two client threads, notes which got a 200,
//! SIGKILLs the child while batches are in flight, counts the stored events directly in the
//! store, restarts a server on the same file, waits for `/health/ready`, and resends every
//! batch: each acknowledged one must come back as all duplicates, each unacknowledged one as
//! all or nothing, and the stored count must match exactly.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kindred_server::{bind, serve, AppState};
use kindred_serving::ServerConfig;
use kindred_store::Store;
use serde_json::Value;

/// The store path the child serves; set only for the child.
const CHILD_VAR: &str = "KINDRED_SERVER_DURABILITY_CHILD";
/// Events per batch.
const BATCH: usize = 200;
/// Acknowledged batches to wait for before killing the child.
const KILL_AFTER: usize = 40;
/// Client threads posting batches at once, so that some are in flight at the kill.
const CLIENTS: usize = 2;
/// The clients never post more than this many batches, in case the kill never comes.
const MAX_BATCHES: usize = 5_000;

#[test]
#[ignore = "child process of acknowledged_feedback_survives_server_sigkill, which runs it"]
fn durability_server_child() {
    let path =
        std::env::var(CHILD_VAR).expect("run by acknowledged_feedback_survives_server_sigkill");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async {
        let store = Store::open(&path).await.expect("child opens the store");
        let config = ServerConfig {
            store: path.clone(),
            // No model is trained here: readiness means the store answers.
            ready_without_model: true,
            ..ServerConfig::default()
        };
        let state = AppState::new(config, store).await.expect("server state");
        let listener = bind("127.0.0.1:0".parse().expect("address"))
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("local address");
        // Straight to the stdout handle: `println!` would go to libtest's capture.
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening {addr}").expect("write address");
        out.flush().expect("flush");
        drop(out);
        serve(state, listener, std::future::pending())
            .await
            .expect("serve");
    });
}

/// Starts a server child on `path` and returns it with its address.
fn start_server(path: &std::path::Path) -> (Child, SocketAddr) {
    let exe = std::env::current_exe().expect("test executable");
    let mut child = Command::new(exe)
        .args([
            "durability_server_child",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_VAR, path)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start child");
    let stdout = child.stdout.take().expect("child stdout");
    let mut lines = BufReader::new(stdout).lines();
    let addr = loop {
        let line = lines
            .next()
            .expect("child exited before listening")
            .expect("read child output");
        // libtest may have started the line with `test durability_server_child ... `.
        if let Some((_, addr)) = line.split_once("listening ") {
            break addr.trim().parse().expect("child address");
        }
    };
    // Keep draining the child's output so that it never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    (child, addr)
}

/// One HTTP/1.1 exchange on a fresh connection: the status and the JSON body.
fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: &str,
) -> std::io::Result<(u16, Value)> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let text = String::from_utf8_lossy(&response);
    let (head, body) = text.split_once("\r\n\r\n").ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "incomplete response")
    })?;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, "status line"))?;
    let value = serde_json::from_str(body)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
    Ok((status, value))
}

/// The JSON array of batch `number`: events with ids `b{number}-e{j}`.
fn batch_body(number: usize) -> String {
    let events: Vec<Value> = (0..BATCH)
        .map(|j| {
            serde_json::json!({
                "user": format!("u{}", (number * 7 + j) % 97),
                "item": format!("i{}", (number * 13 + j) % 211),
                "type": "rating",
                "value": (j % 5 + 1) as f32,
                "timestamp": 1_700_000_000 + number as i64,
                "event_id": format!("b{number}-e{j}"),
            })
        })
        .collect();
    serde_json::to_string(&events).expect("serialise batch")
}

/// `(inserted, duplicates)` of a feedback answer.
fn report(answer: &Value) -> (u64, u64) {
    (
        answer["inserted"].as_u64().expect("inserted"),
        answer["duplicates"].as_u64().expect("duplicates"),
    )
}

#[derive(Debug, Default)]
struct Outcomes {
    acked: Vec<usize>,
    /// Sent (or attempted) without a 200: in flight at the kill, or refused after it.
    unacked: Vec<usize>,
}

#[test]
fn acknowledged_feedback_survives_server_sigkill() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("store.db");
    let (mut child, addr) = start_server(&path);

    let next = Arc::new(AtomicUsize::new(0));
    let killed = Arc::new(AtomicBool::new(false));
    let outcomes = Arc::new(Mutex::new(Outcomes::default()));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (next, killed, outcomes) = (
                Arc::clone(&next),
                Arc::clone(&killed),
                Arc::clone(&outcomes),
            );
            std::thread::spawn(move || loop {
                let number = next.fetch_add(1, Ordering::SeqCst);
                if number >= MAX_BATCHES {
                    break;
                }
                match request(addr, "POST", "/v1/feedback", &batch_body(number)) {
                    Ok((200, answer)) => {
                        assert_eq!(report(&answer), (BATCH as u64, 0), "batch {number}");
                        outcomes.lock().expect("outcomes").acked.push(number);
                    }
                    Ok((status, answer)) => panic!("batch {number}: status {status}: {answer}"),
                    Err(_) => {
                        outcomes.lock().expect("outcomes").unacked.push(number);
                        assert!(
                            killed.load(Ordering::SeqCst),
                            "batch {number} failed before the kill"
                        );
                        break;
                    }
                }
            })
        })
        .collect();

    let deadline = Instant::now() + Duration::from_secs(60);
    while outcomes.lock().expect("outcomes").acked.len() < KILL_AFTER {
        assert!(Instant::now() < deadline, "too few acknowledgements");
        std::thread::sleep(Duration::from_millis(1));
    }
    killed.store(true, Ordering::SeqCst);
    child.kill().expect("SIGKILL the server"); // std's kill is SIGKILL on Unix
    let status = child.wait().expect("reap the server");
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(9), "server was killed: {status}");
    }
    for client in clients {
        client.join().expect("client thread");
    }
    let outcomes = std::mem::take(&mut *outcomes.lock().expect("outcomes"));
    assert!(outcomes.acked.len() >= KILL_AFTER);
    assert_eq!(
        outcomes.unacked.len(),
        CLIENTS,
        "each client stops at its first failure"
    );

    // What the store holds, read directly with no server running.
    let stored = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(async {
            let store = Store::open(path.to_str().expect("utf-8 path"))
                .await
                .expect("reopen the store after the kill");
            store.counts().await.expect("counts").feedback
        });
    let batch = BATCH as u64;
    assert_eq!(
        stored % batch,
        0,
        "{stored} events: a batch was half-written"
    );

    // A new server on the same file becomes ready and finds every acknowledged event.
    let (mut restarted, addr) = start_server(&path);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok((200, _)) = request(addr, "GET", "/health/ready", "") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "restarted server never became ready"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    for &number in &outcomes.acked {
        let (status, answer) =
            request(addr, "POST", "/v1/feedback", &batch_body(number)).expect("resend");
        assert_eq!(status, 200);
        assert_eq!(
            report(&answer),
            (0, batch),
            "batch {number} was acknowledged but not all of it was stored"
        );
    }
    let mut whole_unacked = 0;
    for &number in &outcomes.unacked {
        let (status, answer) =
            request(addr, "POST", "/v1/feedback", &batch_body(number)).expect("resend");
        assert_eq!(status, 200);
        match report(&answer) {
            (0, d) if d == batch => whole_unacked += 1,
            (i, 0) if i == batch => {}
            other => panic!("unacknowledged batch {number} was half-written: {other:?}"),
        }
    }
    assert_eq!(
        stored,
        (outcomes.acked.len() as u64 + whole_unacked) * batch,
        "stored events do not add up to the acknowledged batches plus whole in-flight ones"
    );
    restarted.kill().expect("stop the restarted server");
    let _ = restarted.wait();
    eprintln!(
        "{} acknowledged batches of {BATCH} survived SIGKILL; {} in flight, {whole_unacked} of them stored whole",
        outcomes.acked.len(),
        outcomes.unacked.len()
    );
}
