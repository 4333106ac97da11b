//! `kindred quickstart`: the main job end to end on the embedded default. Loads (or generates)
//! data, prints the data-quality report, evaluates baselines and the strongest models under the
//! standard protocols (writing the results and an HTML report of them), imports the data into an
//! embedded SQLite store, trains and publishes `auto` from it (which chooses and tunes a model on
//! that data and says what it chose), starts the server on 127.0.0.1 and prints working curl
//! examples (`--check` runs them itself and stops).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use kindred_core::{Dataset, Protocol};
use kindred_data::preprocess::PipelineConfig;
use kindred_eval::{evaluate, EvalOptions, EvalReport};
use kindred_http_client::{get_request, post_request, Connection};
use kindred_serving::{ServerConfig, TrainSpec};
use kindred_store::Store;

use super::eval::format_report;
use super::{write_json, Env};
use crate::data::DataArgs;

/// The dataset used when none is given: generated, so the quick start needs no download.
pub const DEFAULT_DATA: &str = "synthetic:users=2000,items=1000,seed=42";

/// Seconds each `auto` selection of the quick start may spend (it runs once per evaluation
/// fold and once for the served version).
const DEFAULT_AUTO_BUDGET: f64 = 20.0;

#[derive(clap::Args)]
pub struct Args {
    /// Data spec (default: a seeded synthetic dataset).
    #[arg(long, default_value = DEFAULT_DATA)]
    data: String,
    /// Folder for the results (`rating.json`, `ranking.json`, `report.html`), the store
    /// (`kindred.db`) and its model versions (`kindred.db.models/`); the store is recreated on
    /// each run.
    #[arg(long, default_value = "kindred-quickstart")]
    dir: PathBuf,
    /// Folds of the rating evaluation (set 0 to skip it).
    #[arg(long, default_value_t = 5)]
    folds: usize,
    /// Seconds each `auto` selection may spend choosing a model (once per evaluation fold, once
    /// for the served version).
    #[arg(long, default_value_t = DEFAULT_AUTO_BUDGET)]
    budget: f64,
    /// Address the server listens on (loopback only: the quick start sets no API keys).
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Run the printed examples against the server, show the answers, and stop (instead of
    /// serving until Ctrl-C).
    #[arg(long)]
    check: bool,
}

pub fn run(args: Args, env: &Env) -> Result<()> {
    if !args.listen.ip().is_loopback() {
        bail!(
            "the quick start serves without API keys, so only on a loopback address; \
             use `kindred serve` with keys to listen on {}",
            args.listen
        );
    }
    let data_args = DataArgs {
        data: args.data.clone(),
        columns: None,
        skip_invalid: false,
        timestamps: None,
        item_features: None,
        user_features: None,
    };
    let dataset = data_args.load(env.quiet)?;
    outln!(
        "== data quality\n{}",
        kindred_data::quality::report(&dataset, &PipelineConfig::default())
    )?;
    evaluate_all(&dataset, &args, env)?;

    let store_path = args.dir.join("kindred.db");
    let config = ServerConfig {
        listen: args.listen,
        store: store_path.display().to_string(),
        ..ServerConfig::default()
    };
    let served = format!("auto:budget={}", args.budget);
    let spec = TrainSpec {
        model: served.clone(),
        positive: dataset.interactions.has_ratings().then_some(4.0),
        seed: 42,
        pipeline: None,
    };
    super::runtime()?.block_on(async {
        let store = fresh_store(&store_path, &config).await?;
        import(&store, &dataset, env).await?;
        let record = kindred_serving::train_and_publish(
            &store,
            &config.artifacts_dir(),
            &spec,
            env.fit_context(42),
        )
        .await?;
        outln!(
            "== trained {served} ({}) from the store {}; live version {}",
            record.model.algorithm,
            config.store,
            record.model.version
        )?;
        let selection = record.model.metrics.get("selection");
        if let Some(selection) = selection.and_then(kindred_eval::auto::Selection::from_json) {
            outln!("   {}", selection.summary())?;
        }
        // The server opens its own connections; these would keep the write-ahead log alive.
        store.close().await?;
        serve_examples(config, examples(&dataset), args.check, env).await
    })
}

/// Starts the server, prints the examples, and either serves until Ctrl-C or (`check`) runs
/// the examples and stops.
async fn serve_examples(
    config: ServerConfig,
    examples: Vec<Example>,
    check: bool,
    env: &Env,
) -> Result<()> {
    let cancel = env.cancel.clone();
    let store = config.store.clone();
    let (addr_tx, addr_rx) = tokio::sync::oneshot::channel();
    let server = tokio::spawn(super::serve::serve_until_stopped(
        config,
        cancel.clone(),
        move |addr| {
            let _ = addr_tx.send(addr);
        },
    ));
    let Ok(addr) = addr_rx.await else {
        return match server.await {
            Ok(Err(e)) => Err(e),
            _ => Err(anyhow::anyhow!("the server did not start")),
        };
    };
    if check {
        outln!("== serving on http://{addr}; --check runs these examples, then stops:\n")?;
    } else {
        outln!("== serving on http://{addr} (Ctrl-C stops); try:\n")?;
    }
    for example in &examples {
        outln!("{}\n", example.curl(addr))?;
    }
    if !check {
        server.await.context("server task")??;
        outln!("== server stopped; store {store} closed")?;
        return Ok(());
    }
    let mut failed = 0;
    for example in &examples {
        let (status, body) = example.run(addr).await?;
        let shown: String = body.chars().take(300).collect();
        outln!("{} {} -> {status}\n{shown}\n", example.method, example.path)?;
        if !(200..300).contains(&status) {
            failed += 1;
        }
    }
    cancel.cancel();
    server.await.context("server task")??;
    outln!("== server stopped; store {store} closed")?;
    if failed > 0 {
        bail!("{failed} example requests failed");
    }
    outln!("== all {} example requests answered 2xx", examples.len())?;
    Ok(())
}

/// The rating and ranking evaluations, their JSON results and HTML report.
fn evaluate_all(dataset: &Dataset, args: &Args, env: &Env) -> Result<()> {
    let options = EvalOptions {
        threads: env.threads,
        progress: env.progress.clone(),
        cancel: env.cancel.clone(),
        ..EvalOptions::default()
    };
    let results_dir = &args.dir;
    std::fs::create_dir_all(results_dir)
        .with_context(|| format!("creating {}", results_dir.display()))?;
    let mut sources = Vec::new();
    let has_ratings = dataset.interactions.has_ratings();
    if has_ratings && args.folds >= 2 {
        let protocol = Protocol::parse(&format!("kfold:{}", args.folds))?;
        let models = [
            "random".to_owned(),
            "baseline".to_owned(),
            "svd".to_owned(),
            "svdpp".to_owned(),
            format!("auto:task=rating,budget={}", args.budget),
        ];
        let report = evaluate(dataset, &protocol, &models, &options)?;
        outln!("== rating prediction\n{}", format_report(&report))?;
        sources.push(save_results(results_dir, "rating", report)?);
    }
    let ranking_protocol = if has_ratings {
        "temporal:0.2,positive>=4"
    } else {
        "temporal:0.2"
    };
    let protocol = Protocol::parse(ranking_protocol)?;
    let models = [
        "random".to_owned(),
        "popularity:half_life_days=60".to_owned(),
        "baseline".to_owned(),
        "als".to_owned(),
        "ease".to_owned(),
        format!("auto:budget={}", args.budget),
    ];
    let report = evaluate(dataset, &protocol, &models, &options)?;
    outln!("== top-N ranking\n{}", format_report(&report))?;
    sources.push(save_results(results_dir, "ranking", report)?);
    let page = results_dir.join("report.html");
    std::fs::write(&page, kindred_report::render_html(&sources))
        .with_context(|| format!("writing {}", page.display()))?;
    outln!("== report of both evaluations: {}\n", page.display())?;
    Ok(())
}

/// Writes one evaluation's JSON result into `dir` and keeps it for the report.
fn save_results(dir: &Path, name: &str, report: EvalReport) -> Result<kindred_report::Source> {
    let path = dir.join(format!("{name}.json"));
    write_json(&path, &report)?;
    Ok(kindred_report::Source { path, report })
}

/// Removes the previous run's store and model versions, then opens a new store.
async fn fresh_store(path: &Path, config: &ServerConfig) -> Result<Store> {
    for suffix in ["", "-wal", "-shm"] {
        let file = PathBuf::from(format!("{}{suffix}", path.display()));
        if file.exists() {
            std::fs::remove_file(&file).with_context(|| format!("removing {}", file.display()))?;
        }
    }
    let models = config.artifacts_dir();
    if models.exists() {
        std::fs::remove_dir_all(&models)
            .with_context(|| format!("removing {}", models.display()))?;
    }
    Ok(Store::open(&config.store).await?)
}

/// Users, items and feedback into the store.
async fn import(store: &Store, dataset: &Dataset, env: &Env) -> Result<()> {
    use kindred_store::import::{
        feedback_from_interactions, items_from_features, users_from_features,
    };
    if let Some(table) = &dataset.user_features {
        store.upsert_users(&users_from_features(table)).await?;
    }
    if let Some(table) = &dataset.item_features {
        store.upsert_items(&items_from_features(table)).await?;
    }
    let feedback = feedback_from_interactions(&dataset.interactions);
    env.progress
        .begin("importing feedback", feedback.len() as u64);
    for chunk in feedback.chunks(10_000) {
        env.cancel.check()?;
        store.insert_feedback(chunk).await?;
        env.progress.advance(chunk.len() as u64);
    }
    env.progress.finish();
    outln!(
        "== imported {} feedback events into the store",
        feedback.len()
    )?;
    Ok(())
}

/// One example request.
struct Example {
    method: &'static str,
    path: String,
    body: Option<String>,
}

impl Example {
    fn curl(&self, addr: SocketAddr) -> String {
        match &self.body {
            Some(body) => format!(
                "curl -s -X {} http://{addr}{} -H 'Content-Type: application/json' -d '{body}'",
                self.method, self.path
            ),
            None => format!("curl -s 'http://{addr}{}'", self.path),
        }
    }

    /// Sends the request (HTTP/1.1, one connection) and returns status and body.
    async fn run(&self, addr: SocketAddr) -> Result<(u16, String)> {
        let mut connection = Connection::connect(addr).await?;
        let request = match self.method {
            "GET" => get_request(&self.path),
            _ => post_request(&self.path, self.body.as_deref().unwrap_or("").as_bytes()),
        };
        let head = connection.exchange(&request).await?;
        let body = String::from_utf8_lossy(connection.body(&head)).into_owned();
        Ok((head.status, body))
    }
}

/// The printed examples, with a real user and items of the data.
fn examples(dataset: &Dataset) -> Vec<Example> {
    let log = &dataset.interactions;
    let user = log.user_ids().try_external(0).unwrap_or("u1").to_owned();
    let item = log.item_ids().try_external(0).unwrap_or("i1").to_owned();
    let other = log.item_ids().try_external(1).unwrap_or("i2").to_owned();
    let get = |path: String| Example {
        method: "GET",
        path,
        body: None,
    };
    vec![
        get(format!("/v1/recommend/{user}?n=5")),
        Example {
            method: "POST",
            path: "/v1/feedback".into(),
            body: Some(format!(
                r#"[{{"user": "{user}", "item": "{other}", "type": "click"}}]"#
            )),
        },
        get(format!("/v1/recommend/{user}?n=5")),
        Example {
            method: "POST",
            path: "/v1/recommend".into(),
            body: Some(format!(r#"{{"interactions": ["{item}"], "n": 5}}"#)),
        },
        get(format!("/v1/similar-items/{item}?n=5")),
        get("/v1/popular?n=5".into()),
        get("/v1/models".into()),
        get("/metrics".into()),
    ]
}
