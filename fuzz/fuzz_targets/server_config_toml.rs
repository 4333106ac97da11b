//! The server config (`kindred_serving::config::ServerConfig::from_toml_str` + `validate`, what
//! `kindred serve --config FILE.toml` loads).
#![no_main]

use kindred_fuzz::check_error;
use kindred_serving::config::ServerConfig;
use libfuzzer_sys::fuzz_target;

fn check(error: &kindred_serving::Error) {
    match error {
        kindred_serving::Error::Core(e) => check_error(e),
        other => assert!(!other.to_string().is_empty(), "{other:?}"),
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match ServerConfig::from_toml_str(text, kindred_fuzz::SOURCE) {
        Ok(config) => {
            if let Err(e) = config.validate() {
                check(&e);
            }
        }
        Err(e) => check(&e),
    }
});
