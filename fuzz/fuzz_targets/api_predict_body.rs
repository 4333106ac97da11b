//! The body of `POST /v1/predict` through the server's JSON extractor.
#![no_main]

use kindred_fuzz::api_body;
use kindred_server::routes::predict::PredictBody;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = api_body::<PredictBody>(data);
});
