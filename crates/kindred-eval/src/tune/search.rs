//! One hyperparameter search over a space against an objective: random search, TPE, or
//! successive halving; trials in parallel batches; replay of trials recorded by an interrupted
//! run; budgets in trials and time.
//!
//! The search is independent of what the objective measures, so its logic is tested here on toy
//! objectives; `tune` plugs in the inner validation of a model family.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use kindred_core::rng::mix64;
use kindred_core::{CancelFlag, Error, Progress, Result, SplitMix64};

use super::tpe::{self, TpeSettings};
use crate::report::TrialRecord;
use kindred_models::registry::{families_with_space, space_for};
use kindred_models::space::{Config, Space};

/// How configurations are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// Independent seeded samples of the space.
    Random,
    /// Tree-structured Parzen Estimator after a few random start-up trials.
    Tpe,
    /// Successive halving: many random configurations at a fraction of the iterations, the best
    /// 1/eta promoted to eta times more, up to the full budget.
    Halving,
}

impl Method {
    /// Parses `random`, `tpe` or `halving`.
    pub fn parse(name: &str) -> Result<Self> {
        match name.trim() {
            "random" => Ok(Self::Random),
            "tpe" => Ok(Self::Tpe),
            "halving" => Ok(Self::Halving),
            other => Err(Error::spec(
                "tuning method",
                other,
                "expected random, tpe or halving",
            )),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Random => "random",
            Self::Tpe => "tpe",
            Self::Halving => "halving",
        }
    }
}

/// Everything a search needs besides the space and the objective.
#[derive(Clone)]
pub struct SearchSettings {
    pub method: Method,
    pub lower_is_better: bool,
    pub seed: u64,
    /// Outer fold the search runs for (recorded in every trial, and mixed into the seed).
    pub fold: usize,
    /// Trials run at once.
    pub parallel: usize,
    /// Threads available to the whole search (each parallel trial gets its share).
    pub threads: usize,
    /// Trials to run (halving: configurations at the first rung).
    pub max_trials: Option<usize>,
    /// No new batch starts after this instant (the first batch always runs).
    pub deadline: Option<Instant>,
    /// TPE: random trials before the estimator takes over.
    pub startup_trials: usize,
    /// Halving: the promotion factor.
    pub eta: usize,
    /// Trial 0 (halving: configuration 0) evaluates the family's defaults.
    pub include_defaults: bool,
    pub cancel: CancelFlag,
    pub progress: Arc<dyn Progress>,
    /// Prefix of progress messages, e.g. `tune fold 1/5`.
    pub label: String,
}

/// The objective: the score of a spec, fitted with the given number of threads.
pub type Objective<'a> = dyn Fn(&str, usize) -> Result<f64> + Sync + 'a;

/// What a search found.
#[derive(Debug, Clone)]
pub struct SearchOutcome {
    /// Every trial in the order they ran.
    pub records: Vec<TrialRecord>,
    /// The chosen configuration's spec at full budget.
    pub chosen: String,
    /// Index of the chosen trial in `records`.
    pub chosen_trial: usize,
}

/// Trials without a halving budget default to this many configurations.
const DEFAULT_HALVING_CONFIGS: usize = 27;

/// Runs one search. `replay` holds this fold's trials recorded by an earlier run: they are
/// reused instead of refitted when the search proposes the same spec again (and it is an error
/// when it proposes another). `on_new` sees each newly evaluated trial, in order.
pub fn search(
    space: &Space,
    settings: &SearchSettings,
    objective: &Objective<'_>,
    replay: &[TrialRecord],
    on_new: &mut dyn FnMut(&TrialRecord) -> Result<()>,
) -> Result<SearchOutcome> {
    if settings.method == Method::Halving && space.fidelity.is_none() {
        return Err(Error::InvalidInput(format!(
            "halving needs an iteration parameter to scale, and `{}` has none; families with one: {}; use --method tpe or random",
            space.family,
            families_with_space()
                .into_iter()
                .filter(|f| space_for(f).is_ok_and(|s| s.fidelity.is_some()))
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let mut runner = Runner {
        space,
        settings,
        objective,
        replay: replay.iter().map(|r| (r.trial, r)).collect(),
        records: Vec::new(),
        configs: Vec::new(),
        on_new,
    };
    match settings.method {
        Method::Random | Method::Tpe => runner.run_sequential()?,
        Method::Halving => runner.run_halving()?,
    }
    let chosen_trial = runner.choose().ok_or_else(|| {
        let first_error = runner
            .records
            .iter()
            .find_map(|r| r.error.clone())
            .unwrap_or_else(|| "no trial ran".into());
        Error::InvalidInput(format!(
            "fold {}: no trial of {} produced a score; first error: {first_error}",
            settings.fold + 1,
            space.family
        ))
    })?;
    Ok(SearchOutcome {
        chosen: space.spec(&runner.configs[chosen_trial], 1.0),
        chosen_trial,
        records: runner.records,
    })
}

struct Runner<'a, 'o> {
    space: &'a Space,
    settings: &'a SearchSettings,
    objective: &'a Objective<'o>,
    replay: BTreeMap<usize, &'a TrialRecord>,
    records: Vec<TrialRecord>,
    configs: Vec<Config>,
    on_new: &'a mut dyn FnMut(&TrialRecord) -> Result<()>,
}

impl Runner<'_, '_> {
    /// A generator for trial (or configuration) `t` of this fold: proposals depend on the seed,
    /// the fold, the index and the history only, never on timing.
    fn rng(&self, t: usize) -> SplitMix64 {
        SplitMix64::stream(
            self.settings.seed ^ mix64(self.settings.fold as u64 + 1),
            t as u64,
        )
    }

    fn deadline_passed(&self) -> bool {
        self.settings.deadline.is_some_and(|d| Instant::now() >= d)
    }

    /// Score with lower = better, for comparisons.
    fn loss(&self, score: f64) -> f64 {
        if self.settings.lower_is_better {
            score
        } else {
            -score
        }
    }

    fn run_sequential(&mut self) -> Result<()> {
        let s = self.settings;
        loop {
            let done = self.records.len();
            if s.max_trials.is_some_and(|m| done >= m) {
                break;
            }
            if done > 0 && self.deadline_passed() {
                break;
            }
            s.cancel.check()?;
            let left = s.max_trials.map_or(usize::MAX, |m| m - done);
            let batch_size = s.parallel.max(1).min(left);
            // A batch is proposed from the same history, so parallel trials are deterministic.
            let observed: Vec<(Config, f64)> = self
                .records
                .iter()
                .zip(&self.configs)
                .filter_map(|(r, c)| r.score.map(|v| (c.clone(), self.loss(v))))
                .collect();
            let batch: Vec<Config> = (done..done + batch_size)
                .map(|t| {
                    let mut rng = self.rng(t);
                    if t == 0 && s.include_defaults {
                        self.space.defaults()
                    } else if s.method == Method::Random || t < s.startup_trials {
                        self.space.sample(&mut rng)
                    } else {
                        tpe::propose(self.space, &observed, TpeSettings::default(), &mut rng)
                    }
                })
                .collect();
            let batch: Vec<(Config, usize, f64)> = batch.into_iter().map(|c| (c, 0, 1.0)).collect();
            self.evaluate_batch(&batch)?;
        }
        Ok(())
    }

    fn run_halving(&mut self) -> Result<()> {
        let s = self.settings;
        let n0 = s.max_trials.unwrap_or(DEFAULT_HALVING_CONFIGS).max(1);
        let eta = s.eta.max(2);
        // Rungs R with eta^(R-1) <= n0, so the last rung still holds at least one configuration.
        let mut rungs = 1;
        while eta.pow(rungs as u32) <= n0 {
            rungs += 1;
        }
        let configs: Vec<Config> = (0..n0)
            .map(|c| {
                if c == 0 && s.include_defaults {
                    self.space.defaults()
                } else {
                    self.space.sample(&mut self.rng(c))
                }
            })
            .collect();
        let mut alive: Vec<usize> = (0..n0).collect();
        for rung in 0..rungs {
            let scale = (eta as f64).powi(rung as i32 - (rungs as i32 - 1));
            let mut rung_records: Vec<(usize, usize)> = Vec::new(); // (config, record)
            let mut stopped = false;
            for chunk in alive.chunks(s.parallel.max(1)) {
                if !self.records.is_empty() && self.deadline_passed() {
                    stopped = true;
                    break;
                }
                s.cancel.check()?;
                let base = self.records.len();
                let batch: Vec<(Config, usize, f64)> = chunk
                    .iter()
                    .map(|&c| (configs[c].clone(), rung, scale))
                    .collect();
                self.evaluate_batch(&batch)?;
                rung_records.extend(chunk.iter().enumerate().map(|(j, &c)| (c, base + j)));
            }
            if stopped || rung + 1 == rungs {
                break;
            }
            // Promote the best 1/eta (failed trials rank last; ties keep the earlier trial).
            let mut ranked = rung_records.clone();
            ranked.sort_by(|a, b| {
                let la = self.records[a.1]
                    .score
                    .map_or(f64::INFINITY, |v| self.loss(v));
                let lb = self.records[b.1]
                    .score
                    .map_or(f64::INFINITY, |v| self.loss(v));
                la.total_cmp(&lb).then(a.1.cmp(&b.1))
            });
            let keep = (ranked.len() / eta).max(1);
            for &(_, record) in &ranked[keep..] {
                if self.records[record].status == "complete" {
                    self.records[record].status = "pruned".into();
                }
            }
            alive = ranked[..keep].iter().map(|&(c, _)| c).collect();
            alive.sort_unstable();
        }
        Ok(())
    }

    /// Index of the best scored trial at the highest rung that has one (scores of different
    /// rungs are not comparable: early rungs train less).
    fn choose(&self) -> Option<usize> {
        let top = self
            .records
            .iter()
            .filter(|r| r.score.is_some())
            .map(|r| r.rung)
            .max()?;
        let mut best: Option<(f64, usize)> = None;
        for (i, r) in self.records.iter().enumerate() {
            if let (Some(v), true) = (r.score, r.rung == top) {
                let loss = self.loss(v);
                if best.is_none_or(|(b, _)| loss < b) {
                    best = Some((loss, i));
                }
            }
        }
        best.map(|(_, i)| i)
    }

    /// Evaluates (or replays) a batch of (configuration, rung, fidelity scale) in parallel and
    /// records the trials in batch order.
    fn evaluate_batch(&mut self, batch: &[(Config, usize, f64)]) -> Result<()> {
        let s = self.settings;
        let base = self.records.len();
        let specs: Vec<String> = batch
            .iter()
            .map(|(c, _, scale)| self.space.spec(c, *scale))
            .collect();
        let mut replayed: Vec<Option<TrialRecord>> = Vec::with_capacity(batch.len());
        for (j, spec) in specs.iter().enumerate() {
            let t = base + j;
            match self.replay.get(&t) {
                Some(r) if &r.spec == spec => replayed.push(Some((*r).clone())),
                Some(r) => {
                    return Err(Error::InvalidInput(format!(
                        "state file: trial {t} of fold {} was `{}`, but this search proposes `{spec}`; the state was written by a different search (seed, method, parallel, data or search space); use a new --state file",
                        s.fold + 1,
                        r.spec
                    )))
                }
                None => replayed.push(None),
            }
        }
        let to_run: Vec<usize> = (0..batch.len())
            .filter(|&j| replayed[j].is_none())
            .collect();
        let last = base + batch.len();
        let trial_range = if batch.len() == 1 {
            format!("{}", base + 1)
        } else {
            format!("{}-{last}", base + 1)
        };
        let total = s.max_trials.map_or(String::new(), |m| format!("/{m}"));
        s.progress
            .begin(&format!("{}, trial {trial_range}{total}", s.label), 0);
        let outcomes = self.run_specs(
            &to_run
                .iter()
                .map(|&j| specs[j].as_str())
                .collect::<Vec<_>>(),
        )?;
        s.progress.finish();
        let mut outcomes = outcomes.into_iter();
        for (j, (config, rung, _)) in batch.iter().enumerate() {
            let record = match replayed[j].take() {
                Some(mut r) => {
                    // Halving statuses are recomputed from the scores after each rung.
                    if r.status == "pruned" {
                        r.status = "complete".into();
                    }
                    r
                }
                None => {
                    let (result, seconds) = outcomes.next().ok_or_else(|| {
                        Error::InvalidInput("internal: missing trial outcome".into())
                    })?;
                    let (score, status, error) = match result {
                        Ok(v) if v.is_finite() => (Some(v), "complete", None),
                        Ok(v) => (None, "failed", Some(format!("score is {v}"))),
                        Err(e) => (None, "failed", Some(e.to_string())),
                    };
                    let record = TrialRecord {
                        fold: s.fold,
                        trial: base + j,
                        spec: specs[j].clone(),
                        params: self.space.params_json(config),
                        rung: *rung,
                        score,
                        seconds,
                        status: status.into(),
                        error,
                    };
                    (self.on_new)(&record)?;
                    record
                }
            };
            self.records.push(record);
            self.configs.push(config.clone());
        }
        Ok(())
    }

    /// Runs the objective on each spec: one at a time on the caller's thread pool, or
    /// `parallel` at once, each in its own pool with its share of the threads. Cancellation is
    /// returned as an error; any other failure is the trial's outcome.
    fn run_specs(&self, specs: &[&str]) -> Result<Vec<(Result<f64>, f64)>> {
        let s = self.settings;
        let timed = |spec: &str, threads: usize| {
            let started = Instant::now();
            let result = (self.objective)(spec, threads);
            (result, started.elapsed().as_secs_f64())
        };
        let outcomes: Vec<(Result<f64>, f64)> = if specs.len() <= 1 || s.parallel <= 1 {
            specs
                .iter()
                .map(|spec| timed(spec, s.threads.max(1)))
                .collect()
        } else {
            let threads = (s.threads / s.parallel).max(1);
            std::thread::scope(|scope| {
                let handles: Vec<_> = specs
                    .iter()
                    .map(|spec| {
                        scope.spawn(move || {
                            match rayon::ThreadPoolBuilder::new().num_threads(threads).build() {
                                Ok(pool) => pool.install(|| timed(spec, threads)),
                                Err(e) => (
                                    Err(Error::InvalidInput(format!(
                                        "cannot start a thread pool for a trial: {e}"
                                    ))),
                                    0.0,
                                ),
                            }
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| {
                        h.join().unwrap_or_else(|_| {
                            (Err(Error::InvalidInput("a trial panicked".into())), 0.0)
                        })
                    })
                    .collect()
            })
        };
        if outcomes
            .iter()
            .any(|(r, _)| matches!(r, Err(Error::Cancelled)))
            || s.cancel.is_cancelled()
        {
            return Err(Error::Cancelled);
        }
        Ok(outcomes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kindred_core::NoProgress;
    use kindred_models::space::{Domain, Param, Value};

    fn toy_space() -> Space {
        Space {
            family: "toy",
            params: vec![
                Param {
                    name: "x",
                    domain: Domain::Float {
                        lo: 0.0,
                        hi: 1.0,
                        log: false,
                    },
                    default: Value::Float(0.5),
                },
                Param {
                    name: "epochs",
                    domain: Domain::Int {
                        lo: 9,
                        hi: 9,
                        log: false,
                    },
                    default: Value::Int(9),
                },
            ],
            fidelity: Some("epochs"),
            fixed: Vec::new(),
        }
    }

    fn settings(method: Method, trials: usize) -> SearchSettings {
        SearchSettings {
            method,
            lower_is_better: true,
            seed: 5,
            fold: 0,
            parallel: 1,
            threads: 1,
            max_trials: Some(trials),
            deadline: None,
            startup_trials: 4,
            eta: 3,
            include_defaults: true,
            cancel: CancelFlag::new(),
            progress: Arc::new(NoProgress),
            label: "test".into(),
        }
    }

    fn param(spec: &str, key: &str) -> f64 {
        spec.split([':', ','])
            .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
            .and_then(|v| v.parse().ok())
            .unwrap_or(f64::NAN)
    }

    /// (x - 0.3)^2, measured with noise that shrinks with the epochs a rung trains.
    fn objective(spec: &str, _threads: usize) -> Result<f64> {
        let (x, epochs) = (param(spec, "x"), param(spec, "epochs"));
        Ok((x - 0.3).powi(2) + 0.001 / epochs)
    }

    #[test]
    fn halving_promotes_the_best_third_and_chooses_at_full_budget() {
        let space = toy_space();
        let outcome = search(
            &space,
            &settings(Method::Halving, 9),
            &objective,
            &[],
            &mut |_| Ok(()),
        )
        .unwrap();
        let r = &outcome.records;
        // 9 configurations at 1 epoch, 3 at 3 epochs, 1 at 9 epochs.
        assert_eq!(r.len(), 13);
        let rungs: Vec<usize> = r.iter().map(|t| t.rung).collect();
        assert_eq!(rungs, [0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 2]);
        assert!(r[..9].iter().all(|t| param(&t.spec, "epochs") == 1.0));
        assert!(r[9..12].iter().all(|t| param(&t.spec, "epochs") == 3.0));
        assert_eq!(param(&r[12].spec, "epochs"), 9.0);
        // The promoted configurations are exactly the three closest to 0.3 at rung 0.
        let mut rung0: Vec<(f64, f64)> = r[..9]
            .iter()
            .map(|t| (t.score.unwrap(), param(&t.spec, "x")))
            .collect();
        rung0.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut best3: Vec<f64> = rung0[..3].iter().map(|p| p.1).collect();
        let mut promoted: Vec<f64> = r[9..12].iter().map(|t| param(&t.spec, "x")).collect();
        best3.sort_by(f64::total_cmp);
        promoted.sort_by(f64::total_cmp);
        assert_eq!(best3, promoted);
        assert_eq!(r[..9].iter().filter(|t| t.status == "pruned").count(), 6);
        assert_eq!(r[9..12].iter().filter(|t| t.status == "pruned").count(), 2);
        assert_eq!(r[12].status, "complete");
        assert_eq!(outcome.chosen_trial, 12);
        assert_eq!(param(&outcome.chosen, "x"), rung0[0].1);
    }

    #[test]
    fn halving_needs_an_iteration_parameter() {
        let mut space = toy_space();
        space.fidelity = None;
        let err = search(
            &space,
            &settings(Method::Halving, 9),
            &objective,
            &[],
            &mut |_| Ok(()),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("iteration parameter"), "{err}");
        assert!(err.contains("svd"), "{err}");
    }

    #[test]
    fn replay_reuses_records_and_rejects_a_different_proposal() {
        let space = toy_space();
        let full = search(
            &space,
            &settings(Method::Tpe, 12),
            &objective,
            &[],
            &mut |_| Ok(()),
        )
        .unwrap();
        let mut first = Vec::new();
        search(
            &space,
            &settings(Method::Tpe, 7),
            &objective,
            &[],
            &mut |r| {
                first.push(r.clone());
                Ok(())
            },
        )
        .unwrap();
        let calls = std::sync::atomic::AtomicUsize::new(0);
        let counting = |spec: &str, t: usize| {
            calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            objective(spec, t)
        };
        let resumed = search(
            &space,
            &settings(Method::Tpe, 12),
            &counting,
            &first,
            &mut |_| Ok(()),
        )
        .unwrap();
        assert_eq!(calls.into_inner(), 5, "only the 5 new trials are fitted");
        let strip = |r: &[TrialRecord]| -> Vec<(String, Option<f64>)> {
            r.iter().map(|t| (t.spec.clone(), t.score)).collect()
        };
        assert_eq!(strip(&resumed.records), strip(&full.records));
        assert_eq!(resumed.chosen, full.chosen);
        let mut tampered = first.clone();
        tampered[3].spec = "toy:x=0.999,epochs=9".into();
        let err = search(
            &space,
            &settings(Method::Tpe, 12),
            &objective,
            &tampered,
            &mut |_| Ok(()),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("different search"), "{err}");
    }

    #[test]
    fn parallel_batches_are_deterministic_and_failures_are_recorded() {
        let space = toy_space();
        let failing = |spec: &str, t: usize| {
            if param(spec, "x") > 0.9 {
                Err(Error::InvalidInput("diverged".into()))
            } else {
                objective(spec, t)
            }
        };
        let mut s = settings(Method::Tpe, 16);
        s.parallel = 4;
        s.threads = 4;
        let a = search(&space, &s, &failing, &[], &mut |_| Ok(())).unwrap();
        let b = search(&space, &s, &failing, &[], &mut |_| Ok(())).unwrap();
        assert_eq!(a.records.len(), 16);
        let key = |r: &[TrialRecord]| -> Vec<(String, Option<f64>, String)> {
            r.iter()
                .map(|t| (t.spec.clone(), t.score, t.status.clone()))
                .collect()
        };
        assert_eq!(key(&a.records), key(&b.records));
        assert_eq!(
            a.records[0].spec, "toy:x=0.5,epochs=9",
            "trial 0 is the defaults"
        );
        for t in &a.records {
            assert_eq!(t.status == "failed", param(&t.spec, "x") > 0.9);
        }
        let best = a
            .records
            .iter()
            .filter_map(|t| t.score)
            .fold(f64::INFINITY, f64::min);
        assert_eq!(a.records[a.chosen_trial].score, Some(best));
    }

    #[test]
    fn a_time_budget_stops_between_trials_after_the_first() {
        let space = toy_space();
        let mut s = settings(Method::Random, 1000);
        s.max_trials = None;
        s.deadline = Some(Instant::now());
        let outcome = search(&space, &s, &objective, &[], &mut |_| Ok(())).unwrap();
        assert_eq!(outcome.records.len(), 1);
        s.cancel.cancel();
        let err = search(&space, &s, &objective, &[], &mut |_| Ok(())).unwrap_err();
        assert!(matches!(err, Error::Cancelled));
    }
}
