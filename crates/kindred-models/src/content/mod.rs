//! Models that read item and user features: the content-based profile model, the LightFM-style
//! hybrid factorisation, and the feature encoding both share.

pub mod content_based;
pub mod feature_space;
pub mod hybrid;
