//! `kindred serve`: the recommendation server on a store: a SQLite file (the
//! embedded default) or a `postgres://` URL. Settings come from `--config FILE`, then the
//! `KINDRED_*` environment variables, then these flags. A SQLite store must exist (a mistyped
//! path would otherwise serve an empty new one) unless `--allow-empty` says to start without
//! data or a model. Stops cleanly on Ctrl-C or SIGTERM, finishing requests in flight, closing
//! the store and saying so.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use kindred_core::CancelFlag;
use kindred_server::AppState;
use kindred_serving::{ServeMode, ServerConfig};
use kindred_store::Store;

use super::Env;

#[derive(clap::ValueEnum, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(clap::Args)]
pub struct Args {
    /// Server config file (TOML; see kindred-server's config.rs for every key).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Store: SQLite file or postgres:// URL.
    #[arg(long)]
    store: Option<String>,
    /// Address to listen on, e.g. 127.0.0.1:8080.
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Lists scored per request (realtime) or precomputed per user (batch).
    #[arg(long, value_parser = ["realtime", "batch"])]
    mode: Option<String>,
    /// Rank config for lists (filters, re-ranking, fallbacks).
    #[arg(long)]
    rank: Option<PathBuf>,
    /// List cache TTL in seconds (0: no cache).
    #[arg(long)]
    cache_ttl: Option<u64>,
    /// Retrain and publish every this many seconds (0: never).
    #[arg(long)]
    retrain_interval: Option<u64>,
    /// Log lines as text or JSON (one object per line).
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Log level: error, warn, info, debug, trace.
    #[arg(long, default_value = "info")]
    log_level: tracing::Level,
    /// Start even if the SQLite store does not exist yet (it is created empty) or holds no live
    /// model, and report ready without one (feedback first, a model later).
    #[arg(long)]
    allow_empty: bool,
}

/// The config from file, environment and flags, validated.
fn config(args: &Args) -> Result<ServerConfig> {
    let mut config = match &args.config {
        Some(path) => ServerConfig::from_file(path)?,
        None => ServerConfig::default(),
    };
    config.apply_env(|k| std::env::var(k).ok())?;
    if let Some(store) = &args.store {
        config.store = store.clone();
    }
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    if let Some(mode) = &args.mode {
        config.mode = if mode == "batch" {
            ServeMode::Batch
        } else {
            ServeMode::Realtime
        };
    }
    if let Some(rank) = &args.rank {
        config.rank = Some(rank.clone());
    }
    if let Some(ttl) = args.cache_ttl {
        config.cache.ttl_seconds = ttl;
    }
    if let Some(interval) = args.retrain_interval {
        config.training.interval_seconds = interval;
    }
    if args.allow_empty {
        config.ready_without_model = true;
    }
    config.validate()?;
    Ok(config)
}

/// Refuses a SQLite store file that does not exist: opening it would create an empty store and
/// serve empty lists, which is almost always a mistyped path.
fn check_store_exists(store: &str, allow_empty: bool) -> Result<()> {
    if allow_empty || store.starts_with("postgres://") || store.starts_with("postgresql://") {
        return Ok(());
    }
    let path = std::path::Path::new(store.strip_prefix("sqlite:").unwrap_or(store));
    if path.exists() {
        return Ok(());
    }
    anyhow::bail!(
        "store {store} does not exist; create it with your data (`kindred import --data SPEC \
         --store {store}`), or pass --allow-empty to start an empty one"
    )
}

/// Says on the log what a newcomer would otherwise discover from empty answers: no feedback,
/// or no live model (lists from fallbacks only, and not ready unless allowed).
async fn warn_if_empty(store: &Store, location: &str) -> Result<()> {
    let counts = store.counts().await?;
    if counts.feedback == 0 {
        tracing::warn!(
            "store {location} holds no feedback: lists will be empty until feedback arrives \
             (POST /v1/feedback) or is imported (`kindred import`)"
        );
    }
    if store.live_model().await?.is_none() {
        tracing::warn!(
            "no model version is live in {location}: lists come from fallbacks (popularity) \
             and /health/ready answers 503 until one is published (`kindred train --store \
             {location} --model auto --publish`, or POST /v1/models)"
        );
    }
    Ok(())
}

fn init_logs(format: LogFormat, level: tracing::Level) {
    // Colour only for a person at a terminal: escape codes would litter a log file.
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(colour)
        .with_max_level(level)
        .with_target(false);
    // A subscriber may already be installed (tests running commands in-process): keep it.
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// SIGTERM's listener (no such signal elsewhere).
#[cfg(unix)]
type TermSignal = tokio::signal::unix::Signal;
#[cfg(not(unix))]
type TermSignal = std::convert::Infallible;

/// Resolves when Ctrl-C raised `cancel` or SIGTERM arrived. The SIGTERM listener is made by
/// the caller before it says the server is ready: one made later, when this future is first
/// polled, leaves a window where SIGTERM still kills the process with the default action.
async fn stop_requested(cancel: CancelFlag, term: Option<TermSignal>) {
    let flag = async move {
        while !cancel.is_cancelled() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let term = async move {
        match term {
            #[cfg(unix)]
            Some(mut term) => {
                term.recv().await;
            }
            #[cfg(not(unix))]
            Some(never) => match never {},
            None => kindred_server::shutdown_signal().await,
        }
    };
    tokio::select! {
        _ = flag => {}
        _ = term => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

/// Starts the server on `config` and runs it until a stop is requested; `on_ready` runs once
/// it listens (with the bound address).
pub async fn serve_until_stopped(
    config: ServerConfig,
    cancel: CancelFlag,
    on_ready: impl FnOnce(SocketAddr),
) -> Result<()> {
    let location = config.store.clone();
    let store = Store::open(&location)
        .await
        .with_context(|| format!("opening store {location}"))?;
    warn_if_empty(&store, &location).await?;
    let listener = kindred_server::bind(config.listen).await?;
    let addr = listener.local_addr()?;
    let state = AppState::new(config, store.clone()).await?;
    let term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    on_ready(addr);
    let served = kindred_server::serve(state, listener, stop_requested(cancel, term)).await;
    // Closed even when serving failed: the write-ahead log goes into the database file.
    let closed = store.close().await;
    served?;
    closed.with_context(|| format!("closing store {location}"))?;
    Ok(())
}

pub fn run(args: Args, env: &Env) -> Result<()> {
    init_logs(args.log_format, args.log_level);
    let config = config(&args)?;
    check_store_exists(&config.store, args.allow_empty)?;
    let runtime = super::runtime()?;
    let store = config.store.clone();
    runtime.block_on(serve_until_stopped(config, env.cancel.clone(), |addr| {
        tracing::info!(%addr, store = %store, "kindred serving");
        // Nobody may be reading stdout (a service manager): the log line above says it too.
        let _ = outln!("kindred serving on http://{addr} (store {store}); Ctrl-C stops");
    }))?;
    tracing::info!(store = %store, "kindred stopped");
    outln!("kindred stopped; store {store} closed")?;
    Ok(())
}
