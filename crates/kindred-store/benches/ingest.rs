//! Feedback ingest rate: 100 batches of 1,000 events written one batch at a time (each its own
//! transaction, acknowledged before the next), into a fresh SQLite file and, when
//! `KINDRED_TEST_POSTGRES` names a server, a fresh PostgreSQL schema.
//!
//! `bench/store_ingest.sh` (or `cargo bench -p kindred-store --bench ingest`) prints a table and
//! writes `bench/out/store-ingest.md`. Fresh tables: the indexes are small, so this is the rate of
//! an empty store.

// Shared with the tests (it allows its own dead code: each user takes a part).
#[path = "../tests/common/mod.rs"]
mod common;

use std::fmt::Write as _;
use std::time::Instant;

use common::{feedback_batch, Backend, Fixture, FEEDBACK_BATCH};
use kindred_store::Feedback;

const BATCHES: usize = 100;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let batches: Vec<Vec<Feedback>> = (0..BATCHES).map(feedback_batch).collect();
    let events = (BATCHES * FEEDBACK_BATCH) as f64;
    let mut table = String::from(
        "| backend | events | batch | seconds | events/s |\n|---|---:|---:|---:|---:|\n",
    );
    runtime.block_on(async {
        for (name, backend) in [("sqlite", Backend::Sqlite), ("postgres", Backend::Postgres)] {
            let Some(fixture) = Fixture::new(backend).await else {
                continue;
            };
            let start = Instant::now();
            for batch in &batches {
                fixture
                    .store
                    .insert_feedback(batch)
                    .await
                    .expect("insert batch");
            }
            let seconds = start.elapsed().as_secs_f64();
            let stored = fixture.store.counts().await.expect("counts").feedback;
            assert_eq!(stored, events as u64, "{name}: every event stored");
            let _ = writeln!(
                table,
                "| {name} | {events} | {FEEDBACK_BATCH} | {seconds:.2} | {:.0} |",
                events / seconds
            );
            fixture.cleanup().await;
        }
    });
    println!("{table}");
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench/out");
    if std::fs::create_dir_all(&out).is_ok() {
        let _ = std::fs::write(out.join("store-ingest.md"), &table);
    }
}
