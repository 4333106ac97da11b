//! `kindred experiment`: A/B test analysis of per-user observations (`analyze`) and the power /
//! sample-size calculator (`power`). The statistics live in `kindred_stats::experiment`.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use kindred_stats::experiment::power::{
    power_means, power_proportions, sample_size_means, sample_size_proportions,
};
use kindred_stats::experiment::{
    analyze, read_observations, AnalysisOptions, ExperimentReport, MetricKind,
};

use super::{write_json, Env};

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Subcommand,
}

#[derive(clap::Subcommand)]
enum Subcommand {
    /// Analyse an experiment from one row per user: `variant`, optional `user` and `segment`,
    /// metric columns (0/1 for rates), ratio numerators/denominators and `pre_<metric>` covariates.
    Analyze(AnalyzeArgs),
    /// Users per variant needed to detect an effect (or the power at --units users per variant).
    Power(PowerArgs),
}

#[derive(clap::Args)]
struct AnalyzeArgs {
    /// Per-user observations: a .csv file or .jsonl (one JSON object per line).
    #[arg(long)]
    data: PathBuf,
    /// The control variant (default: the first of --weights, else the alphabetically first).
    #[arg(long)]
    control: Option<String>,
    /// A metric column, or NAME=NUMERATOR/DENOMINATOR for a ratio metric; repeatable; the first
    /// is the primary metric of the verdict (default: every column but ids, segment, pre_*).
    #[arg(long = "metric")]
    metrics: Vec<String>,
    /// Two-sided significance level.
    #[arg(long, default_value_t = 0.05)]
    alpha: f64,
    /// Designed allocation for the sample-ratio check, e.g. A=0.5,B=0.5 (default: equal).
    #[arg(long)]
    weights: Option<String>,
    /// Power for the "users needed" estimate of the verdict.
    #[arg(long, default_value_t = 0.8)]
    power: f64,
    /// Planned users per variant: tunes the always-valid sequential test; fix it before the
    /// experiment starts so that repeated looks stay valid (default: the current count).
    #[arg(long)]
    planned_users: Option<u64>,
    /// Write the full report as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
}

#[derive(clap::Args)]
struct PowerArgs {
    /// Baseline conversion rate of a rate metric, e.g. 0.05.
    #[arg(long, conflicts_with = "std_dev")]
    baseline: Option<f64>,
    /// Per-user standard deviation of a mean metric.
    #[arg(long)]
    std_dev: Option<f64>,
    /// Minimum detectable effect, absolute (0.01 = one point on a rate).
    #[arg(long)]
    mde: f64,
    /// Two-sided significance level.
    #[arg(long, default_value_t = 0.05)]
    alpha: f64,
    /// Target power.
    #[arg(long, default_value_t = 0.8)]
    power: f64,
    /// Report the power at this many users per variant instead of the sample size.
    #[arg(long)]
    units: Option<u64>,
}

pub fn run(args: Args, env: &Env) -> Result<()> {
    match args.command {
        Subcommand::Analyze(args) => run_analyze(args, env),
        Subcommand::Power(args) => run_power(args),
    }
}

fn parse_weights(text: &str) -> Result<Vec<(String, f64)>> {
    text.split(',')
        .map(|part| {
            let (name, weight) = part
                .split_once('=')
                .with_context(|| format!("--weights: `{part}` is not VARIANT=WEIGHT"))?;
            let weight: f64 = weight.trim().parse().with_context(|| {
                format!("--weights: `{weight}` (variant {name}) is not a number")
            })?;
            Ok((name.trim().to_string(), weight))
        })
        .collect()
}

fn run_analyze(args: AnalyzeArgs, env: &Env) -> Result<()> {
    let observations = read_observations(&args.data)?;
    env.note(format!(
        "{}: {} users",
        args.data.display(),
        observations.len()
    ));
    let options = AnalysisOptions {
        control: args.control,
        metrics: args.metrics,
        alpha: args.alpha,
        weights: args.weights.as_deref().map(parse_weights).transpose()?,
        power: args.power,
        planned_units_per_variant: args.planned_users,
    };
    let report = analyze(&observations, &options)?;
    print_report(&report)?;
    if let Some(path) = &args.json {
        write_json(path, &report)?;
        env.note(format!("report written to {}", path.display()));
    }
    Ok(())
}

fn print_report(report: &ExperimentReport) -> Result<()> {
    outln!("variant      users   share (expected)")?;
    for v in &report.variants {
        outln!(
            "{:<10} {:>7}   {:>5.1}% ({:.1}%)",
            v.variant,
            v.units,
            100.0 * v.observed_share,
            100.0 * v.expected_share
        )?;
    }
    outln!(
        "sample ratio: chi2 = {:.3}, p = {:.4}{}",
        report.srm.chi_squared,
        report.srm.p_value,
        if report.srm.mismatch {
            "  MISMATCH"
        } else {
            ""
        }
    )?;
    outln!()?;
    let level = 100.0 * (1.0 - report.alpha);
    for m in &report.comparisons {
        let c = &m.comparison;
        let scale = if matches!(m.kind, MetricKind::Proportion) {
            100.0
        } else {
            1.0
        };
        let relative = match (c.relative_lift, c.relative_ci) {
            (Some(r), Some([lo, hi])) => {
                format!(
                    "{:+.2}% [{:+.2}%, {:+.2}%]",
                    100.0 * r,
                    100.0 * lo,
                    100.0 * hi
                )
            }
            _ => "n/a".into(),
        };
        outln!(
            "{} {} vs {} ({}): {:.4} vs {:.4}{}",
            m.metric,
            m.variant,
            report.control,
            m.method,
            scale * c.treatment_mean,
            scale * c.control_mean,
            if scale == 100.0 { " %" } else { "" }
        )?;
        let unit = if scale == 100.0 { " pts" } else { "" };
        outln!(
            "  lift {:+.4}{unit}, {level:.0}% CI [{:+.4}, {:+.4}], relative {relative}, {}",
            scale * c.absolute_lift,
            scale * c.absolute_ci[0],
            scale * c.absolute_ci[1],
            format_p(c.p_value)
        )?;
        if let Some(cuped) = &m.cuped {
            outln!(
                "  CUPED on {}: theta = {:.4}, variance reduced by {:.1}% (unadjusted {})",
                cuped.covariate,
                cuped.theta,
                100.0 * cuped.variance_reduction,
                format_p(cuped.unadjusted.p_value)
            )?;
        }
        outln!(
            "  sequential (mSPRT): always-valid {}, confidence sequence [{:+.4}, {:+.4}]",
            format_p(m.sequential.p_value),
            scale * m.sequential.confidence_sequence[0],
            scale * m.sequential.confidence_sequence[1]
        )?;
    }
    if !report.segments.is_empty() {
        outln!()?;
        outln!("segments (Holm-adjusted p):")?;
        for s in &report.segments {
            let proportion = report
                .metrics
                .iter()
                .any(|m| m.name == s.metric && matches!(m.kind, MetricKind::Proportion));
            let (scale, unit) = if proportion {
                (100.0, " pts")
            } else {
                (1.0, "")
            };
            outln!(
                "  {:<12} {} {}: lift {:+.4}{unit}, {}, adjusted {}{}",
                s.segment,
                s.metric,
                s.variant,
                scale * s.comparison.absolute_lift,
                format_p(s.comparison.p_value),
                format_p(s.adjusted_p_value),
                if s.significant { " *" } else { "" }
            )?;
        }
    }
    for note in &report.notes {
        outln!("note: {note}")?;
    }
    outln!()?;
    outln!("verdict: {}", report.verdict)?;
    Ok(())
}

/// "p = 0.0123" with four decimals, or "p < 0.0001" when it would round to 0.
fn format_p(p: f64) -> String {
    if p < 1e-4 {
        "p < 0.0001".into()
    } else {
        format!("p = {p:.4}")
    }
}

fn run_power(args: PowerArgs) -> Result<()> {
    let (what, power_at, size) = match (args.baseline, args.std_dev) {
        (Some(baseline), None) => (
            format!(
                "rate {:.2}% -> {:.2}% ({:+.2} pts)",
                100.0 * baseline,
                100.0 * (baseline + args.mde),
                100.0 * args.mde
            ),
            args.units
                .map(|n| power_proportions(baseline, args.mde, n, args.alpha))
                .transpose()?,
            sample_size_proportions(baseline, args.mde, args.alpha, args.power),
        ),
        (None, Some(sd)) => (
            format!("mean lift {:+} with standard deviation {sd}", args.mde),
            args.units
                .map(|n| power_means(sd, args.mde, n, args.alpha))
                .transpose()?,
            sample_size_means(sd, args.mde, args.alpha, args.power),
        ),
        _ => bail!("give --baseline RATE for a rate metric or --std-dev SD for a mean metric"),
    };
    match (args.units, power_at) {
        (Some(units), Some(power)) => outln!(
            "{what}, alpha {} two-sided: power {:.1}% with {units} users per variant",
            args.alpha,
            100.0 * power
        )?,
        _ => {
            let n = size?;
            outln!(
                "{what}, alpha {} two-sided, power {:.0}%: {n} users per variant ({} in all for two variants)",
                args.alpha,
                100.0 * args.power,
                2 * n
            )?;
        }
    }
    Ok(())
}
