//! What every importer shares: the options a caller passes, the report it gets back, the policy
//! for bad rows, and the small parsers (timestamps, latin-1) more than one format needs.
//!
//! Bad rows are never dropped silently. With `skip_invalid = false` the first bad row stops the
//! import with an [`Error::Parse`] naming the file, the 1-based line and the field; with
//! `skip_invalid = true` it is skipped and counted by kind of problem, so that
//! `rows_read == rows_imported + sum(skipped)` always holds.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use kindred_core::{Error, Result, TimestampRange};
use serde::Serialize;

pub use crate::column_mapping::ColumnMapping;

/// How an importer treats its input.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// Skip (and count) bad rows instead of failing on the first one.
    pub skip_invalid: bool,
    /// Which columns (or JSON keys) hold user, item, rating, ...; `None` means the defaults of
    /// each format (see [`ColumnMapping`]).
    pub columns: Option<ColumnMapping>,
    /// Field delimiter of CSV/TSV files; `None` picks it from the extension (`.tsv`/`.tab` → tab).
    pub delimiter: Option<u8>,
    /// Whether a CSV/TSV file starts with a header; `None` detects it from the first row.
    pub has_header: Option<bool>,
    /// Timestamps outside this range (Unix seconds) are bad rows (`timestamp out of range`):
    /// a year-2400 or pre-1970 event is almost always a unit or parsing mistake, and one such
    /// row distorts every time-based split and recency weight.
    pub timestamps: TimestampRange,
}

/// What an import did: how many rows it saw, kept and skipped (by kind), with the first error
/// messages as examples.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ImportReport {
    /// Interaction rows seen (blank lines and headers are not rows).
    pub rows_read: u64,
    /// Interaction rows that made it into the log.
    pub rows_imported: u64,
    /// Skipped interaction rows by kind of problem (`"unparsable number"`, `"ragged row"`, ...).
    pub skipped: BTreeMap<String, u64>,
    /// Skipped rows of side files (item or user metadata), by kind; they are not interaction rows.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub skipped_feature_rows: BTreeMap<String, u64>,
    /// The first few error messages, each naming file, line and field.
    pub examples: Vec<String>,
}

/// How many error messages a report keeps as examples.
pub const MAX_EXAMPLES: usize = 10;

impl ImportReport {
    /// Total number of skipped interaction rows.
    pub fn skipped_total(&self) -> u64 {
        self.skipped.values().sum()
    }

    fn note_example(&mut self, error: &Error) {
        if self.examples.len() < MAX_EXAMPLES {
            self.examples.push(error.to_string());
        }
    }
}

impl fmt::Display for ImportReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "read {} rows, imported {}, skipped {}",
            self.rows_read,
            self.rows_imported,
            self.skipped_total()
        )?;
        if !self.skipped.is_empty() {
            let kinds: Vec<String> = self
                .skipped
                .iter()
                .map(|(k, n)| format!("{k}: {n}"))
                .collect();
            write!(f, " ({})", kinds.join(", "))?;
        }
        let feature_skips: u64 = self.skipped_feature_rows.values().sum();
        if feature_skips > 0 {
            write!(f, "; skipped {feature_skips} metadata rows")?;
        }
        Ok(())
    }
}

/// Kinds of row problems, as counted in [`ImportReport::skipped`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Problem {
    UnparsableNumber,
    MissingField,
    RaggedRow,
    InvalidUtf8,
    EmptyId,
    InvalidTimestamp,
    TimestampOutOfRange,
    InvalidJson,
    WrongType,
}

impl Problem {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Problem::UnparsableNumber => "unparsable number",
            Problem::MissingField => "missing field",
            Problem::RaggedRow => "ragged row",
            Problem::InvalidUtf8 => "invalid utf-8",
            Problem::EmptyId => "empty id",
            Problem::InvalidTimestamp => "invalid timestamp",
            Problem::TimestampOutOfRange => "timestamp out of range",
            Problem::InvalidJson => "invalid json",
            Problem::WrongType => "wrong type",
        }
    }
}

/// One bad field of one row, before the file and line are known.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RowError {
    pub kind: Problem,
    pub field: String,
    pub message: String,
}

impl RowError {
    pub(crate) fn new(kind: Problem, field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            kind,
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Applies the skip policy of one import to its bad rows and keeps the counts.
pub(crate) struct RowPolicy<'a> {
    pub file: &'a Path,
    pub skip_invalid: bool,
    /// The accepted timestamps ([`ImportOptions::timestamps`]).
    pub timestamps: TimestampRange,
    pub report: ImportReport,
}

impl<'a> RowPolicy<'a> {
    pub(crate) fn new(file: &'a Path, opts: &ImportOptions) -> Self {
        Self {
            file,
            skip_invalid: opts.skip_invalid,
            timestamps: opts.timestamps,
            report: ImportReport::default(),
        }
    }

    /// Counts one more interaction row seen.
    pub(crate) fn read(&mut self) {
        self.report.rows_read += 1;
    }

    /// Counts one more interaction row kept.
    pub(crate) fn imported(&mut self) {
        self.report.rows_imported += 1;
    }

    /// A bad interaction row at 1-based `line`: an error, or a counted skip.
    pub(crate) fn reject(&mut self, line: u64, error: RowError) -> Result<()> {
        let kind = error.kind;
        let error = self.to_error(line, error);
        if !self.skip_invalid {
            return Err(error);
        }
        self.report.note_example(&error);
        *self
            .report
            .skipped
            .entry(kind.as_str().to_owned())
            .or_default() += 1;
        Ok(())
    }

    /// A bad row of a side file (metadata): an error, or a counted skip outside the row totals.
    pub(crate) fn reject_feature_row(
        &mut self,
        file: &Path,
        line: u64,
        error: RowError,
    ) -> Result<()> {
        let kind = error.kind;
        let error = Error::Parse {
            file: file.to_path_buf(),
            line,
            field: error.field,
            message: error.message,
        };
        if !self.skip_invalid {
            return Err(error);
        }
        self.report.note_example(&error);
        *self
            .report
            .skipped_feature_rows
            .entry(kind.as_str().to_owned())
            .or_default() += 1;
        Ok(())
    }

    pub(crate) fn to_error(&self, line: u64, error: RowError) -> Error {
        Error::Parse {
            file: self.file.to_path_buf(),
            line,
            field: error.field,
            message: error.message,
        }
    }

    pub(crate) fn finish(self) -> ImportReport {
        self.report
    }
}

/// `timestamp` when it lies in `range`; a bad row of `field` otherwise.
pub(crate) fn in_range(
    range: &TimestampRange,
    field: &str,
    timestamp: i64,
) -> Result<i64, RowError> {
    match range.refusal(timestamp) {
        None => Ok(timestamp),
        Some(why) => Err(RowError::new(Problem::TimestampOutOfRange, field, why)),
    }
}

/// Reads a whole file, naming it in the error.
pub(crate) fn read_file(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::io(path, e))
}

/// Decodes ISO-8859-1: every byte is the code point of the same value.
pub fn decode_latin1(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| b as char).collect()
}

/// A dataset name from a file path: its stem, or the path itself.
pub(crate) fn name_from_path(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

/// Parses a timestamp into unix seconds: an integer (unix seconds), `YYYY-MM-DD`,
/// `YYYY-MM-DD HH:MM:SS` (UTC) or RFC 3339 (`YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)`).
/// Fractions of a second are dropped (rounded towards the past).
pub fn parse_timestamp(text: &str) -> Option<i64> {
    let text = text.trim();
    if let Ok(secs) = text.parse::<i64>() {
        return Some(secs);
    }
    let b = text.as_bytes();
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let year = digits(&b[0..4])?;
    let month = digits(&b[5..7])?;
    let day = digits(&b[8..10])?;
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    let days = days_from_civil(year, month, day);
    let rest = &b[10..];
    if rest.is_empty() {
        return Some(days * 86_400);
    }
    if rest.len() < 9
        || !(rest[0] == b'T' || rest[0] == b't' || rest[0] == b' ')
        || rest[3] != b':'
        || rest[6] != b':'
    {
        return None;
    }
    let hour = digits(&rest[1..3])?;
    let minute = digits(&rest[4..6])?;
    let second = digits(&rest[7..9])?;
    // 60 admits a leap second, which unix time folds into the next second.
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut tail = &rest[9..];
    if tail.first() == Some(&b'.') {
        let frac_len = tail[1..].iter().take_while(|c| c.is_ascii_digit()).count();
        if frac_len == 0 {
            return None;
        }
        tail = &tail[1 + frac_len..];
    }
    let offset_secs = match tail {
        [] | [b'Z'] | [b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let hours = digits(&[*h1, *h2])?;
            let minutes = digits(&[*m1, *m2])?;
            if hours > 23 || minutes > 59 {
                return None;
            }
            let secs = hours * 3600 + minutes * 60;
            if *sign == b'+' {
                secs
            } else {
                -secs
            }
        }
        _ => return None,
    };
    Some(days * 86_400 + hour * 3600 + minute * 60 + second - offset_secs)
}

fn digits(bytes: &[u8]) -> Option<i64> {
    let mut value = 0i64;
    for &c in bytes {
        if !c.is_ascii_digit() {
            return None;
        }
        value = value * 10 + i64::from(c - b'0');
    }
    Some(value)
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
pub(crate) mod test_support {
    use kindred_testkit::TestDir;

    /// A fresh, empty directory under the system temp dir, removed when the guard drops.
    pub fn temp_dir(tag: &str) -> TestDir {
        TestDir::new(&format!("data-{tag}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_in_every_accepted_form() {
        assert_eq!(parse_timestamp("1700000000"), Some(1_700_000_000));
        assert_eq!(parse_timestamp("-5"), Some(-5));
        assert_eq!(parse_timestamp("1970-01-01"), Some(0));
        assert_eq!(parse_timestamp("2023-11-14"), Some(1_699_920_000));
        assert_eq!(parse_timestamp("2023-11-14 22:13:20"), Some(1_700_000_000));
        assert_eq!(parse_timestamp("2023-11-14T22:13:20Z"), Some(1_700_000_000));
        assert_eq!(
            parse_timestamp("2023-11-14T22:13:20.999Z"),
            Some(1_700_000_000)
        );
        assert_eq!(
            parse_timestamp("2023-11-15T00:13:20+02:00"),
            Some(1_700_000_000)
        );
        assert_eq!(
            parse_timestamp("2023-11-14T20:13:20-02:00"),
            Some(1_700_000_000)
        );
        assert_eq!(parse_timestamp("2000-02-29"), Some(951_782_400));
        assert_eq!(parse_timestamp("1900-02-29"), None);
        assert_eq!(parse_timestamp("2023-13-01"), None);
        assert_eq!(parse_timestamp("2023-11-14T25:00:00Z"), None);
        assert_eq!(parse_timestamp("yesterday"), None);
        assert_eq!(parse_timestamp("2023-11-14T22:13:20+0200"), None);
    }

    #[test]
    fn latin1_maps_bytes_to_code_points() {
        assert_eq!(decode_latin1(b"Caf\xe9 \xfc"), "Café ü");
    }

    #[test]
    fn skip_policy_counts_by_kind_and_keeps_examples() {
        let path = Path::new("x.csv");
        let strict = ImportOptions::default();
        let mut policy = RowPolicy::new(path, &strict);
        let err = policy
            .reject(
                3,
                RowError::new(Problem::RaggedRow, "row", "expected 4 fields, found 3"),
            )
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "x.csv:3: field `row`: expected 4 fields, found 3"
        );

        let lenient = ImportOptions {
            skip_invalid: true,
            ..ImportOptions::default()
        };
        let mut policy = RowPolicy::new(path, &lenient);
        for line in 1..=12 {
            policy.read();
            policy
                .reject(line, RowError::new(Problem::EmptyId, "user", "empty"))
                .unwrap();
        }
        policy.read();
        policy.imported();
        let report = policy.finish();
        assert_eq!(report.skipped["empty id"], 12);
        assert_eq!(report.examples.len(), MAX_EXAMPLES);
        assert_eq!(
            report.rows_read,
            report.rows_imported + report.skipped_total()
        );
        assert_eq!(
            report.to_string(),
            "read 13 rows, imported 1, skipped 12 (empty id: 12)"
        );
    }
}
