//! Kindred's neural parts, on one tensor library (candle, CPU): today the pre-trained sentence
//! encoders that give a text item a content vector from its title or description.
//!
//! Errors are [`kindred_core::Error`]; long work reports through [`kindred_core::Progress`] and
//! stops on a raised [`kindred_core::CancelFlag`].

pub mod encoder;

pub use encoder::encoder_dir::{EncoderDir, Pooling};
pub use encoder::sentence_encoder::{open_text_encoder, SentenceEncoder};
