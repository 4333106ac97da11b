//! The doubly robust estimate of a target policy's click rate per shown slot: the reward
//! model's prediction of what the target would get, corrected by the weighted errors of that
//! model on what was logged, each part self-normalised per slot as SNIPS is.
//!
//! For slot `j` of request `i`, with prefix weights `w_ij` (through `j`) and `u_ij = w_i(j-1)`
//! (through the slot above; 1 for slot 0), direct term `d_ij = E_target[r(a, j) | logged
//! prefix]` and error `e_ij = c_ij - r(a_ij, j)`, the slot's value is
//!
//! `V_j = sum_i u_ij d_ij / sum_i u_ij + sum_i w_ij e_ij / sum_i w_ij`
//!
//! over the requests that showed slot `j`, and `V = sum_j (n_j / n) V_j / mean_i(L_i)`. Without
//! the normalisation (both sums over `n_j`) it is unbiased whatever the reward model `r` is:
//! given the logged prefix, the correction's expectation under the logging policy is
//! `u * sum_a target(a) (E[c | a] - r(a, j))`. The normalisation adds an O(1/n) bias and removes
//! most of the variance that rare large weights cause (with prefix weights over several slots,
//! the unnormalised form is skewed: usually low, now and then far too high, and its normal
//! interval misses the truth far more often than 5%). The interval is the delta-method one over
//! requests, honest when `r` was fit on other requests than it predicts ([`super::reward_model`]).

use super::{checked_weights, interval, standard_error, LoggedSlot, OffPolicyOptions};
use crate::stats::Interval;
use kindred_core::distributions::normal_quantile;
use kindred_core::{Error, Result};
use serde::{Deserialize, Serialize};

/// The reward model's side of one logged slot.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DirectTerms {
    /// The model's reward for the logged item in this slot.
    pub predicted: f64,
    /// The model's reward expected under the target policy in this slot, given the logged
    /// items above it.
    pub target_expected: f64,
}

/// The doubly robust estimate and interval of the target's click rate per shown slot;
/// `direct[k]` belongs to `records[k]`.
pub fn doubly_robust(
    records: &[LoggedSlot],
    direct: &[DirectTerms],
    options: &OffPolicyOptions,
) -> Result<Interval> {
    if direct.len() != records.len() {
        return Err(Error::InvalidInput(format!(
            "doubly robust estimate: {} direct terms for {} logged slots",
            direct.len(),
            records.len()
        )));
    }
    if let Some((k, _)) = direct
        .iter()
        .enumerate()
        .find(|(_, d)| !(d.predicted.is_finite() && d.target_expected.is_finite()))
    {
        return Err(Error::InvalidInput(format!(
            "doubly robust estimate: logged slot {k} has a non-finite reward prediction"
        )));
    }
    let (requests, _) = checked_weights(records, options)?;
    let n = requests.len();
    // Per request and slot: (u, u * d, w, w * e), in the records' order (the weighing keeps it).
    let mut terms = direct.iter();
    let parts: Vec<Vec<[f64; 4]>> = requests
        .iter()
        .map(|slots| {
            let mut above = 1.0;
            slots
                .iter()
                .map(|&(weight, reward)| {
                    let d = terms.next().copied().unwrap_or(DirectTerms {
                        predicted: 0.0,
                        target_expected: 0.0,
                    });
                    let part = [
                        above,
                        above * d.target_expected,
                        weight,
                        weight * (reward - d.predicted),
                    ];
                    above = weight;
                    part
                })
                .collect()
        })
        .collect();
    let nf = n as f64;
    let mean_len = records.len() as f64 / nf;
    let max_len = parts.iter().map(Vec::len).max().unwrap_or(0);
    // Per slot: mean over all n requests of u and w, the two normalised parts and the share.
    let mut slots = Vec::with_capacity(max_len);
    for j in 0..max_len {
        let mut sums = [0.0; 4];
        let mut count = 0.0;
        for p in parts.iter().filter_map(|r| r.get(j)) {
            for (s, v) in sums.iter_mut().zip(p) {
                *s += v;
            }
            count += 1.0;
        }
        let ratio = |num: f64, den: f64| if den > 0.0 { num / den } else { 0.0 };
        slots.push(SlotParts {
            direct: ratio(sums[1], sums[0]),
            correction: ratio(sums[3], sums[2]),
            u_mean: sums[0] / nf,
            w_mean: sums[2] / nf,
            share: count / nf,
        });
    }
    let rate = slots
        .iter()
        .map(|s| s.share * (s.direct + s.correction))
        .sum::<f64>()
        / mean_len;
    let scale = |share: f64, mean: f64| if mean > 0.0 { share / mean } else { 0.0 };
    let influence: Vec<f64> = parts
        .iter()
        .map(|request| {
            let sum: f64 = request
                .iter()
                .zip(&slots)
                .map(|(&[u, ud, w, we], s)| {
                    scale(s.share, s.u_mean) * (ud - u * s.direct)
                        + scale(s.share, s.w_mean) * (we - w * s.correction)
                        + s.direct
                        + s.correction
                })
                .sum();
            (sum - rate * request.len() as f64) / mean_len
        })
        .collect();
    let z = normal_quantile(0.5 + options.level / 2.0);
    Ok(interval(rate, standard_error(&influence), z))
}

/// One slot position's parts of the estimate.
struct SlotParts {
    /// `sum u d / sum u` and `sum w e / sum w` over the requests that showed the slot.
    direct: f64,
    correction: f64,
    /// Means of `u` and `w` over all requests (0 where the slot was not shown).
    u_mean: f64,
    w_mean: f64,
    /// Share of requests that showed the slot.
    share: f64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::offpolicy::tests::slot;

    #[test]
    fn parts_by_hand() {
        // Request 0: slot 0 u = 1, w = 2 (pi 1 / mu 0.5), clicked; slot 1 u = 2, w = 0.
        // Request 1: slot 0 u = 1, w = 0 (the target would not show it), clicked.
        let records = [
            slot(0, 0, 0.5, 1.0, 1.0),
            slot(0, 1, 1.0, 0.0, 0.0),
            slot(1, 0, 0.5, 0.0, 1.0),
        ];
        let zero = [DirectTerms {
            predicted: 0.0,
            target_expected: 0.0,
        }; 3];
        // A zero model is SNIPS: slot 0 = (2 * 1) / 2 = 1, slot 1 = 0 (its w sums to 0);
        // shares 1 and 1/2; V = (1 + 0) / 1.5.
        let dr = doubly_robust(&records, &zero, &OffPolicyOptions::default()).unwrap();
        assert!((dr.estimate - 1.0 / 1.5).abs() < 1e-12, "{dr:?}");
        let model = [
            DirectTerms {
                predicted: 0.3,
                target_expected: 0.4,
            },
            DirectTerms {
                predicted: 0.2,
                target_expected: 0.1,
            },
            DirectTerms {
                predicted: 0.6,
                target_expected: 0.5,
            },
        ];
        // Slot 0: direct (0.4 + 0.5) / 2 = 0.45, correction 2 * 0.7 / 2 = 0.7.
        // Slot 1: direct 2 * 0.1 / 2 = 0.1, correction 0 (no weight). V = (1.15 + 0.05) / 1.5.
        let dr = doubly_robust(&records, &model, &OffPolicyOptions::default()).unwrap();
        assert!((dr.estimate - 1.2 / 1.5).abs() < 1e-12, "{dr:?}");
        assert!(dr.lower < dr.estimate && dr.estimate < dr.upper);
    }

    #[test]
    fn a_correct_reward_model_gives_the_target_value_with_no_variance_from_it() {
        // Every slot's reward equals the model's prediction, so only the direct part counts.
        let records: Vec<LoggedSlot> = (0..10)
            .map(|r| slot(r, 0, 0.5, if r % 2 == 0 { 1.0 } else { 0.0 }, 0.25))
            .collect();
        let direct = vec![
            DirectTerms {
                predicted: 0.25,
                target_expected: 0.7,
            };
            10
        ];
        let dr = doubly_robust(&records, &direct, &OffPolicyOptions::default()).unwrap();
        assert!((dr.estimate - 0.7).abs() < 1e-12, "{dr:?}");
        assert!((dr.upper - dr.lower).abs() < 1e-12, "{dr:?}");
    }

    #[test]
    fn mismatched_terms_are_refused() {
        let records = [slot(0, 0, 0.5, 1.0, 1.0), slot(1, 0, 0.5, 1.0, 0.0)];
        let err = doubly_robust(&records, &[], &OffPolicyOptions::default()).unwrap_err();
        assert!(err.to_string().contains("0 direct terms for 2"), "{err}");
        // The options are checked as every estimator checks them.
        let direct = [DirectTerms {
            predicted: 0.0,
            target_expected: 0.0,
        }; 2];
        let bad_level = OffPolicyOptions {
            level: 1.5,
            max_weight: None,
        };
        let err = doubly_robust(&records, &direct, &bad_level).unwrap_err();
        assert!(err.to_string().contains("confidence level"), "{err}");
    }
}
