//! Rating prediction: models that learn explicit ratings (Surprise's family) and also rank by
//! predicted rating.

pub mod baseline;
pub mod bpmf;
pub mod coclustering;
pub mod nmf;
pub mod slopeone;
pub mod svd;
pub mod svdpp;
