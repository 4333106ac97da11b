//! Batch top-K output as Parquet: one file per worker (`part-00000.parquet`, ...) with one row
//! per list entry, external ids as strings. User lists have columns `user, item, rank, score`,
//! item neighbour lists `item, neighbour, rank, score`; `rank` is 1-based, best first.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float32Type, Int32Type};
use arrow_array::{Array, ArrayRef, Float32Array, Int32Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use kindred_core::topk::Scored;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;

use crate::error::{Error, Result};
use crate::topk::WorkerLists;

/// Rows per record batch written.
const BATCH_ROWS: usize = 64 * 1024;

/// Column names of user lists.
pub const USER_COLUMNS: [&str; 4] = ["user", "item", "rank", "score"];
/// Column names of item neighbour lists.
pub const NEIGHBOUR_COLUMNS: [&str; 4] = ["item", "neighbour", "rank", "score"];

/// `DIR/part-{worker:05}.parquet`.
pub fn part_path(dir: &Path, worker: usize) -> PathBuf {
    dir.join(format!("part-{worker:05}.parquet"))
}

/// One entry of a list file, as read back.
#[derive(Debug, Clone, PartialEq)]
pub struct ListRow {
    /// The user (or item) the list is for.
    pub query: String,
    /// The recommended item (or neighbour).
    pub item: String,
    /// 1-based position in the list.
    pub rank: i32,
    pub score: f32,
}

fn file_error(path: &Path, message: String) -> Error {
    Error::io(path, std::io::Error::other(message))
}

/// Writes `lists[q]` for each query `q` (external id `query_ids[q]`) with item ids looked up
/// in `item_ids`, under `columns`. Returns the rows written.
pub fn write_lists(
    path: &Path,
    columns: [&str; 4],
    query_ids: &[impl AsRef<str>],
    item_ids: &[impl AsRef<str>],
    lists: &[Vec<Scored>],
) -> Result<u64> {
    if query_ids.len() != lists.len() {
        return Err(file_error(
            path,
            format!("{} ids for {} lists", query_ids.len(), lists.len()),
        ));
    }
    if let Some(bad) = lists
        .iter()
        .flatten()
        .find(|s| s.item as usize >= item_ids.len())
    {
        return Err(file_error(
            path,
            format!(
                "item index {} has no id ({} item ids)",
                bad.item,
                item_ids.len()
            ),
        ));
    }
    let schema = Arc::new(Schema::new(vec![
        Field::new(columns[0], DataType::Utf8, false),
        Field::new(columns[1], DataType::Utf8, false),
        Field::new(columns[2], DataType::Int32, false),
        Field::new(columns[3], DataType::Float32, false),
    ]));
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    let file = File::create(path).map_err(|e| Error::io(path, e))?;
    let properties = parquet::file::properties::WriterProperties::builder()
        .set_compression(parquet::basic::Compression::SNAPPY)
        .build();
    let write_error =
        |e: parquet::errors::ParquetError| file_error(path, format!("cannot write Parquet: {e}"));
    let mut writer =
        ArrowWriter::try_new(file, Arc::clone(&schema), Some(properties)).map_err(write_error)?;
    // Entries as (query, position in its list), batched by row count.
    let mut rows: Vec<(usize, usize)> = Vec::with_capacity(BATCH_ROWS);
    let mut written = 0u64;
    let mut flush = |rows: &mut Vec<(usize, usize)>| -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|&(q, _)| query_ids[q].as_ref()),
            )),
            Arc::new(StringArray::from_iter_values(
                rows.iter()
                    .map(|&(q, r)| item_ids[lists[q][r].item as usize].as_ref()),
            )),
            Arc::new(Int32Array::from_iter_values(
                rows.iter().map(|&(_, r)| r as i32 + 1),
            )),
            Arc::new(Float32Array::from_iter_values(
                rows.iter().map(|&(q, r)| lists[q][r].score),
            )),
        ];
        let batch = RecordBatch::try_new(Arc::clone(&schema), columns)
            .map_err(|e| file_error(path, format!("cannot build a record batch: {e}")))?;
        writer.write(&batch).map_err(write_error)?;
        written += rows.len() as u64;
        rows.clear();
        Ok(())
    };
    for (q, list) in lists.iter().enumerate() {
        for r in 0..list.len() {
            rows.push((q, r));
            if rows.len() == BATCH_ROWS {
                flush(&mut rows)?;
            }
        }
    }
    flush(&mut rows)?;
    writer.close().map_err(write_error)?;
    Ok(written)
}

/// Reads a list file written by [`write_lists`] (any column names, same types).
pub fn read_lists(path: &Path) -> Result<Vec<ListRow>> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .and_then(|b| b.build())
        .map_err(|e| file_error(path, format!("not a readable Parquet file: {e}")))?;
    let mut out = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| file_error(path, format!("cannot read a batch: {e}")))?;
        let wrong = |i: usize| {
            file_error(
                path,
                format!(
                    "column {i} ({}) is {}, not the list layout (utf8, utf8, int32, float32)",
                    batch.schema().field(i).name(),
                    batch.column(i).data_type()
                ),
            )
        };
        if batch.num_columns() != 4 {
            return Err(file_error(
                path,
                format!("{} columns, a list file has 4", batch.num_columns()),
            ));
        }
        let query = batch
            .column(0)
            .as_string_opt::<i32>()
            .ok_or_else(|| wrong(0))?;
        let item = batch
            .column(1)
            .as_string_opt::<i32>()
            .ok_or_else(|| wrong(1))?;
        let rank = batch
            .column(2)
            .as_primitive_opt::<Int32Type>()
            .ok_or_else(|| wrong(2))?;
        let score = batch
            .column(3)
            .as_primitive_opt::<Float32Type>()
            .ok_or_else(|| wrong(3))?;
        if [
            query.null_count(),
            item.null_count(),
            rank.null_count(),
            score.null_count(),
        ]
        .iter()
        .any(|&n| n > 0)
        {
            return Err(file_error(path, "a list file has no nulls".into()));
        }
        for row in 0..batch.num_rows() {
            out.push(ListRow {
                query: query.value(row).to_string(),
                item: item.value(row).to_string(),
                rank: rank.value(row),
                score: score.value(row),
            });
        }
    }
    Ok(out)
}

impl WorkerLists {
    /// Writes this worker's user lists to `users_dir/part-{worker:05}.parquet` and, when
    /// `neighbours_dir` is given, its item neighbour lists likewise. `user_ids` are the ids of
    /// this worker's own users (local order), `item_ids` the ids of all items (global order).
    /// Returns the rows written (users, neighbours).
    pub fn write_parquet(
        &self,
        users_dir: &Path,
        neighbours_dir: Option<&Path>,
        user_ids: &[impl AsRef<str>],
        item_ids: &[impl AsRef<str>],
    ) -> Result<(u64, u64)> {
        let user_rows = write_lists(
            &part_path(users_dir, self.worker),
            USER_COLUMNS,
            user_ids,
            item_ids,
            &self.users,
        )?;
        let neighbour_rows = match neighbours_dir {
            Some(dir) => {
                let path = part_path(dir, self.worker);
                let own: Vec<&str> = (0..self.neighbours.len())
                    .map(|r| {
                        item_ids
                            .get(self.global_index(r))
                            .map(|id| id.as_ref())
                            .ok_or_else(|| {
                                file_error(
                                    &path,
                                    format!(
                                        "item {} has no id ({} item ids)",
                                        self.global_index(r),
                                        item_ids.len()
                                    ),
                                )
                            })
                    })
                    .collect::<Result<_>>()?;
                write_lists(&path, NEIGHBOUR_COLUMNS, &own, item_ids, &self.neighbours)?
            }
            None => 0,
        };
        Ok((user_rows, neighbour_rows))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_round_trip_with_one_based_ranks() {
        let dir = tempfile::tempdir().unwrap();
        let path = part_path(&dir.path().join("out"), 3);
        assert!(path.ends_with("out/part-00003.parquet"));
        let lists = vec![
            vec![
                Scored {
                    item: 2,
                    score: 1.5,
                },
                Scored {
                    item: 0,
                    score: -0.25,
                },
            ],
            vec![],
            vec![Scored {
                item: 1,
                score: 0.0,
            }],
        ];
        let rows = write_lists(
            &path,
            USER_COLUMNS,
            &["u1", "u2", "u3"],
            &["a", "b", "c"],
            &lists,
        )
        .unwrap();
        assert_eq!(rows, 3);
        let back = read_lists(&path).unwrap();
        let row = |q: &str, i: &str, rank, score| ListRow {
            query: q.into(),
            item: i.into(),
            rank,
            score,
        };
        assert_eq!(
            back,
            vec![
                row("u1", "c", 1, 1.5),
                row("u1", "a", 2, -0.25),
                row("u3", "b", 1, 0.0)
            ]
        );
    }

    #[test]
    fn errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.parquet");
        let lists = vec![vec![Scored {
            item: 5,
            score: 1.0,
        }]];
        let err = write_lists(&path, USER_COLUMNS, &["u"], &["a"], &lists)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("bad.parquet") && err.contains("item index 5"),
            "{err}"
        );
        std::fs::write(&path, b"not parquet").unwrap();
        let err = read_lists(&path).unwrap_err().to_string();
        assert!(
            err.contains("bad.parquet") && err.contains("not a readable"),
            "{err}"
        );
        let err = read_lists(&dir.path().join("missing.parquet"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("missing.parquet"), "{err}");
    }
}
