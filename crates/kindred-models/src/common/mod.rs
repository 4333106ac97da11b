//! Helpers several model families share, each named for what it is.

pub mod early_stop;
pub(crate) mod gram;
pub mod histories;
pub(crate) mod item_regression;
pub(crate) mod item_weights;
pub mod negative;
pub(crate) mod normal_init;
pub mod rating_rows;
pub(crate) mod sgd_kernel;
pub mod similarity;
pub(crate) mod weighted_rows;
pub mod weighting;
