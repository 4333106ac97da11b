//! Models that read item and user features: the content-based profile model, the LightFM-style
//! hybrid factorisation, and the feature encoding (with text vectors from a sentence encoder)
//! both share.

pub mod content_based;
pub mod feature_space;
pub mod hybrid;
pub mod text_vectors;
