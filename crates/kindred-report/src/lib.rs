//! Kindred's result reports: reads one or more `kindred eval --json` / `kindred tune --json`
//! files and turns them into one self-contained HTML page (inline SVG charts, inline style, no
//! network needed to view it), or into one PNG file per chart.
//!
//! The flow is [`load_reports`] -> [`build_sections`] (what to show, including the charts) ->
//! [`render_html`] or [`png::write_pngs`]. Every section says plainly when its data is absent
//! from the results instead of drawing an empty chart.

pub mod html;
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
    let report: EvalReport = serde_json::from_str(&text).map_err(|e| Error::Parse {
        file: path.to_path_buf(),
        line: e.line() as u64,
        field: format!("column {}", e.column()),
        message: format!("not a kindred eval/tune JSON result: {e}"),
    })?;
    Ok(Source {
        path: path.to_path_buf(),
        report,
    })
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
    fn bad_json_names_file_line_and_column() {
        let dir = std::env::temp_dir().join(format!("kindred-report-bad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("broken.json");
        std::fs::write(&path, "{\n  \"dataset\": {\n    \"name\": 3,\n").unwrap();
        let err = load_report(&path).unwrap_err().to_string();
        assert!(err.contains("broken.json:3"), "{err}");
        assert!(err.contains("column"), "{err}");
        let missing = load_report(&dir.join("absent.json"))
            .unwrap_err()
            .to_string();
        assert!(missing.contains("absent.json"), "{missing}");
        assert!(load_reports(&[]).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
