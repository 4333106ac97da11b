//! Binary metrics (converted or not, clicked or not): the two-proportion z test with a Wald
//! interval on the absolute lift and a delta-method interval on the relative lift.
//!
//! The test uses the unpooled standard error sqrt(p_c q_c / n_c + p_t q_t / n_t), the same one the
//! interval uses, so "the interval excludes 0" and "p < alpha" always agree, and the power
//! calculator (power.rs) predicts exactly this test. The pooled-variance z test differs only in
//! the second decimal of p at the sample sizes of online experiments.

use kindred_core::{Error, Result};

use super::comparison::{ArmEstimate, Comparison};

/// Successes out of trials for one arm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Proportion {
    pub successes: u64,
    pub trials: u64,
}

impl Proportion {
    /// The arm's rate and the variance of that rate, p (1 - p) / n.
    pub fn estimate(self) -> Result<ArmEstimate> {
        if self.trials == 0 {
            return Err(Error::InvalidInput("a variant has no units".into()));
        }
        if self.successes > self.trials {
            return Err(Error::InvalidInput(format!(
                "{} successes out of {} trials",
                self.successes, self.trials
            )));
        }
        let n = self.trials as f64;
        let p = self.successes as f64 / n;
        Ok(ArmEstimate {
            mean: p,
            variance_of_mean: p * (1.0 - p) / n,
        })
    }
}

/// Two-proportion z test of treatment against control at level `alpha`.
pub fn two_proportion_z(
    control: Proportion,
    treatment: Proportion,
    alpha: f64,
) -> Result<Comparison> {
    Ok(Comparison::between(
        control.estimate()?,
        treatment.estimate()?,
        None,
        alpha,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed_z_test() {
        // Control 100/1000 = 0.10, treatment 130/1000 = 0.13.
        // v_c = 0.1 * 0.9 / 1000 = 9e-5, v_t = 0.13 * 0.87 / 1000 = 1.131e-4; se = sqrt(2.031e-4) = 0.0142513
        // z = 0.03 / 0.0142513 = 2.105071; p = 2 * pnorm(-2.105071) = 0.035286 (R).
        let c = two_proportion_z(
            Proportion {
                successes: 100,
                trials: 1000,
            },
            Proportion {
                successes: 130,
                trials: 1000,
            },
            0.05,
        )
        .unwrap();
        assert!((c.absolute_lift - 0.03).abs() < 1e-12);
        assert!((c.std_error - 2.031e-4f64.sqrt()).abs() < 1e-12);
        assert!((c.statistic - 2.105_071).abs() < 1e-5);
        assert!((c.p_value - 0.035_286).abs() < 1e-5);
        // CI: 0.03 -+ 1.959964 * 0.0142513 = [0.0020678, 0.0579322].
        assert!((c.absolute_ci[0] - 0.002_067_8).abs() < 1e-6);
        assert!((c.absolute_ci[1] - 0.057_932_2).abs() < 1e-6);
        // Relative: 0.3; var = 1.131e-4 / 0.01 + 0.0169 * 9e-5 / 1e-4 = 0.01131 + 0.01521 = 0.02652.
        let half = 1.959_964 * 0.026_52f64.sqrt();
        assert!((c.relative_ci.unwrap()[0] - (0.3 - half)).abs() < 1e-5);
        assert!(c.is_significant());
    }

    #[test]
    fn bad_counts_are_errors() {
        let ok = Proportion {
            successes: 1,
            trials: 2,
        };
        assert!(two_proportion_z(
            Proportion {
                successes: 0,
                trials: 0
            },
            ok,
            0.05
        )
        .is_err());
        assert!(two_proportion_z(
            ok,
            Proportion {
                successes: 3,
                trials: 2
            },
            0.05
        )
        .is_err());
    }
}
