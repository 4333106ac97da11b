//! Control charts (Shewhart) over a series of offline metrics across retrains, e.g. NDCG@10 of
//! each new model version: a centre line and limits at +-1, 2 and 3 sigma estimated from a
//! baseline, and the Western Electric rules that say when a point is out of control.
//!
//! The baseline is the first `baseline` points; the centre is their mean and sigma their sample
//! standard deviation (n - 1). Points after the baseline are checked. Rules (Western Electric
//! *Statistical Quality Control Handbook*, 1956), each on points on the same side of the centre:
//! 1. one point beyond 3 sigma;
//! 2. two of three consecutive points beyond 2 sigma;
//! 3. four of five consecutive points beyond 1 sigma;
//! 4. eight consecutive points on one side of the centre.
//!
//! Rule 1 alone has a false-alarm rate of 0.27% per point under normality; the run rules add
//! sensitivity to small sustained shifts (a slow decline in NDCG) at the cost of more false
//! alarms (about 1% per point for all four together), so they are opt-in. A run is reported at
//! the point that completes it, and only when that point is itself in the run's zone.

use kindred_core::{Error, Result};
use serde::{Deserialize, Serialize};

/// Which Western Electric rule a point broke (numbered as in the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ControlRule {
    BeyondThreeSigma,
    TwoOfThreeBeyondTwoSigma,
    FourOfFiveBeyondOneSigma,
    EightOnOneSide,
}

/// Centre and sigma of a chart.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ControlChart {
    pub centre: f64,
    pub sigma: f64,
    pub lower_limit: f64,
    pub upper_limit: f64,
}

/// A point that broke a rule.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ControlViolation {
    /// Index in the series.
    pub index: usize,
    pub value: f64,
    pub rule: ControlRule,
}

impl ControlChart {
    /// The chart of a baseline of at least two finite points.
    pub fn from_baseline(baseline: &[f64]) -> Result<Self> {
        if baseline.len() < 2 {
            return Err(Error::InvalidInput(format!(
                "a control chart needs at least 2 baseline points, got {}",
                baseline.len()
            )));
        }
        if let Some(bad) = baseline.iter().find(|v| !v.is_finite()) {
            return Err(Error::InvalidInput(format!(
                "control chart baseline holds a non-finite value {bad}"
            )));
        }
        let n = baseline.len() as f64;
        let centre = baseline.iter().sum::<f64>() / n;
        let sigma = (baseline.iter().map(|v| (v - centre).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
        Ok(Self {
            centre,
            sigma,
            lower_limit: centre - 3.0 * sigma,
            upper_limit: centre + 3.0 * sigma,
        })
    }

    /// Signed distance from the centre in sigmas; a zero sigma makes any other value infinitely far.
    fn z(&self, value: f64) -> f64 {
        let d = value - self.centre;
        if self.sigma > 0.0 {
            d / self.sigma
        } else if d == 0.0 {
            0.0
        } else {
            d.signum() * f64::INFINITY
        }
    }

    /// Violations among `series[from..]`: rule 1 always, rules 2-4 when `run_rules`; runs may
    /// reach back into the baseline. A non-finite point is reported under rule 1.
    pub fn violations(
        &self,
        series: &[f64],
        from: usize,
        run_rules: bool,
    ) -> Vec<ControlViolation> {
        let z: Vec<f64> = series.iter().map(|&v| self.z(v)).collect();
        let mut found = Vec::new();
        for i in from..series.len() {
            let value = series[i];
            let mut report = |rule| {
                found.push(ControlViolation {
                    index: i,
                    value,
                    rule,
                })
            };
            if !value.is_finite() || z[i].abs() > 3.0 {
                report(ControlRule::BeyondThreeSigma);
                continue;
            }
            if !run_rules {
                continue;
            }
            let side = z[i].signum();
            // How many of the last `len` points (ending at i) are beyond `limit` on `side`.
            let beyond = |len: usize, limit: f64| {
                (i + 1 >= len).then(|| {
                    z[i + 1 - len..=i]
                        .iter()
                        .filter(|&&v| v * side > limit)
                        .count()
                })
            };
            if z[i].abs() > 2.0 && beyond(3, 2.0).is_some_and(|c| c >= 2) {
                report(ControlRule::TwoOfThreeBeyondTwoSigma);
            } else if z[i].abs() > 1.0 && beyond(5, 1.0).is_some_and(|c| c >= 4) {
                report(ControlRule::FourOfFiveBeyondOneSigma);
            } else if side != 0.0 && beyond(8, 0.0).is_some_and(|c| c == 8) {
                report(ControlRule::EightOnOneSide);
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_of_a_hand_baseline() {
        // Baseline 0.30, 0.32, 0.34, 0.36, 0.38: mean 0.34, squared deviations sum 0.004,
        // sample variance 0.001, sigma 0.0316228; limits 0.34 +- 0.0948683.
        let chart = ControlChart::from_baseline(&[0.30, 0.32, 0.34, 0.36, 0.38]).unwrap();
        assert!((chart.centre - 0.34).abs() < 1e-12);
        assert!((chart.sigma - 0.031_622_78).abs() < 1e-8);
        assert!((chart.upper_limit - 0.434_868_3).abs() < 1e-7);
        assert!((chart.lower_limit - 0.245_131_7).abs() < 1e-7);
        assert!(ControlChart::from_baseline(&[0.3]).is_err());
        assert!(ControlChart::from_baseline(&[0.3, f64::NAN]).is_err());
    }

    #[test]
    fn a_point_beyond_three_sigma_trips() {
        let series = [0.30, 0.32, 0.34, 0.36, 0.38, 0.35, 0.24, 0.44];
        let chart = ControlChart::from_baseline(&series[..5]).unwrap();
        let v = chart.violations(&series, 5, false);
        // 0.24 is 3.16 sigma below, 0.44 is 3.16 sigma above; 0.35 is inside.
        assert_eq!(v.len(), 2);
        assert_eq!((v[0].index, v[0].rule), (6, ControlRule::BeyondThreeSigma));
        assert_eq!(v[1].index, 7);
    }

    #[test]
    fn run_rules_catch_small_sustained_shifts() {
        // Centre 0, sigma 1 (baseline -1, 1).
        let chart = ControlChart::from_baseline(&[-1.0, 1.0]).unwrap();
        assert!((chart.sigma - 2f64.sqrt()).abs() < 1e-12);
        let chart = ControlChart {
            centre: 0.0,
            sigma: 1.0,
            lower_limit: -3.0,
            upper_limit: 3.0,
        };
        let two_of_three = [0.0, 2.5, 0.5, 2.1];
        let v = chart.violations(&two_of_three, 1, true);
        assert_eq!(
            v,
            [ControlViolation {
                index: 3,
                value: 2.1,
                rule: ControlRule::TwoOfThreeBeyondTwoSigma
            }]
        );
        assert!(chart.violations(&two_of_three, 1, false).is_empty());
        let four_of_five = [1.5, 1.2, 0.0, 1.1, 1.3];
        let v = chart.violations(&four_of_five, 0, true);
        assert_eq!(v.len(), 1);
        assert_eq!(
            (v[0].index, v[0].rule),
            (4, ControlRule::FourOfFiveBeyondOneSigma)
        );
        let eight = [-0.1, -0.2, -0.3, -0.1, -0.5, -0.2, -0.1, -0.4];
        let v = chart.violations(&eight, 0, true);
        assert_eq!(v.len(), 1);
        assert_eq!((v[0].index, v[0].rule), (7, ControlRule::EightOnOneSide));
        // Seven on one side then a crossing: nothing.
        assert!(chart
            .violations(&[-0.1, -0.2, -0.3, -0.1, -0.5, -0.2, -0.1, 0.4], 0, true)
            .is_empty());
    }

    #[test]
    fn a_flat_baseline_trips_on_any_change() {
        let chart = ControlChart::from_baseline(&[0.5, 0.5, 0.5]).unwrap();
        assert!(chart.violations(&[0.5, 0.5, 0.5, 0.5], 3, false).is_empty());
        assert_eq!(chart.violations(&[0.5, 0.5, 0.5, 0.49], 3, false).len(), 1);
    }
}
