//! Implicit-feedback ranking: matrix factorisation from interactions without ratings (ALS, BPR),
//! the closed-form item-item autoencoder (EASE) and sparse item-item regression (SLIM).

pub mod als;
pub mod bpr;
pub mod ease;
pub mod slim;
