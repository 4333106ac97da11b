//! A saved model's `manifest.json` (`kindred_models::Manifest::from_json`, what every model load
//! starts with).
#![no_main]

use kindred_fuzz::check_error;
use kindred_models::Manifest;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = Manifest::from_json(data, kindred_fuzz::source().join("manifest.json")) {
        check_error(&e);
    }
});
