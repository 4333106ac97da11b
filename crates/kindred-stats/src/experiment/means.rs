//! Continuous metrics (revenue, watch time, counts per user): Welch's t test, which does not
//! assume equal variances, with Welch-Satterthwaite degrees of freedom.

use kindred_core::{Error, Result};
use serde::{Deserialize, Serialize};

use super::comparison::{ArmEstimate, Comparison};

/// Count, mean and unbiased sample variance of one arm's per-unit values.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SampleSummary {
    pub count: u64,
    pub mean: f64,
    /// Sample variance with the n - 1 denominator (0 for a single value).
    pub variance: f64,
}

impl SampleSummary {
    /// Summary of `values` (Welford's update, stable for large means).
    pub fn of(values: impl IntoIterator<Item = f64>) -> Self {
        let (mut count, mut mean, mut m2) = (0u64, 0.0, 0.0);
        for x in values {
            count += 1;
            let delta = x - mean;
            mean += delta / count as f64;
            m2 += delta * (x - mean);
        }
        let variance = if count > 1 {
            m2 / (count - 1) as f64
        } else {
            0.0
        };
        Self {
            count,
            mean,
            variance,
        }
    }

    /// The arm's mean and the variance of the mean, s^2 / n.
    pub fn estimate(&self) -> ArmEstimate {
        ArmEstimate {
            mean: self.mean,
            variance_of_mean: self.variance / self.count as f64,
        }
    }
}

/// Welch-Satterthwaite degrees of freedom: (v_c + v_t)^2 / (v_c^2 / (n_c - 1) + v_t^2 / (n_t - 1))
/// with v = s^2 / n.
pub fn welch_degrees_of_freedom(control: &SampleSummary, treatment: &SampleSummary) -> f64 {
    let vc = control.variance / control.count as f64;
    let vt = treatment.variance / treatment.count as f64;
    let denominator = vc * vc / (control.count - 1) as f64 + vt * vt / (treatment.count - 1) as f64;
    if denominator > 0.0 {
        (vc + vt).powi(2) / denominator
    } else {
        (control.count + treatment.count - 2) as f64
    }
}

/// Welch's t test of treatment against control at level `alpha`; each arm needs two units.
pub fn welch_t(
    control: &SampleSummary,
    treatment: &SampleSummary,
    alpha: f64,
) -> Result<Comparison> {
    if control.count < 2 || treatment.count < 2 {
        return Err(Error::InvalidInput(format!(
            "Welch's t test needs at least 2 units per variant (got {} and {})",
            control.count, treatment.count
        )));
    }
    let df = welch_degrees_of_freedom(control, treatment);
    Ok(Comparison::between(
        control.estimate(),
        treatment.estimate(),
        Some(df),
        alpha,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_by_hand() {
        // 2, 4, 4, 4, 5, 5, 7, 9: mean 5, squared deviations sum 32, variance 32 / 7.
        let s = SampleSummary::of([2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]);
        assert_eq!(s.count, 8);
        assert!((s.mean - 5.0).abs() < 1e-12);
        assert!((s.variance - 32.0 / 7.0).abs() < 1e-12);
    }

    #[test]
    fn welch_by_hand() {
        // Control 1..=5: mean 3, s^2 = 2.5; treatment 2, 4, 6, 8, 10, 12: mean 7, s^2 = 14.
        // v_c = 0.5, v_t = 14/6 = 2.333333; se = sqrt(2.833333) = 1.683251; t = 4 / 1.683251 = 2.376354.
        // df = 2.833333^2 / (0.25/4 + 5.444444/5) = 8.027778 / 1.151389 = 6.972255.
        // Two-sided p = 0.049284 (t cdf by numerical integration of the density).
        let c = SampleSummary::of((1..=5).map(f64::from));
        let t = SampleSummary::of([2.0, 4.0, 6.0, 8.0, 10.0, 12.0]);
        let r = welch_t(&c, &t, 0.05).unwrap();
        assert!((r.statistic - 2.376_354).abs() < 1e-5);
        assert!((r.degrees_of_freedom.unwrap() - 6.972_255).abs() < 1e-5);
        assert!((r.p_value - 0.049_284).abs() < 1e-5);
        // CI = 4 -+ qt(0.975, 6.972255) * 1.683251 = 4 -+ 2.366533 * 1.683251 = [0.016531, 7.983469].
        assert!(
            (r.absolute_ci[0] - 0.016_531).abs() < 1e-5
                && (r.absolute_ci[1] - 7.983_469).abs() < 1e-5
        );
    }

    #[test]
    fn too_few_units() {
        let one = SampleSummary::of([1.0]);
        let two = SampleSummary::of([1.0, 2.0]);
        assert!(welch_t(&one, &two, 0.05).is_err());
    }
}
