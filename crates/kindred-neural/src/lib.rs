//! Kindred's neural parts, on one tensor library (candle, CPU): the pre-trained sentence encoders
//! that give a text item a content vector from its title or description, and the `sasrec`
//! sequence model, a model family the binary adds to the registry ([`registry_with_neural`]).
//!
//! Errors are [`kindred_core::Error`]; long work reports through [`kindred_core::Progress`] and
//! stops on a raised [`kindred_core::CancelFlag`].

pub mod encoder;
pub mod sequence;

pub use encoder::encoder_dir::{EncoderDir, Pooling};
pub use encoder::sentence_encoder::{open_text_encoder, SentenceEncoder};
pub use sequence::sasrec::{SasRec, SasRecFamily, SasRecModel, SasRecParams};

/// The built-in model families plus the neural ones: what a binary linking this crate installs
/// with [`kindred_models::ModelRegistry::install_global`].
pub fn registry_with_neural() -> kindred_core::Result<kindred_models::ModelRegistry> {
    let mut registry = kindred_models::ModelRegistry::builtin();
    registry.register(SasRecFamily)?;
    Ok(registry)
}
