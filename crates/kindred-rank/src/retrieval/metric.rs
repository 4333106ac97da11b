//! Similarity measures shared by exact and approximate search, and the tight vector kernels
//! (dot product, squared distance) every search loop spends its time in.
//!
//! Every result carries a score where higher is better: the inner product, the cosine, or the
//! negated squared Euclidean distance.

use serde::{Deserialize, Serialize};

pub use kindred_core::kernels::{dot, squared_l2};
use kindred_core::{Error, Result};

/// How two vectors are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// `q . x`: what matrix-factorisation models score with (maximum inner product search).
    InnerProduct,
    /// `q . x / (|q| |x|)`; a zero vector has cosine 0 with everything.
    Cosine,
    /// `-|q - x|^2`: the negated squared Euclidean distance.
    L2,
}

impl Metric {
    /// Parses `ip`/`inner_product`/`dot`, `cosine`/`cos`, `l2`/`euclidean`.
    pub fn parse(text: &str) -> Result<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "ip" | "inner_product" | "dot" => Ok(Metric::InnerProduct),
            "cosine" | "cos" => Ok(Metric::Cosine),
            "l2" | "euclidean" => Ok(Metric::L2),
            _ => Err(Error::spec(
                "metric",
                text,
                "expected one of ip, cosine, l2",
            )),
        }
    }

    /// Stable one-byte code used by the on-disk index format.
    pub(crate) fn code(self) -> u8 {
        match self {
            Metric::InnerProduct => 0,
            Metric::Cosine => 1,
            Metric::L2 => 2,
        }
    }

    pub(crate) fn from_code(code: u8) -> Option<Self> {
        match code {
            0 => Some(Metric::InnerProduct),
            1 => Some(Metric::Cosine),
            2 => Some(Metric::L2),
            _ => None,
        }
    }
}

/// Euclidean norm.
#[inline]
pub fn norm(a: &[f32]) -> f32 {
    dot(a, a).sqrt()
}

/// Scales `a` to unit length in place; a zero (or non-finite-norm) vector is left as is.
pub fn normalise(a: &mut [f32]) {
    let n = norm(a);
    if n > 0.0 && n.is_finite() {
        let inv = 1.0 / n;
        a.iter_mut().for_each(|x| *x *= inv);
    }
}

/// Checks that `data` is a whole number of rows of `dim` finite values; `what` names the matrix
/// in the error.
pub(crate) fn check_matrix(what: &str, dim: usize, data: &[f32]) -> Result<usize> {
    if dim == 0 {
        return Err(Error::InvalidInput(format!(
            "{what}: dimension must be positive"
        )));
    }
    if !data.len().is_multiple_of(dim) {
        return Err(Error::InvalidInput(format!(
            "{what}: {} values is not a whole number of rows of dimension {dim}",
            data.len()
        )));
    }
    if let Some(pos) = data.iter().position(|x| !x.is_finite()) {
        return Err(Error::InvalidInput(format!(
            "{what}: row {} column {} is not finite ({})",
            pos / dim,
            pos % dim,
            data[pos]
        )));
    }
    Ok(data.len() / dim)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernels_match_hand_computed_values() {
        let a: Vec<f32> = (1..=19).map(|x| x as f32).collect();
        let b: Vec<f32> = (1..=19).map(|x| (20 - x) as f32).collect();
        // sum_{x=1}^{19} x (20 - x) = 20 * 190 - 2470 = 1330
        assert_eq!(dot(&a, &b), 1330.0);
        // sum (2x - 20)^2 for x = 1..19 = 4 * sum_{d=-9}^{9} d^2 = 4 * 570 = 2280
        assert_eq!(squared_l2(&a, &b), 2280.0);
        assert_eq!(norm(&[3.0, 4.0]), 5.0);
        let mut v = [3.0, 4.0];
        normalise(&mut v);
        assert_eq!(v, [0.6, 0.8]);
        let mut zero = [0.0, 0.0];
        normalise(&mut zero);
        assert_eq!(zero, [0.0, 0.0]);
    }

    #[test]
    fn metric_names_and_matrix_checks() {
        assert_eq!(Metric::parse("IP").unwrap(), Metric::InnerProduct);
        assert_eq!(Metric::parse("cosine").unwrap(), Metric::Cosine);
        assert_eq!(Metric::parse("l2").unwrap(), Metric::L2);
        assert!(Metric::parse("manhattan").is_err());
        for m in [Metric::InnerProduct, Metric::Cosine, Metric::L2] {
            assert_eq!(Metric::from_code(m.code()), Some(m));
        }
        assert_eq!(check_matrix("x", 2, &[1.0, 2.0, 3.0, 4.0]).unwrap(), 2);
        assert!(check_matrix("x", 2, &[1.0, 2.0, 3.0]).is_err());
        assert!(check_matrix("x", 0, &[]).is_err());
        let err = check_matrix("items", 2, &[1.0, 2.0, f32::NAN, 4.0]).unwrap_err();
        assert!(err.to_string().contains("row 1 column 0"), "{err}");
    }
}
