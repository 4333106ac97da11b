//! Interactions from any CSV or TSV file, with a column mapping saying which column is what.
//!
//! # Column mapping syntax
//!
//! A mapping is a comma-separated list, in one of two forms (not mixed):
//!
//! - **Positional**: each entry gives the role of the column at the same position.
//!   `user,item,rating,timestamp` means column 1 is the user, column 2 the item, and so on.
//!   `_` skips a column and `context:KEY` stores the column as row context under `KEY`:
//!   `user,item,_,rating,context:device`. A header, if the file has one, is skipped.
//! - **Named**: each entry is `ROLE=COLUMN`, where `COLUMN` is a header name (matched exactly,
//!   then ignoring case) or `#N` for the N-th column (1-based, for files without header):
//!   `user=uid,item=pid,rating=stars,timestamp=ts,event=type,weight=w,context=device`.
//!   `context=COLUMN` may repeat; the context key is the column's name (`colN` for `#N`).
//!
//! Roles: `user` and `item` (required), `rating`, `weight`, `timestamp` (also `ts`, `time`),
//! `event`, `context`. Columns that are not mapped are ignored.
//!
//! Without a mapping, a header is matched by common names (`user`, `user_id`, `userId`, `uid`,
//! `item`, `item_id`, `movieId`, `product_id`, `rating`, `score`, `timestamp`, ...), and a file
//! without header is read as `user,item[,rating[,timestamp]]`. When [`ImportOptions::has_header`]
//! is `None`, the first row is a header if one of its fields is such a common name, or if the
//! mapping names columns.
//!
//! # Values
//!
//! Ids are trimmed and must not be empty. Ratings and weights are decimal numbers (an empty
//! rating means none; an empty weight means 1). Timestamps are unix seconds, `YYYY-MM-DD`,
//! `YYYY-MM-DD HH:MM:SS` (UTC) or RFC 3339. Events are names: built-in ones (`view`, `click`,
//! `purchase`, `add_to_cart`, `rating`) or any other name as a custom kind. Without an event
//! column (or with an empty cell), a row with a rating is a `rating` event and a row without one
//! is a `view`.
//!
//! The delimiter comes from [`ImportOptions::delimiter`], else from the extension (`.tsv` and
//! `.tab` are tab-separated, anything else comma-separated).

use std::io::Read;
use std::path::Path;

use kindred_core::{
    Dataset, Error, EventType, Interactions, InteractionsBuilder, Result, TimestampRange,
};

use crate::column_mapping::{resolve_by_aliases, role_of_alias, ResolvedColumns};
pub use crate::column_mapping::{ColumnMapping, ColumnRef, Role};
use crate::import::{
    in_range, name_from_path, parse_timestamp, ImportOptions, ImportReport, Problem, RowError,
    RowPolicy,
};

/// The default delimiter for a path: tab for `.tsv`/`.tab`, comma otherwise.
pub fn delimiter_for(path: &Path) -> u8 {
    match path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("tsv" | "tab") => b'\t',
        _ => b',',
    }
}

/// Loads interactions from a CSV/TSV file (see the [module docs](self) for the mapping).
pub fn load_delimited(path: &Path, opts: &ImportOptions) -> Result<(Dataset, ImportReport)> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let delimiter = opts.delimiter.unwrap_or_else(|| delimiter_for(path));
    let (interactions, report) = read_delimited(
        std::io::BufReader::with_capacity(1 << 20, file),
        path,
        delimiter,
        opts,
    )?;
    Ok((Dataset::new(name_from_path(path), interactions), report))
}

/// Reads interactions from delimited text; `source` names the input in errors.
pub fn read_delimited<R: Read>(
    input: R,
    source: &Path,
    delimiter: u8,
    opts: &ImportOptions,
) -> Result<(Interactions, ImportReport)> {
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(false)
        .flexible(true)
        .from_reader(input);
    let mut record = csv::ByteRecord::new();
    let csv_error = |e: csv::Error| {
        let line = e.position().map_or(0, |p| p.line());
        let message = e.to_string();
        match e.into_kind() {
            csv::ErrorKind::Io(io) => Error::io(source, io),
            _ => Error::Parse {
                file: source.to_path_buf(),
                line,
                field: "row".into(),
                message,
            },
        }
    };
    if !reader.read_byte_record(&mut record).map_err(csv_error)? {
        return Err(Error::BadFile {
            file: source.to_path_buf(),
            message: "empty file: no rows".into(),
        });
    }
    let first_line = record.position().map_or(1, |p| p.line());
    let first: Vec<String> = record
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let text = std::str::from_utf8(f)
                .map(str::to_owned)
                .map_err(|e| Error::Parse {
                    file: source.to_path_buf(),
                    line: first_line,
                    field: format!("#{}", i + 1),
                    message: format!("invalid UTF-8 ({e})"),
                });
            // A UTF-8 byte-order mark would otherwise glue itself to the first column's name.
            text.map(|t| {
                if i == 0 {
                    t.trim_start_matches('\u{feff}').to_owned()
                } else {
                    t
                }
            })
        })
        .collect::<Result<_>>()?;
    let has_header = opts.has_header.unwrap_or_else(|| {
        opts.columns.as_ref().is_some_and(ColumnMapping::uses_names)
            || first.iter().any(|f| role_of_alias(f).is_some())
    });
    let width = first.len();
    let header = has_header.then_some(first.as_slice());
    let columns = match (&opts.columns, header) {
        (Some(mapping), header) => mapping.resolve(header, width, source)?,
        (None, Some(header)) => resolve_by_aliases(header, source)?,
        (None, None) => {
            if width < 2 {
                return Err(Error::BadFile {
                    file: source.to_path_buf(),
                    message: format!("expected at least 2 columns (user, item), found {width}; pass a column mapping"),
                });
            }
            ColumnMapping::parse(
                &["user", "item", "rating", "timestamp"][..width.min(4)].join(","),
            )?
            .resolve(None, width, source)?
        }
    };
    // Errors name a column by its header, or by position when it has no (or a blank) name.
    let column_name = |index: usize| match header.and_then(|h| h.get(index)) {
        Some(name) if !name.trim().is_empty() => name.clone(),
        _ => format!("#{}", index + 1),
    };
    let names = ColumnNames {
        user: column_name(columns.user.unwrap_or(0)),
        item: column_name(columns.item.unwrap_or(1)),
        rating: columns.rating.map(column_name).unwrap_or_default(),
        weight: columns.weight.map(column_name).unwrap_or_default(),
        timestamp: columns.timestamp.map(column_name).unwrap_or_default(),
        event: columns.event.map(column_name).unwrap_or_default(),
        context: columns
            .context
            .iter()
            .map(|(_, i)| column_name(*i))
            .collect(),
    };

    let mut policy = RowPolicy::new(source, opts);
    let mut builder = InteractionsBuilder::new();
    let mut pending_first = !has_header;
    loop {
        if pending_first {
            pending_first = false;
        } else if !reader.read_byte_record(&mut record).map_err(csv_error)? {
            break;
        }
        let line = record.position().map_or(0, |p| p.line());
        policy.read();
        let range = &opts.timestamps;
        match parse_row(
            &record,
            width,
            &columns,
            &names,
            header,
            range,
            &mut builder,
        ) {
            Ok(()) => policy.imported(),
            Err(error) => policy.reject(line, error)?,
        }
    }
    let report = policy.finish();
    if report.rows_read == 0 {
        return Err(Error::BadFile {
            file: source.to_path_buf(),
            message: "no data rows after the header".into(),
        });
    }
    Ok((builder.build(), report))
}

/// Display names of the mapped columns, for error messages.
struct ColumnNames {
    user: String,
    item: String,
    rating: String,
    weight: String,
    timestamp: String,
    event: String,
    context: Vec<String>,
}

fn parse_row(
    record: &csv::ByteRecord,
    width: usize,
    columns: &ResolvedColumns,
    names: &ColumnNames,
    header: Option<&[String]>,
    range: &TimestampRange,
    builder: &mut InteractionsBuilder,
) -> Result<(), RowError> {
    if record.len() != width {
        let field = match header.and_then(|h| h.get(record.len())) {
            Some(name) if record.len() < width && !name.trim().is_empty() => name.clone(),
            _ => format!("#{}", record.len().min(width) + 1),
        };
        return Err(RowError::new(
            Problem::RaggedRow,
            field,
            format!(
                "ragged row: {} fields where the first row has {width}",
                record.len()
            ),
        ));
    }
    let text = |index: usize, name: &str| -> Result<&str, RowError> {
        let bytes = record.get(index).unwrap_or_default();
        std::str::from_utf8(bytes)
            .map(str::trim)
            .map_err(|e| RowError::new(Problem::InvalidUtf8, name, format!("invalid UTF-8 ({e})")))
    };
    let id = |index: usize, name: &str| -> Result<&str, RowError> {
        let value = text(index, name)?;
        if value.is_empty() {
            return Err(RowError::new(Problem::EmptyId, name, "empty id"));
        }
        Ok(value)
    };
    let user = id(columns.user.unwrap_or(0), &names.user)?;
    let item = id(columns.item.unwrap_or(1), &names.item)?;
    let rating = match columns.rating {
        Some(index) => parse_number(text(index, &names.rating)?, &names.rating)?,
        None => None,
    };
    let weight = match columns.weight {
        Some(index) => parse_number(text(index, &names.weight)?, &names.weight)?.unwrap_or(1.0),
        None => 1.0,
    };
    let timestamp = match columns.timestamp {
        Some(index) => {
            let value = text(index, &names.timestamp)?;
            if value.is_empty() {
                None
            } else {
                let seconds = parse_timestamp(value)
                    .ok_or_else(|| timestamp_error(&names.timestamp, value))?;
                Some(in_range(range, &names.timestamp, seconds)?)
            }
        }
        None => None,
    };
    let event_name = match columns.event {
        Some(index) => text(index, &names.event)?,
        None => "",
    };
    let mut context = Vec::with_capacity(columns.context.len());
    for ((key, index), name) in columns.context.iter().zip(&names.context) {
        let value = text(*index, name)?;
        if !value.is_empty() {
            context.push((key.as_str(), value));
        }
    }
    // Interning happens only once the whole row is known to be valid.
    let event = if event_name.is_empty() {
        default_event(rating)
    } else {
        builder.event_type(event_name)
    };
    let user = builder.intern_user(user);
    let item = builder.intern_item(item);
    let row = builder.push_indexed(user, item, rating, weight, event, timestamp);
    for (key, value) in context {
        builder.push_context(row, key, value);
    }
    Ok(())
}

/// The event of a row that names none.
pub(crate) fn default_event(rating: Option<f32>) -> EventType {
    if rating.is_some() {
        EventType::Rating
    } else {
        EventType::View
    }
}

pub(crate) fn timestamp_error(field: &str, value: &str) -> RowError {
    RowError::new(
        Problem::InvalidTimestamp,
        field,
        format!(
            "invalid timestamp `{value}`: expected unix seconds, YYYY-MM-DD[ HH:MM:SS] or RFC 3339"
        ),
    )
}

/// An optional finite number: empty text is `None`.
fn parse_number(value: &str, field: &str) -> Result<Option<f32>, RowError> {
    if value.is_empty() {
        return Ok(None);
    }
    match value.parse::<f32>() {
        Ok(x) if x.is_finite() => Ok(Some(x)),
        _ => Err(RowError::new(
            Problem::UnparsableNumber,
            field,
            format!("unparsable number `{value}`"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::import::test_support::temp_dir;
    use kindred_core::interactions::NO_TIMESTAMP;

    fn write(dir: &Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    fn lenient() -> ImportOptions {
        ImportOptions {
            skip_invalid: true,
            ..ImportOptions::default()
        }
    }

    #[test]
    fn timestamps_outside_the_range_are_bad_rows() {
        let input = b"user,item,rating,timestamp\nu1,i1,4,1700000000\nu1,i2,4,1700000000000\nu2,i1,3,-5\nu2,i2,5,2000-01-01\n";
        let strict = read_delimited(
            &input[..],
            Path::new("r.csv"),
            b',',
            &ImportOptions::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            strict.contains("r.csv:3")
                && strict.contains("timestamp")
                && strict.contains("milliseconds"),
            "{strict}"
        );
        let lenient = ImportOptions {
            skip_invalid: true,
            ..ImportOptions::default()
        };
        let (log, report) = read_delimited(&input[..], Path::new("r.csv"), b',', &lenient).unwrap();
        assert_eq!(log.len(), 2);
        assert_eq!(report.skipped.get("timestamp out of range"), Some(&2));
        // A wider range takes them all.
        let wide = ImportOptions {
            timestamps: kindred_core::TimestampRange {
                min: -100,
                max: i64::MAX,
                ..Default::default()
            },
            ..ImportOptions::default()
        };
        let (log, _) = read_delimited(&input[..], Path::new("r.csv"), b',', &wide).unwrap();
        assert_eq!(log.len(), 4);
    }

    fn with_columns(mapping: &str) -> ImportOptions {
        ImportOptions {
            columns: Some(mapping.parse().unwrap()),
            ..ImportOptions::default()
        }
    }

    #[test]
    fn header_by_common_names_with_dates_events_and_context() {
        let dir = temp_dir("csv-header");
        let path = write(
            &dir,
            "log.csv",
            b"userId,movieId,rating,timestamp,event,device\n\
              u1,m1,4.5,2023-11-14T22:13:20Z,,mobile\n\
              u2,m1,,1700000001,purchase,\n\
              u1,m2,3,,wishlist,desktop\n",
        );
        let opts = with_columns(
            "user=userId,item=movieId,rating=rating,timestamp=timestamp,event=event,context=device",
        );
        let (data, report) = load_delimited(&path, &opts).unwrap();
        let log = &data.interactions;
        assert_eq!(data.name, "log");
        assert_eq!(report.rows_imported, 3);
        assert_eq!(log.user_ids().externals(), &["u1", "u2"]);
        assert_eq!(
            log.timestamps(),
            &[1_700_000_000, 1_700_000_001, NO_TIMESTAMP]
        );
        assert_eq!(log.events()[0], EventType::Rating);
        assert_eq!(log.events()[1], EventType::Purchase);
        assert_eq!(log.event_name(log.events()[2]), "wishlist");
        assert!(log.ratings()[1].is_nan());
        assert_eq!(log.context().entries.len(), 2);

        let (auto, _) = load_delimited(&path, &ImportOptions::default()).unwrap();
        assert_eq!(auto.interactions.len(), 3);
        assert!(
            auto.interactions.context().entries.is_empty(),
            "unmapped columns are ignored"
        );
    }

    #[test]
    fn headerless_tsv_is_positional() {
        let dir = temp_dir("tsv");
        let path = write(&dir, "log.tsv", b"1\t10\t5\t100\n2\t10\t3\t200\n");
        let (data, report) = load_delimited(&path, &ImportOptions::default()).unwrap();
        assert_eq!(report.rows_read, 2);
        assert_eq!(data.interactions.ratings(), &[5.0, 3.0]);
        assert_eq!(data.interactions.timestamps(), &[100, 200]);
        let (weighted, _) = load_delimited(&path, &with_columns("user,item,_,weight")).unwrap();
        assert_eq!(weighted.interactions.weights(), &[100.0, 200.0]);
        assert_eq!(
            weighted.interactions.events(),
            &[EventType::View, EventType::View]
        );
    }

    #[test]
    fn errors_name_file_line_and_field() {
        let dir = temp_dir("csv-errors");
        let cases: &[(&str, &[u8], &str, &[&str])] = &[
            (
                "missing.csv",
                b"uid,pid\n1,2\n",
                "user=uid,item=pid,rating=stars",
                &["missing.csv", "`stars`", "uid, pid"],
            ),
            (
                "number.csv",
                b"user,item,rating\n1,2,3\n1,3,four\n",
                "",
                &["number.csv:3:", "`rating`", "four"],
            ),
            (
                "ragged.csv",
                b"user,item,rating\n1,2,3\n1,3\n",
                "",
                &["ragged.csv:3:", "`rating`", "ragged"],
            ),
            (
                "utf8.csv",
                b"user,item\n1,2\n\xff\xfe,3\n",
                "",
                &["utf8.csv:3:", "`user`", "UTF-8"],
            ),
            ("empty.csv", b"", "", &["empty.csv", "empty file"]),
            (
                "header_only.csv",
                b"user,item\n",
                "",
                &["header_only.csv", "no data rows"],
            ),
            (
                "no_item.csv",
                b"user,thing\n1,2\n",
                "",
                &["no_item.csv", "missing column `item`"],
            ),
            (
                "time.csv",
                b"user,item,timestamp\n1,2,2023-02-30\n",
                "",
                &["time.csv:2:", "`timestamp`", "2023-02-30"],
            ),
            (
                "emptyid.csv",
                b"user,item\n1,2\n , 3\n",
                "",
                &["emptyid.csv:3:", "`user`", "empty id"],
            ),
        ];
        for (name, bytes, mapping, needles) in cases {
            let path = write(&dir, name, bytes);
            let opts = if mapping.is_empty() {
                ImportOptions::default()
            } else {
                with_columns(mapping)
            };
            let message = load_delimited(&path, &opts).unwrap_err().to_string();
            for needle in *needles {
                assert!(
                    message.contains(needle),
                    "{name}: `{message}` lacks `{needle}`"
                );
            }
        }
    }

    #[test]
    fn skip_invalid_counts_every_kind() {
        let dir = temp_dir("csv-skip");
        let path = write(
            &dir,
            "mixed.csv",
            b"user,item,rating,timestamp\n\
              1,2,4,100\n\
              1,3,x,100\n\
              1,4\n\
              \xe9,5,1,1\n\
              ,6,1,1\n\
              1,7,1,never\n\
              2,2,5,200\n",
        );
        let (data, report) = load_delimited(&path, &lenient()).unwrap();
        assert_eq!(data.interactions.len(), 2);
        assert_eq!(report.rows_read, 7);
        assert_eq!(report.rows_imported, 2);
        for kind in [
            "unparsable number",
            "ragged row",
            "invalid utf-8",
            "empty id",
            "invalid timestamp",
        ] {
            assert_eq!(
                report.skipped.get(kind),
                Some(&1),
                "{kind} in {:?}",
                report.skipped
            );
        }
        assert_eq!(
            report.rows_read,
            report.rows_imported + report.skipped_total()
        );
        assert_eq!(report.examples.len(), 5);
        assert!(
            report.examples[0].contains("mixed.csv:3:"),
            "{}",
            report.examples[0]
        );
        assert_eq!(
            data.interactions.user_ids().externals(),
            &["1", "2"],
            "skipped rows intern nothing"
        );
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(128))]
        /// Whatever the bytes, a lenient import accounts for every row and never panics.
        #[test]
        fn lenient_import_accounts_for_every_row(body in proptest::collection::vec(
            proptest::prop_oneof![
                proptest::prelude::Just(b"u,i,3,100\n".to_vec()),
                proptest::collection::vec(proptest::prelude::any::<u8>(), 0..12),
            ],
            1..20,
        )) {
            let mut input = b"user,item,rating,timestamp\n".to_vec();
            input.extend(body.concat());
            if let Ok((log, report)) = read_delimited(input.as_slice(), Path::new("fuzz.csv"), b',', &lenient()) {
                proptest::prop_assert_eq!(report.rows_read, report.rows_imported + report.skipped_total());
                proptest::prop_assert_eq!(report.rows_imported as usize, log.len());
            }
        }
    }

    #[test]
    fn explicit_header_flag_and_delimiter() {
        let dir = temp_dir("csv-flags");
        let path = write(&dir, "log.txt", b"a;b;1\nc;d;2\n");
        let opts = ImportOptions {
            delimiter: Some(b';'),
            has_header: Some(false),
            ..ImportOptions::default()
        };
        let (data, _) = load_delimited(&path, &opts).unwrap();
        assert_eq!(data.interactions.item_ids().externals(), &["b", "d"]);
        assert_eq!(data.interactions.ratings(), &[1.0, 2.0]);
        let named_without_header = ImportOptions {
            has_header: Some(false),
            ..with_columns("user=a,item=b")
        };
        let err = load_delimited(&path, &named_without_header)
            .unwrap_err()
            .to_string();
        assert!(err.contains("no header"), "{err}");
    }

    #[test]
    fn errors_name_columns_with_a_blank_header_by_position() {
        // Found by the `csv_import` fuzz target: a ragged row whose missing column had an empty
        // header name gave an error naming no field.
        let input = b"user,item,,rating\nu1,i1\n";
        let err = read_delimited(
            &input[..],
            Path::new("f.csv"),
            b',',
            &ImportOptions::default(),
        )
        .unwrap_err();
        match err {
            Error::Parse { line, field, .. } => assert_eq!((line, field.as_str()), (2, "#3")),
            other => panic!("{other:?}"),
        }
        let mapped = ImportOptions {
            has_header: Some(true),
            ..with_columns("user,item,rating")
        };
        let input = b"user, ,stars\nu1,,4\n";
        let err = read_delimited(&input[..], Path::new("f.csv"), b',', &mapped).unwrap_err();
        match err {
            Error::Parse { field, .. } => assert_eq!(field, "#2"),
            other => panic!("{other:?}"),
        }
    }
}
