//! JSON Lines interactions (`kindred_data::jsonl::read_jsonl`). The first byte picks the skip
//! policy and whether the first line is a column mapping (`user=uid,item=sku,...`).
#![no_main]

use kindred_data::jsonl::read_jsonl;
use kindred_data::ImportOptions;
use kindred_fuzz::{check_error, check_report, mapping_line, source};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, input)) = data.split_first() else {
        return;
    };
    let (columns, input) = mapping_line(flags & 2 != 0, input);
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
