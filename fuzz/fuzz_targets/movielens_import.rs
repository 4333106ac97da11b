//! MovieLens 100K / 1M directories (`kindred_data::movielens::read_movielens`). The first byte
//! picks the release (bit 0: 1M) and the skip policy (bit 1); the rest is the rating file, then
//! the item, user and genre files, separated by lines holding only `%%` (a missing part is a
//! missing file).
#![no_main]

use kindred_data::movielens::{read_movielens, MovieLensFiles, MovieLensVersion};
use kindred_data::ImportOptions;
use kindred_fuzz::{check_error, check_report, sections, source};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, input)) = data.split_first() else {
        return;
    };
    let version = if flags & 1 != 0 {
        MovieLensVersion::Ml1m
    } else {
        MovieLensVersion::Ml100k
    };
    let parts = sections(input, 4);
    let files = MovieLensFiles {
        version,
        dir: source(),
        ratings: parts[0],
        items: parts.get(1).copied(),
        users: parts.get(2).copied(),
        genres: parts.get(3).copied(),
    };
    let opts = ImportOptions {
        skip_invalid: flags & 2 != 0,
        ..ImportOptions::default()
    };
    match read_movielens(&files, &opts) {
        Ok((dataset, report)) => check_report(&report, dataset.interactions.len()),
        Err(e) => check_error(&e),
    }
});
