//! Data specs: the strings the CLI takes after `--data`, and loading what they name.
//!
//! `movielens:DIR`, `csv:FILE`, `tsv:FILE`, `jsonl:FILE`, `parquet:FILE` and
//! `synthetic:users=N,items=M,seed=S,...`. A bare path works too: a directory is MovieLens, a file
//! is read by its extension (`.csv`, `.tsv`/`.tab`, `.jsonl`/`.ndjson`, `.parquet`/`.pq`). Paths
//! are kept as given (relative to the working directory).

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use kindred_core::{Dataset, Error, Result};

use crate::import::{ImportOptions, ImportReport};

/// Where a dataset comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataSpec {
    MovieLens(PathBuf),
    Csv(PathBuf),
    Tsv(PathBuf),
    Jsonl(PathBuf),
    Parquet(PathBuf),
    /// The `key=value,...` parameters after `synthetic:`, parsed by the synthetic generator.
    Synthetic(String),
}

/// The kinds a spec may start with (`ml` and `ndjson` are accepted aliases).
const SCHEMES: [&str; 6] = ["movielens", "csv", "tsv", "jsonl", "parquet", "synthetic"];

const KINDS: &str =
    "movielens:DIR, csv:FILE, tsv:FILE, jsonl:FILE, parquet:FILE, synthetic:users=N,items=M,seed=S";

impl DataSpec {
    /// Parses a data spec (see the [module docs](self)).
    pub fn parse(text: &str) -> Result<Self> {
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Err(Error::spec(
                "data spec",
                text,
                format!("empty; expected one of {KINDS}"),
            ));
        }
        if let Some((kind, rest)) = trimmed.split_once(':') {
            let path = || -> Result<PathBuf> {
                if rest.trim().is_empty() {
                    Err(Error::spec(
                        "data spec",
                        text,
                        format!("`{kind}:` needs a path"),
                    ))
                } else {
                    Ok(PathBuf::from(rest))
                }
            };
            match kind.to_ascii_lowercase().as_str() {
                "movielens" | "ml" => return Ok(DataSpec::MovieLens(path()?)),
                "csv" => return Ok(DataSpec::Csv(path()?)),
                "tsv" => return Ok(DataSpec::Tsv(path()?)),
                "jsonl" | "ndjson" => return Ok(DataSpec::Jsonl(path()?)),
                "parquet" => return Ok(DataSpec::Parquet(path()?)),
                "synthetic" => return Ok(DataSpec::Synthetic(rest.trim().to_owned())),
                // Anything else may be a bare path that contains a colon (`C:\data\x.csv`),
                // unless nothing is there and the part before the colon reads as a scheme.
                other => {
                    let scheme_like = other.len() > 1
                        && other.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
                    if scheme_like && !Path::new(trimmed).exists() {
                        let hint = kindred_core::suggest::did_you_mean(other, SCHEMES);
                        return Err(Error::spec(
                            "data spec",
                            text,
                            format!("unknown kind `{kind}:`{hint}; expected one of {KINDS}"),
                        ));
                    }
                }
            }
        }
        Self::from_bare_path(Path::new(trimmed)).ok_or_else(|| {
            Error::spec(
                "data spec",
                text,
                format!("not a directory and no known extension; expected one of {KINDS}, or a path ending in .csv, .tsv, .jsonl or .parquet"),
            )
        })
    }

    fn from_bare_path(path: &Path) -> Option<Self> {
        if path.is_dir() {
            return Some(DataSpec::MovieLens(path.to_path_buf()));
        }
        let path_buf = path.to_path_buf();
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "csv" => Some(DataSpec::Csv(path_buf)),
            "tsv" | "tab" => Some(DataSpec::Tsv(path_buf)),
            "jsonl" | "ndjson" => Some(DataSpec::Jsonl(path_buf)),
            "parquet" | "pq" => Some(DataSpec::Parquet(path_buf)),
            _ => None,
        }
    }
}

impl FromStr for DataSpec {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

impl fmt::Display for DataSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DataSpec::MovieLens(p) => write!(f, "movielens:{}", p.display()),
            DataSpec::Csv(p) => write!(f, "csv:{}", p.display()),
            DataSpec::Tsv(p) => write!(f, "tsv:{}", p.display()),
            DataSpec::Jsonl(p) => write!(f, "jsonl:{}", p.display()),
            DataSpec::Parquet(p) => write!(f, "parquet:{}", p.display()),
            DataSpec::Synthetic(params) => write!(f, "synthetic:{params}"),
        }
    }
}

/// Loads the dataset a spec names; synthetic specs are generated (the report then counts the
/// generated rows).
pub fn load(spec: &DataSpec, opts: &ImportOptions) -> Result<(Dataset, ImportReport)> {
    match spec {
        DataSpec::MovieLens(dir) => crate::movielens::load_movielens(dir, opts),
        DataSpec::Csv(path) => crate::delimited::load_delimited(path, opts),
        DataSpec::Tsv(path) => {
            let opts = ImportOptions {
                delimiter: Some(opts.delimiter.unwrap_or(b'\t')),
                ..opts.clone()
            };
            crate::delimited::load_delimited(path, &opts)
        }
        DataSpec::Jsonl(path) => crate::jsonl::load_jsonl(path, opts),
        #[cfg(feature = "parquet")]
        DataSpec::Parquet(path) => crate::parquet::load_parquet(path, opts),
        #[cfg(not(feature = "parquet"))]
        DataSpec::Parquet(_) => Err(Error::spec(
            "data spec",
            spec.to_string(),
            crate::NO_PARQUET,
        )),
        DataSpec::Synthetic(params) => {
            let config = crate::synthetic::SyntheticConfig::parse(params)?;
            let dataset = crate::synthetic::generate(&config)?.dataset;
            let rows = dataset.interactions.len() as u64;
            let report = ImportReport {
                rows_read: rows,
                rows_imported: rows,
                ..ImportReport::default()
            };
            Ok((dataset, report))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::import::test_support::temp_dir;

    #[test]
    fn prefixed_specs() {
        assert_eq!(
            DataSpec::parse("movielens:data/ml-1m").unwrap(),
            DataSpec::MovieLens("data/ml-1m".into())
        );
        assert_eq!(
            DataSpec::parse("csv:x.txt").unwrap(),
            DataSpec::Csv("x.txt".into())
        );
        assert_eq!(DataSpec::parse("tsv:x").unwrap(), DataSpec::Tsv("x".into()));
        assert_eq!(
            DataSpec::parse("jsonl:../e.json").unwrap(),
            DataSpec::Jsonl("../e.json".into())
        );
        assert_eq!(
            DataSpec::parse("parquet:p").unwrap(),
            DataSpec::Parquet("p".into())
        );
        let synthetic = DataSpec::parse("synthetic:users=10,items=5,seed=3").unwrap();
        assert_eq!(
            synthetic,
            DataSpec::Synthetic("users=10,items=5,seed=3".into())
        );
        assert_eq!(synthetic.to_string(), "synthetic:users=10,items=5,seed=3");
        for bad in ["", "csv:", "excel:x.xlsx", "file.xlsx"] {
            assert!(
                matches!(DataSpec::parse(bad), Err(Error::Spec { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn unknown_kinds_are_named_with_the_near_miss() {
        let err = DataSpec::parse("movielen:/data/ml-1m")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("unknown kind `movielen:` (did you mean `movielens`?)")
                && err.contains("expected one of movielens:DIR"),
            "{err}"
        );
        let err = DataSpec::parse("excel:x.xlsx").unwrap_err().to_string();
        assert!(
            err.contains("unknown kind `excel:`") && !err.contains("did you mean"),
            "{err}"
        );
        // A one-letter prefix is a drive letter, not a kind.
        let err = DataSpec::parse("C:\\data\\x.xlsx").unwrap_err().to_string();
        assert!(!err.contains("unknown kind"), "{err}");
    }

    #[test]
    fn bare_paths_by_kind() {
        let dir = temp_dir("spec");
        assert_eq!(
            DataSpec::parse(dir.to_str().unwrap()).unwrap(),
            DataSpec::MovieLens(dir.to_path_buf())
        );
        assert_eq!(
            DataSpec::parse("a/b.CSV").unwrap(),
            DataSpec::Csv("a/b.CSV".into())
        );
        assert_eq!(
            DataSpec::parse("b.tsv").unwrap(),
            DataSpec::Tsv("b.tsv".into())
        );
        assert_eq!(
            DataSpec::parse("b.ndjson").unwrap(),
            DataSpec::Jsonl("b.ndjson".into())
        );
        assert_eq!(
            DataSpec::parse("C:\\data\\b.parquet").unwrap(),
            DataSpec::Parquet("C:\\data\\b.parquet".into())
        );
    }

    #[test]
    fn load_dispatches_by_kind() {
        let dir = temp_dir("spec-load");
        std::fs::write(dir.join("a.tsv"), "u1\ti1\t4\n").unwrap();
        std::fs::write(dir.join("a.csv"), "u1,i1\n").unwrap();
        std::fs::write(dir.join("a.jsonl"), "{\"user\":\"u1\",\"item\":\"i1\"}\n").unwrap();
        std::fs::write(dir.join("u.data"), "1\t2\t3\t4\n").unwrap();
        let opts = ImportOptions::default();
        for spec in [
            format!("tsv:{}", dir.join("a.tsv").display()),
            dir.join("a.csv").display().to_string(),
            format!("jsonl:{}", dir.join("a.jsonl").display()),
            format!("movielens:{}", dir.display()),
        ] {
            let (data, report) = load(&spec.parse().unwrap(), &opts).unwrap();
            assert_eq!(data.interactions.len(), 1, "{spec}");
            assert_eq!(report.rows_imported, 1, "{spec}");
        }
        let (data, report) = load(&DataSpec::Synthetic("users=20,items=10".into()), &opts).unwrap();
        assert_eq!(report.rows_imported as usize, data.interactions.len());
        assert_eq!(data.interactions.n_users(), 20);
        let err = load(&DataSpec::Synthetic("users=1,colour=red".into()), &opts).unwrap_err();
        assert!(err.to_string().contains("colour"), "{err}");
    }
}
