//! Writes an interaction log back out with its external ids: CSV, JSON Lines or Parquet.
//!
//! Every format carries the fields `user, item, rating, weight, event, timestamp`; a missing
//! rating or timestamp is an empty CSV cell, a JSON `null` or a Parquet null. Numbers are written
//! in their shortest exact form, so importing an export gives back the same log. JSON Lines also
//! carries row context (`"context": {...}`); CSV and Parquet do not.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use kindred_core::features::ColumnData;
use kindred_core::interactions::NO_TIMESTAMP;
use kindred_core::{Error, FeatureTable, IdMap, Interactions, Result};

use crate::export_columns::EXPORT_COLUMNS;

/// Output formats of [`export`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    Csv,
    Jsonl,
    #[cfg(feature = "parquet")]
    Parquet,
}

impl ExportFormat {
    /// The format an extension asks for (`csv`, `jsonl`/`ndjson`, `parquet`/`pq`).
    pub fn from_path(path: &Path) -> Option<Self> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "csv" => Some(ExportFormat::Csv),
            "jsonl" | "ndjson" => Some(ExportFormat::Jsonl),
            #[cfg(feature = "parquet")]
            "parquet" | "pq" => Some(ExportFormat::Parquet),
            _ => None,
        }
    }
}

/// Writes `log` to `path` in the format its extension names.
pub fn export(log: &Interactions, path: &Path) -> Result<()> {
    match ExportFormat::from_path(path) {
        Some(ExportFormat::Csv) => write_csv(log, path),
        Some(ExportFormat::Jsonl) => write_jsonl(log, path),
        #[cfg(feature = "parquet")]
        Some(ExportFormat::Parquet) => crate::parquet::write_parquet(log, path),
        None => {
            let parquet = path
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("parquet") || e.eq_ignore_ascii_case("pq"));
            let message = if parquet {
                crate::NO_PARQUET
            } else {
                "unknown extension: expected .csv, .jsonl or .parquet"
            };
            Err(Error::spec(
                "export path",
                path.display().to_string(),
                message,
            ))
        }
    }
}

fn create(path: &Path) -> Result<BufWriter<File>> {
    File::create(path)
        .map(|f| BufWriter::with_capacity(1 << 20, f))
        .map_err(|e| Error::io(path, e))
}

/// Writes `log` as CSV with a header.
pub fn write_csv(log: &Interactions, path: &Path) -> Result<()> {
    let mut out = create(path)?;
    write_csv_to(log, &mut out).map_err(|e| Error::io(path, e))?;
    out.flush().map_err(|e| Error::io(path, e))
}

/// Writes `log` as CSV with a header to any writer.
pub fn write_csv_to<W: Write>(log: &Interactions, out: W) -> std::io::Result<()> {
    let mut writer = csv::Writer::from_writer(out);
    writer.write_record(EXPORT_COLUMNS)?;
    let mut rating = String::new();
    let mut weight = String::new();
    let mut timestamp = String::new();
    for row in 0..log.len() {
        let (user, item) = external_ids(log, row);
        rating.clear();
        weight.clear();
        timestamp.clear();
        let r = log.ratings()[row];
        if !r.is_nan() {
            push_display(&mut rating, r);
        }
        push_display(&mut weight, log.weights()[row]);
        let t = log.timestamps()[row];
        if t != NO_TIMESTAMP {
            push_display(&mut timestamp, t);
        }
        let event = log.event_name(log.events()[row]);
        writer.write_record([user, item, &rating, &weight, &event, &timestamp])?;
    }
    writer.flush()?;
    Ok(())
}

/// Writes the item catalog `ids` as CSV `item,features`: one row per item, in index order, with
/// the item's categorical features from `features` (e.g. MovieLens genres) as `column=value`
/// tokens joined by `|` (empty when the item has none). Outside tools read it to know the exact
/// candidate set of an evaluation and the side information a hybrid model may use.
pub fn write_catalog_csv(ids: &IdMap, features: Option<&FeatureTable>, path: &Path) -> Result<()> {
    let mut out = create(path)?;
    write_catalog_csv_to(ids, features, &mut out).map_err(|e| Error::io(path, e))?;
    out.flush().map_err(|e| Error::io(path, e))
}

/// Writes the catalog CSV of [`write_catalog_csv`] to any writer.
pub fn write_catalog_csv_to<W: Write>(
    ids: &IdMap,
    features: Option<&FeatureTable>,
    out: W,
) -> std::io::Result<()> {
    let rows = features.map(|f| f.align(ids));
    let mut writer = csv::Writer::from_writer(out);
    writer.write_record(["item", "features"])?;
    let mut tokens = Vec::new();
    for (idx, item) in ids.externals().iter().enumerate() {
        tokens.clear();
        if let (Some(table), Some(Some(row))) = (features, rows.as_ref().map(|r| r[idx])) {
            for col in table.columns() {
                if let ColumnData::Categorical { vocab, values } = &col.data {
                    for &v in &values[row as usize] {
                        tokens.push(format!("{}={}", col.name, vocab.external(v)));
                    }
                }
            }
        }
        writer.write_record([item.as_str(), &tokens.join("|")])?;
    }
    writer.flush()?;
    Ok(())
}

fn push_display(buffer: &mut String, value: impl std::fmt::Display) {
    use std::fmt::Write as _;
    // Writing into a String cannot fail.
    let _ = write!(buffer, "{value}");
}

fn external_ids(log: &Interactions, row: usize) -> (&str, &str) {
    let user = log
        .user_ids()
        .try_external(log.users()[row])
        .unwrap_or_default();
    let item = log
        .item_ids()
        .try_external(log.items()[row])
        .unwrap_or_default();
    (user, item)
}

/// Writes `log` as JSON Lines, one object per row.
pub fn write_jsonl(log: &Interactions, path: &Path) -> Result<()> {
    let mut out = create(path)?;
    write_jsonl_to(log, &mut out).map_err(|e| Error::io(path, e))?;
    out.flush().map_err(|e| Error::io(path, e))
}

/// Writes `log` as JSON Lines to any writer.
pub fn write_jsonl_to<W: Write>(log: &Interactions, mut out: W) -> std::io::Result<()> {
    let context = log.context();
    let mut next_entry = 0;
    for row in 0..log.len() {
        let (user, item) = external_ids(log, row);
        out.write_all(b"{\"user\":")?;
        serde_json::to_writer(&mut out, user)?;
        out.write_all(b",\"item\":")?;
        serde_json::to_writer(&mut out, item)?;
        let rating = log.ratings()[row];
        if rating.is_nan() {
            out.write_all(b",\"rating\":null")?;
        } else {
            write!(out, ",\"rating\":{rating}")?;
        }
        write!(out, ",\"weight\":{}", log.weights()[row])?;
        out.write_all(b",\"event\":")?;
        serde_json::to_writer(&mut out, &log.event_name(log.events()[row]))?;
        let timestamp = log.timestamps()[row];
        if timestamp == NO_TIMESTAMP {
            out.write_all(b",\"timestamp\":null")?;
        } else {
            write!(out, ",\"timestamp\":{timestamp}")?;
        }
        // Entries are sorted by row, so one forward pass pairs them with rows.
        while next_entry < context.entries.len() && (context.entries[next_entry].0 as usize) < row {
            next_entry += 1;
        }
        let mut first = true;
        while next_entry < context.entries.len() && context.entries[next_entry].0 as usize == row {
            let (_, key, value) = context.entries[next_entry];
            out.write_all(if first { b",\"context\":{" } else { b"," })?;
            first = false;
            serde_json::to_writer(&mut out, context.keys.external(key))?;
            out.write_all(b":")?;
            serde_json::to_writer(&mut out, context.values.external(value))?;
            next_entry += 1;
        }
        if !first {
            out.write_all(b"}")?;
        }
        out.write_all(b"}\n")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delimited::load_delimited;
    use crate::import::test_support::temp_dir;
    use crate::import::ImportOptions;
    use crate::jsonl::load_jsonl;
    use crate::test_logs::{assert_same_log, sample_log};
    use kindred_core::{FeatureValue, Interaction, InteractionsBuilder};
    use proptest::prelude::*;

    #[test]
    fn catalog_csv_lists_every_item_with_its_categories() {
        let mut ids = IdMap::new();
        for id in ["10", "20", "30"] {
            ids.intern(id);
        }
        let mut table = FeatureTable::new();
        table
            .set(
                "20",
                "genres",
                FeatureValue::Categories(vec!["Drama".into(), "Comedy".into()]),
            )
            .unwrap();
        table
            .set("20", "year", FeatureValue::Number(1995.0))
            .unwrap();
        table
            .set(
                "99",
                "genres",
                FeatureValue::Categories(vec!["Horror".into()]),
            )
            .unwrap();
        let mut out = Vec::new();
        write_catalog_csv_to(&ids, Some(&table), &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "item,features\n10,\n20,genres=Drama|genres=Comedy\n30,\n"
        );
        let mut out = Vec::new();
        write_catalog_csv_to(&ids, None, &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "item,features\n10,\n20,\n30,\n"
        );
    }

    #[test]
    fn csv_round_trip() {
        let dir = temp_dir("export-csv");
        let log = sample_log();
        let path = dir.join("out.csv");
        export(&log, &path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.starts_with("user,item,rating,weight,event,timestamp\n"),
            "{text}"
        );
        assert!(text.contains("\"item, with comma\""), "{text}");
        let (back, report) = load_delimited(&path, &every_timestamp()).unwrap();
        assert_eq!(report.rows_imported, 4);
        assert_same_log(&log, &back.interactions);
    }

    #[test]
    fn jsonl_round_trip_keeps_context() {
        let dir = temp_dir("export-jsonl");
        let log = sample_log();
        let path = dir.join("out.jsonl");
        export(&log, &path).unwrap();
        let (back, _) = load_jsonl(&path, &every_timestamp()).unwrap();
        assert_same_log(&log, &back.interactions);
        let context = back.interactions.context();
        assert_eq!(context.entries.len(), 1);
        assert_eq!(context.entries[0].0, 2);
        assert_eq!(context.values.external(context.entries[0].2), "mobile");
    }

    #[cfg(feature = "parquet")]
    #[test]
    fn parquet_round_trip_through_the_writer() {
        let dir = temp_dir("parquet-rt");
        let path = dir.join("log.parquet");
        let log = sample_log();
        export(&log, &path).unwrap();
        let (back, report) = crate::parquet::load_parquet(&path, &every_timestamp()).unwrap();
        assert_eq!(report.rows_imported, log.len() as u64);
        assert_eq!(back.name, "log");
        assert_same_log(&log, &back.interactions);
    }

    #[test]
    fn unknown_extension_is_a_spec_error() {
        let err = export(&sample_log(), Path::new("out.xlsx")).unwrap_err();
        assert!(matches!(err, Error::Spec { .. }), "{err}");
    }

    fn arbitrary_log() -> impl Strategy<Value = Interactions> {
        let row = (
            // Importers trim ids, so ids never start or end with a space.
            "[a-zA-Z0-9,\"é_-]([a-zA-Z0-9 ,\"é_-]{0,6}[a-zA-Z0-9,\"é_-])?",
            "[a-z0-9,]{1,6}",
            proptest::option::of(-1.0e6f32..1.0e6),
            0.0f32..100.0,
            prop_oneof![
                Just("rating"),
                Just("view"),
                Just("purchase"),
                Just("wishlist"),
                Just("share")
            ],
            proptest::option::of(-4_000_000_000i64..4_000_000_000),
        );
        proptest::collection::vec(row, 1..40).prop_map(|rows| {
            let mut b = InteractionsBuilder::new();
            for (user, item, rating, weight, event, timestamp) in &rows {
                let event = b.event_type(event);
                b.push(Interaction {
                    user,
                    item,
                    rating: *rating,
                    weight: *weight,
                    event,
                    timestamp: *timestamp,
                });
            }
            b.build()
        })
    }

    /// Import options that take any timestamp a log holds (the sane-range check is the
    /// importer's policy, not the format's): every value but the "no timestamp" marker.
    fn every_timestamp() -> ImportOptions {
        ImportOptions {
            timestamps: kindred_core::TimestampRange {
                min: i64::MIN + 1,
                max: i64::MAX,
                ..Default::default()
            },
            ..ImportOptions::default()
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn csv_export_then_import_is_identity(log in arbitrary_log()) {
            let mut buffer = Vec::new();
            write_csv_to(&log, &mut buffer).unwrap();
            let (back, report) = crate::delimited::read_delimited(
                buffer.as_slice(),
                Path::new("mem.csv"),
                b',',
                &every_timestamp(),
            )
            .unwrap();
            prop_assert_eq!(report.rows_imported as usize, log.len());
            assert_same_log(&log, &back);
        }
    }
}
