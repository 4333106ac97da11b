//! `kindred-loadgen`: a small load generator for `kindred serve` on loopback, cheap enough to
//! share a 2-core machine with the server it measures.
//!
//! ```text
//! kindred-loadgen recommend --addr HOST:PORT (--users A..B | --users-file F | --bodies-file F)
//!     [--n 10] [--rate 5000 | --closed-loop] [--duration 20] [--requests N] [--connections 32]
//!     [--swap-versions V1,V2 --swap-every-ms 1000] [--path '/v1/recommend/{user}?n={n}']
//!     [--seed 1] [--threads 1] [--out FILE.json]
//! (`--bodies-file`: one JSON request body per line, each sent as `POST --path`, default
//! `/v1/recommend`, e.g. anonymous sessions.)
//! kindred-loadgen feedback --addr HOST:PORT (--users A..B | --users-file F)
//!     (--items A..B | --items-file F) [--events 200000] [--batch 1000] [--connections 4]
//!     [--run-id ID] [--seed 1] [--threads 1] [--out FILE.json]
//! ```
//! The report is JSON on stdout (and in `--out`).

mod args;
mod feedback;
mod recommend;
mod stats;

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use args::{ids, Args};

/// A usage or setup error, printed as is.
#[derive(Debug)]
pub struct LoadError(pub String);

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Seeded random numbers (SplitMix64): the same seed draws the same users.
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (multiply-shift; the bias is below 2^-32 for the sizes used here).
    pub fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }
}

enum Plan {
    Recommend(recommend::RecommendPlan),
    Feedback(feedback::FeedbackPlan),
}

fn positive(name: &str, value: usize) -> Result<usize, LoadError> {
    if value == 0 {
        return Err(LoadError(format!("--{name} must be at least 1")));
    }
    Ok(value)
}

fn address(args: &mut Args) -> Result<SocketAddr, LoadError> {
    let text = args.required("addr")?;
    text.parse().map_err(|_| {
        LoadError(format!(
            "--addr `{text}`: expected IP:PORT, e.g. 127.0.0.1:8080"
        ))
    })
}

fn recommend_plan(args: &mut Args) -> Result<recommend::RecommendPlan, LoadError> {
    let addr = address(args)?;
    let closed_loop = args.flag("closed-loop");
    let rate: Option<f64> = args.number("rate")?;
    let rate = match (closed_loop, rate) {
        (true, Some(_)) => return Err(LoadError("give --rate or --closed-loop, not both".into())),
        (true, None) => None,
        (false, Some(r)) if r.is_finite() && r > 0.0 => Some(r),
        (false, Some(r)) => return Err(LoadError(format!("--rate {r} must be positive"))),
        (false, None) => return Err(LoadError("give --rate R or --closed-loop".into())),
    };
    let duration: f64 = args.number_or("duration", 20.0)?;
    if !(duration.is_finite() && duration > 0.0 && duration <= 3600.0) {
        return Err(LoadError(format!(
            "--duration {duration}: expected 0 < seconds <= 3600"
        )));
    }
    let swap_versions: Vec<String> = args
        .string("swap-versions")
        .map(|list| {
            list.split(',')
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let swap_every_ms: u64 = args.number_or("swap-every-ms", 1000)?;
    let (users, bodies, default_path) = match args.string("bodies-file") {
        Some(path) => (
            Vec::new(),
            read_bodies(std::path::Path::new(&path))?,
            "/v1/recommend",
        ),
        None => (
            ids(args, "users")?,
            Vec::new(),
            "/v1/recommend/{user}?n={n}",
        ),
    };
    Ok(recommend::RecommendPlan {
        addr,
        connections: positive("connections", args.number_or("connections", 32)?)?,
        rate,
        duration: Duration::from_secs_f64(duration),
        requests: args.number("requests")?,
        users,
        bodies,
        n: positive("n", args.number_or("n", 10)?)?,
        path: args
            .string("path")
            .unwrap_or_else(|| default_path.to_owned()),
        seed: args.number_or("seed", 1)?,
        swap_versions,
        swap_every: Duration::from_millis(swap_every_ms.max(1)),
    })
}

/// The request bodies of a `--bodies-file`: one JSON value per non-empty line.
fn read_bodies(path: &std::path::Path) -> Result<Vec<String>, LoadError> {
    let text =
        std::fs::read_to_string(path).map_err(|e| LoadError(format!("{}: {e}", path.display())))?;
    let mut bodies = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if let Err(e) = serde_json::from_str::<serde_json::Value>(line) {
            return Err(LoadError(format!(
                "{} line {}: not a JSON body: {e}",
                path.display(),
                index + 1
            )));
        }
        bodies.push(line.to_owned());
    }
    if bodies.is_empty() {
        return Err(LoadError(format!("{}: no request bodies", path.display())));
    }
    Ok(bodies)
}

fn feedback_plan(args: &mut Args) -> Result<feedback::FeedbackPlan, LoadError> {
    let default_run_id = format!(
        "lg{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis())
    );
    Ok(feedback::FeedbackPlan {
        addr: address(args)?,
        connections: positive("connections", args.number_or("connections", 4)?)?,
        events: positive("events", args.number_or("events", 200_000)?)?,
        batch: positive("batch", args.number_or("batch", 1_000)?)?,
        users: ids(args, "users")?,
        items: ids(args, "items")?,
        run_id: args.string("run-id").unwrap_or(default_run_id),
        seed: args.number_or("seed", 1)?,
    })
}

fn run() -> Result<(), LoadError> {
    let mut argv = std::env::args().skip(1);
    let mode = argv.next().unwrap_or_default();
    let mut args = Args::parse(argv)?;
    let plan = match mode.as_str() {
        "recommend" => Plan::Recommend(recommend_plan(&mut args)?),
        "feedback" => Plan::Feedback(feedback_plan(&mut args)?),
        other => {
            return Err(LoadError(format!(
                "unknown mode `{other}`; usage: kindred-loadgen recommend|feedback --addr IP:PORT ... (see the source's header)"
            )))
        }
    };
    let threads: usize = positive("threads", args.number_or("threads", 1)?)?;
    let out = args.string("out");
    args.finish()?;
    // One thread is the default: the generator shares the machine with the server, and a
    // current-thread runtime spends no CPU on work stealing or cross-thread wake-ups.
    let runtime = if threads == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
    }
    .map_err(|e| LoadError(format!("starting the runtime: {e}")))?;
    let mut report = runtime.block_on(async {
        match plan {
            Plan::Recommend(p) => recommend::run(p).await,
            Plan::Feedback(p) => feedback::run(p).await,
        }
    })?;
    report["generator_threads"] = threads.into();
    let text = serde_json::to_string_pretty(&report)
        .map_err(|e| LoadError(format!("writing the report: {e}")))?;
    if let Some(path) = out {
        std::fs::write(&path, format!("{text}\n"))
            .map_err(|e| LoadError(format!("{path}: {e}")))?;
    }
    println!("{text}");
    Ok(())
}

fn main() {
    if let Err(e) = run() {
        eprintln!("kindred-loadgen: {e}");
        std::process::exit(2);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix_is_seeded_and_below_stays_in_range() {
        let (mut a, mut b) = (SplitMix64::new(7), SplitMix64::new(7));
        assert_eq!(a.next_u64(), b.next_u64());
        // Reference value of SplitMix64 seeded with 0 (Vigna's splitmix64.c).
        assert_eq!(SplitMix64::new(0).next_u64(), 0xE220_A839_7B1D_CDAF);
        let mut counts = [0usize; 3];
        for _ in 0..3000 {
            counts[a.below(3)] += 1;
        }
        assert!(
            counts.iter().all(|&c| (900..1100).contains(&c)),
            "{counts:?}"
        );
    }

    #[test]
    fn bodies_are_one_json_value_per_line() {
        let dir =
            std::env::temp_dir().join(format!("kindred-loadgen-bodies-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("good.jsonl");
        std::fs::write(&good, "{\"interactions\": [\"1\"]}\n\n{\"n\": 5}\n").unwrap();
        assert_eq!(read_bodies(&good).unwrap().len(), 2);
        let bad = dir.join("bad.jsonl");
        std::fs::write(&bad, "{\"n\": 5}\n{oops\n").unwrap();
        let err = read_bodies(&bad).unwrap_err().0;
        assert!(err.contains("line 2"), "{err}");
        let empty = dir.join("empty.jsonl");
        std::fs::write(&empty, "\n").unwrap();
        assert!(read_bodies(&empty).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
