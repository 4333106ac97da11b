//! What the fuzz targets share: the invariants a failed parse must keep, the split of one input
//! into several files, and the server's JSON extractor driven without a server.
//!
//! Every target feeds bytes to a public parse entry point and accepts `Ok` or a clean `Err`;
//! a panic, a hang (libFuzzer's `-timeout`) or an allocation over libFuzzer's `-malloc_limit_mb`
//! is a finding. See `scripts/fuzz` for the limits the runs use.

use std::future::Future;
use std::path::Path;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use axum::extract::FromRequest;
use kindred_core::Error;
use kindred_data::delimited::ColumnMapping;
use kindred_data::ImportReport;
use kindred_server::extract::ApiJson;
use kindred_server::ApiError;
use serde::de::DeserializeOwned;

/// The name every target gives its input in errors.
pub const SOURCE: &str = "fuzz-input";

/// The path every target gives its input in errors.
pub fn source() -> &'static Path {
    Path::new(SOURCE)
}

/// Checks what any error from a parser must say: a non-empty message, and for a row error a
/// named field and a 1-based line.
pub fn check_error(error: &Error) {
    let text = error.to_string();
    assert!(!text.is_empty(), "an error without a message: {error:?}");
    if let Error::Parse {
        line, field, file, ..
    } = error
    {
        assert!(!field.is_empty(), "a parse error names no field: {error:?}");
        assert!(*line >= 1, "a parse error names line 0: {error:?}");
        assert!(
            file.starts_with(SOURCE),
            "a parse error names another file: {error:?}"
        );
    }
}

/// Checks the bookkeeping of a finished import: every row read is imported or counted as
/// skipped, and the log holds the imported rows.
pub fn check_report(report: &ImportReport, rows_in_log: usize) {
    assert_eq!(
        report.rows_read,
        report.rows_imported + report.skipped_total(),
        "rows read != imported + skipped: {report:?}"
    );
    assert_eq!(
        report.rows_imported, rows_in_log as u64,
        "the log does not hold the imported rows: {report:?}"
    );
}

/// Splits `data` at each line holding only `%%` into at most `n` parts (the last part keeps any
/// further separators). Corpus files for multi-file targets are written this way.
pub fn sections(data: &[u8], n: usize) -> Vec<&[u8]> {
    const SEPARATOR: &[u8] = b"\n%%\n";
    let mut parts = Vec::with_capacity(n);
    let mut rest = data;
    while parts.len() + 1 < n {
        match rest.windows(SEPARATOR.len()).position(|w| w == SEPARATOR) {
            Some(at) => {
                parts.push(&rest[..at]);
                rest = &rest[at + SEPARATOR.len()..];
            }
            None => break,
        }
    }
    parts.push(rest);
    parts
}

/// Runs a future that never waits (the extractors over an in-memory body complete on their
/// first poll).
fn run_ready<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    match future.as_mut().poll(&mut cx) {
        Poll::Ready(out) => out,
        Poll::Pending => panic!("an extractor over an in-memory body did not complete"),
    }
}

/// Splits a column mapping (`user=uid,item=sku,...`) off the first line of `input` when `take` is
/// set, checking a mapping that does not parse like any other error; the rest is the data.
pub fn mapping_line(take: bool, input: &[u8]) -> (Option<ColumnMapping>, &[u8]) {
    if !take {
        return (None, input);
    }
    let end = input
        .iter()
        .position(|&b| b == b'\n')
        .unwrap_or(input.len());
    let mut columns = None;
    if let Ok(text) = std::str::from_utf8(&input[..end]) {
        match ColumnMapping::parse(text) {
            Ok(mapping) => columns = Some(mapping),
            Err(e) => check_error(&e),
        }
    }
    (columns, input.get(end + 1..).unwrap_or_default())
}

/// Decodes `body` as the server's JSON extractor does for a `POST` with
/// `Content-Type: application/json`, and checks that a refusal is a client error with a code
/// and a message.
pub fn api_body<T: DeserializeOwned + Send + 'static>(body: &[u8]) -> Result<T, ApiError> {
    // Large bodies are decoded on a blocking thread, which needs a runtime: the decoding itself
    // is the same function, called here directly.
    if body.len() >= kindred_server::extract::OFF_THREAD_BYTES {
        return kindred_server::extract::decode::<T>(body).inspect_err(check_api_error);
    }
    let request = axum::http::Request::builder()
        .method("POST")
        .uri("/fuzz")
        .header("content-type", "application/json")
        .body(axum::body::Body::from(body.to_vec()))
        .expect("a fixed request is well-formed");
    let result = run_ready(ApiJson::<T>::from_request(request, &()));
    match result {
        Ok(ApiJson(value)) => Ok(value),
        Err(error) => {
            check_api_error(&error);
            Err(error)
        }
    }
}

/// A refusal of a request body is a 4xx with a code and a message.
pub fn check_api_error(error: &ApiError) {
    assert!(
        error.status.is_client_error(),
        "a bad body answered with {}: {error:?}",
        error.status
    );
    assert!(
        !error.code.is_empty() && !error.message.is_empty(),
        "{error:?}"
    );
}

/// Lets panics raised inside the named dependencies (source paths containing `/NAME-`) unwind
/// quietly, to be caught by the library under test, while any other panic still stops the run
/// through libFuzzer's hook. For decoders the project wraps in `catch_unwind` because the
/// dependency is known to panic on malformed input (see `kindred_data::parquet::read_parquet`).
pub fn tolerate_panics_in(dependencies: &'static [&'static str]) {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let libfuzzer_hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let upstream = info.location().is_some_and(|at| {
                dependencies
                    .iter()
                    .any(|name| at.file().contains(&format!("/{name}-")))
            });
            if !upstream {
                libfuzzer_hook(info);
            }
        }));
    });
}
