//! Sequence models: each user's items in the order they happened, read by a network that
//! predicts the next one.

pub mod catalog_softmax;
pub mod fused_ops;
pub mod sasrec;
pub mod sasrec_net;
pub mod sequences;
