//! The bodies of `POST /v1/models` (publish) and `POST /v1/models/{version}/canary` (the first
//! byte picks which) through the server's JSON extractor.
#![no_main]

use kindred_fuzz::api_body;
use kindred_server::routes::experiments::CanaryBody;
use kindred_server::routes::models::PublishBody;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&which, body)) = data.split_first() else {
        return;
    };
    if which % 2 == 0 {
        let _ = api_body::<PublishBody>(body);
    } else {
        let _ = api_body::<CanaryBody>(body);
    }
});
