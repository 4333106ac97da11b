//! The resumable state of `kindred tune --state FILE`: JSON Lines, a header naming the search,
//! then one trial record per line, appended and flushed as each trial completes.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use kindred_core::{Error, Result};
use serde::{Deserialize, Serialize};

use crate::report::TrialRecord;

/// What must match for a state file to be resumed: everything that changes the proposals.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StateHeader {
    pub kindred_tune_state: u32,
    pub dataset: String,
    pub interactions: usize,
    pub protocol: String,
    pub family: String,
    pub method: String,
    pub metric: String,
    pub seed: u64,
    pub parallel: usize,
    pub startup_trials: usize,
    pub eta: usize,
}

/// An open state file with the trials it already held.
pub struct StateFile {
    path: PathBuf,
    file: File,
    /// Trials recorded by earlier runs.
    pub recorded: Vec<TrialRecord>,
}

impl StateFile {
    /// Opens `path`, creating it with `header` when missing or empty; an existing file must
    /// have the same header. A last line cut short by a crash is ignored.
    pub fn open(path: &Path, header: &StateHeader) -> Result<Self> {
        let mut recorded = Vec::new();
        let mut text = match std::fs::read(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(Error::io(path, e)),
        };
        // A crash mid-write leaves a partial last line: drop it, and that trial simply reruns.
        if text.last().is_some_and(|&b| b != b'\n') {
            let keep = text.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
            text.truncate(keep);
            OpenOptions::new()
                .write(true)
                .open(path)
                .and_then(|f| f.set_len(keep as u64))
                .map_err(|e| Error::io(path, e))?;
        }
        let existing = !text.is_empty();
        if existing {
            let text = String::from_utf8(text).map_err(|_| Error::BadFile {
                file: path.to_owned(),
                message: "not UTF-8 text".into(),
            })?;
            let lines: Vec<&str> = text.lines().collect();
            let parse_error = |line: usize, field: &str, e: serde_json::Error| Error::Parse {
                file: path.to_owned(),
                line: line as u64 + 1,
                field: field.into(),
                message: e.to_string(),
            };
            let found: StateHeader =
                serde_json::from_str(lines[0]).map_err(|e| parse_error(0, "header", e))?;
            if &found != header {
                return Err(Error::BadFile {
                    file: path.to_owned(),
                    message: format!(
                        "written by a different search ({}); this run is ({}); use a new --state file",
                        describe(&found),
                        describe(header)
                    ),
                });
            }
            for (n, line) in lines.iter().enumerate().skip(1) {
                if !line.trim().is_empty() {
                    recorded.push(
                        serde_json::from_str::<TrialRecord>(line)
                            .map_err(|e| parse_error(n, "trial", e))?,
                    );
                }
            }
        }
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| Error::io(path, e))?;
        if !existing {
            let line = serde_json::to_string(header)
                .map_err(|e| Error::InvalidInput(format!("state header: {e}")))?;
            writeln!(file, "{line}").map_err(|e| Error::io(path, e))?;
            file.flush().map_err(|e| Error::io(path, e))?;
        }
        Ok(Self {
            path: path.to_owned(),
            file,
            recorded,
        })
    }

    /// Appends one trial and flushes it to disk.
    pub fn append(&mut self, record: &TrialRecord) -> Result<()> {
        let line = serde_json::to_string(record)
            .map_err(|e| Error::InvalidInput(format!("trial record: {e}")))?;
        writeln!(self.file, "{line}").map_err(|e| Error::io(&self.path, e))?;
        self.file.flush().map_err(|e| Error::io(&self.path, e))
    }
}

fn describe(h: &StateHeader) -> String {
    format!(
        "{} on {} ({} interactions), protocol {}, method {}, metric {}, seed {}, parallel {}, startup trials {}, eta {}",
        h.family, h.dataset, h.interactions, h.protocol, h.method, h.metric, h.seed, h.parallel, h.startup_trials, h.eta
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> StateHeader {
        StateHeader {
            kindred_tune_state: 1,
            dataset: "d".into(),
            interactions: 10,
            protocol: "kfold:5".into(),
            family: "svd".into(),
            method: "tpe".into(),
            metric: "rmse".into(),
            seed: 42,
            parallel: 1,
            startup_trials: 5,
            eta: 3,
        }
    }

    fn record(trial: usize) -> TrialRecord {
        TrialRecord {
            fold: 0,
            trial,
            spec: format!("svd:epochs={trial}"),
            params: serde_json::json!({"epochs": trial}),
            rung: 0,
            score: Some(0.9),
            seconds: 1.0,
            status: "complete".into(),
            error: None,
        }
    }

    #[test]
    fn records_survive_a_reopen_and_a_cut_last_line() {
        let dir = std::env::temp_dir().join(format!("kindred-state-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("state.jsonl");
        let _ = std::fs::remove_file(&path);
        let mut state = StateFile::open(&path, &header()).unwrap();
        state.append(&record(0)).unwrap();
        state.append(&record(1)).unwrap();
        drop(state);
        // Simulate a crash in the middle of writing trial 2.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        write!(f, "{{\"fold\":0,\"tri").unwrap();
        drop(f);
        let mut state = StateFile::open(&path, &header()).unwrap();
        assert_eq!(state.recorded, vec![record(0), record(1)]);
        state.append(&record(2)).unwrap();
        drop(state);
        let state = StateFile::open(&path, &header()).unwrap();
        assert_eq!(state.recorded, vec![record(0), record(1), record(2)]);
        let mut other = header();
        other.seed = 7;
        let err = StateFile::open(&path, &other).err().unwrap().to_string();
        assert!(
            err.contains("state.jsonl") && err.contains("seed 7"),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
