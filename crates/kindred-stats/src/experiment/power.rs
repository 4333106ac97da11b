//! Power and sample size for two-sided tests of proportions and means with equal allocation,
//! by the normal approximation the analysis itself uses (proportions.rs; for means the t test is
//! indistinguishable from z at online sample sizes).
//!
//! power = Phi(|delta| / se - z_{1-alpha/2}) + Phi(-|delta| / se - z_{1-alpha/2}), and the sample
//! size per variant solving power = 1 - beta (ignoring the far tail) is
//! n = (z_{1-alpha/2} + z_{1-beta})^2 (sigma_c^2 + sigma_t^2) / delta^2.

use kindred_core::{Error, Result};

use kindred_core::distributions::{normal_cdf, normal_quantile};

fn check_level(alpha: f64, power: Option<f64>) -> Result<()> {
    if !(alpha > 0.0 && alpha < 1.0) {
        return Err(Error::spec("alpha", alpha.to_string(), "must be in (0, 1)"));
    }
    if let Some(power) = power {
        if !(power > 0.0 && power < 1.0) {
            return Err(Error::spec("power", power.to_string(), "must be in (0, 1)"));
        }
    }
    Ok(())
}

fn check_rates(baseline: f64, mde: f64) -> Result<(f64, f64)> {
    let treated = baseline + mde;
    if !(baseline > 0.0 && baseline < 1.0) {
        return Err(Error::spec(
            "baseline",
            baseline.to_string(),
            "a rate must be in (0, 1)",
        ));
    }
    if mde == 0.0 || !(treated > 0.0 && treated < 1.0) {
        return Err(Error::spec(
            "mde",
            mde.to_string(),
            "the absolute effect must be nonzero and keep baseline + mde in (0, 1)",
        ));
    }
    Ok((baseline * (1.0 - baseline), treated * (1.0 - treated)))
}

/// Two-sided power of a test whose estimate has standard error `std_error` when the true effect is `effect`.
pub fn power_from_std_error(effect: f64, std_error: f64, alpha: f64) -> f64 {
    let z = normal_quantile(1.0 - alpha / 2.0);
    let shift = effect.abs() / std_error;
    normal_cdf(shift - z) + normal_cdf(-shift - z)
}

/// Units per variant to reach `power` when the lift's variance at one unit per variant is `unit_variance_sum`.
fn units_for(unit_variance_sum: f64, effect: f64, alpha: f64, power: f64) -> u64 {
    let z = normal_quantile(1.0 - alpha / 2.0) + normal_quantile(power);
    (z * z * unit_variance_sum / (effect * effect)).ceil() as u64
}

/// Power of the two-proportion z test with `n` units per variant, baseline rate and absolute lift `mde`.
pub fn power_proportions(baseline: f64, mde: f64, n: u64, alpha: f64) -> Result<f64> {
    check_level(alpha, None)?;
    let (vc, vt) = check_rates(baseline, mde)?;
    Ok(power_from_std_error(
        mde,
        ((vc + vt) / n.max(1) as f64).sqrt(),
        alpha,
    ))
}

/// Units per variant for the two-proportion z test to detect the absolute lift `mde` with `power`.
pub fn sample_size_proportions(baseline: f64, mde: f64, alpha: f64, power: f64) -> Result<u64> {
    check_level(alpha, Some(power))?;
    let (vc, vt) = check_rates(baseline, mde)?;
    Ok(units_for(vc + vt, mde, alpha, power))
}

fn check_mean(std_dev: f64, mde: f64) -> Result<()> {
    if !(std_dev > 0.0 && std_dev.is_finite()) {
        return Err(Error::spec(
            "std-dev",
            std_dev.to_string(),
            "must be positive",
        ));
    }
    if mde == 0.0 || !mde.is_finite() {
        return Err(Error::spec(
            "mde",
            mde.to_string(),
            "the absolute effect must be nonzero",
        ));
    }
    Ok(())
}

/// Power of the test of means with `n` units per variant, per-unit standard deviation `std_dev` in both arms.
pub fn power_means(std_dev: f64, mde: f64, n: u64, alpha: f64) -> Result<f64> {
    check_level(alpha, None)?;
    check_mean(std_dev, mde)?;
    Ok(power_from_std_error(
        mde,
        (2.0 * std_dev * std_dev / n.max(1) as f64).sqrt(),
        alpha,
    ))
}

/// Units per variant for the test of means to detect the absolute lift `mde` with `power`.
pub fn sample_size_means(std_dev: f64, mde: f64, alpha: f64, power: f64) -> Result<u64> {
    check_level(alpha, Some(power))?;
    check_mean(std_dev, mde)?;
    Ok(units_for(2.0 * std_dev * std_dev, mde, alpha, power))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proportions_by_hand() {
        // Baseline 5%, +1 point: p_c q_c + p_t q_t = 0.0475 + 0.0564 = 0.1039;
        // (1.959964 + 0.841621)^2 = 2.801585^2 = 7.848880; n = 7.848880 * 0.1039 / 1e-4 = 8154.99 -> 8155.
        assert_eq!(
            sample_size_proportions(0.05, 0.01, 0.05, 0.8).unwrap(),
            8155
        );
        // At that n the power is 0.8 (plus the negligible far tail).
        let p = power_proportions(0.05, 0.01, 8155, 0.05).unwrap();
        assert!((p - 0.8).abs() < 1e-3, "{p}");
        assert!(sample_size_proportions(0.05, 0.0, 0.05, 0.8).is_err());
        assert!(sample_size_proportions(1.5, 0.01, 0.05, 0.8).is_err());
        assert!(power_proportions(0.05, 0.01, 100, 1.5).is_err());
    }

    #[test]
    fn means_by_hand() {
        // sd 1, lift 0.2 (Cohen's d = 0.2): n = 7.848880 * 2 / 0.04 = 392.44 -> 393 per group.
        assert_eq!(sample_size_means(1.0, 0.2, 0.05, 0.8).unwrap(), 393);
        // No effect to speak of gives power alpha: at delta -> 0, Phi(-z) + Phi(-z) = alpha.
        assert!((power_from_std_error(0.0, 1.0, 0.05) - 0.05).abs() < 1e-12);
        let low = power_means(1.0, 0.2, 100, 0.05).unwrap();
        let high = power_means(1.0, 0.2, 1000, 0.05).unwrap();
        assert!(low < high && high > 0.99);
    }
}
