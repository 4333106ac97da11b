//! Ratio metrics whose unit of analysis (the user, who was randomised) differs from the unit of
//! the metric: clicks per impression, revenue per order. The ratio of sums R = sum x / sum y is
//! not a mean of independent terms, so its variance comes from the delta method:
//!
//! Var(R) ~ (1/n) (s_x^2 / ybar^2 - 2 xbar s_xy / ybar^3 + xbar^2 s_y^2 / ybar^4)
//!
//! where x, y are the per-user numerator and denominator and s the sample (co)variances. Treating
//! impressions as independent instead would understate the variance whenever a user's clicks are
//! correlated, which they always are.

use kindred_core::{Error, Result};
use serde::{Deserialize, Serialize};

use super::comparison::{ArmEstimate, Comparison};

/// Per-unit sums for one arm's ratio metric.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RatioSummary {
    pub count: u64,
    pub numerator_mean: f64,
    pub denominator_mean: f64,
    pub numerator_variance: f64,
    pub denominator_variance: f64,
    pub covariance: f64,
}

impl RatioSummary {
    /// Summary of per-unit (numerator, denominator) pairs (n - 1 denominators).
    pub fn of(pairs: impl IntoIterator<Item = (f64, f64)>) -> Self {
        let (mut n, mut mx, mut my, mut cxx, mut cyy, mut cxy) = (0u64, 0.0, 0.0, 0.0, 0.0, 0.0);
        for (x, y) in pairs {
            n += 1;
            let (dx, dy) = (x - mx, y - my);
            mx += dx / n as f64;
            my += dy / n as f64;
            cxx += dx * (x - mx);
            cyy += dy * (y - my);
            cxy += dx * (y - my);
        }
        let d = if n > 1 { (n - 1) as f64 } else { 1.0 };
        Self {
            count: n,
            numerator_mean: mx,
            denominator_mean: my,
            numerator_variance: cxx / d,
            denominator_variance: cyy / d,
            covariance: cxy / d,
        }
    }

    /// The ratio and its delta-method variance.
    pub fn estimate(&self) -> Result<ArmEstimate> {
        if self.count == 0 || self.denominator_mean == 0.0 {
            return Err(Error::InvalidInput(
                "a ratio metric needs a variant whose denominators do not sum to 0".into(),
            ));
        }
        let (x, y, n) = (
            self.numerator_mean,
            self.denominator_mean,
            self.count as f64,
        );
        let variance = (self.numerator_variance / (y * y) - 2.0 * x * self.covariance / y.powi(3)
            + x * x * self.denominator_variance / y.powi(4))
            / n;
        Ok(ArmEstimate {
            mean: x / y,
            variance_of_mean: variance.max(0.0),
        })
    }
}

/// Compares a ratio metric between arms (normal approximation, level 1 - `alpha`).
pub fn compare_ratios(
    control: &RatioSummary,
    treatment: &RatioSummary,
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
    fn delta_method_by_hand() {
        // Clicks / impressions for 4 users: (1, 10), (2, 10), (0, 5), (3, 15).
        // xbar = 1.5, ybar = 10, R = 0.15. s_x^2 = (0.25+0.25+2.25+2.25)/3 = 5/3;
        // s_y^2 = (0+0+25+25)/3 = 50/3; s_xy = (0 + 0 + (-1.5)(-5) + (1.5)(5))/3 = 5.
        // Var = (1/4) (5/3 / 100 - 2 * 1.5 * 5 / 1000 + 2.25 * 50/3 / 10^4)
        //     = 0.25 * (0.0166667 - 0.015 + 0.00375) = 0.25 * 0.0054167 = 0.00135417.
        let s = RatioSummary::of([(1.0, 10.0), (2.0, 10.0), (0.0, 5.0), (3.0, 15.0)]);
        assert!((s.covariance - 5.0).abs() < 1e-12);
        let e = s.estimate().unwrap();
        assert!((e.mean - 0.15).abs() < 1e-12);
        assert!((e.variance_of_mean - 0.001_354_166_67).abs() < 1e-10);
    }

    #[test]
    fn proportional_numerators_have_no_variance() {
        // Every user clicks exactly 10% of impressions: the ratio is known exactly.
        let s = RatioSummary::of([(1.0, 10.0), (2.0, 20.0), (5.0, 50.0)]);
        assert!(s.estimate().unwrap().variance_of_mean.abs() < 1e-15);
        assert!(RatioSummary::of([(1.0, 0.0)]).estimate().is_err());
    }
}
