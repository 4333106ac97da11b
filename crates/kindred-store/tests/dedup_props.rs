//! Invariant of idempotent ingest, on random batch sequences (SQLite): every event without an id
//! is stored, every distinct event id exactly once, each batch's report adds up, and the log keeps
//! the order events were first accepted in.

use std::collections::HashSet;

use kindred_store::{Feedback, Store};
use proptest::prelude::*;

fn event(n: usize, id: Option<u8>) -> Feedback {
    Feedback {
        user: format!("u{}", n % 3),
        item: format!("i{n}"),
        event_type: "click".into(),
        value: None,
        timestamp: n as i64,
        event_id: id.map(|i| format!("e{i}")),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn every_distinct_event_is_stored_once(
        batches in prop::collection::vec(prop::collection::vec(prop::option::of(0u8..40), 0..30), 1..6)
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.db");
        runtime.block_on(async {
            let store = Store::open(path.to_str().unwrap()).await.unwrap();
            let mut seen = HashSet::new();
            let mut expected = Vec::new();
            let mut n = 0;
            for ids in &batches {
                let batch: Vec<Feedback> = ids.iter().map(|id| { n += 1; event(n, *id) }).collect();
                let report = store.insert_feedback(&batch).await.unwrap();
                let mut fresh = 0;
                for e in &batch {
                    if e.event_id.as_ref().is_none_or(|id| seen.insert(id.clone())) {
                        expected.push(e.clone());
                        fresh += 1;
                    }
                }
                prop_assert_eq!(report.inserted, fresh);
                prop_assert_eq!(report.inserted + report.duplicates, batch.len());
            }
            let stored: Vec<Feedback> = store
                .feedback_after(0, usize::MAX)
                .await
                .unwrap()
                .into_iter()
                .map(|s| s.feedback)
                .collect();
            prop_assert_eq!(stored, expected);
            Ok(())
        })?;
    }
}
