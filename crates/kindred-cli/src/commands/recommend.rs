//! `kindred recommend`: top-K lists from a saved model, as `user,item,rank,score` CSV or JSON Lines.
//! Users the model has never seen get the model's non-personalised ranking, never an empty list.
//! Where titles are known (saved by `kindred train`, or `--item-features`) each item's title is
//! shown beside its id.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use kindred_core::Scored;
use kindred_eval::export::{csv_field, write_recs_csv};
use kindred_models::{load_model, recommend_users};

use super::Env;

#[derive(clap::ValueEnum, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Jsonl,
}

#[derive(clap::Args)]
pub struct Args {
    /// Saved model directory.
    #[arg(long)]
    model: PathBuf,
    /// External user id; repeat for several users.
    #[arg(long = "user")]
    users: Vec<String>,
    /// Recommend for every user the model knows.
    #[arg(long)]
    all_users: bool,
    /// List length.
    #[arg(long, default_value_t = 10, allow_negative_numbers = true, value_parser = crate::args::at_least_one)]
    k: usize,
    #[arg(long, value_enum, default_value_t = Format::Csv)]
    format: Format,
    /// Output file (default: stdout).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Item features (JSON Lines) whose `title` or `name` is shown beside each item; default:
    /// the titles `kindred train` saved with the model, if the data had them.
    #[arg(long)]
    item_features: Option<PathBuf>,
    /// Let items the user interacted with in training be listed too (left out by default).
    #[arg(long)]
    include_seen: bool,
}

/// Top-K for each external user id; unknown ids get the anonymous (non-personalised) list.
pub fn run(args: Args, env: &Env) -> Result<()> {
    if args.all_users != args.users.is_empty() {
        bail!("give either --user ID (one or more) or --all-users");
    }
    let model = load_model(&args.model)?;
    let users: Vec<String> = if args.all_users {
        model.fitted().users.externals().to_vec()
    } else {
        args.users.clone()
    };
    for unknown in users
        .iter()
        .filter(|u| model.fitted().users.get(u).is_none())
    {
        env.note(format!(
            "user `{unknown}` is unknown to the model: non-personalised recommendations"
        ));
    }
    let titles = match &args.item_features {
        Some(path) => {
            let table = kindred_data::jsonl::load_features_jsonl(path)?;
            let titles = crate::titles::from_features(&table);
            if titles.is_none() {
                env.note(format!(
                    "{} has no `title` or `name` text feature: items are shown by id",
                    path.display()
                ));
            }
            titles
        }
        None => crate::titles::load(&args.model)?,
    };
    let lists = recommend_users(model.as_ref(), &users, args.k, !args.include_seen);
    let mut out: Box<dyn Write> = match &args.out {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let items = &model.fitted().items;
    let title_of = |item: u32| {
        titles
            .as_ref()
            .and_then(|t| t.get(items.external(item)))
            .map_or("", String::as_str)
    };
    match (args.format, &titles) {
        (Format::Csv, Some(_)) => {
            writeln!(out, "user,item,rank,score,title")?;
            for (user, list) in &lists {
                for (rank, s) in list.iter().enumerate() {
                    writeln!(
                        out,
                        "{},{},{},{},{}",
                        csv_field(user),
                        csv_field(items.external(s.item)),
                        rank + 1,
                        s.score,
                        csv_field(title_of(s.item))
                    )?;
                }
            }
        }
        (Format::Csv, None) => {
            // Unknown users are not in the model's id map: index them in a local one.
            let user_map =
                kindred_core::IdMap::from(lists.iter().map(|l| l.0.clone()).collect::<Vec<_>>());
            let indexed: Vec<(u32, Vec<Scored>)> = lists
                .into_iter()
                .enumerate()
                .map(|(i, l)| (i as u32, l.1))
                .collect();
            write_recs_csv(&mut out, &user_map, items, &indexed)?;
        }
        (Format::Jsonl, _) => {
            for (user, list) in lists {
                let items: Vec<_> = list
                    .iter()
                    .map(|s| {
                        let mut entry =
                            serde_json::json!({ "item": items.external(s.item), "score": s.score });
                        if titles.is_some() {
                            entry["title"] = title_of(s.item).into();
                        }
                        entry
                    })
                    .collect();
                writeln!(
                    out,
                    "{}",
                    serde_json::json!({ "user": user, "items": items })
                )?;
            }
        }
    }
    out.flush()?;
    Ok(())
}
