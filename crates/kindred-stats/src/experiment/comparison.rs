//! The shared result of comparing a treatment with the control on one metric: the absolute lift
//! with its test and confidence interval, and the relative lift with a delta-method interval.
//! Proportions, means, ratio metrics and CUPED-adjusted means all end here, differing only in how
//! they estimate each arm's mean and the variance of that mean.

use serde::{Deserialize, Serialize};

use kindred_core::distributions::{
    normal_quantile, normal_two_sided_p, student_t_quantile, student_t_two_sided_p,
};

/// One arm's estimate: the metric's mean and the variance of that mean (its squared standard error).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ArmEstimate {
    pub mean: f64,
    pub variance_of_mean: f64,
}

/// Treatment versus control on one metric.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    pub control_mean: f64,
    pub treatment_mean: f64,
    /// treatment - control.
    pub absolute_lift: f64,
    pub absolute_ci: [f64; 2],
    /// treatment / control - 1; `None` when the control mean is 0.
    pub relative_lift: Option<f64>,
    pub relative_ci: Option<[f64; 2]>,
    pub std_error: f64,
    /// z or t statistic of the absolute lift.
    pub statistic: f64,
    /// Welch-Satterthwaite degrees of freedom for a t test, `None` for a z test.
    pub degrees_of_freedom: Option<f64>,
    /// Two-sided p-value of "no difference".
    pub p_value: f64,
    /// The interval's confidence level (1 - alpha).
    pub level: f64,
}

impl Comparison {
    /// Compares two independent arms. `df = None` uses the normal, `Some(df)` Student's t.
    ///
    /// The relative lift r = m_t / m_c - 1 has, to first order (delta method, independent arms),
    /// Var(r) = v_t / m_c^2 + m_t^2 v_c / m_c^4; its interval uses the same critical value.
    pub fn between(
        control: ArmEstimate,
        treatment: ArmEstimate,
        df: Option<f64>,
        alpha: f64,
    ) -> Self {
        let absolute = treatment.mean - control.mean;
        let variance = control.variance_of_mean + treatment.variance_of_mean;
        let std_error = variance.max(0.0).sqrt();
        let (critical, statistic, p_value) = match df {
            Some(df) => {
                let statistic = absolute / std_error;
                (
                    student_t_quantile(1.0 - alpha / 2.0, df),
                    statistic,
                    student_t_two_sided_p(statistic, df),
                )
            }
            None => {
                let statistic = absolute / std_error;
                (
                    normal_quantile(1.0 - alpha / 2.0),
                    statistic,
                    normal_two_sided_p(statistic),
                )
            }
        };
        // A zero standard error: identical constants are no evidence of a difference, distinct
        // constants are certain.
        let (statistic, p_value) = if std_error > 0.0 {
            (statistic, p_value)
        } else if absolute == 0.0 {
            (0.0, 1.0)
        } else {
            (absolute.signum() * f64::INFINITY, 0.0)
        };
        let (relative_lift, relative_ci) = if control.mean != 0.0 {
            let m_c = control.mean;
            let relative = treatment.mean / m_c - 1.0;
            let var = treatment.variance_of_mean / (m_c * m_c)
                + treatment.mean * treatment.mean * control.variance_of_mean / m_c.powi(4);
            let half = critical * var.max(0.0).sqrt();
            (Some(relative), Some([relative - half, relative + half]))
        } else {
            (None, None)
        };
        Comparison {
            control_mean: control.mean,
            treatment_mean: treatment.mean,
            absolute_lift: absolute,
            absolute_ci: [
                absolute - critical * std_error,
                absolute + critical * std_error,
            ],
            relative_lift,
            relative_ci,
            std_error,
            statistic,
            degrees_of_freedom: df,
            p_value: p_value.clamp(0.0, 1.0),
            level: 1.0 - alpha,
        }
    }

    /// Whether the difference is significant at the comparison's level.
    pub fn is_significant(&self) -> bool {
        self.p_value < 1.0 - self.level
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_comparison_by_hand() {
        // m_c = 10, v_c = 0.25; m_t = 11, v_t = 0.39: se = sqrt(0.64) = 0.8, z = 1 / 0.8 = 1.25,
        // p = 2 (1 - Phi(1.25)) = 0.2112995473 (R: 2*pnorm(-1.25)); CI = 1 -+ 1.959964 * 0.8.
        let c = Comparison::between(
            ArmEstimate {
                mean: 10.0,
                variance_of_mean: 0.25,
            },
            ArmEstimate {
                mean: 11.0,
                variance_of_mean: 0.39,
            },
            None,
            0.05,
        );
        assert!((c.statistic - 1.25).abs() < 1e-12);
        assert!((c.p_value - 0.211_299_547_3).abs() < 1e-9);
        assert!((c.absolute_ci[0] - (1.0 - 1.959_963_985 * 0.8)).abs() < 1e-8);
        // Relative: 0.1, var = 0.39/100 + 121*0.25/10^4 = 0.0039 + 0.003025 = 0.006925.
        let half = 1.959_963_985 * 0.006_925f64.sqrt();
        let [lo, hi] = c.relative_ci.unwrap();
        assert!((c.relative_lift.unwrap() - 0.1).abs() < 1e-12);
        assert!((lo - (0.1 - half)).abs() < 1e-8 && (hi - (0.1 + half)).abs() < 1e-8);
        assert!(!c.is_significant());
    }

    #[test]
    fn degenerate_arms() {
        let same = ArmEstimate {
            mean: 1.0,
            variance_of_mean: 0.0,
        };
        let c = Comparison::between(same, same, None, 0.05);
        assert_eq!((c.p_value, c.statistic), (1.0, 0.0));
        let other = ArmEstimate {
            mean: 2.0,
            variance_of_mean: 0.0,
        };
        assert_eq!(Comparison::between(same, other, None, 0.05).p_value, 0.0);
        let zero = ArmEstimate {
            mean: 0.0,
            variance_of_mean: 0.1,
        };
        assert!(Comparison::between(zero, other, None, 0.05)
            .relative_lift
            .is_none());
    }
}
