//! Factor matrices as Parquet: one file per worker with columns `id` (string) and `features`
//! (list of float32), the layout Spark MLlib's ALS writes, so other tools read them directly.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::builder::{Float32Builder, ListBuilder};
use arrow_array::cast::AsArray;
use arrow_array::types::Float32Type;
use arrow_array::{ArrayRef, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;

use crate::error::{Error, Result};

const BATCH_ROWS: usize = 16 * 1024;

fn parquet_error(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Core(kindred_core::Error::BadFile {
        file: path.to_path_buf(),
        message: format!("Parquet: {e}"),
    })
}

/// Writes rows `ids[r]` with `values[r * f..(r + 1) * f]` to `path`.
pub fn write_factors(path: &Path, ids: &[String], values: &[f64], f: usize) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Utf8, false),
        Field::new(
            "features",
            DataType::List(Arc::new(Field::new("item", DataType::Float32, true))),
            false,
        ),
    ]));
    let file = File::create(path).map_err(|e| Error::io(path, e))?;
    let mut writer = ArrowWriter::try_new(file, Arc::clone(&schema), None)
        .map_err(|e| parquet_error(path, e))?;
    for start in (0..ids.len()).step_by(BATCH_ROWS) {
        let end = (start + BATCH_ROWS).min(ids.len());
        let mut features = ListBuilder::new(Float32Builder::with_capacity((end - start) * f))
            .with_field(Arc::new(Field::new("item", DataType::Float32, true)));
        for r in start..end {
            for v in &values[r * f..(r + 1) * f] {
                features.values().append_value(*v as f32);
            }
            features.append(true);
        }
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from_iter_values(ids[start..end].iter())),
            Arc::new(features.finish()),
        ];
        let batch = RecordBatch::try_new(Arc::clone(&schema), columns)
            .map_err(|e| parquet_error(path, e))?;
        writer.write(&batch).map_err(|e| parquet_error(path, e))?;
    }
    writer.close().map_err(|e| parquet_error(path, e))?;
    Ok(())
}

/// Reads every `*.parquet` file of `dir` (in name order) written by [`write_factors`]: ids and
/// row-major values.
pub fn read_factors(dir: &Path) -> Result<(Vec<String>, Vec<f32>, usize)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "parquet"))
        .collect();
    files.sort();
    let (mut ids, mut values, mut f) = (Vec::new(), Vec::new(), 0usize);
    for path in files {
        let file = File::open(&path).map_err(|e| Error::io(&path, e))?;
        let reader = ParquetRecordBatchReaderBuilder::try_new(file)
            .and_then(|b| b.build())
            .map_err(|e| parquet_error(&path, e))?;
        for batch in reader {
            let batch = batch.map_err(|e| parquet_error(&path, e))?;
            let (Some(id), Some(features)) = (
                batch
                    .column_by_name("id")
                    .and_then(|c| c.as_string_opt::<i32>()),
                batch
                    .column_by_name("features")
                    .and_then(|c| c.as_list_opt::<i32>()),
            ) else {
                return Err(parquet_error(
                    &path,
                    "expected columns id (string) and features (list of float32)",
                ));
            };
            for r in 0..batch.num_rows() {
                let row = features.value(r);
                let Some(row) = row.as_primitive_opt::<Float32Type>() else {
                    return Err(parquet_error(&path, "features must be float32"));
                };
                if f == 0 {
                    f = row.len();
                } else if row.len() != f {
                    return Err(parquet_error(
                        &path,
                        format!("row {} has {} features, earlier rows {f}", r + 1, row.len()),
                    ));
                }
                ids.push(id.value(r).to_owned());
                values.extend(row.values().iter().copied());
            }
        }
    }
    Ok((ids, values, f))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn factors_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let ids: Vec<String> = (0..5).map(|i| format!("u{i}")).collect();
        let values: Vec<f64> = (0..15).map(|v| v as f64 * 0.5).collect();
        write_factors(&dir.path().join("part-00000.parquet"), &ids, &values, 3).unwrap();
        let (back_ids, back, f) = read_factors(dir.path()).unwrap();
        assert_eq!((back_ids, f), (ids, 3));
        assert_eq!(back, values.iter().map(|&v| v as f32).collect::<Vec<_>>());
    }
}
