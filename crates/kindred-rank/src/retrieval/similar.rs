//! "More like this": the entities most similar to one item or user, by three kinds of evidence.
//!
//! - Embeddings: nearest neighbours of a row of a model's item (or user) factor matrix, through
//!   [`VectorIndex`] (exact for small catalogs, HNSW for large ones).
//! - Co-occurrence: cosine of the binary "who interacted with it" vectors, shrunk by the number
//!   of co-occurrences as item-KNN does (`cos * co / (co + shrink)`), from a train set's CSR/CSC.
//! - Shared features: Jaccard or cosine of categorical feature sets (genres, brand, ...).
//!
//! Every function returns the `k` best others, best first, the entity itself excluded; ties go
//! to the lower index.

use kindred_core::topk::{top_k_of, Scored};
use kindred_core::{CsMatrix, Error, FitContext, Result};

use super::exact::ExactIndex;
use super::hnsw::{HnswIndex, HnswParams};
use super::metric::Metric;

/// Exact or approximate search over one embedding matrix.
#[derive(Debug)]
pub enum VectorIndex {
    Exact(ExactIndex),
    Hnsw(Box<HnswIndex>),
}

impl VectorIndex {
    /// Exact search.
    pub fn exact(metric: Metric, dim: usize, vectors: &[f32]) -> Result<Self> {
        Ok(VectorIndex::Exact(ExactIndex::new(metric, dim, vectors)?))
    }

    /// An HNSW index built with `ctx`'s threads, progress and cancel flag.
    pub fn hnsw(params: HnswParams, dim: usize, vectors: &[f32], ctx: &FitContext) -> Result<Self> {
        let index = HnswIndex::build(params, dim, vectors, ctx)?;
        Ok(VectorIndex::Hnsw(Box::new(index)))
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        match self {
            VectorIndex::Exact(x) => x.len(),
            VectorIndex::Hnsw(x) => x.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The `k` best rows for `query` that `accept` allows.
    pub fn search(
        &self,
        query: &[f32],
        k: usize,
        accept: &dyn Fn(u32) -> bool,
    ) -> Result<Vec<Scored>> {
        match self {
            VectorIndex::Exact(x) => x.search(query, k, |i| !accept(i)),
            VectorIndex::Hnsw(x) => x.search(query, k, None, accept),
        }
    }

    /// The `k` rows most similar to row `id`, itself excluded.
    pub fn similar_to(&self, id: u32, k: usize) -> Result<Vec<Scored>> {
        let query = match self {
            VectorIndex::Exact(x) => x.vector(id).map(<[f32]>::to_vec),
            VectorIndex::Hnsw(x) => x.vector(id).map(<[f32]>::to_vec),
        }
        .ok_or_else(|| {
            Error::InvalidInput(format!("no row {id} among {} embeddings", self.len()))
        })?;
        self.search(&query, k, &|other| other != id)
    }
}

/// The shrinkage the server, `kindred similar` and the Python package use unless told otherwise:
/// a similarity backed by 10 common users counts half.
pub const DEFAULT_COOCCURRENCE_SHRINK: f32 = 10.0;

/// The `k` entities that co-occur most with `of`, by shrunk cosine.
///
/// `rows` maps each entity to the others it co-occurs through (for items: the by-item CSC,
/// item -> users) and `cols` is its transpose (user -> items). Repeated interactions count once.
pub fn cooccurrence_similar(
    rows: &CsMatrix,
    cols: &CsMatrix,
    of: u32,
    k: usize,
    shrink: f32,
) -> Result<Vec<Scored>> {
    if of as usize >= rows.n_rows() {
        return Err(Error::InvalidInput(format!(
            "co-occurrence: no entity {of} among {}",
            rows.n_rows()
        )));
    }
    let distinct = |list: &[u32]| {
        list.iter()
            .enumerate()
            .filter(|(i, v)| *i == 0 || list[i - 1] != **v)
            .count()
    };
    let own = distinct(rows.row(of as usize));
    if own == 0 || k == 0 {
        return Ok(Vec::new());
    }
    let mut counts = vec![0u32; rows.n_rows()];
    let mut touched = Vec::new();
    let mut last_via = u32::MAX;
    for &via in rows.row(of as usize) {
        if via == last_via {
            continue;
        }
        last_via = via;
        let mut last_other = u32::MAX;
        for &other in cols.row(via as usize) {
            if other == last_other || other == of {
                continue;
            }
            last_other = other;
            if counts[other as usize] == 0 {
                touched.push(other);
            }
            counts[other as usize] += 1;
        }
    }
    let scored = touched.into_iter().map(|other| {
        let co = counts[other as usize] as f32;
        let theirs = distinct(rows.row(other as usize)) as f32;
        let cosine = co / (own as f32 * theirs).sqrt();
        let shrunk = if shrink > 0.0 {
            cosine * co / (co + shrink)
        } else {
            cosine
        };
        Scored {
            item: other,
            score: shrunk,
        }
    });
    Ok(top_k_of(scored, k, |_| false))
}

/// How two feature sets are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetSimilarity {
    /// `|A & B| / |A | B|`.
    Jaccard,
    /// `|A & B| / sqrt(|A| |B|)`.
    Cosine,
}

/// Categorical feature sets of every entity (sorted feature indices, as
/// [`kindred_core::FeatureTable::categorical_vectors`] returns them) with an inverted index.
#[derive(Debug, Clone)]
pub struct FeatureSets {
    sets: Vec<Vec<u32>>,
    /// For each feature, the entities that have it.
    holders: Vec<Vec<u32>>,
}

impl FeatureSets {
    pub fn new(mut sets: Vec<Vec<u32>>) -> Self {
        for set in &mut sets {
            set.sort_unstable();
            set.dedup();
        }
        let n_features = sets
            .iter()
            .flatten()
            .map(|&f| f as usize + 1)
            .max()
            .unwrap_or(0);
        let mut holders = vec![Vec::new(); n_features];
        for (entity, set) in sets.iter().enumerate() {
            for &f in set {
                holders[f as usize].push(entity as u32);
            }
        }
        Self { sets, holders }
    }

    pub fn len(&self) -> usize {
        self.sets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sets.is_empty()
    }

    /// The `k` entities whose feature sets are most like `of`'s (only entities sharing at least
    /// one feature are returned).
    pub fn similar(&self, of: u32, k: usize, measure: SetSimilarity) -> Result<Vec<Scored>> {
        let own = self.sets.get(of as usize).ok_or_else(|| {
            Error::InvalidInput(format!(
                "features: no entity {of} among {}",
                self.sets.len()
            ))
        })?;
        let mut shared = vec![0u32; self.sets.len()];
        let mut touched = Vec::new();
        for &f in own {
            for &other in &self.holders[f as usize] {
                if other == of {
                    continue;
                }
                if shared[other as usize] == 0 {
                    touched.push(other);
                }
                shared[other as usize] += 1;
            }
        }
        let a = own.len() as f32;
        let scored = touched.into_iter().map(|other| {
            let both = shared[other as usize] as f32;
            let b = self.sets[other as usize].len() as f32;
            let score = match measure {
                SetSimilarity::Jaccard => both / (a + b - both),
                SetSimilarity::Cosine => both / (a * b).sqrt(),
            };
            Scored { item: other, score }
        });
        Ok(top_k_of(scored, k, |_| false))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kindred_core::{Interaction, InteractionsBuilder, TrainSet};

    fn pairs(list: &[Scored]) -> Vec<(u32, f32)> {
        list.iter()
            .map(|s| (s.item, (s.score * 1e4).round() / 1e4))
            .collect()
    }

    #[test]
    fn cooccurrence_by_hand() {
        // Users u0..u3, items a b c d:
        // u0: a b      u1: a b c      u2: a c      u3: d (and a repeated b for u0)
        let mut b = InteractionsBuilder::new();
        for (u, i) in [
            ("u0", "a"),
            ("u0", "b"),
            ("u0", "b"),
            ("u1", "a"),
            ("u1", "b"),
            ("u1", "c"),
            ("u2", "a"),
            ("u2", "c"),
            ("u3", "d"),
        ] {
            b.push(Interaction::implicit(
                u,
                i,
                kindred_core::EventType::Click,
                None,
            ));
        }
        let train = TrainSet::new(b.build());
        let ids = train.data.item_ids().clone();
        let idx = |name: &str| ids.get(name).unwrap();
        // a: users {0,1,2}; b: {0,1}; c: {1,2}; d: {3}.
        // sim(a,b) = 2 / sqrt(3*2) = 0.8165; sim(a,c) = 0.8165; ties by index -> b first.
        let top = cooccurrence_similar(&train.by_item, &train.by_user, idx("a"), 5, 0.0).unwrap();
        assert_eq!(pairs(&top), vec![(idx("b"), 0.8165), (idx("c"), 0.8165)]);
        // sim(b,c) = 1 / sqrt(2*2) = 0.5; shrink 1: sim(b,a) = 0.8165 * 2/3 = 0.5443, (b,c) 0.5 * 1/2.
        let top = cooccurrence_similar(&train.by_item, &train.by_user, idx("b"), 5, 1.0).unwrap();
        assert_eq!(pairs(&top), vec![(idx("a"), 0.5443), (idx("c"), 0.25)]);
        assert!(
            cooccurrence_similar(&train.by_item, &train.by_user, idx("d"), 5, 0.0)
                .unwrap()
                .is_empty()
        );
        assert!(cooccurrence_similar(&train.by_item, &train.by_user, 99, 5, 0.0).is_err());
        // Users: u1 shares {a, b} with u0 (u0 has 2 items, u1 has 3): 2 / sqrt(6).
        let users = train.data.user_ids().clone();
        let top = cooccurrence_similar(
            &train.by_user,
            &train.by_item,
            users.get("u0").unwrap(),
            1,
            0.0,
        )
        .unwrap();
        assert_eq!(pairs(&top), vec![(users.get("u1").unwrap(), 0.8165)]);
    }

    #[test]
    fn feature_sets_by_hand() {
        // 0: {1, 2}  1: {1}  2: {2, 3, 4}  3: {}  4: {1, 2}
        let sets = FeatureSets::new(vec![
            vec![2, 1],
            vec![1],
            vec![2, 3, 4],
            vec![],
            vec![1, 2, 2],
        ]);
        let top = sets.similar(0, 10, SetSimilarity::Jaccard).unwrap();
        // 4: 2/2 = 1; 1: 1/2; 2: 1/4.
        assert_eq!(pairs(&top), vec![(4, 1.0), (1, 0.5), (2, 0.25)]);
        let top = sets.similar(0, 2, SetSimilarity::Cosine).unwrap();
        // 4: 1; 1: 1/sqrt(2) = 0.7071; 2: 1/sqrt(6) = 0.4082.
        let round4 = |x: f32| (x * 1e4).round() / 1e4;
        assert_eq!(
            pairs(&top),
            vec![(4, 1.0), (1, round4(std::f32::consts::FRAC_1_SQRT_2))]
        );
        assert!(sets
            .similar(3, 5, SetSimilarity::Jaccard)
            .unwrap()
            .is_empty());
        assert!(sets.similar(5, 5, SetSimilarity::Jaccard).is_err());
    }

    #[test]
    fn embeddings_exact_and_hnsw_agree_and_exclude_self() {
        let items = crate::retrieval::hnsw::tests::clustered(400, 6, 4, 3);
        let exact = VectorIndex::exact(Metric::Cosine, 6, &items).unwrap();
        let hnsw =
            VectorIndex::hnsw(HnswParams::default(), 6, &items, &FitContext::with_seed(1)).unwrap();
        let mut agree = 0;
        for id in 0..50u32 {
            let a = exact.similar_to(id, 5).unwrap();
            let b = hnsw.similar_to(id, 5).unwrap();
            assert!(a.iter().chain(&b).all(|s| s.item != id));
            agree += a
                .iter()
                .filter(|x| b.iter().any(|y| y.item == x.item))
                .count();
        }
        assert!(agree >= 240, "{agree} of 250");
        assert!(exact.similar_to(400, 5).is_err());
    }
}
