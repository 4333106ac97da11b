//! Content-based recommendation from item features alone: the model for items nobody has
//! interacted with yet.
//!
//! Each item's profile `p_i` is its encoded feature vector ([`crate::content::feature_space`]) scaled to
//! unit length. A user's profile is the weighted sum of the profiles of their history,
//! `u = sum_j c_j (p_j - m)`, where `c_j = w_j * 0.5^(age_j / half_life)` (`w_j` is 1, or the
//! summed implicit weight with `weighting=weight`; age counts interactions back from the latest)
//! and `m` is the mean profile of training interactions when `center=true`, so that a profile
//! says what a user likes *more than the average interaction does* instead of rediscovering
//! that most films are dramas. An item's score is `u . p_i`, the cosine of the two profiles up to
//! the factor `1/|u|`, which is the same for every item of one user and so does not change the
//! ranking. Interactions never shape item profiles, so items without any interaction are scored
//! like the rest; anonymous users are profiled from the query's history.

use std::path::Path;
use std::sync::OnceLock;

use kindred_core::text_encoder::TEXT_VECTOR_FIELD;
use kindred_core::{Error, FeatureTable, FitContext, ItemIdx, Result, TrainSet};
use serde::{Deserialize, Serialize};

use crate::common::histories::{recency_decay, Histories};
use crate::common::weighting::Weighting;
use crate::content::feature_space::{EncodeOptions, FeatureSpace, SparseRows, SparseVec};
use crate::content::text_vectors::TextSource;
use crate::family::{param_infos, Applicability, Cost, ModelFamily, ParamInfo, Saved, Task};
use crate::model::{Algorithm, Model, UserQuery};
use crate::params::ModelSpec;
use crate::persist::{Fitted, TensorReader, TensorWriter};

const SPACE_FILE: &str = "item_features.json";

/// Hyperparameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ContentParams {
    /// Half-life, in interactions, of a history item's weight in the user profile (the latest
    /// has age 0); 0 weighs the whole history equally.
    pub half_life: f64,
    /// Subtract the mean profile of training interactions from each history item's profile.
    pub center: bool,
    pub weighting: Weighting,
    /// Item feature columns to use, joined by `+` (e.g. `genres+year`); `None` uses all.
    pub columns: Option<String>,
    /// Quantile buckets per numeric column.
    pub buckets: usize,
    /// Text columns hash into `2^hash_bits` slots.
    pub hash_bits: u32,
    /// Text columns (joined by `+`) whose sentence-encoder vector becomes one more column
    /// ([`crate::content::text_vectors`]); needs `encoder`.
    pub text: Option<String>,
    /// Folder of the sentence-transformers model that encodes `text`.
    pub encoder: Option<String>,
}

impl Default for ContentParams {
    fn default() -> Self {
        Self {
            half_life: 0.0,
            center: true,
            weighting: Weighting::Binary,
            columns: None,
            buckets: 10,
            hash_bits: 18,
            text: None,
            encoder: None,
        }
    }
}

impl ContentParams {
    fn validate(&self) -> Result<(EncodeOptions, Option<TextSource>)> {
        if !(self.half_life.is_finite() && self.half_life >= 0.0) {
            return Err(Error::InvalidInput(format!(
                "content: half_life must be a non-negative number (0 = off), got {}",
                self.half_life
            )));
        }
        if matches!(self.weighting, Weighting::Bm25 | Weighting::Tfidf) {
            return Err(Error::InvalidInput(
                "content: weighting must be binary or weight (bm25/tfidf apply to itemknn only)"
                    .into(),
            ));
        }
        let options =
            EncodeOptions::from_params(self.columns.as_deref(), self.buckets, self.hash_bits)
                .map_err(|e| Error::InvalidInput(format!("content: {e}")))?;
        let text =
            TextSource::from_params("content", self.text.as_deref(), self.encoder.as_deref())?;
        Ok((options, text))
    }
}

/// The content-based algorithm.
#[derive(Debug, Clone, Default)]
pub struct Content {
    pub params: ContentParams,
}

impl Algorithm for Content {
    fn name(&self) -> &'static str {
        "content"
    }

    fn params(&self) -> serde_json::Value {
        serde_json::to_value(&self.params).unwrap_or_default()
    }

    fn fit(&self, data: &TrainSet, ctx: &FitContext) -> Result<Box<dyn Model>> {
        let (mut options, text) = self.params.validate()?;
        ctx.cancel.check()?;
        let table = data
            .item_features
            .as_deref()
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                Error::InvalidInput(
                    "content needs item features (e.g. MovieLens genres, or a feature file)".into(),
                )
            })?;
        let with_text;
        let table = match &text {
            Some(source) => {
                with_text = source.add_vectors(
                    "content",
                    table,
                    data.data.item_ids(),
                    ctx.progress.as_ref(),
                    &ctx.cancel,
                )?;
                if with_text.column(TEXT_VECTOR_FIELD).is_some() {
                    TextSource::select_vector_column(&mut options);
                }
                &with_text
            }
            None => table,
        };
        let space = FeatureSpace::fit(table, &options)?;
        let profiles = space.encode_all(table, data.data.item_ids());
        let histories = Histories::new(data, self.params.weighting, None);
        ctx.cancel.check()?;
        let mean = mean_profile(&profiles, &histories, space.dim());
        let mean_dot = mean_dots(&profiles, &mean);
        Ok(Box::new(ContentModel {
            params: self.params.clone(),
            space,
            profiles,
            mean_dot,
            mean: OnceLock::from(mean),
            histories,
            fitted: Fitted::from_train(data),
        }))
    }
}

/// `m`, the mean profile over training interactions (zero without interactions).
fn mean_profile(profiles: &SparseRows, histories: &Histories, dim: usize) -> Vec<f64> {
    let mut mean = vec![0f64; dim];
    let mut total = 0f64;
    for (&item, &w) in histories.items.iter().zip(&histories.weights) {
        let (idx, val) = profiles.row(item as usize);
        for (&i, &v) in idx.iter().zip(val) {
            mean[i as usize] += w as f64 * v as f64;
        }
        total += w as f64;
    }
    let scale = if total > 0.0 { 1.0 / total } else { 0.0 };
    mean.iter_mut().for_each(|m| *m *= scale);
    mean
}

/// `m . p_i` for every row of `profiles`.
fn mean_dots(profiles: &SparseRows, mean: &[f64]) -> Vec<f32> {
    (0..profiles.len())
        .map(|item| {
            let (idx, val) = profiles.row(item);
            let dot: f64 = idx
                .iter()
                .zip(val)
                .map(|(&i, &v)| mean[i as usize] * v as f64)
                .sum();
            dot as f32
        })
        .collect()
}

/// A fitted content-based model.
#[derive(Debug, Clone)]
pub struct ContentModel {
    pub params: ContentParams,
    space: FeatureSpace,
    /// Unit-length feature profile of every catalog item.
    profiles: SparseRows,
    /// Each item profile's dot product with the mean interaction profile.
    mean_dot: Vec<f32>,
    /// The mean interaction profile, kept (or computed once after loading) to score the items
    /// a serving catalog adds after training.
    mean: OnceLock<Vec<f64>>,
    histories: Histories,
    fitted: Fitted,
}

impl ContentModel {
    /// Loads a model saved by [`Model::save`].
    pub fn load(
        params: serde_json::Value,
        fitted: Fitted,
        tensors: &TensorReader,
        dir: &Path,
    ) -> Result<Self> {
        let params = serde_json::from_value(params)
            .map_err(|e| Error::InvalidInput(format!("content parameters: {e}")))?;
        let n_items = fitted.items.len();
        let histories = Histories::load(tensors, fitted.users.len(), n_items)?;
        Ok(Self {
            params,
            space: FeatureSpace::load(dir, SPACE_FILE)?,
            profiles: SparseRows::load("profile", tensors, n_items)?,
            mean_dot: tensors.f32_len("mean_dot", n_items)?,
            mean: OnceLock::new(),
            histories,
            fitted,
        })
    }

    /// The encoder of item features, e.g. to profile an item added after training.
    pub fn feature_space(&self) -> &FeatureSpace {
        &self.space
    }

    /// The user's (dense) profile and the total weight of its history.
    fn user_profile(&self, query: &UserQuery<'_>) -> (Vec<f32>, f32) {
        let mut profile = vec![0f32; self.space.dim()];
        let mut total = 0f32;
        let history = self.histories.recent_first(query);
        for (age, (item, w)) in history.into_iter().enumerate() {
            let c = w * recency_decay(age, self.params.half_life);
            let (idx, val) = self.profiles.row(item as usize);
            for (&i, &v) in idx.iter().zip(val) {
                profile[i as usize] += c * v;
            }
            total += c;
        }
        (profile, total)
    }

    fn score_item(&self, profile: &[f32], total: f32, item: ItemIdx) -> f32 {
        let (idx, val) = self.profiles.row(item as usize);
        let dot: f32 = idx
            .iter()
            .zip(val)
            .map(|(&i, &v)| profile[i as usize] * v)
            .sum();
        if self.params.center {
            dot - total * self.mean_dot.get(item as usize).copied().unwrap_or(0.0)
        } else {
            dot
        }
    }
}

impl Model for ContentModel {
    fn name(&self) -> &'static str {
        "content"
    }

    fn params(&self) -> serde_json::Value {
        serde_json::to_value(&self.params).unwrap_or_default()
    }

    fn fitted(&self) -> &Fitted {
        &self.fitted
    }

    fn score(&self, query: &UserQuery<'_>, items: &[ItemIdx], out: &mut [f32]) {
        let (profile, total) = self.user_profile(query);
        for (o, &i) in out.iter_mut().zip(items) {
            *o = self.score_item(&profile, total, i);
        }
    }

    fn with_new_items(&self, item_features: &FeatureTable) -> Option<Box<dyn Model>> {
        let known = &self.fitted.items;
        let new: Vec<(&str, SparseVec)> = item_features
            .ids()
            .externals()
            .iter()
            .filter(|id| known.get(id).is_none())
            .map(|id| (id.as_str(), self.space.encode_entity(item_features, id)))
            .filter(|(_, profile)| !profile.is_empty())
            .collect();
        if new.is_empty() {
            return None;
        }
        let mut profiles = self.profiles.clone();
        let mut mean_dot = self.mean_dot.clone();
        let added = SparseRows::from_vecs(new.iter().map(|(_, p)| p.clone()));
        let mean = self
            .mean
            .get_or_init(|| mean_profile(&self.profiles, &self.histories, self.space.dim()));
        mean_dot.extend(mean_dots(&added, mean));
        profiles.append(&added);
        Some(Box::new(ContentModel {
            params: self.params.clone(),
            space: self.space.clone(),
            profiles,
            mean_dot,
            mean: self.mean.clone(),
            histories: self.histories.clone(),
            fitted: self.fitted.with_items(new.iter().map(|(id, _)| *id)),
        }))
    }

    fn save(&self, dir: &Path) -> Result<()> {
        let mut t = TensorWriter::new();
        self.profiles.save("profile", &mut t);
        t.f32("mean_dot", &[self.mean_dot.len()], &self.mean_dot);
        self.histories.save_into(&mut t);
        self.fitted.save(dir, "content", Model::params(self), t)?;
        self.space.save(dir, SPACE_FILE)
    }
}

/// The `content` family's entry in the model registry.
pub struct ContentFamily;

impl ModelFamily for ContentFamily {
    fn name(&self) -> &'static str {
        "content"
    }

    fn task(&self) -> Task {
        Task::Ranking
    }

    fn summary(&self) -> &'static str {
        "content-based: user profile = (recency-weighted, centred) sum of the feature profiles of their items; scores any item with features, cold ones included"
    }

    fn params(&self) -> Vec<ParamInfo> {
        param_infos::<ContentParams>(&[
            ("half_life", Some("off"), "half-life in interactions of a history item's weight in the profile (the latest has age 0)"),
            ("center", None, "subtract the mean profile of training interactions from each history item's profile"),
            ("weighting", None, "binary (each user-item pair counts once) | weight (sum of implicit weights)"),
            ("columns", Some("all"), "item feature columns to use, joined by + (e.g. genres+year)"),
            ("buckets", None, "quantile buckets per numeric feature column"),
            ("hash_bits", None, "text features hash word unigrams and bigrams into 2^hash_bits slots (TF-IDF)"),
            ("text", Some("none"), "text columns joined by + (e.g. title+description) whose sentence-encoder vector is added as the column text_embedding; needs encoder"),
            ("encoder", Some("none"), "folder of a sentence-transformers model (e.g. all-MiniLM-L6-v2) that encodes text"),
        ])
    }

    fn build(&self, spec: &ModelSpec) -> Result<Box<dyn Algorithm>> {
        Ok(Box::new(Content {
            params: spec.typed()?,
        }))
    }

    fn load(&self, saved: Saved<'_>) -> Result<Box<dyn Model>> {
        Ok(Box::new(ContentModel::load(
            saved.params,
            saved.fitted,
            saved.tensors,
            saved.dir,
        )?))
    }

    fn applicability(&self) -> Applicability {
        Applicability {
            needs_features: true,
            ..Applicability::default()
        }
    }

    fn cost(&self) -> Cost {
        Cost::Low
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    use std::sync::Arc;

    use kindred_core::{FeatureTable, Protocol, TrainSet};

    use crate::model::{Model, UserQuery};

    /// Each evaluated user with their relevant test items (sorted).
    pub type Relevant = Vec<(u32, Vec<u32>)>;

    /// A synthetic dataset with genres split by `protocol`: the training set (with item features
    /// attached), each evaluated user's relevant test items, and the candidates (cold items).
    pub fn split(spec: &str, protocol: &str) -> (TrainSet, Relevant, Option<Vec<u32>>) {
        use kindred_data::synthetic::{generate, SyntheticConfig};
        let dataset = generate(&SyntheticConfig::parse(spec).unwrap())
            .unwrap()
            .dataset;
        let protocol = Protocol::parse(protocol).unwrap();
        let prepared = protocol.prepare(&dataset.interactions);
        let split = protocol.splits(&prepared).unwrap().remove(0);
        let train = TrainSet::new(prepared.subset(&split.train))
            .with_features(dataset.item_features.clone().map(|t| Arc::clone(&t)), None);
        let mut relevant = vec![Vec::new(); prepared.n_users()];
        for &r in &split.test {
            let (u, i) = (prepared.users()[r as usize], prepared.items()[r as usize]);
            if !train.by_user.contains(u as usize, i) {
                relevant[u as usize].push(i);
            }
        }
        let tests = relevant
            .into_iter()
            .enumerate()
            .filter(|(_, r)| !r.is_empty())
            .map(|(u, mut r)| {
                r.sort_unstable();
                r.dedup();
                (u as u32, r)
            })
            .collect();
        (train, tests, split.candidates)
    }

    /// `table` with one more entity, `new_id`, whose features are those of `from`'s row.
    pub fn with_copy(table: &FeatureTable, from: &str, new_id: &str) -> FeatureTable {
        use kindred_core::features::{ColumnData, FeatureValue};
        let mut out = table.clone();
        let row = table.ids().get(from).expect("a known entity") as usize;
        for column in table.columns() {
            let value = match &column.data {
                ColumnData::Categorical { vocab, values } => FeatureValue::Categories(
                    values[row]
                        .iter()
                        .map(|&v| vocab.external(v).to_owned())
                        .collect(),
                ),
                ColumnData::Numeric(values) => FeatureValue::Number(values[row]),
                ColumnData::Text(values) => FeatureValue::Text(values[row].clone()),
                ColumnData::Dense { values, .. } => match &values[row] {
                    Some(v) => FeatureValue::Vector(v.clone()),
                    None => continue,
                },
            };
            out.set(new_id, &column.name, value).expect("same kinds");
        }
        out
    }

    /// Mean recall@10 over users, ranking `candidates` (or all items) minus training items.
    pub fn recall_at_10(
        model: &dyn Model,
        train: &TrainSet,
        tests: &[(u32, Vec<u32>)],
        candidates: Option<&[u32]>,
    ) -> f64 {
        let n = train.n_items();
        let mut allowed = vec![candidates.is_none(); n];
        for &i in candidates.unwrap_or(&[]) {
            allowed[i as usize] = true;
        }
        let mut total = 0.0;
        for (u, relevant) in tests {
            let mut scores = vec![0f32; n];
            model.score_all(&UserQuery::known(*u), &mut scores);
            for i in 0..n {
                if !allowed[i] || train.by_user.contains(*u as usize, i as u32) {
                    scores[i] = f32::NAN;
                }
            }
            let top = kindred_core::top_k(&scores, 10, |_| false);
            let hits = top
                .iter()
                .filter(|s| relevant.binary_search(&s.item).is_ok())
                .count();
            total += hits as f64 / relevant.len() as f64;
        }
        total / tests.len().max(1) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::*;
    use super::*;
    use crate::simple::popularity::Popularity;
    use crate::simple::random::Random;

    const DATA: &str = "users=400,items=300,per_user=40,seed=5";

    #[test]
    fn beats_popularity_and_random_on_cold_items() {
        let (train, tests, cold) = split(DATA, "coldstart-items:0.2,positive>=4");
        let cold = cold.unwrap();
        assert!(cold
            .iter()
            .all(|&i| train.by_item.row(i as usize).is_empty()));
        let ctx = FitContext::default();
        let content = Content::default().fit(&train, &ctx).unwrap();
        let popularity = Popularity::default().fit(&train, &ctx).unwrap();
        let random = Random::default().fit(&train, &ctx).unwrap();
        let r = |m: &dyn Model| recall_at_10(m, &train, &tests, Some(&cold));
        let (c, p, rnd) = (
            r(content.as_ref()),
            r(popularity.as_ref()),
            r(random.as_ref()),
        );
        assert!(
            c > 1.2 * p.max(rnd),
            "content {c}, popularity {p}, random {rnd}"
        );
    }

    #[test]
    fn anonymous_history_profiles_like_a_known_user_and_centering_matters() {
        let (train, _, _) = split(DATA, "temporal:0.2,positive>=4");
        let ctx = FitContext::default();
        let model = Content::default().fit(&train, &ctx).unwrap();
        let n = train.n_items();
        // User 3's training items in chronological order, as an anonymous query.
        let history = Histories::new(&train, Weighting::Binary, None)
            .of(3)
            .0
            .to_vec();
        let (mut known, mut anonymous) = (vec![0f32; n], vec![0f32; n]);
        model.score_all(&UserQuery::known(3), &mut known);
        model.score_all(&UserQuery::anonymous(&history), &mut anonymous);
        assert_eq!(known, anonymous);
        let plain = Content {
            params: ContentParams {
                center: false,
                ..ContentParams::default()
            },
        }
        .fit(&train, &ctx)
        .unwrap();
        let mut uncentred = vec![0f32; n];
        plain.score_all(&UserQuery::known(3), &mut uncentred);
        assert_ne!(known, uncentred);
    }

    #[test]
    fn an_item_added_after_training_is_scored_like_one_with_its_features() {
        let (train, _, _) = split(DATA, "temporal:0.2,positive>=4");
        let model = Content::default()
            .fit(&train, &FitContext::default())
            .unwrap();
        let table = train.item_features.as_deref().unwrap();
        assert!(model.with_new_items(table).is_none(), "nothing new");
        let twin = train.data.item_ids().external(7).to_owned();
        let mut grown = with_copy(table, &twin, "brand-new");
        // An entity without any feature cannot be scored, so it stays out.
        grown.entity("featureless");
        let extended = model.with_new_items(&grown).expect("one new item");
        let n = train.n_items();
        assert_eq!(extended.fitted().items.len(), n + 1);
        assert_eq!(extended.fitted().items.get("brand-new"), Some(n as u32));
        assert!(!extended.fitted().knows_item(n as u32));
        for query in [UserQuery::known(3), UserQuery::anonymous(&[1, 2, 5])] {
            let (mut before, mut after) = (vec![0f32; n], vec![0f32; n + 1]);
            model.score_all(&query, &mut before);
            extended.score_all(&query, &mut after);
            assert_eq!(before[..], after[..n]);
            assert!(
                (after[n] - after[7]).abs() < 1e-6,
                "{} {}",
                after[n],
                after[7]
            );
        }
        // A saved and reloaded model (which recomputes its mean profile) grows the same way.
        let dir = std::env::temp_dir().join(format!("kindred-content-grow-{}", std::process::id()));
        model.save(&dir).unwrap();
        let loaded = crate::registry::load_model(&dir).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        let regrown = loaded.with_new_items(&grown).expect("one new item");
        let (mut a, mut b) = (vec![0f32; n + 1], vec![0f32; n + 1]);
        extended.score_all(&UserQuery::known(3), &mut a);
        regrown.score_all(&UserQuery::known(3), &mut b);
        assert_eq!(a, b);
    }

    #[test]
    fn rejects_bad_params_and_missing_features() {
        let (train, _, _) = split("users=30,items=20,seed=1", "temporal:0.2");
        let ctx = FitContext::default();
        let bad = |params: ContentParams| {
            Content { params }
                .fit(&train, &ctx)
                .err()
                .unwrap()
                .to_string()
        };
        let err = bad(ContentParams {
            half_life: -1.0,
            ..ContentParams::default()
        });
        assert!(err.contains("half_life"), "{err}");
        let err = bad(ContentParams {
            columns: Some("colour".into()),
            ..ContentParams::default()
        });
        assert!(err.contains("colour"), "{err}");
        let bare = TrainSet::new(train.data.clone());
        let err = Content::default()
            .fit(&bare, &ctx)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("item features"), "{err}");
    }
}
