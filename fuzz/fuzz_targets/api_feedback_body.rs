//! The body of `POST /v1/feedback` through the server's JSON extractor, then the timestamp
//! range check the feedback service applies before the store.
#![no_main]

use kindred_core::TimestampRange;
use kindred_fuzz::api_body;
use kindred_server::routes::feedback::FeedbackBody;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(events) = api_body::<Vec<FeedbackBody>>(data) else {
        return;
    };
    let range = TimestampRange::default();
    for event in &events {
        if let Some(timestamp) = event.timestamp {
            let _ = range.refusal(timestamp);
        }
    }
});
