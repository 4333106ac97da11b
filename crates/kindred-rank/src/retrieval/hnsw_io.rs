//! One-file persistence of an [`HnswIndex`]: a versioned little-endian header, then the arrays.
//!
//! Layout (all integers little-endian):
//! ```text
//! magic    8 bytes  "KNDHNSW\0"
//! version  u32      1
//! metric   u8       0 inner product, 1 cosine, 2 l2
//! flag     u8       1 when inner product uses the augmentation reduction
//! pad      2 bytes
//! dim, stored_dim, m, ef_construction, ef_search: u32 each
//! seed     u64
//! max_norm f32
//! n        u64      nodes, deleted ones included
//! entry    u32      entry node (u32::MAX when empty), then entry level u32
//! levels   n x u8
//! deleted  n x u8   (0 or 1)
//! vectors  n x stored_dim x f32
//! layer 0  n x (2m + 1) x u32   count, then ids
//! upper    for each node, level x (m + 1) x u32
//! ```
//! Loading checks every count, id and level, so a damaged file is an error naming it, never a
//! panic or an index that crashes later.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;

use kindred_core::{Error, Result};

use super::hnsw::{Entry, HnswIndex, HnswParams, MAX_LEVEL, NONE};
use super::metric::Metric;

const MAGIC: &[u8; 8] = b"KNDHNSW\0";
const VERSION: u32 = 1;

impl HnswIndex {
    /// Writes the index to `path` (replaced if it exists).
    pub fn save(&self, path: &Path) -> Result<()> {
        let io = |e| Error::io(path, e);
        let file = File::create(path).map_err(io)?;
        let mut w = BufWriter::new(file);
        let p = &self.params;
        let entry = self.entry();
        let mut header = Vec::with_capacity(64);
        header.extend_from_slice(MAGIC);
        header.extend_from_slice(&VERSION.to_le_bytes());
        header.extend_from_slice(&[p.metric.code(), p.ip_reduction as u8, 0, 0]);
        for v in [
            self.dim,
            self.stored_dim,
            p.m,
            p.ef_construction,
            p.ef_search,
        ] {
            header.extend_from_slice(&(v as u32).to_le_bytes());
        }
        header.extend_from_slice(&p.seed.to_le_bytes());
        header.extend_from_slice(&self.max_norm.to_le_bytes());
        header.extend_from_slice(&(self.len() as u64).to_le_bytes());
        header.extend_from_slice(&entry.node.to_le_bytes());
        header.extend_from_slice(&(entry.level as u32).to_le_bytes());
        w.write_all(&header).map_err(io)?;
        w.write_all(&self.levels).map_err(io)?;
        let deleted: Vec<u8> = self.deleted.iter().map(|&d| d as u8).collect();
        w.write_all(&deleted).map_err(io)?;
        for chunk in self.vectors.chunks(1 << 16) {
            let bytes: Vec<u8> = chunk.iter().flat_map(|x| x.to_le_bytes()).collect();
            w.write_all(&bytes).map_err(io)?;
        }
        let slots = self
            .layer0
            .iter()
            .chain(self.upper.iter().flat_map(|b| b.iter()));
        let mut buf = Vec::with_capacity(1 << 18);
        for slot in slots {
            buf.extend_from_slice(&slot.load(Ordering::Relaxed).to_le_bytes());
            if buf.len() >= 1 << 18 {
                w.write_all(&buf).map_err(io)?;
                buf.clear();
            }
        }
        w.write_all(&buf).map_err(io)?;
        w.flush().map_err(io)
    }

    /// Reads an index written by [`Self::save`].
    pub fn load(path: &Path) -> Result<Self> {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let mut r = Reader {
            inner: BufReader::new(file),
            path,
        };
        let bad = |message: String| Error::BadFile {
            file: path.to_path_buf(),
            message,
        };
        let magic = r.bytes(8, "magic")?;
        if magic != MAGIC {
            return Err(bad("not a Kindred HNSW index (wrong magic bytes)".into()));
        }
        let version = r.u32("version")?;
        if version != VERSION {
            return Err(bad(format!(
                "HNSW index format version {version}; this build reads version {VERSION}"
            )));
        }
        let metric_bytes = r.bytes(4, "metric")?;
        let metric_code = metric_bytes[0];
        if metric_bytes[1] > 1 {
            return Err(bad(format!(
                "invalid ip_reduction flag {}",
                metric_bytes[1]
            )));
        }
        let ip_reduction = metric_bytes[1] == 1;
        let metric = Metric::from_code(metric_code)
            .ok_or_else(|| bad(format!("unknown metric code {metric_code}")))?;
        let dim = r.u32("dim")? as usize;
        let stored_dim = r.u32("stored_dim")? as usize;
        let m = r.u32("m")? as usize;
        let ef_construction = r.u32("ef_construction")? as usize;
        let ef_search = r.u32("ef_search")? as usize;
        let seed = r.u64("seed")?;
        let max_norm = f32::from_le_bytes(r.array("max_norm")?);
        let n = r.u64("n")?;
        let entry_node = r.u32("entry")?;
        let entry_level = r.u32("entry level")? as usize;
        let params = HnswParams {
            metric,
            m,
            ef_construction,
            ef_search,
            seed,
            ip_reduction,
        };
        let mut index = HnswIndex::new(params, dim).map_err(|e| bad(format!("header: {e}")))?;
        if stored_dim != index.stored_dim {
            return Err(bad(format!(
                "stored dimension {stored_dim} does not match dim {dim}"
            )));
        }
        if n >= NONE as u64 {
            return Err(bad(format!("{n} nodes is more than an index can hold")));
        }
        // Bound allocations by the file size before trusting n.
        let file_len = r
            .inner
            .get_ref()
            .metadata()
            .map_err(|e| Error::io(path, e))?
            .len();
        if n.saturating_mul(stored_dim as u64 * 4 + 2) > file_len {
            return Err(bad(format!(
                "truncated: {n} nodes of dimension {dim} do not fit in {file_len} bytes"
            )));
        }
        let n = n as usize;
        index.max_norm = max_norm;
        let levels = r.bytes(n, "levels")?;
        if let Some(pos) = levels.iter().position(|&l| l as usize > MAX_LEVEL) {
            return Err(bad(format!(
                "node {pos}: level {} above {MAX_LEVEL}",
                levels[pos]
            )));
        }
        let deleted = r.bytes(n, "deleted flags")?;
        if deleted.iter().any(|&d| d > 1) {
            return Err(bad("deleted flags must be 0 or 1".into()));
        }
        let vector_bytes = r.bytes(n * stored_dim * 4, "vectors")?;
        index.vectors = vector_bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        let m0 = params.m0();
        let layer0 = r.u32s(n * (m0 + 1), "layer-0 links")?;
        index.layer0 = layer0.into_iter().map(AtomicU32::new).collect();
        index.upper = Vec::with_capacity(n);
        for &level in &levels {
            let slots = r.u32s(level as usize * (m + 1), "upper-layer links")?;
            index.upper.push(
                slots
                    .into_iter()
                    .map(AtomicU32::new)
                    .collect::<Vec<_>>()
                    .into_boxed_slice(),
            );
        }
        let mut probe = [0u8; 1];
        if r.inner.read(&mut probe).map_err(|e| Error::io(path, e))? != 0 {
            return Err(bad("trailing bytes after the last list".into()));
        }
        index.n_deleted = deleted.iter().filter(|&&d| d == 1).count();
        index.deleted = deleted.into_iter().map(|d| d == 1).collect();
        index.levels = levels;
        index.locks = (0..n).map(|_| Mutex::new(())).collect();
        // Every list: count within capacity, ids within range and present on that layer.
        let mut links = Vec::new();
        for id in 0..n as u32 {
            for level in 0..=index.levels[id as usize] as usize {
                let slots = index.slots(id, level);
                let count = slots[0].load(Ordering::Relaxed) as usize;
                if count > slots.len() - 1 {
                    return Err(bad(format!(
                        "node {id} layer {level}: {count} links over capacity"
                    )));
                }
                index.read_links(id, level, &mut links);
                if let Some(&v) = links
                    .iter()
                    .find(|&&v| v as usize >= n || (index.levels[v as usize] as usize) < level)
                {
                    return Err(bad(format!("node {id} layer {level}: invalid link {v}")));
                }
            }
        }
        if entry_node == NONE {
            // Only an empty graph (or one whose nodes were all deleted) has no entry point.
            if index.live_len() > 0 {
                return Err(bad("no entry point in a non-empty index".into()));
            }
        } else if entry_node as usize >= n
            || index.levels[entry_node as usize] as usize != entry_level
        {
            return Err(bad(format!(
                "invalid entry point {entry_node} at level {entry_level}"
            )));
        }
        *index.entry.lock().unwrap_or_else(|p| p.into_inner()) = Entry {
            node: entry_node,
            level: entry_level,
        };
        Ok(index)
    }
}

/// Reads fields, turning a short read into "truncated while reading FIELD".
struct Reader<'a> {
    inner: BufReader<File>,
    path: &'a Path,
}

impl Reader<'_> {
    fn bytes(&mut self, len: usize, field: &str) -> Result<Vec<u8>> {
        let mut out = vec![0u8; len];
        self.inner.read_exact(&mut out).map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                Error::BadFile {
                    file: self.path.to_path_buf(),
                    message: format!("truncated while reading {field}"),
                }
            } else {
                Error::io(self.path, e)
            }
        })?;
        Ok(out)
    }

    fn array<const N: usize>(&mut self, field: &str) -> Result<[u8; N]> {
        let bytes = self.bytes(N, field)?;
        let mut out = [0u8; N];
        out.copy_from_slice(&bytes);
        Ok(out)
    }

    fn u32(&mut self, field: &str) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array(field)?))
    }

    fn u64(&mut self, field: &str) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array(field)?))
    }

    fn u32s(&mut self, count: usize, field: &str) -> Result<Vec<u32>> {
        let bytes = self.bytes(count * 4, field)?;
        Ok(bytes
            .chunks_exact(4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::retrieval::hnsw::tests::clustered;
    use kindred_core::FitContext;

    /// A scratch directory (removed when dropped) and the index file's path in it.
    fn temp(name: &str) -> (kindred_testkit::TestDir, std::path::PathBuf) {
        let dir = kindred_testkit::TestDir::new(&format!("hnsw-{name}"));
        let path = dir.join("index.hnsw");
        (dir, path)
    }

    #[test]
    fn save_load_round_trip_gives_identical_results() {
        let dim = 10;
        let items = clustered(1500, dim, 8, 11);
        let cases = [
            (Metric::InnerProduct, false),
            (Metric::InnerProduct, true),
            (Metric::Cosine, false),
            (Metric::L2, false),
        ];
        for (metric, ip_reduction) in cases {
            let params = HnswParams {
                metric,
                ip_reduction,
                ..HnswParams::default()
            };
            let mut index =
                HnswIndex::build(params, dim, &items, &FitContext::with_seed(1)).unwrap();
            index.delete(3).unwrap();
            let (_dir, path) = temp(&format!("{metric:?}-{ip_reduction}"));
            index.save(&path).unwrap();
            let mut loaded = HnswIndex::load(&path).unwrap();
            assert_eq!(loaded.len(), index.len());
            assert_eq!(loaded.live_len(), index.live_len());
            assert_eq!(loaded.params(), index.params());
            for q in items.chunks_exact(dim).take(50) {
                assert_eq!(
                    loaded.search(q, 10, None, &|_| true).unwrap(),
                    index.search(q, 10, None, &|_| true).unwrap()
                );
            }
            // A loaded index keeps growing.
            let id = loaded.insert(&items[..dim]).unwrap();
            assert_eq!(id as usize, index.len());
            std::fs::remove_file(&path).unwrap();
        }
    }

    #[test]
    fn damaged_files_are_errors_naming_the_file() {
        let dim = 4;
        let items = clustered(300, dim, 3, 12);
        let index = HnswIndex::build(
            HnswParams::default(),
            dim,
            &items,
            &FitContext::with_seed(1),
        )
        .unwrap();
        let (_dir, path) = temp("damaged");
        index.save(&path).unwrap();
        let good = std::fs::read(&path).unwrap();
        let expect_err = |bytes: &[u8], needle: &str| {
            std::fs::write(&path, bytes).unwrap();
            let err = HnswIndex::load(&path).unwrap_err().to_string();
            assert!(err.contains(&path.display().to_string()), "{err}");
            assert!(err.contains(needle), "{err}");
        };
        let mut wrong_magic = good.clone();
        wrong_magic[0] = b'X';
        expect_err(&wrong_magic, "magic");
        let mut wrong_version = good.clone();
        wrong_version[8] = 9;
        expect_err(&wrong_version, "version 9");
        for cut in [0, 5, 30, 60, 200, good.len() / 2, good.len() - 1] {
            expect_err(&good[..cut], "truncated");
        }
        let mut trailing = good.clone();
        trailing.push(0);
        expect_err(&trailing, "trailing");
        // A link pointing past the end: the first layer-0 id of node 0.
        let n = 300usize;
        let layer0_start = 64 + 2 * n + n * dim * 4;
        let mut bad_link = good.clone();
        bad_link[layer0_start + 4..layer0_start + 8].copy_from_slice(&(n as u32 + 7).to_le_bytes());
        expect_err(&bad_link, "invalid link");
        // Random corruption anywhere never panics.
        let mut rng = kindred_core::SplitMix64::new(5);
        for _ in 0..200 {
            let mut bytes = good.clone();
            let pos = rng.below(bytes.len() as u64) as usize;
            bytes[pos] ^= 1 << rng.below(8);
            std::fs::write(&path, &bytes).unwrap();
            let _ = HnswIndex::load(&path);
        }
        assert!(HnswIndex::load(&path.with_extension("missing")).is_err());
        std::fs::remove_file(&path).unwrap();
    }
}
