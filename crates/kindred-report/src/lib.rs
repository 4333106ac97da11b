//! Kindred's result reports: reads one or more `kindred eval --json` / `kindred tune --json`
//! files and turns them into one self-contained HTML page (inline SVG charts, inline style, no
//! network needed to view it), or into one PNG file per chart.
//!
//! The flow is [`load_reports`] -> [`build_sections`] (what to show, including the charts) ->
//! [`render_html`] or [`png::write_pngs`]. Every section says plainly when its data is absent
//! from the results instead of drawing an empty chart.

pub mod html;
#[cfg(feature = "png")]
pub mod png;
pub mod sections;

use std::path::{Path, PathBuf};

use kindred_core::{Error, Result};
use kindred_eval::{EvalReport, ModelResult};

pub use html::render_html;
pub use kindred_chart::Chart;
pub use sections::{build_sections, Section};

/// One results file as read.
#[derive(Debug, Clone)]
pub struct Source {
    pub path: PathBuf,
    pub report: EvalReport,
}

impl Source {
    /// The file name without directory and extension, used to tell same-spec results apart.
    pub fn stem(&self) -> String {
        self.path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| self.path.display().to_string())
    }
}

/// Reads one results file; a file that is not valid result JSON is named in the error together
/// with serde's line and column.
pub fn load_report(path: &Path) -> Result<Source> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    const EXPECTED: &str =
        "expected a result file of `kindred eval --json` or `kindred tune --json`";
    let mut json = serde_json::Deserializer::from_str(&text);
    let report: EvalReport = serde_path_to_error::deserialize(&mut json).map_err(|e| {
        let field = match e.path().to_string() {
            root if root == "." => "(top level)".to_owned(),
            path => path,
        };
        let inner = e.into_inner();
        let message = strip_position(&inner.to_string()).to_owned();
        match inner.classify() {
            // Well-formed JSON of the wrong shape: the JSON path of the field says where.
            serde_json::error::Category::Data => Error::Parse {
                file: path.to_path_buf(),
                line: inner.line() as u64,
                field,
                message: format!("{message}; {EXPECTED}"),
            },
            // Not JSON at all (a text file, a CSV, a truncated file): no field to point at.
            _ => Error::BadFile {
                file: path.to_path_buf(),
                message: format!(
                    "not valid JSON at line {}: {message}; {EXPECTED}",
                    inner.line()
                ),
            },
        }
    })?;
    Ok(Source {
        path: path.to_path_buf(),
        report,
    })
}

/// serde_json's message without its trailing "at line L column C" (the error says the line).
fn strip_position(message: &str) -> &str {
    message
        .rfind(" at line ")
        .map_or(message, |at| &message[..at])
}

/// Reads every file, in order.
pub fn load_reports(paths: &[PathBuf]) -> Result<Vec<Source>> {
    if paths.is_empty() {
        return Err(Error::InvalidInput(
            "no result files given to report on".to_owned(),
        ));
    }
    paths.iter().map(|p| load_report(p)).collect()
}

/// One model result of the merged set, with the label it is shown under.
#[derive(Debug, Clone)]
pub struct Entry<'a> {
    /// Unique across the report: the spec (with its preset), plus the file stem when two files
    /// hold the same spec, plus a counter in the rare case that is still ambiguous.
    pub label: String,
    /// Index of the source file.
    pub source: usize,
    pub result: &'a ModelResult,
}

/// Every result of every file, labelled uniquely.
pub fn entries(sources: &[Source]) -> Vec<Entry<'_>> {
    let base = |r: &ModelResult| match &r.preset {
        Some(preset) => format!("{preset} ({})", r.spec),
        None => r.spec.clone(),
    };
    let all: Vec<(usize, &ModelResult)> = sources
        .iter()
        .enumerate()
        .flat_map(|(i, s)| s.report.results.iter().map(move |r| (i, r)))
        .collect();
    let mut labels: Vec<String> = all
        .iter()
        .map(|(i, r)| {
            let name = base(r);
            let shared = all.iter().any(|(j, other)| j != i && base(other) == name);
            if shared {
                format!("{name} [{}]", sources[*i].stem())
            } else {
                name
            }
        })
        .collect();
    // Same spec twice in one file, or same stem in two folders: number the repeats.
    for i in 0..labels.len() {
        let repeats = labels[..i].iter().filter(|l| **l == labels[i]).count();
        if repeats > 0 {
            labels[i] = format!("{} #{}", labels[i], repeats + 1);
        }
    }
    all.into_iter()
        .zip(labels)
        .map(|((source, result), label)| Entry {
            label,
            source,
            result,
        })
        .collect()
}

/// The headline metric of a result and whether lower is better: `ndcg@k` for ranking
/// protocols, `rmse` for rating protocols.
pub fn primary_metric(report: &EvalReport, result: &ModelResult) -> Option<(String, bool)> {
    let ndcg = format!("ndcg@{}", report.k);
    if result.metrics.contains_key(&ndcg) {
        Some((ndcg, false))
    } else if result.metrics.contains_key("rmse") {
        Some(("rmse".to_owned(), true))
    } else {
        None
    }
}

/// Every chart of the report, in page order.
pub fn all_charts(sources: &[Source]) -> Vec<Chart> {
    build_sections(sources)
        .into_iter()
        .flat_map(|s| s.charts)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_json_names_file_line_and_field() {
        let dir = std::env::temp_dir().join(format!("kindred-report-bad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("broken.json");
        std::fs::write(&path, "{\n  \"dataset\": {\n    \"name\": 3,\n").unwrap();
        let err = load_report(&path).unwrap_err().to_string();
        assert!(
            err.contains("broken.json:3: field `dataset.name`: invalid type"),
            "{err}"
        );
        let text = dir.join("notes.txt");
        std::fs::write(&text, "hello\n").unwrap();
        let err = load_report(&text).unwrap_err().to_string();
        assert!(
            err.contains("notes.txt: not valid JSON at line 1: expected value;")
                && !err.contains("column"),
            "{err}"
        );
        let missing = load_report(&dir.join("absent.json"))
            .unwrap_err()
            .to_string();
        assert!(missing.contains("absent.json"), "{missing}");
        assert!(load_reports(&[]).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
