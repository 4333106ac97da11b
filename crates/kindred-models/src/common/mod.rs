//! Helpers several model families share, each named for what it is.

pub mod early_stop;
pub mod histories;
pub mod negative;
pub mod rating_rows;
pub(crate) mod sgd_kernel;
pub mod similarity;
pub mod weighting;
