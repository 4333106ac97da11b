//! Pre-trained sentence encoders: a sentence-transformers model directory read from a path the
//! user gives (never downloaded), turned into one vector per text.

pub mod bert;
pub mod encoder_dir;
pub mod sentence_encoder;
