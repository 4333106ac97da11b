//! The `text=...,encoder=DIR` parameters of `content` and `hybrid`: before the feature space is
//! fitted, every training item with text and without a vector gets the vector of its text fields
//! from the sentence encoder in `DIR`, as the dense column [`TEXT_VECTOR_FIELD`], which the model
//! then uses like any other column.
//!
//! An item that already holds a vector in that column keeps it: `kindred embed` and the server's
//! `[encoder]` write the same column with the same text joining ([`join_text`]), so with the same
//! encoder the stored vector is the one this would compute, and a store of many items is not
//! encoded again at every training. Items added after training are scored from the vector they
//! were stored with (the server's `[encoder]` computes it when they are written); one without a
//! vector is scored from its other columns.

use std::path::PathBuf;

use kindred_core::features::ColumnData;
use kindred_core::text_encoder::{join_text, load_text_encoder, TextEncoder, TEXT_VECTOR_FIELD};
use kindred_core::{CancelFlag, Error, FeatureTable, FeatureValue, IdMap, Progress, Result};

use crate::content::feature_space::EncodeOptions;

/// Which text fields to encode, and with which encoder.
#[derive(Debug, Clone, PartialEq)]
pub struct TextSource {
    /// Text columns, in the order they are joined.
    pub fields: Vec<String>,
    /// The sentence-transformers model directory.
    pub encoder: PathBuf,
}

impl TextSource {
    /// From a model's `text` (columns joined by `+`) and `encoder` parameters: both or neither.
    pub fn from_params(
        model: &str,
        text: Option<&str>,
        encoder: Option<&str>,
    ) -> Result<Option<Self>> {
        let fields: Vec<String> = text
            .unwrap_or_default()
            .split('+')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        let encoder = encoder.map(str::trim).filter(|s| !s.is_empty());
        match (fields.is_empty(), encoder) {
            (true, None) => Ok(None),
            (false, Some(dir)) => Ok(Some(Self {
                fields,
                encoder: PathBuf::from(dir),
            })),
            (true, Some(_)) => Err(Error::InvalidInput(format!(
                "{model}: encoder= needs text= (the item text columns to encode, joined by +, \
                 e.g. text=title+description)"
            ))),
            (false, None) => Err(Error::InvalidInput(format!(
                "{model}: text= needs encoder= (the folder of a sentence-transformers model, e.g. \
                 all-MiniLM-L6-v2)"
            ))),
        }
    }

    /// Makes a column selection include the vector column.
    pub fn select_vector_column(options: &mut EncodeOptions) {
        if let Some(columns) = &mut options.columns {
            if !columns.iter().any(|c| c == TEXT_VECTOR_FIELD) {
                columns.push(TEXT_VECTOR_FIELD.to_owned());
            }
        }
    }

    /// `table` with the text vector of every entity of `ids` that has text and no vector yet,
    /// computed by the encoder this source names.
    pub fn add_vectors(
        &self,
        model: &str,
        table: &FeatureTable,
        ids: &IdMap,
        progress: &dyn Progress,
        cancel: &CancelFlag,
    ) -> Result<FeatureTable> {
        self.check_fields(model, table)?;
        let pending = self.pending(table, ids);
        if pending.is_empty() {
            return Ok(table.clone());
        }
        let encoder = load_text_encoder(&self.encoder)?;
        self.encode(model, encoder.as_ref(), table, &pending, progress, cancel)
    }

    /// [`Self::add_vectors`] with an encoder already open.
    pub fn add_vectors_with(
        &self,
        model: &str,
        encoder: &dyn TextEncoder,
        table: &FeatureTable,
        ids: &IdMap,
        progress: &dyn Progress,
        cancel: &CancelFlag,
    ) -> Result<FeatureTable> {
        self.check_fields(model, table)?;
        let pending = self.pending(table, ids);
        self.encode(model, encoder, table, &pending, progress, cancel)
    }

    /// `table` with the vector of each `pending` (id, text).
    fn encode(
        &self,
        model: &str,
        encoder: &dyn TextEncoder,
        table: &FeatureTable,
        pending: &[(String, String)],
        progress: &dyn Progress,
        cancel: &CancelFlag,
    ) -> Result<FeatureTable> {
        let mut out = table.clone();
        if pending.is_empty() {
            return Ok(out);
        }
        let texts: Vec<&str> = pending.iter().map(|(_, t)| t.as_str()).collect();
        let vectors = encoder.encode(&texts, progress, cancel)?;
        for ((id, _), vector) in pending.iter().zip(vectors) {
            out.set(id, TEXT_VECTOR_FIELD, FeatureValue::Vector(vector))
                .map_err(|e| {
                    Error::InvalidInput(format!(
                        "{model}: text vectors from {}: {e}",
                        self.encoder.display()
                    ))
                })?;
        }
        Ok(out)
    }

    /// Every named field must be a text column of `table`.
    fn check_fields(&self, model: &str, table: &FeatureTable) -> Result<()> {
        for field in &self.fields {
            match table.column(field).map(|c| &c.data) {
                Some(ColumnData::Text(_)) => {}
                found => {
                    let text_columns: Vec<&str> = table
                        .columns()
                        .iter()
                        .filter(|c| matches!(c.data, ColumnData::Text(_)))
                        .map(|c| c.name.as_str())
                        .collect();
                    let what = if found.is_some() {
                        "is not a text column"
                    } else {
                        "is not an item feature"
                    };
                    return Err(Error::InvalidInput(format!(
                        "{model}: text={}: `{field}` {what}; text columns: {}",
                        self.fields.join("+"),
                        if text_columns.is_empty() {
                            "none".to_owned()
                        } else {
                            text_columns.join(", ")
                        }
                    )));
                }
            }
        }
        Ok(())
    }

    /// Ids of `ids` that `table` knows, with text and without a vector, and their joined text.
    fn pending(&self, table: &FeatureTable, ids: &IdMap) -> Vec<(String, String)> {
        let texts: Vec<&[String]> = self
            .fields
            .iter()
            .filter_map(|f| match table.column(f).map(|c| &c.data) {
                Some(ColumnData::Text(values)) => Some(values.as_slice()),
                _ => None,
            })
            .collect();
        let vectors = match table.column(TEXT_VECTOR_FIELD).map(|c| &c.data) {
            Some(ColumnData::Dense { values, .. }) => Some(values.as_slice()),
            _ => None,
        };
        table
            .align(ids)
            .into_iter()
            .zip(ids.externals())
            .filter_map(|(row, id)| {
                let row = row? as usize;
                if vectors.is_some_and(|v| v.get(row).is_some_and(Option::is_some)) {
                    return None;
                }
                let text = join_text(texts.iter().map(|t| t.get(row).map(String::as_str)))?;
                Some((id.clone(), text))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use kindred_core::NoProgress;

    use super::*;

    /// Vectors from the text's length and word count; counts the texts it encoded.
    #[derive(Default)]
    struct CountingEncoder(AtomicUsize);

    impl TextEncoder for CountingEncoder {
        fn encode(
            &self,
            texts: &[&str],
            _progress: &dyn Progress,
            cancel: &CancelFlag,
        ) -> Result<Vec<Vec<f32>>> {
            cancel.check()?;
            self.0.fetch_add(texts.len(), Ordering::SeqCst);
            Ok(texts
                .iter()
                .map(|t| vec![t.len() as f32, t.split_whitespace().count() as f32])
                .collect())
        }
    }

    fn table() -> FeatureTable {
        let mut t = FeatureTable::new();
        let text = |s: &str| FeatureValue::Text(s.into());
        t.set("a", "title", text("Heat")).unwrap();
        t.set("a", "description", text("a crime film")).unwrap();
        t.set("b", "title", text("  ")).unwrap();
        t.set("c", "title", text("Up")).unwrap();
        t.set("c", TEXT_VECTOR_FIELD, FeatureValue::Vector(vec![9.0, 9.0]))
            .unwrap();
        t.set("d", "genres", FeatureValue::Categories(vec!["x".into()]))
            .unwrap();
        t
    }

    fn ids(names: &[&str]) -> IdMap {
        let mut ids = IdMap::new();
        for n in names {
            ids.intern(n);
        }
        ids
    }

    fn vector(t: &FeatureTable, id: &str) -> Option<Vec<f32>> {
        let row = t.ids().get(id)? as usize;
        match &t.column(TEXT_VECTOR_FIELD)?.data {
            ColumnData::Dense { values, .. } => values[row].clone(),
            _ => None,
        }
    }

    #[test]
    fn encodes_joined_text_of_items_without_a_vector() {
        let source = TextSource::from_params("content", Some("title+description"), Some("m"))
            .unwrap()
            .unwrap();
        let encoder = CountingEncoder::default();
        let out = source
            .add_vectors_with(
                "content",
                &encoder,
                &table(),
                &ids(&["a", "b", "c", "d", "e"]),
                &NoProgress,
                &CancelFlag::new(),
            )
            .unwrap();
        // "Heat. a crime film": 18 characters, 4 words.
        assert_eq!(vector(&out, "a"), Some(vec![18.0, 4.0]));
        // Blank text and no text: no vector; a stored vector is kept, not encoded again.
        assert_eq!(vector(&out, "b"), None);
        assert_eq!(vector(&out, "d"), None);
        assert_eq!(vector(&out, "c"), Some(vec![9.0, 9.0]));
        assert_eq!(encoder.0.load(Ordering::SeqCst), 1);
        // Items outside `ids` are left alone.
        let encoder = CountingEncoder::default();
        let out = source
            .add_vectors_with(
                "content",
                &encoder,
                &table(),
                &ids(&["c"]),
                &NoProgress,
                &CancelFlag::new(),
            )
            .unwrap();
        assert_eq!(vector(&out, "a"), None);
        assert_eq!(encoder.0.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn cancelling_stops_the_encoding() {
        let source = TextSource::from_params("content", Some("title"), Some("m"))
            .unwrap()
            .unwrap();
        let cancel = CancelFlag::new();
        cancel.cancel();
        let err = source
            .add_vectors_with(
                "content",
                &CountingEncoder::default(),
                &table(),
                &ids(&["a"]),
                &NoProgress,
                &cancel,
            )
            .unwrap_err();
        assert!(matches!(err, Error::Cancelled), "{err}");
    }

    #[test]
    fn bad_parameters_say_what_is_missing() {
        let err = |text: Option<&str>, encoder: Option<&str>| {
            TextSource::from_params("hybrid", text, encoder)
                .unwrap_err()
                .to_string()
        };
        assert!(err(Some("title"), None).contains("text= needs encoder="));
        assert!(err(None, Some("dir")).contains("encoder= needs text="));
        assert_eq!(
            TextSource::from_params("content", None, None).unwrap(),
            None
        );
        let source = TextSource::from_params("content", Some("genres+colour"), Some("m"))
            .unwrap()
            .unwrap();
        let run = || {
            source
                .add_vectors_with(
                    "content",
                    &CountingEncoder::default(),
                    &table(),
                    &ids(&["a"]),
                    &NoProgress,
                    &CancelFlag::new(),
                )
                .unwrap_err()
                .to_string()
        };
        let message = run();
        assert!(
            message.contains("`genres` is not a text column")
                && message.contains("text columns: title, description"),
            "{message}"
        );
        // No encoder registered in this crate's tests: the error names the build feature.
        let err = source_without_registry();
        assert!(err.contains("`encoder` feature"), "{err}");
    }

    fn source_without_registry() -> String {
        let source = TextSource::from_params("content", Some("title"), Some("/nowhere"))
            .unwrap()
            .unwrap();
        source
            .add_vectors(
                "content",
                &table(),
                &ids(&["a"]),
                &NoProgress,
                &CancelFlag::new(),
            )
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn a_column_selection_gains_the_vector_column() {
        let mut options = EncodeOptions::from_params(Some("genres"), 10, 18).unwrap();
        TextSource::select_vector_column(&mut options);
        assert_eq!(
            options.columns,
            Some(vec!["genres".to_owned(), TEXT_VECTOR_FIELD.to_owned()])
        );
        let mut all = EncodeOptions::default();
        TextSource::select_vector_column(&mut all);
        assert_eq!(all.columns, None);
    }
}
