//! Implicit-feedback ranking: matrix factorisation from interactions without ratings (ALS, BPR)
//! and the closed-form item-item autoencoder (EASE).

pub mod als;
pub mod bpr;
pub mod ease;
