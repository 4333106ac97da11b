//! From logged rows to per-user observations: which list gets the credit for a feedback event,
//! and what each exposed user's metric columns are.
//!
//! Attribution: an event (any type) by user u on item i at time t belongs to the experiment's
//! list that showed i to u most recently at or before t, if that was at most the attribution
//! window before t. Events on items the experiment never showed that user, events before the
//! showing and events after the window count for nothing. A user belongs to the variant of
//! their first exposure (assignment is deterministic, so they are the same unless the
//! definition changed; such users are counted so the report can say so).
//!
//! Pure functions over rows, so the rules are tested on hand examples without a server.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use kindred_stats::experiment::Observation;
use kindred_store::{Exposure, Impression, StoredFeedback};
use serde::Serialize;

use super::definition::{Column, ExperimentDefinition};

/// The rows of one experiment an analysis reads.
#[derive(Debug, Clone, Default)]
pub struct ExperimentRows {
    pub exposures: Vec<Exposure>,
    /// Impressions of the exposed requests.
    pub impressions: Vec<Impression>,
    /// Feedback of exposed users from the start on (up to the stop plus the window).
    pub feedback: Vec<StoredFeedback>,
    /// Feedback of exposed users in the pre-period (CUPED covariates).
    pub pre_feedback: Vec<StoredFeedback>,
}

/// Counts that describe the rows besides the observations.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AttributionCounts {
    /// Exposures (lists served) per variant.
    pub exposures: BTreeMap<String, u64>,
    /// Impressions (items shown) per variant.
    pub impressions: BTreeMap<String, u64>,
    /// Attributed events per variant and event type.
    pub attributed: BTreeMap<String, BTreeMap<String, u64>>,
    /// Events by exposed users that no list of the experiment gets credit for.
    pub unattributed_events: u64,
    /// Users exposed to more than one variant (kept in their first one).
    pub users_in_several_variants: u64,
}

/// The observations (one per exposed user, first exposure order) and the counts.
pub fn observations(
    definition: &ExperimentDefinition,
    rows: &ExperimentRows,
) -> kindred_core::Result<(Vec<Observation>, AttributionCounts)> {
    let columns = definition.columns()?;
    let window = definition.attribution_window_seconds;
    let mut counts = AttributionCounts::default();

    // Each user's variant: the one of their first exposure.
    let mut order: Vec<&str> = Vec::new();
    let mut variant_of: HashMap<&str, &str> = HashMap::new();
    let mut several: BTreeSet<&str> = BTreeSet::new();
    let mut request_variant: HashMap<&str, &str> = HashMap::new();
    let mut per_user: HashMap<&str, BTreeMap<String, f64>> = HashMap::new();
    for e in &rows.exposures {
        *counts.exposures.entry(e.variant.clone()).or_default() += 1;
        request_variant.insert(&e.request_id, &e.variant);
        match variant_of.get(e.user.as_str()) {
            None => {
                variant_of.insert(&e.user, &e.variant);
                order.push(&e.user);
            }
            Some(&v) if v != e.variant => {
                several.insert(&e.user);
            }
            Some(_) => {}
        }
        *per_user
            .entry(&e.user)
            .or_default()
            .entry(Column::Exposures.name())
            .or_default() += 1.0;
    }
    counts.users_in_several_variants = several.len() as u64;

    // (user, item) -> showing times, for the attribution search.
    let mut shown: HashMap<(&str, &str), Vec<(i64, &str)>> = HashMap::new();
    for imp in &rows.impressions {
        let Some(&variant) = request_variant.get(imp.request_id.as_str()) else {
            continue;
        };
        *counts.impressions.entry(variant.to_owned()).or_default() += 1;
        if let Some(values) = per_user.get_mut(imp.user.as_str()) {
            *values.entry(Column::Impressions.name()).or_default() += 1.0;
        }
        shown
            .entry((&imp.user, &imp.item))
            .or_default()
            .push((imp.timestamp, variant));
    }
    for times in shown.values_mut() {
        // Stable: among lists shown in the same second the later-logged one wins below.
        times.sort_by_key(|&(t, _)| t);
    }

    let mut attributed: HashMap<&str, BTreeMap<&str, u64>> = HashMap::new();
    for event in &rows.feedback {
        let f = &event.feedback;
        let credited = shown
            .get(&(f.user.as_str(), f.item.as_str()))
            .and_then(|times| {
                let at_or_before = times.partition_point(|&(t, _)| t <= f.timestamp);
                let &(t, variant) = times[..at_or_before].last()?;
                (f.timestamp - t <= window).then_some(variant)
            });
        match credited {
            Some(variant) => {
                *attributed
                    .entry(&f.user)
                    .or_default()
                    .entry(&f.event_type)
                    .or_default() += 1;
                *counts
                    .attributed
                    .entry(variant.to_owned())
                    .or_default()
                    .entry(f.event_type.clone())
                    .or_default() += 1;
            }
            None => counts.unattributed_events += 1,
        }
    }

    let mut pre: HashMap<&str, BTreeMap<&str, u64>> = HashMap::new();
    for event in &rows.pre_feedback {
        let f = &event.feedback;
        *pre.entry(&f.user)
            .or_default()
            .entry(&f.event_type)
            .or_default() += 1;
    }
    let with_pre = definition.pre_period_seconds.is_some();

    let observations = order
        .iter()
        .map(|&user| {
            let mut values = per_user.remove(user).unwrap_or_default();
            let events = attributed.get(user);
            let pre_events = pre.get(user);
            for column in &columns {
                let name = column.name();
                let count = |by_type: Option<&BTreeMap<&str, u64>>, t: &str| {
                    by_type.and_then(|m| m.get(t)).copied().unwrap_or(0) as f64
                };
                let (value, pre_value) = match column {
                    Column::Exposures | Column::Impressions => {
                        (values.get(&name).copied().unwrap_or(0.0), None)
                    }
                    Column::Count(t) => (count(events, t), Some(count(pre_events, t))),
                    Column::Any(t) => (
                        f64::from(count(events, t) > 0.0),
                        Some(f64::from(count(pre_events, t) > 0.0)),
                    ),
                };
                values.insert(name.clone(), value);
                if let (true, Some(p)) = (with_pre, pre_value) {
                    values.insert(format!("pre_{name}"), p);
                }
            }
            Observation {
                unit: Some(user.to_owned()),
                variant: variant_of[user].to_owned(),
                segment: None,
                values,
            }
        })
        .collect();
    Ok((observations, counts))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kindred_store::Feedback;

    fn definition(pre: Option<i64>) -> ExperimentDefinition {
        serde_json::from_value(serde_json::json!({
            "name": "e",
            "variants": [{"name": "a", "weight": 1}, {"name": "b", "weight": 1}],
            "success_metric": "click_any",
            "guardrail_metrics": ["ctr=click/impressions", "purchase"],
            "attribution_window_seconds": 100,
            "pre_period_seconds": pre
        }))
        .unwrap()
    }

    fn exposure(variant: &str, user: &str, request: &str, ts: i64) -> Exposure {
        Exposure {
            experiment: "e".into(),
            variant: variant.into(),
            user: user.into(),
            request_id: request.into(),
            timestamp: ts,
        }
    }

    fn impression(request: &str, user: &str, item: &str, ts: i64) -> Impression {
        Impression {
            request_id: request.into(),
            user: user.into(),
            item: item.into(),
            slot: 0,
            propensity: None,
            policy: "v".into(),
            timestamp: ts,
        }
    }

    fn event(user: &str, item: &str, kind: &str, ts: i64) -> StoredFeedback {
        StoredFeedback {
            seq: 0,
            feedback: Feedback {
                user: user.into(),
                item: item.into(),
                event_type: kind.into(),
                value: None,
                timestamp: ts,
                event_id: None,
            },
        }
    }

    /// u1 (variant a) is shown i1 at 10 (r1) and again at 50 (r2); u2 (variant b) is shown i2
    /// at 20 (r3). Events:
    /// - u1 clicks i1 at 5: before any showing -> unattributed;
    /// - u1 clicks i1 at 60: the most recent showing at or before is r2 (50) -> a;
    /// - u1 purchases i1 at 150: r2 at 50 is exactly 100 s before, the window edge -> a;
    /// - u1 clicks i1 at 151: 101 s after r2 -> unattributed;
    /// - u2 clicks i2 at 20 (same second as the showing) -> b;
    /// - u2 clicks i9 (never shown) at 30 -> unattributed;
    /// - u3 clicks i1 at 60: i1 was shown to u1, not u3, and u3 was never exposed -> nothing.
    fn rows() -> ExperimentRows {
        ExperimentRows {
            exposures: vec![
                exposure("a", "u1", "r1", 10),
                exposure("b", "u2", "r3", 20),
                exposure("a", "u1", "r2", 50),
            ],
            impressions: vec![
                impression("r1", "u1", "i1", 10),
                impression("r1", "u1", "i5", 10),
                impression("r3", "u2", "i2", 20),
                impression("r2", "u1", "i1", 50),
                impression("not-in-experiment", "u1", "i7", 55),
            ],
            feedback: vec![
                event("u1", "i1", "click", 5),
                event("u2", "i2", "click", 20),
                event("u2", "i9", "click", 30),
                event("u1", "i1", "click", 60),
                event("u3", "i1", "click", 60),
                event("u1", "i1", "purchase", 150),
                event("u1", "i1", "click", 151),
            ],
            pre_feedback: vec![
                event("u2", "i4", "click", -5),
                event("u2", "i4", "click", -3),
            ],
        }
    }

    #[test]
    fn hand_example_attributes_to_the_latest_showing_within_the_window() {
        let (obs, counts) = observations(&definition(Some(60)), &rows()).unwrap();
        assert_eq!(obs.len(), 2);
        let u1 = &obs[0];
        assert_eq!((u1.unit.as_deref(), u1.variant.as_str()), (Some("u1"), "a"));
        let expect = |o: &Observation, pairs: &[(&str, f64)]| {
            for (column, value) in pairs {
                assert_eq!(
                    o.values.get(*column),
                    Some(value),
                    "{column} of {:?}",
                    o.unit
                );
            }
        };
        expect(
            u1,
            &[
                ("exposures", 2.0),
                ("impressions", 3.0),
                ("click", 1.0),
                ("click_any", 1.0),
                ("purchase", 1.0),
                ("pre_click", 0.0),
                ("pre_click_any", 0.0),
            ],
        );
        let u2 = &obs[1];
        assert_eq!(u2.variant, "b");
        expect(
            u2,
            &[
                ("exposures", 1.0),
                ("impressions", 1.0),
                ("click", 1.0),
                ("click_any", 1.0),
                ("purchase", 0.0),
                ("pre_click", 2.0),
                ("pre_click_any", 1.0),
            ],
        );
        assert_eq!(
            counts.exposures,
            BTreeMap::from([("a".into(), 2), ("b".into(), 1)])
        );
        assert_eq!(
            counts.impressions,
            BTreeMap::from([("a".into(), 3), ("b".into(), 1)])
        );
        assert_eq!(counts.attributed["a"]["click"], 1);
        assert_eq!(counts.attributed["a"]["purchase"], 1);
        assert_eq!(counts.attributed["b"]["click"], 1);
        // u1 at 5 and 151, u2 on i9, u3 on i1.
        assert_eq!(counts.unattributed_events, 4);
        assert_eq!(counts.users_in_several_variants, 0);
    }

    #[test]
    fn no_pre_period_means_no_covariates_and_mixed_users_are_counted() {
        let mut rows = rows();
        rows.exposures.push(exposure("b", "u1", "r9", 70));
        let (obs, counts) = observations(&definition(None), &rows).unwrap();
        assert!(obs
            .iter()
            .all(|o| !o.values.keys().any(|k| k.starts_with("pre_"))));
        assert_eq!(obs[0].variant, "a", "first exposure decides");
        assert_eq!(counts.users_in_several_variants, 1);
    }
}
