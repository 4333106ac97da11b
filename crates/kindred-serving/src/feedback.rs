//! [`FeedbackService`]: a batch of events stored durably in one transaction (a success means
//! every event survives a crash), idempotent by `event_id`, then applied to the users'
//! real-time state and to the online metrics. A batch naming an erased user or item is refused
//! whole (400 `erased_id`, naming the record), like any other invalid record.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use kindred_store::{Feedback, InsertReport};

use crate::error::{Error, Result};
use crate::monitor::Monitor;
use crate::state::ServingState;

/// Takes feedback in.
#[derive(Clone)]
pub struct FeedbackService {
    state: Arc<ServingState>,
    monitor: Arc<Monitor>,
}

impl FeedbackService {
    pub fn new(state: Arc<ServingState>, monitor: Arc<Monitor>) -> Self {
        Self { state, monitor }
    }

    /// Stores `events` and applies them; answers how many were new and how many duplicates.
    pub async fn ingest(&self, events: &[Feedback]) -> Result<InsertReport> {
        if let Some((i, e)) = events
            .iter()
            .enumerate()
            .find(|(_, e)| e.value.is_some_and(|v| !v.is_finite()))
        {
            return Err(Error::invalid(
                "invalid_input",
                format!("record {i}: value {:?} is not a finite number", e.value),
            ));
        }
        let range = &self.state.config.timestamps;
        if let Some((i, why)) = events
            .iter()
            .enumerate()
            .find_map(|(i, e)| Some((i, range.refusal(e.timestamp)?)))
        {
            return Err(Error::invalid(
                "invalid_timestamp",
                format!("record {i}: {why} (server config [timestamps])"),
            ));
        }
        let state = &self.state;
        crate::erasure::refuse_erased_feedback(&state.erasures(), events)?;
        let report = state.store.insert_feedback(events).await?;
        state
            .counters
            .feedback_events
            .fetch_add(report.inserted as u64, Ordering::Relaxed);
        state
            .counters
            .feedback_duplicates
            .fetch_add(report.duplicates as u64, Ordering::Relaxed);
        state.record_feedback(events);
        state.bandits.feedback(events);
        self.monitor.record_feedback(events);
        Ok(report)
    }
}
