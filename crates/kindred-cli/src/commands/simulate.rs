//! `kindred simulate`: simulated users with known preferences (a synthetic world) ask a running
//! `kindred serve` for lists and click on them according to a known click model; prints what
//! they saw per model version and experiment variant (measured CTR against the oracle's).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use kindred_sim::{simulate, Clock, Drift, SimConfig, SimSummary, World};

use super::{runtime, write_json, Env};
use crate::table::render;

/// How to serve the world a run simulates, shown after the options.
const AFTER_HELP: &str = "\
The world is the synthetic generator's: `kindred import --data synthetic:SPEC` writes exactly
the history that `--world SPEC` users have behind them (users u0.., items i0..). For example:

  kindred import --data synthetic:users=1000,items=500,seed=7,implicit=true --store sim.db
  kindred serve --store sim.db      (with a model trained into it; see `kindred serve --help`)
  kindred simulate --world users=1000,items=500,seed=7,implicit=true --steps 5000 --json sim.json

A world with `late_items=0.2` leaves a fifth of its items out of the history; `--drift
item-arrival --drift-step N` adds them to the catalog at step N (the model does not know them:
only the fallback chain or an exploring rank config can show them).";

#[derive(clap::Args)]
#[command(after_help = AFTER_HELP)]
pub struct Args {
    /// Root URL of the running server.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    server: String,
    /// The world: a synthetic spec (users=N,items=M,seed=S,...), the same one imported.
    #[arg(long, default_value = "users=1000,items=500,seed=42")]
    world: String,
    /// Simulated users: the first N human users of the world (0 = all).
    #[arg(long, default_value_t = 0)]
    users: usize,
    /// Steps: each is one user asking for a list and reacting to it.
    #[arg(long, default_value_t = 1000)]
    steps: u64,
    /// Stop after this many seconds even if steps remain.
    #[arg(long)]
    duration: Option<f64>,
    /// Items asked for per list (`n`).
    #[arg(long, default_value_t = 10)]
    list_size: usize,
    /// Keep-alive connections (1 is reproducible against a deterministic server).
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Expected organic events per step (users finding items without a recommendation).
    #[arg(long, default_value_t = 0.0)]
    organic: f64,
    /// Drift scenario: none, popularity-shift[:share=0.5], taste-drift[:share=0.5],
    /// item-arrival (the world's `late_items` join the catalog at --drift-step),
    /// bot-wave[:bots=5,events=300,seconds=60,target=random|single].
    #[arg(long, default_value = "none")]
    drift: String,
    /// First step the drift applies to.
    #[arg(long, default_value_t = 0)]
    drift_step: u64,
    /// Simulated clock: step s happens at START + s * --seconds-per-step (Unix seconds).
    /// Without it the server stamps events with its own clock.
    #[arg(long)]
    clock_start: Option<i64>,
    #[arg(long, default_value_t = 60.0)]
    seconds_per_step: f64,
    /// API key sent as `Authorization: Bearer KEY` (needs read and write scopes).
    #[arg(long)]
    api_key: Option<String>,
    /// Also write the summary as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
}

pub fn run(args: Args, env: &Env) -> Result<()> {
    let duration = match args.duration {
        None => None,
        Some(s) if s.is_finite() && s > 0.0 && s < 1e9 => Some(Duration::from_secs_f64(s)),
        Some(s) => bail!("--duration must be a positive number of seconds, got {s}"),
    };
    let config = SimConfig {
        server: args.server,
        api_key: args.api_key,
        users: args.users,
        steps: args.steps,
        duration,
        list_size: args.list_size,
        concurrency: args.concurrency,
        seed: args.seed,
        clock: match args.clock_start {
            Some(start) => Clock::Simulated {
                start,
                seconds_per_step: args.seconds_per_step,
            },
            None => Clock::Server,
        },
        organic_per_step: args.organic,
        drift: Drift::parse(&args.drift)?,
        drift_start_step: args.drift_step,
        ..SimConfig::default()
    };
    config.validate()?;
    env.note(format!("generating the world {}", args.world));
    let world = Arc::new(World::from_spec(&args.world)?);
    let summary = runtime()?.block_on(simulate(
        world,
        config,
        Arc::clone(&env.progress),
        env.cancel.clone(),
    ))?;
    outln!("{}", table(&summary))?;
    if let Some(path) = &args.json {
        write_json(path, &summary).context("writing the simulation summary")?;
    }
    Ok(())
}

fn table(s: &SimSummary) -> String {
    let arrivals = if s.items_arrived > 0 {
        format!(
            "{} items arrived; shown {} times, clicked {} times\n",
            s.items_arrived, s.late_items_shown, s.late_item_clicks
        )
    } else {
        String::new()
    };
    let mut out = format!(
        "{} steps in {:.1}s: {} lists, {} items shown, {} clicks, {} purchases, {} organic events, \
         {} bot events, {} non-2xx answers, {} transport errors\n{arrivals}\n",
        s.steps,
        s.elapsed_seconds,
        s.recommend_requests,
        s.items_shown,
        s.clicks,
        s.purchases,
        s.organic_events,
        s.bot_events,
        s.non_2xx,
        s.transport_errors
    );
    let headers = [
        "group",
        "lists",
        "items",
        "clicks",
        "purchases",
        "CTR",
        "oracle CTR",
    ]
    .map(String::from);
    let row = |name: String, g: &kindred_sim::GroupStats| {
        vec![
            name,
            g.lists.to_string(),
            g.items.to_string(),
            g.clicks.to_string(),
            g.purchases.to_string(),
            format!("{:.4}", g.ctr),
            format!("{:.4}", g.expected_ctr),
        ]
    };
    let mut rows = vec![row("all".into(), &s.overall)];
    rows.extend(
        s.by_model_version
            .iter()
            .map(|(v, g)| row(format!("model {v}"), g)),
    );
    rows.extend(
        s.by_variant
            .iter()
            .map(|(v, g)| row(format!("variant {v}"), g)),
    );
    out.push_str(&render(&headers, &rows));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_lists_every_group() {
        let mut s = SimSummary::default();
        let g = kindred_sim::GroupStats {
            lists: 2,
            items: 20,
            clicks: 3,
            ctr: 0.15,
            expected_ctr: 0.12,
            ..Default::default()
        };
        s.overall = g.clone();
        s.by_model_version.insert("v7".into(), g.clone());
        s.by_variant.insert("exp/treatment".into(), g);
        let text = table(&s);
        assert!(text.contains("model v7"), "{text}");
        assert!(text.contains("variant exp/treatment"), "{text}");
        assert!(text.contains("0.1500") && text.contains("0.1200"), "{text}");
    }
}
