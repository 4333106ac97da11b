//! The body of `POST /v1/recommend` through the server's JSON extractor, then the id checks
//! the handler applies.
#![no_main]

use kindred_fuzz::api_body;
use kindred_server::routes::recommend::RecommendBody;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(body) = api_body::<RecommendBody>(data) else {
        return;
    };
    let _ = body.offset.saturating_add(body.n);
    if let Some(user) = &body.user {
        let _ = kindred_store::check_id("user id", user);
    }
    for item in &body.interactions {
        let _ = kindred_store::check_id("interaction", item);
    }
});
