//! A pre-trained sentence encoder read from a sentence-transformers model directory: the
//! directory's own tokenizer, the BERT transformer, pooling and (when the model says so)
//! normalisation, so that a text gets the vector the reference implementation gives it.
//!
//! Texts are encoded in batches of similar length (sorted by token count), so that a batch pads
//! few positions, two batches at a time on rayon's threads (each product also splits across
//! them); the vectors come back in the input's order.

use std::path::Path;
use std::sync::Arc;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use kindred_core::{CancelFlag, Error, Progress, Result, TextEncoder};
use rayon::prelude::*;
use tokenizers::{Tokenizer, TruncationParams};

use super::bert::{cls_pool, mean_pool, normalize_rows, Bert};
use super::encoder_dir::{EncoderDir, Pooling};

/// Texts per forward pass. Larger batches make larger matrix products, which the CPU runs
/// closer to its peak, until padding and the attention scores' size cost more than they gain;
/// 128 was the fastest of 32, 128, 256 and 512 on MovieLens titles in one-off timings of
/// `kindred embed` on 2 cores (BENCHMARKS.md, "Sentence encoder").
const BATCH: usize = 128;

/// A loaded sentence encoder (thread-safe: `encode` takes `&self`).
pub struct SentenceEncoder {
    config: EncoderDir,
    tokenizer: Tokenizer,
    bert: Bert,
    device: Device,
}

impl std::fmt::Debug for SentenceEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SentenceEncoder")
            .field("dir", &self.config.dir)
            .field("dimension", &self.dimension())
            .finish_non_exhaustive()
    }
}

impl SentenceEncoder {
    /// Loads the model in directory `dir` (config.json, model.safetensors, tokenizer.json and
    /// the optional sentence-transformers files). Nothing is downloaded.
    pub fn load(dir: &Path) -> Result<Self> {
        let config = EncoderDir::read(dir)?;
        let tokenizer_path = dir.join("tokenizer.json");
        let mut tokenizer = Tokenizer::from_file(&tokenizer_path).map_err(|e| Error::BadFile {
            file: tokenizer_path.clone(),
            message: format!("not a tokenizer: {e}"),
        })?;
        // The file's own truncation and padding are the tokenizer's training-time settings;
        // sentence-transformers replaces them with `max_seq_length` and pads per batch.
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: config.max_tokens,
                ..TruncationParams::default()
            }))
            .map_err(|e| Error::BadFile {
                file: tokenizer_path.clone(),
                message: format!("cannot truncate to {} tokens: {e}", config.max_tokens),
            })?;
        tokenizer.with_padding(None);
        let device = Device::Cpu;
        let weights_path = dir.join("model.safetensors");
        let model_error = |e: candle_core::Error| Error::Model {
            path: weights_path.clone(),
            message: e.to_string(),
        };
        let tensors =
            candle_core::safetensors::load(&weights_path, &device).map_err(model_error)?;
        let vb = VarBuilder::from_tensors(tensors, DType::F32, &device);
        let bert = Bert::load(vb, &config.bert).map_err(model_error)?;
        Ok(Self {
            config,
            tokenizer,
            bert,
            device,
        })
    }

    /// The length of every vector.
    pub fn dimension(&self) -> usize {
        self.config.bert.hidden_size
    }

    /// The model directory.
    pub fn dir(&self) -> &Path {
        &self.config.dir
    }

    /// Inputs longer than this many tokens are cut.
    pub fn max_tokens(&self) -> usize {
        self.config.max_tokens
    }

    /// The token ids the model reads for `text`, `[CLS]` and `[SEP]` included, after cutting.
    pub fn token_ids(&self, text: &str) -> Result<Vec<u32>> {
        let encoding = self
            .tokenizer
            .encode(text.trim(), true)
            .map_err(|e| Error::InvalidInput(format!("cannot tokenize: {e}")))?;
        Ok(encoding.get_ids().to_vec())
    }

    /// One vector per text, in order. Leading and trailing whitespace is ignored (as
    /// sentence-transformers does); an empty text gets the vector of `[CLS] [SEP]`. Reports
    /// `embed` progress in texts and checks `cancel` between batches.
    pub fn encode(
        &self,
        texts: &[&str],
        progress: &dyn Progress,
        cancel: &CancelFlag,
    ) -> Result<Vec<Vec<f32>>> {
        let trimmed: Vec<&str> = texts.iter().map(|t| t.trim()).collect();
        let encodings = self
            .tokenizer
            .encode_batch(trimmed, true)
            .map_err(|e| Error::InvalidInput(format!("cannot tokenize: {e}")))?;
        let ids: Vec<&[u32]> = encodings.iter().map(|e| e.get_ids()).collect();
        let mut order: Vec<usize> = (0..ids.len()).collect();
        order.sort_by_key(|&i| ids[i].len());
        progress.begin("embed", ids.len() as u64);
        let chunks: Vec<&[usize]> = order.chunks(BATCH).collect();
        let encoded = chunks
            .par_iter()
            .map(|chunk| {
                cancel.check()?;
                let batch: Vec<&[u32]> = chunk.iter().map(|&i| ids[i]).collect();
                let vectors = self.encode_ids(&batch).map_err(|e| Error::Model {
                    path: self.config.dir.clone(),
                    message: format!("forward pass failed: {e}"),
                })?;
                progress.advance(chunk.len() as u64);
                Ok(vectors)
            })
            .collect::<Result<Vec<_>>>()?;
        let mut out = vec![Vec::new(); ids.len()];
        for (chunk, vectors) in chunks.iter().zip(encoded) {
            for (&i, v) in chunk.iter().zip(vectors) {
                out[i] = v;
            }
        }
        progress.finish();
        Ok(out)
    }

    /// One text's vector.
    pub fn encode_one(&self, text: &str) -> Result<Vec<f32>> {
        let mut vectors = self.encode(&[text], &kindred_core::NoProgress, &CancelFlag::new())?;
        vectors
            .pop()
            .ok_or_else(|| Error::InvalidInput("the encoder returned no vector".into()))
    }

    /// Vectors for token id sequences padded to the batch's longest.
    fn encode_ids(&self, batch: &[&[u32]]) -> candle_core::Result<Vec<Vec<f32>>> {
        let width = batch.iter().map(|ids| ids.len()).max().unwrap_or(0).max(1);
        let mut flat_ids = vec![0u32; batch.len() * width];
        let mut flat_mask = vec![0f32; batch.len() * width];
        for (row, ids) in batch.iter().enumerate() {
            flat_ids[row * width..row * width + ids.len()].copy_from_slice(ids);
            flat_mask[row * width..row * width + ids.len()].fill(1.0);
        }
        let ids = Tensor::from_vec(flat_ids, (batch.len(), width), &self.device)?;
        let mask = Tensor::from_vec(flat_mask, (batch.len(), width), &self.device)?;
        let tokens = self.bert.forward(&ids, &mask)?;
        let mut sentences = match self.config.pooling {
            Pooling::Mean => mean_pool(&tokens, &mask)?,
            Pooling::Cls => cls_pool(&tokens)?,
        };
        if self.config.normalize {
            sentences = normalize_rows(&sentences)?;
        }
        sentences.to_vec2::<f32>()
    }
}

impl TextEncoder for SentenceEncoder {
    fn encode(
        &self,
        texts: &[&str],
        progress: &dyn Progress,
        cancel: &CancelFlag,
    ) -> Result<Vec<Vec<f32>>> {
        SentenceEncoder::encode(self, texts, progress, cancel)
    }
}

/// Opens the encoder in `dir` as a [`TextEncoder`]: the loader a binary registers with
/// [`kindred_core::text_encoder::register_text_encoder`] so that models accept `encoder=DIR`.
pub fn open_text_encoder(dir: &Path) -> Result<Arc<dyn TextEncoder>> {
    Ok(Arc::new(SentenceEncoder::load(dir)?))
}
