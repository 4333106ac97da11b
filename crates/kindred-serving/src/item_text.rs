//! [`ItemTextEncoder`]: an item's text turned into a vector when the item is written (the
//! `[encoder]` config), so that the vector is in the store for every training run and a content
//! model trained with that column (`columns=...+text_embedding`) reads it. A brand-new item
//! nobody has interacted with is scored from its vector at the next catalog refresh: the snapshot
//! grows the live content model with the store's items it was not trained on
//! (`Model::with_new_items`).
//!
//! The vector is computed from the text fields the config names (present, non-blank strings,
//! joined with ". " in the config's order) and stored as one more feature of the item, replacing
//! one of that name; an item without such text is stored as sent. Encoding runs on a blocking
//! thread: the batch is bounded by `max_batch` and the request body by `max_body_bytes`, and the
//! tokenizer cuts every text at the model's `max_seq_length`.

use std::path::PathBuf;
use std::sync::Arc;

use kindred_core::text_encoder::{join_text, TEXT_VECTOR_FIELD};
use kindred_store::Item;
use serde::Deserialize;
use serde_json::Value;

use crate::error::{Error, Result};

/// `[encoder]`: the sentence encoder items' text goes through when they are written.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EncoderConfig {
    /// A sentence-transformers model directory (config.json, model.safetensors,
    /// tokenizer.json); none: items are stored as sent.
    pub dir: Option<PathBuf>,
    /// The item features whose text is encoded.
    pub text: Vec<String>,
    /// The item feature the vector is written to.
    pub field: String,
}

impl Default for EncoderConfig {
    fn default() -> Self {
        Self {
            dir: None,
            text: vec!["title".to_owned(), "description".to_owned()],
            field: TEXT_VECTOR_FIELD.to_owned(),
        }
    }
}

impl EncoderConfig {
    /// Checks the names (the directory is checked when the encoder loads).
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.text.is_empty() || self.text.iter().any(|t| t.trim().is_empty()) {
            return Err("encoder.text: name at least one text feature, none empty".into());
        }
        if self.field.trim().is_empty() {
            return Err("encoder.field: must not be empty".into());
        }
        if self.text.contains(&self.field) {
            return Err(format!(
                "encoder.field `{}` is also an encoder.text feature: the vector would replace \
                 the text",
                self.field
            ));
        }
        Ok(())
    }
}

/// The loaded encoder and what it reads and writes.
pub struct ItemTextEncoder {
    #[cfg(feature = "encoder")]
    encoder: kindred_neural::SentenceEncoder,
    text: Vec<String>,
    field: String,
}

impl ItemTextEncoder {
    /// The encoder `config` names, or `None` when it names none.
    pub fn open(config: &EncoderConfig) -> Result<Option<Arc<Self>>> {
        let Some(dir) = &config.dir else {
            return Ok(None);
        };
        config.validate().map_err(|message| Error::Config {
            origin: "server config".into(),
            message,
        })?;
        Self::load(dir, config).map(|e| Some(Arc::new(e)))
    }

    #[cfg(feature = "encoder")]
    fn load(dir: &std::path::Path, config: &EncoderConfig) -> Result<Self> {
        Ok(Self {
            encoder: kindred_neural::SentenceEncoder::load(dir)?,
            text: config.text.clone(),
            field: config.field.clone(),
        })
    }

    #[cfg(not(feature = "encoder"))]
    fn load(dir: &std::path::Path, _config: &EncoderConfig) -> Result<Self> {
        Err(Error::Config {
            origin: "server config".into(),
            message: format!(
                "encoder.dir = {}: this build of kindred has no sentence encoder; rebuild with \
                 the `encoder` feature (`cargo install --path crates/kindred-cli --features \
                 encoder`)",
                dir.display()
            ),
        })
    }

    /// The text of `item` the encoder reads, if any.
    fn text_of(&self, item: &Item) -> Option<String> {
        join_text(self.text.iter().map(|name| match item.features.get(name) {
            Some(Value::String(s)) => Some(s.as_str()),
            _ => None,
        }))
    }

    /// Adds the vector of each item's text to its features (on a blocking thread).
    pub async fn embed(self: &Arc<Self>, items: &mut [Item]) -> Result<()> {
        let texts: Vec<(usize, String)> = items
            .iter()
            .enumerate()
            .filter_map(|(i, item)| Some((i, self.text_of(item)?)))
            .collect();
        if texts.is_empty() {
            return Ok(());
        }
        let this = Arc::clone(self);
        let strings: Vec<String> = texts.iter().map(|(_, t)| t.clone()).collect();
        let vectors = tokio::task::spawn_blocking(move || this.encode(&strings))
            .await
            .map_err(|e| Error::Task(format!("encoding item text: {e}")))??;
        for ((i, _), vector) in texts.into_iter().zip(vectors) {
            let values = vector
                .into_iter()
                .map(|x| Value::from(f64::from(x)))
                .collect();
            items[i]
                .features
                .insert(self.field.clone(), Value::Array(values));
        }
        Ok(())
    }

    #[cfg(feature = "encoder")]
    fn encode(&self, texts: &[String]) -> Result<Vec<Vec<f32>>> {
        let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
        Ok(self.encoder.encode(
            &texts,
            &kindred_core::NoProgress,
            &kindred_core::CancelFlag::new(),
        )?)
    }

    #[cfg(not(feature = "encoder"))]
    fn encode(&self, _texts: &[String]) -> Result<Vec<Vec<f32>>> {
        // `load` refuses to build one without the feature.
        Err(Error::Task("no sentence encoder in this build".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_names_are_checked() {
        assert!(EncoderConfig::default().validate().is_ok());
        let empty = EncoderConfig {
            text: vec![],
            ..EncoderConfig::default()
        };
        assert!(empty.validate().unwrap_err().contains("encoder.text"));
        let clash = EncoderConfig {
            field: "title".into(),
            ..EncoderConfig::default()
        };
        assert!(clash.validate().unwrap_err().contains("would replace"));
    }

    #[test]
    fn no_directory_means_no_encoder() {
        assert!(ItemTextEncoder::open(&EncoderConfig::default())
            .expect("opens")
            .is_none());
    }

    #[cfg(not(feature = "encoder"))]
    #[test]
    fn a_directory_without_the_feature_says_which_feature() {
        let config = EncoderConfig {
            dir: Some("/models/minilm".into()),
            ..EncoderConfig::default()
        };
        let err = ItemTextEncoder::open(&config).err().expect("refused");
        assert!(err.to_string().contains("`encoder` feature"), "{err}");
    }
}
