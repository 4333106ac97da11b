//! Per-iteration checkpoints of a distributed ALS job: after every iteration each worker writes
//! its own rows of both factor matrices to `DIR/iter-NNNNNN/part-WWWWW-of-PPPPP.bin` (written to a
//! temporary name, synced, then renamed, so a part file is either whole or absent). On restart
//! every worker reports the newest iteration it holds a valid part for, and the job resumes from
//! the newest iteration that *every* worker holds. Two iterations are kept so that a crash while
//! writing one still leaves a complete earlier one.
//!
//! A part records the job fingerprint (inputs, parameters, worker count): a checkpoint from a
//! different job is never resumed from. In a multi-host job `DIR` may be local to each host (each
//! worker reads only its own parts) or a shared file system.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::wire::{Reader, Writer};

const MAGIC: u64 = u64::from_le_bytes(*b"KNDALSCK");
/// Completed iterations whose checkpoints are kept.
const KEEP: usize = 2;

/// One worker's rows after an iteration.
#[derive(Debug, Clone, PartialEq)]
pub struct Part {
    /// Iterations completed (1-based count).
    pub iteration: usize,
    pub user_factors: Vec<f64>,
    pub item_factors: Vec<f64>,
}

/// Where one job's checkpoints live, for one worker.
#[derive(Debug, Clone)]
pub struct Checkpoints {
    dir: PathBuf,
    fingerprint: u64,
    worker: usize,
    workers: usize,
}

impl Checkpoints {
    pub fn new(dir: &Path, fingerprint: u64, worker: usize, workers: usize) -> Self {
        Self {
            dir: dir.to_path_buf(),
            fingerprint,
            worker,
            workers,
        }
    }

    fn iteration_dir(&self, iteration: usize) -> PathBuf {
        self.dir.join(format!("iter-{iteration:06}"))
    }

    fn part_path(&self, iteration: usize) -> PathBuf {
        self.iteration_dir(iteration).join(format!(
            "part-{:05}-of-{:05}.bin",
            self.worker, self.workers
        ))
    }

    /// Writes this worker's part for `part.iteration` and removes its parts older than the kept
    /// ones.
    pub fn save(&self, part: &Part) -> Result<()> {
        let dir = self.iteration_dir(part.iteration);
        fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let mut w = Writer::default();
        w.u64(MAGIC);
        w.u64(self.fingerprint);
        w.u64(part.iteration as u64);
        w.u64(part.user_factors.len() as u64);
        w.u64(part.item_factors.len() as u64);
        w.f64s(&part.user_factors);
        w.f64s(&part.item_factors);
        let path = self.part_path(part.iteration);
        let tmp = path.with_extension("tmp");
        let write = || -> std::io::Result<()> {
            let mut file = fs::File::create(&tmp)?;
            file.write_all(&w.bytes)?;
            file.sync_all()?;
            fs::rename(&tmp, &path)
        };
        write().map_err(|e| Error::io(&path, e))?;
        if part.iteration > KEEP {
            let old = self.part_path(part.iteration - KEEP);
            if old.exists() {
                fs::remove_file(&old).map_err(|e| Error::io(&old, e))?;
            }
            // The directory goes once every worker has removed its part (best effort: another
            // worker may still be writing or removing).
            let _ = fs::remove_dir(self.iteration_dir(part.iteration - KEEP));
        }
        Ok(())
    }

    /// The newest iteration this worker has a valid part for, up to `max_iteration`.
    pub fn newest(&self, max_iteration: usize, users: usize, items: usize) -> Option<usize> {
        (1..=max_iteration)
            .rev()
            .find(|&it| matches!(self.load(it, users, items), Ok(Some(_))))
    }

    /// This worker's part for `iteration`: `None` when absent; an error when present but from
    /// another job or damaged.
    pub fn load(&self, iteration: usize, users: usize, items: usize) -> Result<Option<Part>> {
        let path = self.part_path(iteration);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(&path, e)),
        };
        let bad = |message: String| Error::Checkpoint {
            path: path.clone(),
            message,
        };
        let mut r = Reader::new(&bytes, self.worker);
        let header =
            (|| -> Result<[u64; 5]> { Ok([r.u64()?, r.u64()?, r.u64()?, r.u64()?, r.u64()?]) })()
                .map_err(|e| bad(format!("unreadable header: {e}")))?;
        let [magic, fingerprint, it, n_user_values, n_item_values] = header;
        if magic != MAGIC {
            return Err(bad("not a kindred ALS checkpoint".into()));
        }
        if fingerprint != self.fingerprint {
            return Err(bad(
                "written by a different job (inputs, parameters or worker count differ)".into(),
            ));
        }
        if it as usize != iteration
            || n_user_values as usize != users
            || n_item_values as usize != items
        {
            return Err(bad(format!(
                "holds iteration {it} with {n_user_values}/{n_item_values} values, expected \
                 iteration {iteration} with {users}/{items}"
            )));
        }
        let mut user_factors = Vec::with_capacity(users);
        let mut item_factors = Vec::with_capacity(items);
        r.f64s_into(users, &mut user_factors)
            .and_then(|_| r.f64s_into(items, &mut item_factors))
            .map_err(|e| bad(format!("truncated: {e}")))?;
        Ok(Some(Part {
            iteration,
            user_factors,
            item_factors,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_round_trip_keep_two_and_refuse_other_jobs() {
        let dir = tempfile::tempdir().unwrap();
        let ck = Checkpoints::new(dir.path(), 7, 1, 2);
        for iteration in 1..=4 {
            let part = Part {
                iteration,
                user_factors: vec![iteration as f64; 6],
                item_factors: vec![0.5; 4],
            };
            ck.save(&part).unwrap();
            assert_eq!(ck.load(iteration, 6, 4).unwrap(), Some(part));
        }
        assert_eq!(ck.newest(10, 6, 4), Some(4));
        assert_eq!(
            ck.load(2, 6, 4).unwrap(),
            None,
            "only two iterations are kept"
        );
        assert!(ck.load(3, 6, 4).unwrap().is_some());
        let other_job = Checkpoints::new(dir.path(), 8, 1, 2);
        let err = other_job.load(4, 6, 4).unwrap_err().to_string();
        assert!(err.contains("different job"), "{err}");
        assert_eq!(other_job.newest(10, 6, 4), None);
        let wrong_shape = ck.load(4, 5, 4).unwrap_err().to_string();
        assert!(wrong_shape.contains("expected"), "{wrong_shape}");
        // A truncated part is an error, not garbage factors.
        let path = ck.part_path(4);
        let bytes = fs::read(&path).unwrap();
        fs::write(&path, &bytes[..bytes.len() - 3]).unwrap();
        assert!(ck
            .load(4, 6, 4)
            .unwrap_err()
            .to_string()
            .contains("truncated"));
        assert_eq!(ck.newest(10, 6, 4), Some(3));
    }
}
