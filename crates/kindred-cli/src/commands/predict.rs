//! `kindred predict`: rating predictions for `user,item` pairs read from a CSV file, written as
//! `user,item,prediction,known` (known = both ids were in the training data; otherwise the model's
//! fallback, e.g. global mean plus the known bias, was used).

use std::io::{BufRead, Write};
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use kindred_eval::export::csv_field;
use kindred_models::load_model;

use super::Env;

#[derive(clap::Args)]
pub struct Args {
    /// Saved model directory.
    #[arg(long)]
    model: PathBuf,
    /// CSV file of `user,item` pairs (a `user,item` header line is optional).
    #[arg(long)]
    pairs: PathBuf,
}

pub fn run(args: Args, _env: &Env) -> Result<()> {
    let model = load_model(&args.model)?;
    let file = std::fs::File::open(&args.pairs)
        .with_context(|| format!("opening {}", args.pairs.display()))?;
    let fitted = model.fitted();
    // Refused before any output: a ranking model answers no pair, not even with its fallback
    // (rating models always do), so a half-written CSV would only mislead.
    if model.predict(u32::MAX, u32::MAX).is_none() {
        bail!(
            "model `{}` at {} ranks items and does not predict ratings; use `kindred recommend \
             --model {}` for its lists, or train a rating model (e.g. svd, baseline, auto:task=rating)",
            model.name(),
            args.model.display(),
            args.model.display()
        );
    }
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    writeln!(out, "user,item,prediction,known")?;
    for (n, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line_no = n + 1;
        let line =
            line.with_context(|| format!("{}:{line_no}: not valid UTF-8", args.pairs.display()))?;
        let line = line.trim();
        if line.is_empty() || (line_no == 1 && line.eq_ignore_ascii_case("user,item")) {
            continue;
        }
        let Some((user, item)) = line.split_once(',') else {
            bail!(
                "{}:{line_no}: expected `user,item`, got `{line}`",
                args.pairs.display()
            );
        };
        let (user, item) = (user.trim(), item.trim());
        let (u, i) = (fitted.users.get(user), fitted.items.get(item));
        let prediction = model
            .predict(u.unwrap_or(u32::MAX), i.unwrap_or(u32::MAX))
            .with_context(|| format!("model `{}` does not predict ratings", model.name()))?;
        writeln!(
            out,
            "{},{},{prediction},{}",
            csv_field(user),
            csv_field(item),
            u.is_some() && i.is_some()
        )?;
    }
    out.flush()?;
    Ok(())
}
