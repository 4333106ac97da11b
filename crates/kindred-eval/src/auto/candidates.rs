//! Which families `auto` tries, decided before anything is fitted: a family joins when it is
//! meant for the task, the data has what it needs (ratings, item features), the catalog is
//! within its limit, and its predicted fit time and memory (its descriptor's
//! [`ModelFamily::estimate`]) fit the budget and the machine. A family too costly at its defaults
//! is tried in its cheaper form where it has one ([`ModelFamily::cheaper_form`]: EASE on the
//! most used items), sized to a quarter of the budget. Every family left out is listed with the
//! reason, so the trace explains what was not tried as well as what was.

use kindred_models::{DataShape, Estimate, ModelFamily, ModelRegistry};

use super::spec::AutoTask;
use super::trace::FamilyTrace;

/// A family that will be tried, with its predicted cost at the defaults (or in its cheaper
/// form).
pub struct Candidate<'r> {
    pub family: &'r dyn ModelFamily,
    pub estimate: Estimate,
    /// Parameters every trial carries: the cheaper form's (empty at the defaults).
    pub fixed: Vec<(&'static str, String)>,
    /// Why and how the family runs in a cheaper form, for the trace.
    pub form: Option<String>,
}

/// What the data offers, besides its shape.
#[derive(Debug, Clone, Copy)]
pub struct DataTraits {
    pub has_ratings: bool,
    pub has_item_features: bool,
}

/// Families that only serve as a sanity floor: listed, never tried.
const FLOORS: &[&str] = &["random"];

/// Share of the machine's available memory one fit may plan to use.
const MEMORY_SHARE: f64 = 0.6;

/// Share of the budget a fit in a family's cheaper form is sized to: room for screening it
/// and for a few tuning trials.
const CHEAPER_FORM_SHARE: f64 = 0.25;

/// The families worth trying, cheapest first, and the ones left out with the reason.
pub fn candidates<'r>(
    registry: &'r ModelRegistry,
    task: AutoTask,
    named: Option<&[String]>,
    shape: &DataShape,
    traits: DataTraits,
    budget_seconds: f64,
    memory_bytes: Option<f64>,
) -> (Vec<Candidate<'r>>, Vec<FamilyTrace>) {
    let mut chosen = Vec::new();
    let mut skipped = Vec::new();
    for family in registry.families() {
        let name = family.name();
        if let Some(named) = named {
            if !named.iter().any(|n| n == name) {
                continue;
            }
        }
        let estimate = family.estimate(shape);
        let needs = family.applicability();
        let unfit = if named.is_none() && FLOORS.contains(&name) {
            Some("a sanity floor, never a choice".to_owned())
        } else if named.is_none() && needs.named_only {
            Some("tried only when named: its fits take far longer than the others'".to_owned())
        } else if !task.accepts(family.task()) {
            // Families of another task are only worth a line when the user named them.
            if named.is_none() {
                continue;
            }
            Some(
                format!(
                    "a {:?} model, not for the {} task",
                    family.task(),
                    task.name()
                )
                .to_lowercase(),
            )
        } else if needs.needs_ratings && !traits.has_ratings {
            Some("needs explicit ratings, and the data has none".to_owned())
        } else if needs.needs_features && !traits.has_item_features {
            Some("needs item features, and the data has none".to_owned())
        } else {
            None
        };
        if let Some(reason) = unfit {
            skipped.push(FamilyTrace::skipped(name, estimate, reason));
            continue;
        }
        let too_costly = if let Some(max) = needs.max_items.filter(|&m| shape.items > m) {
            Some(format!(
                "{} items exceed the family's limit of {max}",
                shape.items
            ))
        } else if let Some(memory) = memory_bytes.filter(|&m| estimate.bytes > MEMORY_SHARE * m) {
            Some(format!(
                "predicted {} of memory at the defaults; the machine has {} available",
                gib(estimate.bytes),
                gib(memory)
            ))
        } else if estimate.seconds > budget_seconds {
            Some(format!(
                "predicted {:.0} s per fit at the defaults, more than the whole budget of {budget_seconds:.0} s",
                estimate.seconds
            ))
        } else {
            None
        };
        let Some(reason) = too_costly else {
            chosen.push(Candidate {
                family,
                estimate,
                fixed: Vec::new(),
                form: None,
            });
            continue;
        };
        let fits = |e: &Estimate| {
            e.seconds <= CHEAPER_FORM_SHARE * budget_seconds
                && memory_bytes.is_none_or(|m| e.bytes <= MEMORY_SHARE * m)
        };
        match family.cheaper_form(shape, &fits) {
            Some(form) => chosen.push(Candidate {
                family,
                estimate: form.estimate,
                fixed: form.params,
                form: Some(format!(
                    "run in a cheaper form, {} (at the defaults: {reason})",
                    form.description
                )),
            }),
            None => skipped.push(FamilyTrace::skipped(name, estimate, reason)),
        }
    }
    chosen.sort_by(|a, b| a.estimate.seconds.total_cmp(&b.estimate.seconds));
    (chosen, skipped)
}

fn gib(bytes: f64) -> String {
    format!("{:.1} GiB", bytes / (1u64 << 30) as f64)
}

/// Memory the operating system says is available now (Linux); None where it cannot say.
pub fn available_memory() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRAITS: DataTraits = DataTraits {
        has_ratings: true,
        has_item_features: false,
    };

    fn names(c: &[Candidate<'_>]) -> Vec<&'static str> {
        c.iter().map(|c| c.family.name()).collect()
    }

    /// The ranking candidates of the built-in families, none named.
    fn ranking(
        shape: &DataShape,
        budget_seconds: f64,
        memory_bytes: Option<f64>,
    ) -> (Vec<Candidate<'static>>, Vec<FamilyTrace>) {
        let registry = ModelRegistry::global();
        let task = AutoTask::Ranking;
        candidates(
            registry,
            task,
            None,
            shape,
            TRAITS,
            budget_seconds,
            memory_bytes,
        )
    }

    fn shape(users: usize, items: usize, interactions: usize) -> DataShape {
        DataShape {
            users,
            items,
            interactions,
        }
    }

    #[test]
    fn ranking_tries_ranking_families_and_says_why_others_are_out() {
        let (tried, skipped) = ranking(&shape(1000, 500, 20_000), 300.0, None);
        let tried = names(&tried);
        for family in ["popularity", "itemknn", "als", "ease", "bpr"] {
            assert!(tried.contains(&family), "{family} missing from {tried:?}");
        }
        assert!(!tried.contains(&"svd") && !tried.contains(&"random"));
        let why = |name: &str| {
            skipped
                .iter()
                .find(|s| s.family == name)
                .and_then(|s| s.reason.clone())
                .unwrap_or_default()
        };
        assert!(why("random").contains("sanity floor"));
        assert!(why("content").contains("needs item features"));
        // Cheapest first: popularity is a count.
        assert_eq!(tried[0], "popularity");
    }

    #[test]
    fn rating_tries_the_rating_family_only_with_ratings() {
        let registry = ModelRegistry::global();
        let (tried, _) = candidates(
            registry,
            AutoTask::Rating,
            None,
            &shape(1000, 500, 20_000),
            TRAITS,
            300.0,
            None,
        );
        let tried = names(&tried);
        for family in ["baseline", "svd", "svdpp", "knn", "bpmf"] {
            assert!(tried.contains(&family), "{family} missing from {tried:?}");
        }
        assert!(!tried.contains(&"als"));
        let (tried, skipped) = candidates(
            registry,
            AutoTask::Rating,
            None,
            &shape(1000, 500, 20_000),
            DataTraits {
                has_ratings: false,
                ..TRAITS
            },
            300.0,
            None,
        );
        assert!(tried.is_empty(), "{:?}", names(&tried));
        assert!(skipped.iter().filter(|s| s.family != "random").all(|s| s
            .reason
            .as_deref()
            .unwrap_or("")
            .contains("ratings")));
    }

    #[test]
    fn cost_and_size_rule_families_out_before_they_run() {
        // 60,000 items: beyond EASE's catalog limit, and its items^2 weights beyond 4 GiB.
        let big = shape(200_000, 60_000, 5_000_000);
        let (tried, skipped) = ranking(&big, 300.0, Some(4.0 * (1u64 << 30) as f64));
        // EASE runs in its cheaper form instead: the most used items, sized to the budget
        // and the memory.
        assert!(!skipped.iter().any(|s| s.family == "ease"));
        let ease = tried.iter().find(|c| c.family.name() == "ease").unwrap();
        let (name, width) = &ease.fixed[0];
        assert_eq!(*name, "top_items");
        let width: usize = width.parse().unwrap();
        assert!((1_000..=20_000).contains(&width), "{width}");
        assert!(ease.estimate.seconds <= 0.25 * 300.0);
        assert!(ease.estimate.bytes <= 0.6 * 4.0 * (1u64 << 30) as f64);
        let form = ease.form.as_deref().unwrap();
        assert!(
            form.contains("cheaper form") && form.contains("limit of 20000"),
            "{form}"
        );
        // With far less memory not even the smallest subset fits: skipped, with the reason.
        let (tried, skipped) = ranking(&big, 300.0, Some(100e6));
        assert!(!names(&tried).contains(&"ease"));
        let ease = skipped.iter().find(|s| s.family == "ease").unwrap();
        assert!(ease.reason.as_deref().unwrap().contains("limit of 20000"));
        // A budget of one second leaves only the cheap families on a large log.
        let (tried, skipped) = ranking(&shape(200_000, 10_000, 5_000_000), 1.0, None);
        assert!(names(&tried).contains(&"popularity"));
        assert!(!names(&tried).contains(&"bpr"));
        assert!(skipped
            .iter()
            .any(|s| s.reason.as_deref().unwrap_or("").contains("whole budget")));
    }

    #[test]
    fn named_families_are_the_only_ones_and_a_wrong_task_is_explained() {
        let registry = ModelRegistry::global();
        let named = vec!["als".to_owned(), "svd".to_owned()];
        let (tried, skipped) = candidates(
            registry,
            AutoTask::Ranking,
            Some(&named),
            &shape(100, 50, 1000),
            TRAITS,
            300.0,
            None,
        );
        assert_eq!(names(&tried), vec!["als"]);
        assert_eq!(skipped.len(), 1);
        assert!(skipped[0]
            .reason
            .as_deref()
            .unwrap()
            .contains("not for the ranking task"));
    }

    #[test]
    fn memory_is_read_on_linux() {
        if cfg!(target_os = "linux") {
            assert!(available_memory().is_some_and(|m| m > 0.0));
        }
    }
}
