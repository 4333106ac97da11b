//! Writes exposures and their impressions (and the impressions of exploring lists served
//! outside experiments, which have no exposure) off the request path: handlers put a record on a
//! bounded channel (never waiting: when it is full the record is dropped and counted), and one
//! writer task stores what has queued up in batches, one transaction per table. A batch stays
//! open for [`LINGER`] after its first record (unless it fills or a flush asks for it), so a
//! server logging a few hundred lists a second commits a few dozen times instead of once per
//! list: each commit is a hop to a blocking thread and a journal write, which is what the log
//! cost the serving cores.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use kindred_store::{Exposure, ImpressionList, Store};
use tokio::sync::{mpsc, oneshot};

/// Records queued at most; beyond this the request path drops rather than waits.
pub const QUEUE: usize = 10_000;
/// Lists (and exposures) stored per batch at most.
const BATCH: usize = 500;
/// How long a batch waits for more records after its first; short, so that each batch's write
/// stays a short burst on the cores that serve.
const LINGER: std::time::Duration = std::time::Duration::from_millis(20);

// Nearly every message is a write, so boxing it would add an allocation per list for nothing.
#[allow(clippy::large_enum_variant)]
enum Message {
    Write(Option<Exposure>, ImpressionList),
    /// Answered once everything queued before it is stored.
    Flush(oneshot::Sender<()>),
}

/// What the writer did, for `/metrics` and tests.
#[derive(Debug, Default)]
pub struct ExposureCounters {
    pub written: AtomicU64,
    pub dropped: AtomicU64,
    pub failed: AtomicU64,
}

impl ExposureCounters {
    /// The counters and the number of running experiments in Prometheus text form.
    pub fn prometheus(&self, running: usize) -> String {
        let mut out = String::new();
        for (name, help, value) in [
            (
                "kindred_experiment_exposures_written_total",
                "Experiment exposures (lists served in an experiment) stored.",
                self.written.load(Ordering::Relaxed),
            ),
            (
                "kindred_experiment_exposures_dropped_total",
                "Experiment exposures and exploring lists dropped because the writer's queue was full.",
                self.dropped.load(Ordering::Relaxed),
            ),
            (
                "kindred_experiment_exposures_failed_total",
                "Experiment exposures and exploring lists lost to a store error.",
                self.failed.load(Ordering::Relaxed),
            ),
        ] {
            out.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}\n"
            ));
        }
        out.push_str(&format!(
            "# HELP kindred_experiments_running Experiments assigning users now.\n\
             # TYPE kindred_experiments_running gauge\nkindred_experiments_running {running}\n"
        ));
        out
    }
}

/// The sending side; the writer task ends when this is dropped.
pub struct ExposureLog {
    sender: mpsc::Sender<Message>,
    pub counters: Arc<ExposureCounters>,
}

impl ExposureLog {
    /// Starts the writer task (call inside a tokio runtime).
    pub fn start(store: Store) -> Self {
        let (sender, receiver) = mpsc::channel(QUEUE);
        let counters = Arc::new(ExposureCounters::default());
        tokio::spawn(writer(store, receiver, Arc::clone(&counters)));
        Self { sender, counters }
    }

    /// Queues one served list; never blocks.
    pub fn log(&self, exposure: Option<Exposure>, list: ImpressionList) {
        if self
            .sender
            .try_send(Message::Write(exposure, list))
            .is_err()
        {
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Waits until everything queued so far is stored (results read after this see it).
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.sender.send(Message::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }
}

async fn writer(
    store: Store,
    mut receiver: mpsc::Receiver<Message>,
    counters: Arc<ExposureCounters>,
) {
    while let Some(first) = receiver.recv().await {
        let deadline = tokio::time::Instant::now() + LINGER;
        let mut exposures = Vec::new();
        let mut lists = Vec::new();
        let mut waiting = Vec::new();
        let mut next = Some(first);
        while let Some(message) = next {
            match message {
                Message::Write(e, list) => {
                    exposures.extend(e);
                    lists.push(list);
                }
                Message::Flush(done) => waiting.push(done),
            }
            let full = lists.len() >= BATCH;
            next = if full {
                None
            } else if !waiting.is_empty() {
                // Someone waits for this batch: what is queued joins it, nothing more.
                receiver.try_recv().ok()
            } else {
                // None when the time is up or the log is closed (stored, then the loop ends).
                tokio::time::timeout_at(deadline, receiver.recv())
                    .await
                    .ok()
                    .flatten()
            };
        }
        if !lists.is_empty() {
            // Impressions first: an exposure whose items are missing would count as a list
            // with nothing shown.
            let count = lists.len() as u64;
            let stored = match store.insert_impressions(lists).await {
                Ok(_) => store.insert_exposures(&exposures).await,
                Err(e) => Err(e),
            };
            match stored {
                Ok(n) => counters.written.fetch_add(n as u64, Ordering::Relaxed),
                Err(e) => {
                    tracing::warn!(error = %e, lost = count, "writing exposures failed");
                    counters.failed.fetch_add(count, Ordering::Relaxed)
                }
            };
        }
        for done in waiting {
            let _ = done.send(());
        }
    }
}
