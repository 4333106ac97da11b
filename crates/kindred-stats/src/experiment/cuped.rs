//! CUPED (Deng, Xu, Kohavi, Walker 2013): variance reduction with a pre-experiment covariate.
//! Each unit's metric Y is replaced by Y - theta (X - mean X), where X is the same user's value of
//! a covariate measured before assignment (usually the metric itself in a pre-period). Because X
//! cannot be affected by the treatment, the adjusted means stay unbiased for the lift, and the
//! variance shrinks by the factor 1 - corr(X, Y)^2.
//!
//! theta = cov(X, Y) / var(X) is estimated once from all arms pooled (the same theta for every
//! arm, so the adjustment is the same function of X everywhere), and X is centred on the pooled
//! mean so the adjusted means keep the metric's scale.

use super::means::SampleSummary;

/// The pooled regression slope of the metric on the covariate over all arms' (metric, covariate)
/// pairs; 0 when the covariate has no variance (no adjustment is then possible).
pub fn theta(arms: &[&[(f64, f64)]]) -> f64 {
    let (mut n, mut my, mut mx, mut cxy, mut cxx) = (0u64, 0.0, 0.0, 0.0, 0.0);
    for &(y, x) in arms.iter().flat_map(|arm| arm.iter()) {
        n += 1;
        let (dy, dx) = (y - my, x - mx);
        my += dy / n as f64;
        mx += dx / n as f64;
        cxy += dx * (y - my);
        cxx += dx * (x - mx);
    }
    if cxx > 0.0 {
        cxy / cxx
    } else {
        0.0
    }
}

/// The pooled covariate mean over all arms.
pub fn pooled_covariate_mean(arms: &[&[(f64, f64)]]) -> f64 {
    let (sum, n) = arms
        .iter()
        .flat_map(|arm| arm.iter())
        .fold((0.0, 0u64), |(s, n), &(_, x)| (s + x, n + 1));
    if n == 0 {
        0.0
    } else {
        sum / n as f64
    }
}

/// The summary of one arm's adjusted values Y - theta (X - x_mean).
pub fn adjusted_summary(arm: &[(f64, f64)], theta: f64, covariate_mean: f64) -> SampleSummary {
    SampleSummary::of(arm.iter().map(|&(y, x)| y - theta * (x - covariate_mean)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn theta_by_hand() {
        // Pooled (y, x): (3, 1), (5, 2) | (7, 3), (9, 5). xbar = 2.75, ybar = 6.
        // cov numerator: (-1.75)(-3) + (-0.75)(-1) + (0.25)(1) + (2.25)(3) = 5.25+0.75+0.25+6.75 = 13
        // var numerator: 3.0625 + 0.5625 + 0.0625 + 5.0625 = 8.75; theta = 13 / 8.75 = 1.4857143.
        let a = [(3.0, 1.0), (5.0, 2.0)];
        let b = [(7.0, 3.0), (9.0, 5.0)];
        let t = theta(&[&a, &b]);
        assert!((t - 13.0 / 8.75).abs() < 1e-12);
        let xm = pooled_covariate_mean(&[&a, &b]);
        assert!((xm - 2.75).abs() < 1e-12);
        // Adjusted a: 3 - t(1 - 2.75) = 5.6, 5 - t(2 - 2.75) = 6.1142857; mean 5.8571429.
        let s = adjusted_summary(&a, t, xm);
        assert!((s.mean - (3.0 + 5.0 + t * 2.5) / 2.0).abs() < 1e-12);
    }

    #[test]
    fn perfectly_predicted_metric_has_no_adjusted_variance() {
        let a: Vec<(f64, f64)> = (0..10).map(|i| (2.0 * i as f64 + 1.0, i as f64)).collect();
        let t = theta(&[&a]);
        assert!((t - 2.0).abs() < 1e-12);
        assert!(adjusted_summary(&a, t, pooled_covariate_mean(&[&a])).variance < 1e-20);
        assert_eq!(theta(&[&[(1.0, 3.0), (2.0, 3.0)]]), 0.0);
    }
}
