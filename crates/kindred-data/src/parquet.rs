//! Interactions in Parquet: the reader behind `parquet:FILE` and the writer behind exports.
//!
//! The reader takes columns `user` and `item` (strings or integers) and optionally `rating` and
//! `weight` (floats or integers), `timestamp` (integer unix seconds, a Parquet timestamp of any
//! unit, a date, or a date string) and `event` (string). Other names are found the same way as
//! CSV headers (`user_id`, `movieId`, ...), and a [`ColumnMapping`](crate::column_mapping::ColumnMapping)
//! (`user=uid,item=sku,context=device`) renames them. Nulls mean "absent" (no rating, weight 1,
//! no timestamp, default event) except in id columns, where they are errors.
//!
//! Errors name the file, the 1-based row (as `line`), the row group and the column.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use ::parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder,
};
use ::parquet::arrow::ArrowWriter;
pub use ::parquet::file::reader::ChunkReader;
use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Float32Type, Float64Type, Int32Type, Int64Type, TimestampMicrosecondType,
    TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType, UInt32Type, UInt64Type,
};
use arrow_array::{Array, ArrayRef, Float32Array, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use kindred_core::interactions::NO_TIMESTAMP;
use kindred_core::{Dataset, Error, Interactions, InteractionsBuilder, Result, TimestampRange};

use crate::column_mapping::{resolve_by_aliases, ResolvedColumns};
use crate::delimited::{default_event, timestamp_error};
use crate::export_columns::EXPORT_COLUMNS;
use crate::import::{
    in_range, name_from_path, parse_timestamp, ImportOptions, ImportReport, Problem, RowError,
    RowPolicy,
};
use crate::parquet_pages::check_page_sizes;

/// Rows per record batch, both reading and writing.
const BATCH_ROWS: usize = 64 * 1024;
/// Most rows reserved up front from the row counts a file declares (they can be anything; the
/// table grows past this as rows are actually read).
const MAX_RESERVED_ROWS: usize = 1 << 20;

fn bad_file(path: &Path, message: impl Into<String>) -> Error {
    Error::BadFile {
        file: path.to_path_buf(),
        message: message.into(),
    }
}

/// Loads interactions from a Parquet file.
pub fn load_parquet(path: &Path, opts: &ImportOptions) -> Result<(Dataset, ImportReport)> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let (interactions, report) = read_parquet(file, path, opts)?;
    Ok((Dataset::new(name_from_path(path), interactions), report))
}

/// Reads interactions from Parquet data (a file, or bytes in memory); `path` names the input in
/// errors.
///
/// The `parquet` crate has panicked on malformed files instead of returning an error (before 60
/// its Thrift metadata decoder unwrapped fields of the wrong wire type; the `parquet_import` fuzz
/// target found it). A panic is still caught here and reported as an unreadable file, so a bad
/// input cannot bring the process down whatever the dependency does.
pub fn read_parquet<R: ChunkReader + 'static>(
    file: R,
    path: &Path,
    opts: &ImportOptions,
) -> Result<(Interactions, ImportReport)> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        read_unguarded(file, path, opts)
    }))
    .unwrap_or_else(|panic| {
        let why = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "the decoder panicked".to_owned());
        Err(bad_file(
            path,
            format!("not a readable Parquet file: {why}"),
        ))
    })
}

fn read_unguarded<R: ChunkReader + 'static>(
    file: R,
    path: &Path,
    opts: &ImportOptions,
) -> Result<(Interactions, ImportReport)> {
    // Without the embedded Arrow schema, strings always read as plain Utf8 (never dictionaries
    // or large strings), which keeps the set of column types to handle small.
    let options = ArrowReaderOptions::new().with_skip_arrow_metadata(true);
    let metadata = ArrowReaderMetadata::load(&file, options)
        .map_err(|e| bad_file(path, format!("not a readable Parquet file: {e}")))?;
    check_page_sizes(&file, metadata.metadata())
        .map_err(|why| bad_file(path, format!("not a readable Parquet file: {why}")))?;
    let builder = ParquetRecordBatchReaderBuilder::new_with_metadata(file, metadata);
    let group_ends: Vec<u64> = builder
        .metadata()
        .row_groups()
        .iter()
        .scan(0u64, |end, group| {
            *end += group.num_rows().max(0) as u64;
            Some(*end)
        })
        .collect();
    let schema = Arc::clone(builder.schema());
    let names: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
    let columns = match &opts.columns {
        Some(mapping) => mapping.resolve(Some(&names), names.len(), path)?,
        None => resolve_by_aliases(&names, path)?,
    };
    for (role, index) in column_roles(&columns) {
        let field = schema.field(index);
        if !supports(role, field.data_type()) {
            return Err(bad_file(
                path,
                format!(
                    "column `{}` (for {role}) has unsupported type {}",
                    field.name(),
                    field.data_type()
                ),
            ));
        }
    }
    let reader = builder
        .with_batch_size(BATCH_ROWS)
        .build()
        .map_err(|e| bad_file(path, format!("not a readable Parquet file: {e}")))?;

    let mut policy = RowPolicy::new(path, opts);
    let declared_rows = group_ends.last().copied().unwrap_or(0);
    let mut interactions = InteractionsBuilder::with_capacity(
        usize::try_from(declared_rows).map_or(MAX_RESERVED_ROWS, |n| n.min(MAX_RESERVED_ROWS)),
    );
    let mut first_row = 0u64;
    let mut id_buffers = (String::new(), String::new());
    for batch in reader {
        let batch = batch.map_err(|e| {
            bad_file(
                path,
                format!("{}: unreadable data: {e}", locate(&group_ends, first_row)),
            )
        })?;
        let view = BatchView::new(&batch, &columns, &names);
        for row in 0..batch.num_rows() {
            policy.read();
            let global = first_row + row as u64;
            match view.push_row(row, &opts.timestamps, &mut interactions, &mut id_buffers) {
                Ok(()) => policy.imported(),
                Err(mut error) => {
                    error.message = format!("{}: {}", locate(&group_ends, global), error.message);
                    policy.reject(global + 1, error)?;
                }
            }
        }
        first_row += batch.num_rows() as u64;
    }
    let report = policy.finish();
    if report.rows_read == 0 {
        return Err(bad_file(path, "no rows"));
    }
    Ok((interactions.build(), report))
}

/// `row group G, row R` (both 0-based within the file's structure) of a 0-based file row.
fn locate(group_ends: &[u64], row: u64) -> String {
    let group = group_ends.partition_point(|&end| end <= row);
    let start = if group == 0 { 0 } else { group_ends[group - 1] };
    format!("row group {group}, row {}", row - start)
}

fn column_roles(columns: &ResolvedColumns) -> Vec<(&'static str, usize)> {
    let mut roles = Vec::new();
    for (role, index) in [
        ("user", columns.user),
        ("item", columns.item),
        ("rating", columns.rating),
        ("weight", columns.weight),
        ("timestamp", columns.timestamp),
        ("event", columns.event),
    ] {
        if let Some(index) = index {
            roles.push((role, index));
        }
    }
    roles.extend(columns.context.iter().map(|(_, index)| ("context", *index)));
    roles
}

fn is_integer(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::Int32 | DataType::Int64 | DataType::UInt32 | DataType::UInt64
    )
}

fn supports(role: &str, data_type: &DataType) -> bool {
    match role {
        "user" | "item" | "context" => matches!(data_type, DataType::Utf8) || is_integer(data_type),
        "rating" | "weight" => {
            matches!(data_type, DataType::Float32 | DataType::Float64) || is_integer(data_type)
        }
        "timestamp" => {
            is_integer(data_type)
                || matches!(
                    data_type,
                    DataType::Timestamp(_, _) | DataType::Date32 | DataType::Utf8
                )
        }
        "event" => matches!(data_type, DataType::Utf8),
        _ => false,
    }
}

/// The mapped columns of one record batch, with their names for errors.
struct BatchView<'a> {
    user: (&'a ArrayRef, &'a str),
    item: (&'a ArrayRef, &'a str),
    rating: Option<(&'a ArrayRef, &'a str)>,
    weight: Option<(&'a ArrayRef, &'a str)>,
    timestamp: Option<(&'a ArrayRef, &'a str)>,
    event: Option<(&'a ArrayRef, &'a str)>,
    context: Vec<(&'a str, &'a ArrayRef, &'a str)>,
}

impl<'a> BatchView<'a> {
    fn new(batch: &'a RecordBatch, columns: &'a ResolvedColumns, names: &'a [String]) -> Self {
        let column = |index: usize| (batch.column(index), names[index].as_str());
        Self {
            user: column(columns.user.unwrap_or(0)),
            item: column(columns.item.unwrap_or(1)),
            rating: columns.rating.map(column),
            weight: columns.weight.map(column),
            timestamp: columns.timestamp.map(column),
            event: columns.event.map(column),
            context: columns
                .context
                .iter()
                .map(|(key, index)| (key.as_str(), batch.column(*index), names[*index].as_str()))
                .collect(),
        }
    }

    fn push_row(
        &self,
        row: usize,
        range: &TimestampRange,
        builder: &mut InteractionsBuilder,
        buffers: &mut (String, String),
    ) -> Result<(), RowError> {
        let user = id_at(self.user, row, &mut buffers.0)?;
        let item = id_at(self.item, row, &mut buffers.1)?;
        let rating = self
            .rating
            .map(|c| number_at(c, row))
            .transpose()?
            .flatten();
        let weight = self
            .weight
            .map(|c| number_at(c, row))
            .transpose()?
            .flatten()
            .unwrap_or(1.0);
        let timestamp = self
            .timestamp
            .map(|c| {
                timestamp_at(c, row)?
                    .map(|t| in_range(range, c.1, t))
                    .transpose()
            })
            .transpose()?
            .flatten();
        let event_name = match self.event {
            Some((array, _)) if array.is_valid(row) => {
                array.as_string_opt::<i32>().map(|a| a.value(row))
            }
            _ => None,
        };
        let mut context = Vec::new();
        for &(key, array, name) in &self.context {
            if array.is_valid(row) {
                let mut buffer = String::new();
                // An empty context cell means "no value", unlike an empty id.
                match id_at((array, name), row, &mut buffer) {
                    Ok(value) => context.push((key, value.to_owned())),
                    Err(e) if e.kind == Problem::EmptyId => {}
                    Err(e) => return Err(e),
                }
            }
        }
        let event = match event_name.map(str::trim) {
            Some(name) if !name.is_empty() => builder.event_type(name),
            _ => default_event(rating),
        };
        let user = builder.intern_user(user);
        let item = builder.intern_item(item);
        let row = builder.push_indexed(user, item, rating, weight, event, timestamp);
        for (key, value) in context {
            builder.push_context(row, key, &value);
        }
        Ok(())
    }
}

/// A string or integer id as text, borrowed from the array or formatted into `buffer`.
fn id_at<'b>(
    (array, name): (&'b ArrayRef, &str),
    row: usize,
    buffer: &'b mut String,
) -> Result<&'b str, RowError> {
    if array.is_null(row) {
        return Err(RowError::new(Problem::MissingField, name, "null id"));
    }
    buffer.clear();
    let text: &str = if let Some(strings) = array.as_string_opt::<i32>() {
        strings.value(row).trim()
    } else {
        use std::fmt::Write as _;
        // Writing into a String cannot fail.
        let _ = match array.data_type() {
            DataType::Int32 => write!(buffer, "{}", array.as_primitive::<Int32Type>().value(row)),
            DataType::Int64 => write!(buffer, "{}", array.as_primitive::<Int64Type>().value(row)),
            DataType::UInt32 => write!(buffer, "{}", array.as_primitive::<UInt32Type>().value(row)),
            DataType::UInt64 => write!(buffer, "{}", array.as_primitive::<UInt64Type>().value(row)),
            other => {
                return Err(RowError::new(
                    Problem::WrongType,
                    name,
                    format!("unsupported type {other}"),
                ))
            }
        };
        buffer.as_str()
    };
    if text.is_empty() {
        return Err(RowError::new(Problem::EmptyId, name, "empty id"));
    }
    Ok(text)
}

fn number_at((array, name): (&ArrayRef, &str), row: usize) -> Result<Option<f32>, RowError> {
    if array.is_null(row) {
        return Ok(None);
    }
    let value = match array.data_type() {
        DataType::Float32 => array.as_primitive::<Float32Type>().value(row),
        DataType::Float64 => array.as_primitive::<Float64Type>().value(row) as f32,
        DataType::Int32 => array.as_primitive::<Int32Type>().value(row) as f32,
        DataType::Int64 => array.as_primitive::<Int64Type>().value(row) as f32,
        DataType::UInt32 => array.as_primitive::<UInt32Type>().value(row) as f32,
        DataType::UInt64 => array.as_primitive::<UInt64Type>().value(row) as f32,
        other => {
            return Err(RowError::new(
                Problem::WrongType,
                name,
                format!("unsupported type {other}"),
            ))
        }
    };
    if !value.is_finite() {
        return Err(RowError::new(
            Problem::UnparsableNumber,
            name,
            format!("not a finite number: {value}"),
        ));
    }
    Ok(Some(value))
}

fn timestamp_at((array, name): (&ArrayRef, &str), row: usize) -> Result<Option<i64>, RowError> {
    if array.is_null(row) {
        return Ok(None);
    }
    let seconds = match array.data_type() {
        DataType::Int32 => i64::from(array.as_primitive::<Int32Type>().value(row)),
        DataType::Int64 => array.as_primitive::<Int64Type>().value(row),
        DataType::UInt32 => i64::from(array.as_primitive::<UInt32Type>().value(row)),
        DataType::UInt64 => {
            let value = array.as_primitive::<UInt64Type>().value(row);
            i64::try_from(value).map_err(|_| timestamp_error(name, &value.to_string()))?
        }
        DataType::Timestamp(TimeUnit::Second, _) => {
            array.as_primitive::<TimestampSecondType>().value(row)
        }
        DataType::Timestamp(TimeUnit::Millisecond, _) => array
            .as_primitive::<TimestampMillisecondType>()
            .value(row)
            .div_euclid(1_000),
        DataType::Timestamp(TimeUnit::Microsecond, _) => array
            .as_primitive::<TimestampMicrosecondType>()
            .value(row)
            .div_euclid(1_000_000),
        DataType::Timestamp(TimeUnit::Nanosecond, _) => array
            .as_primitive::<TimestampNanosecondType>()
            .value(row)
            .div_euclid(1_000_000_000),
        DataType::Date32 => i64::from(array.as_primitive::<Date32Type>().value(row)) * 86_400,
        DataType::Utf8 => {
            let text = array.as_string::<i32>().value(row);
            if text.trim().is_empty() {
                return Ok(None);
            }
            parse_timestamp(text).ok_or_else(|| timestamp_error(name, text))?
        }
        other => {
            return Err(RowError::new(
                Problem::WrongType,
                name,
                format!("unsupported type {other}"),
            ))
        }
    };
    Ok(Some(seconds))
}

/// Writes `log` as Parquet (Snappy-compressed) with the columns of every export:
/// `user`, `item` (strings), `rating` (float, null when absent), `weight` (float), `event`
/// (string) and `timestamp` (int64 unix seconds, null when absent).
pub fn write_parquet(log: &Interactions, path: &Path) -> Result<()> {
    let [user, item, rating, weight, event, timestamp] = EXPORT_COLUMNS;
    let schema = Arc::new(Schema::new(vec![
        Field::new(user, DataType::Utf8, false),
        Field::new(item, DataType::Utf8, false),
        Field::new(rating, DataType::Float32, true),
        Field::new(weight, DataType::Float32, false),
        Field::new(event, DataType::Utf8, false),
        Field::new(timestamp, DataType::Int64, true),
    ]));
    let file = File::create(path).map_err(|e| Error::io(path, e))?;
    let properties = ::parquet::file::properties::WriterProperties::builder()
        .set_compression(::parquet::basic::Compression::SNAPPY)
        .build();
    let write_error =
        |e: ::parquet::errors::ParquetError| bad_file(path, format!("cannot write Parquet: {e}"));
    let mut writer =
        ArrowWriter::try_new(file, Arc::clone(&schema), Some(properties)).map_err(write_error)?;
    let users = log.user_ids();
    let items = log.item_ids();
    let mut start = 0;
    while start < log.len() {
        let end = (start + BATCH_ROWS).min(log.len());
        let rows = start..end;
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from_iter_values(
                log.users()[rows.clone()]
                    .iter()
                    .map(|&u| users.try_external(u).unwrap_or_default()),
            )),
            Arc::new(StringArray::from_iter_values(
                log.items()[rows.clone()]
                    .iter()
                    .map(|&i| items.try_external(i).unwrap_or_default()),
            )),
            Arc::new(Float32Array::from_iter(
                log.ratings()[rows.clone()]
                    .iter()
                    .map(|&r| (!r.is_nan()).then_some(r)),
            )),
            Arc::new(Float32Array::from_iter_values(
                log.weights()[rows.clone()].iter().copied(),
            )),
            Arc::new(StringArray::from_iter_values(
                log.events()[rows.clone()]
                    .iter()
                    .map(|&e| log.event_name(e)),
            )),
            Arc::new(Int64Array::from_iter(
                log.timestamps()[rows]
                    .iter()
                    .map(|&t| (t != NO_TIMESTAMP).then_some(t)),
            )),
        ];
        let batch = RecordBatch::try_new(Arc::clone(&schema), columns)
            .map_err(|e| bad_file(path, format!("cannot build a record batch: {e}")))?;
        writer.write(&batch).map_err(write_error)?;
        start = end;
    }
    writer.close().map_err(write_error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::import::test_support::temp_dir;
    use arrow_array::{Float64Array, Int32Array, TimestampMillisecondArray};

    fn write_batch(path: &Path, batch: &RecordBatch, rows_per_group: usize) {
        let properties = ::parquet::file::properties::WriterProperties::builder()
            .set_max_row_group_row_count(Some(rows_per_group))
            .build();
        let mut writer = ArrowWriter::try_new(
            File::create(path).unwrap(),
            batch.schema(),
            Some(properties),
        )
        .unwrap();
        writer.write(batch).unwrap();
        writer.close().unwrap();
    }

    #[test]
    fn a_file_the_parquet_decoder_panics_on_is_a_bad_file() {
        // Found by the `parquet_import` fuzz target: a mutated footer made the Thrift decoder of
        // `parquet` 57 unwrap `None`; whatever the decoder does with it, it is a bad file.
        bad_file_message(
            "parquet-panic",
            include_bytes!("../tests/data/parquet-thrift-panic.parquet"),
        );
    }

    /// Writes `bytes` to a file, loads it and returns the message of the `BadFile` error, which
    /// must name the file and say it is not readable Parquet.
    fn bad_file_message(tag: &str, bytes: &[u8]) -> String {
        let dir = temp_dir(tag);
        let path = dir.join("bad.parquet");
        std::fs::write(&path, bytes).unwrap();
        match load_parquet(&path, &ImportOptions::default()) {
            Err(Error::BadFile { file, message }) => {
                assert_eq!(file, path);
                assert!(
                    message.starts_with("not a readable Parquet file"),
                    "{message}"
                );
                message
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_page_declaring_more_than_snappy_can_produce_is_a_bad_file() {
        // Found by the `parquet_import` fuzz target on parquet 60: a page header declaring 1.4 GB
        // uncompressed from a few bytes made the decoder reserve all of it first. Its page size
        // is a 64-bit varint where an i32 belongs.
        let message = bad_file_message(
            "parquet-page-bomb",
            include_bytes!("../tests/data/parquet-page-size-bomb.parquet"),
        );
        assert!(message.contains("page header at byte 77"), "{message}");

        // A well-formed Snappy file whose first page header is made to declare 1 MiB.
        let batch = RecordBatch::try_from_iter(vec![(
            "user",
            Arc::new(Int64Array::from(vec![7; 50_000])) as ArrayRef,
        )])
        .unwrap();
        let properties = ::parquet::file::properties::WriterProperties::builder()
            .set_compression(::parquet::basic::Compression::SNAPPY)
            .set_dictionary_enabled(false)
            .build();
        let mut bytes = Vec::new();
        let mut writer =
            ArrowWriter::try_new(&mut bytes, batch.schema(), Some(properties)).unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
        // After `PAR1`: field 1 (page type), then field 2, the uncompressed size, a 3-byte varint.
        assert_eq!(&bytes[4..7], &[0x15, 0x00, 0x15]);
        assert!(bytes[7] >= 0x80 && bytes[8] >= 0x80 && bytes[9] < 0x80);
        bytes[7..10].copy_from_slice(&[0xfe, 0xff, 0x7f]);
        let message = bad_file_message("parquet-page-inflated", &bytes);
        assert!(
            message.contains("declares 1048575 bytes uncompressed from")
                && message.contains("more than Snappy can produce"),
            "{message}"
        );
    }

    #[test]
    fn snappy_files_with_many_pages_and_dictionaries_pass_the_page_check() {
        let dir = temp_dir("parquet-snappy-pages");
        let path = dir.join("snappy.parquet");
        let n = 50_000;
        let batch = RecordBatch::try_from_iter(vec![
            (
                "user",
                Arc::new(StringArray::from_iter_values(
                    (0..n).map(|i| format!("u{}", i % 700)),
                )) as ArrayRef,
            ),
            (
                "item",
                Arc::new(Int64Array::from_iter_values((0..n).map(|i| i * 7 % 3_001))) as ArrayRef,
            ),
            (
                "rating",
                Arc::new(Float64Array::from_iter_values(
                    (0..n).map(|i| (i % 5 + 1) as f64),
                )) as ArrayRef,
            ),
        ])
        .unwrap();
        let properties = ::parquet::file::properties::WriterProperties::builder()
            .set_compression(::parquet::basic::Compression::SNAPPY)
            .set_data_page_size_limit(1024)
            .set_max_row_group_row_count(Some(20_000))
            .build();
        let mut writer = ArrowWriter::try_new(
            File::create(&path).unwrap(),
            batch.schema(),
            Some(properties),
        )
        .unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
        let file = File::open(&path).unwrap();
        let metadata = ArrowReaderMetadata::load(&file, ArrowReaderOptions::new()).unwrap();
        let snappy_chunks: usize = metadata
            .metadata()
            .row_groups()
            .iter()
            .flat_map(|g| g.columns())
            .filter(|c| c.compression() == ::parquet::basic::Compression::SNAPPY)
            .count();
        assert_eq!(snappy_chunks, 9, "three row groups of three Snappy columns");
        check_page_sizes(&file, metadata.metadata()).unwrap();
        let (data, report) = load_parquet(&path, &ImportOptions::default()).unwrap();
        assert_eq!(data.interactions.len(), n as usize);
        assert_eq!(report.rows_imported, n as u64);
    }

    #[test]
    fn integer_ids_typed_timestamps_and_mapping() {
        let dir = temp_dir("parquet-types");
        let path = dir.join("typed.parquet");
        let batch = RecordBatch::try_from_iter(vec![
            ("uid", Arc::new(Int64Array::from(vec![1, 2, 1])) as ArrayRef),
            (
                "sku",
                Arc::new(Int32Array::from(vec![10, 10, 20])) as ArrayRef,
            ),
            (
                "stars",
                Arc::new(Float64Array::from(vec![Some(4.5), None, Some(1.0)])) as ArrayRef,
            ),
            (
                "when",
                Arc::new(TimestampMillisecondArray::from(vec![
                    1_700_000_000_999,
                    0,
                    -1,
                ])) as ArrayRef,
            ),
            (
                "device",
                Arc::new(StringArray::from(vec![Some("tv"), None, Some("phone")])) as ArrayRef,
            ),
        ])
        .unwrap();
        write_batch(&path, &batch, 2);
        let opts = ImportOptions {
            columns: Some(
                "user=uid,item=sku,rating=stars,timestamp=when,context=device"
                    .parse()
                    .unwrap(),
            ),
            // -1 (a typed timestamp one second before 1970) is outside the default range.
            timestamps: kindred_core::TimestampRange {
                min: -1,
                max: i64::MAX,
                ..Default::default()
            },
            ..ImportOptions::default()
        };
        let (data, _) = load_parquet(&path, &opts).unwrap();
        let log = &data.interactions;
        assert_eq!(log.user_ids().externals(), &["1", "2"]);
        assert_eq!(log.item_ids().externals(), &["10", "20"]);
        assert!(log.ratings()[1].is_nan());
        assert_eq!(log.timestamps(), &[1_700_000_000, 0, -1]);
        assert_eq!(log.context().entries.len(), 2);
        let err = load_parquet(&path, &ImportOptions::default())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("typed.parquet") && err.contains("missing column `item`"),
            "{err}"
        );
    }

    #[test]
    fn errors_name_row_group_row_and_column() {
        let dir = temp_dir("parquet-errors");
        let path = dir.join("bad.parquet");
        let batch = RecordBatch::try_from_iter(vec![
            (
                "user",
                Arc::new(StringArray::from(vec![
                    Some("a"),
                    Some("b"),
                    None,
                    Some(""),
                ])) as ArrayRef,
            ),
            (
                "item",
                Arc::new(StringArray::from(vec!["x", "y", "z", "w"])) as ArrayRef,
            ),
            (
                "rating",
                Arc::new(Float32Array::from(vec![1.0, f32::NAN, 2.0, 3.0])) as ArrayRef,
            ),
        ])
        .unwrap();
        write_batch(&path, &batch, 2);
        let err = load_parquet(&path, &ImportOptions::default())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("bad.parquet:2:")
                && err.contains("`rating`")
                && err.contains("row group 0, row 1"),
            "{err}"
        );
        let opts = ImportOptions {
            skip_invalid: true,
            ..ImportOptions::default()
        };
        let (data, report) = load_parquet(&path, &opts).unwrap();
        assert_eq!(data.interactions.len(), 1);
        assert_eq!(report.skipped["unparsable number"], 1);
        assert_eq!(report.skipped["missing field"], 1);
        assert_eq!(report.skipped["empty id"], 1);
        assert!(
            report.examples[1].contains("bad.parquet:3:")
                && report.examples[1].contains("row group 1, row 0")
        );

        let not_parquet = dir.join("text.parquet");
        std::fs::write(&not_parquet, b"user,item\n").unwrap();
        let err = load_parquet(&not_parquet, &ImportOptions::default()).unwrap_err();
        assert!(matches!(err, Error::BadFile { .. }), "{err}");

        let wrong_type = dir.join("wrong.parquet");
        let batch = RecordBatch::try_from_iter(vec![
            ("user", Arc::new(StringArray::from(vec!["a"])) as ArrayRef),
            ("item", Arc::new(Float64Array::from(vec![1.5])) as ArrayRef),
        ])
        .unwrap();
        write_batch(&wrong_type, &batch, 10);
        let err = load_parquet(&wrong_type, &ImportOptions::default())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`item`") && err.contains("unsupported type"),
            "{err}"
        );
    }
}
