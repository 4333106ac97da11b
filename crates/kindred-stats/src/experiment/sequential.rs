//! An always-valid test so that looking at a running experiment every day is safe: the mixture
//! sequential probability ratio test (mSPRT, Robbins 1970; Johari, Pekelis, Walsh 2017) with a
//! normal mixture over the effect.
//!
//! With theta_hat the observed lift and V its variance (se^2), the mixture likelihood ratio of
//! "lift ~ N(0, tau^2)" against "lift = 0" is
//!
//! Lambda = sqrt(V / (V + tau^2)) exp(theta_hat^2 tau^2 / (2 V (V + tau^2))).
//!
//! Under the null, Lambda is a nonnegative martingale with mean 1, so by Ville's inequality
//! P(Lambda ever >= 1/alpha) <= alpha however often it is looked at. The always-valid p-value is
//! min over looks of 1/Lambda, and inverting the test gives the confidence sequence
//!
//! theta_hat -+ sqrt(V (V + tau^2) / tau^2 * (2 ln(1/alpha) + ln((V + tau^2) / V))),
//!
//! which covers the true lift at every look simultaneously with probability 1 - alpha.
//!
//! The mixing variance tau^2 is the one tuning choice. In units of the estimate's variance V,
//! with r = tau^2 / V, the sequence's half-width is se * sqrt((1 + 1/r) (2 ln(1/alpha) + ln(1 + r))),
//! which is smallest at the r solving r = 2 ln(1/alpha) + ln(1 + r) (about 8.2 at alpha = 0.05;
//! the half-width is then 3.04 se, against 3.7 se at r = 1 and 1.96 se for a fixed-horizon test).
//! We choose tau^2 so that this optimum falls at the planned end of the experiment:
//! tau^2 = r* (s_c^2 + s_t^2) / n_plan. The method then spends its power where the experiment is
//! meant to be read, and stays valid (only wider) before and after. n_plan must be fixed before
//! the data is seen; a choice made from the data at each look voids the guarantee. The per-unit
//! variances are plug-in estimates, as in Johari et al.

use serde::{Deserialize, Serialize};

/// The variance ratio r = tau^2 / V at which the confidence sequence is narrowest: the fixed
/// point of r = 2 ln(1/alpha) + ln(1 + r) (the zero of the derivative of the squared half-width).
pub fn optimal_variance_ratio(alpha: f64) -> f64 {
    let base = 2.0 * (1.0 / alpha).ln();
    let mut r = base;
    // A contraction (derivative 1 / (1 + r) < 1): fifty steps reach double precision.
    for _ in 0..50 {
        r = base + (1.0 + r).ln();
    }
    r
}

/// The mixing variance that makes the confidence sequence narrowest at
/// `planned_units_per_variant`, from the per-unit variances of the two arms.
pub fn mixing_variance(
    control_unit_variance: f64,
    treatment_unit_variance: f64,
    planned_units_per_variant: f64,
    alpha: f64,
) -> f64 {
    optimal_variance_ratio(alpha) * (control_unit_variance + treatment_unit_variance)
        / planned_units_per_variant.max(1.0)
}

/// The mSPRT at one look.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SequentialResult {
    pub mixing_variance: f64,
    /// ln Lambda, the log mixture likelihood ratio.
    pub log_likelihood_ratio: f64,
    /// The always-valid p-value (min(1, 1/Lambda) at this look; a monitor keeps the running minimum).
    pub p_value: f64,
    /// The always-valid confidence sequence for the lift at this look.
    pub confidence_sequence: [f64; 2],
    /// Whether the test rejects "no difference" at level alpha.
    pub significant: bool,
}

/// The mSPRT for a lift estimate `estimate` with variance `variance` at level `alpha`.
pub fn msprt(estimate: f64, variance: f64, mixing_variance: f64, alpha: f64) -> SequentialResult {
    let (v, tau2) = (
        variance.max(f64::MIN_POSITIVE),
        mixing_variance.max(f64::MIN_POSITIVE),
    );
    let log_lr = 0.5 * (v / (v + tau2)).ln() + estimate * estimate * tau2 / (2.0 * v * (v + tau2));
    let p_value = (-log_lr).exp().min(1.0);
    let half = (v * (v + tau2) / tau2 * (2.0 * (1.0 / alpha).ln() + ((v + tau2) / v).ln())).sqrt();
    SequentialResult {
        mixing_variance: tau2,
        log_likelihood_ratio: log_lr,
        p_value,
        confidence_sequence: [estimate - half, estimate + half],
        significant: p_value <= alpha,
    }
}

/// Repeated looks at one experiment: keeps the running minimum p-value and the running
/// intersection of the confidence sequence, both still valid at every look.
#[derive(Debug, Clone)]
pub struct SequentialMonitor {
    alpha: f64,
    mixing_variance: f64,
    p_value: f64,
    interval: [f64; 2],
}

impl SequentialMonitor {
    /// A monitor at level `alpha` with a fixed mixing variance.
    pub fn new(alpha: f64, mixing_variance: f64) -> Self {
        Self {
            alpha,
            mixing_variance,
            p_value: 1.0,
            interval: [f64::NEG_INFINITY, f64::INFINITY],
        }
    }

    /// Takes one look; returns the running always-valid result.
    pub fn look(&mut self, estimate: f64, variance: f64) -> SequentialResult {
        let mut r = msprt(estimate, variance, self.mixing_variance, self.alpha);
        self.p_value = self.p_value.min(r.p_value);
        self.interval = [
            self.interval[0].max(r.confidence_sequence[0]),
            self.interval[1].min(r.confidence_sequence[1]),
        ];
        r.p_value = self.p_value;
        r.confidence_sequence = self.interval;
        r.significant = self.p_value <= self.alpha;
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn msprt_by_hand() {
        // theta = 0.5, V = 0.01, tau^2 = 0.01: ln L = 0.5 ln(0.5) + 0.25 * 0.01 / (2 * 0.01 * 0.02)
        // = -0.3465736 + 6.25 = 5.9034264; p = exp(-5.9034264) = 0.0027301.
        let r = msprt(0.5, 0.01, 0.01, 0.05);
        assert!((r.log_likelihood_ratio - 5.903_426_4).abs() < 1e-6);
        assert!((r.p_value - 0.002_730_07).abs() < 1e-7);
        assert!(r.significant);
        // Half width: sqrt(0.01 * 0.02 / 0.01 * (2 ln 20 + ln 2)) = sqrt(0.02 * 6.684612) = 0.365640.
        assert!((r.confidence_sequence[1] - 0.5 - 0.365_640).abs() < 1e-5);
        // The sequence is wider than the fixed-horizon interval 0.5 -+ 1.96 * 0.1.
        assert!(r.confidence_sequence[0] < 0.5 - 0.196);
    }

    #[test]
    fn mixing_variance_minimises_the_width_at_the_planned_size() {
        // alpha = 0.05: 2 ln 20 = 5.991465; iterating r = 5.991465 + ln(1 + r) from r = 5.991465:
        // 7.937, 8.184, 8.209, 8.2117, ... -> 8.211968 (ln(9.211968) = 2.220503, + 5.991465 = 8.211968).
        let r = optimal_variance_ratio(0.05);
        assert!((r - (5.991_464_547_107_982 + (1.0 + r).ln())).abs() < 1e-12);
        assert!((r - 8.211_968).abs() < 1e-6, "{r}");
        // Unit variances 1 and 1, planned 5,000 per arm: V there = 2 / 5000 = 4e-4, tau^2 = r * 4e-4.
        let tau2 = mixing_variance(1.0, 1.0, 5_000.0, 0.05);
        assert!((tau2 - r * 4e-4).abs() < 1e-15);
        // The half-width at the planned size is smaller than with any other mixing variance.
        let width = |tau2: f64| {
            let s = msprt(0.0, 4e-4, tau2, 0.05);
            s.confidence_sequence[1]
        };
        for other in [0.5, 0.9, 1.1, 2.0] {
            assert!(width(tau2) < width(tau2 * other));
        }
        // sqrt((1 + 1/r)(5.991465 + ln(1 + r))) = sqrt(1.121773 * 8.211968) = 3.035122 standard errors (se = 0.02).
        assert!(
            (width(tau2) / 0.02 - 3.035_122).abs() < 1e-5,
            "{}",
            width(tau2) / 0.02
        );
    }

    #[test]
    fn decision_matches_the_sequence() {
        // Rejecting (Lambda >= 1/alpha) is the same as 0 leaving the confidence sequence.
        for estimate in [0.0, 0.1, 0.2, 0.3, 0.36, 0.37, 0.5] {
            let r = msprt(estimate, 0.01, 0.01, 0.05);
            let excludes_zero = r.confidence_sequence[0] > 0.0;
            assert_eq!(r.significant, excludes_zero, "estimate {estimate}");
        }
    }

    #[test]
    fn monitor_keeps_running_extremes() {
        let mut m = SequentialMonitor::new(0.05, 0.01);
        let first = m.look(0.5, 0.01);
        let second = m.look(0.0, 0.01);
        assert_eq!(second.p_value, first.p_value);
        assert!(second.confidence_sequence[0] >= first.confidence_sequence[0]);
        assert!(second.significant);
    }
}
