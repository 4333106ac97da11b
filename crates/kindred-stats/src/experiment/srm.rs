//! Sample-ratio mismatch: if a 50/50 experiment shows 50,000 against 51,200 users, assignment or
//! logging is broken (bots filtered in one arm, a redirect losing users...) and every metric is
//! suspect. A chi-squared goodness-of-fit test of the observed counts against the configured
//! weights flags it; the threshold p < 0.001 is strict on purpose, because the check runs on every
//! experiment at every look and a false alarm stops a healthy experiment.

use kindred_core::{Error, Result};
use serde::{Deserialize, Serialize};

use kindred_core::distributions::chi_squared_sf;

/// The p-value below which a mismatch is flagged.
pub const SRM_THRESHOLD: f64 = 0.001;

/// Result of the sample-ratio check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SrmCheck {
    pub observed: Vec<u64>,
    pub expected: Vec<f64>,
    pub chi_squared: f64,
    pub degrees_of_freedom: u64,
    pub p_value: f64,
    /// p < [`SRM_THRESHOLD`].
    pub mismatch: bool,
}

/// Chi-squared goodness of fit of `observed` counts against `weights` (any positive scale).
pub fn sample_ratio_check(observed: &[u64], weights: &[f64]) -> Result<SrmCheck> {
    if observed.len() != weights.len() || observed.len() < 2 {
        return Err(Error::InvalidInput(format!(
            "the SRM check needs one weight per variant and at least 2 variants (got {} counts, {} weights)",
            observed.len(),
            weights.len()
        )));
    }
    if weights.iter().any(|w| !w.is_finite() || *w <= 0.0) {
        return Err(Error::InvalidInput(
            "variant weights must be positive numbers".into(),
        ));
    }
    let total: u64 = observed.iter().sum();
    let weight_sum: f64 = weights.iter().sum();
    let expected: Vec<f64> = weights
        .iter()
        .map(|w| total as f64 * w / weight_sum)
        .collect();
    let chi_squared: f64 = if total == 0 {
        0.0
    } else {
        observed
            .iter()
            .zip(&expected)
            .map(|(&o, &e)| (o as f64 - e).powi(2) / e)
            .sum()
    };
    let degrees_of_freedom = observed.len() as u64 - 1;
    let p_value = chi_squared_sf(chi_squared, degrees_of_freedom as f64);
    Ok(SrmCheck {
        observed: observed.to_vec(),
        expected,
        chi_squared,
        degrees_of_freedom,
        p_value,
        mismatch: p_value < SRM_THRESHOLD,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chi_squared_by_hand() {
        // 50/50 design, 5,000 against 5,200: expected 5,100 each; chi2 = 2 * 100^2 / 5100 = 3.921569,
        // p = pchisq(3.921569, 1, lower = FALSE) = 0.04767 -> not flagged.
        let ok = sample_ratio_check(&[5_000, 5_200], &[0.5, 0.5]).unwrap();
        assert!((ok.chi_squared - 3.921_569).abs() < 1e-6);
        assert!((ok.p_value - 0.047_67).abs() < 1e-4);
        assert!(!ok.mismatch);
        // 4,500 against 5,500: chi2 = 2 * 500^2 / 5000 = 100, p = 1.5e-23 -> flagged.
        let bad = sample_ratio_check(&[4_500, 5_500], &[1.0, 1.0]).unwrap();
        assert!((bad.chi_squared - 100.0).abs() < 1e-9);
        assert!(bad.mismatch && bad.p_value < 1e-20);
        // Unequal design 20/80 observed exactly: chi2 = 0, p = 1.
        let exact = sample_ratio_check(&[200, 800], &[0.2, 0.8]).unwrap();
        assert_eq!(exact.chi_squared, 0.0);
        assert!((exact.p_value - 1.0).abs() < 1e-12);
    }

    #[test]
    fn bad_weights() {
        assert!(sample_ratio_check(&[1, 2], &[0.5]).is_err());
        assert!(sample_ratio_check(&[1, 2], &[0.5, 0.0]).is_err());
    }
}
