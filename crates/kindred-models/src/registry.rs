//! The model registry: the list of model families, each described once by its
//! [`ModelFamily`]. Specs and presets resolve to algorithms through it, `kindred models` lists
//! it, `kindred tune` reads its search spaces, and saved models load back by the family their
//! manifest names.
//!
//! The registry is open: [`ModelRegistry::builtin`] lists Kindred's families, and
//! [`ModelRegistry::register`] adds another at run time. The free functions
//! ([`build_algorithm`], [`load_model`], [`model_catalog`], ...) read the built-in registry.

use std::path::Path;
use std::sync::OnceLock;

use kindred_core::{Error, Result};

use crate::family::{ModelFamily, ModelInfo, Saved};
use crate::model::{Algorithm, Model};
use crate::params::ModelSpec;
use crate::persist::{Fitted, Manifest, TensorReader};
use crate::space::Space;
use crate::{content, implicit, neighbours, neural, rating, simple};

/// Presets: names for fixed configurations, each named for the data it was chosen on (a fixed
/// configuration does not transfer to other data; the `auto` spec chooses on the user's). They
/// are resolved to a concrete spec before fitting, so results always record what actually ran.
const PRESETS: &[(&str, &str)] = &[
    ("movielens-rating", "bpmf"),
    (
        "movielens-ranking",
        "itemknn:neighbors=200,half_life=2,weighting=tfidf",
    ),
];

/// Former preset names and what they became: they promised "best" for a configuration chosen
/// on MovieLens, which fell below popularity on sparser data.
const RENAMED_PRESETS: &[(&str, &str)] = &[
    ("rating-best", "movielens-rating"),
    ("ranking-best", "movielens-ranking"),
];

/// The registry the free functions read: the built-in one unless a binary installed another.
static GLOBAL: OnceLock<ModelRegistry> = OnceLock::new();

/// Model families by name, in the order `kindred models` lists them.
pub struct ModelRegistry {
    families: Vec<Box<dyn ModelFamily>>,
}

impl ModelRegistry {
    /// A registry without families.
    pub fn empty() -> Self {
        Self {
            families: Vec::new(),
        }
    }

    /// Every family Kindred ships, one line each.
    pub fn builtin() -> Self {
        let mut registry = Self::empty();
        registry.add(Box::new(simple::random::RandomFamily));
        registry.add(Box::new(simple::popularity::PopularityFamily));
        registry.add(Box::new(rating::baseline::BaselineFamily));
        registry.add(Box::new(neighbours::itemknn::ItemKnnFamily));
        registry.add(Box::new(rating::svd::SvdFamily));
        registry.add(Box::new(rating::svdpp::SvdppFamily));
        registry.add(Box::new(neighbours::knn::KnnFamily));
        registry.add(Box::new(rating::slopeone::SlopeOneFamily));
        registry.add(Box::new(rating::coclustering::CoClusteringFamily));
        registry.add(Box::new(rating::nmf::NmfFamily));
        registry.add(Box::new(rating::bpmf::BpmfFamily));
        registry.add(Box::new(implicit::bpr::BprFamily));
        registry.add(Box::new(neural::ncf::NcfFamily));
        registry.add(Box::new(implicit::als::AlsFamily));
        registry.add(Box::new(implicit::ease::EaseFamily));
        registry.add(Box::new(implicit::slim::SlimFamily));
        registry.add(Box::new(content::content_based::ContentFamily));
        registry.add(Box::new(content::hybrid::HybridFamily));
        registry
    }

    /// The registry the free functions read: the built-in one, built once, unless a binary
    /// installed another first ([`Self::install_global`]).
    pub fn global() -> &'static ModelRegistry {
        GLOBAL.get_or_init(Self::builtin)
    }

    /// Makes `registry` the one the free functions read (e.g. the built-in families plus those
    /// of a crate the binary links, such as the neural ones). Call once at startup, before any
    /// spec is built; an error once the registry is in use.
    pub fn install_global(registry: ModelRegistry) -> Result<()> {
        GLOBAL.set(registry).map_err(|_| {
            Error::InvalidInput(
                "the model registry is already in use; install it before building any model".into(),
            )
        })
    }

    fn add(&mut self, family: Box<dyn ModelFamily>) {
        self.families.push(family);
    }

    /// Adds a family; its name must be new (and not a preset's).
    pub fn register(&mut self, family: impl ModelFamily + 'static) -> Result<&mut Self> {
        let name = family.name();
        if self.get(name).is_some() {
            return Err(Error::InvalidInput(format!(
                "model family `{name}` is already registered"
            )));
        }
        if PRESETS.iter().any(|(preset, _)| *preset == name) {
            return Err(Error::InvalidInput(format!(
                "model family `{name}` would hide the preset of that name"
            )));
        }
        self.add(Box::new(family));
        Ok(self)
    }

    /// The registered families, in registration order.
    pub fn families(&self) -> impl Iterator<Item = &dyn ModelFamily> {
        self.families.iter().map(|f| f.as_ref())
    }

    /// The family called `name`.
    pub fn get(&self, name: &str) -> Option<&dyn ModelFamily> {
        self.families().find(|f| f.name() == name)
    }

    /// Builds the algorithm a spec (or preset) names.
    pub fn build(&self, spec: &str) -> Result<Box<dyn Algorithm>> {
        let spec = ModelSpec::parse(resolve_preset(spec))?;
        match self.get(&spec.name) {
            Some(family) => family.build(&spec),
            None => {
                if let Some((old, new)) = RENAMED_PRESETS.iter().find(|(old, _)| *old == spec.name)
                {
                    return Err(Error::spec(
                        "model",
                        spec.to_string(),
                        format!(
                            "the preset `{old}` is now `{new}`: it was chosen on MovieLens and is not the best on other data; use `auto` to choose on yours, or `{new}` for the same fixed configuration"
                        ),
                    ));
                }
                let known: Vec<&str> = self.families().map(|f| f.name()).collect();
                let presets: Vec<&str> = PRESETS.iter().map(|(name, _)| *name).collect();
                // `auto` is built one level up (it evaluates), but a user types it here too.
                let hint = kindred_core::suggest::did_you_mean(
                    &spec.name,
                    std::iter::once("auto").chain(known.iter().chain(&presets).copied()),
                );
                Err(Error::spec(
                    "model",
                    spec.to_string(),
                    format!(
                        "unknown model `{}`{hint}; known: auto (chooses and tunes one on your data), {}, presets: {}",
                        spec.name,
                        known.join(", "),
                        presets.join(", ")
                    ),
                ))
            }
        }
    }

    /// Loads a model saved with [`Model::save`] by the family its manifest names.
    pub fn load(&self, dir: &Path) -> Result<Box<dyn Model>> {
        let (manifest, fitted, tensors): (_, Fitted, _) = Fitted::load(dir)?;
        self.load_fitted(dir, &manifest, fitted, &tensors)
    }

    /// Loads a model from its manifest and tensors, already read (what [`Self::load`] does
    /// after reading `dir`); `dir` is where families with side files look for them.
    pub fn load_saved(
        &self,
        dir: &Path,
        manifest: &Manifest,
        tensors: &TensorReader,
    ) -> Result<Box<dyn Model>> {
        let fitted = Fitted::from_saved(manifest, tensors)?;
        self.load_fitted(dir, manifest, fitted, tensors)
    }

    fn load_fitted(
        &self,
        dir: &Path,
        manifest: &Manifest,
        fitted: Fitted,
        tensors: &TensorReader,
    ) -> Result<Box<dyn Model>> {
        let family = self.get(&manifest.algorithm).ok_or_else(|| Error::Model {
            path: dir.to_owned(),
            message: format!("unknown algorithm `{}` in manifest", manifest.algorithm),
        })?;
        family.load(Saved {
            params: manifest.params.clone(),
            fitted,
            tensors,
            dir,
        })
    }

    /// Every family with its parameters and defaults.
    pub fn catalog(&self) -> Vec<ModelInfo> {
        self.families().map(|f| f.info()).collect()
    }

    /// Families that have a search space, in registration order.
    pub fn families_with_space(&self) -> Vec<&'static str> {
        self.families()
            .filter(|f| f.search_space().is_some())
            .map(|f| f.name())
            .collect()
    }

    /// The search space of a family; an error lists the families that have one.
    pub fn space(&self, family: &str) -> Result<Space> {
        let family = family.trim();
        self.get(family)
            .and_then(|f| f.search_space())
            .ok_or_else(|| {
                let tunable = self.families_with_space();
                let what = if self.get(family).is_some() {
                    "no search space for this family".to_owned()
                } else {
                    let hint = kindred_core::suggest::did_you_mean(
                        family,
                        std::iter::once("auto").chain(tunable.iter().copied()),
                    );
                    format!("unknown model family{hint}")
                };
                Error::spec(
                    "tuned model family",
                    family,
                    format!("{what}; families with one: {}, or auto", tunable.join(", ")),
                )
            })
    }
}

/// Resolves a preset name to its spec; other specs are returned unchanged.
pub fn resolve_preset(spec: &str) -> &str {
    PRESETS
        .iter()
        .find(|(name, _)| *name == spec.trim())
        .map_or(spec, |(_, resolved)| resolved)
}

/// The presets and what they currently resolve to.
pub fn presets() -> &'static [(&'static str, &'static str)] {
    PRESETS
}

/// Builds the algorithm a spec (or preset) names, from the built-in families.
pub fn build_algorithm(spec: &str) -> Result<Box<dyn Algorithm>> {
    ModelRegistry::global().build(spec)
}

/// Every built-in family with its parameters and defaults.
pub fn model_catalog() -> Vec<ModelInfo> {
    ModelRegistry::global().catalog()
}

/// Loads a model saved with [`Model::save`] by a built-in family.
pub fn load_model(dir: &Path) -> Result<Box<dyn Model>> {
    ModelRegistry::global().load(dir)
}

/// The search space of a built-in family.
pub fn space_for(family: &str) -> Result<Space> {
    ModelRegistry::global().space(family)
}

/// Built-in families that have a search space.
pub fn families_with_space() -> Vec<&'static str> {
    ModelRegistry::global().families_with_space()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::family::{ParamInfo, Task};
    use crate::simple::random::RandomFamily;

    /// Random under another name.
    struct Renamed(&'static str);

    impl ModelFamily for Renamed {
        fn name(&self) -> &'static str {
            self.0
        }
        fn task(&self) -> Task {
            Task::Both
        }
        fn summary(&self) -> &'static str {
            "random, renamed"
        }
        fn params(&self) -> Vec<ParamInfo> {
            Vec::new()
        }
        fn build(&self, spec: &ModelSpec) -> Result<Box<dyn Algorithm>> {
            RandomFamily.build(spec)
        }
        fn load(&self, saved: Saved<'_>) -> Result<Box<dyn Model>> {
            RandomFamily.load(saved)
        }
    }

    #[test]
    fn register_refuses_a_taken_name_and_a_preset_name() {
        let mut registry = ModelRegistry::builtin();
        let err = registry
            .register(Renamed("als"))
            .err()
            .map(|e| e.to_string());
        assert!(
            err.as_deref()
                .is_some_and(|e| e.contains("`als` is already registered")),
            "{err:?}"
        );
        let err = registry
            .register(Renamed("movielens-ranking"))
            .err()
            .map(|e| e.to_string());
        assert!(
            err.as_deref()
                .is_some_and(|e| e.contains("hide the preset")),
            "{err:?}"
        );
        assert!(registry.register(Renamed("random2")).is_ok());
        assert_eq!(
            registry
                .build("random2")
                .map(|a| a.name().to_owned())
                .ok()
                .as_deref(),
            Some("random")
        );
    }

    #[test]
    fn builds_known_models_and_rejects_others() {
        assert_eq!(
            build_algorithm("baseline:method=sgd").unwrap().name(),
            "baseline"
        );
        assert_eq!(build_algorithm("movielens-rating").unwrap().name(), "bpmf");
        assert_eq!(
            build_algorithm("movielens-ranking").unwrap().name(),
            "itemknn"
        );
        let err = build_algorithm("ranking-best").err().unwrap().to_string();
        assert!(
            err.contains("now `movielens-ranking`") && err.contains("use `auto`"),
            "{err}"
        );
        let err = build_algorithm("svdx").err().unwrap().to_string();
        assert!(err.contains("unknown model"), "{err}");
        let err = build_algorithm("eaes:reg=100").err().unwrap().to_string();
        assert!(err.contains("(did you mean `ease`?)"), "{err}");
        let err = build_algorithm("atuo").err().unwrap().to_string();
        assert!(err.contains("(did you mean `auto`?)"), "{err}");
        assert!(build_algorithm("baseline:method=magic").is_err());
        assert!(build_algorithm("popularity:halflife=3").is_err());
        let knn = "itemknn:neighbors=20,shrink=10,weighting=weight,half_life=5";
        assert_eq!(build_algorithm(knn).unwrap().name(), "itemknn");
        assert!(build_algorithm("itemknn:weighting=tfidf,bm25_b=0.5").is_ok());
        assert!(build_algorithm("itemknn:weighting=okapi").is_err());
        assert!(build_algorithm("itemknn:k=20").is_err());
        for info in model_catalog() {
            assert!(build_algorithm(info.name).is_ok());
        }
    }

    #[test]
    fn catalog_lists_every_parameter_with_its_typed_default() {
        for family in ModelRegistry::global().families() {
            let spec = ModelSpec::parse(family.name()).unwrap();
            let defaults = family.build(&spec).unwrap().params();
            let mut fields: Vec<&str> = defaults
                .as_object()
                .unwrap()
                .keys()
                .map(String::as_str)
                .collect();
            let params = family.params();
            let mut listed: Vec<&str> = params.iter().map(|p| p.name).collect();
            fields.sort_unstable();
            listed.sort_unstable();
            assert_eq!(listed, fields, "{}", family.name());
            for p in &params {
                assert_eq!(p.value, defaults[p.name], "{}.{}", family.name(), p.name);
                assert!(
                    !p.value.is_null() || p.note.is_some(),
                    "{}.{}: an unset default needs a note",
                    family.name(),
                    p.name
                );
            }
        }
    }

    #[test]
    fn registry_rejects_duplicates_and_unknown_manifests() {
        let mut registry = ModelRegistry::builtin();
        assert!(registry.register(crate::rating::svd::SvdFamily).is_err());
        let err = registry.space("slopeone").unwrap_err().to_string();
        assert!(
            err.contains("families with one: baseline, itemknn, svd"),
            "{err}"
        );
        assert!(ModelRegistry::empty().build("svd").is_err());
    }

    #[test]
    fn every_model_reloads_with_identical_scores() {
        use crate::model::{AllItems, UserQuery};
        use kindred_core::{FitContext, Interaction, InteractionsBuilder, TrainSet};
        let mut b = InteractionsBuilder::new();
        for u in 0..12u32 {
            for i in 0..9u32 {
                if (u * 7 + i * 3) % 4 != 0 {
                    let rating = 1.0 + ((u + 2 * i) % 5) as f32;
                    b.push(Interaction::rating(
                        &format!("u{u}"),
                        &format!("i{i}"),
                        rating,
                        Some((u * 100 + i) as i64),
                    ));
                }
            }
        }
        let mut genres = kindred_core::FeatureTable::new();
        for i in 0..9u32 {
            let genre = ["a", "b", "c"][(i % 3) as usize];
            genres
                .set(
                    &format!("i{i}"),
                    "genres",
                    kindred_core::FeatureValue::Categories(vec![genre.to_owned()]),
                )
                .unwrap();
        }
        let data = TrainSet::new(b.build()).with_features(Some(std::sync::Arc::new(genres)), None);
        let specs: Vec<String> = model_catalog()
            .iter()
            .map(|m| m.name.to_owned())
            .chain([
                "baseline:method=sgd".to_owned(),
                "popularity:half_life_days=0.001".to_owned(),
                "svd:factors=4,epochs=3,parallel=false".to_owned(),
                "svdpp:factors=3,epochs=2,early_stopping=0.2".to_owned(),
                "knn:variant=baseline,user_based=false,similarity=pearson_baseline".to_owned(),
                "knn:variant=zscore,similarity=pearson,k=3".to_owned(),
                "knn:variant=means,similarity=cosine,min_k=2".to_owned(),
                "hybrid:no_components=4,epochs=2,item_ids=false,loss=bpr".to_owned(),
                "content:half_life=2,center=false".to_owned(),
            ])
            .collect();
        for spec in specs {
            let model = build_algorithm(&spec)
                .unwrap()
                .fit(&data, &FitContext::default())
                .unwrap();
            let dir = std::env::temp_dir().join(format!(
                "kindred-reload-{}-{}",
                std::process::id(),
                spec.replace([':', '='], "_")
            ));
            model.save(&dir).unwrap();
            let loaded = load_model(&dir).unwrap();
            let _ = std::fs::remove_dir_all(&dir);
            assert_eq!(loaded.name(), model.name());
            assert_eq!(loaded.params(), model.params(), "{spec}");
            for u in 0..12 {
                let (mut a, mut b) = (vec![0f32; 9], vec![0f32; 9]);
                model.score_all(&UserQuery::known(u), &mut a);
                loaded.score_all(&UserQuery::known(u), &mut b);
                assert_eq!(a, b, "{spec}: scores of user {u}");
                let top = |m: &dyn Model| m.recommend(&UserQuery::known(u), 3, &AllItems);
                assert_eq!(top(model.as_ref()), top(loaded.as_ref()), "{spec}");
                for i in 0..9 {
                    assert_eq!(model.predict(u, i), loaded.predict(u, i), "{spec}");
                }
            }
        }
    }

    /// Learning curves depend on it: every iterative model reports one finite loss per epoch
    /// (sweep, iteration) through the progress callback, numbered from 0 in order.
    #[test]
    fn iterative_models_report_a_loss_per_epoch() {
        use kindred_core::{FitContext, Interaction, InteractionsBuilder, Progress, TrainSet};
        use std::sync::{Arc, Mutex};

        #[derive(Default)]
        struct Epochs(Mutex<Vec<(usize, f64)>>);
        impl Progress for Epochs {
            fn epoch(&self, epoch: usize, loss: f64, _validation: Option<f64>) {
                self.0.lock().unwrap().push((epoch, loss));
            }
        }

        let mut b = InteractionsBuilder::new();
        for u in 0..15u32 {
            for i in 0..10u32 {
                if (u * 5 + i * 3) % 3 != 0 {
                    let rating = 1.0 + ((u + 2 * i) % 5) as f32;
                    b.push(Interaction::rating(
                        &format!("u{u}"),
                        &format!("i{i}"),
                        rating,
                        Some(i64::from(u * 100 + i)),
                    ));
                }
            }
        }
        let data = TrainSet::new(b.build());
        let cases = [
            ("svd:factors=4,epochs=3", 3),
            ("svdpp:factors=3,epochs=2", 2),
            ("nmf:factors=3,epochs=4", 4),
            ("baseline:method=sgd,epochs=5", 5),
            ("baseline:method=als,epochs=2", 2),
            ("bpmf:factors=3,burn_in=2,samples=3", 5),
            ("coclustering:epochs=3", 3),
            ("als:factors=4,iterations=3,training_loss=true", 3),
            ("bpr:factors=4,iterations=3", 3),
            ("ncf:epochs=2", 2),
            ("hybrid:no_components=4,epochs=2,item_ids=true", 2),
        ];
        for (spec, expected) in cases {
            let recorder = Arc::new(Epochs::default());
            let ctx = FitContext {
                progress: recorder.clone(),
                ..FitContext::default()
            };
            build_algorithm(spec).unwrap().fit(&data, &ctx).unwrap();
            let epochs = recorder.0.lock().unwrap().clone();
            assert_eq!(epochs.len(), expected, "{spec}: {epochs:?}");
            for (n, (epoch, loss)) in epochs.iter().enumerate() {
                assert!(loss.is_finite(), "{spec}: loss {loss} at epoch {epoch}");
                assert_eq!(*epoch, n, "{spec}: epochs are numbered from 0: {epochs:?}");
            }
        }
    }
}
