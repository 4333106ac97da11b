//! Population stability index (PSI): how far a current distribution has moved from a reference
//! one, over the same bins, and the binnings monitoring uses for item popularity, user activity
//! and a numeric or categorical feature.
//!
//! PSI = sum_i (c_i - r_i) * ln(c_i / r_i) over bin shares r (reference) and c (current); it is
//! the symmetrised Kullback-Leibler divergence (Jeffreys), so it is >= 0 and symmetric. A share
//! of 0 would make the logarithm infinite, so shares are floored at `epsilon` (default
//! [`PSI_EPSILON`]) before the sum; the floored shares are not renormalised, which is the usual
//! practice and changes the result by O(epsilon).
//!
//! Reading it: < 0.1 stable, 0.1-0.25 moderate shift, > 0.25 major shift. These cut-offs are the
//! credit-scoring rule of thumb (Siddiqi, *Credit Risk Scorecards*, Wiley 2006, and industry
//! practice before it), a convention rather than a test. PSI has a positive bias on finite
//! samples: with B bins and n reference and m current events drawn from the same distribution,
//! n*m/(n+m) * PSI is approximately chi-square with B-1 degrees of freedom, so its expected value
//! is about (B-1) * (1/n + 1/m). That is why the drift report skips windows with too few events
//! and keeps the number of bins small.

use std::collections::HashMap;
use std::hash::Hash;

use kindred_core::{Error, Result};
use serde::{Deserialize, Serialize};

/// Floor for a bin's share, so that an empty bin contributes a large but finite term.
pub const PSI_EPSILON: f64 = 1e-4;
/// PSI below this is read as stable.
pub const PSI_MODERATE: f64 = 0.1;
/// PSI above this is read as a major shift.
pub const PSI_MAJOR: f64 = 0.25;

/// The conventional reading of a PSI value (see the module doc for the source of the cut-offs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PsiLevel {
    Stable,
    Moderate,
    Major,
}

impl PsiLevel {
    /// < 0.1 stable, 0.1 to 0.25 moderate, > 0.25 major.
    pub fn of(psi: f64) -> Self {
        if psi > PSI_MAJOR {
            PsiLevel::Major
        } else if psi >= PSI_MODERATE {
            PsiLevel::Moderate
        } else {
            PsiLevel::Stable
        }
    }
}

/// PSI between two binned distributions given as counts (or any non-negative weights) over the
/// same bins; each side is normalised to shares first, so counts of different totals compare.
pub fn psi(reference: &[f64], current: &[f64], epsilon: f64) -> Result<f64> {
    if reference.len() != current.len() {
        return Err(Error::InvalidInput(format!(
            "PSI needs the same bins on both sides: reference has {}, current has {}",
            reference.len(),
            current.len()
        )));
    }
    if !(epsilon > 0.0 && epsilon < 1.0) {
        return Err(Error::InvalidInput(format!(
            "PSI epsilon must lie in (0, 1), got {epsilon}"
        )));
    }
    let total = |side: &[f64], name: &str| -> Result<f64> {
        if let Some(bad) = side.iter().find(|c| !c.is_finite() || **c < 0.0) {
            return Err(Error::InvalidInput(format!(
                "PSI {name} counts must be finite and non-negative, got {bad}"
            )));
        }
        let sum: f64 = side.iter().sum();
        if sum <= 0.0 {
            return Err(Error::InvalidInput(format!(
                "PSI {name} distribution is empty (all counts zero)"
            )));
        }
        Ok(sum)
    };
    let (ref_total, cur_total) = (total(reference, "reference")?, total(current, "current")?);
    Ok(reference
        .iter()
        .zip(current)
        .map(|(r, c)| {
            let r = (r / ref_total).max(epsilon);
            let c = (c / cur_total).max(epsilon);
            (c - r) * (c / r).ln()
        })
        .sum())
}

/// Reference and current counts over named bins, ready for [`psi`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Binned {
    pub labels: Vec<String>,
    pub reference: Vec<f64>,
    pub current: Vec<f64>,
}

impl Binned {
    /// PSI of these bins with the given epsilon.
    pub fn psi(&self, epsilon: f64) -> Result<f64> {
        psi(&self.reference, &self.current, epsilon)
    }

    /// Total reference and current counts.
    pub fn totals(&self) -> (f64, f64) {
        (self.reference.iter().sum(), self.current.iter().sum())
    }
}

/// Bins for a categorical variable: the `top_k` most frequent values of the reference (ties
/// broken by the smaller value, so the result is deterministic), then one "other" bin holding
/// everything else, including values never seen in the reference. Keeping the bins fixed by the
/// reference is what lets a newly popular value show up as growth of "other".
pub fn top_k_bins<T: Ord + Hash + Clone + ToString>(
    reference: &[T],
    current: &[T],
    top_k: usize,
) -> Binned {
    let mut ref_counts: HashMap<&T, f64> = HashMap::new();
    for value in reference {
        *ref_counts.entry(value).or_insert(0.0) += 1.0;
    }
    let mut ranked: Vec<(&T, f64)> = ref_counts.into_iter().collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    ranked.truncate(top_k);
    let index: HashMap<&T, usize> = ranked
        .iter()
        .enumerate()
        .map(|(i, (v, _))| (*v, i))
        .collect();
    let other = ranked.len();
    let mut labels: Vec<String> = ranked.iter().map(|(v, _)| v.to_string()).collect();
    labels.push("other".to_owned());
    let count = |values: &[T]| {
        let mut bins = vec![0.0; other + 1];
        for value in values {
            bins[index.get(value).copied().unwrap_or(other)] += 1.0;
        }
        bins
    };
    let reference = count(reference);
    let current = count(current);
    Binned {
        labels,
        reference,
        current,
    }
}

/// Bins for counts >= 1 such as events per user: bucket b holds counts in [2^b, 2^(b+1)), so
/// "1", "2-3", "4-7", ...; log-spaced because activity is heavy-tailed and a linear grid would
/// put almost every user in the first bin. Zero counts are ignored (users without events are not
/// part of either window). There are as many buckets as the larger side needs.
pub fn log2_bins(reference: &[u64], current: &[u64]) -> Binned {
    let bucket = |c: u64| (63 - c.leading_zeros()) as usize;
    let largest = reference
        .iter()
        .chain(current)
        .filter(|&&c| c > 0)
        .map(|&c| bucket(c))
        .max()
        .unwrap_or(0);
    let count = |values: &[u64]| {
        let mut bins = vec![0.0; largest + 1];
        for &c in values.iter().filter(|&&c| c > 0) {
            bins[bucket(c)] += 1.0;
        }
        bins
    };
    let labels = (0..=largest)
        .map(|b| {
            let lo = 1u64 << b;
            let hi = (lo << 1) - 1;
            if lo == hi {
                lo.to_string()
            } else {
                format!("{lo}-{hi}")
            }
        })
        .collect();
    Binned {
        labels,
        reference: count(reference),
        current: count(current),
    }
}

/// Bins for a numeric variable: edges at the reference's quantiles (`bins` equal-frequency bins,
/// fewer when quantiles coincide), current values counted against the same edges; values outside
/// the reference's range fall in the first or last bin. Non-finite values go to a separate
/// "non-finite" bin on both sides, so a wave of NaNs is itself a shift.
pub fn quantile_bins(reference: &[f64], current: &[f64], bins: usize) -> Binned {
    let mut sorted: Vec<f64> = reference
        .iter()
        .copied()
        .filter(|v| v.is_finite())
        .collect();
    sorted.sort_by(f64::total_cmp);
    let mut edges: Vec<f64> = (1..bins.max(1))
        .map(|i| kindred_core::quantile::quantile(&sorted, i as f64 / bins as f64))
        .collect();
    edges.dedup();
    // A value v goes to the first bin whose upper edge exceeds it: bin i covers [e_{i-1}, e_i).
    let finite_bins = edges.len() + 1;
    let count = |values: &[f64]| {
        let mut counts = vec![0.0; finite_bins + 1];
        for &v in values {
            let bin = if v.is_finite() {
                edges.partition_point(|&e| e <= v)
            } else {
                finite_bins
            };
            counts[bin] += 1.0;
        }
        counts
    };
    let mut labels = Vec::with_capacity(finite_bins + 1);
    for i in 0..finite_bins {
        let lo = if i == 0 {
            "-inf".to_owned()
        } else {
            format!("{}", edges[i - 1])
        };
        let hi = edges.get(i).map_or("+inf".to_owned(), |e| format!("{e}"));
        labels.push(format!("[{lo}, {hi})"));
    }
    labels.push("non-finite".to_owned());
    Binned {
        labels,
        reference: count(reference),
        current: count(current),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn psi_matches_a_hand_computed_example() {
        // Shares r = (0.5, 0.3, 0.2), c = (0.4, 0.3, 0.3):
        // (0.4-0.5) ln(0.8) + 0 + (0.3-0.2) ln(1.5) = 0.0223144 + 0.0405465 = 0.0628609.
        let value = psi(&[50.0, 30.0, 20.0], &[40.0, 30.0, 30.0], PSI_EPSILON).unwrap();
        assert!((value - 0.062_860_9).abs() < 1e-6, "{value}");
        assert_eq!(PsiLevel::of(value), PsiLevel::Stable);
        // Totals differ: only shares matter.
        let scaled = psi(&[5.0, 3.0, 2.0], &[400.0, 300.0, 300.0], PSI_EPSILON).unwrap();
        assert!((scaled - value).abs() < 1e-12);
        // Symmetric.
        let back = psi(&[40.0, 30.0, 30.0], &[50.0, 30.0, 20.0], PSI_EPSILON).unwrap();
        assert!((back - value).abs() < 1e-12);
    }

    #[test]
    fn psi_of_a_major_shift_and_an_empty_bin() {
        // r = (0.9, 0.1), c = (0.5, 0.5): -0.4 ln(5/9) + 0.4 ln 5 = 0.235115 + 0.643775 = 0.878890.
        let value = psi(&[9.0, 1.0], &[1.0, 1.0], PSI_EPSILON).unwrap();
        assert!((value - 0.878_890).abs() < 1e-5, "{value}");
        assert_eq!(PsiLevel::of(value), PsiLevel::Major);
        // r = (1, 0), c = (0.5, 0.5) with epsilon 1e-4:
        // (0.5-1) ln(0.5) + (0.5-1e-4) ln(0.5/1e-4) = 0.346574 + 0.4999 * 8.517193 = 4.604319.
        let value = psi(&[4.0, 0.0], &[1.0, 1.0], 1e-4).unwrap();
        assert!((value - 4.604_319).abs() < 1e-5, "{value}");
        assert_eq!(psi(&[1.0, 2.0], &[1.0, 2.0], PSI_EPSILON).unwrap(), 0.0);
    }

    #[test]
    fn psi_levels_follow_the_documented_cut_offs() {
        assert_eq!(PsiLevel::of(0.0999), PsiLevel::Stable);
        assert_eq!(PsiLevel::of(0.1), PsiLevel::Moderate);
        assert_eq!(PsiLevel::of(0.25), PsiLevel::Moderate);
        assert_eq!(PsiLevel::of(0.2501), PsiLevel::Major);
    }

    #[test]
    fn psi_rejects_bad_input() {
        assert!(psi(&[1.0], &[1.0, 2.0], PSI_EPSILON).is_err());
        assert!(psi(&[0.0, 0.0], &[1.0, 2.0], PSI_EPSILON).is_err());
        assert!(psi(&[1.0, -1.0], &[1.0, 2.0], PSI_EPSILON).is_err());
        assert!(psi(&[1.0, f64::NAN], &[1.0, 2.0], PSI_EPSILON).is_err());
        assert!(psi(&[1.0, 1.0], &[1.0, 2.0], 0.0).is_err());
    }

    #[test]
    fn top_k_bins_keep_the_reference_leaders_and_an_other_bin() {
        let reference = [3u32, 3, 3, 1, 1, 2, 7];
        let current = [9u32, 9, 3, 1];
        let bins = top_k_bins(&reference, &current, 2);
        assert_eq!(bins.labels, ["3", "1", "other"]);
        assert_eq!(bins.reference, [3.0, 2.0, 2.0]);
        assert_eq!(bins.current, [1.0, 1.0, 2.0]);
        // Ties (2 and 7 both once) go to the smaller value.
        let bins = top_k_bins(&reference, &current, 3);
        assert_eq!(bins.labels, ["3", "1", "2", "other"]);
    }

    #[test]
    fn log2_bins_bucket_counts_by_powers_of_two() {
        let bins = log2_bins(&[1, 2, 3, 4, 0], &[7, 8, 1]);
        assert_eq!(bins.labels, ["1", "2-3", "4-7", "8-15"]);
        assert_eq!(bins.reference, [1.0, 2.0, 1.0, 0.0]);
        assert_eq!(bins.current, [1.0, 0.0, 1.0, 1.0]);
    }

    #[test]
    fn quantile_bins_use_reference_edges() {
        // Reference 1..=4, two bins: edge at the median 2.5.
        let bins = quantile_bins(&[1.0, 2.0, 3.0, 4.0], &[0.0, 3.0, 9.0, f64::NAN], 2);
        assert_eq!(bins.labels, ["[-inf, 2.5)", "[2.5, +inf)", "non-finite"]);
        assert_eq!(bins.reference, [2.0, 2.0, 0.0]);
        assert_eq!(bins.current, [1.0, 2.0, 1.0]);
        // All-equal reference: the coinciding edges collapse to one, at 5.
        let bins = quantile_bins(&[5.0; 4], &[4.0, 6.0], 10);
        assert_eq!(bins.labels, ["[-inf, 5)", "[5, +inf)", "non-finite"]);
        assert_eq!(bins.reference, [0.0, 4.0, 0.0]);
        assert_eq!(bins.current, [1.0, 1.0, 0.0]);
    }
}
