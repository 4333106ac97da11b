//! Model files: a directory with `manifest.json` (algorithm, parameters, format version, id maps,
//! training-data fingerprint, metrics) and `model.safetensors` for the numeric arrays.
//!
//! The state every model shares (id maps, each user's seen items, the rating range) lives in
//! [`Fitted`], which saves and loads itself, so algorithms only add their own tensors.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use kindred_core::{Error, IdMap, ItemIdx, Result, TrainSet, UserIdx};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use serde::{Deserialize, Serialize};

/// Version of the on-disk layout; bumped on incompatible changes.
pub const FORMAT_VERSION: u32 = 1;
const MANIFEST: &str = "manifest.json";
const TENSORS: &str = "model.safetensors";

/// Items each user interacted with in training, sorted per user (CSR without values).
#[derive(Debug, Clone, Default)]
pub struct SeenItems {
    indptr: Vec<u64>,
    items: Vec<ItemIdx>,
}

impl SeenItems {
    /// From a training set's by-user view.
    pub fn from_train(data: &TrainSet) -> Self {
        let mut items = data.by_user.indices().to_vec();
        let mut indptr: Vec<u64> = data.by_user.indptr().iter().map(|&p| p as u64).collect();
        // Repeated events on one item count once.
        let mut write = 0usize;
        let mut start = 0usize;
        for u in 0..data.by_user.n_rows() {
            let end = indptr[u + 1] as usize;
            let row_start = write;
            for r in start..end {
                if write == row_start || items[write - 1] != items[r] {
                    items[write] = items[r];
                    write += 1;
                }
            }
            start = end;
            indptr[u + 1] = write as u64;
        }
        items.truncate(write);
        Self { indptr, items }
    }

    /// Sorted items of `user` (empty for users beyond the trained universe).
    pub fn items_of(&self, user: UserIdx) -> &[ItemIdx] {
        let u = user as usize;
        if u + 1 >= self.indptr.len() {
            return &[];
        }
        &self.items[self.indptr[u] as usize..self.indptr[u + 1] as usize]
    }

    /// True when `user` interacted with `item` in training.
    pub fn contains(&self, user: UserIdx, item: ItemIdx) -> bool {
        self.items_of(user).binary_search(&item).is_ok()
    }
}

/// State shared by every fitted model.
#[derive(Debug, Clone)]
pub struct Fitted {
    pub users: Arc<IdMap>,
    pub items: Arc<IdMap>,
    pub seen: SeenItems,
    /// (min, max) rating seen in training, used to clip predictions.
    pub rating_range: Option<(f32, f32)>,
    pub data_fingerprint: u64,
    pub n_train: usize,
    /// Items with training data, derived from `seen` once.
    known_items: Vec<bool>,
}

/// Marks the items that occur in `seen`.
fn known_items(seen: &SeenItems, n_items: usize) -> Vec<bool> {
    let mut known = vec![false; n_items];
    for &i in &seen.items {
        if let Some(k) = known.get_mut(i as usize) {
            *k = true;
        }
    }
    known
}

impl Fitted {
    /// Captures the shared state of a training set.
    pub fn from_train(data: &TrainSet) -> Self {
        // The fingerprint is one serial hash chain over every row: it runs beside the rest.
        let (data_fingerprint, (seen, rating_range)) = rayon::join(
            || data.data.fingerprint(),
            || (SeenItems::from_train(data), data.data.rating_range()),
        );
        Self {
            users: Arc::clone(data.data.user_ids()),
            items: Arc::clone(data.data.item_ids()),
            known_items: known_items(&seen, data.n_items()),
            seen,
            rating_range,
            data_fingerprint,
            n_train: data.data.len(),
        }
    }

    /// The same state with `new_items` appended to the item map, as items without training
    /// data (ids it already holds are skipped).
    pub fn with_items<'a>(&self, new_items: impl IntoIterator<Item = &'a str>) -> Self {
        let mut items = IdMap::clone(&self.items);
        for id in new_items {
            items.intern(id);
        }
        let mut known_items = self.known_items.clone();
        known_items.resize(items.len(), false);
        Self {
            items: Arc::new(items),
            known_items,
            ..self.clone()
        }
    }

    /// True when `user` has training data (Surprise's "known" user); false for unknown indices.
    pub fn knows_user(&self, user: UserIdx) -> bool {
        !self.seen.items_of(user).is_empty()
    }

    /// True when `item` has training data (Surprise's "known" item); false for unknown indices.
    pub fn knows_item(&self, item: ItemIdx) -> bool {
        self.known_items.get(item as usize) == Some(&true)
    }

    /// Clips a prediction to the training rating range.
    pub fn clip(&self, value: f32) -> f32 {
        match self.rating_range {
            Some((lo, hi)) => value.clamp(lo, hi),
            None => value,
        }
    }

    /// Writes the manifest and the tensors (the shared ones plus `tensors`) into `dir`.
    pub fn save(
        &self,
        dir: &Path,
        algorithm: &str,
        params: serde_json::Value,
        tensors: TensorWriter,
    ) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let manifest = Manifest {
            format_version: FORMAT_VERSION,
            algorithm: algorithm.to_owned(),
            params,
            kindred_version: env!("CARGO_PKG_VERSION").to_owned(),
            data_fingerprint: format!("{:016x}", self.data_fingerprint),
            n_train: self.n_train,
            rating_range: self.rating_range,
            metrics: BTreeMap::new(),
            selection: None,
            training: None,
            users: (*self.users).clone(),
            items: (*self.items).clone(),
        };
        let path = dir.join(MANIFEST);
        let json = serde_json::to_vec_pretty(&manifest)
            .map_err(|e| Error::InvalidInput(format!("cannot encode manifest: {e}")))?;
        std::fs::write(&path, json).map_err(|e| Error::io(&path, e))?;
        let mut tensors = tensors;
        tensors.u64("seen.indptr", &self.seen.indptr);
        tensors.u32("seen.items", &self.seen.items);
        tensors.write(&dir.join(TENSORS))
    }

    /// Reads the manifest and tensors of a saved model and rebuilds the shared state.
    pub fn load(dir: &Path) -> Result<(Manifest, Fitted, TensorReader)> {
        let manifest = Manifest::read(dir)?;
        let tensors = TensorReader::open(&dir.join(TENSORS))?;
        let fitted = Self::from_saved(&manifest, &tensors)?;
        Ok((manifest, fitted, tensors))
    }

    /// Rebuilds the shared state from a manifest and its tensors, already read.
    pub fn from_saved(manifest: &Manifest, tensors: &TensorReader) -> Result<Fitted> {
        let seen = SeenItems {
            indptr: tensors.u64("seen.indptr")?,
            items: tensors.u32("seen.items")?,
        };
        // Every lookup of a user's items slices by these offsets: check them all here.
        tensors.check_csr(
            "seen",
            &seen.indptr,
            manifest.users.len(),
            &seen.items,
            manifest.items.len(),
            seen.items.len(),
        )?;
        let data_fingerprint = u64::from_str_radix(&manifest.data_fingerprint, 16).unwrap_or(0);
        let fitted = Fitted {
            users: Arc::new(manifest.users.clone()),
            items: Arc::new(manifest.items.clone()),
            known_items: known_items(&seen, manifest.items.len()),
            seen,
            rating_range: manifest.rating_range,
            data_fingerprint,
            n_train: manifest.n_train,
        };
        Ok(fitted)
    }
}

/// The `manifest.json` of a saved model.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub format_version: u32,
    pub algorithm: String,
    pub params: serde_json::Value,
    pub kindred_version: String,
    /// Hex fingerprint of the training interactions.
    pub data_fingerprint: String,
    pub n_train: usize,
    pub rating_range: Option<(f32, f32)>,
    /// Offline metrics recorded at training time, if any.
    #[serde(default)]
    pub metrics: BTreeMap<String, f64>,
    /// How the model was chosen, when a search on the training data chose it (`auto`): every
    /// family tried, its validation score and fit time, and why others were skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selection: Option<serde_json::Value>,
    /// How the version was made, so it can be retrained exactly: the training spec (model,
    /// seed, positive threshold, cleaning pipeline), the source data's counts and fingerprint
    /// before cleaning, what cleaning removed, and the code version. Absent in models saved
    /// before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub training: Option<serde_json::Value>,
    pub users: IdMap,
    pub items: IdMap,
}

impl Manifest {
    /// Adds the selection trace to the manifest a model saved in `dir`.
    pub fn record_selection(dir: &Path, selection: serde_json::Value) -> Result<()> {
        let mut manifest = Self::read(dir)?;
        manifest.selection = Some(selection);
        manifest.write(dir)
    }

    /// Adds how the version was made (see [`Manifest::training`]) to the manifest a model
    /// saved in `dir`.
    pub fn record_training(dir: &Path, training: serde_json::Value) -> Result<()> {
        let mut manifest = Self::read(dir)?;
        manifest.training = Some(training);
        manifest.write(dir)
    }

    fn write(&self, dir: &Path) -> Result<()> {
        let path = dir.join(MANIFEST);
        let json = serde_json::to_vec_pretty(self)
            .map_err(|e| Error::InvalidInput(format!("cannot encode manifest: {e}")))?;
        std::fs::write(&path, json).map_err(|e| Error::io(&path, e))
    }

    /// Reads and validates `dir/manifest.json`.
    pub fn read(dir: &Path) -> Result<Self> {
        let path = dir.join(MANIFEST);
        let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
        Self::from_json(&bytes, path)
    }

    /// Parses and validates the text of a `manifest.json`; `path` names it in errors.
    pub fn from_json(bytes: &[u8], path: PathBuf) -> Result<Self> {
        let manifest: Manifest = serde_json::from_slice(bytes).map_err(|e| Error::Model {
            path: path.clone(),
            message: format!("invalid manifest: {e}"),
        })?;
        if manifest.format_version > FORMAT_VERSION {
            return Err(Error::Model {
                path,
                message: format!(
                    "format version {} is newer than this kindred supports ({FORMAT_VERSION})",
                    manifest.format_version
                ),
            });
        }
        // Predictions are clamped to this range, and `f32::clamp` panics on an inverted one.
        if let Some((lo, hi)) = manifest.rating_range {
            if !(lo.is_finite() && hi.is_finite() && lo <= hi) {
                return Err(Error::Model {
                    path,
                    message: format!("invalid manifest: rating_range [{lo}, {hi}] is not a range"),
                });
            }
        }
        Ok(manifest)
    }
}

/// Collects little-endian tensors to write as one safetensors file.
#[derive(Debug, Default)]
pub struct TensorWriter {
    tensors: Vec<(String, Dtype, Vec<usize>, Vec<u8>)>,
}

impl TensorWriter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an f32 tensor of the given shape.
    pub fn f32(&mut self, name: &str, shape: &[usize], values: &[f32]) -> &mut Self {
        let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.tensors
            .push((name.to_owned(), Dtype::F32, shape.to_vec(), bytes));
        self
    }

    /// Adds a 1-d u32 tensor.
    pub fn u32(&mut self, name: &str, values: &[u32]) -> &mut Self {
        let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.tensors
            .push((name.to_owned(), Dtype::U32, vec![values.len()], bytes));
        self
    }

    /// Adds a 1-d u64 tensor.
    pub fn u64(&mut self, name: &str, values: &[u64]) -> &mut Self {
        let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.tensors
            .push((name.to_owned(), Dtype::U64, vec![values.len()], bytes));
        self
    }

    fn write(&self, path: &Path) -> Result<()> {
        let mut views = Vec::with_capacity(self.tensors.len());
        for (name, dtype, shape, bytes) in &self.tensors {
            let view = TensorView::new(*dtype, shape.clone(), bytes).map_err(|e| Error::Model {
                path: path.to_owned(),
                message: format!("tensor {name}: {e}"),
            })?;
            views.push((name.clone(), view));
        }
        let bytes =
            safetensors::serialize(views, None::<HashMap<String, String>>).map_err(|e| {
                Error::Model {
                    path: path.to_owned(),
                    message: e.to_string(),
                }
            })?;
        std::fs::write(path, bytes).map_err(|e| Error::io(path, e))
    }
}

/// Reads tensors back from a safetensors file, checking dtypes.
#[derive(Debug)]
pub struct TensorReader {
    path: PathBuf,
    bytes: Vec<u8>,
}

impl TensorReader {
    /// Reads the whole file (models are small next to memory; memory-mapping can come later).
    pub fn open(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        Self::from_bytes(path.to_owned(), bytes)
    }

    /// Checks and keeps the bytes of a safetensors file; `path` names it in errors.
    pub fn from_bytes(path: PathBuf, bytes: Vec<u8>) -> Result<Self> {
        SafeTensors::deserialize(&bytes).map_err(|e| Error::Model {
            path: path.clone(),
            message: format!("invalid safetensors file: {e}"),
        })?;
        Ok(Self { path, bytes })
    }

    /// A model error naming this file.
    pub(crate) fn error(&self, message: impl Into<String>) -> Error {
        Error::Model {
            path: self.path.clone(),
            message: message.into(),
        }
    }

    /// Checks a CSR layout read from this file (`rows` rows of column indices below `n_cols`,
    /// `values` values) so that scoring can index it without panicking.
    pub fn check_csr(
        &self,
        name: &str,
        indptr: &[u64],
        rows: usize,
        indices: &[u32],
        n_cols: usize,
        values: usize,
    ) -> Result<()> {
        let well_formed = indptr.len() == rows + 1
            && indptr.first() == Some(&0)
            && indptr.windows(2).all(|w| w[0] <= w[1])
            && indptr.last().copied() == Some(indices.len() as u64)
            && values == indices.len()
            && indices.iter().all(|&i| (i as usize) < n_cols);
        if well_formed {
            Ok(())
        } else {
            Err(self.error(format!(
                "tensors `{name}.*` do not form a valid {rows}-row sparse matrix"
            )))
        }
    }

    fn raw(&self, name: &str, dtype: Dtype) -> Result<(Vec<usize>, Vec<u8>)> {
        let file = SafeTensors::deserialize(&self.bytes).map_err(|e| self.error(e.to_string()))?;
        let view = file
            .tensor(name)
            .map_err(|_| self.error(format!("missing tensor `{name}`")))?;
        if view.dtype() != dtype {
            return Err(self.error(format!(
                "tensor `{name}` has dtype {:?}, expected {dtype:?}",
                view.dtype()
            )));
        }
        Ok((view.shape().to_vec(), view.data().to_vec()))
    }

    /// An f32 tensor with its shape.
    pub fn f32_shaped(&self, name: &str) -> Result<(Vec<usize>, Vec<f32>)> {
        let (shape, bytes) = self.raw(name, Dtype::F32)?;
        let values = bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        Ok((shape, values))
    }

    /// An f32 tensor of exactly `len` elements.
    pub fn f32_len(&self, name: &str, len: usize) -> Result<Vec<f32>> {
        let (_, values) = self.f32_shaped(name)?;
        if values.len() != len {
            return Err(self.error(format!(
                "tensor `{name}` has {} elements, expected {len}",
                values.len()
            )));
        }
        Ok(values)
    }

    pub fn u32(&self, name: &str) -> Result<Vec<u32>> {
        let (_, bytes) = self.raw(name, Dtype::U32)?;
        Ok(bytes
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    }

    pub fn u64(&self, name: &str) -> Result<Vec<u64>> {
        let (_, bytes) = self.raw(name, Dtype::U64)?;
        Ok(bytes
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tensors(indptr: &[u64], items: &[u32]) -> TensorReader {
        let mut writer = TensorWriter::new();
        writer.u64("seen.indptr", indptr).u32("seen.items", items);
        let views = writer
            .tensors
            .iter()
            .map(|(name, dtype, shape, bytes)| {
                (
                    name.clone(),
                    TensorView::new(*dtype, shape.clone(), bytes).unwrap(),
                )
            })
            .collect::<Vec<_>>();
        let bytes = safetensors::serialize(views, None::<HashMap<String, String>>).unwrap();
        TensorReader::from_bytes(PathBuf::from("model.safetensors"), bytes).unwrap()
    }

    fn manifest(users: usize, items: usize) -> Manifest {
        let ids = |prefix: &str, n: usize| {
            IdMap::from((0..n).map(|i| format!("{prefix}{i}")).collect::<Vec<_>>())
        };
        Manifest {
            format_version: FORMAT_VERSION,
            algorithm: "popularity".into(),
            params: serde_json::Value::Null,
            kindred_version: "test".into(),
            data_fingerprint: "0".into(),
            n_train: 0,
            rating_range: None,
            metrics: BTreeMap::new(),
            selection: None,
            training: None,
            users: ids("u", users),
            items: ids("i", items),
        }
    }

    #[test]
    fn an_inverted_rating_range_is_a_model_error() {
        // Found by the `model_load` fuzz target: `rating_range: [2, 0]` loaded, and the first
        // prediction panicked in `f32::clamp`.
        let text = |range: &str| {
            let mut value = serde_json::to_value(manifest(1, 1)).unwrap();
            value["rating_range"] = serde_json::from_str(range).unwrap();
            serde_json::to_vec(&value).unwrap()
        };
        let path = PathBuf::from("manifest.json");
        let ok = Manifest::from_json(&text("[1.0, 5.0]"), path.clone()).unwrap();
        assert_eq!(ok.rating_range, Some((1.0, 5.0)));
        assert!(Manifest::from_json(&text("null"), path.clone()).is_ok());
        for range in ["[2.0, 0.0]", "[1e39, 5.0]", "[-1e39, 5.0]"] {
            match Manifest::from_json(&text(range), path.clone()) {
                Err(Error::Model { message, .. }) => {
                    assert!(message.contains("rating_range"), "{message}")
                }
                other => panic!("{range}: {other:?}"),
            }
        }
    }

    #[test]
    fn seen_offsets_out_of_range_are_a_model_error() {
        // Found by the `model_load` fuzz target: an offset past the end of `seen.items` passed
        // the length check and panicked in the first lookup of that user's items.
        let manifest = manifest(2, 3);
        let good = Fitted::from_saved(&manifest, &tensors(&[0, 1, 2], &[0, 2])).unwrap();
        assert_eq!(good.seen.items_of(1), &[2]);
        for (indptr, items) in [
            (&[0u64, 1 << 38, 2][..], &[0u32, 2][..]),
            (&[0, 2, 1], &[0, 2]),
            (&[1, 1, 2], &[0, 2]),
            (&[0, 1, 3], &[0, 2]),
            (&[0, 1, 2], &[0, 3]),
            (&[0, 1], &[0]),
        ] {
            match Fitted::from_saved(&manifest, &tensors(indptr, items)) {
                Err(Error::Model { message, .. }) => assert!(message.contains("seen"), "{message}"),
                other => panic!("{indptr:?} {items:?}: {other:?}"),
            }
        }
    }
}
