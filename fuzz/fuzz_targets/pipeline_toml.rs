//! A cleaning pipeline config (`kindred_data::preprocess::PipelineConfig::from_toml_str`); a
//! config that parses is then run, and dry-run, on a small fixed log.
#![no_main]

use std::sync::OnceLock;

use kindred_core::{EventType, Interactions, InteractionsBuilder};
use kindred_data::preprocess::{dry_run, run, PipelineConfig};
use kindred_fuzz::check_error;
use libfuzzer_sys::fuzz_target;

/// 60 events of 7 users on 9 items over a few minutes, with repeats, ratings and no-ratings.
fn log() -> &'static Interactions {
    static LOG: OnceLock<Interactions> = OnceLock::new();
    LOG.get_or_init(|| {
        let mut b = InteractionsBuilder::new();
        let events = [
            EventType::Rating,
            EventType::View,
            EventType::Click,
            EventType::Purchase,
        ];
        for row in 0u32..60 {
            let user = b.intern_user(&format!("u{}", row % 7));
            let item = b.intern_item(&format!("i{}", (row * 5) % 9));
            let event = events[(row % 4) as usize];
            let rating = (event == EventType::Rating).then_some((row % 5) as f32 + 1.0);
            let timestamp = (row % 11 != 0).then_some(1_700_000_000 + i64::from(row / 3) * 7);
            b.push_indexed(user, item, rating, 1.0, event, timestamp);
        }
        b.build()
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match PipelineConfig::from_toml_str(text) {
        Ok(config) => {
            match run(&config, log()) {
                Ok((out, report)) => {
                    assert!(out.len() <= log().len());
                    let _ = report.to_string();
                }
                Err(e) => check_error(&e),
            }
            let _ = dry_run(&config, log());
        }
        Err(e) => check_error(&e),
    }
});
