//! `kindred import`: loads a dataset (any data spec, with features and the preprocessing
//! pipeline) into a store: users and items with their features, then the feedback log in
//! batches. Importing the same data twice duplicates the feedback (imported events carry no
//! event id), so the command refuses a store that already holds feedback unless told to append.
//! Rows naming a user or item the store has erased are skipped, and the output says how many.

use anyhow::{bail, Context, Result};
use kindred_store::import::Import;
use kindred_store::Store;

use super::Env;
use crate::data::DataArgs;
use crate::table::plural;

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
        let import = Import::prepare(&store, &dataset).await?;
        env.progress
            .begin("importing feedback", import.feedback.len() as u64);
        let summary = import
            .write(&store, args.batch, |n| {
                env.cancel.check()?;
                env.progress.advance(n as u64);
                Ok(())
            })
            .await?;
        env.progress.finish();
        let after = store.counts().await?;
        outln!(
            "imported {} feedback events, {} users with features, {} items with features into {} \
             ({}: now {} users, {} items, {} events)",
            summary.feedback.inserted + summary.feedback.duplicates,
            summary.users,
            summary.items,
            args.store,
            store.backend(),
            after.users,
            after.items,
            after.feedback
        )?;
        let skipped = summary.skipped;
        if skipped.total() > 0 {
            outln!(
                "skipped {} naming erased users or items: {}, {}, {} (erasure tombstones keep \
                 them out of the store)",
                plural(skipped.total() as u64, "row"),
                plural(skipped.feedback as u64, "feedback event"),
                plural(skipped.users as u64, "user"),
                plural(skipped.items as u64, "item")
            )?;
        }
        Ok(())
    })
}
