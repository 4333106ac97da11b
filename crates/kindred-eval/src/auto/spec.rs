//! The `auto` model spec:
//! `auto[:task=ranking|rating,budget=SECONDS,metric=ndcg@10,families=a+b,trials=N]`. Every key
//! is optional: the task follows the protocol (or is `ranking` where there is none), the budget
//! is [`DEFAULT_BUDGET_SECONDS`], the metric is `ndcg@10` for ranking and `rmse` for rating, the
//! families are every registered family that fits the task and the data, and `trials` (at most
//! this many fits per family, the budget still applying) is unbounded. With `trials` set and a
//! budget that does not bind, a selection is reproducible fit for fit.

use kindred_core::{Error, Result};
use kindred_models::{ModelRegistry, ModelSpec, Task};
use serde::Serialize;

/// The spec name.
pub const AUTO: &str = "auto";

/// Seconds a selection may spend when the spec names no budget (the final refit on all
/// training rows comes on top).
pub const DEFAULT_BUDGET_SECONDS: f64 = 300.0;

/// The largest budget accepted (a week): deadlines are computed from it.
pub const MAX_BUDGET_SECONDS: f64 = 7.0 * 24.0 * 3600.0;

/// What the selected model is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AutoTask {
    /// Top-K lists, judged by a ranking metric.
    Ranking,
    /// Rating prediction, judged by rmse or mae.
    Rating,
}

impl AutoTask {
    pub fn name(self) -> &'static str {
        match self {
            Self::Ranking => "ranking",
            Self::Rating => "rating",
        }
    }

    /// Whether a family's models are meant for this task. Families of both tasks (baseline,
    /// knn, slope one, co-clustering) are rating models whose lists are weak, so only ranking
    /// families compete for ranking.
    pub fn accepts(self, task: Task) -> bool {
        match self {
            Self::Ranking => task == Task::Ranking,
            Self::Rating => matches!(task, Task::Rating | Task::Both),
        }
    }

    /// The metric judged when the spec names none.
    pub fn default_metric(self) -> &'static str {
        match self {
            Self::Ranking => "ndcg@10",
            Self::Rating => "rmse",
        }
    }
}

/// A parsed `auto` spec.
#[derive(Debug, Clone, PartialEq)]
pub struct AutoSpec {
    /// None: follow the protocol (ranking where there is none).
    pub task: Option<AutoTask>,
    pub budget_seconds: f64,
    /// None: the task's default metric.
    pub metric: Option<String>,
    /// None: every applicable family.
    pub families: Option<Vec<String>>,
    /// At most this many fits per family (None: as many as the budget allows).
    pub trials: Option<usize>,
}

/// True when `spec` names the `auto` model.
pub fn is_auto(spec: &str) -> bool {
    let spec = spec.trim();
    spec == AUTO || spec.starts_with("auto:")
}

impl AutoSpec {
    /// Parses an `auto` spec; family names are checked against `registry`.
    pub fn parse(spec: &str, registry: &ModelRegistry) -> Result<Self> {
        let parsed = ModelSpec::parse(spec)?;
        if parsed.name != AUTO {
            return Err(Error::spec("model", spec, "not an `auto` spec"));
        }
        let mut out = Self {
            task: None,
            budget_seconds: DEFAULT_BUDGET_SECONDS,
            metric: None,
            families: None,
            trials: None,
        };
        for (key, value) in &parsed.params {
            match key.as_str() {
                "task" => {
                    out.task = Some(match value.as_str() {
                        "ranking" => AutoTask::Ranking,
                        "rating" => AutoTask::Rating,
                        other => {
                            return Err(Error::spec(
                                "model",
                                spec,
                                format!("auto: task must be ranking or rating, got `{other}`"),
                            ))
                        }
                    })
                }
                "budget" => {
                    out.budget_seconds = value
                        .parse::<f64>()
                        .ok()
                        .filter(|b| b.is_finite() && *b > 0.0 && *b <= MAX_BUDGET_SECONDS)
                        .ok_or_else(|| {
                            Error::spec(
                                "model",
                                spec,
                                format!(
                                    "auto: budget must be a positive number of seconds up to \
                                     {MAX_BUDGET_SECONDS} (a week), got `{value}`"
                                ),
                            )
                        })?
                }
                "trials" => {
                    out.trials = Some(value.parse::<usize>().ok().filter(|&t| t >= 1).ok_or_else(
                        || {
                            Error::spec(
                                "model",
                                spec,
                                format!("auto: trials must be a whole number >= 1, got `{value}`"),
                            )
                        },
                    )?)
                }
                "metric" => {
                    out.metric = Some(check_metric(spec, value)?.to_owned());
                }
                "families" => {
                    let names: Vec<String> = value
                        .split('+')
                        .map(|f| f.trim().to_owned())
                        .filter(|f| !f.is_empty())
                        .collect();
                    if names.is_empty() {
                        return Err(Error::spec(
                            "model",
                            spec,
                            "auto: families needs at least one name (a+b+...)",
                        ));
                    }
                    for name in &names {
                        if registry.get(name).is_none() {
                            let known: Vec<&str> = registry.families().map(|f| f.name()).collect();
                            return Err(Error::spec(
                                "model",
                                spec,
                                format!(
                                    "auto: unknown family `{name}`; known: {}",
                                    known.join(", ")
                                ),
                            ));
                        }
                    }
                    out.families = Some(names);
                }
                other => {
                    return Err(Error::spec(
                        "model",
                        spec,
                        format!(
                        "auto: unknown key `{other}`; keys: task, budget, metric, families, trials"
                    ),
                    ))
                }
            }
        }
        if let (Some(task), Some(metric)) = (out.task, &out.metric) {
            check_metric_task(spec, metric, task)?;
        }
        Ok(out)
    }

    /// The task under a protocol that predicts ratings (`rating`) or ranks (`ranking`); an
    /// error when the spec names the other one.
    pub fn task_under(&self, rating_protocol: bool, spec: &str) -> Result<AutoTask> {
        let implied = if rating_protocol {
            AutoTask::Rating
        } else {
            AutoTask::Ranking
        };
        match self.task {
            Some(task) if task != implied => Err(Error::spec(
                "model",
                spec,
                format!(
                    "auto: task={} under a {} protocol; use a {} protocol or drop task=",
                    task.name(),
                    implied.name(),
                    task.name()
                ),
            )),
            _ => Ok(implied),
        }
    }

    /// The metric judged for `task`.
    pub fn metric_for(&self, task: AutoTask, spec: &str) -> Result<String> {
        match &self.metric {
            Some(metric) => {
                check_metric_task(spec, metric, task)?;
                Ok(metric.clone())
            }
            None => Ok(task.default_metric().to_owned()),
        }
    }
}

/// A metric name is `rmse`, `mae` or `name@K` with K >= 1.
fn check_metric<'a>(spec: &str, metric: &'a str) -> Result<&'a str> {
    if matches!(metric, "rmse" | "mae") || metric_cutoff(metric).is_some() {
        Ok(metric)
    } else {
        Err(Error::spec(
            "model",
            spec,
            format!("auto: metric must be rmse, mae or a ranking metric at a cut-off such as ndcg@10, got `{metric}`"),
        ))
    }
}

fn check_metric_task(spec: &str, metric: &str, task: AutoTask) -> Result<()> {
    let rating_metric = matches!(metric, "rmse" | "mae");
    if rating_metric != (task == AutoTask::Rating) {
        return Err(Error::spec(
            "model",
            spec,
            format!(
                "auto: metric `{metric}` does not judge the {} task ({})",
                task.name(),
                match task {
                    AutoTask::Rating => "use rmse or mae",
                    AutoTask::Ranking => "use a ranking metric such as ndcg@10",
                }
            ),
        ));
    }
    Ok(())
}

/// The K of a ranking metric `name@K`.
pub fn metric_cutoff(metric: &str) -> Option<usize> {
    let (name, k) = metric.split_once('@')?;
    let k: usize = k.parse().ok()?;
    (!name.is_empty() && k >= 1).then_some(k)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(spec: &str) -> Result<AutoSpec> {
        AutoSpec::parse(spec, ModelRegistry::global())
    }

    #[test]
    fn defaults_and_every_key() {
        let plain = parse("auto").unwrap();
        assert_eq!(plain.task, None);
        assert_eq!(plain.budget_seconds, DEFAULT_BUDGET_SECONDS);
        assert_eq!(plain.families, None);
        let full = parse("auto:task=rating,budget=12.5,metric=mae,families=svd+baseline,trials=4")
            .unwrap();
        assert_eq!(full.trials, Some(4));
        assert_eq!(full.task, Some(AutoTask::Rating));
        assert_eq!(full.budget_seconds, 12.5);
        assert_eq!(full.metric.as_deref(), Some("mae"));
        assert_eq!(
            full.families,
            Some(vec!["svd".to_owned(), "baseline".to_owned()])
        );
        assert!(is_auto("auto") && is_auto(" auto:budget=3") && !is_auto("autoencoder"));
    }

    #[test]
    fn bad_specs_say_what_is_wrong() {
        for (spec, needle) in [
            ("auto:task=both", "task must be ranking or rating"),
            ("auto:budget=0", "positive number of seconds"),
            ("auto:budget=soon", "positive number of seconds"),
            ("auto:budget=1e300", "up to 604800"),
            ("auto:metric=ndcg", "ranking metric at a cut-off"),
            ("auto:families=als+nope", "unknown family `nope`"),
            ("auto:families=", "at least one name"),
            ("auto:speed=fast", "unknown key `speed`"),
            ("auto:trials=0", "whole number >= 1"),
            (
                "auto:task=rating,metric=ndcg@10",
                "does not judge the rating task",
            ),
            (
                "auto:task=ranking,metric=rmse",
                "does not judge the ranking task",
            ),
        ] {
            let err = parse(spec).unwrap_err().to_string();
            assert!(err.contains(needle), "{spec}: {err}");
        }
    }

    #[test]
    fn the_protocol_decides_the_task_unless_the_spec_disagrees() {
        let plain = parse("auto").unwrap();
        assert_eq!(plain.task_under(true, "auto").unwrap(), AutoTask::Rating);
        assert_eq!(plain.task_under(false, "auto").unwrap(), AutoTask::Ranking);
        let rating = parse("auto:task=rating").unwrap();
        assert!(rating.task_under(false, "auto:task=rating").is_err());
        assert_eq!(
            plain.metric_for(AutoTask::Ranking, "auto").unwrap(),
            "ndcg@10"
        );
        assert_eq!(plain.metric_for(AutoTask::Rating, "auto").unwrap(), "rmse");
        assert_eq!(metric_cutoff("recall@20"), Some(20));
        assert_eq!(metric_cutoff("recall@0"), None);
    }
}
