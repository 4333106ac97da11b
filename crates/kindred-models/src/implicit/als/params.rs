//! ALS hyperparameters: solver, confidence convention and their validation.

use kindred_core::{Error, Result};
use serde::{Deserialize, Serialize};

/// How each user (item) vector is solved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Solver {
    /// Conjugate gradient, `cg_steps` steps from the previous vector (`implicit`'s default).
    #[default]
    Cg,
    /// Exact solve by Cholesky factorisation of the f x f system.
    Cholesky,
}

/// How an observed pair's summed weight becomes its confidence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Confidence {
    /// `1 + alpha * w` (Hu, Koren & Volinsky).
    #[default]
    Hu,
    /// `alpha * w` (the `implicit` library).
    Implicit,
}

/// Hyperparameters (names as `implicit`'s).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlsParams {
    pub factors: usize,
    /// L2 regularisation of every user and item vector (not scaled by counts).
    pub reg: f64,
    pub alpha: f64,
    pub confidence: Confidence,
    pub iterations: usize,
    pub solver: Solver,
    /// Conjugate-gradient steps per vector and half-iteration.
    pub cg_steps: usize,
    /// Seed of the initial factors; `None` uses the fit seed.
    pub seed: Option<u64>,
    /// Report the training loss after each iteration (costs about one more CG step per
    /// iteration; off by default, as `implicit`'s `calculate_training_loss`).
    pub training_loss: bool,
    /// Recency: each interaction's weight is multiplied by `0.5^(age / half_life)`, age
    /// counted in the user's distinct items, newest first (0: off).
    pub half_life: f64,
}

impl Default for AlsParams {
    fn default() -> Self {
        Self {
            factors: 64,
            reg: 0.05,
            alpha: 1.0,
            confidence: Confidence::Hu,
            iterations: 15,
            solver: Solver::Cg,
            cg_steps: 3,
            seed: None,
            training_loss: false,
            half_life: 0.0,
        }
    }
}

impl AlsParams {
    /// Checks every parameter; errors name the parameter.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidInput(format!("als: {m}")));
        if self.factors == 0 {
            return bad("factors must be at least 1".into());
        }
        if !(self.reg.is_finite() && self.reg > 0.0) {
            return bad(format!(
                "reg must be a positive number (it keeps every system solvable), got {}",
                self.reg
            ));
        }
        if !(self.alpha.is_finite() && self.alpha > 0.0) {
            return bad(format!(
                "alpha must be a positive number, got {}",
                self.alpha
            ));
        }
        if self.iterations == 0 {
            return bad("iterations must be at least 1".into());
        }
        if self.solver == Solver::Cg && self.cg_steps == 0 {
            return bad("cg_steps must be at least 1".into());
        }
        if !(self.half_life.is_finite() && self.half_life >= 0.0) {
            return bad(format!(
                "half_life must be a non-negative number (0 = off), got {}",
                self.half_life
            ));
        }
        Ok(())
    }

    pub(super) fn confidence(&self, weight: f64) -> f64 {
        match self.confidence {
            Confidence::Hu => 1.0 + self.alpha * weight,
            Confidence::Implicit => self.alpha * weight,
        }
    }
}
