//! `kindred import`: loads a dataset (any data spec, with features and the preprocessing
//! pipeline) into a store: users and items with their features, then the feedback log in
//! batches. Importing the same data twice duplicates the feedback (imported events carry no
//! event id), so the command refuses a store that already holds feedback unless told to append.

use anyhow::{bail, Context, Result};
use kindred_store::import::{feedback_from_interactions, items_from_features, users_from_features};
use kindred_store::Store;

use super::Env;
use crate::data::DataArgs;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    data: DataArgs,
    /// Store to import into: a SQLite file (created if missing) or a postgres:// URL.
    #[arg(long)]
    store: String,
    /// Feedback events per transaction.
    #[arg(long, default_value_t = 10_000)]
    batch: usize,
    /// Add to a store that already holds feedback (the events are appended, not merged).
    #[arg(long)]
    append: bool,
}

pub fn run(args: Args, env: &Env) -> Result<()> {
    if args.batch == 0 {
        bail!("--batch must be at least 1");
    }
    let dataset = args.data.load(env.quiet)?;
    let runtime = super::runtime()?;
    runtime.block_on(async {
        let store = Store::open(&args.store)
            .await
            .with_context(|| format!("opening store {}", args.store))?;
        let before = store.counts().await?;
        if before.feedback > 0 && !args.append {
            bail!(
                "store {} already holds {} feedback events; pass --append to add these to them",
                args.store,
                before.feedback
            );
        }
        if let Some(table) = &dataset.user_features {
            store.upsert_users(&users_from_features(table)).await?;
        }
        if let Some(table) = &dataset.item_features {
            store.upsert_items(&items_from_features(table)).await?;
        }
        let feedback = feedback_from_interactions(&dataset.interactions);
        let total = feedback.len() as u64;
        env.progress.begin("importing feedback", total);
        let mut done = 0u64;
        for chunk in feedback.chunks(args.batch) {
            env.cancel.check()?;
            store.insert_feedback(chunk).await?;
            done += chunk.len() as u64;
            env.progress.advance(chunk.len() as u64);
        }
        env.progress.finish();
        let after = store.counts().await?;
        outln!(
            "imported {done} feedback events, {} users with features, {} items with features into {} \
             ({}: now {} users, {} items, {} events)",
            dataset.user_features.as_ref().map_or(0, |t| t.ids().len()),
            dataset.item_features.as_ref().map_or(0, |t| t.ids().len()),
            args.store,
            store.backend(),
            after.users,
            after.items,
            after.feedback
        )?;
        Ok(())
    })
}
