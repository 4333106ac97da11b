//! JSON Lines interactions (`kindred_data::jsonl::read_jsonl`). The first byte picks the skip
//! policy and whether the first line is a column mapping (`user=uid,item=sku,...`).
#![no_main]

use kindred_data::delimited::ColumnMapping;
use kindred_data::jsonl::read_jsonl;
use kindred_data::ImportOptions;
use kindred_fuzz::{check_error, check_report, source};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, mut input)) = data.split_first() else {
        return;
    };
    let mut columns = None;
    if flags & 2 != 0 {
        let end = input
            .iter()
            .position(|&b| b == b'\n')
            .unwrap_or(input.len());
        if let Ok(text) = std::str::from_utf8(&input[..end]) {
            match ColumnMapping::parse(text) {
                Ok(mapping) => columns = Some(mapping),
                Err(e) => check_error(&e),
            }
        }
        input = input.get(end + 1..).unwrap_or_default();
    }
    let opts = ImportOptions {
        skip_invalid: flags & 1 != 0,
        columns,
        ..ImportOptions::default()
    };
    match read_jsonl(input, source(), &opts) {
        Ok((log, report)) => check_report(&report, log.len()),
        Err(e) => check_error(&e),
    }
});
