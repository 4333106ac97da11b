//! `kindred cluster`: Kindred's heavy jobs across processes and hosts on timely-dataflow.
//!
//! - `kindred cluster shard`: write a dataset as ordered Parquet shards (the jobs' input).
//! - `kindred cluster publish`: register a job's factors as a model version of a store, where
//!   `kindred serve` picks it up like any trained version.
//! - `kindred cluster als`: distributed implicit ALS. Every process runs the same command with
//!   its own `--process`; `--local N` starts N processes on this machine instead (each one a
//!   child running the same command), and stops them all as soon as one fails.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use std::collections::HashMap;

use kindred_cluster::factors::read_factors;
use kindred_cluster::{
    run_als, AlsJob, AlsSummary, BatchSettings, IterationReport, ListsJob, Topology,
};
use kindred_core::TrainSet;
use kindred_data::import::ImportOptions;
use kindred_models::implicit::als::{AlsModel, AlsParams};
use kindred_models::{Model, ModelSpec};

use super::Env;
use crate::data::{DataArgs, PipelineArgs};

const AFTER_HELP: &str = "\
On a cluster: put the same binary and the same hosts file (one host:port per line, process i on
line i) on every host, make the input shards readable at the same paths on every host (process
p reads shards p, p + N, ... with N processes x W workers), and start on every host

  kindred cluster als --hosts hosts.txt --process I --workers W --input DIR --out OUT --checkpoint CK

On one machine, `--local N` starts the N processes itself on free localhost ports.";

#[derive(clap::Subcommand)]
pub enum ClusterCommand {
    /// Write a dataset as N ordered Parquet shards (their concatenation is the dataset).
    Shard(ShardArgs),
    /// Distributed implicit ALS over Parquet shards.
    Als(AlsArgs),
    /// Register the factors of a `cluster als` run as a model version of a store, for serving.
    Publish(PublishArgs),
}

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: ClusterCommand,
}

#[derive(clap::Args)]
pub struct ShardArgs {
    #[command(flatten)]
    data: DataArgs,
    #[command(flatten)]
    cleaning: PipelineArgs,
    /// Output directory (shard-00000.parquet, ...).
    #[arg(long)]
    out: PathBuf,
    #[arg(long, default_value_t = 8)]
    shards: usize,
}

#[derive(clap::Args)]
pub struct PublishArgs {
    /// The `--out` directory of a `kindred cluster als` run.
    #[arg(long)]
    factors: PathBuf,
    /// The store to register the version in (SQLite file or postgres:// URL); it should hold
    /// the data the job trained on (users and items it lacks are handled, see below).
    #[arg(long)]
    store: String,
    /// Keep only ratings >= T of the store's data, as `kindred train --positive` (the seen
    /// items and fold-in history of the served model).
    #[arg(long)]
    positive: Option<f32>,
    /// Where the artifact goes (default: `<store file>.models/`).
    #[arg(long)]
    models_dir: Option<PathBuf>,
    /// Make the new version live.
    #[arg(long)]
    activate: bool,
}

#[derive(clap::Args, Clone)]
#[command(after_help = AFTER_HELP)]
pub struct AlsArgs {
    /// Input: Parquet files, or directories whose *.parquet files are taken in name order.
    #[arg(long, required = true, num_args = 1..)]
    input: Vec<PathBuf>,
    /// Model spec (als:factors=64,iterations=15,reg=0.05,alpha=1,...), as `kindred train`.
    #[arg(long, default_value = "als")]
    model: String,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Output directory: user_factors/ and item_factors/ (Parquet: id, features) and summary.json.
    #[arg(long)]
    out: PathBuf,
    /// Checkpoint directory: factors after every iteration; a restarted job resumes from it.
    #[arg(long)]
    checkpoint: Option<PathBuf>,
    /// Hosts file: one host:port per line, process i on line i.
    #[arg(long, conflicts_with = "local")]
    hosts: Option<PathBuf>,
    /// This process's line in the hosts file (0-based).
    #[arg(long, default_value_t = 0)]
    process: usize,
    /// Start N processes on this machine (localhost ports) and wait for them.
    #[arg(long)]
    local: Option<usize>,
    /// Worker threads per process.
    #[arg(long, default_value_t = 1)]
    workers: usize,
    /// Seconds to keep trying to reach the other processes.
    #[arg(long, default_value_t = 60)]
    connect_timeout: u64,
    /// Also write the job summary (per-iteration seconds and bytes) here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// After training, every user's top K unseen items to OUT/topk/ (Parquet: user, item, rank,
    /// score; one part per worker).
    #[arg(long, default_value_t = 0)]
    topk: usize,
    /// After training, every item's K nearest items by cosine to OUT/neighbours/.
    #[arg(long, default_value_t = 0)]
    neighbours: usize,
    /// Rank config whose hard [filters] (hidden items, availability windows) the lists obey.
    #[arg(long)]
    rank: Option<PathBuf>,
    /// Item features (JSON Lines) with the columns the rank config's filters name.
    #[arg(long, requires = "rank")]
    item_features: Option<PathBuf>,
    /// Unix time the availability windows are evaluated at (default: each process's clock; give
    /// it on a cluster so that every process uses the same).
    #[arg(long)]
    now: Option<i64>,
}

pub fn run(args: Args, env: &Env) -> Result<()> {
    match args.command {
        ClusterCommand::Shard(a) => shard(a, env),
        ClusterCommand::Publish(a) => publish(a, env),
        ClusterCommand::Als(a) => match a.local {
            Some(n) => spawn_local(&a, n, env),
            None => als(a, env),
        },
    }
}

fn shard(args: ShardArgs, env: &Env) -> Result<()> {
    if args.shards == 0 {
        bail!("--shards must be at least 1");
    }
    let dataset = args.data.load_cleaned(&args.cleaning, env.quiet)?;
    let n = dataset.interactions.len();
    kindred_cluster::shard::write_shards(&dataset.interactions, &args.out, args.shards)?;
    env.note(format!(
        "wrote {n} rows as {} shards to {}",
        args.shards,
        args.out.display()
    ));
    Ok(())
}

/// The input files: files as given, directories expanded to their *.parquet files by name.
fn input_files(inputs: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for input in inputs {
        if input.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(input)
                .with_context(|| format!("reading {}", input.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "parquet"))
                .collect();
            found.sort();
            if found.is_empty() {
                bail!("{}: no *.parquet files", input.display());
            }
            files.extend(found);
        } else if input.is_file() {
            files.push(input.clone());
        } else {
            bail!("{}: no such file or directory", input.display());
        }
    }
    Ok(files)
}

fn als_params(spec: &str) -> Result<AlsParams> {
    let spec = ModelSpec::parse(spec)?;
    if spec.name != "als" {
        bail!("cluster als trains `als` models, not `{}`", spec.name);
    }
    let params: AlsParams = spec.typed()?;
    params.validate()?;
    if params.half_life > 0.0 {
        // The shards are read per worker, so no worker sees a user's whole chronology.
        bail!("cluster als does not weight by recency; drop half_life (or train with `kindred train`)");
    }
    Ok(params)
}

fn als(args: AlsArgs, env: &Env) -> Result<()> {
    let params = als_params(&args.model)?;
    let topology = match &args.hosts {
        Some(hosts) => {
            let mut t = Topology::from_hosts_file(hosts, args.process, args.workers)?;
            t.connect_timeout = Duration::from_secs(args.connect_timeout);
            t
        }
        None => Topology::local_threads(args.workers),
    };
    let job = AlsJob {
        inputs: input_files(&args.input)?,
        import: ImportOptions::default(),
        params,
        seed: args.seed,
        checkpoint_dir: args.checkpoint.clone(),
        out_dir: Some(args.out.clone()),
        threads_per_worker: 1,
        lists: (args.topk > 0 || args.neighbours > 0).then(|| ListsJob {
            settings: BatchSettings {
                k: args.topk,
                neighbours: args.neighbours,
            },
            rank_config: args.rank.clone(),
            item_features: args.item_features.clone(),
            now: args.now.unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs() as i64)
            }),
        }),
    };
    let quiet = env.quiet;
    let process = topology.process;
    let total = job.params.iterations;
    env.note(format!(
        "process {process} of {}: {} worker(s), {} input file(s)",
        topology.processes(),
        topology.workers_per_process,
        job.inputs.len()
    ));
    let on_iteration = Arc::new(move |r: &IterationReport| {
        if !quiet {
            eprintln!(
                "iteration {}/{total}: {:.2} s, {} exchanged ({} between processes), checkpoint {:.2} s",
                r.iteration,
                r.seconds,
                bytes(r.bytes_to_workers),
                bytes(r.bytes_to_processes),
                r.checkpoint_seconds
            );
        }
    });
    quiet_network_panics();
    let summary = run_als(&topology, job, on_iteration)
        .with_context(|| format!("cluster als, process {process}"))?;
    if summary.resumed_from > 0 {
        env.note(format!(
            "resumed from the checkpoint after iteration {}",
            summary.resumed_from
        ));
    }
    if let (Some(path), 0) = (&args.json, process) {
        super::write_json(path, &summary)?;
    }
    if process == 0 {
        print_summary(&summary, &args.out)?;
    }
    Ok(())
}

/// When a peer dies, timely's threads fail by panicking; the job reports the failure as its
/// error, so their panics are one line each here instead of a backtrace apiece.
fn quiet_network_panics() {
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let thread = std::thread::current();
        let name = thread.name().unwrap_or_default();
        if name.starts_with("timely:") {
            let payload = info.payload();
            let message = payload
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| payload.downcast_ref::<&str>().copied())
                .unwrap_or("panicked");
            eprintln!("{name}: {message}");
        } else {
            default_hook(info);
        }
    }));
}

fn bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 30 => format!("{:.2} GiB", n as f64 / (1u64 << 30) as f64),
        n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / (1u64 << 20) as f64),
        n if n >= 1 << 10 => format!("{:.1} KiB", n as f64 / 1024.0),
        n => format!("{n} B"),
    }
}

fn print_summary(s: &AlsSummary, out: &Path) -> Result<()> {
    let run: Vec<&IterationReport> = s.iterations.iter().collect();
    let mean = |f: fn(&IterationReport) -> f64| {
        run.iter().map(|r| f(r)).sum::<f64>() / run.len().max(1) as f64
    };
    outln!(
        "als on {} process(es) x {} worker(s): {} users, {} items, {} events ({} pairs), {} factors",
        s.processes,
        s.workers / s.processes.max(1),
        s.users,
        s.items,
        s.rows,
        s.pairs,
        s.factors
    )?;
    outln!(
        "{} iteration(s) run{}: {:.3} s per iteration, {} exchanged per iteration; load {:.2} s",
        run.len(),
        if s.resumed_from > 0 {
            format!(" after resuming at {}", s.resumed_from)
        } else {
            String::new()
        },
        mean(|r| r.seconds),
        bytes(mean(|r| r.bytes_to_workers as f64) as u64),
        s.load_seconds
    )?;
    if let Some(lists) = &s.lists {
        outln!(
            "batch lists: {} user-list rows in {}, {} neighbour rows in {} ({:.2} s, {} exchanged)",
            lists.user_rows,
            out.join("topk").display(),
            lists.neighbour_rows,
            out.join("neighbours").display(),
            lists.seconds,
            bytes(lists.bytes_to_workers)
        )?;
    }
    outln!("factors written to {}", out.display())?;
    Ok(())
}

/// Factors by external id.
fn factors_by_id(dir: &Path) -> Result<(HashMap<String, Vec<f32>>, usize)> {
    let (ids, values, f) = read_factors(dir)?;
    let map = ids
        .into_iter()
        .zip(values.chunks_exact(f.max(1)).map(<[f32]>::to_vec))
        .collect();
    Ok((map, f))
}

fn publish(args: PublishArgs, env: &Env) -> Result<()> {
    let summary_path = args.factors.join("summary.json");
    let summary: AlsSummary = serde_json::from_str(
        &std::fs::read_to_string(&summary_path)
            .with_context(|| format!("reading {}", summary_path.display()))?,
    )
    .with_context(|| format!("{}: not a cluster als summary", summary_path.display()))?;
    let (users, fu) = factors_by_id(&args.factors.join("user_factors"))?;
    let (items, fi) = factors_by_id(&args.factors.join("item_factors"))?;
    let f = summary.params.factors;
    if fu != f || fi != f {
        bail!(
            "{}: factors have {fu}/{fi} values per row, the summary says {f}",
            args.factors.display()
        );
    }
    let artifacts = args
        .models_dir
        .clone()
        .unwrap_or_else(|| kindred_serving::config::artifacts_dir_for(&args.store));
    let params = serde_json::json!({
        "spec": {"model": "als", "positive": args.positive, "seed": summary.params.seed},
        "model": summary.params,
        "trained_by": "kindred cluster als",
    });
    let metrics = serde_json::json!({
        "cluster": {
            "processes": summary.processes,
            "workers": summary.workers,
            "users": summary.users,
            "items": summary.items,
            "events": summary.rows,
            "iterations": summary.iterations.len() + summary.resumed_from,
        }
    });
    let missing = Arc::new(std::sync::Mutex::new((0usize, 0usize)));
    let counted = Arc::clone(&missing);
    let als_params = summary.params.clone();
    let build = move |train: &TrainSet| -> kindred_core::Result<Box<dyn Model>> {
        let (n_users, n_items) = (train.n_users(), train.n_items());
        let mut item_factors = vec![0f32; n_items * f];
        let mut missing_items = 0;
        for i in 0..n_items {
            match items.get(train.data.item_ids().external(i as u32)) {
                Some(v) => item_factors[i * f..(i + 1) * f].copy_from_slice(v),
                None => missing_items += 1,
            }
        }
        let mut user_factors = vec![0f32; n_users * f];
        let mut absent = Vec::new();
        for u in 0..n_users {
            match users.get(train.data.user_ids().external(u as u32)) {
                Some(v) => user_factors[u * f..(u + 1) * f].copy_from_slice(v),
                None => absent.push(u),
            }
        }
        let mut model = AlsModel::from_factors(
            als_params.clone(),
            train,
            user_factors.clone(),
            item_factors.clone(),
        )?;
        if !absent.is_empty() {
            // Users the job never saw (newer than its input) are folded in from their history.
            let weights = train.data.weights();
            for &u in &absent {
                let history: Vec<(u32, f32)> = train
                    .by_user
                    .row(u)
                    .iter()
                    .zip(train.by_user.row_entries(u))
                    .map(|(&i, &e)| (i, weights[e as usize]))
                    .collect();
                user_factors[u * f..(u + 1) * f].copy_from_slice(&model.fold_in(&history));
            }
            model = AlsModel::from_factors(als_params, train, user_factors, item_factors)?;
        }
        if let Ok(mut m) = counted.lock() {
            *m = (absent.len(), missing_items);
        }
        Ok(Box::new(model))
    };
    super::runtime()?.block_on(async {
        let store = kindred_store::Store::open(&args.store)
            .await
            .with_context(|| format!("opening store {}", args.store))?;
        let mut record = kindred_serving::register_external(
            &store,
            &artifacts,
            "als",
            args.positive,
            params,
            metrics,
            build,
        )
        .await?;
        if args.activate {
            record = store.activate_model(&record.model.version).await?;
        }
        let (folded, zero_items) = missing.lock().map(|m| *m).unwrap_or_default();
        outln!(
            "registered als version {} from {} ({}); artifact {}",
            record.model.version,
            args.factors.display(),
            if record.live {
                "live now"
            } else {
                "not live: activate with --activate or POST /v1/models/VERSION/activate"
            },
            record.model.artifact
        )?;
        if folded > 0 || zero_items > 0 {
            env.note(format!(
                "{folded} store users absent from the job were folded in from their history; \
                 {zero_items} store items absent from the job have zero factors (recommended \
                 only by fallbacks until the next training run)"
            ));
        }
        Ok(())
    })
}

/// Free localhost ports for `n` processes (bound, read, released: another program could take
/// one in between, which then fails the job's listen with a clear error).
fn free_ports(n: usize) -> Result<Vec<u16>> {
    let listeners: Vec<std::net::TcpListener> = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
        .collect::<std::io::Result<_>>()
        .context("finding free localhost ports")?;
    Ok(listeners
        .iter()
        .filter_map(|l| l.local_addr().ok().map(|a| a.port()))
        .collect())
}

fn spawn_local(args: &AlsArgs, n: usize, env: &Env) -> Result<()> {
    if n == 0 {
        bail!("--local needs at least 1 process");
    }
    let ports = free_ports(n)?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let hosts = args.out.join("hosts.local.txt");
    let mut file =
        std::fs::File::create(&hosts).with_context(|| format!("writing {}", hosts.display()))?;
    for port in &ports {
        writeln!(file, "127.0.0.1:{port}")?;
    }
    drop(file);
    let exe = std::env::current_exe().context("locating the kindred binary")?;
    // This process's own arguments, minus --local N, plus the hosts file and --process i.
    let mut base: Vec<String> = Vec::new();
    let mut skip = false;
    for arg in std::env::args().skip(1) {
        if skip {
            skip = false;
            continue;
        }
        if arg == "--local" {
            skip = true;
            continue;
        }
        if arg.starts_with("--local=") {
            continue;
        }
        base.push(arg);
    }
    let mut children: Vec<(usize, Child)> = Vec::new();
    for i in 0..n {
        let mut cmd = Command::new(&exe);
        cmd.args(&base)
            .arg("--hosts")
            .arg(&hosts)
            .arg("--process")
            .arg(i.to_string());
        if i > 0 && !env.quiet {
            cmd.arg("--quiet");
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("starting process {i} ({})", exe.display()))?;
        children.push((i, child));
    }
    env.note(format!(
        "started {n} local processes (pids {})",
        children
            .iter()
            .map(|(_, c)| c.id().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    ));
    let mut statuses: Vec<Option<ExitStatus>> = vec![None; n];
    // Failed processes in the order they were seen to fail, and those this launcher stopped.
    let mut failure_order: Vec<usize> = Vec::new();
    let mut stopped: Vec<usize> = Vec::new();
    let mut first_failure: Option<Instant> = None;
    loop {
        for (i, child) in children.iter_mut() {
            if statuses[*i].is_none() {
                if let Some(status) = child.try_wait()? {
                    statuses[*i] = Some(status);
                    if !status.success() {
                        failure_order.push(*i);
                        first_failure.get_or_insert_with(Instant::now);
                    }
                }
            }
        }
        if statuses.iter().all(Option::is_some) {
            break;
        }
        // The peers of a failed process fail on their own within moments; give them that
        // long, so the report can tell the cause from the consequences, then stop the rest.
        if first_failure.is_some_and(|t| t.elapsed() > Duration::from_secs(2)) {
            for (i, child) in children.iter_mut() {
                if statuses[*i].is_none() {
                    let _ = child.kill();
                    statuses[*i] = child.wait().ok();
                    stopped.push(*i);
                }
            }
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    if failure_order.is_empty() {
        return Ok(());
    }
    // A process that did not exit by itself (killed, crashed) is the cause; the others
    // reported losing it. Without one, the first seen to fail is named.
    let status_of = |i: usize| statuses[i].map_or("unknown status".to_string(), |s| s.to_string());
    let cause = failure_order
        .iter()
        .copied()
        .find(|&i| statuses[i].is_some_and(|s| s.code().is_none()))
        .unwrap_or(failure_order[0]);
    let mut after: Vec<usize> = failure_order
        .iter()
        .copied()
        .filter(|&i| i != cause)
        .collect();
    after.sort_unstable();
    let others: Vec<String> = after.iter().map(usize::to_string).collect();
    bail!(
        "process {} of {n} failed ({}){}; the job stopped. Run the same command again to \
         resume from the last checkpoint{}",
        cause,
        status_of(cause),
        match (others.is_empty(), stopped.is_empty()) {
            (true, true) => String::new(),
            (false, true) => format!("; processes {} failed after it", others.join(", ")),
            (true, false) => format!("; processes {stopped:?} were stopped"),
            (false, false) => format!(
                "; processes {} failed after it, {stopped:?} were stopped",
                others.join(", ")
            ),
        },
        if args.checkpoint.is_some() {
            ""
        } else {
            " (none was kept: pass --checkpoint DIR)"
        }
    );
}
