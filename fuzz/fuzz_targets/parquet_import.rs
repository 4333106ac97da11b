//! Parquet interactions (`kindred_data::parquet::read_parquet` over bytes in memory), bad rows
//! skipped and counted. `read_parquet` turns panics of the `parquet` and `arrow` crates into
//! errors (they panic on some malformed files); a panic anywhere else is a finding.
#![no_main]

use kindred_data::parquet::read_parquet;
use kindred_data::ImportOptions;
use kindred_fuzz::{check_error, check_report, source, tolerate_panics_in};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    tolerate_panics_in(&[
        "parquet",
        "arrow-array",
        "arrow-buffer",
        "arrow-data",
        "arrow-schema",
        "arrow-select",
        "arrow-cast",
    ]);
    let opts = ImportOptions {
        skip_invalid: true,
        ..ImportOptions::default()
    };
    match read_parquet(bytes::Bytes::copy_from_slice(data), source(), &opts) {
        Ok((log, report)) => check_report(&report, log.len()),
        Err(e) => check_error(&e),
    }
});
