//! Early stopping for SGD rating models: a seeded holdout of training rows and the tracker that
//! decides when validation RMSE stopped improving.

use kindred_core::{Error, Result, SplitMix64};

/// Which log rows are held out for early stopping (seeded), or none.
pub(crate) fn holdout(n: usize, fraction: Option<f64>, seed: u64) -> Result<Vec<bool>> {
    let mut held = vec![false; n];
    if let Some(fraction) = fraction {
        let k = ((fraction * n as f64).round() as usize).max(1);
        if k >= n {
            return Err(Error::InvalidInput(format!(
                "early_stopping={fraction} leaves no training ratings out of {n}"
            )));
        }
        let mut rows: Vec<u32> = (0..n as u32).collect();
        SplitMix64::stream(seed, 0xE5).shuffle(&mut rows);
        for &r in &rows[..k] {
            held[r as usize] = true;
        }
    }
    Ok(held)
}

/// Tracks the best validation RMSE and decides when to stop.
pub(crate) struct EarlyStop {
    pub best: f64,
    pub best_epoch: usize,
    patience: usize,
}

impl EarlyStop {
    pub fn new(patience: usize) -> Self {
        Self {
            best: f64::INFINITY,
            best_epoch: 0,
            patience,
        }
    }

    /// Records an epoch's validation RMSE: `(improved, stop)`.
    pub fn record(&mut self, epoch: usize, rmse: f64) -> (bool, bool) {
        if rmse < self.best {
            self.best = rmse;
            self.best_epoch = epoch;
            (true, false)
        } else {
            (false, epoch - self.best_epoch >= self.patience)
        }
    }
}
