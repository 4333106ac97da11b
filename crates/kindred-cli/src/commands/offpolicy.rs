//! `kindred offpolicy`: the click rate a candidate rank config (and model version) would have had
//! on the lists an exploring server logged, estimated from the store's impressions and feedback
//! (IPS, SNIPS, doubly robust) beside the logging policy's own. The replay lives in
//! `kindred_serving::exploration::replay`; `POST /v1/offpolicy` runs the same for admins.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use kindred_rank::RankConfig;
use kindred_serving::clock::unix_now;
use kindred_serving::exploration::replay::{replay, ReplayOptions, ReplayReport};
use kindred_store::Store;

use super::{write_json, Env};

#[derive(clap::Args)]
pub struct Args {
    /// The server's store: a SQLite file or a postgres:// URL.
    #[arg(long)]
    store: String,
    /// Start of the window of logged lists: Unix seconds, or a time ago (`90m`, `24h`, `7d`).
    #[arg(long)]
    since: String,
    /// End of the window (same forms; default: now).
    #[arg(long)]
    until: Option<String>,
    /// The candidate's rank config (TOML; its [exploration] section, if any, is replayed too).
    #[arg(long)]
    rank: PathBuf,
    /// The model version the candidate ranks with (default: the live version).
    #[arg(long)]
    model: Option<String>,
    /// Event types that count as a click, comma-separated.
    #[arg(long, default_value = "click", value_delimiter = ',')]
    reward: Vec<String>,
    /// Seconds after a list within which an event on its item is credited to it.
    #[arg(long)]
    attribution_window: Option<i64>,
    /// Confidence level of the intervals.
    #[arg(long, default_value_t = 0.95)]
    level: f64,
    /// Write the report as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// Unix seconds from `1733400000` or a time before `now` (`45s`, `90m`, `24h`, `7d`).
fn parse_time(text: &str, flag: &str, now: i64) -> Result<i64> {
    if let Ok(t) = text.parse::<i64>() {
        return Ok(t);
    }
    let (number, unit) = text.split_at(text.len().saturating_sub(1));
    let scale = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        _ => bail!("--{flag} {text:?}: give Unix seconds or a time ago such as 90m, 24h or 7d"),
    };
    let amount: i64 = number
        .parse()
        .with_context(|| format!("--{flag} {text:?}: {number:?} is not a whole number"))?;
    let ago = amount
        .checked_mul(scale)
        .filter(|s| *s >= 0)
        .with_context(|| format!("--{flag} {text:?} is out of range"))?;
    Ok(now.saturating_sub(ago))
}

pub fn run(args: Args, env: &Env) -> Result<()> {
    let now = unix_now();
    let since = parse_time(&args.since, "since", now)?;
    let until = match &args.until {
        Some(text) => parse_time(text, "until", now)?,
        None => now.saturating_add(1),
    };
    let candidate = RankConfig::from_file(&args.rank)?;
    let name = args.rank.file_stem().map_or_else(
        || "candidate".to_owned(),
        |s| s.to_string_lossy().into_owned(),
    );
    let mut options = ReplayOptions::new(since, until, candidate, name);
    options.model = args.model.clone();
    options.reward_events = args.reward.clone();
    if let Some(window) = args.attribution_window {
        options.attribution_window_seconds = window;
    }
    options.level = args.level;
    let quiet = env.quiet;
    let progress = Arc::new(move |done: usize, total: usize| {
        if !quiet && total > 0 {
            eprint!("\rreplaying {done}/{total} logged lists");
            if done == total {
                eprintln!();
            }
        }
    });
    let runtime = super::runtime()?;
    let report = runtime.block_on(async {
        let store = Store::open(&args.store)
            .await
            .with_context(|| format!("opening store {}", args.store))?;
        let report = replay(&store, &options, progress, Arc::new(AtomicBool::new(false))).await;
        store.close().await?;
        anyhow::Ok(report?)
    })?;
    outln!("{}", describe(&report))?;
    if let Some(path) = &args.json {
        write_json(path, &report)?;
    }
    Ok(())
}

fn describe(r: &ReplayReport) -> String {
    let row = |name: &str, e: &kindred_serving::exploration::replay::Estimate| {
        format!(
            "  {name:<16} {:.4}  [{:.4}, {:.4}]\n",
            e.estimate, e.lower, e.upper
        )
    };
    let mut out = format!(
        "candidate `{}` (model {}) on {} logged lists ({} shown items, {} clicks) from {} to {}\n\
         click rate per shown item, {:.0}% intervals:\n",
        r.candidate,
        r.model_version,
        r.requests,
        r.impressions,
        r.rewards,
        r.since,
        r.until,
        r.level * 100.0
    );
    out.push_str(&row("logged policy", &r.logged));
    out.push_str(&row("candidate IPS", &r.ips));
    out.push_str(&row("candidate SNIPS", &r.snips));
    out.push_str(&row("candidate DR", &r.doubly_robust));
    out.push_str(&format!(
        "effective sample size {:.1}; the candidate would have shown the logged top item in {} of {} lists",
        r.effective_sample_size, r.top_slot_support, r.requests
    ));
    for w in &r.warnings {
        out.push_str(&format!("\nwarning: {w}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_unix_seconds_or_a_time_ago() {
        assert_eq!(parse_time("1733400000", "since", 0).unwrap(), 1_733_400_000);
        assert_eq!(parse_time("90m", "since", 10_000).unwrap(), 10_000 - 5_400);
        assert_eq!(
            parse_time("2d", "since", 200_000).unwrap(),
            200_000 - 172_800
        );
        for bad in ["yesterday", "5w", "h", "-3d", "99999999999999999d"] {
            let err = parse_time(bad, "since", 0).unwrap_err().to_string();
            assert!(err.contains("--since"), "{bad}: {err}");
        }
    }
}
