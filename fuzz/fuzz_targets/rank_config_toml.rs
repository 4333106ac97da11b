//! A rank config (`kindred_rank::RankConfig::from_toml_str`, what `--rank FILE.toml` and the
//! server's `rank` settings load).
#![no_main]

use kindred_fuzz::{check_error, source};
use kindred_rank::RankConfig;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match RankConfig::from_toml_str(text, source()) {
        Ok(config) => {
            config.reorders_pool();
        }
        Err(e) => check_error(&e),
    }
});
