//! `kindred similar`: the most similar items (or users) to given ones, or neighbour lists for
//! all, as JSON Lines with external ids and scores. Evidence: a saved model's embeddings
//! (exact search for small catalogs, HNSW for large ones), co-occurrence in the data, or shared
//! categorical features.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use kindred_core::{IdMap, Scored, TrainSet};
use kindred_models::load_model;
use kindred_rank::retrieval::{
    cooccurrence_similar, neighbour_lists, neighbour_lists_with, FeatureSets, HnswParams, Metric,
    NeighbourOptions, SetSimilarity, VectorIndex, DEFAULT_COOCCURRENCE_SHRINK,
};

use super::Env;
use crate::data::DataArgs;

#[derive(clap::ValueEnum, Clone, Copy, PartialEq, Eq, Debug)]
pub enum Method {
    /// Nearest neighbours of the model's item or user embeddings.
    Embeddings,
    /// Shrunk cosine of who-interacted-with-what in --data.
    Cooccurrence,
    /// Jaccard of categorical features: item features (--data's or --item-features) with
    /// --items, user features (--data's or --user-features) with --users.
    Features,
}

#[derive(clap::ValueEnum, Clone, Copy, PartialEq, Eq, Debug)]
pub enum IndexKind {
    /// Exact below 20,000 entities, HNSW above.
    Auto,
    Exact,
    Hnsw,
}

#[derive(clap::Args)]
pub struct Args {
    /// Saved model directory (needed by --method embeddings).
    #[arg(long)]
    model: Option<PathBuf>,
    /// Similar items.
    #[arg(long, conflicts_with = "users")]
    items: bool,
    /// Similar users.
    #[arg(long)]
    users: bool,
    /// External id to find neighbours of; repeat for several. Default: every entity.
    #[arg(long = "id")]
    ids: Vec<String>,
    /// Neighbours per entity.
    #[arg(long, default_value_t = 10, allow_negative_numbers = true, value_parser = crate::args::at_least_one)]
    k: usize,
    #[arg(long, value_enum, default_value_t = Method::Embeddings)]
    method: Method,
    /// Data spec for --method cooccurrence or features (as `kindred train --data`).
    #[arg(long)]
    data: Option<String>,
    /// Item features as JSON Lines, for --method features --items.
    #[arg(long)]
    item_features: Option<PathBuf>,
    /// User features as JSON Lines, for --method features --users.
    #[arg(long)]
    user_features: Option<PathBuf>,
    /// Embedding similarity: cosine, ip (inner product) or l2.
    #[arg(long, default_value = "cosine")]
    metric: String,
    #[arg(long, value_enum, default_value_t = IndexKind::Auto)]
    index: IndexKind,
    /// HNSW search breadth.
    #[arg(long, default_value_t = 64)]
    ef: usize,
    /// Co-occurrence shrinkage: similarities from `co` common users are scaled by co/(co+shrink).
    #[arg(long, default_value_t = DEFAULT_COOCCURRENCE_SHRINK)]
    shrink: f32,
    /// Output file (default: stdout).
    #[arg(long)]
    out: Option<PathBuf>,
}

/// Neighbour lists keyed by index into `ids`.
struct Lists {
    ids: IdMap,
    /// (entity, neighbours) pairs in output order.
    rows: Vec<(u32, Vec<Scored>)>,
}

pub fn run(args: Args, env: &Env) -> Result<()> {
    if args.items == args.users {
        bail!("give exactly one of --items or --users");
    }
    let lists = match args.method {
        Method::Embeddings => by_embeddings(&args, env)?,
        Method::Cooccurrence => by_cooccurrence(&args, env)?,
        Method::Features => by_features(&args, env)?,
    };
    let mut out: Box<dyn Write> = match &args.out {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let key = if args.items { "item" } else { "user" };
    for (entity, neighbours) in &lists.rows {
        let similar: Vec<_> = neighbours
            .iter()
            .map(|s| serde_json::json!({ key: lists.ids.external(s.item), "score": s.score }))
            .collect();
        writeln!(
            out,
            "{}",
            serde_json::json!({ key: lists.ids.external(*entity), "method": format!("{:?}", args.method).to_lowercase(), "similar": similar })
        )?;
    }
    out.flush()?;
    Ok(())
}

/// Indices of the requested ids in `ids` (every entity when none was given).
fn targets(args: &Args, ids: &IdMap, what: &str) -> Result<Vec<u32>> {
    if args.ids.is_empty() {
        return Ok((0..ids.len() as u32).collect());
    }
    args.ids
        .iter()
        .map(|ext| {
            ids.get(ext)
                .with_context(|| format!("--id {ext}: no such {what} in {}", source_name(args)))
        })
        .collect()
}

fn source_name(args: &Args) -> String {
    match (args.method, &args.model, &args.data) {
        (Method::Embeddings, Some(model), _) => format!("the model at {}", model.display()),
        (_, _, Some(data)) => format!("the data {data}"),
        _ => "the input".into(),
    }
}

fn by_embeddings(args: &Args, env: &Env) -> Result<Lists> {
    let Some(dir) = &args.model else {
        bail!("--method embeddings needs --model DIR");
    };
    let model = load_model(dir)?;
    let (what, ids, embeddings) = if args.items {
        (
            "item",
            model.fitted().items.as_ref().clone(),
            model.item_embeddings(),
        )
    } else {
        (
            "user",
            model.fitted().users.as_ref().clone(),
            model.user_embeddings(),
        )
    };
    let Some((dim, vectors)) = embeddings else {
        bail!(
            "model `{}` at {} has no {what} embeddings; use --method cooccurrence --data SPEC",
            model.name(),
            dir.display()
        );
    };
    let metric = Metric::parse(&args.metric)?;
    let ctx = env.fit_context(42);
    let chosen = targets(args, &ids, what)?;
    let n = vectors.len() / dim.max(1);
    let use_hnsw = match args.index {
        IndexKind::Auto => n >= NeighbourOptions::default().exact_below,
        IndexKind::Exact => false,
        IndexKind::Hnsw => true,
    };
    let params = HnswParams {
        metric,
        ..HnswParams::default()
    };
    let rows = if args.ids.is_empty() {
        let options = NeighbourOptions {
            k: args.k,
            exact_below: if use_hnsw { 0 } else { usize::MAX },
            hnsw: params,
            ef: args.ef,
        };
        neighbour_lists(dim, vectors, &options, &ctx)?
            .into_iter()
            .enumerate()
            .map(|(i, l)| (i as u32, l))
            .collect()
    } else {
        let index = if use_hnsw {
            VectorIndex::hnsw(params, dim, vectors, &ctx)?
        } else {
            VectorIndex::exact(metric, dim, vectors)?
        };
        chosen
            .iter()
            .map(|&id| Ok((id, index.similar_to(id, args.k)?)))
            .collect::<Result<Vec<_>>>()?
    };
    Ok(Lists { ids, rows })
}

fn load_data(args: &Args, env: &Env) -> Result<kindred_core::Dataset> {
    let Some(data) = &args.data else {
        bail!("--method {:?} needs --data SPEC", args.method);
    };
    let data_args = DataArgs {
        data: data.clone(),
        columns: None,
        skip_invalid: false,
        timestamps: None,
        item_features: args.item_features.clone(),
        user_features: args.user_features.clone(),
    };
    data_args.load(env.quiet)
}

fn by_cooccurrence(args: &Args, env: &Env) -> Result<Lists> {
    let dataset = load_data(args, env)?;
    let train = TrainSet::new(dataset.interactions);
    let (what, ids, rows, cols) = if args.items {
        (
            "item",
            train.data.item_ids().as_ref().clone(),
            &train.by_item,
            &train.by_user,
        )
    } else {
        (
            "user",
            train.data.user_ids().as_ref().clone(),
            &train.by_user,
            &train.by_item,
        )
    };
    let chosen = targets(args, &ids, what)?;
    let ctx = env.fit_context(42);
    let (k, shrink) = (args.k, args.shrink);
    let lists = neighbour_lists_with(chosen.len(), "co-occurrence neighbours", &ctx, &|i| {
        cooccurrence_similar(rows, cols, chosen[i as usize], k, shrink)
    })?;
    Ok(Lists {
        ids,
        rows: chosen.into_iter().zip(lists).collect(),
    })
}

fn by_features(args: &Args, env: &Env) -> Result<Lists> {
    let dataset = load_data(args, env)?;
    let (table, what, flag) = if args.items {
        (dataset.item_features, "item", "--item-features")
    } else {
        (dataset.user_features, "user", "--user-features")
    };
    let Some(table) = table else {
        bail!(
            "{} has no {what} features; give {flag} FILE.jsonl",
            dataset.name
        );
    };
    // The feature table's own ids: entities known only by their features are included.
    let ids = table.ids().clone();
    let sets = FeatureSets::new(table.categorical_vectors(&ids));
    let chosen = targets(args, &ids, &format!("{what} with features"))?;
    let ctx = env.fit_context(42);
    let k = args.k;
    let lists = neighbour_lists_with(chosen.len(), "feature neighbours", &ctx, &|i| {
        sets.similar(chosen[i as usize], k, SetSimilarity::Jaccard)
    })?;
    Ok(Lists {
        ids,
        rows: chosen.into_iter().zip(lists).collect(),
    })
}
