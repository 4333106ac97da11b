//! `kindred monitor`: drift (PSI per distribution), data-quality counters and the alerts of the
//! default rules for a dataset's last window against the reference window before it.

use std::path::PathBuf;

use anyhow::{bail, Result};
use kindred_stats::monitoring::{
    default_rules, events_from_interactions, monitor, MonitorReport, QualityConfig, WindowConfig,
};

use super::{write_json, Env};
use crate::data::{DataArgs, PipelineArgs};
use crate::table::render;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    data: DataArgs,
    #[command(flatten)]
    cleaning: PipelineArgs,
    /// Length of the reference window in days, right before the current window.
    #[arg(long, default_value_t = 7.0)]
    reference_days: f64,
    /// Length of the current window in days, ending after the latest event.
    #[arg(long, default_value_t = 1.0)]
    window_days: f64,
    /// Item-popularity bins: this many top items of the reference plus "other".
    #[arg(long, default_value_t = 20)]
    top_items: usize,
    /// Also write the report as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
}

fn seconds(days: f64, flag: &str) -> Result<i64> {
    if !(days.is_finite() && days > 0.0 && days < 1e6) {
        bail!("--{flag} must be a positive number of days, got {days}");
    }
    Ok((days * 86_400.0).round().max(1.0) as i64)
}

pub fn run(args: Args, env: &Env) -> Result<()> {
    let windows = WindowConfig {
        reference_seconds: seconds(args.reference_days, "reference-days")?,
        current_seconds: seconds(args.window_days, "window-days")?,
        top_items: args.top_items.max(1),
        ..WindowConfig::default()
    };
    let dataset = args.data.load_cleaned(&args.cleaning, env.quiet)?;
    let (events, untimed) = events_from_interactions(&dataset.interactions);
    if untimed > 0 {
        env.note(format!("{untimed} rows without a timestamp are left out"));
    }
    let Some(report) = monitor(
        &events,
        &windows,
        &QualityConfig::default(),
        &default_rules(),
        None,
    )?
    else {
        bail!(
            "{}: no rows with a timestamp, nothing to monitor",
            args.data.data
        );
    };
    out!("{}", describe(&report))?;
    if let Some(path) = &args.json {
        write_json(path, &report)?;
    }
    Ok(())
}

fn describe(report: &MonitorReport) -> String {
    let w = &report.drift.windows;
    let mut out = format!(
        "reference window [{}, {}): {} events; current window [{}, {}): {} events\n\n",
        kindred_data::quality::utc_date(w.reference.start),
        kindred_data::quality::utc_date(w.reference.end),
        report.drift.reference_events,
        kindred_data::quality::utc_date(w.current.start),
        kindred_data::quality::utc_date(w.current.end),
        report.drift.current_events,
    );
    let rows: Vec<Vec<String>> = report
        .drift
        .distributions
        .iter()
        .map(|d| {
            vec![
                d.name.clone(),
                d.psi.map_or("-".to_owned(), |p| format!("{p:.4}")),
                d.level.map_or("too few observations".to_owned(), |l| {
                    format!("{l:?}").to_lowercase()
                }),
                format!("{}", d.reference_observations),
                format!("{}", d.current_observations),
            ]
        })
        .collect();
    let headers = [
        "distribution",
        "PSI",
        "reading",
        "reference obs",
        "current obs",
    ];
    out.push_str(&render(&headers.map(String::from), &rows));
    out.push('\n');
    let (r, c) = (&report.reference_quality, &report.current_quality);
    let quality = [
        (
            "events per day",
            format!("{:.1}", r.events_per_day),
            format!("{:.1}", c.events_per_day),
        ),
        ("users", r.users.to_string(), c.users.to_string()),
        ("items", r.items.to_string(), c.items.to_string()),
        (
            "duplicate rate",
            format!("{:.4}", r.duplicate_rate),
            format!("{:.4}", c.duplicate_rate),
        ),
        (
            "bot threshold (events/user)",
            format!("{:.1}", r.bot_threshold),
            format!("{:.1}", c.bot_threshold),
        ),
        (
            "bot-like users",
            r.bot_users.to_string(),
            c.bot_users.to_string(),
        ),
        (
            "bot event share",
            format!("{:.4}", r.bot_event_share),
            format!("{:.4}", c.bot_event_share),
        ),
    ];
    let rows: Vec<Vec<String>> = quality
        .into_iter()
        .map(|(name, a, b)| vec![name.to_owned(), a, b])
        .collect();
    out.push_str(&render(
        &["quality".into(), "reference".into(), "current".into()],
        &rows,
    ));
    out.push('\n');
    if report.alerts.is_empty() {
        out.push_str("alerts: none\n");
    } else {
        out.push_str(&format!("alerts: {}\n", report.alerts.len()));
        for alert in &report.alerts {
            out.push_str(&format!("  [{:?}] {}\n", alert.kind, alert.message));
        }
    }
    out
}
