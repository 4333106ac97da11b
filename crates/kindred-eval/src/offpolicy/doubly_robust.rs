//! The doubly robust estimate of a target policy's click rate per shown slot: the reward
//! model's prediction of what the target would get, corrected by the weighted errors of that
//! model on what was logged.
//!
//! For slot `j` of a request, with prefix weights `w_j` (through `j`) and `w_{j-1}` (through the
//! slot above; 1 for slot 0), the request's term is
//!
//! `D_i = sum_j [ w_{j-1} * E_target[r(a, j) | logged prefix] + w_j * (c_j - r(a_j, j)) ]`
//!
//! and `V = mean_i(D_i) / mean_i(L_i)`. Given the logged prefix, the correction's expectation
//! under the logging policy is `w_{j-1} * sum_a target(a) (E[c | a] - r(a, j))`, so `V` is
//! unbiased whatever the reward model `r` is (the same assumptions as IPS, see the parent
//! module); a good model only narrows the interval. The interval is the delta-method one over
//! requests, as for IPS, which is honest when `r` was fit on other requests than it predicts.

use super::{interval, standard_error, weigh, LoggedSlot, OffPolicyOptions};
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
    let (requests, _) = weigh(records, options.max_weight)?;
    let n = requests.len();
    if n < 2 {
        return Err(Error::InvalidInput(format!(
            "off-policy estimation needs at least 2 logged requests, got {n}"
        )));
    }
    let mut terms = direct.iter();
    let per_request: Vec<f64> = requests
        .iter()
        .map(|slots| {
            let mut above = 1.0;
            let mut sum = 0.0;
            for &(weight, reward) in slots {
                // `weigh` keeps the records' order, so the direct terms line up.
                let d = terms.next().copied().unwrap_or(DirectTerms {
                    predicted: 0.0,
                    target_expected: 0.0,
                });
                sum += above * d.target_expected + weight * (reward - d.predicted);
                above = weight;
            }
            sum
        })
        .collect();
    let nf = n as f64;
    let mean_len = records.len() as f64 / nf;
    let rate = per_request.iter().sum::<f64>() / nf / mean_len;
    let influence: Vec<f64> = requests
        .iter()
        .zip(&per_request)
        .map(|(slots, &d)| (d - rate * slots.len() as f64) / mean_len)
        .collect();
    let z = normal_quantile(0.5 + options.level / 2.0);
    Ok(interval(rate, standard_error(&influence), z))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(request: u64, slot: u32, mu: f64, pi: f64, reward: f64) -> LoggedSlot {
        LoggedSlot {
            request,
            slot,
            logging_propensity: mu,
            target_probability: pi,
            reward,
        }
    }

    #[test]
    fn a_perfect_direct_term_and_a_zero_model_match_by_hand() {
        // Request 0: slot 0 weight 2 (pi 1 / mu 0.5), clicked; slot 1 weight 2 * 0 = 0.
        // Request 1: slot 0 weight 0 (the target would not show it).
        let records = [
            slot(0, 0, 0.5, 1.0, 1.0),
            slot(0, 1, 1.0, 0.0, 0.0),
            slot(1, 0, 0.5, 0.0, 1.0),
        ];
        let zero = [DirectTerms {
            predicted: 0.0,
            target_expected: 0.0,
        }; 3];
        // A zero model is IPS: (2 + 0) / 2 requests / 1.5 slots.
        let dr = doubly_robust(&records, &zero, &OffPolicyOptions::default()).unwrap();
        assert!((dr.estimate - 1.0 / 1.5).abs() < 1e-12, "{dr:?}");
        // With a model: request 0 = 1 * 0.4 + 2 * (1 - 0.3) + 2 * 0.1 + 0 * (0 - 0.2) = 2.0;
        // request 1 = 0.5 + 0 = 0.5; V = 1.25 / 1.5.
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
        let dr = doubly_robust(&records, &model, &OffPolicyOptions::default()).unwrap();
        assert!((dr.estimate - 1.25 / 1.5).abs() < 1e-12, "{dr:?}");
        assert!(dr.lower < dr.estimate && dr.estimate < dr.upper);
    }

    #[test]
    fn mismatched_terms_are_refused() {
        let records = [slot(0, 0, 0.5, 1.0, 1.0), slot(1, 0, 0.5, 1.0, 0.0)];
        let err = doubly_robust(&records, &[], &OffPolicyOptions::default()).unwrap_err();
        assert!(err.to_string().contains("0 direct terms for 2"), "{err}");
    }
}
