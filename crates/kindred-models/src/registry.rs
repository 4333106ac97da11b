//! The model registry: names and presets to algorithms, the catalog behind `kindred models`,
//! and loading of saved models by the algorithm named in their manifest.

use std::path::Path;

use kindred_core::{Error, Result};
use serde::Serialize;

use crate::content::content_based::{Content, ContentModel};
use crate::content::hybrid::{Hybrid, HybridModel};
use crate::implicit::als::{Als, AlsModel};
use crate::implicit::bpr::{Bpr, BprModel};
use crate::implicit::ease::{Ease, EaseModel};
use crate::model::{Algorithm, Model};
use crate::neighbours::itemknn::{ItemKnn, ItemKnnModel};
use crate::neighbours::knn::{Knn, KnnModel};
use crate::neural::ncf::{Ncf, NcfModel};
use crate::params::ModelSpec;
use crate::persist::Fitted;
use crate::rating::baseline::{Baseline, BaselineModel};
use crate::rating::bpmf::{Bpmf, BpmfModel};
use crate::rating::coclustering::{CoClustering, CoClusteringModel};
use crate::rating::nmf::{Nmf, NmfModel};
use crate::rating::slopeone::{SlopeOne, SlopeOneModel};
use crate::rating::svd::{Svd, SvdModel};
use crate::rating::svdpp::{Svdpp, SvdppModel};
use crate::simple::popularity::{Popularity, PopularityModel};
use crate::simple::random::{Random, RandomModel};

/// What a model is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Task {
    Rating,
    Ranking,
    Both,
}

/// One hyperparameter as listed by `kindred models`.
#[derive(Debug, Clone, Serialize)]
pub struct ParamInfo {
    pub name: &'static str,
    pub default: &'static str,
    pub help: &'static str,
}

/// One model family as listed by `kindred models`.
#[derive(Debug, Clone, Serialize)]
pub struct ModelInfo {
    pub name: &'static str,
    pub task: Task,
    pub summary: &'static str,
    pub params: Vec<ParamInfo>,
}

/// Presets: names for the strongest configuration available for each task. They are resolved
/// to a concrete spec before fitting, so results always record what actually ran.
const PRESETS: &[(&str, &str)] = &[
    ("rating-best", "bpmf"),
    (
        "ranking-best",
        "itemknn:neighbors=200,half_life=2,weighting=tfidf",
    ),
];

/// Resolves a preset name to its spec; other specs are returned unchanged.
pub fn resolve_preset(spec: &str) -> &str {
    PRESETS
        .iter()
        .find(|(name, _)| *name == spec.trim())
        .map_or(spec, |(_, resolved)| resolved)
}

/// Builds the algorithm a spec (or preset) names.
pub fn build_algorithm(spec: &str) -> Result<Box<dyn Algorithm>> {
    let spec = ModelSpec::parse(resolve_preset(spec))?;
    Ok(match spec.name.as_str() {
        "baseline" => Box::new(Baseline {
            params: spec.typed()?,
        }),
        "popularity" => Box::new(Popularity {
            params: spec.typed()?,
        }),
        "random" => Box::new(Random {
            params: spec.typed()?,
        }),
        "itemknn" => Box::new(ItemKnn {
            params: spec.typed()?,
        }),
        "svd" => Box::new(Svd {
            params: spec.typed()?,
        }),
        "svdpp" => Box::new(Svdpp {
            params: spec.typed()?,
        }),
        "knn" => Box::new(Knn {
            params: spec.typed()?,
        }),
        "slopeone" => Box::new(SlopeOne {
            params: spec.typed()?,
        }),
        "coclustering" => Box::new(CoClustering {
            params: spec.typed()?,
        }),
        "nmf" => Box::new(Nmf {
            params: spec.typed()?,
        }),
        "bpmf" => Box::new(Bpmf {
            params: spec.typed()?,
        }),
        "bpr" => Box::new(Bpr {
            params: spec.typed()?,
        }),
        "ncf" => Box::new(Ncf {
            params: spec.typed()?,
        }),
        "als" => Box::new(Als {
            params: spec.typed()?,
        }),
        "ease" => Box::new(Ease {
            params: spec.typed()?,
        }),
        "content" => Box::new(Content {
            params: spec.typed()?,
        }),
        "hybrid" => Box::new(Hybrid {
            params: spec.typed()?,
        }),
        other => {
            let known: Vec<&str> = model_catalog().iter().map(|m| m.name).collect();
            return Err(Error::spec(
                "model",
                spec.to_string(),
                format!(
                    "unknown model `{other}`; known: {}, presets: rating-best, ranking-best",
                    known.join(", ")
                ),
            ));
        }
    })
}

/// Every model family with its parameters and defaults.
pub fn model_catalog() -> Vec<ModelInfo> {
    vec![
        ModelInfo {
            name: "random",
            task: Task::Both,
            summary: "seeded random scores; ratings drawn from N(mean, std) of training (Surprise NormalPredictor)",
            params: vec![ParamInfo { name: "seed", default: "fit seed (42)", help: "seed of the random scores" }],
        },
        ModelInfo {
            name: "popularity",
            task: Task::Ranking,
            summary: "items by (optionally time-decayed) interaction weight",
            params: vec![ParamInfo {
                name: "half_life_days",
                default: "none (all-time)",
                help: "half-life of an interaction's weight, counted back from the latest training timestamp",
            }],
        },
        ModelInfo {
            name: "baseline",
            task: Task::Both,
            summary: "global mean + user bias + item bias (Surprise BaselineOnly), ALS or SGD",
            params: vec![
                ParamInfo { name: "method", default: "als", help: "als | sgd" },
                ParamInfo { name: "epochs", default: "10 (als) / 20 (sgd)", help: "passes over the data" },
                ParamInfo { name: "reg_u", default: "15", help: "ALS: user-bias regularisation" },
                ParamInfo { name: "reg_i", default: "10", help: "ALS: item-bias regularisation" },
                ParamInfo { name: "reg", default: "0.02", help: "SGD: bias regularisation" },
                ParamInfo { name: "lr", default: "0.005", help: "SGD: learning rate" },
            ],
        },
        ModelInfo {
            name: "itemknn",
            task: Task::Ranking,
            summary: "item-item cosine k-nearest neighbours; scores sum the neighbours of a user's (recency-weighted) history",
            params: vec![
                ParamInfo { name: "neighbors", default: "50", help: "most similar items kept per item" },
                ParamInfo {
                    name: "shrink",
                    default: "0",
                    help: "shrinkage: a similarity backed by co common users is scaled by co / (co + shrink)",
                },
                ParamInfo {
                    name: "weighting",
                    default: "binary",
                    help: "binary (each user-item pair counts once) | weight (sum of implicit weights) | bm25 | tfidf (implicit's bm25_weight / tfidf_weight of the item-user matrix, before cosine and when scoring)",
                },
                ParamInfo { name: "bm25_k1", default: "1.2", help: "BM25 term-frequency saturation (weighting=bm25)" },
                ParamInfo { name: "bm25_b", default: "0.75", help: "BM25 length normalisation in [0, 1] (weighting=bm25)" },
                ParamInfo {
                    name: "half_life",
                    default: "0 (off)",
                    help: "half-life in interactions of a history item's weight when scoring (the latest has age 0)",
                },
            ],
        },
        ModelInfo {
            name: "svd",
            task: Task::Rating,
            summary: "biased matrix factorisation by SGD (Funk/Koren; Surprise SVD, same updates and visiting order)",
            params: vec![
                ParamInfo { name: "factors", default: "100", help: "latent factors" },
                ParamInfo { name: "epochs", default: "20", help: "SGD passes over the ratings (the maximum with early_stopping)" },
                ParamInfo { name: "biased", default: "true", help: "learn mu + user and item biases; false: prediction is q_i . p_u alone" },
                ParamInfo { name: "init_mean", default: "0", help: "mean of the normal factor initialisation" },
                ParamInfo { name: "init_std", default: "0.1", help: "standard deviation of the normal factor initialisation" },
                ParamInfo { name: "lr_all", default: "0.005", help: "learning rate of every term" },
                ParamInfo { name: "reg_all", default: "0.02", help: "regularisation of every term" },
                ParamInfo { name: "lr_bu", default: "lr_all", help: "learning rate of user biases" },
                ParamInfo { name: "lr_bi", default: "lr_all", help: "learning rate of item biases" },
                ParamInfo { name: "lr_pu", default: "lr_all", help: "learning rate of user factors" },
                ParamInfo { name: "lr_qi", default: "lr_all", help: "learning rate of item factors" },
                ParamInfo { name: "reg_bu", default: "reg_all", help: "regularisation of user biases" },
                ParamInfo { name: "reg_bi", default: "reg_all", help: "regularisation of item biases" },
                ParamInfo { name: "reg_pu", default: "reg_all", help: "regularisation of user factors" },
                ParamInfo { name: "reg_qi", default: "reg_all", help: "regularisation of item factors" },
                ParamInfo { name: "seed", default: "fit seed (42)", help: "seed of the initialisation and of the early-stopping holdout" },
                ParamInfo {
                    name: "parallel",
                    default: "true",
                    help: "blocked (stratified) SGD on all threads; reproducible per seed and thread count",
                },
                ParamInfo {
                    name: "early_stopping",
                    default: "none (off)",
                    help: "fraction of training ratings held out; stop when their RMSE stops improving, keep the best epoch",
                },
                ParamInfo { name: "patience", default: "2", help: "early stopping: epochs without improvement before stopping" },
            ],
        },
        ModelInfo {
            name: "svdpp",
            task: Task::Rating,
            summary: "SVD++ (Koren 2008): SVD plus implicit feedback from the items each user rated (Surprise SVDpp, exact updates, fast)",
            params: vec![
                ParamInfo { name: "factors", default: "20", help: "latent factors" },
                ParamInfo { name: "epochs", default: "20", help: "SGD passes over the ratings (the maximum with early_stopping)" },
                ParamInfo { name: "init_mean", default: "0", help: "mean of the normal factor initialisation" },
                ParamInfo { name: "init_std", default: "0.1", help: "standard deviation of the normal factor initialisation" },
                ParamInfo { name: "lr_all", default: "0.007", help: "learning rate of every term" },
                ParamInfo { name: "reg_all", default: "0.02", help: "regularisation of every term" },
                ParamInfo { name: "lr_bu", default: "lr_all", help: "learning rate of user biases" },
                ParamInfo { name: "lr_bi", default: "lr_all", help: "learning rate of item biases" },
                ParamInfo { name: "lr_pu", default: "lr_all", help: "learning rate of user factors" },
                ParamInfo { name: "lr_qi", default: "lr_all", help: "learning rate of item factors" },
                ParamInfo { name: "lr_yj", default: "lr_all", help: "learning rate of implicit item factors" },
                ParamInfo { name: "reg_bu", default: "reg_all", help: "regularisation of user biases" },
                ParamInfo { name: "reg_bi", default: "reg_all", help: "regularisation of item biases" },
                ParamInfo { name: "reg_pu", default: "reg_all", help: "regularisation of user factors" },
                ParamInfo { name: "reg_qi", default: "reg_all", help: "regularisation of item factors" },
                ParamInfo { name: "reg_yj", default: "reg_all", help: "regularisation of implicit item factors" },
                ParamInfo { name: "seed", default: "fit seed (42)", help: "seed of the initialisation and of the early-stopping holdout" },
                ParamInfo {
                    name: "early_stopping",
                    default: "none (off)",
                    help: "fraction of training ratings held out; stop when their RMSE stops improving, keep the best epoch",
                },
                ParamInfo { name: "patience", default: "2", help: "early stopping: epochs without improvement before stopping" },
            ],
        },
        ModelInfo {
            name: "knn",
            task: Task::Both,
            summary: "k-nearest-neighbour rating prediction (Surprise KNNBasic / KNNWithMeans / KNNWithZScore / KNNBaseline)",
            params: vec![
                ParamInfo { name: "variant", default: "basic", help: "basic | means | zscore | baseline (how neighbours' ratings are combined)" },
                ParamInfo { name: "user_based", default: "true", help: "similarities between users (true) or items (false)" },
                ParamInfo { name: "similarity", default: "msd", help: "cosine | msd | pearson | pearson_baseline" },
                ParamInfo { name: "k", default: "40", help: "most neighbours aggregated per prediction" },
                ParamInfo { name: "min_k", default: "1", help: "fewest neighbours, else the mean / baseline / global mean" },
                ParamInfo { name: "min_support", default: "1", help: "fewest common co-ratings for a non-zero similarity" },
                ParamInfo { name: "shrinkage", default: "100", help: "pearson_baseline: similarity scaled by (n-1)/(n-1+shrinkage)" },
                ParamInfo { name: "method", default: "als", help: "baselines (variant baseline, pearson_baseline): als | sgd" },
                ParamInfo { name: "epochs", default: "10 (als) / 20 (sgd)", help: "baseline passes" },
                ParamInfo { name: "reg_u", default: "15", help: "baseline ALS: user-bias regularisation" },
                ParamInfo { name: "reg_i", default: "10", help: "baseline ALS: item-bias regularisation" },
                ParamInfo { name: "reg", default: "0.02", help: "baseline SGD: bias regularisation" },
                ParamInfo { name: "lr", default: "0.005", help: "baseline SGD: learning rate" },
            ],
        },
        ModelInfo {
            name: "slopeone",
            task: Task::Both,
            summary: "Slope One: user mean + mean item-item rating deviation (Surprise SlopeOne)",
            params: vec![],
        },
        ModelInfo {
            name: "coclustering",
            task: Task::Both,
            summary: "co-clustering of users and items (George & Merugu; Surprise CoClustering)",
            params: vec![
                ParamInfo { name: "n_cltr_u", default: "3", help: "user clusters" },
                ParamInfo { name: "n_cltr_i", default: "3", help: "item clusters" },
                ParamInfo { name: "epochs", default: "20", help: "assignment passes" },
                ParamInfo { name: "seed", default: "fit seed (42)", help: "seed of the initial random assignment" },
            ],
        },
        ModelInfo {
            name: "nmf",
            task: Task::Rating,
            summary: "non-negative matrix factorisation by multiplicative updates (Surprise NMF)",
            params: vec![
                ParamInfo { name: "factors", default: "15", help: "latent factors" },
                ParamInfo { name: "epochs", default: "50", help: "multiplicative-update epochs" },
                ParamInfo { name: "biased", default: "false", help: "add mean + user/item biases fitted by SGD" },
                ParamInfo { name: "reg_pu", default: "0.06", help: "user-factor regularisation" },
                ParamInfo { name: "reg_qi", default: "0.06", help: "item-factor regularisation" },
                ParamInfo { name: "reg_bu", default: "0.02", help: "user-bias regularisation (biased)" },
                ParamInfo { name: "reg_bi", default: "0.02", help: "item-bias regularisation (biased)" },
                ParamInfo { name: "lr_bu", default: "0.005", help: "user-bias learning rate (biased)" },
                ParamInfo { name: "lr_bi", default: "0.005", help: "item-bias learning rate (biased)" },
                ParamInfo { name: "init_low", default: "0", help: "lower bound of the uniform initial factors (>= 0)" },
                ParamInfo { name: "init_high", default: "1", help: "upper bound of the uniform initial factors" },
                ParamInfo { name: "seed", default: "fit seed (42)", help: "seed of the initial factors" },
                ParamInfo {
                    name: "training_loss",
                    default: "false",
                    help: "report the training loss after each iteration (about one more CG step per iteration)",
                },
            ],
        },
        ModelInfo {
            name: "bpmf",
            task: Task::Rating,
            summary: "Bayesian probabilistic matrix factorisation by Gibbs sampling (Salakhutdinov & Mnih 2008)",
            params: vec![
                ParamInfo { name: "factors", default: "20", help: "latent factors" },
                ParamInfo { name: "burn_in", default: "10", help: "Gibbs sweeps discarded before averaging" },
                ParamInfo { name: "samples", default: "60", help: "Gibbs sweeps averaged into predictions" },
                ParamInfo { name: "alpha", default: "2", help: "observation precision (1 / rating noise variance)" },
                ParamInfo { name: "beta0", default: "2", help: "prior strength of the Gaussian-Wishart hyper-mean" },
                ParamInfo { name: "biases", default: "true", help: "user/item biases as an extra latent dimension" },
                ParamInfo { name: "init_std", default: "0.1", help: "standard deviation of the initial factors" },
                ParamInfo {
                    name: "storage",
                    default: "mean",
                    help: "mean (averaged factors) | samples (keep every sample: exact posterior-predictive mean, samples x larger)",
                },
                ParamInfo { name: "seed", default: "fit seed (42)", help: "seed of the Gibbs chain" },
            ],
        },
        ModelInfo {
            name: "bpr",
            task: Task::Ranking,
            summary: "Bayesian Personalised Ranking matrix factorisation with item biases (Rendle 2009; implicit's BPR), deterministic parallel SGD",
            params: vec![
                ParamInfo { name: "factors", default: "64", help: "latent factors (plus an item bias)" },
                ParamInfo { name: "learning_rate", default: "0.01", help: "SGD learning rate" },
                ParamInfo { name: "regularization", default: "0.01", help: "L2 regularisation of the factors and biases each step touches" },
                ParamInfo { name: "iterations", default: "100", help: "epochs; each draws as many (user, positive, negative) triples as there are training pairs" },
                ParamInfo { name: "sampling", default: "popularity", help: "negatives: uniform | popularity (proportional to item user count^beta)" },
                ParamInfo { name: "beta", default: "0.5", help: "popularity sampling exponent (1 = implicit's sampling, 0 = uniform over trained items)" },
                ParamInfo { name: "verify_negative", default: "true", help: "redraw negatives the user interacted with (up to 64 draws)" },
                ParamInfo { name: "seed", default: "fit seed (42)", help: "seed of initialisation and sampling; results depend on seed and thread count" },
            ],
        },
        ModelInfo {
            name: "ncf",
            task: Task::Ranking,
            summary: "Neural Collaborative Filtering, NeuMF = GMF + MLP (He et al. 2017), BCE with sampled negatives, Adam",
            params: vec![
                ParamInfo { name: "factors", default: "16", help: "GMF embedding width" },
                ParamInfo { name: "layers", default: "64-32-16", help: "MLP sizes joined by '-': input width (half user, half item embedding), then hidden ReLU layers" },
                ParamInfo { name: "epochs", default: "20", help: "passes over the training pairs" },
                ParamInfo { name: "lr", default: "0.001", help: "Adam step size" },
                ParamInfo { name: "reg", default: "0", help: "L2 regularisation of the parameters each batch touches" },
                ParamInfo { name: "negatives", default: "4", help: "uniformly sampled negatives per training pair and epoch" },
                ParamInfo { name: "batch_size", default: "256", help: "examples (positives with their negatives) per Adam step, about" },
                ParamInfo { name: "seed", default: "fit seed (42)", help: "seed of initialisation, shuffling and sampling; results depend on seed and thread count" },
            ],
        },
        ModelInfo {
            name: "als",
            task: Task::Ranking,
            summary: "implicit-feedback ALS (Hu, Koren & Volinsky 2008; as the implicit library), fold-in for new users",
            params: vec![
                ParamInfo { name: "factors", default: "64", help: "latent factors" },
                ParamInfo { name: "reg", default: "0.05", help: "L2 regularisation of every vector (not scaled by counts)" },
                ParamInfo { name: "alpha", default: "1", help: "confidence scale of an observed pair's summed weight" },
                ParamInfo {
                    name: "confidence",
                    default: "hu",
                    help: "hu (c = 1 + alpha w) | implicit (c = alpha w, the implicit library's convention)",
                },
                ParamInfo { name: "iterations", default: "15", help: "alternating passes (users, then items)" },
                ParamInfo { name: "solver", default: "cg", help: "cg (conjugate gradient, warm-started) | cholesky (exact)" },
                ParamInfo { name: "cg_steps", default: "3", help: "conjugate-gradient steps per vector and pass" },
                ParamInfo { name: "seed", default: "fit seed (42)", help: "seed of the initial factors" },
                ParamInfo {
                    name: "training_loss",
                    default: "false",
                    help: "report the training loss after each iteration (about one more CG step per iteration)",
                },
            ],
        },
        ModelInfo {
            name: "ease",
            task: Task::Ranking,
            summary: "EASE^R (Steck 2019): closed-form item-item linear autoencoder; serves anonymous users from their history",
            params: vec![
                ParamInfo { name: "lambda", default: "500", help: "L2 regularisation added to the diagonal of X^T X" },
                ParamInfo {
                    name: "weighting",
                    default: "binary",
                    help: "binary (each user-item pair counts once) | weight (sum of implicit weights)",
                },
                ParamInfo {
                    name: "max_items",
                    default: "20000",
                    help: "largest catalog fitted: the model holds items^2 weights",
                },
            ],
        },
        ModelInfo {
            name: "content",
            task: Task::Ranking,
            summary: "content-based: user profile = (recency-weighted, centred) sum of the feature profiles of their items; scores any item with features, cold ones included",
            params: vec![
                ParamInfo { name: "half_life", default: "0 (off)", help: "half-life in interactions of a history item's weight in the profile (the latest has age 0)" },
                ParamInfo { name: "center", default: "true", help: "subtract the mean profile of training interactions from each history item's profile" },
                ParamInfo { name: "weighting", default: "binary", help: "binary (each user-item pair counts once) | weight (sum of implicit weights)" },
                ParamInfo { name: "columns", default: "all", help: "item feature columns to use, joined by + (e.g. genres+year)" },
                ParamInfo { name: "buckets", default: "10", help: "quantile buckets per numeric feature column" },
                ParamInfo { name: "hash_bits", default: "18", help: "text features hash word unigrams and bigrams into 2^hash_bits slots (TF-IDF)" },
            ],
        },
        ModelInfo {
            name: "hybrid",
            task: Task::Ranking,
            summary: "LightFM-style hybrid factorisation: user/item embeddings are sums of their features' embeddings (ids, categories, numbers, text); WARP or BPR; cold users and items from features",
            params: vec![
                ParamInfo { name: "no_components", default: "64", help: "embedding dimension" },
                ParamInfo { name: "epochs", default: "30", help: "passes over the distinct training pairs" },
                ParamInfo { name: "loss", default: "warp", help: "warp | bpr" },
                ParamInfo { name: "learning_rate", default: "0.05", help: "Adagrad base learning rate" },
                ParamInfo { name: "item_alpha", default: "0", help: "L2 penalty on item feature embeddings" },
                ParamInfo { name: "user_alpha", default: "0", help: "L2 penalty on user feature embeddings" },
                ParamInfo { name: "max_sampled", default: "10", help: "WARP: most negatives sampled per positive" },
                ParamInfo { name: "item_ids", default: "true", help: "an identity feature per item with training data" },
                ParamInfo { name: "user_ids", default: "true", help: "an identity feature per user with training data" },
                ParamInfo { name: "item_features", default: "true", help: "use the item feature table when there is one" },
                ParamInfo { name: "normalize", default: "true", help: "scale each entity's feature weights to sum to 1 (LightFM Dataset default); false keeps identity 1 and unit-length feature blocks" },
                ParamInfo { name: "user_features", default: "false", help: "use the user feature table when there is one (needed for cold users without history; diluted warm ranking on MovieLens)" },
                ParamInfo { name: "columns", default: "all", help: "item feature columns to use, joined by + (e.g. genres+year)" },
                ParamInfo { name: "buckets", default: "10", help: "quantile buckets per numeric feature column" },
                ParamInfo { name: "hash_bits", default: "18", help: "text features hash word unigrams and bigrams into 2^hash_bits slots (TF-IDF)" },
                ParamInfo { name: "seed", default: "fit seed (42)", help: "seed of the initialisation and the sampling (training is sequential: same seed, same model, any thread count)" },
            ],
        },
    ]
}

/// The presets and what they currently resolve to.
pub fn presets() -> &'static [(&'static str, &'static str)] {
    PRESETS
}

/// Loads a model saved with [`Model::save`].
pub fn load_model(dir: &Path) -> Result<Box<dyn Model>> {
    let (manifest, fitted, tensors): (_, Fitted, _) = Fitted::load(dir)?;
    let params = manifest.params.clone();
    Ok(match manifest.algorithm.as_str() {
        "baseline" => Box::new(BaselineModel::load(params, fitted, &tensors)?),
        "popularity" => Box::new(PopularityModel::load(params, fitted, &tensors)?),
        "random" => Box::new(RandomModel::load(params, fitted, &tensors)?),
        "itemknn" => Box::new(ItemKnnModel::load(params, fitted, &tensors)?),
        "svd" => Box::new(SvdModel::load(params, fitted, &tensors)?),
        "svdpp" => Box::new(SvdppModel::load(params, fitted, &tensors)?),
        "knn" => Box::new(KnnModel::load(params, fitted, &tensors)?),
        "slopeone" => Box::new(SlopeOneModel::load(params, fitted, &tensors)?),
        "coclustering" => Box::new(CoClusteringModel::load(params, fitted, &tensors)?),
        "nmf" => Box::new(NmfModel::load(params, fitted, &tensors)?),
        "bpmf" => Box::new(BpmfModel::load(params, fitted, &tensors)?),
        "bpr" => Box::new(BprModel::load(params, fitted, &tensors)?),
        "ncf" => Box::new(NcfModel::load(params, fitted, &tensors)?),
        "als" => Box::new(AlsModel::load(params, fitted, &tensors)?),
        "ease" => Box::new(EaseModel::load(params, fitted, &tensors)?),
        "content" => Box::new(ContentModel::load(params, fitted, &tensors, dir)?),
        "hybrid" => Box::new(HybridModel::load(params, fitted, &tensors, dir)?),
        other => {
            return Err(Error::Model {
                path: dir.to_owned(),
                message: format!("unknown algorithm `{other}` in manifest"),
            })
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_known_models_and_rejects_others() {
        assert_eq!(
            build_algorithm("baseline:method=sgd").unwrap().name(),
            "baseline"
        );
        assert_eq!(build_algorithm("rating-best").unwrap().name(), "bpmf");
        assert_eq!(build_algorithm("ranking-best").unwrap().name(), "itemknn");
        let err = build_algorithm("svdx").err().unwrap().to_string();
        assert!(err.contains("unknown model"), "{err}");
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
