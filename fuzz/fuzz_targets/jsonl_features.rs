//! A user or item feature file in JSON Lines (`kindred_data::jsonl::read_features_jsonl`, what
//! `--item-features FILE.jsonl` loads).
#![no_main]

use kindred_data::jsonl::read_features_jsonl;
use kindred_fuzz::{check_error, source};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = read_features_jsonl(data, source()) {
        check_error(&e);
    }
});
