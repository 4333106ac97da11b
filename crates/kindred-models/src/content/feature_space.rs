//! Encoding of a [`FeatureTable`] into one sparse vector per entity over a single index space,
//! shared by the feature-based models (`content`, `hybrid`) and saved with them, so that a
//! reloaded model encodes a new entity exactly as training did.
//!
//! Each column owns a contiguous block of the index space:
//! - categorical (multi-valued): one index per `field=value` seen when the space was built
//!   (multi-hot); values unseen then are dropped;
//! - numeric: quantile buckets (one-hot). Bucketing rather than standardising because a single
//!   standardised coordinate can only express "more is better" in a dot product, while buckets
//!   let a profile or an embedding like the 1990s without liking ever-newer films; quantile edges
//!   are robust to outliers. Missing values (NaN) set no index;
//! - text: word unigrams and bigrams (lower-cased alphanumeric runs) hashed into `2^hash_bits`
//!   slots, weighted by TF-IDF with the smoothed IDF `ln((1+N)/(1+df)) + 1` (df counted over the
//!   table's entities when the space was built; unseen hashes get the largest IDF);
//! - dense vectors: their components as they are.
//!
//! Every column's block is scaled to unit L2 norm, so no field dominates by its number of tokens
//! or the scale of its values. Entities without features get an empty vector. The statistics
//! (vocabularies, bucket edges, document frequencies) come from the whole table, interactions
//! are never looked at, so items known only from features are encoded like any other.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use kindred_core::features::{ColumnData, FeatureColumn};
use kindred_core::rng::mix64;
use kindred_core::{Error, FeatureTable, IdMap, Result};
use serde::{Deserialize, Serialize};

use crate::persist::{TensorReader, TensorWriter};

/// How a [`FeatureSpace`] is built.
#[derive(Debug, Clone, PartialEq)]
pub struct EncodeOptions {
    /// Columns to use (all when `None`).
    pub columns: Option<Vec<String>>,
    /// Quantile buckets per numeric column.
    pub buckets: usize,
    /// Text columns hash into `2^hash_bits` slots.
    pub hash_bits: u32,
}

impl Default for EncodeOptions {
    fn default() -> Self {
        Self {
            columns: None,
            buckets: 10,
            hash_bits: 18,
        }
    }
}

impl EncodeOptions {
    /// Options from model parameters: `columns` is `a+b+c` (`+` because `,` separates model
    /// parameters), empty or `None` meaning all.
    pub fn from_params(columns: Option<&str>, buckets: usize, hash_bits: u32) -> Result<Self> {
        if buckets == 0 {
            return Err(Error::InvalidInput("buckets must be at least 1".into()));
        }
        if !(1..=24).contains(&hash_bits) {
            return Err(Error::InvalidInput(format!(
                "hash_bits must be between 1 and 24, got {hash_bits}"
            )));
        }
        let columns = columns
            .map(|c| {
                c.split('+')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            })
            .filter(|c| !c.is_empty());
        Ok(Self {
            columns,
            buckets,
            hash_bits,
        })
    }
}

/// How one column is encoded.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
enum Encoder {
    Categorical {
        values: IdMap,
    },
    Numeric {
        /// Ascending bucket edges; a value's bucket is the number of edges not above it.
        edges: Vec<f32>,
    },
    Text {
        hash_bits: u32,
        documents: u32,
        /// Document frequency of each hash slot that occurred, sorted by slot (pairs rather than
        /// a map: JSON map keys are strings, which a tagged enum cannot turn back into numbers).
        df: Vec<(u32, u32)>,
    },
    Dense {
        dim: usize,
    },
}

impl Encoder {
    fn width(&self) -> usize {
        match self {
            Encoder::Categorical { values } => values.len(),
            Encoder::Numeric { edges } => edges.len() + 1,
            Encoder::Text { hash_bits, .. } => 1usize << hash_bits,
            Encoder::Dense { dim } => *dim,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct EncodedColumn {
    name: String,
    offset: u32,
    encoder: Encoder,
}

/// The encoder of one entity kind's features: column layout and statistics.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct FeatureSpace {
    columns: Vec<EncodedColumn>,
    dim: usize,
}

/// A sparse vector: sorted indices with their values.
pub type SparseVec = Vec<(u32, f32)>;

/// Sparse rows (CSR), one per entity of an id map.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SparseRows {
    pub indptr: Vec<u64>,
    pub indices: Vec<u32>,
    pub values: Vec<f32>,
}

impl SparseRows {
    /// Rows from per-entity sparse vectors.
    pub fn from_vecs(rows: impl IntoIterator<Item = SparseVec>) -> Self {
        let mut out = SparseRows {
            indptr: vec![0],
            ..Self::default()
        };
        for row in rows {
            for (i, v) in row {
                out.indices.push(i);
                out.values.push(v);
            }
            out.indptr.push(out.indices.len() as u64);
        }
        out
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.indptr.len().saturating_sub(1)
    }

    /// True when there is no row.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Indices and values of row `r` (empty beyond the last row).
    pub fn row(&self, r: usize) -> (&[u32], &[f32]) {
        if r + 1 >= self.indptr.len() {
            return (&[], &[]);
        }
        let range = self.indptr[r] as usize..self.indptr[r + 1] as usize;
        (&self.indices[range.clone()], &self.values[range])
    }

    /// Appends the rows of `other` after these.
    pub fn append(&mut self, other: &SparseRows) {
        let base = self.indptr.last().copied().unwrap_or(0);
        if self.indptr.is_empty() {
            self.indptr.push(0);
        }
        self.indptr
            .extend(other.indptr.iter().skip(1).map(|&p| base + p));
        self.indices.extend_from_slice(&other.indices);
        self.values.extend_from_slice(&other.values);
    }

    /// Adds the three arrays to `tensors` under `prefix`.
    pub fn save(&self, prefix: &str, tensors: &mut TensorWriter) {
        tensors
            .u64(&format!("{prefix}.indptr"), &self.indptr)
            .u32(&format!("{prefix}.indices"), &self.indices)
            .f32(
                &format!("{prefix}.values"),
                &[self.values.len()],
                &self.values,
            );
    }

    /// Reads rows saved by [`Self::save`], checking their number and consistency.
    pub fn load(prefix: &str, tensors: &TensorReader, rows: usize) -> Result<Self> {
        let out = Self {
            indptr: tensors.u64(&format!("{prefix}.indptr"))?,
            indices: tensors.u32(&format!("{prefix}.indices"))?,
            values: tensors.f32_shaped(&format!("{prefix}.values"))?.1,
        };
        let consistent = out.indptr.len() == rows + 1
            && out.indptr.first() == Some(&0)
            && out.indptr.windows(2).all(|w| w[0] <= w[1])
            && out.indptr.last().copied() == Some(out.indices.len() as u64)
            && out.indices.len() == out.values.len();
        if !consistent {
            return Err(tensors.error(format!("`{prefix}` rows are inconsistent")));
        }
        Ok(out)
    }
}

/// Lower-cased alphanumeric words of `text`.
fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// A stable hash (FNV-1a, then a SplitMix finaliser for well-mixed low bits).
fn hash(text: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    mix64(h)
}

/// Term counts of the hashed unigrams and bigrams of `text`.
fn term_counts(text: &str, hash_bits: u32) -> BTreeMap<u32, u32> {
    let mask = (1u64 << hash_bits) - 1;
    let words = words(text);
    let mut counts = BTreeMap::new();
    let mut add = |term: &str| *counts.entry((hash(term) & mask) as u32).or_insert(0) += 1;
    for w in &words {
        add(w);
    }
    for pair in words.windows(2) {
        add(&format!("{} {}", pair[0], pair[1]));
    }
    counts
}

/// Scales `block` to unit L2 norm (an all-zero block is left empty).
fn push_unit_block(out: &mut SparseVec, block: &mut SparseVec) {
    let norm = block.iter().map(|(_, v)| v * v).sum::<f32>().sqrt();
    if norm > 0.0 && norm.is_finite() {
        out.extend(
            block
                .drain(..)
                .filter(|(_, v)| *v != 0.0)
                .map(|(i, v)| (i, v / norm)),
        );
    }
    block.clear();
}

impl FeatureSpace {
    /// Builds the space from `table`: the chosen columns, their vocabularies, bucket edges and
    /// document frequencies. A requested column that the table lacks is an error.
    pub fn fit(table: &FeatureTable, options: &EncodeOptions) -> Result<Self> {
        if let Some(wanted) = &options.columns {
            for name in wanted {
                if table.column(name).is_none() {
                    let have: Vec<&str> = table.columns().iter().map(|c| c.name.as_str()).collect();
                    return Err(Error::InvalidInput(format!(
                        "feature column `{name}` does not exist; the table has: {}",
                        have.join(", ")
                    )));
                }
            }
        }
        let mut columns = Vec::new();
        let mut offset = 0usize;
        for column in table.columns() {
            let chosen = options
                .columns
                .as_ref()
                .is_none_or(|wanted| wanted.contains(&column.name));
            if !chosen {
                continue;
            }
            let encoder = Self::fit_column(column, options);
            let width = encoder.width();
            if width == 0 {
                continue;
            }
            columns.push(EncodedColumn {
                name: column.name.clone(),
                offset: u32::try_from(offset).map_err(|_| {
                    Error::InvalidInput("feature space exceeds 2^32 dimensions".into())
                })?,
                encoder,
            });
            offset += width;
        }
        if u32::try_from(offset).is_err() {
            return Err(Error::InvalidInput(
                "feature space exceeds 2^32 dimensions".into(),
            ));
        }
        Ok(Self {
            columns,
            dim: offset,
        })
    }

    fn fit_column(column: &FeatureColumn, options: &EncodeOptions) -> Encoder {
        match &column.data {
            ColumnData::Categorical { vocab, .. } => Encoder::Categorical {
                values: vocab.clone(),
            },
            ColumnData::Numeric(values) => {
                let mut sorted: Vec<f32> =
                    values.iter().copied().filter(|v| v.is_finite()).collect();
                sorted.sort_by(f32::total_cmp);
                let mut edges: Vec<f32> = (1..options.buckets)
                    .filter_map(|q| sorted.get(q * sorted.len() / options.buckets).copied())
                    .collect();
                edges.dedup();
                // An edge equal to the minimum would leave the first bucket empty.
                if edges.first() == sorted.first() {
                    edges.remove(0);
                }
                Encoder::Numeric { edges }
            }
            ColumnData::Text(texts) => {
                let mut df = BTreeMap::new();
                let mut documents = 0u32;
                for text in texts {
                    let terms = term_counts(text, options.hash_bits);
                    if terms.is_empty() {
                        continue;
                    }
                    documents += 1;
                    for slot in terms.keys() {
                        *df.entry(*slot).or_insert(0) += 1;
                    }
                }
                Encoder::Text {
                    hash_bits: options.hash_bits,
                    documents,
                    df: df.into_iter().collect(),
                }
            }
            ColumnData::Dense { dim, .. } => Encoder::Dense { dim: *dim },
        }
    }

    /// Number of dimensions of the space.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Names of the encoded columns.
    pub fn column_names(&self) -> Vec<&str> {
        self.columns.iter().map(|c| c.name.as_str()).collect()
    }

    /// The vector of row `row` of `table` (a table with the columns this space was built from;
    /// a column missing from it, or of another kind, contributes nothing).
    fn encode_row(&self, table: &FeatureTable, row: usize) -> SparseVec {
        let mut out = SparseVec::new();
        let mut block = SparseVec::new();
        for col in &self.columns {
            let Some(column) = table.column(&col.name) else {
                continue;
            };
            let base = col.offset;
            match (&col.encoder, &column.data) {
                (
                    Encoder::Categorical { values },
                    ColumnData::Categorical {
                        vocab,
                        values: rows,
                    },
                ) => {
                    if let Some(cats) = rows.get(row) {
                        for &c in cats {
                            if let Some(v) = vocab.try_external(c).and_then(|name| values.get(name))
                            {
                                block.push((base + v, 1.0));
                            }
                        }
                        block.sort_unstable_by_key(|e| e.0);
                        block.dedup_by_key(|e| e.0);
                    }
                }
                (Encoder::Numeric { edges }, ColumnData::Numeric(values)) => {
                    if let Some(x) = values.get(row).filter(|x| x.is_finite()) {
                        let bucket = edges.partition_point(|e| e <= x) as u32;
                        block.push((base + bucket, 1.0));
                    }
                }
                (
                    Encoder::Text {
                        hash_bits,
                        documents,
                        df,
                    },
                    ColumnData::Text(texts),
                ) => {
                    if let Some(text) = texts.get(row) {
                        let n = *documents as f32;
                        for (slot, tf) in term_counts(text, *hash_bits) {
                            let df = df
                                .binary_search_by_key(&slot, |e| e.0)
                                .map_or(0, |p| df[p].1) as f32;
                            let idf = ((1.0 + n) / (1.0 + df)).ln() + 1.0;
                            block.push((base + slot, tf as f32 * idf));
                        }
                    }
                }
                (Encoder::Dense { dim }, ColumnData::Dense { dim: have, values })
                    if dim == have =>
                {
                    if let Some(Some(v)) = values.get(row) {
                        block.extend(
                            v.iter()
                                .enumerate()
                                .filter(|(_, x)| x.is_finite())
                                .map(|(d, &x)| (base + d as u32, x)),
                        );
                    }
                }
                _ => {}
            }
            push_unit_block(&mut out, &mut block);
        }
        out
    }

    /// The vector of the entity `id` of `table` (empty when the table does not know it).
    pub fn encode_entity(&self, table: &FeatureTable, id: &str) -> SparseVec {
        table
            .ids()
            .get(id)
            .map_or_else(SparseVec::new, |row| self.encode_row(table, row as usize))
    }

    /// One vector per index of `ids` (e.g. a dataset's item map), empty for entities that
    /// `table` does not know.
    pub fn encode_all(&self, table: &FeatureTable, ids: &IdMap) -> SparseRows {
        SparseRows::from_vecs(
            table
                .align(ids)
                .into_iter()
                .map(|row| row.map_or_else(SparseVec::new, |r| self.encode_row(table, r as usize))),
        )
    }

    /// Writes the space as JSON to `dir/name`.
    pub fn save(&self, dir: &Path, name: &str) -> Result<()> {
        let path = dir.join(name);
        let json = serde_json::to_vec(self)
            .map_err(|e| Error::InvalidInput(format!("cannot encode feature space: {e}")))?;
        std::fs::write(&path, json).map_err(|e| Error::io(&path, e))
    }

    /// Reads a space written by [`Self::save`].
    pub fn load(dir: &Path, name: &str) -> Result<Self> {
        let path = dir.join(name);
        let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
        serde_json::from_slice(&bytes).map_err(|e| Error::Model {
            path,
            message: format!("invalid feature space: {e}"),
        })
    }
}

/// Maps the space indices that occur in `rows` to a compact range `0..n` (sorted, so the map is
/// a binary search in the returned list), rewriting `rows` in place.
pub fn compact(rows: &mut SparseRows) -> Vec<u32> {
    let mut used: Vec<u32> = rows.indices.clone();
    used.sort_unstable();
    used.dedup();
    let position: HashMap<u32, u32> = used
        .iter()
        .enumerate()
        .map(|(p, &i)| (i, p as u32))
        .collect();
    for i in &mut rows.indices {
        *i = position[i];
    }
    used
}

#[cfg(test)]
mod tests {
    use super::*;
    use kindred_core::FeatureValue;

    fn table() -> FeatureTable {
        let mut t = FeatureTable::new();
        let cats = |v: &[&str]| FeatureValue::Categories(v.iter().map(|s| s.to_string()).collect());
        t.set("a", "genres", cats(&["Drama", "Comedy"])).unwrap();
        t.set("b", "genres", cats(&["Drama"])).unwrap();
        t.set("c", "genres", cats(&["Horror"])).unwrap();
        for (id, year) in [("a", 1990.0), ("b", 1995.0), ("c", 2000.0), ("d", 2005.0)] {
            t.set(id, "year", FeatureValue::Number(year)).unwrap();
        }
        t.set("a", "title", FeatureValue::Text("Toy Story".into()))
            .unwrap();
        t.set("b", "title", FeatureValue::Text("Toy Story 2".into()))
            .unwrap();
        t.set("c", "title", FeatureValue::Text("Alien".into()))
            .unwrap();
        t.set("a", "emb", FeatureValue::Vector(vec![3.0, 4.0]))
            .unwrap();
        t
    }

    #[test]
    fn encodes_every_kind_with_unit_blocks() {
        let t = table();
        let options = EncodeOptions {
            buckets: 2,
            hash_bits: 10,
            ..EncodeOptions::default()
        };
        let space = FeatureSpace::fit(&t, &options).unwrap();
        assert_eq!(space.column_names(), vec!["genres", "year", "title", "emb"]);
        // 3 genres + 2 year buckets + 1024 text slots + 2 dense.
        assert_eq!(space.dim(), 3 + 2 + 1024 + 2);
        let a = space.encode_entity(&t, "a");
        let genre: Vec<_> = a.iter().filter(|(i, _)| *i < 3).collect();
        let half = 1.0 / 2f32.sqrt();
        assert_eq!(genre, vec![&(0, half), &(1, half)]);
        let dense: Vec<_> = a.iter().filter(|(i, _)| *i >= 1029).collect();
        assert_eq!(dense, vec![&(1029, 0.6), &(1030, 0.8)]);
        // Years 1990, 1995 fall below the median edge, 2000 and 2005 above.
        let bucket = |id: &str| {
            space
                .encode_entity(&t, id)
                .iter()
                .find(|(i, _)| (3..5).contains(i))
                .unwrap()
                .0
        };
        assert_eq!((bucket("a"), bucket("b")), (3, 3));
        assert_eq!((bucket("c"), bucket("d")), (4, 4));
        // "toy" and "story" are shared by two titles: they weigh less than "2" (one title).
        let b = space.encode_entity(&t, "b");
        let text: Vec<f32> = b
            .iter()
            .filter(|(i, _)| (5..1029).contains(i))
            .map(|e| e.1)
            .collect();
        assert_eq!(text.len(), 5, "3 unigrams and 2 bigrams");
        assert!((text.iter().map(|v| v * v).sum::<f32>() - 1.0).abs() < 1e-5);
        // An entity without a table row and one with only a year.
        let ids = IdMap::from(vec!["zz".to_string(), "d".to_string()]);
        let rows = space.encode_all(&t, &ids);
        assert!(rows.row(0).0.is_empty());
        assert_eq!(rows.row(1), (&[4u32][..], &[1.0f32][..]));
    }

    #[test]
    fn reloaded_space_encodes_new_entities_identically() {
        let t = table();
        let space = FeatureSpace::fit(&t, &EncodeOptions::default()).unwrap();
        let dir = std::env::temp_dir().join(format!("kindred-fspace-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        space.save(&dir, "space.json").unwrap();
        let loaded = FeatureSpace::load(&dir, "space.json").unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        // A new item known only to a later table, with an unseen genre and an unseen word.
        let mut later = t.clone();
        later
            .set(
                "new",
                "genres",
                FeatureValue::Categories(vec!["Drama".into(), "Western".into()]),
            )
            .unwrap();
        later
            .set("new", "title", FeatureValue::Text("Toy Western".into()))
            .unwrap();
        let v = loaded.encode_entity(&later, "new");
        assert_eq!(v, space.encode_entity(&later, "new"));
        assert_eq!(v[0], (0, 1.0), "Drama kept, Western unknown to the space");
        assert!(v.len() > 1);
    }

    #[test]
    fn column_selection_and_bad_options() {
        let t = table();
        let options = EncodeOptions::from_params(Some("genres+year"), 4, 12).unwrap();
        let space = FeatureSpace::fit(&t, &options).unwrap();
        assert_eq!(space.column_names(), vec!["genres", "year"]);
        let err = FeatureSpace::fit(
            &t,
            &EncodeOptions::from_params(Some("colour"), 4, 12).unwrap(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("colour") && err.contains("genres"), "{err}");
        assert!(EncodeOptions::from_params(None, 0, 12).is_err());
        assert!(EncodeOptions::from_params(None, 4, 40).is_err());
    }

    #[test]
    fn compaction_keeps_order() {
        let mut rows = SparseRows::from_vecs([vec![(7, 1.0), (100, 2.0)], vec![], vec![(7, 3.0)]]);
        let used = compact(&mut rows);
        assert_eq!(used, vec![7, 100]);
        assert_eq!(rows.indices, vec![0, 1, 0]);
        assert_eq!(rows.row(2), (&[0u32][..], &[3.0f32][..]));
    }
}
