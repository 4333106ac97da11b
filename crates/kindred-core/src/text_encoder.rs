//! Pre-trained sentence encoders behind one trait, so that models can turn item text into vectors
//! without this crate (or the model crate) depending on a tensor library.
//!
//! The implementation lives in kindred-neural; a binary built with it registers its loader once
//! at startup ([`register_text_encoder`]), and a model given `encoder=DIR` loads the encoder
//! through [`load_text_encoder`]. A build without one refuses `encoder=` with an error that names
//! the build feature, instead of silently training without the text.
//!
//! [`join_text`] is the one definition of how an item's text fields become the single text an
//! encoder reads, shared by `kindred embed`, the server's `[encoder]` and the models.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use crate::context::{CancelFlag, Progress};
use crate::error::{Error, Result};

/// The feature that holds an item's text vector unless told otherwise: `kindred embed` writes it,
/// the server's `[encoder]` stores it and the models' `text=` parameter adds it.
pub const TEXT_VECTOR_FIELD: &str = "text_embedding";

/// A sentence encoder: texts in, one fixed-length vector per text out.
pub trait TextEncoder: Send + Sync {
    /// One vector per text, in order. Long work reports to `progress` (in texts) and stops with
    /// [`Error::Cancelled`] once `cancel` is set.
    fn encode(
        &self,
        texts: &[&str],
        progress: &dyn Progress,
        cancel: &CancelFlag,
    ) -> Result<Vec<Vec<f32>>>;
}

/// Opens the encoder stored in a model directory.
pub type TextEncoderLoader = fn(&Path) -> Result<Arc<dyn TextEncoder>>;

static LOADER: OnceLock<TextEncoderLoader> = OnceLock::new();

/// Makes `loader` the way every later [`load_text_encoder`] opens a directory. The first
/// registration wins; a binary calls this once at startup.
pub fn register_text_encoder(loader: TextEncoderLoader) {
    let _ = LOADER.set(loader);
}

/// The encoder stored in `dir`, through the registered loader; an error naming the missing build
/// feature when this build registered none.
pub fn load_text_encoder(dir: &Path) -> Result<Arc<dyn TextEncoder>> {
    match LOADER.get() {
        Some(load) => load(dir),
        None => Err(Error::InvalidInput(format!(
            "encoder={}: this build has no sentence encoder; use a kindred built with the \
             `encoder` feature (the `full` build has it), or add the vectors to the item \
             features beforehand with `kindred embed`",
            dir.display()
        ))),
    }
}

/// The text an encoder reads from an item's text fields: the present, non-blank ones, trimmed,
/// in the order given, joined with ". "; `None` when there is none.
pub fn join_text<'a>(fields: impl IntoIterator<Item = Option<&'a str>>) -> Option<String> {
    let parts: Vec<&str> = fields
        .into_iter()
        .flatten()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    (!parts.is_empty()).then(|| parts.join(". "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_present_non_blank_fields_in_order() {
        assert_eq!(
            join_text([Some(" Heat "), None, Some("  "), Some("A crime film.")]),
            Some("Heat. A crime film.".into())
        );
        assert_eq!(join_text([None, Some(" ")]), None);
        assert_eq!(join_text(std::iter::empty()), None);
    }
}
