//! `kindred report`: one self-contained HTML page (or one PNG per chart) from one or more
//! `kindred eval --json` / `kindred tune --json` result files.

use std::path::PathBuf;

use anyhow::{Context, Result};

use super::Env;

/// Output format of `kindred report`.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Format {
    /// One HTML file with inline SVG charts.
    Html,
    /// One PNG file per chart, in the folder named by --out.
    Png,
}

#[derive(clap::Args)]
pub struct Args {
    /// Result files written by `kindred eval --json` or `kindred tune --json`.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// The HTML file to write (html), or the folder to write the PNG charts into (png).
    #[arg(long)]
    out: PathBuf,
    #[arg(long, value_enum, default_value_t = Format::Html)]
    format: Format,
}

pub fn run(args: Args, env: &Env) -> Result<()> {
    let sources = kindred_report::load_reports(&args.files)?;
    match args.format {
        Format::Html => {
            let page = kindred_report::render_html(&sources);
            std::fs::write(&args.out, page)
                .with_context(|| format!("writing {}", args.out.display()))?;
            env.note(format!("wrote {}", args.out.display()));
        }
        #[cfg(feature = "png")]
        Format::Png => {
            let charts = kindred_report::all_charts(&sources);
            for path in kindred_report::png::write_pngs(&charts, &args.out)? {
                outln!("{}", path.display())?;
            }
        }
        #[cfg(not(feature = "png"))]
        Format::Png => {
            anyhow::bail!(
                "this build of kindred has no PNG export; rebuild with the `png` feature \
                 (`cargo install --path crates/kindred-cli --features png`, or `--features full`)"
            );
        }
    }
    Ok(())
}
