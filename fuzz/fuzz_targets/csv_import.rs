//! CSV/TSV interactions (`kindred_data::delimited::read_delimited`). The first byte picks the
//! options (delimiter, header, skip policy, whether the first line is a column mapping).
#![no_main]

use kindred_data::delimited::read_delimited;
use kindred_data::ImportOptions;
use kindred_fuzz::{check_error, check_report, mapping_line, source};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, input)) = data.split_first() else {
        return;
    };
    let delimiter = [b',', b'\t', b';', b'|'][usize::from(flags & 3)];
    let has_header = [None, Some(true), Some(false), None][usize::from((flags >> 2) & 3)];
    let skip_invalid = flags & 0x10 != 0;
    let (columns, input) = mapping_line(flags & 0x20 != 0, input);
    let opts = ImportOptions {
        skip_invalid,
        columns,
        delimiter: Some(delimiter),
        has_header,
        ..ImportOptions::default()
    };
    match read_delimited(input, source(), delimiter, &opts) {
        Ok((log, report)) => check_report(&report, log.len()),
        Err(e) => check_error(&e),
    }
});
