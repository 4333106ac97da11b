//! Multiple-testing corrections for per-segment breakdowns. Cutting one experiment into k
//! segments runs k tests; at alpha = 0.05 and ten segments, a treatment with no effect "wins"
//! somewhere 40% of the time.
//!
//! The analysis uses Holm's step-down method: it controls the family-wise error rate (the chance
//! of even one false "B wins in segment X"), which is the right promise for segment results that
//! people read one at a time and act on, and it is uniformly more powerful than Bonferroni. With
//! the handful of segments an experiment has, it costs little power over Benjamini-Hochberg, which
//! only bounds the expected share of false discoveries and suits screening many hypotheses;
//! `benjamini_hochberg` is provided for that use.

use serde::{Deserialize, Serialize};

use super::comparison::Comparison;

/// One segment's comparison on one metric, with its p-value adjusted over the segments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmentComparison {
    pub segment: String,
    pub metric: String,
    pub variant: String,
    pub control_units: u64,
    pub treatment_units: u64,
    pub comparison: Comparison,
    /// Holm-adjusted p-value over all segments of this metric and variant.
    pub adjusted_p_value: f64,
    pub significant: bool,
}

fn ascending_order(p_values: &[f64]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..p_values.len()).collect();
    order.sort_by(|&a, &b| p_values[a].total_cmp(&p_values[b]));
    order
}

/// Holm-adjusted p-values (same order as the input): the i-th smallest becomes
/// max over j <= i of min(1, (m - j + 1) p_(j)).
pub fn holm(p_values: &[f64]) -> Vec<f64> {
    let m = p_values.len();
    let mut adjusted = vec![0.0; m];
    let mut running = 0.0f64;
    for (rank, &i) in ascending_order(p_values).iter().enumerate() {
        running = running.max(((m - rank) as f64 * p_values[i]).min(1.0));
        adjusted[i] = running;
    }
    adjusted
}

/// Benjamini-Hochberg adjusted p-values (same order as the input): the i-th smallest becomes
/// min over j >= i of min(1, m p_(j) / j).
pub fn benjamini_hochberg(p_values: &[f64]) -> Vec<f64> {
    let m = p_values.len();
    let mut adjusted = vec![0.0; m];
    let mut running = 1.0f64;
    let order = ascending_order(p_values);
    for (rank, &i) in order.iter().enumerate().rev() {
        running = running.min((m as f64 * p_values[i] / (rank + 1) as f64).min(1.0));
        adjusted[i] = running;
    }
    adjusted
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holm_by_hand() {
        // Sorted: 0.005, 0.01, 0.03, 0.04 with multipliers 4, 3, 2, 1: 0.02, 0.03, 0.06, 0.04,
        // running max 0.02, 0.03, 0.06, 0.06; back in input order:
        let adjusted = holm(&[0.01, 0.04, 0.03, 0.005]);
        let expected = [0.03, 0.06, 0.06, 0.02];
        for (a, e) in adjusted.iter().zip(expected) {
            assert!((a - e).abs() < 1e-12, "{adjusted:?}");
        }
        assert_eq!(holm(&[0.5, 0.9]), vec![1.0, 1.0]);
    }

    #[test]
    fn benjamini_hochberg_by_hand() {
        // m p / rank: 0.005*4/1 = 0.02, 0.01*4/2 = 0.02, 0.03*4/3 = 0.04, 0.04*4/4 = 0.04;
        // running min from the largest keeps them; back in input order:
        let adjusted = benjamini_hochberg(&[0.01, 0.04, 0.03, 0.005]);
        let expected = [0.02, 0.04, 0.04, 0.02];
        for (a, e) in adjusted.iter().zip(expected) {
            assert!((a - e).abs() < 1e-12, "{adjusted:?}");
        }
        assert!(benjamini_hochberg(&[]).is_empty());
    }
}
