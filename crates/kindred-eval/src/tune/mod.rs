//! `kindred tune`: nested hyperparameter search. For each outer split of the protocol, a model
//! family's configurations are compared on a validation split carved from that split's
//! training rows only, with an inner protocol of the same kind; the configuration chosen on
//! each outer training set is then scored once on its untouched outer test set, next to the
//! family's defaults on the same splits. The outer test rows never reach a search. `auto` (a
//! search across families) is accepted too, and runs as [`crate::auto::tune_auto`].

pub mod search;
pub mod state;
pub mod tpe;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kindred_core::{Dataset, Error, NoProgress, Progress, Protocol, Result, SplitKind};

use crate::report::{EvalReport, TrialRecord, TuningSummary};
use crate::runner::{
    compare_results, evaluate, evaluate_plans, lower_is_better, EvalOptions, ModelPlan,
};
pub use kindred_models::registry::{families_with_space, space_for};
pub use kindred_models::space::Space;
pub use search::Method;
use search::{search, SearchSettings};
use state::{StateFile, StateHeader};

/// Trials per outer fold when neither a trial nor a time budget is given.
pub const DEFAULT_TRIALS: usize = 20;

/// TPE's random trials before the estimator takes over (trial 0, the defaults, included).
pub const DEFAULT_STARTUP_TRIALS: usize = 5;

/// What to tune and how.
#[derive(Debug, Clone)]
pub struct TuneOptions {
    /// The model family (a name with a search space, e.g. `svd`).
    pub family: String,
    pub method: Method,
    /// Trials per outer fold (halving: configurations at the first rung).
    pub max_trials: Option<usize>,
    /// Seconds for the whole search, shared out over the outer folds (the final scoring on the
    /// outer test sets is not counted).
    pub max_seconds: Option<f64>,
    /// Metric to optimise on validation (default rmse for rating protocols, ndcg@k otherwise).
    pub metric: Option<String>,
    /// Trials run at once, each with threads / parallel threads.
    pub parallel: usize,
    /// Search and score only the first this many outer folds (None: all).
    pub outer_folds: Option<usize>,
    /// JSON Lines file of completed trials, appended as they finish and replayed on restart.
    pub state: Option<PathBuf>,
    /// TPE: random trials before the estimator (default [`DEFAULT_STARTUP_TRIALS`]).
    pub startup_trials: Option<usize>,
    /// Halving: the promotion factor.
    pub eta: usize,
}

impl TuneOptions {
    /// Options for a family with the defaults: TPE, 20 trials, one trial at a time.
    pub fn new(family: &str) -> Self {
        Self {
            family: family.to_owned(),
            method: Method::Tpe,
            max_trials: None,
            max_seconds: None,
            metric: None,
            parallel: 1,
            outer_folds: None,
            state: None,
            startup_trials: None,
            eta: 3,
        }
    }
}

/// The inner (validation) protocol that carves validation data out of an outer training set:
/// the same kind, fraction and seed. k-fold keeps k so that the holdout is 1/k of the training
/// rows (the search validates on its first fold only). The `positive>=` filter is repeated,
/// which is a no-op on rows that already passed it, because it is what makes `kfold` a ranking
/// protocol rather than a rating one.
pub fn validation_protocol(outer: &Protocol) -> Result<Protocol> {
    let head = match outer.kind {
        SplitKind::KFold { k } => format!("kfold:{k}"),
        SplitKind::Temporal { fraction } => format!("temporal:{fraction}"),
        SplitKind::Random { fraction } => format!("random:{fraction}"),
        SplitKind::LeaveLastOut => "loo".to_owned(),
        SplitKind::ColdStartItems { fraction } => format!("coldstart-items:{fraction}"),
        SplitKind::ColdStartUsers { fraction, fold_in } if fold_in > 0 => {
            format!("coldstart-users:{fraction},fold-in={fold_in}")
        }
        SplitKind::ColdStartUsers { fraction, .. } => format!("coldstart-users:{fraction}"),
    };
    let positive = outer
        .positive_threshold
        .map_or(String::new(), |t| format!(",positive>={t}"));
    Protocol::parse(&format!("{head}{positive},seed={}", outer.seed))
}

/// Prefixes every phase a trial reports with the search's position.
struct Prefixed {
    inner: Arc<dyn Progress>,
    prefix: String,
}

impl Progress for Prefixed {
    fn begin(&self, task: &str, total: u64) {
        self.inner.begin(&format!("{}: {task}", self.prefix), total);
    }
    fn advance(&self, n: u64) {
        self.inner.advance(n);
    }
    fn epoch(&self, epoch: usize, loss: f64, validation: Option<f64>) {
        self.inner.epoch(epoch, loss, validation);
    }
    fn finish(&self) {
        self.inner.finish();
    }
}

/// Runs the nested search and scores the chosen configurations and the defaults on the outer
/// test sets. `eval` sets k, the seed (of fitting and of the search), threads, progress,
/// cancellation and what the final scoring computes (segments, bootstrap, ...); the inner
/// validations compute headline metrics only.
pub fn tune(
    dataset: &Dataset,
    protocol: &Protocol,
    opts: &TuneOptions,
    eval: &EvalOptions,
) -> Result<EvalReport> {
    if crate::auto::is_auto(&opts.family) {
        return crate::auto::tune_auto(dataset, protocol, opts, eval);
    }
    let started = Instant::now();
    let space = space_for(&opts.family)?;
    let rating = protocol.is_rating_prediction();
    let metric = opts.metric.clone().unwrap_or_else(|| {
        if rating {
            "rmse".to_owned()
        } else {
            format!("ndcg@{}", eval.k)
        }
    });
    if rating != matches!(metric.as_str(), "rmse" | "mae") {
        return Err(Error::InvalidInput(format!(
            "metric `{metric}` is not measured under protocol `{}`: {}",
            protocol.spec(),
            if rating {
                "a rating protocol measures rmse and mae"
            } else {
                "a ranking protocol measures ranking metrics such as ndcg@K, recall@K, map@K"
            }
        )));
    }
    let lower = lower_is_better(&metric);
    let max_trials = match (opts.max_trials, opts.max_seconds) {
        (None, None) => Some(DEFAULT_TRIALS),
        (trials, _) => trials,
    };
    if max_trials == Some(0) {
        return Err(Error::InvalidInput(
            "the trial budget must be at least 1".into(),
        ));
    }
    if opts.max_seconds.is_some_and(|s| !s.is_finite() || s <= 0.0) {
        return Err(Error::InvalidInput(
            "the time budget must be a positive number of seconds".into(),
        ));
    }
    let parallel = opts.parallel.max(1);
    let inner_protocol = validation_protocol(protocol)?;
    let prepared = protocol.prepare(&dataset.interactions);
    let mut splits = protocol.splits(&prepared)?;
    if let Some(n) = opts.outer_folds {
        splits.truncate(n.max(1));
    }
    let n_folds = splits.len();

    // Not derived from the budget: a resumed run with a larger budget must propose the same
    // trials as the interrupted one.
    let startup = opts.startup_trials.unwrap_or(DEFAULT_STARTUP_TRIALS);
    let header = StateHeader {
        kindred_tune_state: 1,
        dataset: dataset.name.clone(),
        interactions: dataset.interactions.len(),
        protocol: protocol.spec().to_owned(),
        family: space.family.to_owned(),
        method: opts.method.name().to_owned(),
        metric: metric.clone(),
        seed: eval.seed,
        parallel,
        startup_trials: startup,
        eta: opts.eta,
    };
    let mut state = match &opts.state {
        Some(path) => Some(StateFile::open(path, &header)?),
        None => None,
    };
    let recorded: Vec<TrialRecord> = state.as_ref().map_or(Vec::new(), |s| s.recorded.clone());

    let mut trials = Vec::new();
    let mut chosen_per_fold = Vec::with_capacity(n_folds);
    for (f, split) in splits.iter().enumerate() {
        eval.cancel.check()?;
        // The outer test rows are not in this dataset: a search cannot see them.
        let inner_dataset = Dataset {
            name: format!("{} (training rows of fold {})", dataset.name, f + 1),
            interactions: prepared.subset(&split.train),
            item_features: dataset.item_features.clone(),
            user_features: dataset.user_features.clone(),
        };
        let deadline = opts.max_seconds.map(|total| {
            let left = (total - started.elapsed().as_secs_f64()).max(0.0);
            Instant::now() + Duration::from_secs_f64(left / (n_folds - f) as f64)
        });
        let label = format!("tune {} fold {}/{n_folds}", space.family, f + 1);
        let settings = SearchSettings {
            method: opts.method,
            lower_is_better: lower,
            seed: eval.seed,
            fold: f,
            parallel,
            threads: eval.threads.max(1),
            max_trials,
            deadline,
            startup_trials: startup,
            eta: opts.eta,
            include_defaults: true,
            cancel: eval.cancel.clone(),
            progress: Arc::clone(&eval.progress),
            label: label.clone(),
        };
        let inner_progress: Arc<dyn Progress> = if parallel > 1 {
            // Several trials at once would fight over one progress display.
            Arc::new(NoProgress)
        } else {
            Arc::new(Prefixed {
                inner: Arc::clone(&eval.progress),
                prefix: label,
            })
        };
        let objective = |spec: &str, threads: usize| -> Result<f64> {
            let inner_opts = EvalOptions {
                threads,
                max_folds: Some(1),
                progress: Arc::clone(&inner_progress),
                ..eval.headline_only()
            };
            let report = evaluate(
                &inner_dataset,
                &inner_protocol,
                &[spec.to_owned()],
                &inner_opts,
            )?;
            let metrics = report.results.first().map(|r| &r.metrics);
            metrics
                .and_then(|m| m.get(&metric).copied())
                .ok_or_else(|| {
                    let known: Vec<&String> = metrics.map_or(Vec::new(), |m| m.keys().collect());
                    Error::InvalidInput(format!(
                        "metric `{metric}` is not measured; measured: {}",
                        known
                            .iter()
                            .map(|s| s.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                })
        };
        let replay: Vec<TrialRecord> = recorded.iter().filter(|r| r.fold == f).cloned().collect();
        let outcome = search(
            &space,
            &settings,
            &objective,
            &replay,
            &mut |record| match state.as_mut() {
                Some(s) => s.append(record),
                None => Ok(()),
            },
        )?;
        trials.extend(outcome.records);
        chosen_per_fold.push(outcome.chosen);
    }
    let search_seconds = started.elapsed().as_secs_f64();

    let outer_opts = EvalOptions {
        max_folds: Some(n_folds),
        ..eval.clone()
    };
    let plans = [
        ModelPlan {
            spec: chosen_per_fold[0].clone(),
            fold_specs: chosen_per_fold.clone(),
        },
        ModelPlan::single(space.family),
    ];
    let mut report = evaluate_plans(dataset, protocol, &plans, &outer_opts)?;
    // The question a tuning run answers is "do the tuned settings beat the defaults?", so the
    // paired comparison takes the defaults as its baseline, on the tuned metric.
    if eval.bootstrap > 0 {
        if let [tuned, defaults] = report.results.as_slice() {
            report.comparisons = vec![compare_results(
                defaults,
                tuned,
                &metric,
                eval.bootstrap,
                eval.seed,
            )?];
        }
    }
    report.trials = trials;
    report.tuning = Some(TuningSummary {
        family: space.family.to_owned(),
        method: opts.method.name().to_owned(),
        metric,
        lower_is_better: lower,
        validation_protocol: inner_protocol.spec().to_owned(),
        max_trials,
        max_seconds: opts.max_seconds,
        chosen: chosen_per_fold[0].clone(),
        chosen_per_fold,
        seconds: search_seconds,
    });
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_protocol_keeps_kind_fraction_filter_and_seed() {
        let cases = [
            ("kfold:5", "kfold:5,seed=42"),
            (
                "temporal:0.2,positive>=4",
                "temporal:0.2,positive>=4,seed=42",
            ),
            ("random:0.1,seed=7", "random:0.1,seed=7"),
            ("loo", "loo,seed=42"),
            ("coldstart-items:0.1", "coldstart-items:0.1,seed=42"),
            (
                "coldstart-users:0.2,fold-in=3",
                "coldstart-users:0.2,fold-in=3,seed=42",
            ),
        ];
        for (outer, inner) in cases {
            let p = validation_protocol(&Protocol::parse(outer).unwrap()).unwrap();
            assert_eq!(p.spec(), inner);
            let o = Protocol::parse(outer).unwrap();
            assert_eq!(p.kind, o.kind);
            assert_eq!(p.is_rating_prediction(), o.is_rating_prediction());
        }
    }

    #[test]
    fn metric_direction() {
        assert!(lower_is_better("rmse") && lower_is_better("mae"));
        assert!(!lower_is_better("ndcg@10") && !lower_is_better("recall@20"));
    }
}
