//! Reading per-unit experiment observations from CSV or JSON Lines, with errors that name the
//! file, line and field of a bad row.
//!
//! Columns: `variant` (required), `user` or `unit` (optional id; duplicates are refused because a
//! unit seen in two rows or two variants means assignment or logging is broken), `segment`
//! (optional), and every other column a number: metric values (0/1 for rates), ratio numerators
//! and denominators, and `pre_<metric>` pre-period covariates. JSON booleans count as 0/1.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use kindred_core::{Error, Result};

use super::analyze::Observation;

const ID_COLUMNS: [&str; 2] = ["user", "unit"];

fn parse_error(file: &Path, line: u64, field: &str, message: impl Into<String>) -> Error {
    Error::Parse {
        file: file.to_path_buf(),
        line,
        field: field.to_string(),
        message: message.into(),
    }
}

/// Reads observations from a `.csv` file or a `.jsonl` / `.ndjson` / `.json` file of one object per line.
pub fn read_observations(path: &Path) -> Result<Vec<Observation>> {
    let extension = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    let observations = match extension.as_str() {
        "csv" => read_csv(path)?,
        "jsonl" | "ndjson" | "json" => read_jsonl(path)?,
        _ => {
            return Err(Error::BadFile {
                file: path.to_path_buf(),
                message: "unknown format: use a .csv or .jsonl file".into(),
            })
        }
    };
    if observations.is_empty() {
        return Err(Error::BadFile {
            file: path.to_path_buf(),
            message: "no observations".into(),
        });
    }
    Ok(observations)
}

struct UnitIds {
    file: PathBuf,
    seen: HashMap<String, u64>,
}

impl UnitIds {
    fn check(&mut self, id: &str, field: &str, line: u64) -> Result<()> {
        if let Some(first) = self.seen.insert(id.to_string(), line) {
            return Err(parse_error(
                &self.file,
                line,
                field,
                format!("unit `{id}` already appeared on line {first}: each unit must be one row"),
            ));
        }
        Ok(())
    }
}

fn read_csv(path: &Path) -> Result<Vec<Observation>> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_path(path)
        .map_err(|e| Error::BadFile {
            file: path.to_path_buf(),
            message: e.to_string(),
        })?;
    let headers: Vec<String> = reader
        .headers()
        .map_err(|e| Error::BadFile {
            file: path.to_path_buf(),
            message: e.to_string(),
        })?
        .iter()
        .map(str::to_string)
        .collect();
    let Some(variant_column) = headers.iter().position(|h| h == "variant") else {
        return Err(Error::BadFile {
            file: path.to_path_buf(),
            message: format!("no `variant` column in the header ({})", headers.join(",")),
        });
    };
    let mut ids = UnitIds {
        file: path.to_path_buf(),
        seen: HashMap::new(),
    };
    let mut observations = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| {
            let line = e.position().map_or(0, |p| p.line());
            parse_error(path, line, "", e.to_string())
        })?;
        let line = record.position().map_or(0, |p| p.line());
        let mut observation = Observation::default();
        for (column, cell) in headers.iter().zip(record.iter()) {
            if headers.iter().position(|h| h == column) == Some(variant_column) {
                if cell.is_empty() {
                    return Err(parse_error(path, line, column, "empty variant"));
                }
                observation.variant = cell.to_string();
            } else if ID_COLUMNS.contains(&column.as_str()) {
                ids.check(cell, column, line)?;
                observation.unit = Some(cell.to_string());
            } else if column == "segment" {
                observation.segment = Some(cell.to_string());
            } else {
                let value: f64 = cell.parse().map_err(|_| {
                    parse_error(path, line, column, format!("`{cell}` is not a number"))
                })?;
                if !value.is_finite() {
                    return Err(parse_error(
                        path,
                        line,
                        column,
                        format!("`{cell}` is not finite"),
                    ));
                }
                observation.values.insert(column.clone(), value);
            }
        }
        observations.push(observation);
    }
    Ok(observations)
}

fn read_jsonl(path: &Path) -> Result<Vec<Observation>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let mut ids = UnitIds {
        file: path.to_path_buf(),
        seen: HashMap::new(),
    };
    let mut observations = Vec::new();
    let mut first_columns: Option<(u64, Vec<String>)> = None;
    for (index, raw) in text.lines().enumerate() {
        let line = index as u64 + 1;
        if raw.trim().is_empty() {
            continue;
        }
        let object: serde_json::Map<String, serde_json::Value> = serde_json::from_str(raw)
            .map_err(|e| parse_error(path, line, "", format!("not a JSON object: {e}")))?;
        let mut observation = Observation::default();
        let mut variant = None;
        for (key, value) in &object {
            let text_of = |value: &serde_json::Value| match value {
                serde_json::Value::String(s) => Some(s.clone()),
                serde_json::Value::Number(n) => Some(n.to_string()),
                _ => None,
            };
            match key.as_str() {
                "variant" => {
                    variant = Some(text_of(value).filter(|v| !v.is_empty()).ok_or_else(|| {
                        parse_error(path, line, key, "the variant must be a nonempty string")
                    })?);
                }
                "user" | "unit" => {
                    let id = text_of(value).ok_or_else(|| {
                        parse_error(path, line, key, "an id must be a string or number")
                    })?;
                    ids.check(&id, key, line)?;
                    observation.unit = Some(id);
                }
                "segment" => {
                    observation.segment = Some(text_of(value).ok_or_else(|| {
                        parse_error(path, line, key, "a segment must be a string")
                    })?);
                }
                _ => {
                    let number = match value {
                        serde_json::Value::Number(n) => n.as_f64(),
                        serde_json::Value::Bool(b) => Some(f64::from(u8::from(*b))),
                        _ => None,
                    }
                    .filter(|v| v.is_finite())
                    .ok_or_else(|| {
                        parse_error(path, line, key, format!("`{value}` is not a number"))
                    })?;
                    observation.values.insert(key.clone(), number);
                }
            }
        }
        observation.variant =
            variant.ok_or_else(|| parse_error(path, line, "variant", "missing"))?;
        let columns: Vec<String> = observation.values.keys().cloned().collect();
        match &first_columns {
            None => first_columns = Some((line, columns)),
            Some((first_line, expected)) => {
                if let Some(missing) = expected
                    .iter()
                    .find(|c| !observation.values.contains_key(*c))
                {
                    return Err(parse_error(
                        path,
                        line,
                        missing,
                        format!(
                            "missing (line {first_line} has it; every row needs the same fields)"
                        ),
                    ));
                }
                if let Some(extra) = columns.iter().find(|c| !expected.contains(c)) {
                    return Err(parse_error(
                        path,
                        line,
                        extra,
                        format!("not on line {first_line} (every row needs the same fields)"),
                    ));
                }
            }
        }
        observations.push(observation);
    }
    Ok(observations)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(name: &str, text: &str) -> (tempdir::Dir, PathBuf) {
        let dir = tempdir::Dir::new();
        let path = dir.0.join(name);
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    mod tempdir {
        /// A scratch directory removed on drop (std only).
        pub struct Dir(pub std::path::PathBuf);
        impl Dir {
            pub fn new() -> Self {
                use std::sync::atomic::{AtomicU64, Ordering};
                static NEXT: AtomicU64 = AtomicU64::new(0);
                let path = std::env::temp_dir().join(format!(
                    "kindred-exp-input-{}-{}",
                    std::process::id(),
                    NEXT.fetch_add(1, Ordering::Relaxed)
                ));
                std::fs::create_dir_all(&path).unwrap();
                Self(path)
            }
        }
        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }

    #[test]
    fn reads_csv_and_jsonl() {
        let (_d, csv) = write(
            "a.csv",
            "user,variant,segment,converted,pre_converted\nu1,A,web,1,0\nu2,B,ios,0,1\n",
        );
        let rows = read_observations(&csv).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[1].variant, "B");
        assert_eq!(rows[1].segment.as_deref(), Some("ios"));
        assert_eq!(rows[0].values["converted"], 1.0);
        let (_d2, jsonl) = write(
            "a.jsonl",
            "{\"user\":\"u1\",\"variant\":\"A\",\"clicks\":2,\"views\":5,\"bought\":true}\n\n{\"user\":7,\"variant\":\"B\",\"clicks\":0,\"views\":3,\"bought\":false}\n",
        );
        let rows = read_observations(&jsonl).unwrap();
        assert_eq!(rows[1].unit.as_deref(), Some("7"));
        assert_eq!(rows[0].values["bought"], 1.0);
    }

    #[test]
    fn errors_name_file_line_and_field() {
        let (_d, csv) = write("bad.csv", "user,variant,converted\nu1,A,1\nu2,B,yes\n");
        let message = read_observations(&csv).unwrap_err().to_string();
        assert!(
            message.contains("bad.csv:3: field `converted`"),
            "{message}"
        );
        let (_d, dup) = write("dup.csv", "user,variant,converted\nu1,A,1\nu1,B,0\n");
        let message = read_observations(&dup).unwrap_err().to_string();
        assert!(
            message.contains("dup.csv:3: field `user`") && message.contains("line 2"),
            "{message}"
        );
        let (_d, jsonl) = write(
            "bad.jsonl",
            "{\"variant\":\"A\",\"x\":1}\n{\"variant\":\"B\"}\n",
        );
        let message = read_observations(&jsonl).unwrap_err().to_string();
        assert!(
            message.contains("bad.jsonl:2: field `x`: missing"),
            "{message}"
        );
        let (_d, novariant) = write("nv.jsonl", "{\"x\":1}\n");
        assert!(read_observations(&novariant)
            .unwrap_err()
            .to_string()
            .contains("nv.jsonl:1: field `variant`"));
        let (_d, header) = write("h.csv", "user,arm\nu1,A\n");
        assert!(read_observations(&header)
            .unwrap_err()
            .to_string()
            .contains("no `variant` column"));
        let (_d, txt) = write("a.txt", "x");
        assert!(read_observations(&txt).is_err());
    }
}
